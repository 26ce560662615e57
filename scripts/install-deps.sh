#!/usr/bin/env bash
# Installs the Debian packages a berth task needs, only those missing.
#   scripts/install-deps.sh run    what berthd needs to run pods
#   scripts/install-deps.sh test   that, plus what the test suite needs (containerd included:
#                                  a smoke test runs the benchmark on both runtimes once)
#   scripts/install-deps.sh bench  the same: what `make bench` needs
set -euo pipefail

run_pkgs=(runc containernetworking-plugins protobuf-compiler iproute2 iptables)
test_pkgs=(docker-registry busybox apache2-utils containerd)

case "${1:-run}" in
  run) want=("${run_pkgs[@]}") ;;
  test) want=("${run_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) want=("${run_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "berth needs these Debian packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
