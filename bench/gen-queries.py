#!/usr/bin/env python3
# Copied from /work/shared/bench/gen-queries.py (anchor benchmark), unchanged apart from this line and --host.
"""Write a dnsperf query file for the zone made by gen-zone.py.

Mix (fixed seed, so the file is reproducible):
  40%  TLSA  _25._tcp.t<i>.mx.example   (existing host -> TLSA RRset)
  30%  A     t<i>.mx.example            (existing host -> A RRset)
  20%  A     t<i>-<hex>.mx.example      (name does not exist -> NXDOMAIN)
  10%  MX    t<i>.mx.example            (existing name, no such type -> NODATA)
Hosts i are drawn uniformly from 1..N.

Usage: gen-queries.py [-n N] [-q QUERIES] [--seed S] [--mix 40,30,20,10] [-o FILE]
stdlib only.
"""
import argparse
import random
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--hosts", type=int, default=100000,
                    help="number of hosts in the zone (default 100000)")
    ap.add_argument("-q", "--queries", type=int, default=1000000,
                    help="number of query lines (default 1000000)")
    ap.add_argument("--seed", type=int, default=20240101)
    ap.add_argument("--origin", default="mx.example")
    ap.add_argument("-o", "--output", default="-")
    ap.add_argument("--host", default="t{i}",
                    help="host label pattern (default t{i}; the provisioned shape: c{i}-example)")
    ap.add_argument("--mix", default="40,30,20,10",
                    help="weights TLSA,A,NXDOMAIN,NODATA (default 40,30,20,10); "
                         "e.g. 40,30,0,0 for positive answers only")
    args = ap.parse_args()
    w = [float(x) for x in args.mix.split(",")]
    assert len(w) == 4 and sum(w) > 0, "--mix needs 4 weights"
    c1 = w[0] / sum(w)
    c2 = c1 + w[1] / sum(w)
    c3 = c2 + w[2] / sum(w)

    origin = args.origin.rstrip(".")
    rnd = random.Random(args.seed)
    out = sys.stdout if args.output == "-" else open(args.output, "w", buffering=1 << 20)
    n = args.hosts
    lines = []
    host = args.host
    for _ in range(args.queries):
        r = rnd.random()
        i = rnd.randint(1, n)
        if r < c1:
            lines.append(f"_25._tcp.{host.format(i=i)}.{origin} TLSA\n")
        elif r < c2:
            lines.append(f"{host.format(i=i)}.{origin} A\n")
        elif r < c3:
            # 't<i>-<hex>' never exists; it sorts right after the t<i> subtree, so
            # the covering NSEC differs per query (spread over the whole chain)
            lines.append(f"{host.format(i=i)}-{rnd.getrandbits(32):x}.{origin} A\n")
        else:
            lines.append(f"{host.format(i=i)}.{origin} MX\n")
        if len(lines) >= 10000:
            out.write("".join(lines))
            lines.clear()
    out.write("".join(lines))
    if out is not sys.stdout:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
