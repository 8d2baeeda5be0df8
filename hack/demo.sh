#!/usr/bin/env bash
# hack/demo.sh — what `make demo` runs: three chains from cni-conf/local,
# executed by the real cnitool with the reference plugins and bin/macguard,
# inside throwaway network namespaces. For each: the interface the main
# plugin made, the MAC macguard chose and why (its log line), the corrected
# result, CHECK and DEL. Needs root; `make demo` builds and installs the
# tools first. Everything is removed on exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/errexit.sh
. hack/lib/errexit.sh

MACGUARD=${MACGUARD_BIN:-$PWD/bin/macguard}
MACGUARDCTL=${MACGUARDCTL_BIN:-$(dirname "$MACGUARD")/macguardctl}
CNITOOL=${E2E_CNITOOL:-$PWD/.cache/tools/bin/cnitool}
PLUGINS=${E2E_CNI_PLUGINS:-$PWD/.cache/tools/cni-plugins}
for f in "$MACGUARD" "$MACGUARDCTL" "$CNITOOL" "$PLUGINS/bridge"; do
	[ -e "$f" ] || { echo "demo: $f missing: run \`make demo\` (it builds and installs the tools)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "demo: creates network namespaces, run as root (sudo make demo)" >&2; exit 1; }

tag=mgdemo$$
work=$(mktemp -d "/tmp/macguard-demo.XXXXXX")
node=$tag-node
namespaces=()
attached=() # "network netns" pairs still to DEL

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# DEL whatever is still attached (an interrupted run), then drop the
	# namespaces (their devices go with them) and the files.
	local a
	for a in ${attached[@]+"${attached[@]}"}; do
		# $a is "network netns": split into cni's two arguments on purpose.
		# shellcheck disable=SC2086
		cni del $a >/dev/null 2>&1 || true
	done
	for n in ${namespaces[@]+"${namespaces[@]}"}; do
		ip netns del "$n" 2>/dev/null || true
		# libcni's result cache (cnitool always uses /var/lib/cni): the
		# container ID is "cnitool-" + sha512(netns path)[:20 hex].
		local cid
		cid=cnitool-$(printf %s "/run/netns/$n" | sha512sum | cut -c1-20)
		rm -f /var/lib/cni/results/*-"$cid"-eth0
	done
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
interrupted() {
	printf '\ndemo: interrupted, cleaning up\n' >&2
	exit 130
}
trap interrupted INT TERM

newns() { ip netns add "$1"; namespaces+=("$1"); }

# CNI_PATH holds the reference plugins and a copy of bin/macguard, nothing else.
mkdir -p "$work/cni-bin" "$work/net.d"
cp "$PLUGINS"/* "$MACGUARD" "$work/cni-bin/"

# The examples as shipped, with state paths moved into $work and the
# macvlan master pointed at the demo's parent device.
for f in cni-conf/local/*.conflist; do
	sed -e "s#\"/run/cni/macguard\"#\"$work/macguard\"#" \
		-e "s#\"/var/lib/cni/networks\"#\"$work/ipam\"#" \
		-e "s#\"master\": \"eth0\"#\"master\": \"demo-parent\"#" "$f" >"$work/net.d/$(basename "$f")"
done
# Never let a reformatted example send the demo to the host's paths or NIC.
if grep -q -e '"/run/cni/macguard"' -e '"/var/lib/cni/networks"' -e '"master": "eth0"' "$work"/net.d/*; then
	echo "demo: could not point cni-conf/local/*.conflist at the demo's directories (format changed?)" >&2
	exit 1
fi

# cni <cmd> <network> <pod-netns>: cnitool on the node, as a runtime would
# run it. CNI_ARGS and CAP_ARGS come from the caller's variables.
cni() {
	ip netns exec "$node" env NETCONFPATH="$work/net.d" CNI_PATH="$work/cni-bin" \
		CNI_IFNAME=eth0 CNI_ARGS="${CNI_ARGS:-}" CAP_ARGS="${CAP_ARGS:-}" \
		"$CNITOOL" "$1" "$2" "/run/netns/$3"
}

say() { printf '\n%s\n' "$*"; }
cmd() { printf '$ %s\n' "$*"; }
indent() { sed 's/^/    /'; }

# field <name> <logfmt line>: one value of macguard's log line.
field() { sed -n -E "s/.* $1=(\"([^\"\\\\]|\\\\.)*\"|[^ ]*).*/\1/p" <<<" $2" | sed -E 's/^"(.*)"$/\1/; s/\\"/"/g'; }

# run_cni <cmd> <network> <pod>: show the command, what macguard did (its
# log goes to stderr, which cnitool passes through: one line per ADD with
# the old and new MAC and the reason), and cnitool's output. RESULT=brief
# shows only the result's entry for the pod interface.
run_cni() {
	local out rc=0 line
	# $CAP_ARGS does expand (the single quotes are literal, inside "").
	# shellcheck disable=SC2016
	cmd "${CAP_ARGS:+CAP_ARGS='$CAP_ARGS' }cnitool $1 $2 /run/netns/$3"
	out=$(cni "$@" 2>"$work/stderr") || rc=$?
	while IFS= read -r line; do
		case "$line" in
		*"msg=ADD "*)
			printf '  macguard: %s (%s) had %s -> %s [%s] because: %s\n' "$(field ifname "$line")" \
				"$(field device "$line")" "$(field old "$line")" "$(field new "$line")" \
				"$(field action "$line")" "$(field reason "$line")"
			printf '    log: %s\n' "$line" ;;
		*plugin=macguard*) printf '  macguard log: %s\n' "$line" ;;
		*) printf '  cnitool says: %s\n' "$line" ;;
		esac
	done <"$work/stderr"
	if [ -n "$out" ] && [ "${RESULT:-}" = brief ]; then
		echo "  result (the pod interface's entry):"
		printf '%s\n' "$out" | grep -B1 -A1 '"name": "eth0"' | indent
	elif [ -n "$out" ]; then
		echo "  result:"
		printf '%s\n' "$out" | indent
	fi
	if [ "$rc" = 0 ]; then echo "  -> ok"; else echo "  -> failed (exit $rc)"; fi
	return "$rc"
}

mac_of() { ip -n "$1" -br link show eth0 | awk '{print $3}'; }

add() { run_cni add "$1" "$2" && attached+=("$1 $2"); }
del() {
	run_cni del "$1" "$2"
	local keep=() a
	for a in ${attached[@]+"${attached[@]}"}; do [ "$a" = "$1 $2" ] || keep+=("$a"); done
	attached=(${keep[@]+"${keep[@]}"})
}

echo "macguard demo: $("$MACGUARD" version), cnitool ${E2E_CNI_VERSION:-(pin unknown)}, reference plugins ${E2E_PLUGINS_VERSION:-(pin unknown)}"
echo "Throwaway namespaces: $node plays the host (bridge, host-side veths, macvlan parent);"
echo "each pod gets its own. Conflists: cni-conf/local/, state under $work."
newns "$node"
ip -n "$node" link add demo-parent type veth peer name demo-peer
ip -n "$node" link set demo-parent up
ip -n "$node" link set demo-peer up

###########################################################################
say "━━ 1. A KubeVirt VM on a bridge keeps its MAC across restarts"
say "cni-conf/local/10-bridge-vm.conflist: bridge + host-local, then macguard with assign \"always\"."
echo "The MAC comes from namespace + VM name, so it can be known before the VM exists:"
cmd "macguardctl mac --namespace vms --vm vm1 --ifname eth0"
vm1=$("$MACGUARDCTL" mac --namespace vms --vm vm1 --ifname eth0)
echo "    $vm1"

say "The VM's launcher pod virt-launcher-vm1-abcde starts:"
newns "$tag-vm1-a"
export CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=vms;K8S_POD_NAME=virt-launcher-vm1-abcde"
add bridge-vm "$tag-vm1-a"
cmd "ip -n $tag-vm1-a -br link show eth0"
ip -n "$tag-vm1-a" -br link show eth0 | indent
run_cni check bridge-vm "$tag-vm1-a"
say "The VM restarts: its launcher pod is deleted (macguard restores the original MAC"
echo "before bridge removes the veth) and a new one, with a new name suffix and a new"
echo "sandbox (a new container ID), is created:"
del bridge-vm "$tag-vm1-a"
newns "$tag-vm1-b"
export CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=vms;K8S_POD_NAME=virt-launcher-vm1-x7k2q"
RESULT=brief add bridge-vm "$tag-vm1-b"
got=$(mac_of "$tag-vm1-b")
echo "eth0 in the new pod: $got — $([ "$got" = "$vm1" ] && echo "the same MAC as before the restart" || echo "DIFFERENT from $vm1 (unexpected!)")"
del bridge-vm "$tag-vm1-b"

###########################################################################
say "━━ 2. A macvlan secondary with a requested MAC (Multus \"mac\", Kube-OVN style)"
echo "A requested MAC reaches a plugin as runtimeConfig.mac only if it declares the \"mac\""
echo "capability; here macvlan does not. Multus also puts MAC= into CNI_ARGS, which the"
echo "reference macvlan would apply itself (make test-k8s shows it); this CNI_ARGS has none,"
echo "as for a main plugin that reads neither (host-device, vlan, ptp): the request is lost."
export CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=db-0"
export CAP_ARGS='{"mac":"0a:58:c0:a8:3c:0a"}'

say "Without macguard (the same macvlan entry alone):"
cat >"$work/net.d/31-macvlan-alone.conflist" <<EOF
{ "cniVersion": "1.0.0", "name": "macvlan-alone",
  "plugins": [ { "type": "macvlan", "master": "demo-parent", "mode": "bridge",
                 "ipam": { "type": "static", "addresses": [ { "address": "192.168.60.11/24" } ] } } ] }
EOF
newns "$tag-db-plain"
# shellcheck disable=SC2016 # $CAP_ARGS does expand, as above
cmd "${CAP_ARGS:+CAP_ARGS='$CAP_ARGS' }cnitool add macvlan-alone /run/netns/$tag-db-plain"
cni add macvlan-alone "$tag-db-plain" >/dev/null
attached+=("macvlan-alone $tag-db-plain")
echo "    eth0 has $(mac_of "$tag-db-plain"), not the requested 0a:58:c0:a8:3c:0a: the request was silently dropped."
del macvlan-alone "$tag-db-plain" >/dev/null

say "With cni-conf/local/30-macvlan-mac.conflist (macvlan, then macguard holding the \"mac\" capability):"
newns "$tag-db"
add macvlan-mac "$tag-db"
cmd "ip -n $tag-db -br link show eth0"
ip -n "$tag-db" -br link show eth0 | indent
run_cni check macvlan-mac "$tag-db"
del macvlan-mac "$tag-db"

say "A request that cannot be a MAC address is refused before anything changes:"
newns "$tag-db-bad"
export CAP_ARGS='{"mac":"01:00:5e:00:00:01"}'
add macvlan-mac "$tag-db-bad" || true
attached+=("macvlan-mac $tag-db-bad") # a runtime DELs after a failed ADD
del macvlan-mac "$tag-db-bad"
unset CAP_ARGS

###########################################################################
say "━━ 3. A pod that is already fine is left alone"
say "cni-conf/local/20-ptp.conflist: ptp + host-local, then macguard with defaults"
echo "(assign \"zero\": only an interface without a MAC gets one). The result passes through."
newns "$tag-web"
export CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1"
add ptp-pod "$tag-web"
run_cni check ptp-pod "$tag-web"
del ptp-pod "$tag-web"

say "Done. Everything above ran in namespaces named $tag-*; they are removed now."
