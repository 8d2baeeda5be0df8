// Package cniconf reads CNI configurations the way the runtimes do (with
// libcni's own parser) and finds macguard's entry in them. macguardctl's
// install, which chains the entry into conflists, and doctor, which checks
// what the runtime will load, both read configurations through it, and
// both judge macguard's entry with the plugin's own parser (CheckEntry).
package cniconf

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/libcni"

	"github.com/macguard-cni/macguard/pkg/config"
)

// PluginType is the "type" of macguard's entry in a chain; it is also the
// name of the plugin binary in the CNI bin directory.
const PluginType = "macguard"

// Chain is a configuration as the runtime reads it: the network's name and
// its plugins in order.
type Chain struct {
	Name    string
	Entries []Entry
}

// Entry is one plugin of a chain.
type Entry struct {
	Type string
	// Raw is the entry as libcni hands it on (before the runtime's
	// additions: name, cniVersion, prevResult, runtimeConfig).
	Raw []byte
	// MACCapability: "capabilities": {"mac": true}.
	MACCapability bool
	// MAC is the entry's own "mac" field (tuning's, and some main
	// plugins'), when it is a string.
	MAC string
}

// ReadList reads a configuration list with libcni's parser, the one
// containerd, CRI-O and Multus load configuration lists with; its errors
// are libcni's.
func ReadList(data []byte) (*Chain, error) {
	list, err := libcni.ConfListFromBytes(data)
	if err != nil {
		return nil, err
	}
	return chainOf(list), nil
}

// Read reads a conflist or a single plugin's configuration the way libcni
// does. asList forces the list reading (the runtimes read ".conflist" files
// so); otherwise the presence of "plugins" decides, as Multus does for a
// NetworkAttachmentDefinition's config. A single plugin is a chain of one,
// as runtimes and Multus treat it.
func Read(data []byte, asList bool) (*Chain, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, hasPlugins := probe["plugins"]; asList || hasPlugins {
		return ReadList(data)
	}
	p, err := libcni.NetworkPluginConfFromBytes(data)
	if err != nil {
		return nil, err
	}
	if p.Network.Type == "" {
		return nil, errors.New(`no "type": not a plugin configuration`)
	}
	return chainOf(&libcni.NetworkConfigList{Name: p.Network.Name, CNIVersion: p.Network.CNIVersion, Plugins: []*libcni.PluginConfig{p}}), nil
}

func chainOf(list *libcni.NetworkConfigList) *Chain {
	ch := &Chain{Name: list.Name}
	for _, p := range list.Plugins {
		e := Entry{Type: p.Network.Type, Raw: p.Bytes, MACCapability: p.Network.Capabilities["mac"]}
		var fields struct {
			MAC any `json:"mac"`
		}
		if json.Unmarshal(p.Bytes, &fields) == nil {
			if s, ok := fields.MAC.(string); ok {
				e.MAC = s
			}
		}
		ch.Entries = append(ch.Entries, e)
	}
	return ch
}

// EntryType is the "type" of one plugin entry, read leniently: "" when
// the entry has none or it is not a string (the runtime refuses such an
// entry; Read reports why).
func EntryType(raw []byte) string {
	var t struct {
		Type any `json:"type"`
	}
	_ = json.Unmarshal(raw, &t)
	s, _ := t.Type.(string)
	return s
}

// Types lists the plugins' types in chain order.
func (c *Chain) Types() []string {
	out := make([]string, len(c.Entries))
	for i, e := range c.Entries {
		out[i] = e.Type
	}
	return out
}

// MacguardIndex is the position of the first macguard entry, or -1.
func (c *Chain) MacguardIndex() int {
	for i, e := range c.Entries {
		if e.Type == PluginType {
			return i
		}
	}
	return -1
}

// Macguard returns macguard's (first) entry, or nil.
func (c *Chain) Macguard() *Entry {
	if i := c.MacguardIndex(); i >= 0 {
		return &c.Entries[i]
	}
	return nil
}

// HasType reports whether a plugin of type typ is in the chain.
func (c *Chain) HasType(typ string) bool {
	for _, e := range c.Entries {
		if e.Type == typ {
			return true
		}
	}
	return false
}

// CheckEntry validates macguard's entry exactly as the plugin does on ADD
// (config.Parse, then Requested) and returns the plugin's own error, so
// that the installer never writes, and the doctor never passes, an entry
// every ADD would reject.
func CheckEntry(raw []byte) (*config.Config, error) {
	cfg, err := config.Parse(raw, "")
	if err != nil {
		return nil, err
	}
	if _, err := cfg.Requested(); err != nil {
		return nil, err
	}
	return cfg, nil
}
