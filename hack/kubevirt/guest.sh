#!/usr/bin/env bash
# Builds test/kubevirt's real guest into $1 (default .cache/kubevirt/guest):
# the VM suite's Debian 6.12 kernel (hack/vmtest/run.sh kernel resolves,
# downloads and unpacks it) and an initramfs with busybox, virtio_net and
# hack/kubevirt/guest-init, which prints every NIC's MAC to the serial
# console, configures the address KubeVirt's masquerade DHCP would hand out
# and serves its MAC over HTTP on port 80. Rebuilt when an input changed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/errexit.sh
. "$ROOT/hack/lib/errexit.sh"
OUT=${1:-$ROOT/.cache/kubevirt/guest}

log() { printf 'kubevirt-guest: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

"$ROOT/hack/vmtest/run.sh" kernel
kdir=$(find "$ROOT/.cache/vmtest/kernel" -mindepth 1 -maxdepth 1 -type d | head -1)
[ -f "$kdir/vmlinuz" ] || die "no kernel in $ROOT/.cache/vmtest/kernel after hack/vmtest/run.sh kernel"
busybox=/bin/busybox
[ -x "$busybox" ] || die "$busybox missing (Debian package busybox-static: hack/kubevirt/prepare.sh packages)"

# The modules virtio_net needs, in load order, as run.sh unpacked them.
mods=()
while read -r m; do
	case $m in failover | net_failover | virtio_net) mods+=("$m") ;; esac
done <"$kdir/modules/load.order"
[ "${mods[*]}" = "failover net_failover virtio_net" ] ||
	die "the kernel in $kdir does not ship virtio_net as expected (have: ${mods[*]:-none})"

stamp=$(cat "$kdir/release" "$ROOT/hack/kubevirt/guest-init" "$0" | cksum | cut -d' ' -f1)
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$stamp" ]; then
	exit 0
fi
tmp=$(mktemp -d "${OUT%/*}/.guest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/root/bin" "$tmp/root/lib/modules"
cp "$busybox" "$tmp/root/bin/busybox"
cp "$ROOT/hack/kubevirt/guest-init" "$tmp/root/init"
chmod 0755 "$tmp/root/init"
for m in "${mods[@]}"; do cp "$kdir/modules/$m.ko" "$tmp/root/lib/modules/"; done
printf '%s\n' "${mods[@]}" >"$tmp/root/lib/modules/load.order"
(cd "$tmp/root" && find . | "$busybox" cpio -o -H newc 2>/dev/null) >"$tmp/initramfs.cpio"
cp "$kdir/vmlinuz" "$tmp/vmlinuz"
rm -rf "$tmp/root"
echo "$stamp" >"$tmp/stamp"
rm -rf "$OUT"
mv "$tmp" "$OUT"
trap - EXIT
log "guest (kernel $(cat "$kdir/release")) in $OUT"
