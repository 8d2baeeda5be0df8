package doctor

// SchemaVersion is the version of the JSON report (docs/doctor.md). It
// changes only when a field is removed or changes meaning; new fields and
// new finding codes do not change it.
const SchemaVersion = 1

// Severity says how bad a finding is.
type Severity string

// Severities. Errors and warnings make the doctor exit 1; info does not,
// so a healthy node may have info findings and still exit 0.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Section is where a finding belongs when it is not about a pod.
type Section string

// Sections, in the order the report shows them.
const (
	SectionPods    Section = "pods"
	SectionRecords Section = "records"
	SectionConfig  Section = "config"
	SectionBinary  Section = "binary"
	SectionCluster Section = "cluster"
)

// Finding is one thing the doctor has to say.
type Finding struct {
	Severity Severity `json:"severity"`
	// Code is a stable identifier of the rule (docs/doctor.md lists them).
	Code    string  `json:"code"`
	Section Section `json:"section"`
	// Pod names the pod: "namespace/name", else the container ID, else the
	// netns path. Interface is the interface inside it.
	Pod       string `json:"pod,omitempty"`
	Interface string `json:"interface,omitempty"`
	// File is the record, conf file or binary concerned; NAD the
	// NetworkAttachmentDefinition ("namespace/name").
	File    string `json:"file,omitempty"`
	NAD     string `json:"nad,omitempty"`
	MAC     string `json:"mac,omitempty"`
	Message string `json:"message"`
	// Remedy says what to do, in the words of the plugin's own errors.
	Remedy string `json:"remedy,omitempty"`
}

// Report is the doctor's answer; its JSON form is the stable schema.
type Report struct {
	SchemaVersion int    `json:"schemaVersion"`
	Node          string `json:"node"`
	Macguardctl   Build  `json:"macguardctl"`
	// Dirs are the places the doctor looked.
	Dirs    Dirs    `json:"dirs"`
	Summary Summary `json:"summary"`
	Pods    []Pod   `json:"pods"`
	// Records are macguard's records with their state.
	Records []RecordState `json:"records"`
	// Configs are the conf dir's files, then those given with --conf,
	// then the NADs.
	Configs  []ConfigState `json:"configs"`
	Binary   Binary        `json:"binary"`
	Findings []Finding     `json:"findings"`
}

// Summary counts the findings.
type Summary struct {
	// Status is "healthy", "warnings" or "errors".
	Status   string `json:"status"`
	Errors   int    `json:"errors"`
	Warnings int    `json:"warnings"`
	Info     int    `json:"info"`
}

// Pod is one pod network namespace and its interfaces.
type Pod struct {
	// Name is how findings name it (see Finding.Pod).
	Name        string   `json:"name"`
	Namespace   string   `json:"namespace,omitempty"`
	PodName     string   `json:"podName,omitempty"`
	ContainerID string   `json:"containerID,omitempty"`
	Netns       string   `json:"netns"`
	Seen        []string `json:"seen"`
	// VM is the KubeVirt VM a virt-launcher pod runs.
	VM         string         `json:"vm,omitempty"`
	Interfaces []PodInterface `json:"interfaces"`
}

// PodInterface is an interface with what is known about its attachment.
type PodInterface struct {
	Interface
	// Network is the CNI network that created it, from libcni's cache.
	Network string `json:"network,omitempty"`
	// Macguard is true when that network's chain has macguard.
	Macguard bool `json:"macguard,omitempty"`
	// Applied is the MAC macguard's record says it set.
	Applied string `json:"applied,omitempty"`
}

// RecordState is a record and whether its attachment still exists.
type RecordState struct {
	File        string `json:"file"`
	Network     string `json:"network,omitempty"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns,omitempty"`
	AppliedMAC  string `json:"appliedMAC,omitempty"`
	// State is "live", "stale", "corrupt", "unknown" (its netns could
	// not be looked into) or "removed" (by --fix).
	State string `json:"state"`
}

// ConfigState is one configuration and how macguard sits in it.
type ConfigState struct {
	File string `json:"file"`
	// Source is "conf-dir", "conf-flag" (--conf) or "cluster" (a NAD).
	Source string `json:"source"`
	NAD    string `json:"nad,omitempty"`
	// Network is the configuration's "name".
	Network string `json:"network,omitempty"`
	// Plugins are the chain's plugin types in order.
	Plugins []string `json:"plugins,omitempty"`
	// Loaded is true for the conf dir file the runtime loads.
	Loaded bool `json:"loaded,omitempty"`
	// Macguard is true when the chain has macguard; After is the plugin
	// before it.
	Macguard bool   `json:"macguard,omitempty"`
	After    string `json:"after,omitempty"`
	Valid    bool   `json:"valid"`
	// NoConfig is true for a NAD without spec.config: Multus reads its
	// configuration from its own conf dir, which is not checked.
	NoConfig bool `json:"noConfig,omitempty"`
}

// CannotLook is what --json prints when the doctor could not look (exit
// code 2): no report, only why.
type CannotLook struct {
	SchemaVersion int    `json:"schemaVersion"`
	Node          string `json:"node"`
	Macguardctl   Build  `json:"macguardctl"`
	// Error is what stopped it (the same words as on stderr).
	Error string `json:"error"`
}
