#!/usr/bin/env python3
"""Provisioning benchmark: API requests per second, and the time from an enable call's answer
to the signed answer being served.

Usage: bench/provision.py [--hosts-before N] [--domains M] [--clients C]
Starts a release mxdns on loopback with a fresh data directory (optionally pre-filled with N
synthetic hosts through `mxdns host bulk-add`), creates a tenant with M accepted domains, then
  1. sequentially: Enable-DnssecForVerifiedDomain for M/2 domains; after each answer, queries
     the host's A record (DO set) over UDP until a signed answer comes back; reports the median
     and 99th percentile of answer->served, and of the API call itself;
  2. concurrently (C clients): Enable-DnssecForVerifiedDomain for the other M/2 domains, then
     Enable-SmtpDaneInbound for all M; reports requests per second.
With --attach DATA DNS_PORT API_PORT it uses a server that is already running on that data
directory (bench/import.sh does this after importing N hosts), measures step 1 only, then a
fleet certificate change: from the API's answer until a host's TLSA (through its CNAME) is
served with the new certificate.
stdlib only; loopback only; stops the server it starts.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "mxdns")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port, method, path, token, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = json.dumps(body) if body is not None else None
    headers = {"Authorization": f"Bearer {token}"}
    if data:
        headers["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    out = json.loads(r.read() or b"null")
    c.close()
    return r.status, out


def dns_exchange(port, name, qtype):
    """One UDP query (EDNS 1232, DO set); returns the query and the response."""
    q = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 1)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", qtype, 1)
    q += b"\x00" + struct.pack(">HHIH", 41, 1232, 0x8000, 0)  # OPT with DO
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(q, ("127.0.0.1", port))
        r, _ = s.recvfrom(4096)
    return q, r


def dns_answer(port, name, qtype):
    """The rcode and the raw bytes after the header and question (for comparing answers)."""
    q, r = dns_exchange(port, name, qtype)
    return r[3] & 0x0F, r[len(q) - 11:]


def dns_query(port, name, qtype=1):
    """The rcode and the number of answer records."""
    _, r = dns_exchange(port, name, qtype)
    return r[3] & 0x0F, struct.unpack(">H", r[6:8])[0]


def make_cert(work, cn):
    """A self-signed P-256 end-entity certificate (PEM path) for a partition's fleet (not a CA:
    openssl's default for `req -x509` is CA:TRUE, which the API refuses for current/next)."""
    cert = os.path.join(work, f"{cn}.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", os.path.join(work, f"{cn}.key"), "-out", cert, "-days", "30", "-subj", f"/CN={cn}",
                    "-addext", "basicConstraints=critical,CA:FALSE"],
                   check=True, capture_output=True)
    return cert


def enable_one_by_one(api_port, dns_port, token, domains, tries):
    """Enable-DnssecForVerifiedDomain for each domain in turn; after each answer, queries the
    host's A record until a signed answer comes back. Returns the call times and the
    answer -> served times (ms)."""
    call_ms, served_ms = [], []
    for d in domains:
        t0 = time.perf_counter()
        st, v = api(api_port, "POST", f"/v1/domains/{d}/dnssec/enable", token)
        t1 = time.perf_counter()
        assert st == 200, v
        host = v["dnssecMxValue"]
        for _ in range(tries):
            rcode, an = dns_query(dns_port, host)
            if rcode == 0 and an >= 2:  # A + RRSIG
                break
        t2 = time.perf_counter()
        call_ms.append((t1 - t0) * 1000)
        served_ms.append((t2 - t1) * 1000)
    return call_ms, served_ms


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts-before", type=int, default=0)
    ap.add_argument("--domains", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--attach", nargs=3, metavar=("DATA", "DNS_PORT", "API_PORT"))
    ap.add_argument("--probe-host", default="_25._tcp.c0-example.o-v1.mx.example",
                    help="TLSA name watched during the fleet certificate change (--attach)")
    args = ap.parse_args()
    if args.attach:
        return attach(args)
    subprocess.run(["cargo", "build", "--release", "-p", "mxdns"], cwd=ROOT, check=True, capture_output=True)
    work = tempfile.mkdtemp(prefix="mxdns-provision-")
    data = os.path.join(work, "data")
    dns_port, api_port = free_port(), free_port()
    if args.hosts_before:
        subprocess.run([BIN, "--data-dir", data, "host", "bulk-add", "--count", str(args.hosts_before)], check=True, capture_output=True)
    env = dict(os.environ, MXDNS_LOG="warn")
    # the benchmark measures the provisioner, not the per-tenant rate limit: turn it off
    conf = os.path.join(work, "mxdns.toml")
    with open(conf, "w") as f:
        f.write("[api]\ntenant_rate = 0\n")
    srv = subprocess.Popen([BIN, "--data-dir", data, "--config", conf, "serve", "--dns-listen", f"127.0.0.1:{dns_port}",
                            "--api-listen", f"127.0.0.1:{api_port}"], env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(6000):
            try:
                if dns_query(dns_port, "o-v1.mx.example", 6)[1] > 0:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        admin = open(os.path.join(data, "admin-token")).read().strip()
        st, t = api(api_port, "POST", "/v1/tenants", admin, {"name": "bench"})
        tenant, token = t["tenantId"], t["token"]
        n = args.domains
        domains = [f"d{i}.bench.example" for i in range(n)]
        for d in domains:
            # the operator vouches for them (a tenant proves a domain by a TXT record)
            api(api_port, "POST", f"/v1/tenants/{tenant}/domains", admin, {"domain": d, "verified": True})
        # fleet certificate, for DANE
        cert = make_cert(work, "bench")
        st, _ = api(api_port, "PUT", "/v1/partitions/o-v1/certificates", admin, {"current": open(cert).read()})
        assert st == 200

        # 1. answer -> served, sequentially
        call_ms, served_ms = enable_one_by_one(api_port, dns_port, token, domains[: n // 2], 10000)

        # 2. throughput with C clients
        def run(paths):
            lock = threading.Lock()
            it = iter(paths)
            errors = []

            def worker():
                while True:
                    with lock:
                        p = next(it, None)
                    if p is None:
                        return
                    st, v = api(api_port, "POST", p, token)
                    if st != 200:
                        errors.append((p, st, v))
            ts = [threading.Thread(target=worker) for _ in range(args.clients)]
            t0 = time.perf_counter()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            el = time.perf_counter() - t0
            assert not errors, errors[:3]
            return len(paths) / el
        rps_dnssec = run([f"/v1/domains/{d}/dnssec/enable" for d in domains[n // 2:]])
        rps_dane = run([f"/v1/domains/{d}/smtp-dane/enable" for d in domains])
        print(f"hosts_before={args.hosts_before} domains={n} clients={args.clients}")
        print(f"enable_dnssec_call_ms p50={statistics.median(call_ms):.2f} p99={pct(call_ms, 99):.2f}")
        print(f"answer_to_signed_answer_ms p50={statistics.median(served_ms):.2f} p99={pct(served_ms, 99):.2f} max={max(served_ms):.2f}")
        print(f"enable_dnssec_requests_per_s={rps_dnssec:.0f} enable_dane_requests_per_s={rps_dane:.0f}")
    finally:
        srv.terminate()
        srv.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def attach(args):
    data, dns_port, api_port = args.attach[0], int(args.attach[1]), int(args.attach[2])
    work = tempfile.mkdtemp(prefix="mxdns-provision-")
    try:
        admin = open(os.path.join(data, "admin-token")).read().strip()
        st, t = api(api_port, "POST", "/v1/tenants", admin, {"name": f"latency{random.randrange(10**9)}"})
        assert st in (200, 201), t
        tenant, token = t["tenantId"], t["token"]
        n = args.domains
        tag = random.randrange(16**6)
        domains = [f"l{i}-{tag:06x}.latency.example" for i in range(n)]
        for d in domains:
            api(api_port, "POST", f"/v1/tenants/{tenant}/domains", admin, {"domain": d, "verified": True})
        call_ms, served_ms = enable_one_by_one(api_port, dns_port, token, domains, 100000)
        print(f"domains={n} (sequential, on a server already holding the imported hosts)")
        print(f"enable_dnssec_call_ms p50={statistics.median(call_ms):.2f} p99={pct(call_ms, 99):.2f}")
        print(f"answer_to_signed_answer_ms p50={statistics.median(served_ms):.2f} p99={pct(served_ms, 99):.2f} max={max(served_ms):.2f}")
        # fleet certificate change, seen at an imported host (CNAME to the partition's TLSA)
        probe = args.probe_host
        _, before = dns_answer(dns_port, probe, 52)
        cert = make_cert(work, "rotated")
        t0 = time.perf_counter()
        st, v = api(api_port, "PUT", "/v1/partitions/o-v1/certificates", admin, {"current": open(cert).read()})
        t1 = time.perf_counter()
        assert st == 200, v
        for _ in range(1000000):
            rcode, after = dns_answer(dns_port, probe, 52)
            if rcode == 0 and after != before:
                break
        t2 = time.perf_counter()
        print(f"fleet_certificate_change call_ms={(t1 - t0) * 1000:.1f} answer_to_new_tlsa_served_ms={(t2 - t1) * 1000:.1f} (probe {probe})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
