#!/usr/bin/env python3
# Copied from /work/shared/bench/gen-zone.py (anchor benchmark), unchanged apart from this line.
"""Write an RFC 1035 zone file for mx.example. with N tenant mail hosts.

Each host t<i>.mx.example. (i = 1..N) gets:
  t<i>            A     192.0.2.<i mod 256>
  t<i>            AAAA  2001:db8::<i in hex>
  _25._tcp.t<i>   TLSA  3 1 1 <64 hex>   (two of them, deterministic digests)

Usage: gen-zone.py [-n N] [-o FILE] [--origin mx.example.] [--serial S]
stdlib only.
"""
import argparse
import hashlib
import ipaddress
import sys


def aaaa(i: int) -> str:
    # 2001:db8::/32 prefix, host part is i (compressed text form)
    return str(ipaddress.IPv6Address((0x20010DB8 << 96) | i))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--hosts", type=int, default=100000)
    ap.add_argument("-o", "--output", default="-")
    ap.add_argument("--origin", default="mx.example.")
    ap.add_argument("--serial", type=int, default=2024010101)
    args = ap.parse_args()

    origin = args.origin if args.origin.endswith(".") else args.origin + "."
    out = sys.stdout if args.output == "-" else open(args.output, "w", buffering=1 << 20)
    w = out.write
    w(f"$ORIGIN {origin}\n$TTL 3600\n")
    w(f"@\tIN\tSOA\tns1.{origin} hostmaster.{origin} "
      f"{args.serial} 7200 3600 1209600 3600\n")
    w(f"@\tIN\tNS\tns1.{origin}\n@\tIN\tNS\tns2.{origin}\n")
    w("ns1\tIN\tA\t192.0.2.253\nns2\tIN\tA\t192.0.2.254\n")
    w("ns1\tIN\tAAAA\t2001:db8:ffff::1\nns2\tIN\tAAAA\t2001:db8:ffff::2\n")
    sha = hashlib.sha256
    buf = []
    for i in range(1, args.hosts + 1):
        d1 = sha(b"tlsa-1-%d" % i).hexdigest()
        d2 = sha(b"tlsa-2-%d" % i).hexdigest()
        buf.append(
            f"t{i}\tIN\tA\t192.0.2.{i % 256}\n"
            f"t{i}\tIN\tAAAA\t{aaaa(i)}\n"
            f"_25._tcp.t{i}\tIN\tTLSA\t3 1 1 {d1}\n"
            f"_25._tcp.t{i}\tIN\tTLSA\t3 1 1 {d2}\n"
        )
        if len(buf) >= 10000:
            w("".join(buf))
            buf.clear()
    w("".join(buf))
    if out is not sys.stdout:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
