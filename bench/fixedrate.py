#!/usr/bin/env python3
"""Fixed-rate phase of run.sh: server CPU time per query, average and 99th-percentile latency.

  fixedrate.py --latencies DNSPERF_V_OUTPUT   # prints lat_* figures from dnsperf -v's "> RCODE name type secs" lines
  fixedrate.py --one FIXED_FILE               # one line for the console
  fixedrate.py --table RESULTS_DIR            # Markdown table over RESULTS_DIR/fixed-<server>-q<round>.txt

At a fixed rate well below the client's ceiling the server is not saturated, so QPS says nothing;
what it costs is its CPU time per answered query (utime + stime of its whole process tree over the
run window, divided by the queries dnsperf completed), which on a shared VM is steadier than QPS at
saturation. stdlib only.
"""
import glob
import os
import re
import statistics
import sys

ORDER = ["knot-auto", "nsd", "mxdns"]


def latencies(path):
    lat = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("> "):
                try:
                    lat.append(float(line.rsplit(None, 1)[1]))
                except (ValueError, IndexError):
                    pass
    if not lat:
        print("lat_answers=0")
        return
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000
    print(f"lat_answers={len(lat)} lat_avg_ms={1000 * sum(lat) / len(lat):.4f} lat_p50_ms={pct(50):.4f} "
          f"lat_p99_ms={pct(99):.4f} lat_p999_ms={pct(99.9):.4f} lat_max_ms={lat[-1] * 1000:.4f}")


def parse(path):
    t = open(path).read()

    def f(pat, cast=float):
        m = re.search(pat, t)
        return cast(m.group(1)) if m else None
    d = {
        "server": f(r"server=(\S+)", str),
        "round": f(r"fixed_round=(\d+)", int),
        "target": f(r"qps_target=(\d+)", int),
        "completed": f(r"Queries completed:\s+(\d+)", int),
        "lost": f(r"Queries lost:\s+(\d+)", int),
        "qps": f(r"Queries per second:\s+([\d.]+)"),
        "ticks": f(r"server_cpu_ticks=(\d+)", int),
        "hz": f(r"hz=(\d+)", int),
        "srv_cpu": f(r"server_cpu_pct=([\d.]+)"),
        "core0": f(r"core0_busy_pct=([\d.]+)"),
        "core1": f(r"core1_busy_pct=([\d.]+)"),
        "avg": f(r"lat_avg_ms=([\d.]+)"),
        "p50": f(r"lat_p50_ms=([\d.]+)"),
        "p99": f(r"lat_p99_ms=([\d.]+)"),
        "max": f(r"lat_max_ms=([\d.]+)"),
    }
    m = re.search(r"dnsperf_cpu_s=([\d.]+)\+([\d.]+) wall_s=([\d.]+)", t)
    d["client_cpu"] = 100 * (float(m.group(1)) + float(m.group(2))) / float(m.group(3)) if m else None
    d["us_per_q"] = (1e6 * d["ticks"] / d["hz"] / d["completed"]
                     if d["ticks"] is not None and d["hz"] and d["completed"] else None)
    d["other0"] = d["core0"] - d["srv_cpu"] if d["core0"] is not None and d["srv_cpu"] is not None else None
    return d


def fmt(x, spec):
    return "–" if x is None else format(x, spec)


def table(d):
    runs = [parse(p) for p in sorted(glob.glob(os.path.join(d, "fixed-*-q*.txt")))]
    servers = [s for s in ORDER if any(r["server"] == s for r in runs)]
    servers += sorted({r["server"] for r in runs} - set(servers))
    med = {}
    print("| server | rounds | achieved QPS | server CPU % | server CPU µs/query (median, min–max) | avg latency ms | p99 latency ms | lost | other load core0 % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in servers:
        rs = [r for r in runs if r["server"] == s]

        def m(k):
            xs = [r[k] for r in rs if r[k] is not None]
            return statistics.median(xs) if xs else None
        us = [r["us_per_q"] for r in rs if r["us_per_q"] is not None]
        med[s] = {k: m(k) for k in ("us_per_q", "avg", "p99")}
        print(f"| {s} | {len(rs)} | {fmt(m('qps'), ',.0f')} | {fmt(m('srv_cpu'), '.1f')} | "
              f"{fmt(m('us_per_q'), '.2f')} ({fmt(min(us) if us else None, '.2f')}–{fmt(max(us) if us else None, '.2f')}) | "
              f"{fmt(m('avg'), '.3f')} | {fmt(m('p99'), '.3f')} | {fmt(m('lost'), '.0f')} | {fmt(m('other0'), '.1f')} |")
    if "mxdns" in med:
        print()
        for o in ("knot-auto", "nsd"):
            if o in med and med[o]["us_per_q"] and med["mxdns"]["us_per_q"]:
                a, b = med["mxdns"], med[o]
                print(f"- mxdns / {o}: CPU per query {a['us_per_q'] / b['us_per_q']:.2f}×, "
                      f"avg latency {a['avg'] / b['avg']:.2f}×, p99 latency {a['p99'] / b['p99']:.2f}× "
                      f"(below 1: mxdns cheaper / faster).")
        print()
        print("CPU µs/query: utime + stime of the server's process tree over the run window / queries completed;"
              " latencies from dnsperf -v's per-query times. Shared VM: other helpers' builds ran beside the benchmark.")


def main():
    if sys.argv[1] == "--latencies":
        latencies(sys.argv[2])
    elif sys.argv[1] == "--one":
        r = parse(sys.argv[2])
        print(f"{r['server']} fixed round {r['round']}: qps={fmt(r['qps'], '.0f')} cpu_us_per_query={fmt(r['us_per_q'], '.2f')} "
              f"avg_ms={fmt(r['avg'], '.3f')} p99_ms={fmt(r['p99'], '.3f')} lost={r['lost']} other0={fmt(r['other0'], '.1f')}%")
    elif sys.argv[1] == "--table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
