#!/usr/bin/env bash
# The test command (README "Quick start", and what .ci/run calls): installs what the tests need, then runs
# them all. As root it installs the Debian packages the namespace tests use (strongSwan, BIRD, iperf3, …)
# and those tests run; as a normal user they print "SKIPPED: needs root" and pass.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins
  libstrongswan-standard-plugins bird2 iperf3 iputils-ping iproute2 nftables tcpdump jq procps
  util-linux prometheus python3 systemd libcap2-bin conntrack
)

if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  modprobe tun 2>/dev/null || true
else
  echo "== not root: package installs skipped; namespace tests will report SKIPPED: needs root"
fi

echo "== cargo test"
cargo test --all-targets --no-fail-fast
echo "== doc tests"
cargo test --doc
