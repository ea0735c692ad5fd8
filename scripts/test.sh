#!/usr/bin/env bash
# The project's test command (README.md): installs the independent DNS tools the tests use as
# judges (Unbound, BIND's delv, ldns, Knot's kdig, NSD and Knot DNS as secondaries) and openssl
# (test certificates, an MTA-STS HTTPS server), Prometheus (scrapes /metrics), systemd's
# systemd-analyze (checks the unit), Postfix (the SMTP servers and the independent DANE senders of
# tests/dane.rs: smtpd, posttls-finger, smtp with DANE) and iproute2 (the network namespaces of
# tests/dane.rs), then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in unbound:unbound delv:bind9-dnsutils ldns-verify-zone:ldnsutils kdig:knot-dnsutils nsd:nsd knotd:knot openssl:openssl prometheus:prometheus promtool:prometheus systemd-analyze:systemd postfix:postfix posttls-finger:postfix ip:iproute2 unshare:util-linux chromium:chromium chromedriver:chromium-driver; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${need[*]}: run as root or install them (apt-get install ${need[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Debian starts the daemons of unbound, nsd and knot after installing them (on port 53);
  # the tests start their own on free loopback ports: keep the packaged ones from starting
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
  fi
  apt-get update -qq
  # Postfix installs without asking and without a configuration of its own (the tests bring theirs)
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ "$made_policy" = 1 ] && rm -f "$policy"
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now nsd knot unbound prometheus postfix >/dev/null 2>&1 || true
  fi
fi
# The tests never use port 53 nor a packaged daemon: every Unbound, NSD and Knot they need is
# started by the test itself on a free port with its own configuration.

cargo test --workspace --locked "$@"
