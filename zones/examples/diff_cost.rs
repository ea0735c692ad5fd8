//! What the IXFR journal adds to a commit: `ZoneManager::publish` diffs the previous snapshot
//! against the new one (`Zone::changed_nodes` + `diff::change_size`) to count the bytes the
//! old one keeps alive. Measured here beside `Zone::apply` of the same change *without
//! signatures* (a lower bound of a real commit, which also signs every touched RRset at tens
//! of microseconds each).
//!
//! `cargo run --release -p zones --example diff_cost [names...]` (default 100000 1000000)

use std::net::Ipv4Addr;
use std::time::Instant;

use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record};
use zones::{Change, Rrset, RrsetSigner, Zone};

struct NoSigner;
impl RrsetSigner for NoSigner {
    fn sign(&self, _: &Rrset) -> Result<Vec<Record>, String> {
        Ok(vec![])
    }
}

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn soa(serial: u32) -> Change {
    Change::Put(
        Rrset::new(
            n("o-v1.mx.example."),
            3600,
            vec![RData::SOA(SOA::new(
                n("ns1.o-v1.mx.example."),
                n("hostmaster.o-v1.mx.example."),
                serial,
                3600,
                600,
                432000,
                300,
            ))],
        )
        .unwrap(),
    )
}

fn host(i: u32, last: u8) -> Change {
    Change::Put(
        Rrset::new(
            n(&format!("h{i}.o-v1.mx.example.")),
            300,
            vec![RData::A(A(Ipv4Addr::new(192, 0, 2, last)))],
        )
        .unwrap(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// (apply µs, journal diff µs) of a commit of `k` changed hosts, median of `rounds`.
fn measure(z: &mut Zone, names: u32, k: u32, rounds: u32, serial: &mut u32) -> (f64, f64) {
    let (mut apply, mut diff) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let mut changes: Vec<Change> = (0..k)
            .map(|j| host((r * 7919 + j * 104_729) % names, (r % 250) as u8 + 1))
            .collect();
        *serial += 1;
        changes.push(soa(*serial));
        let t = Instant::now();
        let next = z.apply(changes, &NoSigner).unwrap();
        apply.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let bytes: usize = z
            .changed_nodes(&next)
            .map(|(o, nw)| zones::diff::change_size(o, nw))
            .sum();
        diff.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(bytes > 0);
        *z = next;
    }
    (median(apply), median(diff))
}

fn main() {
    let sizes: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        sizes
    };
    println!("| names | changed names | apply, unsigned (µs) | journal diff (µs) | diff / apply |");
    println!("|---|---|---|---|---|");
    for names in sizes {
        let mut z = Zone::new(
            n("o-v1.mx.example."),
            3600,
            match soa(1) {
                Change::Put(r) => match r.first_data() {
                    Some(RData::SOA(s)) => s,
                    _ => unreachable!(),
                },
                _ => unreachable!(),
            },
            &NoSigner,
        )
        .unwrap();
        for start in (0..names).step_by(100_000) {
            let changes: Vec<Change> = (start..(start + 100_000).min(names))
                .map(|i| host(i, 1))
                .collect();
            z = z.apply(changes, &NoSigner).unwrap();
        }
        let mut serial = 1;
        for (k, rounds) in [(1, 501), (100, 101), (20_000, 5)] {
            let (a, d) = measure(&mut z, names, k, rounds, &mut serial);
            println!(
                "| {names} | {k} | {a:.1} | {d:.1} | {:.1} % |",
                100.0 * d / a
            );
        }
    }
}
