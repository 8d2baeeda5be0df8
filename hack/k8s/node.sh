#!/usr/bin/env bash
# Operations on the running node (make k8s-up), for the tests and by hand:
#
#   hack/k8s/node.sh restart containerd|kubelet|...   stop the daemon by its
#       PID and start it again with the same command; containers keep
#       running, as on a real node whose runtime or kubelet restarts
#   hack/k8s/node.sh status                           which daemons run
#   hack/k8s/node.sh netns                            the node's network namespace
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_CACHE=${K8S_CACHE:-$(cd "$here/../.." && pwd)/.cache/k8s}
# shellcheck source=../lib/errexit.sh
. "$here/../lib/errexit.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"

case ${1:-} in
restart)
	node_lock
	name=${2:?usage: node.sh restart NAME}
	[ -f "$PIDS/$name.cmd" ] || die "no daemon $name in $PIDS"
	stop "$name" 20
	eval "start $name $(cat "$PIDS/$name.cmd")"
	;;
status)
	for f in "$PIDS"/*.pid; do
		name=$(basename "$f" .pid)
		if p=$(pid_of "$name"); then echo "$name running (pid $p)"; else echo "$name NOT running"; fi
	done
	;;
netns) echo "$NODE_NETNS" ;;
*)
	echo "usage: $0 restart NAME | status | netns" >&2
	exit 2
	;;
esac
