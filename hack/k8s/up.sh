#!/usr/bin/env bash
# make k8s-up: a real one-node Kubernetes cluster (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd, kubelet, Multus in
# front of a bridge + host-local primary network) in a network and mount
# namespace of its own, all state under $K8S_RUN. See docs/k8s.md.
#
# Whatever a previous run left (killed, or never taken down) is removed
# first. On failure the node is taken down again unless K8S_KEEP_FAILED=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/errexit.sh
. "$here/../lib/errexit.sh"
# shellcheck source=../lib/deb.sh
. "$here/../lib/deb.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"
node_lock
: "${K8S_VERSION:?}" "${MULTUS_VERSION:?}" "${CNI_PLUGINS_VERSION:?}"
: "${MACGUARD_IMAGE_ARCHIVE:?}" "${MACGUARD_IMAGE:?}" "${PAUSE_ARCHIVE:?}" "${PAUSE_IMAGE:?}"
: "${K8S_ENV_FILE:?}" "${K8S_CNI_PLUGIN_DIR:?}"

KUBE_BIN=$K8S_CACHE/bin/kubernetes-$K8S_VERSION
MULTUS_BIN=$K8S_CACHE/bin/multus-$MULTUS_VERSION/multus
ETCD_BIN=$K8S_CACHE/bin/etcd-$ETCD_DEB_VERSION/etcd
KUBECTL=$KUBE_BIN/kubectl
for b in "$KUBE_BIN/kube-apiserver" "$KUBE_BIN/kubelet" "$KUBECTL" "$MULTUS_BIN" "$ETCD_BIN" \
	"$K8S_CNI_PLUGIN_DIR/bridge" "$K8S_CNI_PLUGIN_DIR/loopback" "$MACGUARD_IMAGE_ARCHIVE" "$PAUSE_ARCHIVE"; do
	[ -e "$b" ] || die "$b is missing (hack/k8s/build.sh all, make image)"
done
for c in containerd containerd-shim-runc-v2 runc ctr nsenter unshare setsid openssl ip; do
	command -v "$c" >/dev/null || die "$c is not installed (hack/k8s/build.sh containerd)"
done
# containerd and runc: Debian's, at the pinned versions, and the ones on
# PATH (containerd finds its shim and runc there).
: "${CONTAINERD_DEB_VERSION:?}" "${RUNC_DEB_VERSION:?}"
for pv in "containerd $CONTAINERD_DEB_VERSION containerd containerd-shim-runc-v2 ctr" "runc $RUNC_DEB_VERSION runc"; do
	read -r pkg want cmds <<<"$pv"
	have=$(deb_version "$pkg")
	[ "$have" = "$want" ] ||
		die "Debian's $pkg is ${have:+at $have}${have:-not installed}; the node needs $pkg $want (hack/mk/k8s.mk; make k8s-deps installs it)"
	for c in $cmds; do
		p=$(readlink -f "$(command -v "$c")")
		dpkg -S "$p" 2>/dev/null | grep "^$pkg: " >/dev/null ||
			die "$c on PATH is $p, not the one of Debian's $pkg $want"
	done
done

# A unix socket's path is at most 107 bytes, and containerd also listens on
# its address + ".ttrpc": in a deep checkout the socket under $K8S_RUN
# would not fit.
if [ $((${#CTRD_SOCK} + 6)) -gt 107 ]; then
	die "containerd's socket $CTRD_SOCK.ttrpc would be $((${#CTRD_SOCK} + 6)) bytes, over the 107 of a unix socket path: use a checkout with a shorter path, or point K8S_RUN at a shorter directory"
fi

t0=$(date +%s)
K8S_PURGE=1 "$here/down.sh"

failed() {
	local rc=$?
	if [ "$rc" != 0 ] && [ "${K8S_KEEP_FAILED:-}" != 1 ]; then
		log "k8s-up failed (exit $rc); the logs are in $LOGS. Taking the node down (K8S_KEEP_FAILED=1 keeps it)."
		for f in "$LOGS"/*.log; do
			[ -f "$f" ] || continue
			echo "--- last lines of $f" >&2
			tail -n 15 "$f" >&2
		done
		"$here/down.sh" || true
	fi
}
trap failed EXIT

mkdir -p "$K8S_RUN" "$PIDS" "$LOGS" "$CNI_BIN" "$CNI_CONF" "$CTRD" "$K8S_RUN/pki" "$K8S_RUN/etcd" \
	"$K8S_RUN/kubelet" "$K8S_RUN/multus"
chmod 700 "$K8S_RUN/pki"

# --- the node's network namespace and devices --------------------------
log "network namespace $NODE_NETNS: eth0 $NODE_IP/$NODE_PREFIX, macvlan parent $NAD_MASTER, host-device devices $HOSTDEV_DEVICES"
ip netns add "$NODE_NETNS"
nip() { ip -n "$NODE_NETNS" "$@"; }
nip link set lo up
# Every device is one end of a veth pair whose other end stays in the node
# namespace too: the node has links with carrier and addresses of its own,
# and nothing is connected to the machine's network.
nip link add eth0 type veth peer name eth0-peer
nip addr add "$NODE_IP/$NODE_PREFIX" dev eth0
nip link set eth0 up
nip link set eth0-peer up
# The kubelet and the API server want a default route to pick the node's
# address; its gateway is not there, so nothing routed leaves.
nip route add default via "${NODE_IP%.*}.1" dev eth0 onlink
for d in "$NAD_MASTER" $HOSTDEV_DEVICES; do
	nip link add "$d" type veth peer name "$d-peer"
	nip link set "$d-peer" up
done
nip link set "$NAD_MASTER" up

# --- the node's mount namespace ----------------------------------------
# Built by the anchor, inside its own mount namespace only: a tmpfs (under
# $K8S_RUN, which exists already) holds the upper layers of an overlay on
# each of $NS_OVERLAYS, so that the mount points below are made there and
# the machine's directories stay as they are (lib.sh).
ovl=$K8S_RUN/ns-overlays
mkdir -p "$ovl"
ns="set -e; mount -t tmpfs -o mode=755 mgk8s-overlays '$ovl'; "
for p in $NS_OVERLAYS; do
	if [ ! -d "$p" ] || [ -L "$p" ]; then die "$p is not a directory on this machine; the node's mount namespace overlays it"; fi
	n=${p#/}
	n=${n//\//-}
	ns+="mkdir -p '$ovl/$n/upper' '$ovl/$n/work'; "
	ns+="mount -t overlay -o 'lowerdir=$p,upperdir=$ovl/$n/upper,workdir=$ovl/$n/work' mgk8s-$n '$p'; "
done
ns+="mkdir -p /run/netns; mount -t tmpfs -o mode=755 netns /run/netns; "
for b in "${HOST_BINDS[@]}"; do
	target=${b%%:*} src=${b#*:}
	under=0
	for p in $NS_OVERLAYS; do
		case $target in "$p"/*) under=1 ;; esac
	done
	[ $under = 1 ] || die "HOST_BINDS: $target is under none of $NS_OVERLAYS"
	mkdir -p "$src"
	ns+="mkdir -p '$target'; mount --bind '$src' '$target'; "
done
# The anchor holds the mount namespace open; every daemon enters it. Its
# mounts are private: none propagates to the machine.
mkdir -p "$PIDS"
# $$ and "$2" are the inner bash's, hence the single quotes.
# shellcheck disable=SC2016
setsid bash -c 'echo $$ >"$1"; exec unshare --mount --propagation private -- bash -c "$2"' _ \
	"$PIDS/anchor.pid" "$ns exec sleep infinity" \
	</dev/null >"$LOGS/anchor.log" 2>&1 9>&- &
for i in $(seq 300); do
	if [ -s "$PIDS/anchor.pid" ] && [ "$(readlink "/proc/$(cat "$PIDS/anchor.pid")/exe" 2>/dev/null)" = "$(readlink -f "$(command -v sleep)")" ]; then
		break
	fi
	[ "$i" = 300 ] && die "the mount namespace did not come up within 30 s: $(cat "$LOGS/anchor.log")"
	sleep 0.1
done
st=$(starttime "$(cat "$PIDS/anchor.pid")")
[ -n "$st" ] || die "the anchor exited at once: $(cat "$LOGS/anchor.log")"
echo "$st" >"$PIDS/anchor.start"
# The mount namespace and the boot it belongs to: k8s-down finds what is
# left in it (containerd's shims write no pidfile) even if the anchor died.
stat -L -c %i "/proc/$(cat "$PIDS/anchor.pid")/ns/mnt" >"$PIDS/mntns"
cat /proc/sys/kernel/random/boot_id >"$PIDS/boot_id"
# runc puts containers' cgroups under k8s.io/ in every v1 hierarchy; note
# the parents that do not exist yet, so that k8s-down removes them again.
for c in /sys/fs/cgroup/*/; do
	[ -d "${c}k8s.io" ] || echo "${c}k8s.io" >>"$K8S_RUN/created-cgroups"
done

# --- credentials -------------------------------------------------------
pki=$K8S_RUN/pki
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=kube-apiserver" \
	-addext "subjectAltName=IP:$NODE_IP,IP:10.96.0.1,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
	-keyout "$pki/apiserver.key" -out "$pki/apiserver.crt" 2>/dev/null
openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
token=$(openssl rand -hex 24)
echo "$token,admin,admin,system:masters" >"$pki/tokens.csv"
kubeconfig() {
	cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: macguard-k8s
  cluster:
    server: https://$NODE_IP:6443
    certificate-authority: $pki/apiserver.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: macguard-k8s
  context: {cluster: macguard-k8s, user: admin}
current-context: macguard-k8s
EOF
}
kubeconfig >"$KUBECONFIG_FILE"
chmod 600 "$KUBECONFIG_FILE"
kc() { in_node "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --cache-dir "$KUBECACHEDIR" "$@"; }

# wait_for WHAT SECONDS CMD...: poll CMD until it succeeds.
wait_for() {
	local what=$1 secs=$2 i
	shift 2
	for i in $(seq $((secs * 2))); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.5
	done
	die "$what not ready after ${secs}s"
}

# --- control plane -----------------------------------------------------
start etcd "$ETCD_BIN" --name "$NODE_NAME" --data-dir "$K8S_RUN/etcd" \
	--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
	--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	--initial-cluster "$NODE_NAME=http://127.0.0.1:2380" --listen-metrics-urls "" \
	--quota-backend-bytes 1073741824
start kube-apiserver "$KUBE_BIN/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
	--bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port 6443 \
	--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
	--token-auth-file "$pki/tokens.csv" --authorization-mode RBAC \
	--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
	--service-account-issuer https://kubernetes.default.svc --api-audiences https://kubernetes.default.svc \
	--service-cluster-ip-range "$SERVICE_SUBNET" --allow-privileged=true \
	--kubelet-preferred-address-types InternalIP --profiling=false \
	--enable-aggregator-routing=true
# --enable-aggregator-routing: there is no kube-proxy, so the API server
# sends webhook calls (macguard's webhook, test/k8s TestWebhook) straight to
# the Service's endpoints instead of its cluster IP.
wait_for "kube-apiserver" 120 kc get --raw /readyz
start kube-controller-manager "$KUBE_BIN/kube-controller-manager" --kubeconfig "$KUBECONFIG_FILE" \
	--bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials=false \
	--service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/apiserver.crt" \
	--controllers '*,-nodeipam,-cloud-node-lifecycle,-service,-route' --profiling=false
start kube-scheduler "$KUBE_BIN/kube-scheduler" --kubeconfig "$KUBECONFIG_FILE" \
	--bind-address 127.0.0.1 --leader-elect=false --profiling=false

# --- CNI: plugins, the primary network, Multus --------------------------
cp "$K8S_CNI_PLUGIN_DIR"/* "$CNI_BIN/"
cp "$MULTUS_BIN" "$CNI_BIN/multus"
# The primary network stands in for Calico: a bridge + host-local conflist
# under the name Calico's installer writes, so that the shipped calico
# overlay (MACGUARD_CHAIN_INTO=.../10-calico.conflist) chains into it.
cat >"$CNI_CONF/10-calico.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "k8s-pod-network",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[ { "subnet": "$POD_SUBNET" } ]],
        "routes": [ { "dst": "0.0.0.0/0" } ]
      }
    }
  ]
}
EOF
cat >"$K8S_RUN/multus/kubeconfig" <<EOF
$(kubeconfig)
EOF
chmod 600 "$K8S_RUN/multus/kubeconfig"
# Multus is the runtime's first conf (the runtime reads only the first);
# clusterNetwork is a file, which Multus reads on every ADD, so the entry
# the installer chains into it takes effect at once.
cat >"$CNI_CONF/00-multus.conf" <<EOF
{
  "cniVersion": "0.3.1",
  "name": "multus-cni-network",
  "type": "multus",
  "kubeconfig": "$K8S_RUN/multus/kubeconfig",
  "clusterNetwork": "$CNI_CONF/10-calico.conflist",
  "confDir": "$CNI_CONF",
  "cniDir": "$K8S_RUN/multus/cache",
  "binDir": "$CNI_BIN",
  "logFile": "$LOGS/multus.log",
  "logLevel": "verbose"
}
EOF

# --- containerd --------------------------------------------------------
cat >"$CTRD/config.toml" <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CTRD_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  # Without it every sandbox fails here (runc: "can't get final child's
  # PID from pipe"): the environment refuses a negative oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$CNI_CONF"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
EOF
start containerd containerd --config "$CTRD/config.toml"
wait_for containerd 60 ctr --address "$CTRD_SOCK" version
log "importing $PAUSE_ARCHIVE and $MACGUARD_IMAGE_ARCHIVE (plain ctr import, no --base-name)"
ctr --address "$CTRD_SOCK" -n k8s.io images import "$PAUSE_ARCHIVE" >/dev/null
ctr --address "$CTRD_SOCK" -n k8s.io images import "$MACGUARD_IMAGE_ARCHIVE" >/dev/null
images=$(ctr --address "$CTRD_SOCK" -n k8s.io images ls -q)
for img in "$PAUSE_IMAGE" "$MACGUARD_IMAGE"; do
	grep -qxF "$img" <<<"$images" ||
		die "after a plain import containerd has no image $img; it has: $(tr '\n' ' ' <<<"$images")"
done

# --- kubelet -----------------------------------------------------------
cat >"$K8S_RUN/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
containerRuntimeEndpoint: unix://$CTRD_SOCK
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
# This machine has cgroup v1 and no systemd.
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
localStorageCapacityIsolation: false
resolvConf: ""
podLogsDir: /var/log/pods
# Disk and memory of a shared CI machine are not the test's to judge.
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
cat >"$K8S_RUN/kubelet.kubeconfig" <<EOF
$(kubeconfig)
EOF
# The kubelet sets global sysctls (lib.sh KUBELET_SYSCTLS); k8s-down
# writes these values back.
save_sysctls
start kubelet "$KUBE_BIN/kubelet" --config "$K8S_RUN/kubelet-config.yaml" \
	--kubeconfig "$K8S_RUN/kubelet.kubeconfig" --root-dir /var/lib/kubelet \
	--cert-dir "$K8S_RUN/kubelet/pki" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
node_ready() {
	kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -x True >/dev/null
}
wait_for "node $NODE_NAME" 180 node_ready

# --- the NetworkAttachmentDefinition CRD (Multus' own definition) --------
kc apply -f "$here/nad-crd.yaml" >/dev/null
wait_for "the NetworkAttachmentDefinition CRD" 60 kc wait --for condition=established --timeout 1s crd/network-attachment-definitions.k8s.cni.cncf.io
wait_for "the default ServiceAccount" 60 kc -n default get serviceaccount default

# --- the env file ------------------------------------------------------
mkdir -p "$(dirname "$K8S_ENV_FILE")"
cat >"$K8S_ENV_FILE" <<EOF
# Written by make k8s-up ($(date -u +%FT%TZ)). The API server listens in the
# node's network namespace: run kubectl there.
KUBECONFIG=$KUBECONFIG_FILE
# kubectl's cache, instead of ~/.kube/cache.
KUBECACHEDIR=$KUBECACHEDIR
KUBECTL=$KUBECTL
NODE_NAME=$NODE_NAME
NODE_NETNS=$NODE_NETNS
NODE_IP=$NODE_IP
NAD_MASTER=$NAD_MASTER
HOSTDEV_DEVICES="$HOSTDEV_DEVICES"
K8S_RUN=$K8S_RUN
CNI_BIN_DIR=$CNI_BIN
CNI_CONF_DIR=$CNI_CONF
PRIMARY_CONFLIST=$CNI_CONF/10-calico.conflist
CONTAINERD_ADDRESS=$CTRD_SOCK
CONTAINERD_STATE=$CTRD/state
MACGUARD_DATA_DIR=$K8S_RUN/host/run-cni/macguard
IPAM_DATA_DIR=$K8S_RUN/host/var-lib-cni/networks
MACGUARD_IMAGE=$MACGUARD_IMAGE
PAUSE_IMAGE=$PAUSE_IMAGE
MACGUARD_IMAGE_ARCHIVE=$MACGUARD_IMAGE_ARCHIVE
export KUBECONFIG KUBECACHEDIR
EOF
trap - EXIT
log "node $NODE_NAME is Ready ($(($(date +%s) - t0))s). Use it with:"
cat >&2 <<EOF

  . $K8S_ENV_FILE
  ip netns exec \$NODE_NETNS \$KUBECTL get pods -A -o wide
  ip netns exec \$NODE_NETNS \$KUBECTL apply -f cni-conf/multus/macvlan-mac.yaml

  logs: $LOGS    take it down: make k8s-down
EOF
