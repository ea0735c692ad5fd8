#!/usr/bin/env bash
# Secondaries benchmark: mxdns as the hidden primary of a real NSD at N hosts (imported with
# DNSSEC + DANE), beside Knot DNS serving the same signed zone to the same NSD.
#
#   bench/xfr.sh [N]          # default 100000; writes bench/XFR.md (REPORT=... to change)
#   CHANGES=300 ROUNDS=3 bench/xfr.sh 100000
#
# Needs: nsd, knotd, kdig, openssl, python3. Everything on loopback, bounded waits; see
# bench/xfr.py for what is measured.
set -euo pipefail
N=${1:-100000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPORT=${REPORT:-$HERE/XFR.md}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/bench-target}
if [ -z "${MXDNS_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked -q)
  MXDNS_BIN=$CARGO_TARGET_DIR/release/mxdns
  export BUILD=release
else
  export BUILD="given (MXDNS_BIN=$MXDNS_BIN)"
fi
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD) exec python3 "$HERE/xfr.py" "$MXDNS_BIN" "$N" "$REPORT"
