#!/usr/bin/env python3
"""Summarize the dnsperf outputs written by run.sh: medians per server plus the raw runs.

Adapted from /work/shared/bench/summarize.py (anchor benchmark): same parsing and the same
"clean run" rule; adds per-server load time and memory from run.sh's servers.txt.

Usage: summarize.py RESULTS_DIR [--servers SERVERS_TXT]   (prints Markdown to stdout)
SERVERS_TXT lines: "server=NAME key=value ..." (start_to_signed_s, load_cpu_s, rss_load_mib,
hwm_load_mib, rss_end_mib, hwm_end_mib).

Mix runs are RESULTS_DIR/<server>-r<round>.txt; NXDOMAIN flood runs (run.sh's flood phase, issue
requirement 6) are RESULTS_DIR/flood-<server>.txt: the same dnsperf and CPU lines plus rss_start_kib,
rss_end_kib, hwm_end_kib, rss_samples_kib=<s>:<KiB> ... and same_proof_two_apex_names. Without flood
files the output is the same as before the flood phase existed.
"""
import argparse
import glob
import os
import re
import statistics

ORDER = ["knot-auto", "nsd", "mxdns"]
# flood verdict: the flood's server CPU per query may exceed the mix's by this much and still be
# "within the run-to-run spread" (README: +-10 % between runs on this VM)
NOISE = 1.10
# memory is "flat" when RSS at the end of the flood is less than this above RSS at its start
FLAT_MIB = 1.0


def mix_files(d):
    return [p for p in sorted(glob.glob(os.path.join(d, "*-r*.txt")))
            if not os.path.basename(p).startswith(("flood-", "fixed-"))]


def flood_files(d):
    return sorted(glob.glob(os.path.join(d, "flood-*.txt")))


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
    # NXDOMAIN flood files only
    d["flood_lines"] = f(r"flood_lines=(\d+)", int)
    d["rss_start_kib"] = f(r"rss_start_kib=(\d+)", int)
    d["rss_end_kib"] = f(r"rss_end_kib=(\d+)", int)
    d["hwm_end_kib"] = f(r"hwm_end_kib=(\d+)", int)
    m = re.search(r"rss_samples_kib=(.*)", t)
    d["rss_samples"] = [(float(a), int(b)) for a, b in
                        (x.split(":") for x in m.group(1).split())] if m else []
    d["same_proof"] = (re.search(r"same_proof_two_apex_names=(\w+)", t) or [None, None])[1]
    d["died"] = "server_died_during_run=1" in t
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


def is_clean(r):
    return (r["other0"] is not None and r["other0"] < 5 and
            r["other1"] is not None and r["other1"] < 10)


def mix_medians(runs, s):
    """Medians of server s's mix runs (clean runs when at least 2 are clean)."""
    alls = [r for r in runs if r["server"] == s]
    rs = [r for r in alls if is_clean(r)]
    nclean = len(rs)
    if len(rs) < 2:
        rs = alls
    q = med([r["qps"] for r in rs])
    cpu = med([r["srv_cpu"] for r in rs])
    return {"runs": rs, "nclean": nclean, "nall": len(alls), "qps": q, "cpu": cpu,
            "per_core": q / (cpu / 100) if q and cpu else None,
            "lat": med([r["lat_ms"] for r in rs])}


def flood_figures(r):
    """Per-core rate, RSS figures (MiB) and NXDOMAIN share of one flood run."""
    per_core = r["qps"] / (r["srv_cpu"] / 100) if r["qps"] and r["srv_cpu"] else None
    kib = [v for _, v in r["rss_samples"]]
    kib += [v for v in (r["rss_start_kib"], r["rss_end_kib"]) if v]
    start = r["rss_start_kib"] / 1024 if r["rss_start_kib"] else None
    end = r["rss_end_kib"] / 1024 if r["rss_end_kib"] else None
    # trend over the second half of the samples (a one-off warm-up does not count there)
    half = None
    if len(r["rss_samples"]) >= 4:
        h = r["rss_samples"][len(r["rss_samples"]) // 2:]
        half = (h[-1][1] - h[0][1]) / 1024
    nx = None
    m = re.search(r"NXDOMAIN\s+(\d+)", r["rcodes"] or "")
    if r["completed"]:
        nx = 100 * (int(m.group(1)) if m else 0) / r["completed"]
    return {"per_core": per_core, "start": start, "end": end,
            "max": max(kib) / 1024 if kib else None,
            "growth": end - start if start is not None and end is not None else None,
            "half": half, "nx_pct": nx,
            "passes": r["sent"] / r["flood_lines"] if r["sent"] and r["flood_lines"] else None}


def print_flood(floods, runs, servers):
    print("### NXDOMAIN flood (issue requirement 6)")
    print()
    print("One run per server after the mix rounds: unique random names that do not exist (`gen-flood.py`), "
          "same pinning and dnsperf settings as the mix. CPU µs per query = 10⁶ / QPS per server core; "
          "the mix figure is the median of the table above. RSS: VmRSS of the largest process of the "
          "server's tree just before the flood → just after it; max over the 1 s samples; growth over the "
          "second half of the samples in brackets. Same proof = two different apex names get the very "
          "same NSEC + RRSIG (no per-query signing or white lies).")
    print()
    print("| server | QPS | avg latency (ms) | lost | NXDOMAIN % | passes over file | server CPU % | dnsperf CPU % "
          "| clean | flood QPS per core | mix QPS per core | CPU µs/query flood / mix (ratio) "
          "| RSS start → end (MiB) | max RSS (MiB) | growth (MiB) | same proof |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for s in servers:
        fl = [r for r in floods if r["server"] == s]
        if not fl:
            continue
        r = fl[0]
        f = flood_figures(r)
        mix = mix_medians(runs, s)
        us_f = 1e6 / f["per_core"] if f["per_core"] else None
        us_m = 1e6 / mix["per_core"] if mix["per_core"] else None
        ratio = us_f / us_m if us_f and us_m else None
        ratio_s = f"{fmt(us_f, '.1f')} / {fmt(us_m, '.1f')} ({fmt(ratio, '.2f')})"
        rss = f"{fmt(f['start'], '.1f')} → {fmt(f['end'], '.1f')}"
        growth = f"{fmt(f['growth'], '+.1f')} ({fmt(f['half'], '+.1f')})"
        print(f"| {s} | {fmt(r['qps'], ',.0f')} | {fmt(r['lat_ms'], '.3f')} | {fmt(r['lost'], ',.0f')} | "
              f"{fmt(f['nx_pct'], '.1f')} | {fmt(f['passes'], '.1f')} | {fmt(r['srv_cpu'], '.0f')} | "
              f"{fmt(r['client_cpu'], '.0f')} | {'yes' if is_clean(r) else 'no'} | {fmt(f['per_core'], ',.0f')} | "
              f"{fmt(mix['per_core'], ',.0f')} | {ratio_s} | {rss} | {fmt(f['max'], '.1f')} | {growth} | "
              f"{r['same_proof'] or '-'}{' (server died)' if r['died'] else ''} |")
        if s == "mxdns":
            if ratio is None:
                cost = "cost per query not measured"
            elif ratio <= 1.0:
                cost = f"yes, flood cost per query ≤ mix cost per query ({us_f:.1f} vs {us_m:.1f} µs, ratio {ratio:.2f})"
            elif ratio <= NOISE:
                cost = (f"within the ±10 % run-to-run spread: flood {us_f:.1f} vs mix {us_m:.1f} µs per query "
                        f"(ratio {ratio:.2f})")
            else:
                cost = f"**no**, the flood costs more per query: {us_f:.1f} vs {us_m:.1f} µs (ratio {ratio:.2f})"
            dur = r["rss_samples"][-1][0] if r["rss_samples"] else None
            if f["growth"] is None:
                mem = "RSS not measured"
            else:
                flat = f["growth"] < FLAT_MIB
                mem = (f"RSS {'flat' if flat else '**grows**'}: {f['growth']:+.1f} MiB over {fmt(dur, '.0f')} s "
                       f"({f['start']:.1f} → {f['end']:.1f} MiB, max {f['max']:.1f})")
            extra = []
            if not is_clean(r):
                extra.append(f"run not clean (other load core0 {fmt(r['other0'], '.0f')} %, "
                             f"core1 {fmt(r['other1'], '.0f')} %)")
            if f["passes"] and f["passes"] > 1:
                extra.append(f"dnsperf went {f['passes']:.1f} times through the file, so names repeat")
            if f["nx_pct"] is not None and f["nx_pct"] < 99.9:
                extra.append(f"only {f['nx_pct']:.1f} % NXDOMAIN")
            if r["same_proof"] == "no":
                extra.append("two names covered by the same NSEC got different proofs")
            verdicts.append(f"**mxdns verdict:** {cost}; {mem}" + ("; " + "; ".join(extra) if extra else "") + ".")
    print()
    for v in verdicts:
        print(v)
        print()
    print("RSS samples during the flood (MiB, one per second):")
    print()
    print("```")
    for s in servers:
        for r in floods:
            if r["server"] == s:
                print(f"{s}: " + " ".join(f"{v / 1024:.1f}" for _, v in r["rss_samples"]))
    print("```")
    print()


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
    runs = [parse(p) for p in mix_files(args.results)]
    floods = [parse(p) for p in flood_files(args.results)]
    meta = read_servers(args.servers)
    for r in runs:
        r["clean"] = is_clean(r)
    names = {r["server"] for r in runs} | {r["server"] for r in floods} | set(meta)
    servers = [s for s in ORDER if s in names] + sorted(names - set(ORDER))
    print("Medians over the clean runs (other load < 5 % on the server core and < 10 % on the client core);")
    print("all runs are used when fewer than 2 are clean. QPS per server core = median QPS / (server CPU % / 100).")
    print()
    print("| server | runs (clean/all) | median QPS | median avg latency (ms) | median lost | server CPU % "
          "| dnsperf CPU % | QPS per server core | start → signed answers (s) | CPU s to load | "
          "RSS after load (MiB) | RSS after runs (MiB) | peak RSS (VmHWM, MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in servers:
        mm = mix_medians(runs, s)
        rs, nclean, alls = mm["runs"], mm["nclean"], [r for r in runs if r["server"] == s]
        q, cpu, per_core = mm["qps"], mm["cpu"], mm["per_core"]
        m = meta.get(s, {})
        print(f"| {s} | {nclean}/{len(alls)} | {fmt(q, ',.0f')} | {fmt(med([r['lat_ms'] for r in rs]), '.3f')} | "
              f"{fmt(med([r['lost'] for r in rs]), ',.0f')} | {fmt(cpu, '.0f')} | "
              f"{fmt(med([r['client_cpu'] for r in rs]), '.0f')} | {fmt(per_core, ',.0f')} | "
              f"{m.get('start_to_signed_s', '-')} | {m.get('load_cpu_s', '-')} | {m.get('rss_load_mib', '-')} | "
              f"{m.get('rss_end_mib', '-')} | {m.get('hwm_end_mib', m.get('hwm_load_mib', '-'))} |")
    print()
    if floods:
        print_flood(floods, runs, servers)
        print("### Raw runs (query mix)")
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
