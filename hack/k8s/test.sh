#!/usr/bin/env bash
# make test-k8s: run the test/k8s suite against the one-node cluster. A
# node that is already up (make k8s-up) is used and left running; else one
# is brought up here and taken down at the end, pass or fail.
#
# The API server listens only in the node's network namespace, so the test
# binary runs there (network namespace only: it sees the machine's files,
# and each pod's network namespace through /proc/<pid>/ns/net).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/errexit.sh
. "$here/../lib/errexit.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"
node_lock
: "${K8S_TEST_BIN:?}" "${K8S_ENV_FILE:?}"
hack=$(dirname "$here")
"$hack/require-root.sh"

node_up() {
	[ -f "$K8S_ENV_FILE" ] && pid_of anchor >/dev/null && pid_of kube-apiserver >/dev/null &&
		pid_of kubelet >/dev/null && pid_of containerd >/dev/null && worker_up
}
# worker_up: the second node runs if K8S_NODES=2 asks for it.
worker_up() {
	local st
	[ "${K8S_NODES:-1}" = 2 ] || return 0
	grep -q '^WORKER_ENV_FILE=' "$K8S_ENV_FILE" || return 1
	st=$("$here/worker.sh" node.sh status) || return 1
	grep -q '^kubelet running' <<<"$st" && grep -q '^containerd running' <<<"$st" && ! grep -q 'NOT running' <<<"$st"
}
# teardown: take down the node this run brought up, and check that it is
# gone: its network namespace, and every process of its pidfiles (ours and
# containerd's), as they were just before. A failed or incomplete teardown
# fails the run. (Run by the EXIT trap, which shellcheck does not follow.)
# shellcheck disable=SC2317
teardown() {
	local rc=$? f p st recorded=() left=()
	# The second node's (K8S_NODES=2) are under run-node2 (worker.sh).
	for f in "$PIDS"/*.pid $(find "$CTRD/state/io.containerd.runtime.v2.task" -name '*.pid' 2>/dev/null) \
		"$K8S_CACHE"/run-node2/pids/*.pid $(find "$K8S_CACHE/run-node2/containerd/state/io.containerd.runtime.v2.task" -name '*.pid' 2>/dev/null); do
		[ -f "$f" ] || continue
		p=$(cat "$f" 2>/dev/null) || continue
		st=$(starttime "$p") || continue
		[ -n "$st" ] && recorded+=("$p:$st")
	done
	if ! "$here/down.sh"; then
		log "FAILED: k8s-down failed"
		rc=1
	fi
	if [ -e "/run/netns/$NODE_NETNS" ] || [ -e "/run/netns/$("$here/worker.sh" node.sh netns)" ]; then
		log "FAILED: the network namespace of a node is still there after k8s-down"
		rc=1
	fi
	for p in ${recorded[@]+"${recorded[@]}"}; do
		# A zombie (not reaped yet by whoever inherited it) is gone.
		[ "$(starttime "${p%%:*}")" = "${p#*:}" ] &&
			[ "$(awk '{print $3}' "/proc/${p%%:*}/stat" 2>/dev/null)" != Z ] && left+=("${p%%:*}")
	done
	if [ ${#left[@]} != 0 ]; then
		log "FAILED: still running after k8s-down: $(for p in "${left[@]}"; do printf '%s(%s) ' "$p" "$(cat "/proc/$p/comm" 2>/dev/null)"; done)"
		rc=1
	fi
	exit "$rc"
}
if node_up; then
	log "using the running node ($K8S_ENV_FILE); it stays up"
	# make image may have rebuilt the archive since the node imported it:
	# import it again (plainly, as k8s-up does) so that the DaemonSet runs
	# the image the test compares with.
	ctr --address "$CTRD_SOCK" -n k8s.io images import "$MACGUARD_IMAGE_ARCHIVE" >/dev/null
else
	trap teardown EXIT
	"$here/up.sh"
fi
t0=$(date +%s)
set +e
(
	set -a
	# shellcheck disable=SC1090
	. "$K8S_ENV_FILE"
	set +a
	export K8S_ENV_FILE K8S_HACK_DIR=$here K8S_CACHE K8S_VERSION MULTUS_VERSION CNI_PLUGINS_VERSION ETCD_DEB_VERSION \
		PAUSE_IMAGE PAUSE_ARCHIVE K8S_CNI_PLUGIN_DIR
	cd "${REPO_ROOT:?}/test/k8s"
	# TestChurn needs the second node (make test-k8s-churn).
	skip=()
	[ "${K8S_NODES:-1}" = 2 ] || skip=(-test.skip '^TestChurn$')
	exec nsenter --net="/run/netns/$NODE_NETNS" -- "$K8S_TEST_BIN" -test.v -test.count=1 -test.timeout "${K8S_TEST_TIMEOUT:-30m}" \
		${K8S_RUN_TESTS:+-test.run "$K8S_RUN_TESTS"} "${skip[@]}"
)
rc=$?
log "test/k8s took $(($(date +%s) - t0))s (exit $rc)"
exit $rc
