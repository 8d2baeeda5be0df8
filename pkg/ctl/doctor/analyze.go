package doctor

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"

	"github.com/macguard-cni/macguard/pkg/config"
	"github.com/macguard-cni/macguard/pkg/ctl/cniconf"
	"github.com/macguard-cni/macguard/pkg/identity"
	"github.com/macguard-cni/macguard/pkg/macaddr"
	"github.com/macguard-cni/macguard/pkg/policy"
)

// Analyze turns a gathered World into a Report. It is pure: the same World
// always gives the same Report, so each rule is tested on a World written
// by hand.
func Analyze(w *World) Report {
	r := Report{SchemaVersion: SchemaVersion, Node: w.Node, Macguardctl: w.Self, Dirs: w.Dirs, Binary: w.Binary,
		Pods: []Pod{}, Records: []RecordState{}, Configs: []ConfigState{}, Findings: []Finding{}}
	a := &analysis{w: w, r: &r}
	// The steps run in this order because the later ones read what the
	// earlier ones wrote: pods puts the node's pods into the report
	// (r.Pods), which paths and cluster look up, and returns their
	// interfaces for duplicates; cluster reads the pods' findings (a VM the
	// node already reports is not reported again from its network-status),
	// and its kubevirt rules downgrade those findings for a VM whose spec
	// sets the MAC.
	ifaces := a.pods()
	a.paths()
	a.duplicates(ifaces)
	a.records()
	a.confs()
	a.binary()
	a.cluster()
	a.clusterPaths()
	a.missingDirs()
	sortFindings(r.Findings)
	r.Summary = summarize(r.Findings)
	return r
}

// missingDirs notes the default directories that do not exist.
func (a *analysis) missingDirs() {
	for _, d := range a.w.Missing {
		a.add(Finding{Severity: Info, Code: "dir-missing", Section: sectionOfDir(a.w, d), File: d,
			Message: "does not exist (nothing to look at there yet)"})
	}
}

// summarize counts the findings by severity and says what they add up to.
func summarize(fs []Finding) Summary {
	var s Summary
	for _, f := range fs {
		switch f.Severity {
		case Error:
			s.Errors++
		case Warning:
			s.Warnings++
		default:
			s.Info++
		}
	}
	switch {
	case s.Errors > 0:
		s.Status = "errors"
	case s.Warnings > 0:
		s.Status = "warnings"
	default:
		s.Status = "healthy"
	}
	return s
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
}

// podIface is a pod interface, indexed for the duplicate check.
type podIface struct {
	pod   string
	netns uint64
	ifc   Interface
}

func (a *analysis) add(f Finding) { a.r.Findings = append(a.r.Findings, f) }

// cachedAttachment is an interface's entry in libcni's cache with what its
// chain says. (The plugin's own view of an attachment, at ADD time, is
// pkg/plugin's attached.)
type cachedAttachment struct {
	entry *CacheEntry
	chain *cniconf.Chain
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

func newCachedAttachment(e *CacheEntry) *cachedAttachment {
	ca := &cachedAttachment{entry: e}
	if len(e.Config) == 0 {
		return ca
	}
	ch, err := cniconf.Read(e.Config, true)
	if err != nil {
		return ca
	}
	ca.chain = ch
	mg := ch.Macguard()
	if mg == nil {
		return ca
	}
	raw := mg.Raw
	if mg.MACCapability && e.RuntimeMAC != "" {
		raw = withRuntimeMAC(raw, e.RuntimeMAC)
	}
	cfg, err := config.Parse(raw, cniArgsString(e.Args))
	if err != nil {
		return ca
	}
	req, err := cfg.Requested()
	if err != nil {
		return ca
	}
	ca.cfg, ca.req = cfg, req
	return ca
}

// chained reports whether macguard is in the attachment's chain.
func (ca *cachedAttachment) chained() bool {
	return ca != nil && ca.chain != nil && ca.chain.MacguardIndex() >= 0
}

// requested is the MAC the runtime asked for (CNI_ARGS MAC, or the mac
// capability), whoever was meant to apply it, and where it came from.
func (ca *cachedAttachment) requested() (string, string) {
	if ca == nil {
		return "", ""
	}
	if ca.req != nil {
		return ca.req.MAC.String(), ca.req.Source
	}
	if ca.entry.RuntimeMAC != "" {
		return ca.entry.RuntimeMAC, config.SourceRuntimeConfig
	}
	if m := ca.entry.Args["MAC"]; m != "" {
		return m, config.SourceCNIArgs
	}
	return "", ""
}

// pods puts every pod network namespace into the report with its
// interfaces, applies the per-interface rules (ifacerules.go) and returns
// the interfaces for the duplicate check.
func (a *analysis) pods() []podIface {
	var ifaces []podIface
	for i := range a.w.Netns {
		n := &a.w.Netns[i]
		cached, recs := a.attachmentsIn(n)
		p := namePod(n, cached, recs)
		if n.Err != "" {
			a.add(Finding{Severity: Warning, Code: "netns-unreadable", Section: SectionPods, Pod: p.Name,
				Message: fmt.Sprintf("cannot list the interfaces of netns %s: %s", n.Path, n.Err),
				Remedy:  "run the doctor as root with CAP_SYS_ADMIN (the DaemonSet's doctor component grants it)"})
		}
		for _, ifc := range n.Interfaces {
			var ca *cachedAttachment
			for _, c := range cached {
				if c.entry.IfName == ifc.Name {
					ca = c
				}
			}
			var rec *Record
			for _, c := range recs {
				if c.IfName == ifc.Name {
					rec = c
				}
			}
			pi := PodInterface{Interface: ifc}
			if ca != nil {
				pi.Network, pi.Macguard = ca.entry.Network, ca.chained()
			}
			if rec != nil {
				pi.Applied = rec.AppliedMAC
			}
			p.Interfaces = append(p.Interfaces, pi)
			if ifc.Encap == "loopback" {
				continue
			}
			ifaces = append(ifaces, podIface{pod: p.Name, netns: n.Inode, ifc: ifc})
			for _, f := range checkInterface(newIfaceCheck(&p, ifc, ca, rec)) {
				a.add(f)
			}
		}
		a.r.Pods = append(a.r.Pods, p)
	}
	sort.SliceStable(a.r.Pods, func(i, j int) bool { return a.r.Pods[i].Name < a.r.Pods[j].Name })
	return ifaces
}

// attachmentsIn returns the cache entries and the intact records of the
// attachments in netns n.
func (a *analysis) attachmentsIn(n *Netns) ([]*cachedAttachment, []*Record) {
	var cached []*cachedAttachment
	for j := range a.w.Cache {
		e := &a.w.Cache[j]
		if holds(n, e.NetnsInode, e.Netns, e.ContainerID) {
			cached = append(cached, newCachedAttachment(e))
		}
	}
	var recs []*Record
	for j := range a.w.Records {
		rec := &a.w.Records[j]
		if rec.Err == "" && holds(n, rec.NetnsInode, rec.Netns, rec.ContainerID) {
			recs = append(recs, rec)
		}
	}
	return cached, recs
}

// namePod resolves how a netns is named: from the cache (pod), then the
// records (container ID), then its path.
func namePod(n *Netns, cached []*cachedAttachment, recs []*Record) Pod {
	p := Pod{Netns: n.Path, Seen: n.Seen, Interfaces: []PodInterface{}}
	for _, ca := range cached {
		if p.ContainerID == "" {
			p.ContainerID = ca.entry.ContainerID
		}
		if p.Namespace == "" && ca.entry.Args["K8S_POD_NAME"] != "" {
			p.Namespace, p.PodName = ca.entry.Args["K8S_POD_NAMESPACE"], ca.entry.Args["K8S_POD_NAME"]
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
	return p
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

// duplicates finds a MAC on interfaces of two different pods. A device the
// plugin's policy says cannot carry a MAC of its own (policy.CannotCarry:
// an ipvlan slave shows its parent's MAC by design, netkit L3 none) is
// left out.
func (a *analysis) duplicates(ifaces []podIface) {
	by := map[string][]podIface{}
	for _, pi := range ifaces {
		m := parseMAC(pi.ifc.MAC)
		if macaddr.IsZero(m) || policy.CannotCarry(pi.ifc.observed()) != "" {
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

// records classifies macguard's records as live, stale or corrupt
// (recordRule), after legacy records and before --fix's failures.
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
		st, f := recordRule(seenFromSandbox(rec, a.w.Netns), fixed[rec.File])
		if f != nil {
			a.add(*f)
		}
		a.r.Records = append(a.r.Records, st)
	}
	for _, e := range a.w.FixErrors {
		a.add(Finding{Severity: Error, Code: "fix-failed", Section: SectionRecords, Message: e,
			Remedy: "run --fix again as root on the node (the dataDir must be writable); a record that is no longer stale was reused by a new pod and must stay"})
	}
}

// seenFromSandbox returns rec as the netns found through its sandbox's
// processes shows it: that netns decides, whatever the record's netns
// path looked like from here.
func seenFromSandbox(rec Record, netns []Netns) Record {
	for _, n := range netns {
		if rec.Err == "" && n.Err == "" && slices.Contains(n.ContainerIDs, rec.ContainerID) {
			rec.NetnsGone, rec.NetnsErr, rec.IfPresent = false, "", false
			for _, ifc := range n.Interfaces {
				rec.IfPresent = rec.IfPresent || ifc.Name == rec.IfName
			}
		}
	}
	return rec
}

// recordRule says whether a record is corrupt, unknown (its netns cannot
// be looked into), stale (netns or interface gone; removed if --fix did)
// or live, and the finding that goes with it.
func recordRule(rec Record, fixed bool) (RecordState, *Finding) {
	st := RecordState{File: rec.File, Network: rec.Network, ContainerID: rec.ContainerID, IfName: rec.IfName, Netns: rec.Netns, AppliedMAC: rec.AppliedMAC}
	f := &Finding{Section: SectionRecords, File: rec.File}
	switch {
	case rec.Err != "":
		st.State = "corrupt"
		f.Severity, f.Code = Warning, "record-corrupt"
		f.Message = fmt.Sprintf("holds no usable record: %s", rec.Err)
		f.Remedy = "harmless: ADD writes over it and DEL drops it; delete it by hand if its pod is gone"
	case rec.NetnsErr != "":
		st.State = "unknown"
		f.Severity, f.Code = Warning, "record-unknown"
		f.Message = fmt.Sprintf("cannot look into netns %s of %s/%s: %s", rec.Netns, rec.ContainerID, rec.IfName, rec.NetnsErr)
		f.Remedy = "run the doctor as root with CAP_SYS_ADMIN (the DaemonSet's doctor component grants it), so it can tell a live record from a stale one"
	case rec.NetnsGone || !rec.IfPresent:
		st.State = "stale"
		why := fmt.Sprintf("its netns %s is gone", rec.Netns)
		if !rec.NetnsGone {
			why = fmt.Sprintf("interface %s is gone from netns %s", rec.IfName, rec.Netns)
		}
		if fixed {
			st.State = "removed"
			f.Severity, f.Code = Info, "record-removed"
			f.Message = fmt.Sprintf("stale record of %s/%s removed (%s)", rec.ContainerID, rec.IfName, why)
		} else {
			f.Severity, f.Code = Warning, "record-stale"
			f.Message = fmt.Sprintf("stale record of %s/%s: %s, and no DEL or GC removed the record", rec.ContainerID, rec.IfName, why)
			f.Remedy = "macguardctl doctor --fix removes stale records (under the lock GC takes); the runtime's CNI GC would too"
		}
	default:
		st.State = "live"
		f = nil
	}
	return st, f
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
