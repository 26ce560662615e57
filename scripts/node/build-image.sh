#!/usr/bin/env bash
# Builds the guest of `make test-node`: Debian 12 with systemd as init and a pure cgroup v2
# hierarchy, Debian's backports kernel 6.12, and what berth's tests need from Debian (runc, the
# CNI plugins, a registry, busybox, CRIU). Out: <dir>/rootfs.img (ext4), <dir>/vmlinuz,
# <dir>/initrd.img, under target/node/image-<hash of this script and the guest files>; a build
# whose inputs are unchanged is reused.
#   scripts/node/build-image.sh            prints the image dir (building it if needed)
set -euo pipefail
cd "$(dirname "$0")/../.."

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
# Everything the guest runs; the kernel comes from bookworm-backports, below.
packages=(
  systemd systemd-sysv dbus udev kmod procps util-linux e2fsprogs iproute2 iptables ca-certificates
  runc containernetworking-plugins docker-registry busybox libseccomp2 criu apparmor
  # critest loads its AppArmor test profiles with `sudo apparmor_parser`.
  sudo
)
inputs_hash=$( (cat scripts/node/build-image.sh; find scripts/node/guest -type f | sort | xargs cat) | sha256sum | cut -c1-16)
out=target/node/image-$inputs_hash
if [ -f "$out/rootfs.img" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ]; then
  echo "$out"
  exit 0
fi

log() { echo "build-image: $*" >&2; }
work=$(mktemp -d /var/tmp/berth-node-build-XXXXXX)
root=$work/root
mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

log "debootstrap $suite from $mirror into $root"
timeout 1200 debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
  "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -30 "$work/debootstrap.log" >&2
  exit 1
}

for fs in proc sys dev dev/pts; do
  case $fs in
    proc) mount -t proc proc "$root/proc" ;;
    sys) mount -t sysfs sys "$root/sys" ;;
    dev) mount --bind /dev "$root/dev" ;;
    dev/pts) mount --bind /dev/pts "$root/dev/pts" ;;
  esac
  mounted+=("$root/$fs")
done

log "kernel from bookworm-backports"
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-backports main
EOF
# The guest's root is on virtio-blk: an initramfs of just what finds it is small and quick.
mkdir -p "$root/etc/initramfs-tools/conf.d"
echo MODULES=list >"$root/etc/initramfs-tools/conf.d/berth-node"
printf 'virtio_blk\nvirtio_pci\n' >"$root/etc/initramfs-tools/modules"
chroot "$root" env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get update -qq >"$work/apt.log" 2>&1
chroot "$root" env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq \
  --no-install-recommends -t "$suite-backports" linux-image-cloud-amd64 >>"$work/apt.log" 2>&1 || {
  tail -30 "$work/apt.log" >&2
  exit 1
}
chroot "$root" apt-get clean

log "configuring the guest"
cp -r scripts/node/guest/. "$root/"
chmod 0755 "$root/usr/local/sbin/berth-node-guest"
echo berth-node >"$root/etc/hostname"
# sudo warns (on stderr, which critest takes for a failure) about a hostname it cannot resolve.
printf '127.0.0.1\tlocalhost\n127.0.1.1\tberth-node\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
  >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,relatime 0 1\n' >"$root/etc/fstab"
# root without a password on the console, for whoever reads the console log by hand.
chroot "$root" passwd -d root >/dev/null
chroot "$root" systemctl enable berth-node-guest.service >/dev/null 2>&1
# What a test guest does not need at boot.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
  fstrim.timer systemd-timesyncd.service docker-registry.service; do
  chroot "$root" systemctl disable "$unit" >/dev/null 2>&1 || true
  chroot "$root" systemctl mask "$unit" >/dev/null 2>&1 || true
done

kernel=$(ls "$root"/boot/vmlinuz-* | head -1)
initrd=$(ls "$root"/boot/initrd.img-* | head -1)
for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}"; done
mounted=()

log "making the ext4 image"
mkdir -p "$out.tmp"
cp "$kernel" "$out.tmp/vmlinuz"
cp "$initrd" "$out.tmp/initrd.img"
timeout 600 mkfs.ext4 -q -L berth-node -d "$root" "$out.tmp/rootfs.img" 8G >&2
rm -rf "$out"
mv "$out.tmp" "$out"
# Images of other inputs are of no more use: each is a few hundred MB.
find target/node -maxdepth 1 -name 'image-*' ! -path "$out" -exec rm -rf {} +
log "guest image in $out"
echo "$out"
