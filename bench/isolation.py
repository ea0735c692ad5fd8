#!/usr/bin/env python3
"""Load drivers and the summary of bench/isolation.sh (control plane load beside DNS).

  isolation.py import API_PORT ADMIN TENANT FILE OUT
      POST /v1/import of every domain in FILE for TENANT (DNSSEC + DANE); writes the status,
      the answer and the seconds it took to OUT (JSON). The API answers once the whole import
      is served.
  isolation.py enables API_PORT DNS_PORT TOKEN DOMAINS_FILE OUT --until FILE|--seconds S
      Another tenant's Enable-DnssecForVerifiedDomain, one call every --every s (0.25), until
      FILE exists or S seconds passed; each call timed, and whether its host was served signed
      on the first DNS query after the answer; GET /v1/health once a second beside it. Writes
      JSON lines to OUT.
  isolation.py flood API_PORT SECONDS OUT [--clients 8]
      CLIENTS processes sending Enable-DnssecForVerifiedDomain with made-up tokens as fast as
      they can (keep-alive connections) for SECONDS; writes the counts to OUT (JSON).
  isolation.py dnsperf FILE
      Figures of one `dnsperf -v` output: sent, lost, latency average / p50 / p99 / p99.9 / max.
  isolation.py report WORK
      The Markdown tables of a run (WORK as isolation.sh leaves it).

stdlib only; loopback only.
"""
import http.client
import json
import multiprocessing
import os
import random
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from provision import api, dns_query, pct  # noqa: E402


def cmd_import(port, admin, tenant, path, out):
    text = open(path).read()
    body = json.dumps({"domains": text, "tenant": tenant}).encode()
    t0 = time.time()
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=7200)
    c.request("POST", "/v1/import", body=body,
              headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    r = c.getresponse()
    answer = json.loads(r.read() or b"null")
    t1 = time.time()
    json.dump({"status": r.status, "answer": answer, "started": t0, "seconds": t1 - t0}, open(out, "w"))


def health_sampler(port, stop, rows):
    while not stop.is_set():
        t = time.time()
        try:
            c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
            c.request("GET", "/v1/health")
            r = c.getresponse()
            v = json.loads(r.read())
            c.close()
            rows.append({"kind": "health", "t": t, "status": r.status, "ms": (time.time() - t) * 1000,
                         "behind": v["follower"]["behindEntries"], "behind_s": v["follower"]["behindSeconds"],
                         "longest_hold_ms": v["zoneManager"]["recentLongestHoldMs"], "problems": v["problems"]})
        except Exception as e:  # noqa: BLE001 (a failed probe is a figure too)
            rows.append({"kind": "health", "t": t, "status": 0, "error": str(e)})
        stop.wait(1.0)


def cmd_enables(port, dns_port, token, domains_file, out, until=None, seconds=None, every=0.25):
    domains = [d.strip() for d in open(domains_file) if d.strip()]
    rows = []
    stop = threading.Event()
    sampler = threading.Thread(target=health_sampler, args=(port, stop, rows))
    sampler.start()
    t_end = time.time() + float(seconds) if seconds else None
    try:
        for d in domains:
            if until and os.path.exists(until):
                break
            if t_end and time.time() >= t_end:
                break
            t0 = time.time()
            st, v = api(int(port), "POST", f"/v1/domains/{d}/dnssec/enable", token)
            t1 = time.time()
            served = None
            if st == 200:
                rcode, an = dns_query(int(dns_port), v["dnssecMxValue"])
                served = rcode == 0 and an >= 2
            rows.append({"kind": "enable", "t": t0, "status": st, "ms": (t1 - t0) * 1000, "served": served})
            time.sleep(max(0.0, every - (time.time() - t0)))
        else:
            print("enables: ran out of domains", file=sys.stderr)
    finally:
        stop.set()
        sampler.join()
        with open(out, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


def flood_worker(port, seconds, q):
    n, statuses, errors = 0, {}, 0
    t_end = time.time() + seconds
    c = None
    while time.time() < t_end:
        try:
            if c is None:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            token = "%064x" % random.getrandbits(256)
            c.request("POST", f"/v1/domains/d{random.randrange(10**6)}.example/dnssec/enable",
                      headers={"Authorization": f"Bearer {token}", "Content-Length": "0"})
            r = c.getresponse()
            r.read()
            statuses[r.status] = statuses.get(r.status, 0) + 1
            n += 1
            if r.getheader("Connection", "").lower() == "close":
                c.close()
                c = None
        except Exception:  # noqa: BLE001 (counted; reconnect)
            errors += 1
            c = None
    q.put((n, statuses, errors))


def cmd_flood(port, seconds, out, clients=8):
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=flood_worker, args=(int(port), float(seconds), q)) for _ in range(clients)]
    t0 = time.time()
    for p in ps:
        p.start()
    results = [q.get() for _ in ps]
    for p in ps:
        p.join()
    el = time.time() - t0
    total = sum(r[0] for r in results)
    statuses = {}
    for r in results:
        for k, v in r[1].items():
            statuses[str(k)] = statuses.get(str(k), 0) + v
    json.dump({"clients": clients, "seconds": el, "requests": total, "per_second": total / el,
               "statuses": statuses, "errors": sum(r[2] for r in results)}, open(out, "w"))


def dnsperf_figures(path):
    text = open(path, errors="replace").read()
    lat = []
    for line in text.splitlines():
        if line.startswith("> "):
            try:
                lat.append(float(line.rsplit(" ", 1)[1]) * 1000)
            except ValueError:
                pass

    def num(label):
        m = re.search(label + r":\s+([\d.]+)", text)
        return float(m.group(1)) if m else None
    lat.sort()
    return {
        "sent": int(num("Queries sent") or 0),
        "completed": int(num("Queries completed") or 0),
        "lost": int(num("Queries lost") or 0),
        "qps": num("Queries per second"),
        "avg_ms": sum(lat) / len(lat) if lat else None,
        "p50_ms": pct(lat, 50) if lat else None,
        "p99_ms": pct(lat, 99) if lat else None,
        "p999_ms": pct(lat, 99.9) if lat else None,
        "max_ms": lat[-1] if lat else None,
        "over_10ms": sum(1 for x in lat if x > 10),
    }


def fmt(x, nd=3):
    return "–" if x is None else f"{x:.{nd}f}"


def phase_row(name, files):
    figs = [dnsperf_figures(f) for f in files]
    sent = sum(f["sent"] for f in figs)
    lost = sum(f["lost"] for f in figs)
    done = sum(f["completed"] for f in figs)
    avg = sum((f["avg_ms"] or 0) * f["completed"] for f in figs) / done if done else None
    p99 = max((f["p99_ms"] or 0) for f in figs) if figs else None
    p999 = max((f["p999_ms"] or 0) for f in figs) if figs else None
    mx = max((f["max_ms"] or 0) for f in figs) if figs else None
    over = sum(f["over_10ms"] for f in figs)
    return (f"| {name} | {len(files)} | {sent} | {lost} | {fmt(avg)} | {fmt(p99)} | {fmt(p999)} | {fmt(mx, 2)} | {over} |",
            {"avg": avg, "max": mx, "lost": lost})


def long_holds(work, phase):
    """Zone-manager holds the server logged (>= 250 ms) between the phase's marks."""
    marks = {}
    p = os.path.join(work, "marks.txt")
    if os.path.exists(p):
        for line in open(p):
            k, v = line.split()
            marks[k] = int(v)
    a, b = marks.get(f"{phase}-start"), marks.get(f"{phase}-end")
    if a is None or b is None:
        return None
    lines = open(os.path.join(work, "server.log"), errors="replace").read().splitlines()[a:b]
    holds = []
    for l in lines:
        if "long hold of the zone manager" in l:
            m = re.search(r"ms=(\d+) what=\"([^\"]*)\"", l)
            if m:
                holds.append((int(m.group(1)), m.group(2)))
    return holds


def enable_summary(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    en = [r for r in rows if r["kind"] == "enable"]
    hl = [r for r in rows if r["kind"] == "health"]
    ms = sorted(r["ms"] for r in en)
    ok = [r for r in en if r["status"] == 200]
    out = {
        "calls": len(en), "ok": len(ok),
        "p50": pct(ms, 50) if ms else None, "p99": pct(ms, 99) if ms else None,
        "max": ms[-1] if ms else None, "over_1s": sum(1 for x in ms if x > 1000),
        "served_first_query": sum(1 for r in ok if r["served"]),
        "health": len(hl), "health_503": sum(1 for r in hl if r["status"] == 503),
        "health_failed": sum(1 for r in hl if r["status"] == 0),
        "health_max_ms": max((r.get("ms", 0) for r in hl), default=None),
        "max_behind": max((r.get("behind", 0) for r in hl), default=None),
        "max_behind_s": max((r.get("behind_s", 0) for r in hl), default=None),
        "longest_hold_ms": max((r.get("longest_hold_ms", 0) for r in hl), default=None),
        "problems": sorted({p for r in hl for p in r.get("problems", [])})[:5],
    }
    return out


def cmd_report(work):
    def files(prefix):
        return sorted(os.path.join(work, f) for f in os.listdir(work) if f.startswith(prefix) and f.endswith(".txt"))
    print("| phase | dnsperf runs | queries sent | lost | avg ms | p99 ms (worst run) | p99.9 ms (worst run) | max ms | answers > 10 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = {}
    for name, prefix in [("idle (before)", "dnsperf-idle-before"), ("(b) 8 clients, made-up tokens", "dnsperf-flood"),
                         ("(a) 1M import via POST /v1/import", "dnsperf-import"), ("idle (after the import)", "dnsperf-idle-after")]:
        fs = files(prefix)
        if fs:
            line, r = phase_row(name, fs)
            rows[prefix] = r
            print(line)
    print()
    print("| during | Enable-DnssecForVerifiedDomain calls (other tenant) | 200 | p50 ms | p99 ms | max ms | > 1 s | served on the first query after the answer | GET /v1/health: samples / 503 / failed / slowest ms | follower behind at most (entries / s) | zone-manager holds >= 250 ms (count, longest ms) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, f, phase in [("(b) made-up tokens", "enables-flood.jsonl", "flood"), ("(a) the import", "enables-import.jsonl", "import")]:
        p = os.path.join(work, f)
        if os.path.exists(p):
            e = enable_summary(p)
            h = long_holds(work, phase)
            holds = "–" if h is None else (f"{len(h)}, longest {max(h)[0]} ({max(h)[1]})" if h else "0")
            print(f"| {name} | {e['calls']} | {e['ok']} | {fmt(e['p50'], 1)} | {fmt(e['p99'], 1)} | {fmt(e['max'], 1)} | {e['over_1s']} | {e['served_first_query']} | {e['health']} / {e['health_503']} / {e['health_failed']} / {fmt(e['health_max_ms'], 1)} | {e['max_behind']} / {e['max_behind_s']} | {holds} |")
            if e["problems"]:
                print(f"\nHealth problems seen during {name}: {'; '.join(e['problems'])}\n")
    print()
    fl = os.path.join(work, "flood.json")
    if os.path.exists(fl):
        v = json.load(open(fl))
        print(f"Made-up token clients: {v['clients']} processes, {v['requests']} requests in {v['seconds']:.1f} s "
              f"({v['per_second']:.0f}/s), statuses {v['statuses']}, connection errors {v['errors']}.")
    im = os.path.join(work, "import.json")
    if os.path.exists(im):
        v = json.load(open(im))
        print(f"\nImport: HTTP {v['status']} after {v['seconds']:.1f} s (the API answers once every imported domain is served): "
              f"`{json.dumps(v['answer'].get('import') if isinstance(v['answer'], dict) else v['answer'])}`.")


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__)
        return 2
    cmd = a[0]
    if cmd == "import":
        cmd_import(*a[1:6])
    elif cmd == "enables":
        kw = {}
        rest = a[6:]
        while rest:
            k, v, rest = rest[0], rest[1], rest[2:]
            kw[k.lstrip("-")] = v if k != "--every" else float(v)
        cmd_enables(*a[1:6], **kw)
    elif cmd == "flood":
        clients = int(a[5]) if len(a) > 5 and a[4] == "--clients" else 8
        cmd_flood(a[1], a[2], a[3], clients)
    elif cmd == "dnsperf":
        print(json.dumps(dnsperf_figures(a[1])))
    elif cmd == "report":
        cmd_report(a[1])
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
