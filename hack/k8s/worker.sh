#!/usr/bin/env bash
# hack/k8s/worker.sh CMD [ARGS...]: run CMD (up.sh, down.sh, node.sh from
# this directory, or any command) for the second node of make k8s-up
# K8S_NODES=2, e.g.
#
#   hack/k8s/worker.sh node.sh restart kubelet
#
# The second node is the first one's up.sh with K8S_ROLE=worker: a kubelet
# and a containerd in a network and mount namespace of their own, with
# their own CNI dirs, macvlan parent and host-device devices, joined to the
# first node's API server. Its state is under $K8S_CACHE/run-node2, beside
# the first node's (a purge of one never deletes the other); its network
# namespace is named after that directory like the first node's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_CACHE=${K8S_CACHE:-$(cd "$here/../.." && pwd)/.cache/k8s}
# shellcheck source=../lib/errexit.sh
. "$here/../lib/errexit.sh"
# The first node's values (it runs the API server).
# shellcheck source=lib.sh
. "$here/lib.sh"
[ "${K8S_ROLE:-}" != worker ] || die "worker.sh is run for the first node's environment, not from a worker's"
export K8S_API_NETNS=$NODE_NETNS K8S_API_RUN=$K8S_RUN K8S_API_IP=$NODE_IP
# The worker's: another subnet for the node and its pods, so that the
# first node routes to it through the veth and host-local's ranges do not
# overlap.
export K8S_ROLE=worker K8S_CACHE K8S_RUN=$K8S_CACHE/run-node2 NODE_NAME=macguard-node2 NODE_IP=10.250.1.2 \
	POD_SUBNET=10.251.1.0/24 K8S_ENV_FILE=$K8S_CACHE/env-node2 WORKER_UPLINK=mg-node2
# Named after the worker's state directory by lib.sh, not inherited.
unset NODE_NETNS
cmd=${1:?usage: worker.sh up.sh|down.sh|node.sh ARGS...}
shift
if [ -x "$here/$cmd" ]; then
	exec "$here/$cmd" "$@"
fi
exec "$cmd" "$@"
