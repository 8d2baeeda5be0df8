package doctor

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/macguard-cni/macguard/pkg/config"
	"github.com/macguard-cni/macguard/pkg/ctl/cniconf"
	"github.com/macguard-cni/macguard/pkg/pathpolicy"
)

// asList says whether libcni reads the file as a conflist: by extension,
// as the runtimes do.
func asList(path string) bool { return filepath.Ext(path) == ".conflist" }

// checkEntry validates macguard's entry exactly as the plugin does on ADD
// (cniconf.CheckEntry) and returns the plugin's own message.
func checkEntry(raw []byte) (*config.Config, string) {
	cfg, err := cniconf.CheckEntry(raw)
	if err != nil {
		return nil, pluginMessage(err)
	}
	return cfg, ""
}

// prevResultMessage is the plugin's own refusal when it is first in a chain.
func prevResultMessage() string {
	return pluginMessage((&config.Config{}).RequirePrevResult())
}

// pluginMessage is the message the plugin would print for err: a CNI
// error's Msg (its code and details are the plugin's JSON, not the
// doctor's words), or the error's text.
func pluginMessage(err error) string {
	var e *types.Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return err.Error()
}

// confFinder makes the findings of one configuration: its section, file
// and NAD filled in.
type confFinder Finding

func (b confFinder) finding(sev Severity, code, remedy, format string, a ...any) Finding {
	out := Finding(b)
	out.Severity, out.Code, out.Remedy, out.Message = sev, code, remedy, fmt.Sprintf(format, a...)
	return out
}

// checkConf checks one configuration and returns its state and findings:
// readConf, then, when the chain has macguard, macguardEntryRule on each of
// its entries and the chain rules in chainRules' order. roots are the
// node's allowed roots for dataDir and logFile.
func checkConf(cf ConfFile, section Section, roots pathpolicy.Roots) (ConfigState, *cniconf.Chain, []Finding) {
	st := ConfigState{File: cf.Path, NAD: cf.NAD, Source: map[Section]string{SectionConfig: "conf-dir", SectionCluster: "cluster"}[section]}
	f := confFinder{Section: section, File: cf.Path, NAD: cf.NAD}
	ch, noConfig, out := readConf(cf, f)
	if noConfig {
		// Valid: Multus then reads the network's configuration from the
		// file of its conf dir whose "name" is the NAD's name.
		st.Valid, st.NoConfig = true, true
	}
	if ch == nil {
		return st, nil, out
	}
	st.Network, st.Plugins, st.Valid = ch.Name, ch.Types(), true
	idx := ch.MacguardIndex()
	if idx < 0 {
		return st, ch, out
	}
	st.Macguard = true
	if idx > 0 {
		st.After = ch.Entries[idx-1].Type
	}
	for i, e := range ch.Entries {
		if e.Type != cniconf.PluginType {
			continue
		}
		if fs := macguardEntryRule(f, ch, i, roots); len(fs) > 0 {
			// Each of them makes every ADD of the network fail.
			st.Valid = false
			out = append(out, fs...)
		}
	}
	for _, rule := range chainRules {
		out = append(out, rule(f, ch)...)
	}
	return st, ch, out
}

// readConf reads a configuration as the runtime (or Multus) will. It
// returns the chain, or nil with the finding that says why there is none;
// noConfig is a NAD without a config of its own, which is valid.
func readConf(cf ConfFile, f confFinder) (ch *cniconf.Chain, noConfig bool, fs []Finding) {
	if cf.Err != "" {
		return nil, false, []Finding{f.finding(Error, "conf-unreadable", "make the file readable by root", "cannot read: %s", cf.Err)}
	}
	if cf.NAD != "" && strings.TrimSpace(cf.Content) == "" {
		return nil, true, []Finding{f.finding(Info, "conf-nad-no-config",
			fmt.Sprintf("to check that configuration, run macguardctl doctor --conf FILE on a node with the file of Multus' conf dir whose \"name\" is %q", nadName(cf.NAD)),
			"has no spec.config: Multus reads the configuration of network %q from its conf dir (the file whose \"name\" is %q in Multus' confDir, /etc/cni/multus/net.d by default), which the doctor does not check", nadName(cf.NAD), nadName(cf.NAD))}
	}
	ch, err := cniconf.Read([]byte(cf.Content), cf.NAD == "" && asList(cf.Path))
	if err != nil {
		remedy := "fix the JSON: a runtime skips (containerd, CRI-O) or fails on a configuration it cannot load"
		if cf.NAD != "" {
			remedy = "fix spec.config: Multus fails every pod that selects this network"
		}
		return nil, false, []Finding{f.finding(Error, "conf-invalid", remedy, "not a valid CNI configuration: %v", err)}
	}
	return ch, false, nil
}

// macguardEntryRule judges macguard's entry i of ch as the plugin will on
// ADD: its place in the chain, its options (cniconf.CheckEntry) and its
// paths (pathpolicy). Every finding is an ADD that fails.
func macguardEntryRule(f confFinder, ch *cniconf.Chain, i int, roots pathpolicy.Roots) []Finding {
	var out []Finding
	if i == 0 {
		out = append(out, f.finding(Error, "conf-macguard-first",
			"move macguard's entry after the main plugin in \"plugins\"",
			"macguard is the first plugin of network %q; every ADD fails with: %s", ch.Name, prevResultMessage()))
	}
	cfg, msg := checkEntry(ch.Entries[i].Raw)
	if msg != "" {
		return append(out, f.finding(Error, "conf-entry-invalid",
			"fix the field the message names; until then every ADD and CHECK of this network fails",
			"macguard refuses its entry (plugin %d of network %q): %s", i+1, ch.Name, msg))
	}
	// The plugin's own rule (pathpolicy), asked the same way.
	_, dataErr := roots.DataDir(cfg.DataDir)
	var logErr error
	if cfg.LogFile != "" {
		_, logErr = roots.LogFile(cfg.LogFile)
	}
	for _, err := range []error{dataErr, logErr} {
		if err != nil {
			out = append(out, f.finding(Error, "conf-path-not-allowed",
				fmt.Sprintf("put the path beneath an allowed root (or leave the field out for the default); only the node's operator can widen the roots, through the container runtime's environment (%s, %s)", pathpolicy.EnvDataRoots, pathpolicy.EnvLogRoots),
				"macguard refuses a path of its entry (plugin %d of network %q): %v; every ADD of this network fails", i+1, ch.Name, err))
		}
	}
	return out
}

// chainRules are the rules over a chain that has macguard, in the order
// they run.
var chainRules = []func(f confFinder, ch *cniconf.Chain) []Finding{
	macguardTwiceRule,
	twoOwnersRule,
	noMACCapabilityRule,
}

// macguardTwiceRule: more than one macguard entry, each of which runs.
func macguardTwiceRule(f confFinder, ch *cniconf.Chain) []Finding {
	count := 0
	for _, e := range ch.Entries {
		if e.Type == cniconf.PluginType {
			count++
		}
	}
	if count < 2 {
		return nil
	}
	return []Finding{f.finding(Warning, "conf-macguard-twice", "keep one macguard entry",
		"macguard is listed %d times in network %q; every one of them runs on each ADD", count, ch.Name)}
}

// twoOwnersRule: other plugins of the chain that set the MAC from a
// literal "mac" of their own (tuning's, a main plugin's). One that only
// declares the mac capability is no second owner: libcni hands it the
// same runtimeConfig.mac it hands macguard, so both set the same MAC.
func twoOwnersRule(f confFinder, ch *cniconf.Chain) []Finding {
	var out []Finding
	for _, e := range ch.Entries {
		if e.Type == cniconf.PluginType || e.MAC == "" {
			continue
		}
		how := fmt.Sprintf("\"mac\": %q", e.MAC)
		out = append(out, f.finding(Warning, "conf-two-owners",
			fmt.Sprintf("let one plugin own the MAC: remove %s from %s's entry and give macguard the MAC (its \"mac\" field, or \"capabilities\": {\"mac\": true})", how, e.Type),
			"%s also sets the MAC in network %q (%s): two owners of one MAC; whichever runs last wins, and macguard's CHECK reports the other's as wrong", e.Type, ch.Name, how))
	}
	return out
}

// noMACCapabilityRule: macguard's entry neither declares the mac
// capability nor sets a MAC, so no requested MAC reaches it.
func noMACCapabilityRule(f confFinder, ch *cniconf.Chain) []Finding {
	if mg := ch.Macguard(); mg.MACCapability || mg.MAC != "" {
		return nil
	}
	return []Finding{f.finding(Info, "conf-no-mac-capability",
		`add "capabilities": {"mac": true} to macguard's entry if pods request MACs for this network`,
		"macguard's entry in network %q does not declare the mac capability: a MAC requested in a pod's network selection (or runtimeConfig.mac) never reaches it", ch.Name)}
}

// nadName is the name part of "namespace/name".
func nadName(key string) string {
	_, name, _ := strings.Cut(key, "/")
	return name
}

// isMultus reports whether a chain is Multus itself, which delegates the
// pod's networks instead of chaining plugins.
func isMultus(c *cniconf.Chain) bool {
	return c != nil && len(c.Entries) > 0 && strings.HasPrefix(c.Entries[0].Type, "multus")
}

// checkConfDir checks every file of the conf dir, then which one the
// runtime loads: the first by name that libcni can read (containerd and
// CRI-O both sort libcni.ConfFiles and take the first they can load).
func checkConfDir(w *World) ([]ConfigState, []Finding) {
	var states []ConfigState
	var out []Finding
	loaded := -1
	var chains []*cniconf.Chain
	for _, cf := range w.Confs {
		st, ch, fs := checkConf(cf, SectionConfig, w.roots())
		if loaded < 0 && ch != nil && len(ch.Entries) > 0 {
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
