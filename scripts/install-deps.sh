#!/usr/bin/env bash
# Installs what a berth task needs, only what is missing.
#   scripts/install-deps.sh run    what berthd needs to run pods
#   scripts/install-deps.sh test   that, plus what the test suite needs: Debian packages
#                                  (containerd included: a smoke test runs the benchmark on both
#                                  runtimes once) and, in target/test-tools/, a Python gRPC
#                                  client from PyPI
#   scripts/install-deps.sh bench  what `make bench` needs
#   scripts/install-deps.sh conformance  what `make conformance` needs
#   scripts/install-deps.sh node   what `make test-node` needs: that of test, and qemu (10, from
#                                  bookworm-backports, whose sources entry it adds), debootstrap
set -euo pipefail
cd "$(dirname "$0")/.."

# libseccomp-dev: berthd compiles seccomp profiles with libseccomp (the build links it).
run_pkgs=(runc containernetworking-plugins protobuf-compiler libseccomp-dev iproute2 iptables)
test_pkgs=(docker-registry busybox apache2-utils containerd python3 python3-venv)
node_pkgs=(debootstrap e2fsprogs qemu-utils)
# From bookworm-backports: Debian 12's own qemu (7.2) is older than the guest needs.
backports_pkgs=(qemu-system-x86)
# The C-core gRPC client that sends the socket path as :authority (Debian's 1.51 does not).
grpcio_version=1.85.3

case "${1:-run}" in
  run) want=("${run_pkgs[@]}") ;;
  test | bench | conformance) want=("${run_pkgs[@]}" "${test_pkgs[@]}") ;;
  node) want=("${run_pkgs[@]}" "${test_pkgs[@]}" "${node_pkgs[@]}") ;;
  *) echo "usage: $0 run|test|bench|conformance|node" >&2; exit 2 ;;
esac

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "berth needs these Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-run}" = node ]; then
  backports=/etc/apt/sources.list.d/berth-backports.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "adding bookworm-backports to apt's sources ($backports)"
    cat >"$backports" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt-get update -qq
  fi
  if ! qemu-system-x86_64 --version 2>/dev/null | grep -Eq 'version (9|[1-9][0-9])\.'; then
    echo "installing ${backports_pkgs[*]} from bookworm-backports"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends -t bookworm-backports "${backports_pkgs[@]}" >/dev/null
  fi
fi

if [ "${1:-run}" = test ]; then
  venv=target/test-tools/grpcio
  if ! "$venv/bin/python" -c "import grpc; assert grpc.__version__ == '$grpcio_version'" 2>/dev/null; then
    echo "installing grpcio $grpcio_version into $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "grpcio==$grpcio_version"
  fi
fi
