// Package nodeworld builds a node for `macguardctl doctor` to look at:
// real pod network namespaces with real devices, and the directories a
// node has (CNI conf dir, bin dir, macguard's dataDir, libcni's cache, the
// netns dir and a procfs stand-in) under a test's temporary directory, so
// the doctor sees exactly this world and none of the machine's other
// namespaces. test/doctor, test/vm and test/k8s build their worlds with it.
package nodeworld

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/ctl/doctor"
	"github.com/macguard-cni/macguard/pkg/state"
)

// World is one node's worth of directories plus a "node" network namespace
// where the host ends of veths and the parents of macvlans live.
type World struct {
	Root                                   string
	Conf, Bin, Data, Cache, NetnsDir, Proc string
	// MultusCache is Multus' cache dir, where it caches its delegates.
	MultusCache string
	Node        ns.NetNS
	// RunNS, when set, is the network namespace the doctor runs in (the
	// node's, to see a macvlan parent as the node's own device); nil runs
	// it in the test's.
	RunNS           ns.NetNS
	nextPID, nextIf int
}

// New creates an empty world: every directory exists, the conf dir is
// empty, the plugin binary is installed in the bin dir (so a world is
// healthy until a test breaks it), and the procfs stand-in knows pid 1,
// the node itself.
func New(t testing.TB) *World {
	t.Helper()
	return NewAt(t, t.TempDir())
}

// NewAt is New with the world's directories under root (which must not
// exist yet, or be empty), for a run whose report should show short paths;
// root is removed when the test ends.
func NewAt(t testing.TB, root string) *World {
	t.Helper()
	testutil.RequireRoot(t)
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(root); err != nil {
			t.Logf("removing %s: %v", root, err)
		}
	})
	w := &World{Root: root, Node: testutil.NewNetns(t), nextPID: 4000}
	w.Conf, w.Bin, w.Data = filepath.Join(root, "net.d"), filepath.Join(root, "bin"), filepath.Join(root, "macguard")
	w.Cache, w.NetnsDir, w.Proc = filepath.Join(root, "cni-cache"), filepath.Join(root, "netns"), filepath.Join(root, "proc")
	w.MultusCache = filepath.Join(root, "multus-cache")
	for _, d := range []string{w.Conf, w.Bin, w.Data, filepath.Join(w.Cache, "results"), filepath.Join(w.MultusCache, "results"), w.NetnsDir, filepath.Join(w.Proc, "1", "ns")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// pid 1's namespace is the node's: the doctor leaves it out.
	if err := os.Symlink("/proc/1/ns/net", filepath.Join(w.Proc, "1", "ns", "net")); err != nil {
		t.Fatal(err)
	}
	w.InstallPlugin(t, testutil.PluginBinary(t))
	return w
}

// InstallPlugin copies bin into the bin dir as "macguard".
func (w *World) InstallPlugin(t testing.TB, bin string) {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatalf("reading plugin binary: %v", err)
	}
	if err := os.WriteFile(filepath.Join(w.Bin, "macguard"), data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// Pod is a sandbox of the world.
type Pod struct {
	Name string
	NS   ns.NetNS
	// Path is the pod's entry in the world's netns dir (a symlink to the
	// bind mount), empty for a pod only a process holds.
	Path string
	// ContainerID is the sandbox's ID.
	ContainerID string
	Namespace   string
	PodName     string
}

// ContainerID is the sandbox ID NewPod gives pod namespace/name: 64 hex
// digits, like containerd's.
func ContainerID(namespace, name string) string {
	return fmt.Sprintf("%x", sha256.Sum256([]byte(namespace+"/"+name)))
}

// NetnsPath is how the runtime named the pod's netns (CNI_NETNS).
func (p *Pod) NetnsPath() string {
	if p.Path != "" {
		return p.Path
	}
	return p.NS.Path()
}

// Label is how the doctor names the pod.
func (p *Pod) Label() string { return p.Namespace + "/" + p.PodName }

// NewPod creates a pod namespace for Kubernetes pod namespace/name, listed
// in the netns dir like a runtime does (inNetnsDir) or held only by a
// process (then it appears under the procfs stand-in).
func (w *World) NewPod(t testing.TB, namespace, name string, inNetnsDir bool) *Pod {
	t.Helper()
	p := &Pod{Name: name, NS: testutil.NewNetns(t), Namespace: namespace, PodName: name,
		ContainerID: ContainerID(namespace, name)}
	if inNetnsDir {
		p.Path = filepath.Join(w.NetnsDir, "cni-"+name)
		if err := os.Symlink(p.NS.Path(), p.Path); err != nil {
			t.Fatal(err)
		}
	} else {
		w.AddProcess(t, p)
	}
	return p
}

// AddProcess makes the procfs stand-in show a process inside p's netns,
// the pod's sandbox process in its cgroup as containerd places it, and
// returns its pid.
func (w *World) AddProcess(t testing.TB, p *Pod) int {
	t.Helper()
	w.nextPID++
	dir := filepath.Join(w.Proc, fmt.Sprint(w.nextPID))
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(p.NS.Path(), filepath.Join(dir, "ns", "net")); err != nil {
		t.Fatal(err)
	}
	cgroup := "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-" + p.ContainerID + ".scope\n"
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(cgroup), 0o644); err != nil {
		t.Fatal(err)
	}
	return w.nextPID
}

// Veth gives the pod interface ifName, a veth whose peer is in the node
// namespace, with the given MAC ("" keeps the kernel's random one).
func (w *World) Veth(t testing.TB, p *Pod, ifName, mac string) {
	t.Helper()
	host := fmt.Sprintf("vh%d", w.nextIndex())
	testutil.VethPair(t, w.Node, host, p.NS, ifName)
	w.setMAC(t, p, ifName, mac)
}

// Macvlan gives the pod interface ifName, a macvlan in mode on a parent
// veth in the node namespace, with the given MAC.
func (w *World) Macvlan(t testing.TB, p *Pod, ifName, mac string, mode netlink.MacvlanMode) {
	t.Helper()
	parent := fmt.Sprintf("up%d", w.nextIndex())
	testutil.LocalVeth(t, w.Node, parent, parent+"p")
	testutil.Macvlan(t, w.Node, parent, p.NS, ifName, mode)
	w.setMAC(t, p, ifName, mac)
}

// Netkit gives the pod interface ifName, the peer of a netkit pair whose
// primary is in the node namespace, in mode "l2" or "l3", as cilium-cni
// does in netkit datapath mode. The kernel needs CONFIG_NETKIT (test/vm).
func (w *World) Netkit(t testing.TB, p *Pod, ifName, mode string) {
	t.Helper()
	m := netlink.NETKIT_MODE_L3
	if mode == "l2" {
		m = netlink.NETKIT_MODE_L2
	}
	nk := &netlink.Netkit{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("nk%d", w.nextIndex())}, Mode: m,
		Policy: netlink.NETKIT_POLICY_FORWARD, PeerPolicy: netlink.NETKIT_POLICY_FORWARD}
	nk.SetPeerAttrs(&netlink.LinkAttrs{Name: ifName, Namespace: netlink.NsFd(int(p.NS.Fd()))})
	testutil.InNetns(t, w.Node, func() error {
		if err := netlink.LinkAdd(nk); err != nil {
			return fmt.Errorf("adding netkit %s pair: %w", mode, err)
		}
		return nil
	})
}

// IPVlan gives the pod interface ifName, an ipvlan in mode on a parent veth
// in the node namespace. The kernel needs CONFIG_IPVLAN (test/vm).
func (w *World) IPVlan(t testing.TB, p *Pod, ifName string, mode netlink.IPVlanMode) {
	t.Helper()
	parent := fmt.Sprintf("up%d", w.nextIndex())
	testutil.LocalVeth(t, w.Node, parent, parent+"p")
	testutil.InNetns(t, w.Node, func() error {
		pl, err := netlink.LinkByName(parent)
		if err != nil {
			return err
		}
		iv := &netlink.IPVlan{LinkAttrs: netlink.LinkAttrs{Name: ifName, ParentIndex: pl.Attrs().Index, Namespace: netlink.NsFd(int(p.NS.Fd()))}, Mode: mode}
		if err := netlink.LinkAdd(iv); err != nil {
			return fmt.Errorf("adding ipvlan on %s: %w", parent, err)
		}
		return nil
	})
}

// Tun gives the pod interface ifName, a tun device (no link layer, as a
// VPN or a user-space data path makes one); it lives as long as the pod's
// netns.
func (w *World) Tun(t testing.TB, p *Pod, ifName string) {
	t.Helper()
	testutil.InNetns(t, p.NS, func() error {
		tun := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: ifName}, Mode: netlink.TUNTAP_MODE_TUN, Flags: netlink.TUNTAP_DEFAULTS}
		if err := netlink.LinkAdd(tun); err != nil {
			return fmt.Errorf("adding tun %s: %w", ifName, err)
		}
		return nil
	})
}

func (w *World) nextIndex() int {
	w.nextIf++
	return w.nextIf
}

func (w *World) setMAC(t testing.TB, p *Pod, ifName, mac string) {
	t.Helper()
	if mac == "" {
		return
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	testutil.SetMAC(t, p.NS, ifName, hw)
}

// MAC reads the pod interface's MAC.
func (w *World) MAC(t testing.TB, p *Pod, ifName string) string {
	t.Helper()
	return testutil.MAC(t, p.NS, ifName).String()
}

// WriteConf writes a file into the CNI conf dir.
func (w *World) WriteConf(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(w.Conf, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Conflist renders a conflist of the given plugin entries (JSON objects).
func Conflist(name string, plugins ...string) string {
	return fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[%s]}`, name, strings.Join(plugins, ","))
}

// Attachment is what the runtime cached for one interface.
type Attachment struct {
	Network string
	IfName  string
	// Conflist is the network configuration it ran.
	Conflist string
	// ResultMAC is the MAC the chain's result reported for the interface.
	ResultMAC string
	// ExtraArgs are CNI_ARGS beyond the pod's (e.g. MAC=...).
	ExtraArgs [][2]string
	// RuntimeMAC is the "mac" capability argument.
	RuntimeMAC string
	// Netns overrides the netns path the runtime gave (default the pod's).
	Netns string
	// Multus: Multus made the attachment (a network it delegated to), so
	// it is in Multus' cache, not the runtime's.
	Multus bool
}

// CacheAttachment writes libcni's cache entry for an attachment of p, in libcni's
// cniCacheV1 format (the fields of its cachedInfo), as a runtime leaves it
// after ADD.
func (w *World) CacheAttachment(t testing.TB, p *Pod, a Attachment) {
	t.Helper()
	args := [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", p.Namespace}, {"K8S_POD_NAME", p.PodName},
		{"K8S_POD_INFRA_CONTAINER_ID", p.ContainerID}}
	args = append(args, a.ExtraArgs...)
	netns := p.NetnsPath()
	if a.Netns != "" {
		netns = a.Netns
	}
	entry := map[string]any{
		"kind":        "cniCacheV1",
		"containerId": p.ContainerID,
		"config":      []byte(a.Conflist), // base64, as libcni's []byte field
		"ifName":      a.IfName,
		"networkName": a.Network,
		"netns":       netns,
		"cniArgs":     args,
		"result": map[string]any{
			"cniVersion": "1.0.0",
			"interfaces": []map[string]any{{"name": a.IfName, "mac": a.ResultMAC, "sandbox": netns}},
		},
	}
	if a.RuntimeMAC != "" {
		entry["capabilityArgs"] = map[string]any{"mac": a.RuntimeMAC}
	}
	data, err := json.Marshal(entry)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%s-%s-%s", a.Network, p.ContainerID, a.IfName)
	dir := w.Cache
	if a.Multus {
		dir = w.MultusCache
	}
	if err := os.WriteFile(filepath.Join(dir, "results", name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// RecordNetwork is the network of the records World.Record writes.
const RecordNetwork = "net"

// RecordName is the file name of the record World.Record writes.
func RecordName(containerID, ifName string) string {
	return testutil.RecordName(RecordNetwork, containerID, ifName)
}

// Record writes macguard's record of a MAC change, as the plugin's ADD
// does, and returns its file.
func (w *World) Record(t testing.TB, containerID, ifName, netnsPath, original, applied string) string {
	t.Helper()
	st := state.New(w.Data)
	defer st.Close()
	if err := st.Save(state.Record{Network: RecordNetwork, ContainerID: containerID, IfName: ifName, Netns: netnsPath,
		OriginalMAC: original, AppliedMAC: applied}); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(w.Data, RecordName(containerID, ifName))
}

// Records lists the record files in the dataDir.
func (w *World) Records(t testing.TB) []string {
	t.Helper()
	recs := testutil.StateRecords(t, w.Data)
	sort.Strings(recs)
	return recs
}

// Args are the doctor's flags for this world.
func (w *World) Args(extra ...string) []string {
	return append([]string{"doctor", "--conf-dir", w.Conf, "--bin-dir", w.Bin, "--data-dir", w.Data,
		"--cache-dir", w.Cache, "--multus-cache-dir", w.MultusCache, "--netns-dir", w.NetnsDir, "--proc", w.Proc, "--node", "test-node", "--no-cluster"}, extra...)
}

// Run runs macguardctl doctor on the world with --json and returns the
// report and the exit code.
func (w *World) Run(t testing.TB, bin string, extra ...string) (doctor.Report, int) {
	t.Helper()
	out, stderr, code := w.RunRaw(t, bin, append([]string{"--json"}, extra...)...)
	var r doctor.Report
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("doctor --json printed no report (exit %d, stderr %q): %v\n%s", code, stderr, err, out)
	}
	return r, code
}

// RunRaw runs macguardctl doctor on the world and returns stdout, stderr
// and the exit code.
func (w *World) RunRaw(t testing.TB, bin string, extra ...string) ([]byte, string, int) {
	t.Helper()
	cmd := exec.Command(bin, w.Args(extra...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	var err error
	if w.RunNS != nil {
		// Forked from a thread inside RunNS, the doctor starts there.
		if nerr := w.RunNS.Do(func(ns.NetNS) error { err = cmd.Run(); return nil }); nerr != nil {
			t.Fatalf("entering %s: %v", w.RunNS.Path(), nerr)
		}
	} else {
		err = cmd.Run()
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running %s: %v", bin, err)
		}
		code = ee.ExitCode()
	}
	return out.Bytes(), errb.String(), code
}

// Problem is a finding reduced to what a test asserts: who, where, what.
type Problem struct {
	Severity  doctor.Severity
	Code      string
	Pod       string
	Interface string
	File      string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s %s pod=%q if=%q file=%q", p.Severity, p.Code, p.Pod, p.Interface, p.File)
}

// Problems lists a report's errors and warnings (info is left out), with
// file names reduced to their base, sorted.
func Problems(r doctor.Report) []Problem {
	var out []Problem
	for _, f := range r.Findings {
		if f.Severity == doctor.Info {
			continue
		}
		file := f.File
		if file != "" {
			file = filepath.Base(file)
		}
		out = append(out, Problem{Severity: f.Severity, Code: f.Code, Pod: f.Pod, Interface: f.Interface, File: file})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Find returns the first finding with code for pod (any pod when "").
func Find(r doctor.Report, code, pod string) *doctor.Finding {
	for i, f := range r.Findings {
		if f.Code == code && (pod == "" || f.Pod == pod) {
			return &r.Findings[i]
		}
	}
	return nil
}
