//! The messages of one zone transfer: header and question as the request had them, records,
//! OPT when the request had EDNS, and a TSIG on every message when the request was signed
//! (RFC 8945 5.3.1: each MAC covers the previous one).

use std::io;

use hickory_proto::op::Edns;
use hickory_server::server::Request;

use crate::dns::tcp::TcpReply;
use crate::tsig::wire::{Signer, Verified};
use crate::zonemgr::{Clock, SystemClock};

/// Bytes of records per message (RFC 5936 leaves the size to the server; 16 KiB keeps every
/// compression pointer in range and a slow reader's buffers small).
pub const BUDGET: usize = 16 * 1024;

pub struct Out {
    reply: TcpReply,
    /// Header (flags of the request: opcode, RD, CD) and question as received: what
    /// `zones::wire::parse_query` reads to start each message.
    pub query: Vec<u8>,
    /// OPT to add (payload size, DO), when the request had EDNS.
    pub opt: Option<(u16, bool)>,
    signer: Option<Signer>,
    messages: usize,
    records: usize,
    bytes: usize,
}

impl Out {
    pub fn new(
        request: &Request,
        reply: TcpReply,
        edns: Option<&Edns>,
        tsig: Option<&Verified>,
    ) -> Self {
        let raw = request.as_slice();
        let flags = u16::from_be_bytes([raw[2], raw[3]]) & (0x7800 | 0x0100 | 0x0010);
        let mut query = Vec::with_capacity(12 + request.queries.as_bytes().len());
        query.extend_from_slice(&raw[0..2]);
        query.extend_from_slice(&flags.to_be_bytes());
        query.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        query.extend_from_slice(request.queries.as_bytes());
        Self {
            reply,
            query,
            opt: edns.map(|e| (e.max_payload(), e.flags().dnssec_ok)),
            signer: tsig.map(Signer::response),
            messages: 0,
            records: 0,
            bytes: 0,
        }
    }

    /// The largest message that leaves room for the TSIG: `BUDGET`, or 64 KiB for an RRset
    /// that does not fit in that.
    pub fn limit(&self, big: bool) -> usize {
        let room = self.signer.as_ref().map_or(0, |s| s.rr_len());
        if big {
            u16::MAX as usize - room
        } else {
            BUDGET
        }
    }

    /// Signs (when the request was) and sends one complete message of `records` records.
    pub async fn send(&mut self, msg: &mut Vec<u8>, records: usize) -> io::Result<()> {
        if let Some(s) = self.signer.as_mut() {
            s.sign(msg, u64::from(SystemClock.now()));
        }
        self.reply.send_raw(msg).await?;
        self.messages += 1;
        self.records += records;
        self.bytes += msg.len();
        // a transfer is CPU-bound while the client reads fast: give the other tasks (UDP
        // loops on the same worker) a turn after every message, not only when tokio's
        // budget runs out
        tokio::task::yield_now().await;
        Ok(())
    }

    /// Messages, records and bytes sent.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.messages, self.records, self.bytes)
    }
}

/// A message of individual records (IXFR): owners written in full, no compression.
pub struct Raw {
    query: Vec<u8>,
    opt: Option<(u16, bool)>,
    pub buf: Vec<u8>,
    pub count: usize,
    limit: usize,
}

impl Raw {
    pub fn new(out: &Out) -> Self {
        let mut r = Self {
            query: out.query.clone(),
            opt: out.opt,
            buf: Vec::with_capacity(BUDGET + 512),
            count: 0,
            limit: out.limit(false),
        };
        r.clear();
        r
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&self.query);
        self.count = 0;
    }

    /// Appends one record unless the message is full (a record always fits an empty one).
    pub fn push(&mut self, owner: &[u8], rr: &[u8]) -> bool {
        if self.count > 0 && self.buf.len() + owner.len() + rr.len() + 11 > self.limit {
            return false;
        }
        self.buf.extend_from_slice(owner);
        self.buf.extend_from_slice(rr);
        self.count += 1;
        true
    }

    /// Completes the message (header: QR, AA, the request's opcode, RD and CD; answer count;
    /// OPT) and sends it; starts the next one.
    pub async fn flush(&mut self, out: &mut Out) -> io::Result<()> {
        let flags = u16::from_be_bytes([self.query[2], self.query[3]]) | 0x8000 | 0x0400;
        self.buf[2..4].copy_from_slice(&flags.to_be_bytes());
        self.buf[6..8].copy_from_slice(&(self.count as u16).to_be_bytes());
        if let Some((payload, dnssec_ok)) = self.opt {
            self.buf.push(0);
            self.buf.extend_from_slice(&41u16.to_be_bytes());
            self.buf.extend_from_slice(&payload.max(512).to_be_bytes());
            self.buf
                .extend_from_slice(&(if dnssec_ok { 0x8000u32 } else { 0 }).to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
            self.buf[10..12].copy_from_slice(&1u16.to_be_bytes());
        }
        let count = self.count;
        out.send(&mut self.buf, count).await?;
        self.clear();
        Ok(())
    }
}
