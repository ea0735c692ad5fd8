#!/usr/bin/python3
"""Plot QPS per server core and memory against zone size from run.sh's raw outputs.

Usage: plot.py OUT.png RESULTS_DIR...   (each RESULTS_DIR is bench/results/n<N> with the
dnsperf outputs and servers.txt); also prints a Markdown table. Needs matplotlib
(Debian: python3-matplotlib, hence /usr/bin/python3).
"""
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import summarize  # noqa: E402


def medians(d):
    runs = [summarize.parse(p) for p in sorted(glob.glob(os.path.join(d, "*-r*.txt")))]
    meta = summarize.read_servers(os.path.join(d, "servers.txt"))
    out = {}
    for s in {r["server"] for r in runs} | set(meta):
        rs = [r for r in runs if r["server"] == s]
        clean = [r for r in rs if r["other0"] is not None and r["other0"] < 5
                 and r["other1"] is not None and r["other1"] < 10]
        use = clean if len(clean) >= 2 else rs
        q = summarize.med([r["qps"] for r in use])
        cpu = summarize.med([r["srv_cpu"] for r in use])
        m = meta.get(s, {})
        out[s] = {
            "qps": q,
            "per_core": q / (cpu / 100) if q and cpu else None,
            "lat": summarize.med([r["lat_ms"] for r in use]),
            "rss": float(m["rss_load_mib"]) if "rss_load_mib" in m else None,
            "start": float(m["start_to_signed_s"]) if "start_to_signed_s" in m else None,
        }
    return out


def main():
    png, dirs = sys.argv[1], sys.argv[2:]
    data = {}
    for d in dirs:
        n = int(re.search(r"n(\d+)", os.path.basename(d.rstrip("/"))).group(1))
        data[n] = medians(d)
    sizes = sorted(data)
    servers = [s for s in summarize.ORDER if any(s in data[n] for n in sizes)]
    print("| hosts | server | median QPS | QPS per server core | avg latency (ms) | start → signed (s) | RSS after load (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        for s in servers:
            v = data[n].get(s)
            if not v:
                continue
            print(f"| {n:,} | {s} | {summarize.fmt(v['qps'], ',.0f')} | {summarize.fmt(v['per_core'], ',.0f')} | "
                  f"{summarize.fmt(v['lat'], '.2f')} | {summarize.fmt(v['start'], '.1f')} | {summarize.fmt(v['rss'], '.0f')} |")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    color = {"knot-auto": "C0", "nsd": "C1", "mxdns": "C2"}
    for s in servers:
        xs = [n for n in sizes if data[n].get(s)]
        a.plot(xs, [data[n][s]["per_core"] for n in xs], marker="o", label=s, color=color.get(s))
        # runs before run.sh measured the whole process tree hold NSD's first process only
        # (xfrd, ~11 MiB): leave such figures out of the memory panel
        ms = [n for n in xs if data[n][s]["rss"] and not (s == "nsd" and data[n][s]["rss"] < 64)]
        if ms:
            b.plot(ms, [data[n][s]["rss"] for n in ms], marker="o", label=s, color=color.get(s))
    for ax, title, unit in ((a, "QPS per server core (shared mix, DO)", "queries/s"),
                            (b, "Resident memory after load", "MiB")):
        ax.set_xscale("log")
        ax.set_xlabel("tenant hosts in the zone")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main()
