// Package k8s holds no code: its tests run macguard on a real one-node
// Kubernetes cluster (make k8s-up, hack/k8s): the DaemonSet from deploy/,
// Multus and its NetworkAttachmentDefinitions from cni-conf/multus, pods
// asking for MACs through their network selection elements. Every result is
// checked twice, in the API (pod status, the network-status annotation,
// Events) and in the kernel (the interface in the pod's network namespace,
// macguard's records).
//
// make test-k8s builds the test binary and runs it in the node's network
// namespace, where the API server listens; see docs/k8s.md.
package k8s
