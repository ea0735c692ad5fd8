#!/usr/bin/env bash
# Isolation benchmark (issue 10, "what it must show"): DNS answered at a fixed rate, well below
# saturation, by a release mxdns with N hosts, while
#   (b) eight clients send API calls with made-up tokens as fast as they can, and
#   (a) a bulk import of IMPORT domains runs through POST /v1/import,
# beside the same rate on the idle server (before, and after the import). During (a) and (b)
# another tenant calls Enable-DnssecForVerifiedDomain every 0.25 s (each timed), and
# GET /v1/health is sampled once a second.
#
#   bench/isolation.sh [N] [IMPORT]      # defaults 100000 hosts, 1000000 imported domains
#   NICE=10 bench/isolation.sh           # control plane threads at nice 10 (control_nice = 10)
#   RATE=20000 DUR=30 CHUNK=30 FLOOD_DUR=30 REPORT=bench/ISOLATION.md
#
# dnsperf -Q RATE -v (per-query latencies) in runs of DUR s (CHUNK s while the import runs,
# back to back until the import has answered). Nothing is pinned: server, dnsperf and the
# load generators share the machine's cores, as they would in production with the control
# plane beside DNS. Needs dnsperf, kdig, openssl, curl, python3. Loopback only, bounded waits.
set -euo pipefail
N=${1:-100000}
IMPORT=${2:-1000000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${WORK:-/tmp/mxdns-isolation/n$N-i$IMPORT-nice${NICE:-0}}
REPORT=${REPORT:-$HERE/ISOLATION.md}
RATE=${RATE:-20000}
DUR=${DUR:-30}
CHUNK=${CHUNK:-30}
FLOOD_DUR=${FLOOD_DUR:-30}
NICE=${NICE:-0}
DNS_PORT=${DNS_PORT:-25361}
API_PORT=${API_PORT:-25362}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ZONE=o-v1.mx.example
PY="python3 $HERE/isolation.py"

(cd "$ROOT" && cargo build --release --locked -q)
BIN=$CARGO_TARGET_DIR/release/mxdns
rm -rf "$WORK"; mkdir -p "$WORK"
DATA=$WORK/data
PID=; BG=()
stop() {
  for p in "${BG[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=
}
trap stop EXIT
load() { # the load averages and the five busiest processes over one second (ours marked *)
  local top; top=$(top -b -d 1 -n 2 -o %CPU | awk -v me="${PID:-0}" '/^top -/{f++} f==2 && $1 ~ /^[0-9]+$/ && n < 5 {n++; printf "%s%s(%s) %s%%, ", ($1 == me ? "*" : ""), $12, $1, $9}')
  echo "$(date -u +%H:%M:%S) $1: $(cut -d' ' -f1-3 /proc/loadavg); top: $top" >> "$WORK/load.txt"
}
mark() { echo "$1 $(wc -l < "$WORK/server.log")" >> "$WORK/marks.txt"; }   # server log lines per phase
LOADP=()
bgload() { (sleep "$1"; load "$2") & LOADP+=($!); }   # a load sample in the middle of a phase
waitload() { for p in "${LOADP[@]:-}"; do [ -n "$p" ] && { wait "$p" 2>/dev/null || true; }; done; mark() { echo "$1 $(wc -l < "$WORK/server.log")" >> "$WORK/marks.txt"; }   # server log lines per phase
LOADP=(); }
perf() { # NAME SECONDS
  dnsperf -s 127.0.0.1 -p $DNS_PORT -d "$WORK/queries.txt" -D -Q $RATE -l "$2" -c 8 -q 500 -v \
    > "$WORK/dnsperf-$1.txt" 2>&1
  echo "$1: $($PY dnsperf "$WORK/dnsperf-$1.txt")"
}

echo "== store: $N hosts"
"$BIN" --data-dir "$DATA" host bulk-add --count "$N" > "$WORK/bulk-add.txt"
python3 "$HERE/gen-queries.py" -n "$N" --origin $ZONE -q 1000000 -o "$WORK/queries.txt"
python3 -c "import sys; [print(f'i{i}.example') for i in range(int(sys.argv[1]))]" "$IMPORT" > "$WORK/import.txt"
python3 -c "import sys; [print(f'other{i}.tenant.example') for i in range(int(sys.argv[1]))]" 4000 > "$WORK/other.txt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=mx \
  -addext basicConstraints=critical,CA:FALSE -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
echo "control_nice = $NICE" > "$WORK/mxdns.toml"

"$BIN" --data-dir "$DATA" --config "$WORK/mxdns.toml" serve --dns-listen 127.0.0.1:$DNS_PORT \
  --api-listen 127.0.0.1:$API_PORT 2>>"$WORK/server.log" & PID=$!
for _ in $(seq 1 1200); do curl -sf 127.0.0.1:$API_PORT/v1/ready >/dev/null && break; sleep 0.1; done
curl -sf 127.0.0.1:$API_PORT/v1/ready >/dev/null || { echo "not ready"; tail "$WORK/server.log"; exit 1; }
ADMIN=$(cat "$DATA/admin-token")
j() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
BULK=$(curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"name":"bulk"}' 127.0.0.1:$API_PORT/v1/tenants | j '["tenantId"]')
OTHER_JSON=$(curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"name":"other"}' 127.0.0.1:$API_PORT/v1/tenants)
OTHER=$(echo "$OTHER_JSON" | j '["tenantId"]'); OTHER_TOKEN=$(echo "$OTHER_JSON" | j '["token"]')
python3 -c "
import json, sys, http.client
port, admin, tenant, path = sys.argv[1:5]
c = http.client.HTTPConnection('127.0.0.1', int(port))
for d in open(path).read().split():
    c.request('POST', f'/v1/tenants/{tenant}/domains', body=json.dumps({'domain': d, 'verified': True}),
              headers={'Authorization': 'Bearer ' + admin, 'Content-Type': 'application/json'})
    r = c.getresponse(); r.read(); assert r.status == 201, r.status
" "$API_PORT" "$ADMIN" "$OTHER" "$WORK/other.txt"
CERT=$(python3 -c "import json,sys; print(json.dumps({'current': open(sys.argv[1]).read()}))" "$WORK/cert.pem")
curl -sf -X PUT -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d "$CERT" \
  127.0.0.1:$API_PORT/v1/partitions/o-v1/certificates >/dev/null
head -n 2000 "$WORK/other.txt" > "$WORK/other-flood.txt"
tail -n 2000 "$WORK/other.txt" > "$WORK/other-import.txt"

echo "== idle, before"
load idle-before
bgload 5 idle-before-running
perf idle-before "$DUR"
waitload

echo "== (b) 8 clients with made-up tokens"
load flood-start
mark flood-start
$PY flood $API_PORT "$FLOOD_DUR" "$WORK/flood.json" --clients 8 & BG+=($!)
$PY enables $API_PORT $DNS_PORT "$OTHER_TOKEN" "$WORK/other-flood.txt" "$WORK/enables-flood.jsonl" \
  --seconds "$FLOOD_DUR" & BG+=($!)
bgload 3 flood
perf flood "$((FLOOD_DUR - 2))"
wait "${BG[@]}"; BG=(); waitload
mark flood-end
cat "$WORK/flood.json"; echo

echo "== (a) import of $IMPORT domains through POST /v1/import"
load import-start
mark import-start
rm -f "$WORK/import.json"
$PY import $API_PORT "$ADMIN" "$BULK" "$WORK/import.txt" "$WORK/import.json" & IMP=$!; BG+=($IMP)
$PY enables $API_PORT $DNS_PORT "$OTHER_TOKEN" "$WORK/other-import.txt" "$WORK/enables-import.jsonl" \
  --until "$WORK/import.json" & BG+=($!)
i=0
while kill -0 $IMP 2>/dev/null && [ $i -lt 200 ]; do
  i=$((i + 1)); bgload 5 "import-$i"; perf "import-$(printf %03d $i)" "$CHUNK"
done
wait "${BG[@]}"; BG=(); waitload
mark import-end
head -c 400 "$WORK/import.json"; echo

echo "== idle, after the import"
load idle-after
bgload 5 idle-after-running
perf idle-after "$DUR"
waitload
RSS=$(awk '/VmRSS/{print int($2/1024)}' /proc/$PID/status)
curl -s 127.0.0.1:$API_PORT/v1/health > "$WORK/health-end.json"
stop

COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD)
DIRTY=$(cd "$ROOT" && git status --porcelain -- . ':!bench' | wc -l)
{
  echo "# Isolation: DNS at a fixed rate while the control plane is loaded (N = $N hosts)"
  echo
  echo "Generated by \`$(basename "$0") $N $IMPORT\` (RATE=$RATE DUR=$DUR CHUNK=$CHUNK FLOOD_DUR=$FLOOD_DUR NICE=$NICE) on"
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $COMMIT$([ "$DIRTY" -gt 0 ] && echo " (with uncommitted changes)"), $(nproc) CPUs,"
  echo "release build, \`control_nice = $NICE\`, default \`workers\` (one DNS thread and UDP socket per core). Nothing pinned."
  echo "dnsperf: \`dnsperf -s 127.0.0.1 -p PORT -d queries.txt -D -Q $RATE -l <s> -c 8 -q 500 -v\` (the mix of"
  echo "\`gen-queries.py -n $N --origin $ZONE\`: 40 % TLSA, 30 % A, 20 % NXDOMAIN, 10 % NODATA, DO set); latencies from"
  echo "the per-query lines of \`-v\`. Server RSS at the end: $RSS MiB."
  echo
  $PY report "$WORK"
  echo
  echo "Load on the machine during each phase (1/5/15-min load averages; the five busiest processes over one"
  echo "second, ours marked with a star; mxdns processes without it are other engineers' test servers):"
  echo
  echo '```'
  cat "$WORK/load.txt"
  echo '```'
} > "$REPORT"
cat "$REPORT"
