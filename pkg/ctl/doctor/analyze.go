package doctor

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"

	"github.com/macguard-cni/macguard/pkg/config"
	"github.com/macguard-cni/macguard/pkg/identity"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/macaddr"
)

// Analyze turns a gathered World into a Report. It is pure: the same World
// always gives the same Report, so each rule is tested on a World written
// by hand.
func Analyze(w *World) Report {
	r := Report{SchemaVersion: SchemaVersion, Node: w.Node, Macguardctl: w.Self, Dirs: w.Dirs, Binary: w.Binary,
		Pods: []Pod{}, Records: []RecordState{}, Configs: []ConfigState{}, Findings: []Finding{}}
	a := &analysis{w: w, r: &r}
	a.pods()
	a.paths()
	a.duplicates()
	a.records()
	a.confs()
	a.binary()
	a.cluster()
	a.clusterPaths()
	for _, d := range w.Missing {
		a.add(Finding{Severity: Info, Code: "dir-missing", Section: sectionOfDir(w, d), File: d,
			Message: "does not exist (nothing to look at there yet)"})
	}
	sortFindings(r.Findings)
	for _, f := range r.Findings {
		switch f.Severity {
		case Error:
			r.Summary.Errors++
		case Warning:
			r.Summary.Warnings++
		default:
			r.Summary.Info++
		}
	}
	switch {
	case r.Summary.Errors > 0:
		r.Summary.Status = "errors"
	case r.Summary.Warnings > 0:
		r.Summary.Status = "warnings"
	default:
		r.Summary.Status = "healthy"
	}
	return r
}

func sectionOfDir(w *World, d string) Section {
	switch d {
	case w.Dirs.Data:
		return SectionRecords
	case w.Dirs.Conf:
		return SectionConfig
	case w.Dirs.Bin:
		return SectionBinary
	}
	return SectionPods
}

var sectionOrder = map[Section]int{SectionPods: 0, SectionRecords: 1, SectionConfig: 2, SectionBinary: 3, SectionCluster: 4}
var severityOrder = map[Severity]int{Error: 0, Warning: 1, Info: 2}

// sortFindings orders findings by section, pod, interface, file, then
// severity and code, so the report is stable whatever order the world came
// in.
func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Section != b.Section {
			return sectionOrder[a.Section] < sectionOrder[b.Section]
		}
		if a.Pod != b.Pod {
			return a.Pod < b.Pod
		}
		if a.Interface != b.Interface {
			return a.Interface < b.Interface
		}
		if a.File != b.File {
			return a.File < b.File
		}
		if a.NAD != b.NAD {
			return a.NAD < b.NAD
		}
		if a.Severity != b.Severity {
			return severityOrder[a.Severity] < severityOrder[b.Severity]
		}
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		return a.Message < b.Message
	})
}

type analysis struct {
	w *World
	r *Report
	// ifaces indexes every pod interface for the duplicate check.
	ifaces []podIface
}

type podIface struct {
	pod   string
	netns uint64
	ifc   Interface
}

func (a *analysis) add(f Finding) { a.r.Findings = append(a.r.Findings, f) }

// attachment is an interface's cache entry with what its chain says.
type attachment struct {
	entry *CacheEntry
	chain *chain
	// cfg is macguard's validated entry, with CNI_ARGS and the runtime's
	// mac capability applied as libcni would pass them; nil without
	// macguard in the chain or when the entry is invalid. req is the MAC
	// it resolves as requested, if any.
	cfg *config.Config
	req *config.Requested
}

func cniArgsString(args map[string]string) string {
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+args[k])
	}
	return strings.Join(parts, ";")
}

func newAttachment(e *CacheEntry) *attachment {
	at := &attachment{entry: e}
	if len(e.Config) == 0 {
		return at
	}
	ch, err := parseChain(e.Config, true)
	if err != nil {
		return at
	}
	at.chain = ch
	mg := ch.macguardEntry()
	if mg == nil {
		return at
	}
	raw := mg.raw
	if mg.macCapability && e.RuntimeMAC != "" {
		raw = withRuntimeMAC(raw, e.RuntimeMAC)
	}
	cfg, err := config.Parse(raw, cniArgsString(e.Args))
	if err != nil {
		return at
	}
	req, err := cfg.Requested()
	if err != nil {
		return at
	}
	at.cfg, at.req = cfg, req
	return at
}

// requested is the MAC the runtime asked for (CNI_ARGS MAC, or the mac
// capability), whoever was meant to apply it, and where it came from.
func (at *attachment) requested() (string, string) {
	if at.req != nil {
		return at.req.MAC.String(), at.req.Source
	}
	if at.entry.RuntimeMAC != "" {
		return at.entry.RuntimeMAC, config.SourceRuntimeConfig
	}
	if m := at.entry.Args["MAC"]; m != "" {
		return m, config.SourceCNIArgs
	}
	return "", ""
}

// podNames resolves how a netns is named, from the cache (pod), then the
// records (container ID), then its path.
func (a *analysis) pods() {
	for i := range a.w.Netns {
		n := &a.w.Netns[i]
		var ats []*attachment
		for j := range a.w.Cache {
			e := &a.w.Cache[j]
			if holds(n, e.NetnsInode, e.Netns, e.ContainerID) {
				ats = append(ats, newAttachment(e))
			}
		}
		var recs []*Record
		for j := range a.w.Records {
			rec := &a.w.Records[j]
			if rec.Err == "" && holds(n, rec.NetnsInode, rec.Netns, rec.ContainerID) {
				recs = append(recs, rec)
			}
		}
		p := Pod{Netns: n.Path, Seen: n.Seen, Interfaces: []PodInterface{}}
		for _, at := range ats {
			if p.ContainerID == "" {
				p.ContainerID = at.entry.ContainerID
			}
			if p.Namespace == "" && at.entry.Args["K8S_POD_NAME"] != "" {
				p.Namespace, p.PodName = at.entry.Args["K8S_POD_NAMESPACE"], at.entry.Args["K8S_POD_NAME"]
			}
		}
		if p.ContainerID == "" && len(recs) > 0 {
			p.ContainerID = recs[0].ContainerID
		}
		switch {
		case p.PodName != "":
			p.Name = p.Namespace + "/" + p.PodName
			p.VM = identity.VMName(p.PodName)
		case p.ContainerID != "":
			p.Name = "container " + p.ContainerID
		default:
			p.Name = n.Path
		}
		if n.Err != "" {
			a.add(Finding{Severity: Warning, Code: "netns-unreadable", Section: SectionPods, Pod: p.Name,
				Message: fmt.Sprintf("cannot list the interfaces of netns %s: %s", n.Path, n.Err),
				Remedy:  "run the doctor as root with CAP_SYS_ADMIN (the DaemonSet's doctor component grants it)"})
		}
		for _, ifc := range n.Interfaces {
			pi := PodInterface{Interface: ifc}
			var at *attachment
			for _, c := range ats {
				if c.entry.IfName == ifc.Name {
					at = c
				}
			}
			var rec *Record
			for _, c := range recs {
				if c.IfName == ifc.Name {
					rec = c
				}
			}
			if at != nil {
				pi.Network = at.entry.Network
				pi.Macguard = at.chain != nil && at.chain.macguardIndex() >= 0
			}
			if rec != nil {
				pi.Applied = rec.AppliedMAC
			}
			p.Interfaces = append(p.Interfaces, pi)
			if ifc.Encap != "loopback" {
				a.ifaces = append(a.ifaces, podIface{pod: p.Name, netns: n.Inode, ifc: ifc})
			}
			a.iface(&p, n, ifc, at, rec)
		}
		a.r.Pods = append(a.r.Pods, p)
	}
	sort.SliceStable(a.r.Pods, func(i, j int) bool { return a.r.Pods[i].Name < a.r.Pods[j].Name })
}

// holds reports whether the attachment of containerID, whose netns was
// given as path (inode ino now, 0 if it cannot be opened), is in n.
func holds(n *Netns, ino uint64, path, containerID string) bool {
	return (ino != 0 && ino == n.Inode) || (path != "" && path == n.Path) || slices.Contains(n.ContainerIDs, containerID)
}

func parseMAC(s string) net.HardwareAddr {
	if s == "" {
		return nil
	}
	m, err := macaddr.Parse(s)
	if err != nil {
		return nil
	}
	return m
}

// cannotCarry says why an interface cannot have a MAC of its own, in the
// plugin's words, or "".
func cannotCarry(ifc Interface) string {
	switch {
	case ifc.Kind == link.KindNetkit && ifc.NetkitMode == link.NetkitL3:
		return link.NetkitL3Remedy(ifc.Name)
	case ifc.Kind == link.KindIPVlan || ifc.Kind == link.KindIPVtap:
		return link.IPVlanRemedy(ifc.Name)
	}
	return ""
}

// iface applies the per-interface rules.
func (a *analysis) iface(p *Pod, n *Netns, ifc Interface, at *attachment, rec *Record) {
	if ifc.Encap == "loopback" {
		return
	}
	base := Finding{Section: SectionPods, Pod: p.Name, Interface: ifc.Name, MAC: ifc.MAC}
	add := func(sev Severity, code, remedy, format string, args ...any) {
		f := base
		f.Severity, f.Code, f.Remedy, f.Message = sev, code, remedy, fmt.Sprintf(format, args...)
		a.add(f)
	}
	mac := parseMAC(ifc.MAC)
	chained := at != nil && at.chain != nil && at.chain.macguardIndex() >= 0
	var reqMAC, reqSource string
	if at != nil {
		reqMAC, reqSource = at.requested()
	}
	if why := cannotCarry(ifc); why != "" {
		kind := "ipvlan"
		if ifc.Kind == link.KindNetkit {
			kind = "netkit in L3 mode"
		}
		switch {
		case p.VM != "":
			add(Error, "vm-cannot-start", why,
				"virt-launcher pod of VM %s: %s is %s and cannot carry a MAC, so the VM will not start (KubeVirt: unable to parse mac address '')", p.VM, ifc.Name, kind)
		case reqMAC != "":
			add(Error, "mac-unsupported", why,
				"MAC %s was requested via %s, but %s is %s and cannot carry a MAC of its own", reqMAC, reqSource, ifc.Name, kind)
		default:
			add(Info, "mac-unsupported-device", "",
				"%s is %s: it has no MAC of its own, which is fine for pods but not for a VM", ifc.Name, kind)
		}
		return
	}
	if ifc.Encap != "ether" && ifc.Kind != link.KindNetkit {
		// No link layer (tunnels, wireguard, tun): nothing to say about a
		// MAC the device does not have.
		return
	}
	if macaddr.IsZero(mac) {
		remedy := "chain macguard after the main plugin (assign \"zero\", the default, gives such an interface the stable MAC of its pod or VM)"
		if chained {
			remedy = "something cleared it after macguard's ADD; recreate the pod, and find what else touches this interface"
		}
		add(Warning, "mac-missing", remedy, "%s has no MAC (empty or all zeros)", ifc.Name)
		return
	}
	if macaddr.IsMulticast(mac) {
		add(Error, "mac-multicast", "give it a unicast MAC: a requested MAC must be unicast, and macguard's derived MACs always are",
			"%s has the multicast MAC %s, which no peer will answer", ifc.Name, ifc.MAC)
	}
	if rec != nil && rec.AppliedMAC != "" && !macaddr.Equal(mac, parseMAC(rec.AppliedMAC)) {
		add(Warning, "mac-drift",
			"find what else sets MACs on this network (tuning, the main plugin's \"mac\", an agent in the pod) and leave one owner; DEL will not restore the original MAC, because it only undoes a MAC it set",
			"%s has %s, but macguard applied %s (record %s): something changed it after ADD", ifc.Name, ifc.MAC, rec.AppliedMAC, filepath.Base(rec.File))
	}
	if at != nil {
		for _, ri := range at.entry.Result {
			if ri.Name != ifc.Name || ri.Sandbox == "" || ri.MAC == "" {
				continue
			}
			if rm := parseMAC(ri.MAC); rm != nil && !macaddr.Equal(rm, mac) {
				add(Warning, "mac-differs-from-result",
					"the runtime and Multus's network-status report the cached MAC; recreate the pod so that they match, and leave one owner of the MAC (see the record and the chain)",
					"%s has %s, but the cached CNI result of network %q reports %s", ifc.Name, ifc.MAC, at.entry.Network, ri.MAC)
			}
		}
		if reqMAC != "" {
			if rm := parseMAC(reqMAC); rm != nil && !macaddr.Equal(rm, mac) {
				remedy := "recreate the pod; if it happens again, look for a second owner of the MAC in the chain"
				switch {
				case chained && at.req == nil && reqSource == config.SourceRuntimeConfig && !at.chain.macguardEntry().macCapability:
					// libcni hands runtimeConfig.mac only to plugins that
					// declare the capability: macguard never saw it.
					remedy = fmt.Sprintf("add \"capabilities\": {\"mac\": true} to macguard's entry in network %q, so that the requested MAC (runtimeConfig.mac) reaches it", at.entry.Network)
				case !chained && (at.chain == nil || !at.chain.hasType("tuning")):
					remedy = fmt.Sprintf("chain macguard with \"capabilities\": {\"mac\": true} into network %q: its main plugin ignores a requested MAC", at.entry.Network)
				}
				add(Error, "mac-request-ignored", remedy,
					"%s has %s, not the MAC %s requested via %s: the request did not stick", ifc.Name, ifc.MAC, reqMAC, reqSource)
			}
		}
		if at.cfg != nil && at.req == nil && at.cfg.Assign != config.AssignNever {
			id, err := identity.Resolve(at.cfg.Identity, at.cfg.Pod, at.entry.ContainerID)
			if err == nil {
				derived := macaddr.Derive(macaddr.Input{Kind: id.Kind, Key: id.Key, IfName: ifc.Name, Salt: at.cfg.Salt, Prefix: at.cfg.Prefix})
				derives := at.cfg.Assign == config.AssignAlways || (rec != nil && macaddr.Equal(parseMAC(rec.AppliedMAC), derived))
				if derives && !macaddr.IsLocal(mac) {
					add(Warning, "mac-not-local", "recreate the pod so that macguard derives its MAC again, and find what set this one",
						"%s has %s, which is not locally administered, where macguard derives the stable MAC %s of %s", ifc.Name, ifc.MAC, derived, id)
				} else if at.cfg.Assign == config.AssignAlways && !macaddr.Equal(mac, derived) {
					add(Warning, "mac-not-derived", "recreate the pod so that macguard derives its MAC again, and find what set this one",
						"assign is \"always\", but %s has %s instead of the stable MAC %s of %s", ifc.Name, ifc.MAC, derived, id)
				}
			}
		}
	}
}

// duplicates finds a MAC on interfaces of two different pods. ipvlan slaves
// share their parent's MAC by design and are left out.
func (a *analysis) duplicates() {
	by := map[string][]podIface{}
	for _, pi := range a.ifaces {
		m := parseMAC(pi.ifc.MAC)
		if macaddr.IsZero(m) || pi.ifc.Kind == link.KindIPVlan || pi.ifc.Kind == link.KindIPVtap {
			continue
		}
		by[m.String()] = append(by[m.String()], pi)
	}
	for mac, list := range by {
		pods := map[uint64]bool{}
		for _, pi := range list {
			pods[pi.netns] = true
		}
		if len(pods) < 2 {
			continue
		}
		for _, pi := range list {
			var others []string
			for _, o := range list {
				if o.netns != pi.netns {
					others = append(others, o.pod+" "+o.ifc.Name)
				}
			}
			sort.Strings(others)
			a.add(Finding{Severity: Error, Code: "mac-duplicate", Section: SectionPods, Pod: pi.pod, Interface: pi.ifc.Name, MAC: mac,
				Message: fmt.Sprintf("%s has %s, which %s also has: on a shared segment, frames reach only one of them", pi.ifc.Name, mac, strings.Join(others, ", ")),
				Remedy:  "give each its own MAC: two pods requested the same MAC, or one was copied; macguard's derived MACs differ per pod, VM and interface"})
		}
	}
}

// records classifies macguard's records as live, stale or corrupt.
func (a *analysis) records() {
	for _, f := range a.w.LegacyRecords {
		a.add(Finding{Severity: Info, Code: "record-legacy", Section: SectionRecords, File: f,
			Message: "a record of a build from before records named their network: no DEL or GC reads or removes it, so its pod's MAC is not restored on DEL",
			Remedy:  "remove the file once its pod is gone; macguard ignores it"})
	}
	fixed := map[string]bool{}
	for _, f := range a.w.Fixed {
		fixed[f] = true
	}
	for _, rec := range a.w.Records {
		// A netns found through its sandbox's processes decides, whatever
		// the record's netns path looked like from here.
		for _, n := range a.w.Netns {
			if rec.Err == "" && n.Err == "" && slices.Contains(n.ContainerIDs, rec.ContainerID) {
				rec.NetnsGone, rec.NetnsErr, rec.IfPresent = false, "", false
				for _, ifc := range n.Interfaces {
					rec.IfPresent = rec.IfPresent || ifc.Name == rec.IfName
				}
			}
		}
		st := RecordState{File: rec.File, Network: rec.Network, ContainerID: rec.ContainerID, IfName: rec.IfName, Netns: rec.Netns, AppliedMAC: rec.AppliedMAC}
		base := Finding{Section: SectionRecords, File: rec.File}
		switch {
		case rec.Err != "":
			st.State = "corrupt"
			f := base
			f.Severity, f.Code = Warning, "record-corrupt"
			f.Message = fmt.Sprintf("holds no usable record: %s", rec.Err)
			f.Remedy = "harmless: ADD writes over it and DEL drops it; delete it by hand if its pod is gone"
			a.add(f)
		case rec.NetnsErr != "":
			st.State = "unknown"
			f := base
			f.Severity, f.Code = Warning, "record-unknown"
			f.Message = fmt.Sprintf("cannot look into netns %s of %s/%s: %s", rec.Netns, rec.ContainerID, rec.IfName, rec.NetnsErr)
			f.Remedy = "run the doctor as root with CAP_SYS_ADMIN (the DaemonSet's doctor component grants it), so it can tell a live record from a stale one"
			a.add(f)
		case rec.NetnsGone || !rec.IfPresent:
			st.State = "stale"
			why := fmt.Sprintf("its netns %s is gone", rec.Netns)
			if !rec.NetnsGone {
				why = fmt.Sprintf("interface %s is gone from netns %s", rec.IfName, rec.Netns)
			}
			f := base
			if fixed[rec.File] {
				st.State = "removed"
				f.Severity, f.Code = Info, "record-removed"
				f.Message = fmt.Sprintf("stale record of %s/%s removed (%s)", rec.ContainerID, rec.IfName, why)
			} else {
				f.Severity, f.Code = Warning, "record-stale"
				f.Message = fmt.Sprintf("stale record of %s/%s: %s, and no DEL or GC removed the record", rec.ContainerID, rec.IfName, why)
				f.Remedy = "macguardctl doctor --fix removes stale records (under the lock GC takes); the runtime's CNI GC would too"
			}
			a.add(f)
		default:
			st.State = "live"
		}
		a.r.Records = append(a.r.Records, st)
	}
	for _, e := range a.w.FixErrors {
		a.add(Finding{Severity: Error, Code: "fix-failed", Section: SectionRecords, Message: e,
			Remedy: "run --fix again as root on the node (the dataDir must be writable); a record that is no longer stale was reused by a new pod and must stay"})
	}
}

func (a *analysis) confs() {
	states, fs := checkConfDir(a.w)
	a.r.Configs = append(a.r.Configs, states...)
	for _, f := range fs {
		a.add(f)
	}
	for _, cf := range a.w.Extra {
		st, _, fs := checkConf(cf, SectionConfig, a.w.roots())
		st.Source = "conf-flag"
		a.r.Configs = append(a.r.Configs, st)
		for _, f := range fs {
			a.add(f)
		}
	}
	for i := range a.w.CacheErrors {
		ce := a.w.CacheErrors[i]
		a.add(Finding{Severity: Info, Code: "cache-unreadable", Section: SectionPods, File: ce.File,
			Message: fmt.Sprintf("libcni cannot read this cache entry (%s); its pod is named by container ID or netns", ce.Err)})
	}
}

// parseVersion splits "macguard v0.1.0 (commit abc)".
func parseVersion(s string) (Build, bool) {
	var b Build
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "macguard ")
	if !ok {
		return b, false
	}
	v, c, ok := strings.Cut(rest, " (commit ")
	if !ok || !strings.HasSuffix(c, ")") {
		return b, false
	}
	return Build{Version: v, Commit: strings.TrimSuffix(c, ")")}, true
}

func (a *analysis) binary() {
	b := a.w.Binary
	base := Finding{Section: SectionBinary, File: b.Path}
	add := func(sev Severity, code, remedy, format string, args ...any) {
		f := base
		f.Severity, f.Code, f.Remedy, f.Message = sev, code, remedy, fmt.Sprintf(format, args...)
		a.add(f)
	}
	install := "install it: the macguard DaemonSet's pod does on every node, or macguardctl install (make install from a checkout)"
	switch {
	case !b.Present:
		add(Error, "binary-missing", install, "no macguard in the CNI bin dir: every ADD of a chain with macguard fails with `failed to find plugin \"macguard\" in path`")
	case !b.Executable:
		add(Error, "binary-not-executable", install, "not an executable file: the runtime cannot run the plugin")
	case b.Err != "":
		add(Error, "binary-broken", install, "running `macguard version` failed: %s", b.Err)
	default:
		got, ok := parseVersion(b.Version)
		switch {
		case !ok:
			add(Warning, "binary-unknown", install, "`macguard version` printed %q, which is not macguard's version line", b.Version)
		case got != a.w.Self:
			add(Warning, "binary-version-mismatch",
				"the DaemonSet's pod installs its own version: restart it on this node after an upgrade, or run the macguardctl that matches",
				"the plugin is %s (commit %s), this macguardctl is %s (commit %s)", got.Version, got.Commit, a.w.Self.Version, a.w.Self.Commit)
		}
	}
}

// withRuntimeMAC is macguard's entry as libcni hands it to a plugin that
// declares the mac capability: libcni (injectRuntimeConfig) builds
// runtimeConfig from the declared capabilities' arguments alone and sets it
// with InjectConf, replacing any runtimeConfig the file holds; mac is the
// only capability macguard reads.
func withRuntimeMAC(raw []byte, mac string) []byte {
	p, err := libcni.InjectConf(&libcni.PluginConfig{Bytes: raw}, map[string]any{"runtimeConfig": map[string]any{"mac": mac}})
	if err != nil {
		return raw
	}
	return p.Bytes
}
