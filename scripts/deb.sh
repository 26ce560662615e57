#!/usr/bin/env bash
# Builds berth's Debian package from the workspace's binaries:
#   scripts/deb.sh [release|debug] [VERSION]   → target/deb/berth_<VERSION>_<arch>.deb
# release (the default) is what a node installs; debug is what `make test-node` installs in its
# guest (the tests' own build, with their failpoints and test hooks). VERSION defaults to the
# workspace's.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-release}
version=${2:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
arch=$(dpkg --print-architecture)
case $profile in release | debug) ;; *) echo "usage: $0 [release|debug] [VERSION]" >&2; exit 2 ;; esac

stage=target/deb/stage-$profile
rm -rf "$stage"
for bin in berthd berth-monitor berth-exec berth-infra; do
  install -D -m 0755 "target/$profile/$bin" "$stage/usr/bin/$bin"
  if [ "$profile" = release ]; then
    objcopy --strip-debug "$stage/usr/bin/$bin"
  fi
done
install -D -m 0644 packaging/berth.service "$stage/lib/systemd/system/berth.service"
install -D -m 0644 packaging/berth.toml "$stage/etc/berth/berth.toml"
install -D -m 0644 packaging/10-berth-bridge.conflist \
  "$stage/usr/share/doc/berth/examples/10-berth-bridge.conflist"
install -D -m 0644 README.md "$stage/usr/share/doc/berth/README.md"
install -D -m 0644 docs/architecture.md "$stage/usr/share/doc/berth/architecture.md"
mkdir -p "$stage/usr/share/man/man8"
gzip -9n -c docs/berthd.8 >"$stage/usr/share/man/man8/berthd.8.gz"
cat >"$stage/usr/share/doc/berth/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: berth
Files: *
Copyright: berth maintainers
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF

mkdir -p "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  packaging/debian/control.in >"$stage/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "packaging/debian/$script" "$stage/DEBIAN/$script"
done
deb=target/deb/berth_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
