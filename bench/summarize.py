#!/usr/bin/env python3
"""Summarize the dnsperf outputs written by run.sh: medians per server plus the raw runs.

Adapted from /work/shared/bench/summarize.py (anchor benchmark): same parsing and the same
"clean run" rule; adds per-server load time and memory from run.sh's servers.txt.

Usage: summarize.py RESULTS_DIR [--servers SERVERS_TXT]   (prints Markdown to stdout)
SERVERS_TXT lines: "server=NAME key=value ..." (start_to_signed_s, load_cpu_s, rss_load_mib,
hwm_load_mib, rss_end_mib, hwm_end_mib).
"""
import argparse
import glob
import os
import re
import statistics

ORDER = ["knot-auto", "nsd", "mxdns"]


def parse(path):
    t = open(path).read()

    def f(pat, cast=float):
        m = re.search(pat, t)
        return cast(m.group(1)) if m else None
    d = {
        "sent": f(r"Queries sent:\s+(\d+)", int),
        "completed": f(r"Queries completed:\s+(\d+)", int),
        "lost": f(r"Queries lost:\s+(\d+)", int),
        "qps": f(r"Queries per second:\s+([\d.]+)"),
        "lat_ms": f(r"Average Latency \(s\):\s+([\d.]+)"),
        "lat_sd_ms": f(r"Latency StdDev \(s\):\s+([\d.]+)"),
        "resp_size": f(r"response (\d+)", int),
        "srv_cpu": f(r"server_cpu_pct=([\d.]+)"),
        "core0": f(r"core0_busy_pct=([\d.]+)"),
        "core1": f(r"core1_busy_pct=([\d.]+)"),
        "rcvbuf_err": f(r"udp_rcvbuf_errors=(-?\d+)", int),
        "mem": (re.search(r"server_mem_after_run: (.*)", t) or [None, ""])[1],
        "rcodes": (re.search(r"Response codes:\s+(.*)", t) or [None, ""])[1],
    }
    m = re.search(r"dnsperf_cpu_s=([\d.]+)\+([\d.]+) wall_s=([\d.]+)", t)
    d["client_cpu"] = 100 * (float(m.group(1)) + float(m.group(2))) / float(m.group(3)) if m else None
    run_s = f(r"Run time \(s\):\s+([\d.]+)")
    wall = f(r"measured_wall_s=([\d.]+)")
    # other load on each core (other processes on the shared VM) over the whole window
    d["other0"] = d["core0"] - d["srv_cpu"] if d["core0"] is not None and d["srv_cpu"] is not None else None
    d["other1"] = d["core1"] - d["client_cpu"] if d["core1"] is not None and d["client_cpu"] is not None else None
    # server CPU while dnsperf was sending (the window also holds dnsperf's timeout wait)
    if d["srv_cpu"] is not None and run_s and wall:
        d["srv_cpu"] = min(100.0, d["srv_cpu"] * wall / run_s)
    for k in ("lat_ms", "lat_sd_ms"):
        if d[k] is not None:
            d[k] *= 1000
    m = re.search(r"server=(\S+)", t)
    d["server"] = m.group(1) if m else os.path.basename(path).rsplit("-r", 1)[0]
    m = re.search(r"round=(\d+)", t)
    d["round"] = int(m.group(1)) if m else 0
    return d


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def read_servers(path):
    out = {}
    if path and os.path.exists(path):
        for line in open(path):
            kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
            if "server" in kv:
                out.setdefault(kv["server"], {}).update(kv)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--servers")
    args = ap.parse_args()
    runs = [parse(p) for p in sorted(glob.glob(os.path.join(args.results, "*-r*.txt")))]
    meta = read_servers(args.servers)
    for r in runs:
        r["clean"] = (r["other0"] is not None and r["other0"] < 5 and
                      r["other1"] is not None and r["other1"] < 10)
    names = {r["server"] for r in runs} | set(meta)
    servers = [s for s in ORDER if s in names] + sorted(names - set(ORDER))
    print("Medians over the clean runs (other load < 5 % on the server core and < 10 % on the client core);")
    print("all runs are used when fewer than 2 are clean. QPS per server core = median QPS / (server CPU % / 100).")
    print()
    print("| server | runs (clean/all) | median QPS | median avg latency (ms) | median lost | server CPU % "
          "| dnsperf CPU % | QPS per server core | start → signed answers (s) | CPU s to load | "
          "RSS after load (MiB) | RSS after runs (MiB) | peak RSS (VmHWM, MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in servers:
        alls = [r for r in runs if r["server"] == s]
        rs = [r for r in alls if r["clean"]]
        nclean = len(rs)
        if len(rs) < 2:
            rs = alls
        q = med([r["qps"] for r in rs])
        cpu = med([r["srv_cpu"] for r in rs])
        per_core = q / (cpu / 100) if q and cpu else None
        m = meta.get(s, {})
        print(f"| {s} | {nclean}/{len(alls)} | {fmt(q, ',.0f')} | {fmt(med([r['lat_ms'] for r in rs]), '.3f')} | "
              f"{fmt(med([r['lost'] for r in rs]), ',.0f')} | {fmt(cpu, '.0f')} | "
              f"{fmt(med([r['client_cpu'] for r in rs]), '.0f')} | {fmt(per_core, ',.0f')} | "
              f"{m.get('start_to_signed_s', '-')} | {m.get('load_cpu_s', '-')} | {m.get('rss_load_mib', '-')} | "
              f"{m.get('rss_end_mib', '-')} | {m.get('hwm_end_mib', m.get('hwm_load_mib', '-'))} |")
    print()
    print("Raw runs (in run order; \"other load\" = core busy % minus the server's (core 0) or dnsperf's "
          "(core 1) own CPU %, over the whole run window):")
    print()
    print("| server | round | sent | completed | lost | QPS | avg lat ms | lat sd ms | resp bytes | srv CPU % "
          "| other load core0 % | dnsperf CPU % | other load core1 % | clean | UDP rcvbuf errs | server mem after run | rcodes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(runs, key=lambda r: (r["round"], ORDER.index(r["server"]) if r["server"] in ORDER else 99)):
        def g(k, spec=""):
            return fmt(r[k], spec)
        print(f"| {r['server']} | {r['round']} | {g('sent')} | {g('completed')} | {g('lost')} | {g('qps', ',.0f')} | "
              f"{g('lat_ms', '.3f')} | {g('lat_sd_ms', '.3f')} | {g('resp_size')} | {g('srv_cpu', '.0f')} | "
              f"{g('other0', '.0f')} | {g('client_cpu', '.0f')} | {g('other1', '.0f')} | "
              f"{'yes' if r['clean'] else 'no'} | {g('rcvbuf_err')} | {r['mem']} | {r['rcodes']} |")


if __name__ == "__main__":
    main()
