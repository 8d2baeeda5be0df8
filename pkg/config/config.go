// Package config parses and validates macguard's entry in a conflist, the
// CNI_ARGS it reads, and resolves which requested MAC wins.
//
// Every failure is a *types.Error with a spec code and a message that names
// the field and what is allowed, so the runtime (and the user reading
// `kubectl describe pod`) sees something actionable.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/macguard-cni/macguard/pkg/identity"
	"github.com/macguard-cni/macguard/pkg/macaddr"
)

// Assign says when macguard derives a MAC itself (config field "assign").
type Assign string

// Assign modes.
const (
	AssignZero   Assign = "zero"
	AssignAlways Assign = "always"
	AssignNever  Assign = "never"
)

// OnUnsupported says what to do when the device cannot carry a MAC.
type OnUnsupported string

// OnUnsupported choices.
const (
	UnsupportedFail OnUnsupported = "fail"
	UnsupportedSkip OnUnsupported = "skip"
)

// Defaults.
const (
	DefaultDataDir  = "/run/cni/macguard"
	DefaultLogLevel = "info"
)

// Names of the places a requested MAC can come from, lowest precedence first.
// They appear in error messages and log lines.
const (
	SourceConfig        = "config mac"
	SourceCNIArgs       = "CNI_ARGS MAC"
	SourceRuntimeConfig = "runtimeConfig.mac"
	SourceArgs          = "args.cni.mac"
)

// NetConf is macguard's entry exactly as it arrives on stdin: the fields
// the CNI spec gives every plugin plus macguard's own, all as written. Only
// Parse reads it; the plugin acts on the Config Parse returns. The
// installer decodes entries into it strictly to catch misspelt options.
type NetConf struct {
	CNIVersion   string          `json:"cniVersion,omitempty"`
	Name         string          `json:"name,omitempty"`
	Type         string          `json:"type,omitempty"`
	Capabilities map[string]bool `json:"capabilities,omitempty"`
	// IPAM and DNS are the spec's; a meta-plugin has no use for them, but
	// a wrongly typed one is still a config error, as libcni's types make it.
	IPAM             *types.IPAM          `json:"ipam,omitempty"`
	DNS              *types.DNS           `json:"dns,omitempty"`
	PrevResult       json.RawMessage      `json:"prevResult,omitempty"`
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`

	Assign        Assign        `json:"assign,omitempty"`
	Identity      identity.Mode `json:"identity,omitempty"`
	Salt          string        `json:"salt,omitempty"`
	Prefix        string        `json:"prefix,omitempty"`
	MAC           string        `json:"mac,omitempty"`
	OnUnsupported OnUnsupported `json:"onUnsupported,omitempty"`
	Announce      *bool         `json:"announce,omitempty"`
	DataDir       string        `json:"dataDir,omitempty"`
	LogFile       string        `json:"logFile,omitempty"`
	LogLevel      string        `json:"logLevel,omitempty"`

	RuntimeConfig struct {
		MAC string `json:"mac,omitempty"`
	} `json:"runtimeConfig,omitempty"`
	Args struct {
		CNI struct {
			MAC string `json:"mac,omitempty"`
		} `json:"cni,omitempty"`
	} `json:"args,omitempty"`
}

// Requested is a MAC the user asked for, with where it came from.
type Requested struct {
	MAC    net.HardwareAddr
	Source string
}

// Config is what the plugin acts on: every option validated and defaulted.
type Config struct {
	CNIVersion string
	// Network is the configuration's "name": records and GC are per
	// network.
	Network       string
	Assign        Assign
	Identity      identity.Mode
	Salt          string
	Prefix        macaddr.Prefix
	OnUnsupported OnUnsupported
	Announce      bool
	DataDir       string
	LogFile       string
	LogLevel      string
	// Pod is the pod named by CNI_ARGS, empty outside Kubernetes.
	Pod identity.Pod
	// PrevResult is the prevResult exactly as the runtime sent it, so a
	// pass-through can return it byte for byte; nil when there is none.
	PrevResult json.RawMessage
	// ValidAttachments is GC's list of attachments still in use.
	ValidAttachments []types.GCAttachment
	// requests are the requested MACs as written, lowest precedence first;
	// Requested validates them.
	requests [4]request
}

type request struct{ source, value string }

// Parse decodes stdin and CNI_ARGS into a Config (requested MACs are checked
// separately by Requested). Nothing here touches the system, so a config
// error can never leave anything half-done.
func Parse(stdin []byte, cniArgs string) (*Config, error) {
	var in NetConf
	if err := json.Unmarshal(stdin, &in); err != nil {
		return nil, decodeError(err)
	}
	c := &Config{CNIVersion: in.CNIVersion, Network: in.Name, Salt: in.Salt, ValidAttachments: in.ValidAttachments}
	if !isNull(in.PrevResult) {
		if kind := jsonKind(in.PrevResult); kind != "object" {
			return nil, invalid("invalid network config: field %q must be an object, got JSON %s", "prevResult", kind)
		}
		c.PrevResult = in.PrevResult
	}
	if err := c.validate(&in); err != nil {
		return nil, err
	}
	args, err := ParseCNIArgs(cniArgs)
	if err != nil {
		return nil, err
	}
	c.Pod = identity.Pod{Namespace: args["K8S_POD_NAMESPACE"], Name: args["K8S_POD_NAME"]}
	// The order matches the reference tuning plugin so users can move over.
	c.requests = [4]request{
		{SourceConfig, in.MAC},
		{SourceCNIArgs, args["MAC"]},
		{SourceRuntimeConfig, in.RuntimeConfig.MAC},
		{SourceArgs, in.Args.CNI.MAC},
	}
	return c, nil
}

// jsonKind names the kind of a JSON value that encoding/json has accepted,
// in encoding/json's words.
func jsonKind(m json.RawMessage) string {
	switch t := bytes.TrimSpace(m); {
	case len(t) == 0:
		return "nothing"
	case t[0] == '{':
		return "object"
	case t[0] == '[':
		return "array"
	case t[0] == '"':
		return "string"
	case t[0] == 't' || t[0] == 'f':
		return "bool"
	}
	return "number"
}

func isNull(m json.RawMessage) bool {
	t := bytes.TrimSpace(m)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := typeErr.Field
		if field == "" {
			field = "(top level)"
		}
		return types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("invalid network config: field %q must be %s, got JSON %s", field, friendlyType(typeErr.Type.String()), typeErr.Value), "")
	}
	return types.NewError(types.ErrDecodingFailure,
		fmt.Sprintf("network config on stdin is not valid JSON: %v", err), "")
}

func friendlyType(goType string) string {
	switch {
	case goType == "string" || strings.HasSuffix(goType, ".Assign") || strings.HasSuffix(goType, ".Mode") || strings.HasSuffix(goType, ".OnUnsupported"):
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "map[") || strings.HasPrefix(goType, "struct") || strings.HasPrefix(goType, "types."):
		return "an object"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return "a " + goType
}

func invalid(format string, a ...any) error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(format, a...), "")
}

// validate checks and defaults every option of in into c.
func (c *Config) validate(in *NetConf) error {
	switch c.Assign = in.Assign; c.Assign {
	case "":
		c.Assign = AssignZero
	case AssignZero, AssignAlways, AssignNever:
	default:
		return invalid(`invalid "assign" %q: use "zero" (default), "always" or "never"`, in.Assign)
	}
	switch c.Identity = in.Identity; c.Identity {
	case "":
		c.Identity = identity.ModeAuto
	case identity.ModeAuto, identity.ModePod, identity.ModeContainer:
	default:
		return invalid(`invalid "identity" %q: use "auto" (default), "pod" or "container"`, in.Identity)
	}
	switch c.OnUnsupported = in.OnUnsupported; c.OnUnsupported {
	case "":
		c.OnUnsupported = UnsupportedFail
	case UnsupportedFail, UnsupportedSkip:
	default:
		return invalid(`invalid "onUnsupported" %q: use "fail" (default) or "skip"`, in.OnUnsupported)
	}
	p, err := macaddr.ParsePrefix(in.Prefix)
	if err != nil {
		return invalid(`invalid "prefix": %v`, err)
	}
	c.Prefix = p
	c.Announce = in.Announce == nil || *in.Announce
	c.DataDir = in.DataDir
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if !strings.HasPrefix(c.DataDir, "/") {
		return invalid(`invalid "dataDir" %q: must be an absolute path (default %s)`, c.DataDir, DefaultDataDir)
	}
	c.LogFile = in.LogFile
	if c.LogFile != "" && !strings.HasPrefix(c.LogFile, "/") {
		return invalid(`invalid "logFile" %q: must be an absolute path, or empty to log to stderr`, c.LogFile)
	}
	switch c.LogLevel = strings.ToLower(in.LogLevel); c.LogLevel {
	case "":
		c.LogLevel = DefaultLogLevel
	case "debug", "info", "warn", "error":
	default:
		return invalid(`invalid "logLevel" %q: use "debug", "info" (default), "warn" or "error"`, in.LogLevel)
	}
	return nil
}

// Requested validates every requested MAC that is present (a bad value is
// an error even when a higher-precedence source overrides it: it is still a
// mistake somebody will want to know about) and returns the winner, or nil
// when nothing is requested. ADD and CHECK ask for it; DEL does not, so a
// bad value can never block a pod's teardown.
func (c *Config) Requested() (*Requested, error) {
	var won *Requested
	for _, r := range c.requests {
		if r.value == "" {
			continue
		}
		mac, err := macaddr.ParseUnicast(r.value)
		if err != nil {
			return nil, invalid("invalid requested MAC from %s: %v", r.source, err)
		}
		won = &Requested{MAC: mac, Source: r.source}
	}
	return won, nil
}

// ParseCNIArgs splits CNI_ARGS ("K=V;K=V"). Unknown keys are kept and ignored
// by callers: runtimes pass many (K8S_POD_UID, IgnoreUnknown, ...), and
// rejecting them, as types.LoadArgs does by default, would break real pods.
func ParseCNIArgs(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, pair := range strings.Split(s, ";") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return nil, types.NewError(types.ErrInvalidEnvironmentVariables,
				fmt.Sprintf("invalid CNI_ARGS: %q is not KEY=VALUE (pairs are separated by ';')", pair), "")
		}
		out[k] = v
	}
	return out, nil
}

// RequirePrevResult is for ADD and CHECK: a chained plugin has nothing to
// correct without one.
func (c *Config) RequirePrevResult() error {
	if c.PrevResult == nil {
		return invalid("missing prevResult: macguard is a chained plugin; list it after the main plugin (cilium-cni, calico, macvlan, bridge, ...) in the conflist's \"plugins\" array")
	}
	return nil
}
