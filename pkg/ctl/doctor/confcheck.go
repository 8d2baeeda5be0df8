package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/macguard-cni/macguard/pkg/config"
	"github.com/macguard-cni/macguard/pkg/pathpolicy"
)

// pluginType is the "type" macguard's entry has in a chain.
const pluginType = "macguard"

// chain is a parsed configuration: the network's name and its plugins.
type chain struct {
	name    string
	entries []entry
}

// entry is one plugin of a chain.
type entry struct {
	typ string
	raw []byte
	// macCapability: "capabilities": {"mac": true}.
	macCapability bool
	// mac is the entry's own "mac" field (tuning's, and some main plugins').
	mac string
}

// parseChain reads a conflist (an object with "plugins") or a single
// plugin configuration the way libcni does. asList forces the conflist
// reading (".conflist" files); otherwise the presence of "plugins" decides,
// as Multus does for a NetworkAttachmentDefinition's config.
func parseChain(content []byte, asList bool) (*chain, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(content, &probe); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	_, hasPlugins := probe["plugins"]
	var list *libcni.NetworkConfigList
	if asList || hasPlugins {
		l, err := libcni.ConfListFromBytes(content)
		if err != nil {
			return nil, err
		}
		list = l
	} else {
		// A single plugin (a .conf file, a NAD without "plugins"): a
		// chain of one, as runtimes and Multus treat it.
		p, err := libcni.NetworkPluginConfFromBytes(content)
		if err != nil {
			return nil, err
		}
		if p.Network.Type == "" {
			return nil, errors.New(`no "type": not a plugin configuration`)
		}
		list = &libcni.NetworkConfigList{Name: p.Network.Name, CNIVersion: p.Network.CNIVersion, Plugins: []*libcni.PluginConfig{p}}
	}
	ch := &chain{name: list.Name}
	for _, p := range list.Plugins {
		e := entry{typ: p.Network.Type, raw: p.Bytes, macCapability: p.Network.Capabilities["mac"]}
		var fields struct {
			MAC any `json:"mac"`
		}
		if json.Unmarshal(p.Bytes, &fields) == nil {
			if s, ok := fields.MAC.(string); ok {
				e.mac = s
			}
		}
		ch.entries = append(ch.entries, e)
	}
	return ch, nil
}

func (c *chain) types() []string {
	out := make([]string, len(c.entries))
	for i, e := range c.entries {
		out[i] = e.typ
	}
	return out
}

// macguardIndex is the position of the first macguard entry, or -1.
func (c *chain) macguardIndex() int {
	for i, e := range c.entries {
		if e.typ == pluginType {
			return i
		}
	}
	return -1
}

// macguardEntry returns macguard's entry, or nil.
func (c *chain) macguardEntry() *entry {
	if i := c.macguardIndex(); i >= 0 {
		return &c.entries[i]
	}
	return nil
}

// hasType reports whether a plugin of type typ is in the chain.
func (c *chain) hasType(typ string) bool {
	for _, e := range c.entries {
		if e.typ == typ {
			return true
		}
	}
	return false
}

// asList says whether libcni reads the file as a conflist: by extension,
// as the runtimes do.
func asList(path string) bool { return filepath.Ext(path) == ".conflist" }

// checkEntry validates macguard's entry exactly as the plugin does on ADD:
// config.Parse then Requested, and returns the plugin's own message.
func checkEntry(raw []byte) (*config.Config, string) {
	cfg, err := config.Parse(raw, "")
	if err == nil {
		_, err = cfg.Requested()
	}
	if err != nil {
		var e *types.Error
		if errors.As(err, &e) {
			return nil, e.Msg
		}
		return nil, err.Error()
	}
	return cfg, ""
}

// prevResultMessage is the plugin's own refusal when it is first in a chain.
func prevResultMessage() string {
	err := (&config.Config{}).RequirePrevResult()
	var e *types.Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return err.Error()
}

// checkConf checks one configuration and returns its state and findings.
// where fills in Finding.File and NAD. roots are the node's allowed roots
// for dataDir and logFile.
func checkConf(cf ConfFile, section Section, roots pathpolicy.Roots) (ConfigState, *chain, []Finding) {
	st := ConfigState{File: cf.Path, NAD: cf.NAD, Source: map[Section]string{SectionConfig: "conf-dir", SectionCluster: "cluster"}[section]}
	base := Finding{Section: section, File: cf.Path, NAD: cf.NAD}
	f := func(sev Severity, code, remedy, format string, a ...any) Finding {
		out := base
		out.Severity, out.Code, out.Remedy, out.Message = sev, code, remedy, fmt.Sprintf(format, a...)
		return out
	}
	if cf.Err != "" {
		return st, nil, []Finding{f(Error, "conf-unreadable", "make the file readable by root", "cannot read: %s", cf.Err)}
	}
	if cf.NAD != "" && strings.TrimSpace(cf.Content) == "" {
		// Valid: Multus then reads the network's configuration from the
		// file of its conf dir whose "name" is the NAD's name.
		st.Valid, st.NoConfig = true, true
		return st, nil, []Finding{f(Info, "conf-nad-no-config",
			fmt.Sprintf("to check that configuration, run macguardctl doctor --conf FILE on a node with the file of Multus' conf dir whose \"name\" is %q", nadName(cf.NAD)),
			"has no spec.config: Multus reads the configuration of network %q from its conf dir (the file whose \"name\" is %q in Multus' confDir, /etc/cni/multus/net.d by default), which the doctor does not check", nadName(cf.NAD), nadName(cf.NAD))}
	}
	ch, err := parseChain([]byte(cf.Content), cf.NAD == "" && asList(cf.Path))
	if err != nil {
		remedy := "fix the JSON: a runtime skips (containerd, CRI-O) or fails on a configuration it cannot load"
		if cf.NAD != "" {
			remedy = "fix spec.config: Multus fails every pod that selects this network"
		}
		return st, nil, []Finding{f(Error, "conf-invalid", remedy, "not a valid CNI configuration: %v", err)}
	}
	st.Network, st.Plugins, st.Valid = ch.name, ch.types(), true
	var out []Finding
	idx := ch.macguardIndex()
	if idx < 0 {
		return st, ch, out
	}
	st.Macguard = true
	if idx > 0 {
		st.After = ch.entries[idx-1].typ
	}
	count := 0
	for i, e := range ch.entries {
		if e.typ != pluginType {
			continue
		}
		count++
		if i == 0 {
			st.Valid = false
			out = append(out, f(Error, "conf-macguard-first",
				"move macguard's entry after the main plugin in \"plugins\"",
				"macguard is the first plugin of network %q; every ADD fails with: %s", ch.name, prevResultMessage()))
		}
		cfg, msg := checkEntry(e.raw)
		if msg != "" {
			st.Valid = false
			out = append(out, f(Error, "conf-entry-invalid",
				"fix the field the message names; until then every ADD and CHECK of this network fails",
				"macguard refuses its entry (plugin %d of network %q): %s", i+1, ch.name, msg))
			continue
		}
		// The plugin's own rule (pathpolicy), asked the same way.
		_, dataErr := roots.DataDir(cfg.DataDir)
		var logErr error
		if cfg.LogFile != "" {
			_, logErr = roots.LogFile(cfg.LogFile)
		}
		for _, err := range []error{dataErr, logErr} {
			if err != nil {
				st.Valid = false
				out = append(out, f(Error, "conf-path-not-allowed",
					fmt.Sprintf("put the path beneath an allowed root (or leave the field out for the default); only the node's operator can widen the roots, through the container runtime's environment (%s, %s)", pathpolicy.EnvDataRoots, pathpolicy.EnvLogRoots),
					"macguard refuses a path of its entry (plugin %d of network %q): %v; every ADD of this network fails", i+1, ch.name, err))
			}
		}
	}
	if count > 1 {
		out = append(out, f(Warning, "conf-macguard-twice", "keep one macguard entry",
			"macguard is listed %d times in network %q; every one of them runs on each ADD", count, ch.name))
	}
	mg := ch.macguardEntry()
	// Other plugins of the chain that set the MAC from a literal "mac" of
	// their own (tuning's, a main plugin's). One that only declares the
	// mac capability is no second owner: libcni hands it the same
	// runtimeConfig.mac it hands macguard, so both set the same MAC.
	for _, e := range ch.entries {
		if e.typ == pluginType || e.mac == "" {
			continue
		}
		how := fmt.Sprintf("\"mac\": %q", e.mac)
		out = append(out, f(Warning, "conf-two-owners",
			fmt.Sprintf("let one plugin own the MAC: remove %s from %s's entry and give macguard the MAC (its \"mac\" field, or \"capabilities\": {\"mac\": true})", how, e.typ),
			"%s also sets the MAC in network %q (%s): two owners of one MAC; whichever runs last wins, and macguard's CHECK reports the other's as wrong", e.typ, ch.name, how))
	}
	if !mg.macCapability && mg.mac == "" {
		out = append(out, f(Info, "conf-no-mac-capability",
			`add "capabilities": {"mac": true} to macguard's entry if pods request MACs for this network`,
			"macguard's entry in network %q does not declare the mac capability: a MAC requested in a pod's network selection (or runtimeConfig.mac) never reaches it", ch.name))
	}
	return st, ch, out
}

// nadName is the name part of "namespace/name".
func nadName(key string) string {
	_, name, _ := strings.Cut(key, "/")
	return name
}

// isMultus reports whether a chain is Multus itself, which delegates the
// pod's networks instead of chaining plugins.
func isMultus(c *chain) bool {
	return c != nil && len(c.entries) > 0 && strings.HasPrefix(c.entries[0].typ, "multus")
}

// checkConfDir checks every file of the conf dir, then which one the
// runtime loads: the first by name that libcni can read (containerd and
// CRI-O both sort libcni.ConfFiles and take the first they can load).
func checkConfDir(w *World) ([]ConfigState, []Finding) {
	var states []ConfigState
	var out []Finding
	loaded := -1
	var chains []*chain
	for _, cf := range w.Confs {
		st, ch, fs := checkConf(cf, SectionConfig, w.roots())
		if loaded < 0 && ch != nil && len(ch.entries) > 0 {
			loaded = len(states)
			st.Loaded = true
		}
		states = append(states, st)
		chains = append(chains, ch)
		out = append(out, fs...)
	}
	var chaining []string
	for _, st := range states {
		if st.Macguard {
			chaining = append(chaining, filepath.Base(st.File))
		}
	}
	switch {
	case len(w.Confs) == 0:
		out = append(out, Finding{Severity: Warning, Code: "conf-dir-empty", Section: SectionConfig, File: w.Dirs.Conf,
			Message: "the CNI conf dir holds no .conf, .conflist or .json file: the runtime has no network to start pods on",
			Remedy:  "install the cluster's CNI (Cilium, Calico, ...) first; macguard chains after it"})
	case loaded < 0:
		out = append(out, Finding{Severity: Error, Code: "conf-none-loadable", Section: SectionConfig, File: w.Dirs.Conf,
			Message: "no file in the CNI conf dir can be loaded: the runtime cannot start pods",
			Remedy:  "fix the files reported above"})
	case states[loaded].Macguard:
	case isMultus(chains[loaded]):
		out = append(out, Finding{Severity: Info, Code: "conf-multus", Section: SectionConfig, File: states[loaded].File,
			Message: fmt.Sprintf("the runtime loads Multus (%s): macguard must be chained in the default network Multus delegates to and in the NetworkAttachmentDefinitions that need it", filepath.Base(states[loaded].File))})
	case len(chaining) > 0:
		verb := "chains it but is"
		if len(chaining) > 1 {
			verb = "chain it but are"
		}
		out = append(out, Finding{Severity: Error, Code: "conf-loaded-not-chained", Section: SectionConfig, File: states[loaded].File,
			Message: fmt.Sprintf("the runtime loads %s (the first by name), which does not chain macguard; %s %s never used", filepath.Base(states[loaded].File), strings.Join(chaining, ", "), verb),
			Remedy:  fmt.Sprintf("chain macguard into %s (macguardctl install --chain-into %s), or remove the file that sorts before %s", filepath.Base(states[loaded].File), states[loaded].File, chaining[0])})
	default:
		out = append(out, Finding{Severity: Warning, Code: "conf-not-chained", Section: SectionConfig, File: states[loaded].File,
			Message: fmt.Sprintf("no file in the CNI conf dir chains macguard; the runtime loads %s (%s) without it", filepath.Base(states[loaded].File), strings.Join(states[loaded].Plugins, " -> ")),
			Remedy:  fmt.Sprintf("chain it after the main plugin: macguardctl install --chain-into %s (or a chaining overlay of deploy/), unless macguard is meant only for NetworkAttachmentDefinitions", states[loaded].File)})
	}
	return states, out
}
