#!/usr/bin/env python3
"""Write a dnsperf query file for the NXDOMAIN flood of run.sh: unique random names that do
not exist in the zone made by gen-zone.py (issue requirement 6).

Two shapes, alternating at random (fixed seed, so the file is reproducible):
  <12 hex>.ORIGIN A         at the apex: sorts before ns1, so the apex NSEC covers both the
                            name and the wildcard (one NSEC RRset per answer)
  x<12 hex>.t<i>.ORIGIN A   below an existing host t<i> (i uniform in 1..N): covered by the
                            NSEC of _25._tcp.t<i>, wildcard *.t<i> by the NSEC of t<i>, so the
                            proofs are spread over the whole chain
Every line is a different name: line k gets the 12 hex digits of P(k), P a keyed permutation of
the 48-bit numbers (4-round Feistel network), so the names are unique by construction and the
generator needs no memory per line. dnsperf -D sets DO.

Usage: gen-flood.py [-n N] [-q QUERIES] [--seed S] [--apex-share 0.5] [--origin O] [-o FILE]
stdlib only.
"""
import argparse
import random
import sys


def permutation(seed):
    """A bijection of [0, 2^48): 4 Feistel rounds on two 24-bit halves, round keys from seed."""
    keys = [random.Random(seed * 4 + i).getrandbits(24) for i in range(4)]
    mask = (1 << 24) - 1

    def p(x):
        left, right = x >> 24, x & mask
        for k in keys:
            left, right = right, left ^ ((((right ^ k) * 0x9E3779B1) >> 7) & mask)
        return (left << 24) | right
    return p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--hosts", type=int, default=100000,
                    help="number of hosts in the zone (default 100000)")
    ap.add_argument("-q", "--queries", type=int, default=1000000,
                    help="number of query lines, all different names (default 1000000)")
    ap.add_argument("--seed", type=int, default=20240606)
    ap.add_argument("--apex-share", type=float, default=0.5,
                    help="share of <hex>.ORIGIN names; the rest are x<hex>.t<i>.ORIGIN (default 0.5)")
    ap.add_argument("--host", default="t{i}",
                    help="host label pattern (default t{i}; the provisioned shape: c{i}-example)")
    ap.add_argument("--origin", default="mx.example")
    ap.add_argument("-o", "--output", default="-")
    args = ap.parse_args()
    assert 0.0 <= args.apex_share <= 1.0, "--apex-share is a share in [0, 1]"
    assert args.queries <= 2 ** 40, "too many queries for 12 hex digits"

    origin = args.origin.rstrip(".")
    rnd = random.Random(args.seed)
    out = sys.stdout if args.output == "-" else open(args.output, "w", buffering=1 << 20)
    n = args.hosts
    perm = permutation(args.seed)
    lines = []
    for k in range(args.queries):
        h = perm(k)
        if rnd.random() < args.apex_share:
            lines.append(f"{h:012x}.{origin} A\n")
        else:
            lines.append(f"x{h:012x}.{args.host.format(i=rnd.randint(1, n))}.{origin} A\n")
        if len(lines) >= 10000:
            out.write("".join(lines))
            lines.clear()
    out.write("".join(lines))
    if out is not sys.stdout:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
