#!/usr/bin/env bash
# make k8s-down: stop everything make k8s-up started and remove what it
# made outside $K8S_RUN, whether the last run ended cleanly or was killed.
# Processes are stopped by the PIDs in their pidfiles (ours, and
# containerd's shim.pid/init.pid), never by name. Once the last process of
# the node's mount namespace is gone, every mount the node made is gone
# with it; then the network namespace (and every device in it) is deleted.
#
# K8S_PURGE=1 also deletes $K8S_RUN (etcd's data, images, logs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/errexit.sh
. "$here/../lib/errexit.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"
node_lock

# The second node (K8S_NODES=2) first: it uses this node's API server,
# and its kubelet must be stopped before the sysctls are put back.
[ "${K8S_ROLE:-}" = worker ] || "$here/worker.sh" down.sh

[ -d "$K8S_RUN" ] || [ -e "/run/netns/$NODE_NETNS" ] || [ -f "$SYSCTLS_SAVED" ] || exit 0

# The kubelet first, so that nothing restarts what is stopped next.
stop kubelet 15
# Then the global sysctls it set go back to the machine's values (the
# first node saved them; a worker's kubelet started after it).
[ "${K8S_ROLE:-}" = worker ] || restore_sysctls

# Container processes, from containerd's own pidfiles.
# init.pid is a container's first process; it is PID 1 of its own PID
# namespace, so killing it ends every process of the container. The files
# outlive a reboot, and a PID in them may then belong to anything: a PID is
# only taken for the container's while the boot is the one that made the
# node ($PIDS/boot_id) and the process is in that container's cgroup (runc
# names it after the container's ID, the directory of the init.pid).
tasks=$CTRD/state/io.containerd.runtime.v2.task
same_boot=0
if [ -f "$PIDS/boot_id" ] && [ "$(cat "$PIDS/boot_id")" = "$(cat /proc/sys/kernel/random/boot_id)" ]; then
	same_boot=1
fi
# container_pid INIT_PID_FILE: the live PID of that container's first
# process, if it is the container's.
container_pid() {
	local p id
	[ $same_boot = 1 ] || return 1
	p=$(cat "$1" 2>/dev/null) || return 1
	[ -n "$p" ] && [ -d "/proc/$p" ] || return 1
	[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] || return 1
	id=$(basename "$(dirname "$1")")
	grep -qE "/$id\$" "/proc/$p/cgroup" 2>/dev/null || return 1
	echo "$p"
}
if [ -d "$tasks" ]; then
	while IFS= read -r f; do
		p=$(container_pid "$f") || continue
		kill -KILL "$p" 2>/dev/null || true
	done < <(find "$tasks" -name init.pid)
fi
for d in containerd kube-scheduler kube-controller-manager kube-apiserver etcd; do
	stop "$d" 15
done
# Containers exit on SIGKILL at once; wait for them, so that what is left
# below is only what never had a pidfile.
if [ -d "$tasks" ]; then
	for _ in $(seq 50); do
		alive=0
		while IFS= read -r f; do
			container_pid "$f" >/dev/null && alive=1
		done < <(find "$tasks" -name init.pid)
		[ $alive = 0 ] && break
		sleep 0.1
	done
fi
# Whatever else still runs in the node's mount namespace and belongs to
# this node (its command line or binary names the state directory):
# containerd's shims, which write no pidfile, or a plugin that hung.
# Only within the boot that made the namespace; the state directory in
# the command line keeps a namespace inode that was reused by someone
# else from ever matching.
if [ -f "$PIDS/mntns" ] && [ "$(cat "$PIDS/boot_id" 2>/dev/null)" = "$(cat /proc/sys/kernel/random/boot_id)" ]; then
	mntns=$(cat "$PIDS/mntns")
	run=$(realpath "$K8S_RUN")
	anchor=$(pid_of anchor || true)
	for _ in 1 2 3; do
		left=()
		for d in /proc/[0-9]*; do
			p=${d#/proc/}
			[ "$p" != "$anchor" ] || continue
			[ "$(stat -L -c %i "$d/ns/mnt" 2>/dev/null)" = "$mntns" ] || continue
			if tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -F "$run" >/dev/null ||
				[[ $(readlink "$d/exe" 2>/dev/null) == "$run"/* ]]; then
				left+=("$p")
			fi
		done
		[ ${#left[@]} = 0 ] && break
		log "killing what is left of the node: ${left[*]}"
		kill -KILL "${left[@]}" 2>/dev/null || true
		sleep 0.5
	done
fi
stop anchor 5

# runc leaves the cgroups of containers it never deleted: remove those of
# our containers (named by their IDs), deepest first.
if [ -d "$tasks" ]; then
	while IFS= read -r id; do
		find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d -name "$id" 2>/dev/null | sort -r | while IFS= read -r c; do
			rmdir "$c" 2>/dev/null || true
		done
	done < <(find "$tasks" -mindepth 2 -maxdepth 2 -type d -printf '%f\n')
	# containerd's state dir describes running tasks; none runs any more.
	rm -rf "$tasks"
fi
if [ -f "$K8S_RUN/created-cgroups" ]; then
	while IFS= read -r c; do
		[ -d "$c" ] && ! rmdir "$c" 2>/dev/null && log "left $c: not empty"
	done <"$K8S_RUN/created-cgroups"
	rm -f "$K8S_RUN/created-cgroups"
fi

if [ -e "/run/netns/$NODE_NETNS" ]; then
	ip netns del "$NODE_NETNS" || die "cannot delete the network namespace $NODE_NETNS"
fi
# Before the node made its mount points in overlays of its own, k8s-up
# created missing ones on the machine and listed them here. They are not
# removed: rmdir of a mount point of another mount namespace detaches that
# mount there (another checkout's node may be using them).
if [ -f "$K8S_RUN/created-dirs" ]; then
	log "not removing what an older k8s-up created on the machine (another node may mount it): $(tr '\n' ' ' <"$K8S_RUN/created-dirs")"
	rm -f "$K8S_RUN/created-dirs"
fi
rm -f "${K8S_ENV_FILE:-$K8S_CACHE/env}"
if [ "${K8S_PURGE:-}" = 1 ]; then
	# Nothing of ours may still be mounted in the machine's namespace.
	if awk -v r="$(realpath "$K8S_RUN")" '$5 == r || index($5, r "/") == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
		die "something is still mounted under $K8S_RUN; not deleting it"
	fi
	rm -rf "$K8S_RUN"
fi
log "node $NODE_NAME is down"
