// Package doctor is `macguardctl doctor`: it shows an operator what is wrong
// with the pod MACs on a node (and, with cluster credentials, in the
// cluster) and what to do about it.
//
// It works in three steps that are kept apart on purpose:
//
//  1. Gather reads the world into a World: the pod network namespaces and
//     their interfaces, libcni's cache, macguard's records, the CNI
//     configuration files, the plugin binary and, optionally, the cluster.
//     It is the only step that touches the kernel, the filesystem or the
//     API server.
//  2. Analyze is a pure function from a World to a Report: every rule lives
//     there, so every rule is tested on a World written by hand and the
//     report format is pinned by a golden test on a fixed World.
//  3. Render prints the Report for a person or as JSON (docs/doctor.md).
//
// Nothing is ever changed, except that --fix removes the records Analyze
// found stale (under the exclusive lock the plugin's GC takes).
package doctor

import (
	"encoding/json"

	"github.com/macguard-cni/macguard/pkg/pathpolicy"
)

// roots are the plugin's allowed roots on this world's node.
func (w *World) roots() pathpolicy.Roots {
	if w.Roots != nil {
		return *w.Roots
	}
	return pathpolicy.FromEnv(func(string) string { return "" })
}

// World is everything the doctor looked at, as plain data. It is also the
// format of the fixed worlds in testdata, so its JSON names are kept short
// and stable.
type World struct {
	// Node is the node's name (NODE_NAME, --node or the hostname).
	Node string `json:"node"`
	Dirs Dirs   `json:"dirs"`
	// Self is the running macguardctl's build.
	Self Build `json:"self"`
	// Netns are the pod network namespaces, one per inode.
	Netns []Netns `json:"netns"`
	// Cache is libcni's cache of attachments (<cache-dir>/results and
	// Multus' <multus-cache-dir>/results).
	Cache []CacheEntry `json:"cache"`
	// CacheErrors are files in <cache-dir>/results libcni could not read.
	CacheErrors []FileError `json:"cacheErrors,omitempty"`
	// Records are macguard's records in dataDir.
	Records []Record `json:"records"`
	// LegacyRecords are files in dataDir named like the records of builds
	// before records named their network, which no DEL or GC reads.
	LegacyRecords []string `json:"legacyRecords,omitempty"`
	// Confs are the files in the CNI conf dir, in the order libcni
	// considers them (by name).
	Confs []ConfFile `json:"confs"`
	// Extra are the configurations named with --conf.
	Extra []ConfFile `json:"extra,omitempty"`
	// Roots are where the plugin may keep state and logs, read from the
	// doctor's environment the way the plugin reads the runtime's (see
	// pkg/pathpolicy); nil means the built-in defaults.
	Roots  *pathpolicy.Roots `json:"roots,omitempty"`
	Binary Binary            `json:"binary"`
	// Cluster is nil when the cluster was not asked about.
	Cluster *Cluster `json:"cluster,omitempty"`
	// ClusterErr is why the cluster checks failed (API server unreachable,
	// pods forbidden): the node report stands, with a warning.
	ClusterErr string `json:"clusterErr,omitempty"`
	// ClusterNotChecked says why the cluster was not looked at although
	// --no-cluster was not given (no credentials found).
	ClusterNotChecked string `json:"clusterNotChecked,omitempty"`
	// Missing lists default directories that do not exist (not an error:
	// a node where no pod was started yet has no netns dir or cache).
	Missing []string `json:"missing,omitempty"`
	// Fixed lists the record files --fix removed, Fix errors the ones it
	// could not.
	Fixed     []string `json:"fixed,omitempty"`
	FixErrors []string `json:"fixErrors,omitempty"`
}

// Dirs are the places the doctor looked, as given by the flags.
type Dirs struct {
	Conf  string `json:"conf"`
	Bin   string `json:"bin"`
	Data  string `json:"data"`
	Cache string `json:"cache"`
	// MultusCache is Multus' own libcni cache, where the results of the
	// networks it delegates to (net1, ...) are kept.
	MultusCache string `json:"multusCache,omitempty"`
	Netns       string `json:"netns"`
	Proc        string `json:"proc"`
}

// Build is a version and commit as pkg/buildinfo stamps them.
type Build struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
}

// Netns is one pod network namespace.
type Netns struct {
	// Path is how the doctor opened it: a netns dir entry, or
	// <proc>/<pid>/ns/net for a namespace only a process holds.
	Path  string `json:"path"`
	Inode uint64 `json:"inode"`
	// Seen says where it was found: "netns-dir" and/or "pid N".
	Seen []string `json:"seen"`
	// ContainerIDs are the container IDs in the cgroups of the processes
	// that hold it: a pod's sandbox ID is its CNI container ID, so they
	// tie a netns to libcni's cache and to macguard's records even where
	// the netns path the runtime gave cannot be opened (a doctor in a pod
	// whose netns dir mount does not receive new namespaces).
	ContainerIDs []string    `json:"containerIDs,omitempty"`
	Interfaces   []Interface `json:"interfaces"`
	// Err is why the interfaces could not be listed.
	Err string `json:"err,omitempty"`
	// Routing is how the pod's kernel would route replies from its
	// addresses (paths.go); nil when it was not looked at.
	Routing *Routing `json:"routing,omitempty"`
}

// Interface is one network interface of a pod.
type Interface struct {
	Name string `json:"name"`
	// Kind is netlink's link kind ("veth", "macvlan", "netkit", "device").
	Kind        string `json:"kind"`
	NetkitMode  string `json:"netkitMode,omitempty"`
	MacvlanMode string `json:"macvlanMode,omitempty"`
	IPVlanMode  string `json:"ipvlanMode,omitempty"`
	Master      string `json:"master,omitempty"`
	MasterKind  string `json:"masterKind,omitempty"`
	// Encap is netlink's name of the link type; "ether" devices can carry
	// a MAC, "loopback" is lo.
	Encap string `json:"encap"`
	MAC   string `json:"mac"`
	Up    bool   `json:"up"`
}

// CacheEntry is one attachment from libcni's cache.
type CacheEntry struct {
	File        string `json:"file"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Network     string `json:"network"`
	Netns       string `json:"netns"`
	// NetnsInode is the inode of Netns now, 0 when it is gone.
	NetnsInode uint64 `json:"netnsInode,omitempty"`
	// Args are the CNI_ARGS the runtime passed (K8S_POD_NAMESPACE, ...).
	Args map[string]string `json:"args,omitempty"`
	// RuntimeMAC is the runtimeConfig "mac" capability argument.
	RuntimeMAC string `json:"runtimeMAC,omitempty"`
	// Config is the network configuration (conflist) the attachment used.
	Config json.RawMessage `json:"config,omitempty"`
	// Result lists the interfaces of the cached result.
	Result []ResultInterface `json:"result,omitempty"`
	// ResultErr is why the cached result could not be read.
	ResultErr string `json:"resultErr,omitempty"`
	// IPs are the cached result's addresses (paths.go reads their
	// gateways).
	IPs []ResultIP `json:"ips,omitempty"`
}

// ResultInterface is an interface of a cached CNI result.
type ResultInterface struct {
	Name    string `json:"name"`
	MAC     string `json:"mac"`
	Sandbox string `json:"sandbox,omitempty"`
}

// FileError is a file that could not be read or decoded.
type FileError struct {
	File string `json:"file"`
	Err  string `json:"err"`
}

// Record is one of macguard's records and what became of its attachment.
type Record struct {
	File string `json:"file"`
	// Network is the record's network ("name" of its configuration).
	Network     string `json:"network,omitempty"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns,omitempty"`
	OriginalMAC string `json:"originalMAC,omitempty"`
	AppliedMAC  string `json:"appliedMAC,omitempty"`
	// Err is set when the file holds no usable record.
	Err string `json:"err,omitempty"`
	// NetnsGone: the record's netns no longer exists; NetnsInode is its
	// inode otherwise.
	NetnsGone  bool   `json:"netnsGone,omitempty"`
	NetnsInode uint64 `json:"netnsInode,omitempty"`
	// IfPresent: the interface exists in the record's netns.
	IfPresent bool `json:"ifPresent,omitempty"`
	// NetnsErr is why the netns could not be looked into (then the record
	// is neither live nor stale).
	NetnsErr string `json:"netnsErr,omitempty"`
}

// ConfFile is one CNI configuration: a file of the conf dir, a file given
// with --conf, or a NetworkAttachmentDefinition's config.
type ConfFile struct {
	// Path names it: the file, or "<file> (NAD ns/name)".
	Path    string `json:"path"`
	Content string `json:"content"`
	// NAD is "namespace/name" when the config comes from one.
	NAD string `json:"nad,omitempty"`
	// Err is why it could not be read.
	Err string `json:"err,omitempty"`
}

// Binary is the macguard plugin in the CNI bin dir.
type Binary struct {
	Path       string `json:"path"`
	Present    bool   `json:"present"`
	Executable bool   `json:"executable"`
	// Version is what `macguard version` printed, trimmed.
	Version string `json:"version,omitempty"`
	// Err is why it could not be run.
	Err string `json:"err,omitempty"`
}

// Cluster is what the API server said.
type Cluster struct {
	// Node is the node the doctor runs on, as the API server knows it;
	// NodeErr is why it could not be read.
	Node    string       `json:"node"`
	NodeErr string       `json:"nodeErr,omitempty"`
	Pods    []ClusterPod `json:"pods"`
	NADs    []NAD        `json:"nads"`
	// NADErr is why NetworkAttachmentDefinitions could not be listed
	// (e.g. the CRD is not installed).
	NADErr string `json:"nadErr,omitempty"`
	// VMs are KubeVirt's VirtualMachines (none without KubeVirt); VMErr
	// is why they could not be listed.
	VMs   []ClusterVM `json:"vms,omitempty"`
	VMErr string      `json:"vmErr,omitempty"`
	// MACWebhooks names every mutating webhook ("configuration/webhook"),
	// to find the ones that assign VM MACs; WebhookErr is why they could
	// not be listed.
	MACWebhooks []string `json:"macWebhooks,omitempty"`
	WebhookErr  string   `json:"webhookErr,omitempty"`
	// Paths is what the packet-path checks read (calico.go).
	Paths *PathCluster `json:"paths,omitempty"`
}

// ClusterPod is the part of a pod the checks read.
type ClusterPod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Node      string `json:"node,omitempty"`
	// Launcher is true for KubeVirt virt-launcher pods.
	Launcher bool `json:"launcher,omitempty"`
	// Networks and NetworkStatus are the k8s.v1.cni.cncf.io/networks and
	// .../network-status annotations, verbatim.
	Networks      string `json:"networks,omitempty"`
	NetworkStatus string `json:"networkStatus,omitempty"`
}

// NAD is a NetworkAttachmentDefinition.
type NAD struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Config    string `json:"config"`
}
