# shellcheck shell=bash
# The variables below are for the scripts that source this file.
# shellcheck disable=SC2034
# Shared by hack/k8s/{up,down,node}.sh: where the one-node cluster keeps
# its state and how its processes are entered, started and stopped.
#
# The node is a network namespace of its own ($NODE_NETNS) plus a mount
# namespace of its own, held open by an "anchor" process. Every daemon is
# started inside both, so that
#   - the bridge, the pod veths and the node's address live only in the
#     node's network namespace;
#   - every mount the node makes (containerd's snapshots, the kubelet's
#     volumes, the pods' network namespaces under /run/netns, the paths
#     that the kubelet, containerd, the CNI plugins and Multus hard-code:
#     /var/lib/kubelet, /var/lib/cni, /run/cni, /run/containerd,
#     /var/log/containers) exists only in that mount namespace and
#     disappears with its last process: nothing outlives `k8s-down`, and
#     nothing ever lands in the machine's own directories: not even a
#     mount point. The parents of those paths ($NS_OVERLAYS) are overlays
#     there, the machine's directory below and a tmpfs of the node's above,
#     so that the mount points are made in the tmpfs. (A mount point made
#     on the machine would have to be removed again, and since Linux 3.18
#     rmdir of a directory that is a mount point in another mount
#     namespace succeeds and detaches that mount there: one checkout's
#     k8s-down would break another checkout's running node.)
# Processes are tracked by pidfiles (ours, and containerd's init.pid; its
# shims write none and are found by the node's mount namespace) and
# stopped by PID only.

: "${K8S_CACHE:?}"
K8S_RUN=${K8S_RUN:-$K8S_CACHE/run}
# Named after the state directory, so that two checkouts on one machine
# each run a node of their own and never take down each other's.
NODE_NETNS=${NODE_NETNS:-mgk8s-$(printf %s "$K8S_RUN" | sha256sum | cut -c1-8)}
NODE_NAME=${NODE_NAME:-macguard-node}
NODE_IP=${NODE_IP:-10.250.0.2}
NODE_PREFIX=24
POD_SUBNET=${POD_SUBNET:-10.251.0.0/24}
SERVICE_SUBNET=${SERVICE_SUBNET:-10.96.0.0/24}
NAD_MASTER=${NAD_MASTER:-eth1}
# Devices for host-device NADs: moved into a pod and back.
HOSTDEV_DEVICES=${HOSTDEV_DEVICES:-eth2 eth3}

PIDS=$K8S_RUN/pids
LOGS=$K8S_RUN/logs
CNI_BIN=$K8S_RUN/cni/bin
CNI_CONF=$K8S_RUN/cni/net.d
CTRD=$K8S_RUN/containerd
CTRD_SOCK=$CTRD/containerd.sock
KUBECONFIG_FILE=$K8S_RUN/admin.kubeconfig
# kubectl's discovery and HTTP cache, which would be ~/.kube/cache.
export KUBECACHEDIR=$K8S_RUN/kubectl-cache
# The bind mounts of the node's mount namespace: path there -> our
# directory. Each path is under one of $NS_OVERLAYS, so that a missing one
# is made in the node's overlay, never on the machine.
# /opt/cni/bin and /etc/cni/net.d are the node's CNI dirs there: a shipped
# overlay (hostPath /opt/cni/bin, /etc/cni/net.d) applied to this node
# installs into the node, never into the machine's /opt/cni or /etc/cni.
NS_OVERLAYS="/run /var/lib /var/log /opt /etc"
HOST_BINDS=(
	"/opt/cni/bin:$CNI_BIN"
	"/etc/cni/net.d:$CNI_CONF"
	"/var/lib/kubelet:$K8S_RUN/host/var-lib-kubelet"
	"/var/lib/cni:$K8S_RUN/host/var-lib-cni"
	"/run/cni:$K8S_RUN/host/run-cni"
	"/run/containerd:$K8S_RUN/host/run-containerd"
	"/var/log/containers:$K8S_RUN/host/var-log-containers"
	"/var/log/pods:$K8S_RUN/host/var-log-pods"
)

# The global sysctls the kubelet sets at start when protectKernelDefaults
# is false (setupKernelTunables in pkg/kubelet/cm/container_manager_linux.go
# of v1.34): they are the machine's, not the node's network namespace's.
# up.sh saves them before the kubelet first starts; down.sh writes them
# back once the kubelet is stopped. The file is outside $K8S_RUN, which a
# purge deletes, so that a killed run's values are restored by the next
# k8s-up or k8s-down of this checkout.
KUBELET_SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
SYSCTLS_SAVED=$K8S_CACHE/$NODE_NETNS.sysctls

log() { printf 'k8s: %s\n' "$*" >&2; }

# CLOSE_FDS: bash that closes every descriptor above 2, run by a daemon's
# wrapper before it execs the daemon. A daemon outlives the command that
# started it, and must not keep that command's files open: a lock taken
# around `make k8s-up` (flock /tmp/macguard-heavy.lock make k8s-up) would
# be held by every daemon of the node until k8s-down. No redirection on
# the loop: bash would save stderr on a descriptor above 2 for it, the loop
# would close that copy, and the daemon's stderr (its log) would be lost.
# shellcheck disable=SC2016
CLOSE_FDS='for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done; '

# node_lock: one user of the node at a time. make k8s-up, k8s-down and
# test-k8s of one checkout share one node, and two runs at once would
# restart it under each other or fight over the DaemonSet. The lock is held
# until the calling script exits; scripts started under it (test.sh ->
# up.sh, the tests -> node.sh) inherit it.
node_lock() {
	[ -z "${K8S_LOCK_HELD:-}" ] || return 0
	mkdir -p "$K8S_CACHE"
	exec 9>"$K8S_CACHE/node.lock"
	if ! flock -n 9; then
		log "another run is using this node ($K8S_CACHE/node.lock); waiting for it"
		flock -w 3600 9 || die "the node stayed locked for an hour"
	fi
	export K8S_LOCK_HELD=1
}
die() {
	printf 'k8s: FAILED: %s\n' "$*" >&2
	exit 1
}

# starttime PID: the process's start time (in clock ticks since boot),
# which together with the PID names one process: a PID reused by another
# process after a crash or a reboot does not match. Nothing (and success)
# for a process that is gone: callers test for the empty string, which an
# assignment failing under set -e would never let them do.
starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null || true; }

# pid_of NAME: the PID in our pidfile NAME, if that very process is alive.
pid_of() {
	local f=$PIDS/$1.pid p
	[ -f "$f" ] || return 1
	p=$(cat "$f")
	[ -n "$p" ] && [ -d "/proc/$p" ] || return 1
	if [ -f "$PIDS/$1.start" ] && [ "$(cat "$PIDS/$1.start")" != "$(starttime "$p")" ]; then
		return 1
	fi
	echo "$p"
}

# in_node CMD...: run CMD in the node's network and mount namespaces.
in_node() {
	local a
	a=$(pid_of anchor) || die "the node's anchor process is not running (make k8s-up)"
	nsenter --mount="/proc/$a/ns/mnt" --net="/run/netns/$NODE_NETNS" -- "$@"
}

# start NAME CMD...: start a daemon in the node, detached from this shell
# (its own session, so that make's end or a ^C here does not stop it), with
# its PID in $PIDS/NAME.pid and its output in $LOGS/NAME.log. The pidfile
# is written by the process itself before it execs the daemon, so it holds
# the daemon's own PID. The daemon inherits no descriptor but 0-2 (CLOSE_FDS),
# the node lock's included: it would hold a lock for as long as it runs.
start() {
	local name=$1 a
	shift
	a=$(pid_of anchor) || die "the node's anchor process is not running"
	mkdir -p "$PIDS" "$LOGS"
	# The command, for hack/k8s/node.sh restart.
	printf '%q ' "$@" >"$PIDS/$name.cmd"
	rm -f "$PIDS/$name.pid"
	# $$ and "$@" are the inner bash's, hence the single quotes.
	# shellcheck disable=SC2016
	setsid bash -c "$CLOSE_FDS"'echo $$ >"$1"; shift; exec "$@"' _ "$PIDS/$name.pid" \
		nsenter --mount="/proc/$a/ns/mnt" --net="/run/netns/$NODE_NETNS" -- "$@" \
		</dev/null >>"$LOGS/$name.log" 2>&1 9>&- &
	local i st
	# On a loaded machine the fork and exec can take a while; a pidfile
	# that never comes means the start failed.
	for i in $(seq 300); do
		[ -s "$PIDS/$name.pid" ] && break
		sleep 0.1
	done
	[ -s "$PIDS/$name.pid" ] || die "$name did not write its pidfile $PIDS/$name.pid within 30 s (log $LOGS/$name.log)"
	st=$(starttime "$(cat "$PIDS/$name.pid")")
	[ -n "$st" ] || die "$name (pid $(cat "$PIDS/$name.pid")) exited at once (log $LOGS/$name.log)"
	echo "$st" >"$PIDS/$name.start"
	log "started $name (pid $(cat "$PIDS/$name.pid"), log $LOGS/$name.log)"
}

# stop_pid PID WHAT [GRACE]: TERM, wait up to GRACE seconds, then KILL, and
# wait until it is gone.
stop_pid() {
	local p=$1 what=$2 grace=${3:-10} i
	[ -d "/proc/$p" ] || return 0
	kill -TERM "$p" 2>/dev/null || true
	for i in $(seq $((grace * 10))); do
		[ -d "/proc/$p" ] || return 0
		# A zombie of ours is gone for every purpose here.
		[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] && return 0
		sleep 0.1
	done
	log "$what (pid $p) did not stop on TERM; killing it"
	kill -KILL "$p" 2>/dev/null || true
	for _ in $(seq 50); do
		[ -d "/proc/$p" ] || return 0
		[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] && return 0
		sleep 0.1
	done
	die "$what (pid $p) is still running after SIGKILL"
}

# stop NAME [GRACE]: stop the daemon of pidfile NAME and remove the pidfile.
stop() {
	local p
	if p=$(pid_of "$1"); then
		stop_pid "$p" "$1" "${2:-10}"
	fi
	rm -f "$PIDS/$1.pid" "$PIDS/$1.start"
}

# sysctl_file NAME: the /proc/sys file of sysctl NAME.
sysctl_file() { printf '/proc/sys/%s' "${1//.//}"; }

# save_sysctls: note the machine's values of $KUBELET_SYSCTLS, unless a
# node of this checkout saved them already and they were not restored yet
# (then the values there are the machine's own, and the live ones may be
# the kubelet's).
save_sysctls() {
	local s
	if [ -f "$SYSCTLS_SAVED" ]; then
		log "the machine's sysctls are saved already ($SYSCTLS_SAVED); keeping those"
		return 0
	fi
	{
		echo "boot_id $(cat /proc/sys/kernel/random/boot_id)"
		for s in $KUBELET_SYSCTLS; do
			echo "$s $(cat "$(sysctl_file "$s")")"
		done
	} >"$SYSCTLS_SAVED.tmp"
	mv "$SYSCTLS_SAVED.tmp" "$SYSCTLS_SAVED"
}

# restore_sysctls: write the saved values back (the kubelet must be
# stopped) and remove the file. Values saved in an earlier boot are not
# written: the reboot reset them.
restore_sysctls() {
	local k v cur
	[ -f "$SYSCTLS_SAVED" ] || return 0
	if [ "$(awk '$1 == "boot_id" {print $2}' "$SYSCTLS_SAVED")" = "$(cat /proc/sys/kernel/random/boot_id)" ]; then
		while read -r k v; do
			case " $KUBELET_SYSCTLS " in
			*" $k "*) ;;
			*) continue ;;
			esac
			cur=$(cat "$(sysctl_file "$k")")
			[ "$cur" = "$v" ] && continue
			echo "$v" >"$(sysctl_file "$k")" || die "cannot restore $k to $v (the kubelet set $cur)"
			log "restored $k = $v (the kubelet had set $cur)"
		done <"$SYSCTLS_SAVED"
	else
		log "$SYSCTLS_SAVED is from an earlier boot; not restoring it"
	fi
	rm -f "$SYSCTLS_SAVED"
}
