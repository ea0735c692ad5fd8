#!/usr/bin/env bash
# Instructions per UDP query of `mxdns serve`, counted by callgrind (stable on a shared VM,
# unlike QPS). Only the UDP loop is counted (`--toggle-collect` on `mxdns::udp::serve`'s future,
# i.e. receive, parse, lookup, encode, send, tokio's readiness); startup and signing are not
# (instrumentation is switched on once the server answers).
#
# Usage: bench/callgrind.sh [N hosts, 20000] [Q queries, 20000]
# Env:   MXDNS (binary; default $CARGO_TARGET_DIR/release/mxdns, built if missing),
#        WORK (/tmp/mxdns-callgrind/n<N>), PORT (25522), MIX (gen-queries.py --mix, 40,30,20,10)
# Prints: total instructions, queries answered, instructions per query; keeps callgrind.out in WORK
# (`callgrind_annotate WORK/callgrind.out | head -60` for the top functions).
set -euo pipefail
N="${1:-20000}"
Q="${2:-20000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-perf}"
MXDNS="${MXDNS:-$CARGO_TARGET_DIR/release/mxdns}"
WORK="${WORK:-/tmp/mxdns-callgrind/n$N}"
PORT="${PORT:-25522}"
MIX="${MIX:-40,30,20,10}"
[ -x "$MXDNS" ] || (cd "$ROOT" && cargo build --release -p mxdns)
mkdir -p "$WORK"
if [ ! -f "$WORK/store.done" ]; then
  rm -rf "$WORK/store"
  "$MXDNS" --data-dir "$WORK/store" host bulk-add --count "$N" > "$WORK/bulk-add.txt" 2>&1
  touch "$WORK/store.done"
fi
python3 "$ROOT/bench/gen-queries.py" -n "$N" -q "$Q" --mix "$MIX" --origin o-v1.mx.example -o "$WORK/queries.txt"
# every run starts from the same store
rm -rf "$WORK/data" && cp -a "$WORK/store" "$WORK/data"
rm -f "$WORK/callgrind.out"
MXDNS_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out" \
  --toggle-collect='mxdns::udp::serve*' \
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
echo "hosts: $N  queries: $ANS  instructions: $TOTAL  per query: $((TOTAL / ANS))"
