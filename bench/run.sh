#!/usr/bin/env bash
# mxdns beside Knot DNS on the same signed zone, one core each, dnsperf on the other core.
#
# Usage: bench/run.sh [N] [ROUNDS]        (defaults: N=100000 hosts, 3 rounds of 20 s per server)
#   env: DUR (dnsperf -l, 20), OUTQ (-q, 500), CLIENTS (-c, 10), WORK (/tmp/mxdns-bench/n<N>),
#        SERVERS ("knot-auto mxdns"), REPORT (bench/RESULTS.md)
#
# The zone is the partition zone o-v1.mx.example. with N hosts t<i> (A, AAAA, 2 x TLSA 3 1 1),
# made by ../shared/bench/gen-zone.py; mxdns gets the same data through `mxdns host bulk-add`.
# Queries: ../shared/bench/gen-queries.py (40 % TLSA, 30 % A, 20 % NXDOMAIN, 10 % NODATA, DO set).
# Servers pinned to CPU 0, dnsperf to CPU 1; loopback only; everything started is stopped.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED:-$ROOT/../shared/bench}"
N="${1:-100000}"; ROUNDS="${2:-3}"
DUR="${DUR:-20}"; OUTQ="${OUTQ:-500}"; CLIENTS="${CLIENTS:-10}"
WORK="${WORK:-/tmp/mxdns-bench/n$N}"
SERVERS="${SERVERS:-knot-auto mxdns}"
REPORT="${REPORT:-$HERE/RESULTS.md}"
ORIGIN=o-v1.mx.example
PORT_KNOT=25311; PORT_MXDNS=25312; PORT_MXDNS_API=25313
HZ=$(getconf CLK_TCK)
mkdir -p "$WORK/run" "$WORK/results"
rm -f "$WORK"/results/*.txt "$WORK/run/load-times.txt"

for tool in knotd kdig dnsperf taskset python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install knot knot-dnsutils dnsperf" >&2; exit 1; }
done

port_of() { case "$1" in knot-auto) echo $PORT_KNOT ;; mxdns) echo $PORT_MXDNS ;; esac; }
pidf() { echo "$WORK/run/$1.pid"; }

stop_all() {
  for s in $SERVERS; do
    local f; f=$(pidf "$s")
    [ -f "$f" ] || continue
    local pid; pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}
trap stop_all EXIT

echo "== build (release)"
(cd "$ROOT" && cargo build --release -p mxdns 2>&1 | tail -1)
MXDNS="$ROOT/target/release/mxdns"

echo "== zone and queries (N=$N)"
[ -f "$WORK/$ORIGIN.zone" ] || python3 "$SHARED/gen-zone.py" -n "$N" --origin "$ORIGIN." -o "$WORK/$ORIGIN.zone"
[ -f "$WORK/queries.txt" ] || python3 "$SHARED/gen-queries.py" -n "$N" --origin "$ORIGIN" -o "$WORK/queries.txt"

echo "== mxdns store (bulk-add)"
rm -rf "$WORK/mxdns-data"
"$MXDNS" --data-dir "$WORK/mxdns-data" host bulk-add --count "$N" | tee "$WORK/run/bulk-add.txt"

K="$WORK/knot"; mkdir -p "$K"
cat > "$K/knot.conf" <<EOF
server:
    rundir: "$K"
    listen: 127.0.0.1@$PORT_KNOT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: "$K/knot.sock"
log:
  - target: "$K/knot.log"
    any: info
database:
    storage: "$K"
    kasp-db: "$K/keys"
    journal-db: "$K/journal"
    timer-db: "$K/timers"
policy:
  - id: p256
    algorithm: ecdsap256sha256
    nsec3: off
zone:
  - domain: $ORIGIN.
    file: "$WORK/$ORIGIN.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    dnssec-signing: on
    dnssec-policy: p256
EOF

probe() { # the signed TLSA RRset of the last host is served
  local out
  out=$(taskset -c 1 kdig @127.0.0.1 -p "$1" +dnssec +timeout=1 +retry=0 +noall +answer +header \
        TLSA "_25._tcp.t$N.$ORIGIN" 2>/dev/null) || return 1
  grep -q "status: NOERROR" <<<"$out" && grep -q "RRSIG" <<<"$out"
}

cpu_ticks() { sed 's/^.*) //' /proc/"$1"/stat | awk '{print $12 + $13}'; }
rss_mib() { awk '/^VmRSS:/{printf "%d", $2/1024}' /proc/"$1"/status; }
hwm_mib() { awk '/^VmHWM:/{printf "%d", $2/1024}' /proc/"$1"/status; }

start() {
  local s=$1 port; port=$(port_of "$s")
  local t0; t0=$(date +%s.%N)
  case "$s" in
    knot-auto)
      rm -rf "$K/keys" "$K/journal" "$K/timers" "$K/knot.log"
      taskset -c 0 knotd -c "$K/knot.conf" < /dev/null > "$WORK/run/knot.out" 2>&1 &
      ;;
    mxdns)
      MXDNS_LOG=warn taskset -c 0 "$MXDNS" --data-dir "$WORK/mxdns-data" serve \
        --dns-listen "127.0.0.1:$PORT_MXDNS" --api-listen "127.0.0.1:$PORT_MXDNS_API" --workers 1 \
        < /dev/null > "$WORK/run/mxdns.out" 2>&1 &
      ;;
  esac
  local pid=$!
  echo "$pid" > "$(pidf "$s")"
  local i=0
  until probe "$port"; do
    kill -0 "$pid" 2>/dev/null || { echo "$s died"; exit 1; }
    i=$((i + 1)); [ $i -gt 12000 ] && { echo "timeout waiting for $s"; exit 1; }
    sleep 0.05
  done
  local el; el=$(python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.2f}')" "$t0")
  sleep 1
  echo "$s N=$N start_to_signed_answers=${el}s rss=$(rss_mib "$pid")MiB hwm=$(hwm_mib "$pid")MiB" | tee -a "$WORK/run/load-times.txt"
}

check() {
  local s=$1 port; port=$(port_of "$s")
  {
    echo "### $s"
    for q in "TLSA _25._tcp.t1.$ORIGIN" "A t1-ffff.$ORIGIN" "MX t1.$ORIGIN" "TLSA _tcp.t1.$ORIGIN"; do
      echo "kdig +dnssec $q: $(kdig @127.0.0.1 -p "$port" +dnssec +noall +header +answer +authority $q \
        | awk '/status:/{st=$6} /^[^;]/{n[$4]++} END{printf "%s", st; for (t in n) printf " %s=%d", t, n[t]}')"
    done
  } | tee -a "$WORK/run/checks.txt"
}

core_busy() { awk '/^cpu0 |^cpu1 /{b=$2+$3+$4+$7+$8+$9; printf "%d ", b}' /proc/stat; }
rcvbuf_err() { awk '/^Udp: [0-9]/{print $6}' /proc/net/snmp; }

: > "$WORK/run/checks.txt"
for s in $SERVERS; do start "$s"; check "$s"; done

for r in $(seq 1 "$ROUNDS"); do
  for s in $SERVERS; do
    port=$(port_of "$s"); pid=$(cat "$(pidf "$s")")
    out="$WORK/results/$s-r$r.txt"
    cmd="dnsperf -s 127.0.0.1 -p $port -d $WORK/queries.txt -D -l $DUR -q $OUTQ -c $CLIENTS"
    echo "== round $r $s: taskset -c 1 $cmd"
    c0=$(cpu_ticks "$pid"); read -r b00 b10 <<<"$(core_busy)"; e0=$(rcvbuf_err); t0=$(date +%s.%N)
    { echo "# $(date -u +%FT%TZ) N=$N round=$r server=$s"; echo "# cmd: taskset -c 1 $cmd"; } > "$out"
    taskset -c 1 /usr/bin/time -f "dnsperf_cpu_s=%U+%S wall_s=%e" $cmd >> "$out" 2>&1 || echo "dnsperf rc=$?" >> "$out"
    t1=$(date +%s.%N); c1=$(cpu_ticks "$pid"); read -r b01 b11 <<<"$(core_busy)"; e1=$(rcvbuf_err)
    python3 - "$t0" "$t1" "$c0" "$c1" "$b00" "$b01" "$b10" "$b11" "$e0" "$e1" "$HZ" >> "$out" <<'EOF'
import sys
t0, t1, c0, c1, b00, b01, b10, b11, e0, e1, hz = map(float, sys.argv[1:])
w = t1 - t0
print(f"server_cpu_pct={100*(c1-c0)/hz/w:.1f} core0_busy_pct={100*(b01-b00)/hz/w:.1f} "
      f"core1_busy_pct={100*(b11-b10)/hz/w:.1f} udp_rcvbuf_errors={int(e1-e0)} measured_wall_s={w:.2f}")
EOF
    echo "server_mem_after_run: VmRSS=$(rss_mib "$pid")MiB" >> "$out"
    grep -E "Queries per second|Queries lost|Average Latency|server_cpu_pct" "$out" | tr -s ' ' | paste -sd' '
    sleep 2
  done
done

{
  echo "# Benchmark: mxdns beside Knot DNS (o-v1.mx.example., N = $N hosts)"
  echo
  echo "Generated by \`bench/run.sh $N $ROUNDS\` on $(date -u +%F) (UTC)."
  echo
  echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)."
  echo "Versions: $("$MXDNS" --version) (release build, commit $(cd "$ROOT" && git rev-parse --short HEAD)), $(dpkg-query -W -f='${Package} ${Version}, ' knot dnsperf 2>/dev/null)rustc $(rustc --version | awk '{print $2}')."
  echo
  echo "Zone: \`gen-zone.py -n $N --origin $ORIGIN.\` (A, AAAA, 2 x TLSA per host; ECDSA P-256, NSEC);"
  echo "mxdns gets the same hosts with \`mxdns host bulk-add --count $N\` and signs at start."
  echo "Queries: \`gen-queries.py -n $N --origin $ORIGIN\` (40 % TLSA, 30 % A, 20 % NXDOMAIN, 10 % NODATA; DO set)."
  echo "Each server pinned to CPU 0 with one worker (Knot \`udp-workers: 1\`, mxdns \`--workers 1\`); dnsperf on CPU 1:"
  echo "\`taskset -c 1 dnsperf -s 127.0.0.1 -p PORT -d queries.txt -D -l $DUR -q $OUTQ -c $CLIENTS\`, $ROUNDS interleaved rounds."
  echo
  echo "## Start to signed answers, memory"
  echo
  echo '```'
  cat "$WORK/run/load-times.txt"
  echo '```'
  echo
  echo "## Sanity checks (kdig: rcode and record counts per type, answer + authority)"
  echo
  echo '```'
  cat "$WORK/run/checks.txt"
  echo '```'
  echo
  echo "## Throughput"
  echo
  python3 "$SHARED/summarize.py" "$WORK/results"
} > "$REPORT"
mkdir -p "$HERE/results/n$N"
cp "$WORK"/results/*.txt "$WORK/run/load-times.txt" "$WORK/run/checks.txt" "$HERE/results/n$N/"
echo "report: $REPORT"
