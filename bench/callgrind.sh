#!/usr/bin/env bash
# Instructions per UDP query of `mxdns serve`, counted by callgrind (stable on a shared VM,
# unlike QPS). Only the UDP loop is counted (`--toggle-collect` on `mxdns::dns::udp::serve`'s future,
# i.e. receive, parse, lookup, encode, send, tokio's readiness); startup and signing are not
# (instrumentation is switched on once the server answers).
#
# Usage: bench/callgrind.sh [N hosts, 20000] [Q queries, 20000]
# Env:   MXDNS (binary; default $CARGO_TARGET_DIR/release/mxdns, built if missing),
#        WORK (/tmp/mxdns-callgrind/<shape>-n<N>), PORT (25522), MIX (gen-queries.py --mix, 40,30,20,10;
#        40,0,0,0 = TLSA queries only, i.e. with SHAPE=provisioned every query follows the CNAME),
#        SHAPE (provisioned: hosts made by `mxdns domain import`, `_25._tcp.<host>` a CNAME to the
#        partition's shared TLSA RRset; own-tlsa: `mxdns host bulk-add`, each host its own TLSA)
# Prints: total instructions, queries answered, instructions per query; keeps callgrind.out in WORK
# (`callgrind_annotate WORK/callgrind.out | head -60` for the top functions).
set -euo pipefail
N="${1:-20000}"
Q="${2:-20000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-perf}"
MXDNS="${MXDNS:-$CARGO_TARGET_DIR/release/mxdns}"
SHAPE="${SHAPE:-provisioned}"
WORK="${WORK:-/tmp/mxdns-callgrind/$SHAPE-n$N}"
PORT="${PORT:-25522}"
MIX="${MIX:-40,30,20,10}"
[ -x "$MXDNS" ] || (cd "$ROOT" && cargo build --release -p mxdns)
mkdir -p "$WORK"
if [ ! -f "$WORK/store.done" ]; then
  rm -rf "$WORK/store"
  if [ "$SHAPE" = provisioned ]; then
    python3 -c "import sys; sys.stdout.write(''.join(f'c{i}.example\\n' for i in range(1, int(sys.argv[1]) + 1)))" "$N" > "$WORK/domains.txt"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=mx \
      -addext basicConstraints=critical,CA:FALSE -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
    T=$("$MXDNS" --data-dir "$WORK/store" tenant add bulk | python3 -c 'import json,sys; print(json.load(sys.stdin)["tenantId"])')
    "$MXDNS" --data-dir "$WORK/store" partition certificates o-v1 --current "$WORK/cert.pem" > /dev/null
    "$MXDNS" --data-dir "$WORK/store" domain import "$WORK/domains.txt" --tenant "$T" > "$WORK/import.txt" 2>&1
  else
    "$MXDNS" --data-dir "$WORK/store" host bulk-add --count "$N" > "$WORK/bulk-add.txt" 2>&1
  fi
  touch "$WORK/store.done"
fi
HOSTFMT='t{i}'; [ "$SHAPE" = provisioned ] && HOSTFMT='c{i}-example'
python3 "$ROOT/bench/gen-queries.py" -n "$N" -q "$Q" --mix "$MIX" --host "$HOSTFMT" --origin o-v1.mx.example -o "$WORK/queries.txt"
# every run starts from the same store
rm -rf "$WORK/data" && cp -a "$WORK/store" "$WORK/data"
rm -f "$WORK/callgrind.out"
MXDNS_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out" \
  --toggle-collect='mxdns::dns::udp::serve*' \
  "$MXDNS" --data-dir "$WORK/data" serve --dns-listen "127.0.0.1:$PORT" \
  --api-listen "127.0.0.1:$((PORT + 1))" --workers 1 > "$WORK/serve.log" 2>&1 &
VG=$!
trap 'kill $VG 2>/dev/null || true' EXIT
python3 - "$PORT" "$WORK/queries.txt" "$VG" <<'PY'
import socket, struct, sys, time, os, subprocess
port, qfile, vg = int(sys.argv[1]), sys.argv[2], sys.argv[3]
TYPES = {"A": 1, "MX": 15, "TLSA": 52, "AAAA": 28, "SOA": 6}
def query(i, name, t):
    q = struct.pack(">HHHHHH", i & 0xFFFF, 0, 1, 0, 0, 1)
    for l in name.rstrip(".").split("."):
        q += bytes([len(l)]) + l.encode()
    q += b"\0" + struct.pack(">HH", TYPES[t], 1)
    # OPT: 1232 bytes, DO set (as dnsperf -D)
    return q + b"\0" + struct.pack(">HHIH", 41, 1232, 0x8000, 0)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
addr = ("127.0.0.1", port)
s.settimeout(2)
deadline = time.time() + 1800
while True:  # ready: the SOA answers
    try:
        s.sendto(query(0, "o-v1.mx.example", "SOA"), addr)
        if s.recv(4096)[3] & 15 == 0:
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("server not ready")
    time.sleep(1)
subprocess.run(["callgrind_control", "-i", "on", vg], check=True, capture_output=True)
lines = [l.split() for l in open(qfile)]
ok = 0
t0 = time.time()
s.settimeout(5)
for i, (name, t) in enumerate(lines, 1):
    s.sendto(query(i, name, t), addr)
    while True:
        r = s.recv(4096)
        if struct.unpack(">H", r[:2])[0] == i & 0xFFFF:
            ok += 1
            break
subprocess.run(["callgrind_control", "-i", "off", vg], check=True, capture_output=True)
print(f"queries answered: {ok} in {time.time() - t0:.1f} s", flush=True)
open(os.path.join(os.path.dirname(qfile), "answered.txt"), "w").write(str(ok))
PY
kill -TERM "$VG"; wait "$VG" || true
trap - EXIT
TOTAL=$(sed -n "s/^totals: //p" "$WORK/callgrind.out")
ANS=$(cat "$WORK/answered.txt")
echo "binary: $MXDNS"
echo "shape: $SHAPE  mix: $MIX"
echo "hosts: $N  queries: $ANS  instructions: $TOTAL  per query: $((TOTAL / ANS))"
