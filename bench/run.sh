#!/usr/bin/env bash
# mxdns beside Knot DNS (automatic signing) on the same DNSSEC-signed zone: one core each,
# dnsperf on the other core. Adapted from the anchor benchmark in /work/shared/bench
# (prepare.sh, servers.sh, run-bench.sh, check.sh); see bench/README.md.
#
# Usage: bench/run.sh [N] [ROUNDS]     (defaults: N=100000 hosts, ROUNDS=3 rounds per server)
#   env: DUR (dnsperf -l, 20 s), OUTQ (-q, 500), CLIENTS (-c, 10),
#        WORK (/tmp/mxdns-bench/n<N>), SERVERS ("knot-auto nsd mxdns"), REPORT (bench/RESULTS.md),
#        COPY (where raw outputs are copied, bench/results/provisioned/n<N>; own-tlsa: bench/results/n<N>),
#        CARGO_TARGET_DIR (/tmp/bench-target), PORT_KNOT (25311), PORT_MXDNS (25312), PORT_NSD (25314),
#        PORT_MXDNS_API (25313), READY_TIMEOUT (s, 900), STRICT (1: stop when a kdig check fails),
#        FLOOD (1: run the NXDOMAIN flood phase after the mix rounds, 0: skip it), FLOOD_DUR (s, 60),
#        FLOOD_QUERIES (unique names in the flood file, 1000000),
#        MXDNS_BIN (use this mxdns binary instead of building the working tree),
#        SHAPE (provisioned | own-tlsa), FIXED (1: fixed-rate phase), FIXED_QPS (40000), FIXED_DUR (s, 20)
#
# Zone, SHAPE=provisioned (default, what tenants get): N domains c<i>.example imported with
# `mxdns domain import` (DNSSEC + DANE, the provisioning path) into a fresh store, i.e. hosts
# c<i>-example with A, AAAA and `_25._tcp` CNAME to the partition's one shared TLSA RRset; mxdns
# starts first and its zone is exported by AXFR (`kdig axfr`), stripped of DNSSEC records, and
# fed to Knot (signs it) and NSD (ldns-signzone), so all three serve the identical shape.
# SHAPE=own-tlsa (the older case): hosts t<i> (A, AAAA, 2 x TLSA 3 1 1) from bench/gen-zone.py
# for Knot and NSD (NSD serves it pre-signed by ldns-signzone, ECDSA P-256, NSEC: NSD does not
# sign); mxdns gets the same data through `mxdns host bulk-add --count N`.
# Fixed rate (FIXED=1): after the saturation rounds, per round and server one dnsperf -Q FIXED_QPS
# run: server CPU time per answered query, average and 99th-percentile latency (dnsperf -v).
# Queries: bench/gen-queries.py (40 % TLSA, 30 % A, 20 % NXDOMAIN, 10 % NODATA; DO set by -D).
# NXDOMAIN flood (issue requirement 6): bench/gen-flood.py (unique random non-existent names), one
# FLOOD_DUR-second dnsperf run per server with the server's RSS sampled every second.
# Loopback only; every loop is bounded; everything started here is stopped on exit (trap).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
N="${1:-100000}"; ROUNDS="${2:-3}"
DUR="${DUR:-20}"; OUTQ="${OUTQ:-500}"; CLIENTS="${CLIENTS:-10}"
WORK="${WORK:-/tmp/mxdns-bench/n$N}"
SERVERS="${SERVERS:-knot-auto nsd mxdns}"
REPORT="${REPORT:-$HERE/RESULTS.md}"
# raw outputs: results/n<N> for the older own-TLSA shape (as before), results/provisioned/n<N> for the main one
if [ "${SHAPE:-provisioned}" = own-tlsa ]; then COPY="${COPY:-$HERE/results/n$N}"; else COPY="${COPY:-$HERE/results/provisioned/n$N}"; fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/bench-target}"
PORT_KNOT="${PORT_KNOT:-25311}"; PORT_MXDNS="${PORT_MXDNS:-25312}"; PORT_MXDNS_API="${PORT_MXDNS_API:-25313}"
PORT_NSD="${PORT_NSD:-25314}"
READY_TIMEOUT="${READY_TIMEOUT:-900}"; STRICT="${STRICT:-0}"
FLOOD="${FLOOD:-1}"; FLOOD_DUR="${FLOOD_DUR:-60}"; FLOOD_QUERIES="${FLOOD_QUERIES:-1000000}"
FLOOD_PID=""
SHAPE="${SHAPE:-provisioned}"; FIXED="${FIXED:-1}"; FIXED_QPS="${FIXED_QPS:-40000}"; FIXED_DUR="${FIXED_DUR:-20}"
case "$SHAPE" in
  provisioned) HOSTFMT='c{i}-example' ;;
  own-tlsa) HOSTFMT='t{i}' ;;
  *) echo "SHAPE is provisioned or own-tlsa" >&2; exit 1 ;;
esac
host_of() { local f=$HOSTFMT; echo "${f/\{i\}/$1}"; }
ORIGIN=o-v1.mx.example
HZ=$(getconf CLK_TCK)
RUN="$WORK/run"; RES="$WORK/results"; K="$WORK/knot"; D="$WORK/nsd"
MXDNS="${MXDNS_BIN:-$CARGO_TARGET_DIR/release/mxdns}"

for tool in knotd kdig dnsperf taskset python3 ss /usr/bin/time timeout $([ -z "${MXDNS_BIN:-}" ] && echo cargo); do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y knot knot-dnsutils dnsperf time)" >&2; exit 1; }
done
if [[ " $SERVERS " == *" nsd "* ]]; then
  for tool in nsd ldns-keygen ldns-signzone; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y nsd ldnsutils)" >&2; exit 1; }
  done
fi
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs (server on 0, dnsperf on 1)" >&2; exit 1; }
for p in $PORT_KNOT $PORT_MXDNS $PORT_MXDNS_API $PORT_NSD; do
  if ss -Hlnut | awk '{print $5}' | grep -q ":$p\$"; then echo "port $p is busy" >&2; exit 1; fi
done

mkdir -p "$RUN" "$RES" "$K" "$D"
rm -f "$RES"/*.txt "$RUN"/*.txt "$RUN"/*.pid
CMDS="$RUN/commands.txt"; : > "$CMDS"
# log the exact command, then run it
logrun() { echo "$*" >> "$CMDS"; "$@"; }
port_of() { case "$1" in knot-auto) echo "$PORT_KNOT" ;; mxdns) echo "$PORT_MXDNS" ;; nsd) echo "$PORT_NSD" ;; *) echo "unknown server $1" >&2; return 1 ;; esac; }
pidf() { echo "$RUN/$1.pid"; }
now() { date +%s.%N; }
since() { python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.2f}')" "$1"; }
tree_pids() { echo "$1"; local c; for c in $(pgrep -P "$1" || true); do tree_pids "$c"; done; }
# utime+stime of all threads of the process and of its children (NSD serves from a forked child)
cpu_ticks() { local t=0 p v; for p in $(tree_pids "$1"); do v=$(sed 's/^.*) //' /proc/"$p"/stat 2>/dev/null | awk '{print $12 + $13}'); t=$((t + ${v:-0})); done; echo "$t"; }
# the largest process of the tree (NSD keeps the zone in a forked process, not in the first)
status_kib() { local m=0 p v; for p in $(tree_pids "$1"); do v=$(awk -v k="$2:" '$1==k{printf "%d", $2}' /proc/"$p"/status 2>/dev/null); [ "${v:-0}" -gt "$m" ] && m=$v; done; echo "$m"; }
status_mib() { echo $(($(status_kib "$1" "$2") / 1024)); }
core_busy() { awk '/^cpu0 |^cpu1 /{b=$2+$3+$4+$7+$8+$9; printf "%d ", b}' /proc/stat; }
rcvbuf_err() { awk '/^Udp: [0-9]/{print $6}' /proc/net/snmp; }
meta() { echo "server=$1 ${*:2}" >> "$RUN/servers.txt"; }

stop_one() {
  local s=$1 f; f=$(pidf "$s")
  [ -f "$f" ] || return 0
  local pid t0 rc=0; pid=$(cat "$f"); t0=$(now)
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then echo "$s: no exit 30 s after SIGTERM, SIGKILL" | tee -a "$RUN/stop.txt"; kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || rc=$?
    echo "$s: stopped by SIGTERM after $(since "$t0") s, exit status $rc" | tee -a "$RUN/stop.txt"
  else
    wait "$pid" 2>/dev/null || rc=$?
    echo "$s: was not running any more at stop (exit status $rc)" | tee -a "$RUN/stop.txt"
  fi
  rm -f "$f"
}
stop_flood_client() { # a flood dnsperf still running (error or Ctrl-C during the flood phase)
  [ -n "$FLOOD_PID" ] || return 0
  local p; for p in $(tree_pids "$FLOOD_PID"); do kill -TERM "$p" 2>/dev/null || true; done
  FLOOD_PID=""
}
stop_all() { stop_flood_client; for s in $SERVERS; do stop_one "$s"; done; }
trap 'stop_all' EXIT
trap 'echo interrupted >&2; exit 130' INT TERM

if [ -n "${MXDNS_BIN:-}" ]; then
  echo "== no build: MXDNS_BIN=$MXDNS_BIN"
  [ -x "$MXDNS_BIN" ] || { echo "MXDNS_BIN=$MXDNS_BIN is not an executable" >&2; exit 1; }
  echo "# mxdns: prebuilt binary $MXDNS_BIN (MXDNS_BIN, not built by run.sh)" >> "$CMDS"
else
  echo "== build (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  echo "(cd /work/main && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release -p mxdns)" >> "$CMDS"
  (cd "$ROOT" && cargo build --release -p mxdns 2>&1 | tail -2)
fi
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD)
DIRTY=$(cd "$ROOT" && git status --porcelain -- . ':!bench' | wc -l)

echo "== zone and queries (N=$N, SHAPE=$SHAPE)"
if [ "$SHAPE" = own-tlsa ]; then
  t0=$(now); logrun python3 "$HERE/gen-zone.py" -n "$N" --origin "$ORIGIN." -o "$WORK/$ORIGIN.zone"
  echo "gen-zone.py: $(since "$t0") s" >> "$RUN/prep-times.txt"
else
  [[ " $SERVERS " == *" mxdns "* ]] || { echo "SHAPE=provisioned exports the zone from mxdns: SERVERS needs mxdns" >&2; exit 1; }
  rm -f "$WORK/$ORIGIN.zone"
  python3 -c "import sys; sys.stdout.write(''.join(f'c{i}.example\\n' for i in range(1, int(sys.argv[1]) + 1)))" "$N" > "$WORK/domains.txt"
fi
t0=$(now); logrun python3 "$HERE/gen-queries.py" -n "$N" --host "$HOSTFMT" --origin "$ORIGIN" -o "$WORK/queries.txt"
echo "gen-queries.py: $(since "$t0") s" >> "$RUN/prep-times.txt"
if [ "$FLOOD" = 1 ]; then
  t0=$(now); logrun python3 "$HERE/gen-flood.py" -n "$N" -q "$FLOOD_QUERIES" --host "$HOSTFMT" --origin "$ORIGIN" -o "$WORK/flood.txt"
  echo "gen-flood.py: $(since "$t0") s" >> "$RUN/prep-times.txt"
fi

if [[ " $SERVERS " == *" mxdns "* ]] && [ "$SHAPE" = own-tlsa ]; then
  echo "== mxdns store (bulk-add)"
  rm -rf "$WORK/mxdns-data"
  t0=$(now)
  logrun "$MXDNS" --data-dir "$WORK/mxdns-data" host bulk-add --count "$N" > "$RUN/bulk-add.txt" 2>&1 \
    || { cat "$RUN/bulk-add.txt"; echo "bulk-add failed" >&2; exit 1; }
  echo "mxdns host bulk-add --count $N: $(since "$t0") s (store $(du -sm "$WORK/mxdns-data" | cut -f1) MiB)" >> "$RUN/prep-times.txt"
  tail -3 "$RUN/bulk-add.txt"
elif [[ " $SERVERS " == *" mxdns "* ]]; then
  echo "== mxdns store (domain import: DNSSEC + DANE for $N domains, the provisioning path)"
  rm -rf "$WORK/mxdns-data"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=mx \
    -addext basicConstraints=critical,CA:FALSE -keyout "$WORK/mx-key.pem" -out "$WORK/mx-cert.pem" 2>/dev/null
  TENANT=$("$MXDNS" --data-dir "$WORK/mxdns-data" tenant add bulk | python3 -c 'import json,sys; print(json.load(sys.stdin)["tenantId"])')
  echo "$MXDNS --data-dir $WORK/mxdns-data tenant add bulk" >> "$CMDS"
  logrun "$MXDNS" --data-dir "$WORK/mxdns-data" partition certificates o-v1 --current "$WORK/mx-cert.pem" > /dev/null
  t0=$(now)
  logrun "$MXDNS" --data-dir "$WORK/mxdns-data" domain import "$WORK/domains.txt" --tenant "$TENANT" --batch 10000 \
    > "$RUN/import.txt" 2>&1 || { cat "$RUN/import.txt"; echo "domain import failed" >&2; exit 1; }
  echo "mxdns domain import ($N domains, no server running): $(since "$t0") s (store $(du -sm "$WORK/mxdns-data" | cut -f1) MiB)" >> "$RUN/prep-times.txt"
  tail -c 400 "$RUN/import.txt"; echo
fi

prep_nsd() {
  echo "== NSD: the zone pre-signed by ldns-signzone (as in /work/shared/bench/prepare.sh)"
  (
    cd "$D" && rm -f K"$ORIGIN".* "$ORIGIN".zone.signed
    KSK=$(ldns-keygen -a ECDSAP256SHA256 -k "$ORIGIN"); ZSK=$(ldns-keygen -a ECDSAP256SHA256 "$ORIGIN")
    rm -f "$KSK.ds" "$ZSK.ds"
    t0=$(now)
    logrun taskset -c 0 ldns-signzone -o "$ORIGIN." -f "$D/$ORIGIN.zone.signed" "$WORK/$ORIGIN.zone" "$ZSK" "$KSK"
    echo "ldns-signzone (pinned to cpu0, for NSD): $(since "$t0") s" >> "$RUN/prep-times.txt"
  )
  cat > "$D/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$PORT_NSD
    server-count: 1
    minimal-responses: yes
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    username: ""
    chroot: ""
    zonesdir: "$D"
    database: ""
    pidfile: "$D/nsd.pid"
    xfrdfile: "$D/xfrd.state"
    zonelistfile: "$D/zone.list"
    xfrdir: "$D"
    logfile: "$D/nsd.log"
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: $ORIGIN.
    zonefile: "$D/$ORIGIN.zone.signed"
EOF
}
if [ "$SHAPE" = own-tlsa ] && [[ " $SERVERS " == *" nsd "* ]]; then prep_nsd; fi

# Knot DNS, automatic signing at load (as knot-auto in /work/shared/bench/prepare.sh)
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
        TLSA "_25._tcp.$(host_of "$N").$ORIGIN" 2>/dev/null) || return 1
  grep -q "status: NOERROR" <<<"$out" && grep -q "RRSIG" <<<"$out"
}

start() {
  local s=$1 port; port=$(port_of "$s")
  echo "== start $s (port $port)"
  local t0; t0=$(now)
  case "$s" in
    knot-auto)
      rm -rf "$K/keys" "$K/journal" "$K/timers" "$K/knot.log"   # fresh keys => full keygen + signing
      echo "taskset -c 0 knotd -c $K/knot.conf" >> "$CMDS"
      taskset -c 0 knotd -c "$K/knot.conf" < /dev/null > "$RUN/knot.out" 2>&1 &
      ;;
    nsd)
      rm -f "$D/nsd.log" "$D/xfrd.state" "$D/zone.list"
      echo "taskset -c 0 nsd -d -c $D/nsd.conf" >> "$CMDS"
      taskset -c 0 nsd -d -c "$D/nsd.conf" < /dev/null > "$RUN/nsd.out" 2>&1 &
      ;;
    mxdns)
      echo "MXDNS_LOG=warn taskset -c 0 $MXDNS --data-dir $WORK/mxdns-data serve --dns-listen 127.0.0.1:$PORT_MXDNS --api-listen 127.0.0.1:$PORT_MXDNS_API --workers 1" >> "$CMDS"
      MXDNS_LOG=warn taskset -c 0 "$MXDNS" --data-dir "$WORK/mxdns-data" serve \
        --dns-listen "127.0.0.1:$PORT_MXDNS" --api-listen "127.0.0.1:$PORT_MXDNS_API" --workers 1 \
        < /dev/null > "$RUN/mxdns.out" 2>&1 &
      ;;
  esac
  local pid=$!
  echo "$pid" > "$(pidf "$s")"
  local i=0 max=$((READY_TIMEOUT * 20))
  until probe "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$s died before answering; output:" >&2; tail -20 "$RUN/${s%%-*}.out" >&2; exit 1
    fi
    i=$((i + 1)); [ $i -gt $max ] && { echo "$s: no signed answer after ${READY_TIMEOUT} s" >&2; exit 1; }
    sleep 0.05
  done
  local el cpu; el=$(since "$t0"); cpu=$(python3 -c "print(f'{$(cpu_ticks "$pid")/$HZ:.1f}')")
  sleep 1
  meta "$s" "start_to_signed_s=$el" "load_cpu_s=$cpu" "rss_load_mib=$(status_mib "$pid" VmRSS)" \
       "hwm_load_mib=$(status_mib "$pid" VmHWM)" "threads=$(awk '/^Threads:/{print $2}' /proc/"$pid"/status)"
  echo "$s N=$N start_to_signed_answers=${el}s cpu_during_load=${cpu}s VmRSS=$(status_mib "$pid" VmRSS)MiB VmHWM=$(status_mib "$pid" VmHWM)MiB" \
    | tee -a "$RUN/load-times.txt"
}

# kdig sanity checks: rcode, AA, record types per section, with expectations
FAILS=0
check_q() { # SERVER TYPE NAME KIND(positive|nxdomain|nodata)
  local s=$1 type=$2 name=$3 kind=$4 port out rcode flags ans auth ok=yes why=""
  port=$(port_of "$s")
  out=$(kdig @127.0.0.1 -p "$port" +dnssec +norecurse +timeout=2 +retry=0 "$type" "$name" 2>&1) || true
  rcode=$(grep -o 'status: [A-Z]*' <<<"$out" | head -1 | cut -d' ' -f2)
  flags=$(grep -o 'Flags: [a-z ]*' <<<"$out" | head -1 | sed 's/Flags: //; s/ *$//')
  sect() { awk -v h=";; $1 SECTION:" '$0==h{s=1;next} /^;; /{s=0} s && NF>=4 && $1 !~ /^;/ {print $4}' <<<"$out" | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}'; }
  ans=$(sect ANSWER); auth=$(sect AUTHORITY)
  has() { grep -qE "(^| )$1=[0-9]+" <<<"$2"; }
  [[ " $flags " == *" aa "* ]] || { ok=no; why+=" no-AA"; }
  case "$kind" in
    positive) [ "$rcode" = NOERROR ] || { ok=no; why+=" rcode"; }
              has "$type" "$ans" || { ok=no; why+=" no-$type"; }
              has RRSIG "$ans" || { ok=no; why+=" no-RRSIG"; } ;;
    nxdomain) [ "$rcode" = NXDOMAIN ] || { ok=no; why+=" rcode"; }
              has NSEC "$auth" || { ok=no; why+=" no-NSEC"; }
              has RRSIG "$auth" || { ok=no; why+=" no-RRSIG"; }
              has SOA "$auth" || { ok=no; why+=" no-SOA"; } ;;
    nodata)   [ "$rcode" = NOERROR ] || { ok=no; why+=" rcode"; }
              [ -z "$ans" ] || { ok=no; why+=" answer-not-empty"; }
              has NSEC "$auth" || { ok=no; why+=" no-NSEC"; }
              has RRSIG "$auth" || { ok=no; why+=" no-RRSIG"; }
              has SOA "$auth" || { ok=no; why+=" no-SOA"; } ;;
  esac
  [ $ok = yes ] || FAILS=$((FAILS + 1))
  printf '%-9s %-7s %-34s %-8s %-8s flags=[%s] answer={%s} authority={%s} %s\n' "$s" "$type" "$name" "$kind" \
    "${rcode:-none}" "$flags" "${ans% }" "${auth% }" "$([ $ok = yes ] && echo OK || echo "FAIL:$why")" | tee -a "$RUN/checks.txt"
  [ $ok = yes ] || echo "$out" >> "$RUN/checks-failed-detail.txt"
}
check() {
  local s=$1
  check_q "$s" TLSA "_25._tcp.$(host_of 1).$ORIGIN" positive
  check_q "$s" TLSA "_25._tcp.$(host_of "$N").$ORIGIN" positive
  check_q "$s" A "$(host_of $((N / 2))).$ORIGIN" positive
  check_q "$s" AAAA "$(host_of $((N / 2))).$ORIGIN" positive
  check_q "$s" DNSKEY "$ORIGIN" positive
  check_q "$s" A "$(host_of 1)-ffff.$ORIGIN" nxdomain
  check_q "$s" A "$(host_of $((N + 1))).$ORIGIN" nxdomain
  check_q "$s" MX "$(host_of 1).$ORIGIN" nodata
  check_q "$s" TLSA "_tcp.$(host_of 1).$ORIGIN" nodata   # empty non-terminal
}

if [ "$SHAPE" = provisioned ]; then
  # mxdns first; its zone (by AXFR) without the DNSSEC records is what Knot and NSD sign and serve
  start mxdns
  t0=$(now)
  echo "kdig @127.0.0.1 -p $PORT_MXDNS AXFR $ORIGIN. | (drop RRSIG NSEC NSEC3 NSEC3PARAM DNSKEY CDS CDNSKEY) > $WORK/$ORIGIN.zone" >> "$CMDS"
  kdig @127.0.0.1 -p "$PORT_MXDNS" +timeout=60 +retry=0 AXFR "$ORIGIN." > "$RUN/axfr.txt" \
    || { echo "AXFR from mxdns failed" >&2; exit 1; }
  awk 'BEGIN{d["RRSIG"]=d["NSEC"]=d["NSEC3"]=d["NSEC3PARAM"]=d["DNSKEY"]=d["CDS"]=d["CDNSKEY"]=1}
       /^;/ || NF < 4 {next} !($4 in d) && !($4 == "SOA" && seen++) {print}' "$RUN/axfr.txt" > "$WORK/$ORIGIN.zone"
  echo "AXFR from mxdns and strip: $(since "$t0") s ($(grep -c . "$RUN/axfr.txt") lines, $(wc -l < "$WORK/$ORIGIN.zone") records kept;" \
    "types: $(awk '{print $4}' "$WORK/$ORIGIN.zone" | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}'))" >> "$RUN/prep-times.txt"
  if [[ " $SERVERS " == *" nsd "* ]]; then prep_nsd; fi
  for s in $SERVERS; do [ "$s" = mxdns ] || start "$s"; done
else
  for s in $SERVERS; do start "$s"; done
fi
for s in $SERVERS; do check "$s"; done
if [ "$FAILS" -gt 0 ]; then
  echo "WARNING: $FAILS kdig check(s) failed, details in $RUN/checks-failed-detail.txt" >&2
  [ "$STRICT" = 1 ] && exit 1
fi

# the server's CPU % and the load of both cores over a run window, UDP receive-buffer errors
cpu_line() {
  python3 - "$@" "$HZ" <<'EOF'
import sys
t0, t1, c0, c1, b00, b01, b10, b11, e0, e1, hz = map(float, sys.argv[1:])
w = t1 - t0
print(f"server_cpu_pct={100*(c1-c0)/hz/w:.1f} core0_busy_pct={100*(b01-b00)/hz/w:.1f} "
      f"core1_busy_pct={100*(b11-b10)/hz/w:.1f} udp_rcvbuf_errors={int(e1-e0)} measured_wall_s={w:.2f}")
EOF
}
# let the server drain its socket backlog before the next run (bounded)
drain() {
  local a b
  for _ in $(seq 1 60); do
    a=$(cpu_ticks "$1"); sleep 1; kill -0 "$1" 2>/dev/null || break; b=$(cpu_ticks "$1")
    [ $((b - a)) -lt 5 ] && break
  done
  sleep 1
}

DEAD=""
alive() { # alive SERVER PID WHEN: false, and noted once in stop.txt, when the server's process is gone
  kill -0 "$2" 2>/dev/null && return 0
  [[ " $DEAD " == *" $1 "* ]] || { DEAD+=" $1"; echo "$1: process $2 gone $3" | tee -a "$RUN/stop.txt"; }
  return 1
}
for r in $(seq 1 "$ROUNDS"); do
  for s in $SERVERS; do
    port=$(port_of "$s"); pid=$(cat "$(pidf "$s")")
    alive "$s" "$pid" "before round $r" || continue
    out="$RES/$s-r$r.txt"
    cmd="dnsperf -s 127.0.0.1 -p $port -d $WORK/queries.txt -D -l $DUR -q $OUTQ -c $CLIENTS"
    echo "== round $r/$ROUNDS $s: taskset -c 1 $cmd"
    [ "$r" = 1 ] && echo "taskset -c 1 $cmd" >> "$CMDS"
    c0=$(cpu_ticks "$pid"); read -r b00 b10 <<<"$(core_busy)"; e0=$(rcvbuf_err); t0=$(now)
    { echo "# $(date -u +%FT%TZ) N=$N round=$r server=$s"; echo "# cmd: taskset -c 1 $cmd"; } > "$out"
    taskset -c 1 timeout $((DUR + 60)) /usr/bin/time -f "dnsperf_cpu_s=%U+%S wall_s=%e" $cmd >> "$out" 2>&1 \
      || echo "dnsperf rc=$?" >> "$out"
    t1=$(now)
    if ! kill -0 "$pid" 2>/dev/null; then echo "server_died_during_run=1" >> "$out"; echo "$s died during round $r" >&2; continue; fi
    c1=$(cpu_ticks "$pid"); read -r b01 b11 <<<"$(core_busy)"; e1=$(rcvbuf_err)
    cpu_line "$t0" "$t1" "$c0" "$c1" "$b00" "$b01" "$b10" "$b11" "$e0" "$e1" >> "$out"
    echo "server_mem_after_run: VmRSS=$(status_mib "$pid" VmRSS)MiB" >> "$out"
    grep -E "Queries per second|Queries lost|Average Latency|server_cpu_pct" "$out" | tr -s ' ' | paste -sd' '
    drain "$pid"
  done
done

# Fixed rate: dnsperf -Q FIXED_QPS, well below the client's ceiling, interleaved rounds; the server's
# CPU time per answered query (steadier than QPS at saturation on a shared VM), average and p99
# latency (from dnsperf -v's per-query lines, which are reduced to figures and not kept).
if [ "$FIXED" = 1 ]; then
  for r in $(seq 1 "$ROUNDS"); do
    for s in $SERVERS; do
      port=$(port_of "$s"); pid=$(cat "$(pidf "$s")")
      alive "$s" "$pid" "before fixed-rate round $r" || continue
      out="$RES/fixed-$s-q$r.txt"
      cmd="dnsperf -s 127.0.0.1 -p $port -d $WORK/queries.txt -D -l $FIXED_DUR -q $OUTQ -c $CLIENTS -Q $FIXED_QPS -v"
      echo "== fixed rate $r/$ROUNDS $s: taskset -c 1 $cmd"
      [ "$r" = 1 ] && echo "taskset -c 1 $cmd   # fixed rate (-v lines reduced to avg/p99 by fixedrate.py)" >> "$CMDS"
      { echo "# $(date -u +%FT%TZ) N=$N fixed_round=$r server=$s qps_target=$FIXED_QPS"; echo "# cmd: taskset -c 1 $cmd"; } > "$out"
      c0=$(cpu_ticks "$pid"); read -r b00 b10 <<<"$(core_busy)"; e0=$(rcvbuf_err); t0=$(now)
      taskset -c 1 timeout $((FIXED_DUR + 60)) /usr/bin/time -o "$RUN/fixed-time.txt" -f "dnsperf_cpu_s=%U+%S wall_s=%e" $cmd \
        > "$RUN/fixed-dnsperf.out" 2>&1 || echo "dnsperf rc=$?" >> "$out"
      t1=$(now)
      if ! kill -0 "$pid" 2>/dev/null; then echo "server_died_during_run=1" >> "$out"; echo "$s died during fixed round $r" >&2; continue; fi
      c1=$(cpu_ticks "$pid"); read -r b01 b11 <<<"$(core_busy)"; e1=$(rcvbuf_err)
      grep -v '^> ' "$RUN/fixed-dnsperf.out" >> "$out" || true
      cat "$RUN/fixed-time.txt" >> "$out"
      cpu_line "$t0" "$t1" "$c0" "$c1" "$b00" "$b01" "$b10" "$b11" "$e0" "$e1" >> "$out"
      echo "server_cpu_ticks=$((c1 - c0)) hz=$HZ" >> "$out"
      python3 "$HERE/fixedrate.py" --latencies "$RUN/fixed-dnsperf.out" >> "$out"
      rm -f "$RUN/fixed-dnsperf.out"
      python3 "$HERE/fixedrate.py" --one "$out"
      drain "$pid"
    done
  done
fi

for s in $SERVERS; do
  f=$(pidf "$s"); [ -f "$f" ] || continue; pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null && meta "$s" "rss_end_mib=$(status_mib "$pid" VmRSS)" "hwm_end_mib=$(status_mib "$pid" VmHWM)"
done

# NXDOMAIN flood (issue requirement 6): FLOOD_DUR s of unique random non-existent names per server,
# same pinning and dnsperf settings as the mix, the server's RSS (largest process of its tree)
# sampled every second by a sampler on CPU 1.
proof() { # the denial proof of a name: NSEC and RRSIG records of the authority section, TTL left out
  kdig @127.0.0.1 -p "$1" +dnssec +norecurse +noall +authority +timeout=2 +retry=0 A "$2" 2>/dev/null \
    | awk '$4 == "NSEC" || $4 == "RRSIG" {$2 = ""; print}' | sort
}
if [ "$FLOOD" = 1 ]; then
  # two flood names under the apex (<hex>.ORIGIN sorts before ns1): the apex NSEC covers both, so a
  # server that does not sign per query answers both with the very same NSEC and RRSIG
  read -r FN1 FN2 <<<"$(awk '$1 ~ /^[0-9]/ {print $1; if (++n == 2) exit}' "$WORK/flood.txt" | paste -sd' ')" || true
  for s in $SERVERS; do
    port=$(port_of "$s"); f=$(pidf "$s"); [ -f "$f" ] || continue; pid=$(cat "$f")
    alive "$s" "$pid" "before the flood" || continue
    out="$RES/flood-$s.txt"
    cmd="dnsperf -s 127.0.0.1 -p $port -d $WORK/flood.txt -D -l $FLOOD_DUR -q $OUTQ -c $CLIENTS"
    echo "== NXDOMAIN flood $s: taskset -c 1 $cmd (RSS every second)"
    echo "taskset -c 1 $cmd   # NXDOMAIN flood" >> "$CMDS"
    { echo "# $(date -u +%FT%TZ) N=$N flood=1 server=$s flood_lines=$(wc -l < "$WORK/flood.txt")"; echo "# cmd: taskset -c 1 $cmd"; } > "$out"
    rss0=$(status_kib "$pid" VmRSS)
    c0=$(cpu_ticks "$pid"); read -r b00 b10 <<<"$(core_busy)"; e0=$(rcvbuf_err); t0=$(now)
    taskset -c 1 timeout $((FLOOD_DUR + 60)) /usr/bin/time -f "dnsperf_cpu_s=%U+%S wall_s=%e" $cmd \
      > "$RUN/flood-dnsperf.out" 2>&1 &
    FLOOD_PID=$!
    # sampler: every second until dnsperf has exited (bounded), VmRSS of the largest process of the tree
    # (in the background, so that the wait below, and with it a trapped Ctrl-C / SIGTERM, is not held up)
    taskset -c 1 python3 - "$pid" "$FLOOD_PID" "$((FLOOD_DUR + 70))" > "$RUN/flood-rss.out" <<'EOF' &
import os, sys, time
root, client, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def stat(p):
    try:
        t = open(f"/proc/{p}/stat").read()
    except OSError:
        return None
    f = t[t.rindex(")") + 2:].split()
    return f[0], int(f[1])  # state, ppid
def tree():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat(d)
            if st:
                kids.setdefault(st[1], []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out
def rss_kib():
    m = 0
    for p in tree():
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    m = max(m, int(line.split()[1]))
        except OSError:
            pass
    return m
def running(p):
    st = stat(p)
    return st is not None and st[0] != "Z"
t0 = time.time()
samples, k = [], 1
while time.time() - t0 < limit:
    while running(client) and time.time() < t0 + k:
        time.sleep(0.05)
    if not running(client):
        break
    samples.append(f"{time.time() - t0:.1f}:{rss_kib()}")
    k += 1
print("rss_samples_kib=" + " ".join(samples))
EOF
    sampler=$!
    rc=0; wait "$FLOOD_PID" || rc=$?
    FLOOD_PID=""; t1=$(now)
    wait "$sampler" || echo "RSS sampler failed" >&2
    cat "$RUN/flood-dnsperf.out" >> "$out"; [ "$rc" = 0 ] || echo "dnsperf rc=$rc" >> "$out"
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "server_died_during_run=1" >> "$out"; echo "$s died during the flood" | tee -a "$RUN/stop.txt" >&2
      DEAD+=" $s"; continue
    fi
    c1=$(cpu_ticks "$pid"); read -r b01 b11 <<<"$(core_busy)"; e1=$(rcvbuf_err)
    cpu_line "$t0" "$t1" "$c0" "$c1" "$b00" "$b01" "$b10" "$b11" "$e0" "$e1" >> "$out"
    echo "rss_start_kib=$rss0 rss_end_kib=$(status_kib "$pid" VmRSS) hwm_end_kib=$(status_kib "$pid" VmHWM)" >> "$out"
    cat "$RUN/flood-rss.out" >> "$out"
    p1=$(proof "$port" "$FN1") || p1=""; p2=$(proof "$port" "$FN2") || p2=""
    same=no; [ -n "$p1" ] && [ "$p1" = "$p2" ] && same=yes
    echo "same_proof_two_apex_names=$same names=$FN1,$FN2 nsec_rrsig_records=$(grep -c . <<<"$p1")" >> "$out"
    grep -E "Queries per second|Queries lost|Average Latency|server_cpu_pct|rss_start_kib|same_proof" "$out" \
      | sed 's/ names=.*//' | tr -s ' ' | paste -sd' '
    drain "$pid"
  done
fi
stop_all

{
  echo "# Benchmark: mxdns beside Knot DNS and NSD (o-v1.mx.example., N = $N hosts, shape: $SHAPE)"
  echo
  echo "Generated by \`SHAPE=$SHAPE bench/run.sh $N $ROUNDS\` (DUR=$DUR OUTQ=$OUTQ CLIENTS=$CLIENTS FIXED_QPS=$FIXED_QPS FIXED_DUR=$FIXED_DUR) on $(date -u '+%F %H:%M') UTC."
  echo
  echo "## Machine and versions"
  echo
  echo "- Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME")."
  if [ -n "${MXDNS_BIN:-}" ]; then
    echo "- mxdns: $("$MXDNS" --version 2>&1 | head -1), prebuilt binary \`$MXDNS_BIN\` (MXDNS_BIN: not built by run.sh, so not necessarily the working tree, which was at commit $COMMIT$([ "$DIRTY" -gt 0 ] && echo " plus $DIRTY uncommitted change(s) outside bench/"))."
  else
    echo "- mxdns: $("$MXDNS" --version 2>&1 | head -1), release build of commit $COMMIT$([ "$DIRTY" -gt 0 ] && echo " plus $DIRTY uncommitted change(s) outside bench/ in the working tree at build time"), $(rustc --version)."
  fi
  echo "- $(dpkg-query -W -f='${Package} ${Version}, ' knot knot-dnsutils dnsperf 2>/dev/null | sed 's/, $//')."
  echo
  echo "## Setup"
  echo
  if [ "$SHAPE" = provisioned ]; then
    echo "- Zone (SHAPE=provisioned, what tenants get): $N domains \`c<i>.example\` imported by \`mxdns domain import\` (DNSSEC + DANE)"
    echo "  into a fresh store: per host \`c<i>-example\` A + AAAA and \`_25._tcp.c<i>-example\` CNAME to the partition's one shared"
    echo "  TLSA RRset (a TLSA query answers the CNAME and the TLSA RRset, both signed); mxdns signs everything at start (full build"
    echo "  from the store). Its zone, transferred by AXFR (\`kdig axfr\`) without RRSIG/NSEC/DNSKEY/CDS/CDNSKEY, is what Knot signs"
    echo "  itself (ECDSA P-256, NSEC, fresh keys each start) and what ldns-signzone signs for NSD: the identical shape."
  else
    echo "- Zone (SHAPE=own-tlsa): \`gen-zone.py -n $N --origin $ORIGIN.\`: SOA, 2 NS + glue, per host \`t<i>\` A + AAAA and \`_25._tcp.t<i>\` 2 × TLSA 3 1 1, TTL 3600;"
    echo "  Knot signs it itself (ECDSA P-256, NSEC, KSK + ZSK, fresh keys each start); mxdns gets the same hosts through"
    echo "  \`mxdns host bulk-add --count $N\` into its SQLite store and signs everything at start."
  fi
  echo "- Queries: \`gen-queries.py -n $N --host '$HOSTFMT' --origin $ORIGIN\` (1 000 000 lines, fixed seed): 40 % TLSA, 30 % A at existing hosts,"
  echo "  20 % NXDOMAIN (\`<host>-<hex>\`), 10 % NODATA (MX at the host); dnsperf \`-D\` sets DO."
  echo "- Each server pinned to CPU 0 (\`taskset -c 0\`, all its threads) with one worker (Knot \`udp-workers: 1\`, mxdns \`--workers 1\`),"
  echo "  dnsperf pinned to CPU 1; $ROUNDS interleaved rounds × $DUR s per server; loopback."
  echo "- Start → signed answers: from exec until \`kdig +dnssec TLSA _25._tcp.t$N.$ORIGIN\` returns NOERROR with RRSIG"
  echo "  (50 ms polling, 1 s kdig timeout). RSS/VmHWM from /proc/PID/status (1 s after ready, and after all runs)."
  if [ "$FLOOD" = 1 ]; then
    echo "- NXDOMAIN flood (after the mix rounds): \`gen-flood.py -n $N -q $FLOOD_QUERIES --origin $ORIGIN\` ($FLOOD_QUERIES different"
    echo "  random names, fixed seed: half \`<12 hex>.$ORIGIN\`, half \`x<12 hex>.t<i>.$ORIGIN\`, all A, DO set), one $FLOOD_DUR s dnsperf"
    echo "  run per server with the same pinning and dnsperf settings; VmRSS of the server (largest process of its tree)"
    echo "  just before, every second during and just after the run."
  fi
  echo
  echo "## Results"
  echo
  python3 "$HERE/summarize.py" "$RES" --servers "$RUN/servers.txt"
  echo
  if [ "$FIXED" = 1 ]; then
    echo "### Fixed rate: $FIXED_QPS queries per second (\`dnsperf -Q $FIXED_QPS -l $FIXED_DUR\`, $ROUNDS interleaved rounds)"
    echo
    python3 "$HERE/fixedrate.py" --table "$RES"
    echo
  fi
  echo "## Exact commands"
  echo
  echo '```'
  sed "s#$ROOT#/work/main#g" "$CMDS"
  echo '```'
  echo
  echo "Preparation times:"
  echo
  echo '```'
  cat "$RUN/prep-times.txt"
  echo '```'
  echo
  echo "## Start, memory, stop"
  echo
  echo '```'
  cat "$RUN/load-times.txt" "$RUN/stop.txt"
  echo '```'
  echo
  echo "mxdns serve output (MXDNS_LOG=warn): $(wc -l < "$RUN/mxdns.out" 2>/dev/null || echo 0) line(s)$([ -s "$RUN/mxdns.out" ] && echo ", last ones:")"
  [ -s "$RUN/mxdns.out" ] && { echo; echo '```'; tail -5 "$RUN/mxdns.out" | sed 's/\x1b\[[0-9;]*m//g'; echo '```'; }
  echo
  echo "## Sanity checks (kdig +dnssec; record types per section)"
  echo
  echo '```'
  cat "$RUN/checks.txt"
  echo '```'
  [ "$FAILS" -gt 0 ] && echo && echo "**$FAILS check(s) failed** (full kdig output in \`checks-failed-detail.txt\` beside the raw outputs)."
  [ -n "$DEAD" ] && echo && echo "**Server(s) stopped running during the benchmark:$DEAD** (see the stop section)."
  true
} > "$REPORT"
mkdir -p "$COPY"
rm -f "$COPY"/*.txt
cp "$RES"/*.txt "$RUN"/{load-times,checks,stop,servers,prep-times,commands}.txt "$K/knot.conf" "$COPY/"
[ -f "$RUN/checks-failed-detail.txt" ] && cp "$RUN/checks-failed-detail.txt" "$COPY/"
echo "report: $REPORT"
[ "$FAILS" -eq 0 ] && [ -z "$DEAD" ]
