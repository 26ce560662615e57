#!/usr/bin/env bash
# `make test-node`: the node suites in a guest with systemd as PID 1 and pure cgroup v2.
#   1. the guest image (scripts/node/build-image.sh, cached under target/node/);
#   2. the payload: the berth package built twice from the tests' build (the second for the
#      upgrade test), the test binaries, berth-conformance, critest when there is one, run.sh;
#   3. qemu boots the guest on a throwaway overlay of the image; its payload/run.sh runs
#      everything, each step with a timeout, and its output comes back on a virtio port;
#   4. the result is its last line. The console log is kept on failure (target/node/console.log).
# Nothing is left running: qemu has a deadline and is killed with this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
# The suites of the test binaries run in the guest (their tests that need systemd as init
# included); the node's own service has its own suite.
read -r -a suites <<<"${BERTH_NODE_SUITES:-cgroups checkpoint container_lifecycle pod_lifecycle stats_and_events daemon_lifecycle exec_path}"
node_suite=node_service
guest_deadline=${BERTH_NODE_DEADLINE:-3600}
node=target/node
mkdir -p "$node"
log() { echo "test-node: $*" >&2; }

qemu_pid=
work=$(mktemp -d "$node/run-XXXXXX")
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -9 "$qemu_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building"
cargo build --workspace --bins
tests_json=$(cargo test --no-run --message-format=json -p berthd \
  $(printf -- '--test %s ' "${suites[@]}" "$node_suite") 2>/dev/null)
test_exe() {
  echo "$tests_json" | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1" | tail -1
}

image=$(scripts/node/build-image.sh)
log "guest image: $image"

payload=$work/payload
mkdir -p "$payload/debs" "$payload/target/debug/deps"
cp scripts/node/payload/run.sh "$payload/"
scripts/deb.sh debug 0.1.0+node1 >/dev/null
scripts/deb.sh debug 0.1.0+node2 >/dev/null
cp target/deb/berth_0.1.0+node1_*.deb target/deb/berth_0.1.0+node2_*.deb "$payload/debs/"
for bin in berth-probe berth-conformance; do
  cp "target/debug/$bin" "$payload/target/debug/"
done
: >"$payload/suites"
for suite in "${suites[@]}"; do
  exe=$(test_exe "$suite")
  [ -n "$exe" ] || { log "no test binary for $suite"; exit 1; }
  cp "$exe" "$payload/target/debug/deps/"
  basename "$exe" >>"$payload/suites"
done
exe=$(test_exe "$node_suite")
cp "$exe" "$payload/target/debug/deps/"
basename "$exe" >"$payload/node-suite"
critest=${CRITEST:-$(command -v critest || echo ../shared/bin/critest)}
if [ -x "$critest" ]; then
  cp "$critest" "$payload/critest"
else
  log "no critest (CRITEST, PATH, ../shared/bin): the guest skips the conformance suite"
fi
size_mb=$(($(du -sm "$payload" | cut -f1) + 64))
mkfs.ext4 -q -L berth-payload -d "$payload" "$work/payload.img" "${size_mb}M" >/dev/null
qemu-img create -q -f qcow2 -F raw -b "$(realpath "$image/rootfs.img")" "$work/root.qcow2"

console=$node/console.log
results=$node/results.log
rm -f "$console" "$results"
log "booting the guest (TCG; deadline ${guest_deadline}s); its output follows"
started=$SECONDS
qemu-system-x86_64 -accel tcg,thread=multi -cpu qemu64 -m 6144 -smp 2 \
  -display none -no-reboot -nodefaults \
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.unified_cgroup_hierarchy=1" \
  -drive "file=$work/root.qcow2,if=virtio,format=qcow2" \
  -drive "file=$work/payload.img,if=virtio,format=raw,readonly=on" \
  -serial "file:$console" \
  -device virtio-serial -chardev "file,id=results,path=$results" \
  -device virtserialport,chardev=results,name=berth.results \
  -nic none &
qemu_pid=$!
tail -F "$results" 2>/dev/null &
tail_pid=$!
deadline=$((SECONDS + guest_deadline))
while kill -0 "$qemu_pid" 2>/dev/null; do
  if [ $SECONDS -ge $deadline ]; then
    log "the guest ran past its deadline of ${guest_deadline}s; killing it"
    kill -9 "$qemu_pid"
    break
  fi
  sleep 2
done
wait "$qemu_pid" 2>/dev/null || true
sleep 1
kill "$tail_pid" 2>/dev/null || true
log "the guest ran for $((SECONDS - started)) s"

status=$(grep -a '^berth-node-guest: exit ' "$results" 2>/dev/null | tail -1 | awk '{print $3}')
if [ "$status" = 0 ]; then
  log "passed"
  exit 0
fi
log "failed (guest exit ${status:-none}); console log: $console"
tail -40 "$console" >&2 || true
exit 1
