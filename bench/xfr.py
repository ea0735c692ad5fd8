#!/usr/bin/env python3
"""Secondaries benchmark: mxdns as the hidden primary of a real NSD, at N hosts provisioned
through the import path (`mxdns domain import`, DNSSEC + DANE), beside Knot DNS serving the same
signed zone to the same NSD.

Usage: bench/xfr.py BIN N REPORT [--changes C] [--rounds R]   (bench/xfr.sh builds BIN and calls this)

Measures, all on loopback:
  1. initial transfer: from NSD's start (fresh state) until it serves the primary's serial;
  2. C provisioning changes one after another (Enable-DnssecForVerifiedDomain on new domains):
     from the API's answer until NSD serves the new host's A record signed (p50, p99, max), and
     the IXFRs that carried them (primary's transfer log: bytes, records, per transfer);
  3. a fleet certificate change (PUT /v1/partitions/o-v1/certificates): API answer until NSD
     serves the new TLSA at an imported host, and what the IXFR carried;
  4. full AXFR of the partition zone to a fresh NSD (`request-xfr: AXFR`), R rounds interleaved:
     mxdns serving vs Knot serving the same zone (mxdns's AXFR, loaded as a zone file).
stdlib only; stops everything it starts.
"""
import json
import os
import random
import select
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from provision import api, dns_query, make_cert, pct  # noqa: E402

ZONE = "o-v1.mx.example"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def soa_serial(port, zone=ZONE):
    """The SOA serial a server answers for `zone` (None: no answer / not serving it)."""
    try:
        out = subprocess.run(["kdig", f"@127.0.0.1", "-p", str(port), "+short", "+time=1", "+retry=0", zone, "SOA"],
                             capture_output=True, text=True, timeout=5).stdout.split()
        return int(out[2]) if len(out) >= 3 else None
    except (subprocess.TimeoutExpired, ValueError):
        return None


def ask(f, *a):
    """A query that may time out while NSD reloads: (None, None) then (asked again at once)."""
    try:
        return f(*a)
    except OSError:
        LOST[0] += 1
        return None, None


LOST = [0]


def wait_signed_at(port, name, t_from, limit=60):
    """Sends a query (A, DO) every millisecond without waiting for answers (NSD drops what is
    in flight while it swaps in a reloaded zone) and returns when the first answer with the A
    RRset and its RRSIG arrives, as seconds since `t_from`; and how many queries went
    unanswered."""
    qname = b""
    for label in name.rstrip(".").split("."):
        qname += bytes([len(label)]) + label.encode()
    tail = qname + b"\x00" + struct.pack(">HH", 1, 1) + b"\x00" + struct.pack(">HHIH", 41, 1232, 0x8000, 0)
    sent, answered = 0, 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        s.connect(("127.0.0.1", port))
        while time.perf_counter() - t_from < limit:
            s.send(struct.pack(">HHHHHH", sent & 0xFFFF, 0x0100, 1, 0, 0, 1) + tail)
            sent += 1
            end = time.perf_counter() + 0.001
            while True:
                left = end - time.perf_counter()
                if left <= 0 or not select.select([s], [], [], left)[0]:
                    break
                try:
                    r = s.recv(4096)
                except BlockingIOError:
                    break
                answered += 1
                if len(r) > 12 and r[3] & 0x0F == 0 and struct.unpack(">H", r[6:8])[0] >= 2:
                    return time.perf_counter() - t_from, sent - answered
    raise SystemExit(f"{name} not served signed within {limit} s")


def wait_serial(port, serial, limit, what):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        s = soa_serial(port)
        if s is not None and (s - serial) % 2**32 < 2**31:
            return time.perf_counter() - t0
        time.sleep(0.02)
    raise SystemExit(f"timeout: {what} (serial {serial})")


class Proc:
    def __init__(self, args, log):
        self.log = open(log, "ab")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=self.log)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def nsd(work, name, port, primary_port, key=None, axfr_only=False):
    """A fresh NSD secondary of the partition zone in its own directory."""
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    keyref = key[0] if key else "NOKEY"
    conf = (f"server:\n\tip-address: 127.0.0.1@{port}\n\tusername: \"\"\n\tchroot: \"\"\n\tzonesdir: \"{d}\"\n"
            f"\tdatabase: \"\"\n\tzonelistfile: \"{d}/zone.list\"\n\txfrdfile: \"{d}/xfrd.state\"\n\txfrdir: \"{d}\"\n"
            f"\tpidfile: \"{d}/nsd.pid\"\n\tlogfile: \"{d}/nsd.log\"\n\tverbosity: 2\n\txfrd-reload-timeout: 0\n"
            f"\tserver-count: 1\n\tdo-ip6: no\nremote-control:\n\tcontrol-enable: no\n")
    if key:
        conf += f"key:\n\tname: \"{key[0]}\"\n\talgorithm: hmac-sha256\n\tsecret: \"{key[1]}\"\n"
    conf += (f"zone:\n\tname: \"{ZONE}\"\n\trequest-xfr: {'AXFR ' if axfr_only else ''}127.0.0.1@{primary_port} {keyref}\n"
             f"\tallow-notify: 127.0.0.1 {keyref}\n")
    open(os.path.join(d, "nsd.conf"), "w").write(conf)
    return Proc(["nsd", "-d", "-c", os.path.join(d, "nsd.conf")], os.path.join(d, "stderr.log"))


def transfers(log_path, key, since_line=0):
    """The primary's `zone transfer` lines for ZONE and `key` after line `since_line`."""
    out = []
    lines = open(log_path, errors="replace").read().splitlines()
    for line in lines[since_line:]:
        if "zone transfer zone=" + ZONE + "." not in line or f'key="{key}."' not in line:
            continue
        f = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
        out.append({k: f.get(k, "").strip('"') for k in ("kind", "from_serial", "serial", "records", "bytes", "ms")})
    return out, len(lines)


def main():
    binary, n, report = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    changes = int(os.environ.get("CHANGES", "300"))
    rounds = int(os.environ.get("ROUNDS", "3"))
    work = os.environ.get("WORK") or tempfile.mkdtemp(prefix="mxdns-xfr-")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data = os.path.join(work, "data")
    dns_port, api_port, nsd_port, knot_port = (free_port() for _ in range(4))
    procs = []
    try:
        conf = os.path.join(work, "mxdns.toml")
        open(conf, "w").write(
            f"axfr_allow = []\nfollow_interval_ms = 50\n[api]\ntenant_rate = 0\n"
            f"[[secondaries]]\nname = \"nsd1\"\naddress = \"127.0.0.1:{nsd_port}\"\ntsig = \"nsd1\"\n")
        mx = lambda *a, **kw: subprocess.run([binary, "--data-dir", data, "--config", conf, *a], check=True,
                                             capture_output=True, text=True, **kw).stdout
        mx("tsig", "new", "nsd1")
        secret = re.search(r"^secret: (\S+)", open(os.path.join(data, "tsig", "nsd1.key")).read(), re.M).group(1)
        log = os.path.join(work, "server.log")
        server = Proc([binary, "--data-dir", data, "--config", conf, "serve", "--dns-listen", f"127.0.0.1:{dns_port}",
                       "--api-listen", f"127.0.0.1:{api_port}"], log)
        procs.append(server)
        for _ in range(600):
            if soa_serial(dns_port) is not None:
                break
            time.sleep(0.1)
        # N domains through the import path, as bench/import.sh does
        tenant = json.loads(mx("tenant", "add", "bulk"))["tenantId"]
        cert = make_cert(work, "current")
        mx("partition", "certificates", "o-v1", "--current", cert)
        with open(os.path.join(work, "domains.txt"), "w") as f:
            for i in range(n):
                f.write(f"c{i}.example\n")
        t0 = time.perf_counter()
        mx("domain", "import", os.path.join(work, "domains.txt"), "--tenant", tenant, "--batch", "10000")
        last = f"c{n - 1}-example.{ZONE}"
        while not (lambda r: r[0] == 0 and r[1] >= 2)(dns_query(dns_port, last)):
            if time.perf_counter() - t0 > 1800:
                raise SystemExit("import not served")
            time.sleep(0.1)
        t_import = time.perf_counter() - t0
        primary_serial = soa_serial(dns_port)

        # 1. initial transfer to NSD (IXFR request, answered by the whole zone)
        sec = nsd(work, "nsd1", nsd_port, dns_port, key=("nsd1", secret))
        procs.append(sec)
        t_initial = wait_serial(nsd_port, primary_serial, 1800, "NSD's initial transfer")
        first, mark = transfers(log, "nsd1")

        # 2. C changes, each waited for at NSD
        admin = open(os.path.join(data, "admin-token")).read().strip()
        st, t = api(api_port, "POST", "/v1/tenants", admin, {"name": "latency"})
        assert st in (200, 201), t
        token = t["tokenId"] if "token" not in t else t["token"]
        doms = [f"l{i}.latency.example" for i in range(changes)]
        for d in doms:
            st, v = api(api_port, "POST", f"/v1/tenants/{t['tenantId']}/domains", admin, {"domain": d, "verified": True})
            assert st in (200, 201), v
        time.sleep(2)
        wait_serial(nsd_port, soa_serial(dns_port), 60, "NSD before the changes")
        _, mark = transfers(log, "nsd1")
        served_ms, call_ms = [], []
        LOST[0] = 0
        for d in doms:
            c0 = time.perf_counter()
            st, v = api(api_port, "POST", f"/v1/domains/{d}/dnssec/enable", token)
            c1 = time.perf_counter()
            assert st == 200, v
            host = v["dnssecMxValue"]
            took, unanswered = wait_signed_at(nsd_port, host, c1)
            LOST[0] += unanswered
            c2 = c1 + took
            call_ms.append((c1 - c0) * 1000)
            served_ms.append((c2 - c1) * 1000)
        lost = LOST[0]
        time.sleep(1)
        per_change, mark = transfers(log, "nsd1", mark)
        ixfr = [x for x in per_change if x["kind"] == "IXFR"]
        ixfr_bytes = [int(x["bytes"]) for x in ixfr]
        ixfr_records = [int(x["records"]) for x in ixfr]

        # 3. fleet certificate change, seen at NSD
        probe = f"_25._tcp.c0-example.{ZONE}"
        from provision import dns_answer
        _, before = dns_answer(nsd_port, probe, 52)
        cert2 = make_cert(work, "rotated")
        f0 = time.perf_counter()
        st, v = api(api_port, "PUT", "/v1/partitions/o-v1/certificates", admin, {"current": open(cert2).read()})
        f1 = time.perf_counter()
        assert st == 200, v
        while True:
            rcode, after = ask(dns_answer, nsd_port, probe, 52)
            if rcode == 0 and after != before:
                break
            if time.perf_counter() - f1 > 600:
                raise SystemExit("new TLSA not served by NSD")
        f2 = time.perf_counter()
        time.sleep(1)
        cert_xfr, mark = transfers(log, "nsd1", mark)
        sec.stop()
        procs.remove(sec)

        # 4. full AXFR: mxdns -> fresh NSD, Knot -> fresh NSD, interleaved
        zone_text = subprocess.run(["kdig", "@127.0.0.1", "-p", str(dns_port), "-y", f"hmac-sha256:nsd1:{secret}",
                                    "AXFR", ZONE, "+nocomments", "+nostats"], capture_output=True, text=True,
                                   check=True).stdout
        _, mark = transfers(log, "nsd1")
        lines = [l for l in zone_text.splitlines() if l and not l.startswith(";") and "\tTSIG\t" not in l]
        if len(lines) > 1 and "\tSOA\t" in lines[-1]:
            lines.pop()  # the closing SOA of the transfer
        zfile = os.path.join(work, "knot", f"{ZONE}.zone")
        os.makedirs(os.path.dirname(zfile), exist_ok=True)
        open(zfile, "w").write("\n".join(lines) + "\n")
        kd = os.path.dirname(zfile)
        open(os.path.join(kd, "knot.conf"), "w").write(
            f"server:\n  listen: 127.0.0.1@{knot_port}\n  rundir: {kd}\n  user: root\n  udp-workers: 1\n"
            f"  tcp-workers: 1\n  background-workers: 1\nlog:\n  - target: {kd}/knot.log\n    any: info\n"
            f"database:\n  storage: {kd}\nacl:\n  - id: xfr\n    address: 127.0.0.1\n    action: transfer\n"
            f"zone:\n  - domain: {ZONE}\n    file: {zfile}\n    acl: xfr\n    zonefile-sync: -1\n    journal-content: none\n"
            f"    semantic-checks: off\n")
        knot = Proc(["knotd", "-c", os.path.join(kd, "knot.conf")], os.path.join(kd, "stderr.log"))
        procs.append(knot)
        serial_now = soa_serial(dns_port)
        k0 = time.perf_counter()
        wait_serial(knot_port, serial_now, 1800, "Knot loading the zone")
        t_knot_load = time.perf_counter() - k0
        axfr = {"mxdns": [], "knot": []}
        for r in range(rounds):
            for who, port in (("mxdns", dns_port), ("knot", knot_port)):
                s = nsd(work, f"nsd-axfr-{who}-{r}", free_port(), port,
                        key=("nsd1", secret) if who == "mxdns" else None, axfr_only=True)
                # NSD's own port is taken from its config: ask it there
                p = int(re.search(r"@(\d+)", open(os.path.join(work, f"nsd-axfr-{who}-{r}", "nsd.conf")).read()).group(1))
                try:
                    axfr[who].append(wait_serial(p, serial_now, 1800, f"NSD AXFR from {who}"))
                finally:
                    s.stop()
        axfr_log, _ = transfers(log, "nsd1", mark)
        knot_log = open(os.path.join(kd, "knot.log"), errors="replace").read()
        knot_axfr = re.findall(r"AXFR, outgoing.*finished, ([0-9.]+) seconds, (\d+) messages, (\d+) bytes", knot_log)

        def ms(xs):
            return f"p50={statistics.median(xs):.1f} p99={pct(xs, 99):.1f} max={max(xs):.1f} ms"

        loadavg = open("/proc/loadavg").read().split()[:3]
        rows = [
            ("N hosts (domains imported with DNSSEC + DANE, `mxdns domain import`)", f"{n} (import until served signed at the primary: {t_import:.1f} s)"),
            ("initial transfer: NSD start (fresh) until it serves the primary's serial", f"{t_initial:.2f} s ({', '.join(x['kind'] + ' ' + x['bytes'] + ' bytes ' + x['records'] + ' records ' + x['ms'] + ' ms' for x in first)})"),
            (f"{changes} changes (Enable-DnssecForVerifiedDomain, one after another): API answer -> NSD serves the host signed", ms(served_ms)),
            ("... the API call itself", ms(call_ms)),
            ("... queries to NSD (one per ms during the wait) left unanswered (NSD drops them while it swaps in a reloaded zone)", f"{lost} in {changes} changes"),
            (f"... IXFRs to NSD for them ({len(ixfr)} transfers; other kinds: {len(per_change) - len(ixfr)})",
             f"bytes p50={statistics.median(ixfr_bytes) if ixfr_bytes else 0:.0f} max={max(ixfr_bytes, default=0)}; records p50={statistics.median(ixfr_records) if ixfr_records else 0:.0f} max={max(ixfr_records, default=0)}"),
            ("fleet certificate change: API answer -> NSD serves the new TLSA at an imported host", f"{(f2 - f1) * 1000:.1f} ms (call {(f1 - f0) * 1000:.1f} ms)"),
            ("... what it transferred", "; ".join(f"{x['kind']} {x['bytes']} bytes {x['records']} records" for x in cert_xfr) or "(no transfer line)"),
            (f"full AXFR of {ZONE} to a fresh NSD (`request-xfr: AXFR`), mxdns serving (TSIG), {rounds} rounds",
             ", ".join(f"{x:.2f}" for x in axfr["mxdns"]) + " s (NSD start -> serves the serial)"),
            ("... mxdns's own figures for those transfers", "; ".join(f"{x['ms']} ms {x['bytes']} bytes" for x in axfr_log if x['kind'] == 'AXFR')),
            (f"same, Knot DNS serving the same signed zone (no TSIG), {rounds} rounds",
             ", ".join(f"{x:.2f}" for x in axfr["knot"]) + f" s (Knot loading the zone file first: {t_knot_load:.1f} s)"),
            ("... Knot's own figures for those transfers", "; ".join(f"{float(s) * 1000:.0f} ms {b} bytes {m} messages" for s, m, b in knot_axfr)),
        ]
        with open(report, "w") as f:
            f.write(f"# Secondaries: mxdns as hidden primary of NSD (N = {n} hosts)\n\n")
            f.write(f"Generated by `bench/xfr.sh {n}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                    f"commit {os.environ.get('COMMIT', '?')}, {os.cpu_count()} CPUs, {os.environ.get('BUILD', 'release')} build, no pinning. "
                    f"The machine is shared with other builds (load average at the end: {' '.join(loadavg)}): "
                    f"absolute figures are noisy; the AXFR comparison is interleaved round by round.\n\n")
            f.write("| what | figure |\n|---|---|\n")
            for a, b in rows:
                f.write(f"| {a} | {b} |\n")
            f.write("\nThe latency loop polls NSD over UDP without pause after each API answer (one query per millisecond, answers not awaited; so it includes "
                    "NOTIFY, NSD's SOA check, the IXFR and NSD's reload with `xfrd-reload-timeout: 0`). "
                    "Transfer figures of mxdns are its `zone transfer` log lines (bytes on the wire, "
                    "records, server-side ms).\n")
        print(open(report).read())
    finally:
        for p in reversed(procs):
            p.stop()
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
