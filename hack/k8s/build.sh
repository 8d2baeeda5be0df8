#!/usr/bin/env bash
# Builds or installs every component of the one-node cluster (make k8s-up)
# into K8S_CACHE, one directory per component and version, so that a warm
# start finds everything and builds nothing. Each directory is written
# under a temporary name and renamed when complete: a killed build leaves
# no half-filled directory that a later run would take for done.
#
#   hack/k8s/build.sh all | kube | multus | plugins | etcd | containerd
#
# Versions come from the environment (hack/mk/k8s.mk sets them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/errexit.sh
. "$here/../lib/errexit.sh"
# shellcheck source=../lib/deb.sh
. "$here/../lib/deb.sh"
: "${K8S_CACHE:?}" "${K8S_VERSION:?}" "${MULTUS_VERSION:?}" "${CNI_PLUGINS_VERSION:?}" "${ETCD_DEB_VERSION:?}"
GO=${GO:-go}
K8S_CNI_PLUGINS=${K8S_CNI_PLUGINS:-main/loopback main/bridge main/macvlan main/host-device ipam/host-local meta/tuning}

log() { printf 'k8s-build: %s\n' "$*" >&2; }

# bindir NAME: the directory of a component, named by its version.
bindir() { printf '%s/bin/%s' "$K8S_CACHE" "$1"; }

# finish TMP FINAL: publish a complete build.
finish() { rm -rf "$2"; mv "$1" "$2"; }

build_kube() {
	local out; out=$(bindir "kubernetes-$K8S_VERSION")
	[ -x "$out/kubelet" ] && return 0
	log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl $K8S_VERSION (about 8 min cold on 2 cores)"
	local tmp="$out.tmp.$$" major minor
	major=${K8S_VERSION#v}; major=${major%%.*}
	minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
	rm -rf "$tmp"; mkdir -p "$tmp"
	# Built from the module proxy the binaries would report
	# v0.0.0-master+$Format:%H$; the kubelet puts that into the node
	# status and the scheduler logs it. Stamp the real version like the
	# upstream release build does.
	local ld="-s -w"
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
		ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
	done
	(cd "$here/kube" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ld" -o "$tmp/" \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl)
	finish "$tmp" "$out"
}

build_multus() {
	local out; out=$(bindir "multus-$MULTUS_VERSION")
	[ -x "$out/multus" ] && return 0
	log "building the Multus thin plugin $MULTUS_VERSION"
	local tmp="$out.tmp.$$"
	rm -rf "$tmp"; mkdir -p "$tmp"
	(cd "$here/multus" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags '-s -w' -o "$tmp/multus" \
		gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus)
	finish "$tmp" "$out"
}

build_plugins() {
	local sum out
	sum=$(echo "$K8S_CNI_PLUGINS" | cksum | cut -d' ' -f1)
	out=$(bindir "cni-plugins-$CNI_PLUGINS_VERSION-$sum")
	[ -d "$out" ] && return 0
	log "installing the reference plugins $CNI_PLUGINS_VERSION: $K8S_CNI_PLUGINS"
	local tmp="$out.tmp.$$" pkgs=()
	for p in $K8S_CNI_PLUGINS; do pkgs+=("github.com/containernetworking/plugins/plugins/$p@$CNI_PLUGINS_VERSION"); done
	rm -rf "$tmp"; mkdir -p "$tmp"
	# `go install pkg@version` builds exactly that tag, outside any module.
	(cd / && GOBIN="$tmp" GOFLAGS='' CGO_ENABLED=0 "$GO" install -trimpath -ldflags '-s -w' "${pkgs[@]}")
	finish "$tmp" "$out"
}

# etcd from Debian's etcd-server, unpacked, not installed: installing it
# would register and start a system service.
build_etcd() {
	local out; out=$(bindir "etcd-$ETCD_DEB_VERSION")
	[ -x "$out/etcd" ] && return 0
	log "fetching Debian's etcd-server $ETCD_DEB_VERSION (apt-get download, dpkg -x)"
	local tmp="$out.tmp.$$"
	rm -rf "$tmp"; mkdir -p "$tmp/pkg"
	# apt-get update first: a fresh machine's package lists are empty.
	apt-get update -qq
	(cd "$tmp/pkg" && apt-get download -q "etcd-server=$ETCD_DEB_VERSION")
	dpkg -x "$tmp"/pkg/etcd-server_*.deb "$tmp/root"
	cp "$tmp/root/usr/bin/etcd" "$tmp/etcd"
	rm -rf "$tmp/pkg" "$tmp/root"
	finish "$tmp" "$out"
}

# containerd and runc from Debian at the versions hack/mk/k8s.mk pins, and
# the tools the node's scripts use (openssl, iproute2, util-linux's
# nsenter/unshare/setsid), where missing. The node runs its own containerd
# with its own config; the package's service must not start: during the
# install a policy-rc.d forbids starting any service (one already there is
# used only if it forbids it too), and a containerd service this install
# brought onto a systemd machine is disabled. No service that was there
# before is stopped, disabled or restarted (hack/lib/deb.sh's
# deb_install_no_services; POLICY_RC_D names another policy file).
build_containerd() {
	: "${CONTAINERD_DEB_VERSION:?}" "${RUNC_DEB_VERSION:?}"
	local need=() c had_containerd
	had_containerd=$(deb_version containerd)
	[ "$had_containerd" = "$CONTAINERD_DEB_VERSION" ] || need+=("containerd=$CONTAINERD_DEB_VERSION")
	[ "$(deb_version runc)" = "$RUNC_DEB_VERSION" ] || need+=("runc=$RUNC_DEB_VERSION")
	for c in openssl:openssl ip:iproute2 nsenter:util-linux unshare:util-linux setsid:util-linux; do
		command -v "${c%%:*}" >/dev/null || [[ " ${need[*]} " == *" ${c#*:} "* ]] || need+=("${c#*:}")
	done
	[ ${#need[@]} = 0 ] && return 0
	log "installing from Debian: ${need[*]}"
	deb_install_no_services containerd "${need[@]}"
	if [ -z "$had_containerd" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
		systemctl disable containerd.service >/dev/null 2>&1 || true
	fi
}

what=${1:-all}
case $what in
all)
	build_containerd
	build_etcd
	build_plugins
	build_multus
	build_kube
	;;
kube | multus | plugins | etcd | containerd) "build_$what" ;;
*)
	echo "usage: $0 all|kube|multus|plugins|etcd|containerd" >&2
	exit 2
	;;
esac
