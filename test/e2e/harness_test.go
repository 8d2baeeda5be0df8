// Package e2e runs macguard the way users meet it: as one entry in a
// conflist that the real cnitool (libcni, what containerd, CRI-O and Multus
// use to call plugins) executes together with the real reference plugins,
// pinned and installed by `make tools`.
//
// Every test builds its own "node" network namespace, in which cnitool and
// therefore the main plugins run (bridges, host-side veths, macvlan parents
// all live there), and "pod" namespaces for the sandboxes. Nothing touches
// the machine's own interfaces. Files go to per-test temporary directories,
// except libcni's result cache, which cnitool always keeps in /var/lib/cni;
// each test checks that its entries there are gone after DEL.
//
// Run through `make test-e2e` (root).
package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/macguard-cni/macguard/internal/testutil"
)

const (
	podIf = "eth0"
	// libcniCacheDir is where cnitool's libcni caches ADD results (it has
	// no way to choose another): GC and CHECK read them back.
	libcniCacheDir = "/var/lib/cni"
	// parentIf/parentPeer is the veth pair inside the node namespace that
	// macvlan and ipvlan use as their master.
	parentIf   = "mgparent0"
	parentPeer = "mgparent1"
)

// node is one simulated host, testutil's Node (a network namespace for
// cnitool and the host side of the chains, its NETCONFPATH, host-local's
// and macguard's files), with what this suite adds: the test it reports
// to, the pinned cnitool and reference plugins, and tuning's dataDir.
type node struct {
	t *testing.T
	*testutil.Node
	tuningDir string // tuning's dataDir
	tool      *testutil.CNITool
}

func newNode(t *testing.T) *node {
	t.Helper()
	base := testutil.NewNode(t)
	return &node{
		t:         t,
		Node:      base,
		tuningDir: filepath.Join(base.Dir, "tuning"),
		tool:      base.CNITool(testutil.CNIToolBinary(t), testutil.CNIPath(t)),
	}
}

// withParent adds the macvlan/ipvlan parent veth pair to the node.
func (n *node) withParent() *node {
	testutil.LocalVeth(n.t, n.NS, parentIf, parentPeer)
	return n
}

// uniqueName makes network names unique per test run: libcni's cache in
// /var/lib/cni is shared by everything on the machine, and `cnitool gc`
// deletes every cached attachment of the network it is given.
func uniqueName(base string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return base + "-" + hex.EncodeToString(b)
}

type obj = map[string]any

// writeList writes a conflist (a fresh network name derived from base) into
// the node's NETCONFPATH and returns the network name to pass to cnitool.
func (n *node) writeList(base, cniVersion string, plugins ...obj) string {
	n.t.Helper()
	name := uniqueName(base)
	n.WriteConfList(n.t, obj{"cniVersion": cniVersion, "name": name, "plugins": plugins})
	return name
}

// Plugin entries. Every stateful plugin gets a dataDir under the test's
// temporary directory.

func (n *node) hostLocal(subnet string) obj { return n.HostLocal(subnet) }

func ptp(ipam obj) obj { return obj{"type": "ptp", "ipam": ipam} }

func bridge(name string, ipam obj) obj {
	return obj{"type": "bridge", "bridge": name, "isGateway": true, "ipam": ipam}
}

// macvlan on the node's parent; macCap declares the "mac" capability, so
// the runtime's runtimeConfig.mac reaches it.
func macvlan(macCap bool, ipam obj, extra obj) obj {
	p := obj{"type": "macvlan", "master": parentIf, "mode": "bridge", "ipam": ipam}
	if macCap {
		p["capabilities"] = obj{"mac": true}
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func (n *node) tuning(extra obj) obj {
	p := obj{"type": "tuning", "dataDir": n.tuningDir}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// macguard is the plugin's entry with the node's dataDir and logFile and
// the "mac" capability, plus fields.
func (n *node) macguard(fields obj) obj {
	p := obj{"capabilities": obj{"mac": true}}
	maps.Copy(p, fields)
	return n.MacguardEntry(p)
}

// attachment is one pod interface on one network, driven through cnitool.
type attachment struct {
	n       *node
	network string
	pod     ns.NetNS
	call    testutil.Call
	deleted bool
}

// pod describes the Kubernetes pod CNI_ARGS carry.
type pod struct{ namespace, name string }

// attach prepares an attachment of a pod sandbox (pod ns) to network, with
// the CNI_ARGS a kubelet/Multus would pass plus extraArgs (e.g. "MAC=...").
// Should the test fail before del, cleanup runs cnitool del so nothing is
// left in libcni's cache.
func (n *node) attach(network string, podNS ns.NetNS, p pod, capArgs string, extraArgs ...string) *attachment {
	n.t.Helper()
	a := &attachment{n: n, network: network, pod: podNS}
	cid := a.containerID()
	a.call = testutil.Call{
		IfName:  podIf,
		CNIArgs: testutil.PodArgs(p.namespace, p.name, cid, "uid-"+cid[len(cid)-8:], extraArgs...),
		CapArgs: capArgs,
	}
	n.t.Cleanup(func() {
		if a.deleted {
			return
		}
		run, err := n.tool.Exec("del", a.network, a.pod.Path(), a.call)
		if err != nil || run.Err != nil {
			n.t.Logf("cleanup: %v %v", err, run)
		}
	})
	return a
}

// containerID is what cnitool derives from the netns path.
func (a *attachment) containerID() string { return testutil.CNIToolContainerID(a.pod.Path()) }

// add runs `cnitool add` and fails the test unless it succeeds.
func (a *attachment) add() (testutil.Result, []byte) {
	a.n.t.Helper()
	out := a.n.tool.Must(a.n.t, "add", a.network, a.pod.Path(), a.call)
	return testutil.ParseResult(a.n.t, out), out
}

func (a *attachment) run(cmd string) testutil.CNIToolRun {
	a.n.t.Helper()
	return a.n.tool.Run(a.n.t, cmd, a.network, a.pod.Path(), a.call)
}

func (a *attachment) check() {
	a.n.t.Helper()
	if run := a.run("check"); run.Err != nil {
		a.n.t.Errorf("CHECK failed: %v", run)
	}
}

func (a *attachment) del() {
	a.n.t.Helper()
	a.n.tool.Must(a.n.t, "del", a.network, a.pod.Path(), a.call)
	a.deleted = true
}

// podMACInResult is the MAC the result reports for the pod interface: the
// entry whose name is eth0 AND whose sandbox is the pod's netns. Exactly
// one such entry must exist.
func (a *attachment) podMACInResult(r testutil.Result) string {
	a.n.t.Helper()
	var macs []string
	for _, i := range r.Interfaces {
		if i.Name == podIf && i.Sandbox == a.pod.Path() {
			macs = append(macs, i.Mac)
		}
	}
	if len(macs) != 1 {
		a.n.t.Fatalf("result has %d entries for %s in %s, want 1: %+v", len(macs), podIf, a.pod.Path(), r.Interfaces)
	}
	return macs[0]
}

// linkMAC is the pod interface's MAC as the kernel reports it.
func (a *attachment) linkMAC() string {
	a.n.t.Helper()
	return testutil.MAC(a.n.t, a.pod, podIf).String()
}

// recordName is macguard's state file for this attachment
// (docs/contract.md: named after the network, container ID and interface).
func (a *attachment) recordName() string {
	return testutil.RecordName(a.network, a.containerID(), podIf)
}

// records lists macguard's state records on the node (Node.Records: a
// stray file next to them fails the test).
func (n *node) records() []string {
	n.t.Helper()
	return n.Records(n.t)
}

// stateRecord reads this attachment's record.
func (a *attachment) stateRecord() (original, applied string) {
	a.n.t.Helper()
	b, err := os.ReadFile(filepath.Join(a.n.DataDir, a.recordName()))
	if err != nil {
		a.n.t.Fatalf("macguard recorded no original MAC for the attachment: %v", err)
	}
	var r struct {
		OriginalMAC string `json:"originalMAC"`
		AppliedMAC  string `json:"appliedMAC"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		a.n.t.Fatalf("state record %s: %v", b, err)
	}
	return r.OriginalMAC, r.AppliedMAC
}

// leases lists host-local's reserved addresses for a network.
func (n *node) leases(network string) []string {
	n.t.Helper()
	return n.Leases(n.t, network)
}

// cacheFile is libcni's cached result for the attachment.
func (a *attachment) cacheFile() string {
	return filepath.Join(libcniCacheDir, "results", a.network+"-"+a.containerID()+"-"+podIf)
}

// assertClean checks that a deleted attachment left nothing behind: the pod
// namespace holds only lo, the node exactly nodeLinks, and no macguard
// record, host-local lease or libcni cache entry remains.
func (a *attachment) assertClean(nodeLinks ...string) {
	t := a.n.t
	t.Helper()
	if links, err := testutil.LinkNames(a.pod); err != nil {
		t.Error(err)
	} else if !slices.Equal(links, []string{"lo"}) {
		t.Errorf("pod namespace still holds %v after DEL", links)
	}
	want := append([]string{"lo"}, nodeLinks...)
	slices.Sort(want)
	if links, err := testutil.LinkNames(a.n.NS); err != nil {
		t.Error(err)
	} else if !slices.Equal(links, want) {
		t.Errorf("node namespace holds %v after DEL, want %v", links, want)
	}
	if recs := a.n.records(); slices.Contains(recs, a.recordName()) {
		t.Errorf("macguard's record %s survived DEL", a.recordName())
	}
	if l := a.n.leases(a.network); len(l) != 0 {
		t.Errorf("host-local still leases %v on %s", l, a.network)
	}
	if _, err := os.Stat(a.cacheFile()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("libcni cache entry %s survived DEL (%v)", a.cacheFile(), err)
	}
}

// addLog returns macguard's single ADD log line for this attachment.
func (a *attachment) addLog() testutil.LogLine {
	a.n.t.Helper()
	var found []testutil.LogLine
	for _, l := range a.n.logLines() {
		if l["msg"] == "ADD" && l["container"] == a.containerID() && l["ifname"] == podIf {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		a.n.t.Fatalf("macguard's log has %d ADD lines for %s, want 1:\n%s", len(found), a.containerID(), a.n.readLog())
	}
	return found[0]
}

func (n *node) readLog() string {
	n.t.Helper()
	return n.ReadLog(n.t)
}

func (n *node) logLines() []testutil.LogLine {
	n.t.Helper()
	return n.LogLines(n.t)
}

// in is the same node seen from a subtest: failures and cleanups belong to t.
func (n *node) in(t *testing.T) *node {
	c := *n
	c.t = t
	return &c
}
