#!/bin/bash
# `make test-node`, inside the guest (systemd as PID 1, pure cgroup v2): installs the berth
# package, runs the node suites of the test binaries against the installed binaries, then the
# conformance suite. Every step has a timeout; the output goes to the host. The payload disk
# (read-only, /payload) holds run.sh, the packages, target/debug/ (test binaries in deps/ and the
# workspace tools) and, when the host had it, critest.
set -uo pipefail
cd /payload
started=$SECONDS
failed=()
step() {
  local name=$1 limit=$2
  shift 2
  echo "=== $name"
  local t0=$SECONDS
  timeout --kill-after=30 "$limit" "$@"
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - t0)) s"
  [ $rc -eq 0 ] || failed+=("$name")
}

echo "guest: $(uname -r), $(stat -fc %T /sys/fs/cgroup), $(systemctl --version | head -1)"
echo "guest: booted to the payload in $(cut -d' ' -f1 /proc/uptime) s"

step "install the package" 300 dpkg -i debs/berth_*+node1_*.deb
step "berth.service is active" 60 systemctl is-active --wait berth.service

# The tests make their own daemons from the installed binaries, with test images, registries and
# CNI networks of their own, in /var/tmp (a disk: overlayfs needs one for its upper dirs).
export BERTH_BIN_DIR=/usr/bin RUST_BACKTRACE=1 BERTH_TEST_DIR=/var/tmp/berth-tests
for suite in $(cat suites); do
  step "tests: $suite" 1800 target/debug/deps/$suite --include-ignored --test-threads 2
done
step "tests: the node's own berth.service (restart, upgrade)" 1800 \
  target/debug/deps/"$(cat node-suite)" --ignored --test-threads 1
if [ -x critest ]; then
  step "conformance" 2400 target/debug/berth-conformance --critest /payload/critest
else
  echo "=== conformance: no critest on the host, not run"
fi

echo "guest: the payload took $((SECONDS - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all passed"
