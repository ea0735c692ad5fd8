#!/usr/bin/python3
"""Plot QPS per server core and memory against zone size from run.sh's raw outputs.

Usage: plot.py OUT.png RESULTS_DIR...   (each RESULTS_DIR is bench/results/n<N> with the
dnsperf outputs and servers.txt); also prints a Markdown table. Needs matplotlib
(Debian: python3-matplotlib, hence /usr/bin/python3). Directories with NXDOMAIN flood outputs
(flood-<server>.txt, run.sh's flood phase) add flood columns and dashed lines; older directories
without them are shown as before.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import summarize  # noqa: E402
import fixedrate  # noqa: E402


def medians(d):
    runs = [summarize.parse(p) for p in summarize.mix_files(d)]
    floods = {r["server"]: r for r in (summarize.parse(p) for p in summarize.flood_files(d))}
    meta = summarize.read_servers(os.path.join(d, "servers.txt"))
    import glob
    import statistics
    fixed = [fixedrate.parse(p) for p in glob.glob(os.path.join(d, "fixed-*-q*.txt"))]

    def fmed(s, k):
        xs = [r[k] for r in fixed if r["server"] == s and r[k] is not None]
        return statistics.median(xs) if xs else None
    out = {}
    for s in {r["server"] for r in runs} | set(meta):
        mm = summarize.mix_medians(runs, s)
        m = meta.get(s, {})
        fl = summarize.flood_figures(floods[s]) if s in floods else {}
        out[s] = {
            "qps": mm["qps"],
            "per_core": mm["per_core"],
            "lat": mm["lat"],
            "rss": float(m["rss_load_mib"]) if "rss_load_mib" in m else None,
            "start": float(m["start_to_signed_s"]) if "start_to_signed_s" in m else None,
            "flood_per_core": fl.get("per_core"),
            "flood_growth": fl.get("growth"),
            "fixed_us": fmed(s, "us_per_q"),
            "fixed_avg": fmed(s, "avg"),
            "fixed_p99": fmed(s, "p99"),
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
    flood = any(v.get("flood_per_core") is not None for n in sizes for v in data[n].values())
    fixed = any(v.get("fixed_us") is not None for n in sizes for v in data[n].values())
    print("| hosts | server | median QPS | QPS per server core | avg latency (ms) | start → signed (s) | RSS after load (MiB) |"
          + (" NXDOMAIN flood QPS per core | flood RSS growth (MiB) |" if flood else "")
          + (" fixed rate: CPU µs/query | avg ms | p99 ms |" if fixed else ""))
    print("|---|---|---|---|---|---|---|" + ("---|---|" if flood else "") + ("---|---|---|" if fixed else ""))
    for n in sizes:
        for s in servers:
            v = data[n].get(s)
            if not v:
                continue
            print(f"| {n:,} | {s} | {summarize.fmt(v['qps'], ',.0f')} | {summarize.fmt(v['per_core'], ',.0f')} | "
                  f"{summarize.fmt(v['lat'], '.2f')} | {summarize.fmt(v['start'], '.1f')} | {summarize.fmt(v['rss'], '.0f')} |"
                  + (f" {summarize.fmt(v['flood_per_core'], ',.0f')} | {summarize.fmt(v['flood_growth'], '+.1f')} |"
                     if flood else "")
                  + (f" {summarize.fmt(v['fixed_us'], '.2f')} | {summarize.fmt(v['fixed_avg'], '.3f')} | "
                     f"{summarize.fmt(v['fixed_p99'], '.3f')} |" if fixed else ""))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    color = {"knot-auto": "C0", "nsd": "C1", "mxdns": "C2"}
    for s in servers:
        xs = [n for n in sizes if data[n].get(s)]
        a.plot(xs, [data[n][s]["per_core"] for n in xs], marker="o", label=s, color=color.get(s))
        fx = [n for n in xs if data[n][s].get("flood_per_core")]
        if fx:
            a.plot(fx, [data[n][s]["flood_per_core"] for n in fx], marker="x", linestyle="--",
                   label=f"{s}, NXDOMAIN flood", color=color.get(s))
        # runs before run.sh measured the whole process tree hold NSD's first process only
        # (xfrd, ~11 MiB): leave such figures out of the memory panel
        ms = [n for n in xs if data[n][s]["rss"] and not (s == "nsd" and data[n][s]["rss"] < 64)]
        if ms:
            b.plot(ms, [data[n][s]["rss"] for n in ms], marker="o", label=s, color=color.get(s))
    for ax, title, unit in ((a, "QPS per server core (shared mix, DO; dashed: NXDOMAIN flood)" if flood
                             else "QPS per server core (shared mix, DO)", "queries/s"),
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
