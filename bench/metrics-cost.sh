#!/usr/bin/env bash
# The query-path cost of the metrics counters: two mxdns binaries (without and with the
# counters) on the same store, served in turn (one DNS worker pinned to core 0, dnsperf on
# core 1), ROUNDS interleaved rounds of DUR seconds each. Loopback only; stops what it starts.
#
# Usage: bench/metrics-cost.sh BASE_BIN OPS_BIN [N] [ROUNDS]   env: DUR (10), PORT (25412)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BASE="$1"; OPS="$2"; N="${3:-20000}"; ROUNDS="${4:-3}"
DUR="${DUR:-10}"; PORT="${PORT:-25412}"; API=$((PORT + 1))
WORK="$(mktemp -d /tmp/metrics-cost.XXXXXX)"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
python3 "$HERE/gen-queries.py" -n "$N" --origin o-v1.mx.example -o "$WORK/queries.txt" >/dev/null
"$BASE" --data-dir "$WORK/data" host bulk-add --count "$N" >/dev/null 2>&1
run_one() { # name binary
  MXDNS_LOG=warn taskset -c 0 "$2" --data-dir "$WORK/data" serve --dns-listen "127.0.0.1:$PORT" \
    --api-listen "127.0.0.1:$API" --workers 1 2>>"$WORK/$1.log" & PID=$!
  for _ in $(seq 1 600); do
    dig +short +time=1 +tries=1 -p "$PORT" @127.0.0.1 o-v1.mx.example SOA 2>/dev/null | grep -q . && break
    sleep 0.2
  done
  qps=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/queries.txt" -D -l "$DUR" -q 500 -c 10 2>&1 \
        | awk '/Queries per second/ {print $4}')
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  echo "$1 $qps"
}
for r in $(seq 1 "$ROUNDS"); do
  run_one base "$BASE"
  run_one ops "$OPS"
done
