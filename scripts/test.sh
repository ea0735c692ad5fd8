#!/usr/bin/env bash
# The project's test command (README.md): installs the independent DNS tools the tests use as
# judges (Unbound, BIND's delv, ldns, Knot's kdig) and openssl (test certificates, an MTA-STS
# HTTPS server), then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in unbound:unbound delv:bind9-dnsutils ldns-verify-zone:ldnsutils kdig:knot-dnsutils openssl:openssl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${need[*]}: run as root or install them (apt-get install ${need[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's unbound package may start a daemon on port 53; the tests start their own on free
# ports and never use it.

cargo test --workspace --locked "$@"
