#!/usr/bin/env bash
# Prepares what test/kubevirt needs, cached by version under KUBEVIRT_CACHE
# (.cache/kubevirt):
#
#   hack/kubevirt/prepare.sh module     KubeVirt's Go module, usable as a library
#   hack/kubevirt/prepare.sh packages   Debian's libvirt client (virsh)
#
# The module: kubevirt.io/kubevirt's go.mod replaces kubevirt.io/api and
# kubevirt.io/client-go with ./staging/... directories its module zip does
# not contain, so neither `go install` nor a plain require can build it.
# The zip the module proxy serves is unpacked into
# $KUBEVIRT_CACHE/$KUBEVIRT_VERSION, its go.work dropped and the two
# replaces turned into requires of the published modules of the same
# version; test/kubevirt/go.mod points at that directory with a replace.
# It is written under a temporary name and renamed when complete, so a
# killed run leaves nothing a later run would take for done.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/errexit.sh
. "$ROOT/hack/lib/errexit.sh"
# shellcheck source=../lib/deb.sh
. "$ROOT/hack/lib/deb.sh"
: "${KUBEVIRT_VERSION:=v1.6.0}"
: "${KUBEVIRT_CACHE:=$ROOT/.cache/kubevirt}"
GO=${GO:-go}
# virsh (libvirt-clients) parses domains with the test:///default driver,
# no daemon needed; with libvirt's QEMU driver (libvirt-daemon-driver-qemu)
# it starts the real guest embedded (qemu:///embed, no daemon) under QEMU;
# KubeVirt's masquerade NAT runs nft; the guest's userland is busybox.
PACKAGES=(libvirt-clients libvirt-daemon-driver-qemu nftables qemu-system-x86 busybox-static)

log() { printf 'kubevirt-prepare: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

prepare_module() {
	local out=$KUBEVIRT_CACHE/$KUBEVIRT_VERSION json zip tmp
	# test/kubevirt/go.mod's replace must name the directory made here.
	grep -qE "^replace kubevirt.io/kubevirt => \.\./\.\./\.cache/kubevirt/$KUBEVIRT_VERSION\$" "$ROOT/test/kubevirt/go.mod" ||
		die "test/kubevirt/go.mod does not replace kubevirt.io/kubevirt with ../../.cache/kubevirt/$KUBEVIRT_VERSION (KUBEVIRT_VERSION and KUBEVIRT_CACHE must match it)"
	if [ -f "$out/go.mod" ]; then
		return 0
	fi
	mkdir -p "$KUBEVIRT_CACHE"
	command -v unzip >/dev/null || die "unzip is missing (Debian package unzip): run hack/kubevirt/prepare.sh packages as root"
	log "downloading kubevirt.io/kubevirt@$KUBEVIRT_VERSION from the module proxy"
	# Outside any module and with GOFLAGS empty: neither this repository's
	# modules nor the caller's flags take part.
	json=$(cd / && GOFLAGS='' "$GO" mod download -json "kubevirt.io/kubevirt@$KUBEVIRT_VERSION") ||
		die "go mod download kubevirt.io/kubevirt@$KUBEVIRT_VERSION: $json"
	zip=$(sed -n 's/^[[:space:]]*"Zip": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
	[ -f "$zip" ] || die "go mod download named no zip file: $json"
	tmp=$(mktemp -d "$KUBEVIRT_CACHE/.unpack.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	unzip -q "$zip" -d "$tmp"
	local dir=$tmp/kubevirt.io/kubevirt@$KUBEVIRT_VERSION
	[ -f "$dir/go.mod" ] || die "$zip holds no kubevirt.io/kubevirt@$KUBEVIRT_VERSION/go.mod"
	# go.work names ./staging modules that are not in the zip.
	rm -f "$dir/go.work" "$dir/go.work.sum"
	(cd "$dir" && GOFLAGS='' "$GO" mod edit \
		-dropreplace kubevirt.io/api -dropreplace kubevirt.io/client-go \
		-require "kubevirt.io/api@$KUBEVIRT_VERSION" -require "kubevirt.io/client-go@$KUBEVIRT_VERSION")
	rm -rf "$out"
	mv "$dir" "$out"
	rm -rf "$tmp"
	trap - EXIT
	log "kubevirt.io/kubevirt@$KUBEVIRT_VERSION prepared in $out"
}

# install_packages installs what is missing under a policy-rc.d that
# forbids starting services: libvirt-clients ships libvirt-guests and the
# daemon packages ship libvirtd, and none of them may start on this
# machine (the test runs its own libvirtd, if any). An existing
# policy-rc.d is used only if it forbids starting them too; a service the
# install brought onto a systemd machine is disabled.
install_packages() {
	local need=() p
	command -v unzip >/dev/null || need+=(unzip)
	for p in "$@"; do deb_installed "$p" || need+=("$p"); done
	[ ${#need[@]} = 0 ] && return 0
	[ "$(id -u)" = 0 ] || die "missing Debian packages: ${need[*]} (run as root to install them)"
	log "installing from Debian: ${need[*]}"
	deb_install_no_services libvirtd "${need[@]}"
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
		for p in "${need[@]}"; do
			case $p in
			libvirt-clients) systemctl disable libvirt-guests.service >/dev/null 2>&1 || true ;;
			libvirt-daemon*) systemctl disable libvirtd.service libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket >/dev/null 2>&1 || true ;;
			esac
		done
	fi
}

case ${1:-} in
module) prepare_module ;;
packages) install_packages "${PACKAGES[@]}" ;;
*) die "usage: $0 module|packages" ;;
esac
