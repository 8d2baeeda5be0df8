// Package identity decides which workload an attachment belongs to, so that a
// derived MAC follows the workload rather than the sandbox.
//
// The case that shapes it is KubeVirt: every VM start creates a new
// virt-launcher pod named virt-launcher-<vm>-<5 random chars>, and a VM must
// keep its MAC across those restarts.
package identity

import (
	"fmt"
	"strings"
)

// Mode selects how the identity is chosen (config field "identity").
type Mode string

// Identity modes.
const (
	ModeAuto      Mode = "auto"
	ModePod       Mode = "pod"
	ModeContainer Mode = "container"
)

// Kinds of identity; they are part of the derivation input, so a pod and a
// VM that happen to share a name never share a MAC.
const (
	KindPod       = "pod"
	KindVM        = "vm"
	KindContainer = "container"
)

// Identity names a workload. Key is "<namespace>/<name>" for pods and VMs and
// the container ID otherwise.
type Identity struct {
	Kind string
	Key  string
}

// String is used in log lines and error messages.
func (i Identity) String() string { return i.Kind + " " + i.Key }

// VM is the identity of KubeVirt VM name in namespace: the one key the
// plugin (from a virt-launcher pod), the webhook and `macguardctl mac`
// derive a VM's MACs from. Its form is part of the derivation input, so it
// must never change.
func VM(namespace, name string) Identity { return Identity{Kind: KindVM, Key: namespace + "/" + name} }

// Container is the identity of an attachment known only by its container
// ID (CNI_CONTAINERID): the key the plugin (identity "container", or "auto"
// without Kubernetes arguments) and `macguardctl mac --container-id`
// derive from. Its form is part of the derivation input, so it must never
// change.
func Container(containerID string) Identity { return Identity{Kind: KindContainer, Key: containerID} }

// Pod carries the Kubernetes arguments runtimes put into CNI_ARGS.
type Pod struct {
	Namespace string
	Name      string
}

const (
	launcherPrefix = "virt-launcher-"
	// Kubernetes appends 5 random characters to a generateName and cuts the
	// base to 58 characters so the name fits 63 (see k8s.io/apiserver's
	// names.SimpleNameGenerator). The generator draws from a vowel-free
	// alphabet, but any lowercase alphanumeric suffix is accepted: names
	// written by hand or by other tools (and every example in KubeVirt's
	// docs) use vowels too, and being stricter would silently give such a
	// VM a new MAC on each restart.
	randomSuffixLen  = 5
	maxGeneratedBase = 58
	maxGeneratedName = maxGeneratedBase + randomSuffixLen
	suffixAlphabet   = "abcdefghijklmnopqrstuvwxyz0123456789"
)

// VMName returns the VM a virt-launcher pod runs, or "" when podName is not a
// generated virt-launcher name. For VM names too long for the generated pod
// name, Kubernetes truncated the base, and the truncated name (identical on
// every restart) is returned.
func VMName(podName string) string {
	if !strings.HasPrefix(podName, launcherPrefix) || len(podName) <= len(launcherPrefix)+randomSuffixLen {
		return ""
	}
	base, suffix := podName[:len(podName)-randomSuffixLen], podName[len(podName)-randomSuffixLen:]
	for _, c := range suffix {
		if !strings.ContainsRune(suffixAlphabet, c) {
			return ""
		}
	}
	if len(podName) == maxGeneratedName {
		// The base was cut at 58 characters; its trailing '-' may or may not
		// have survived, and the VM name may be cut short.
		vm := strings.TrimSuffix(base[len(launcherPrefix):], "-")
		if vm == "" {
			return ""
		}
		return vm
	}
	if !strings.HasSuffix(base, "-") {
		return ""
	}
	vm := base[len(launcherPrefix) : len(base)-1]
	if vm == "" {
		return ""
	}
	return vm
}

// Resolve picks the identity for an attachment. containerID is CNI_CONTAINERID
// and is always present.
func Resolve(mode Mode, pod Pod, containerID string) (Identity, error) {
	hasPod := pod.Namespace != "" && pod.Name != ""
	switch mode {
	case ModeContainer:
		return Container(containerID), nil
	case ModePod:
		if !hasPod {
			return Identity{}, fmt.Errorf(`identity "pod" needs K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS; the runtime did not pass them (use identity "auto" or "container" outside Kubernetes)`)
		}
		return Identity{Kind: KindPod, Key: pod.Namespace + "/" + pod.Name}, nil
	case ModeAuto, "":
		if !hasPod {
			return Container(containerID), nil
		}
		if vm := VMName(pod.Name); vm != "" {
			return VM(pod.Namespace, vm), nil
		}
		return Identity{Kind: KindPod, Key: pod.Namespace + "/" + pod.Name}, nil
	}
	return Identity{}, fmt.Errorf("unknown identity mode %q", mode)
}
