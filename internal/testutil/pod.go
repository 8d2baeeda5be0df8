// Package testutil holds helpers shared by the suites that run against a
// real kernel: namespaces, pod-like interfaces, and running the plugin
// binary the way a runtime does.
package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/macguard-cni/macguard/pkg/macaddr"
)

// RequireRoot fails the test (it does not skip): the suites that call it
// exist to exercise the kernel, and a silent skip would hide that they did
// not run.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test creates network namespaces and must run as root (sudo make test)")
	}
}

// NewNetns creates a throwaway network namespace that is removed when the
// test ends, also on failure.
func NewNetns(t testing.TB) ns.NetNS {
	t.Helper()
	RequireRoot(t)
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("creating netns: %v", err)
	}
	t.Cleanup(func() {
		_ = n.Close() // fails only if a test closed it already, to unmount it
		if err := testutils.UnmountNS(n); err != nil {
			t.Logf("removing netns %s: %v", n.Path(), err)
		}
	})
	return n
}

// InNetns runs f inside n and fails the test on error.
func InNetns(t testing.TB, n ns.NetNS, f func() error) {
	t.Helper()
	if err := n.Do(func(ns.NetNS) error { return f() }); err != nil {
		t.Fatalf("in netns %s: %v", n.Path(), err)
	}
}

// VethPair creates a veth pair with hostName in hostNS and podIf in podNS,
// both up. Deleting the netns removes it, so no separate cleanup is needed.
func VethPair(t testing.TB, hostNS ns.NetNS, hostName string, podNS ns.NetNS, podIf string) {
	t.Helper()
	InNetns(t, hostNS, func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName}, PeerName: podIf}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("adding veth %s: %w", hostName, err)
		}
		peer, err := netlinksafe.LinkByName(podIf)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetNsFd(peer, int(podNS.Fd())); err != nil {
			return fmt.Errorf("moving %s into %s: %w", podIf, podNS.Path(), err)
		}
		host, err := netlinksafe.LinkByName(hostName)
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(host)
	})
	InNetns(t, podNS, func() error {
		l, err := netlinksafe.LinkByName(podIf)
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
}

// Macvlan creates a macvlan of parent (in hostNS) named podIf inside podNS,
// in the given mode, and brings it up.
func Macvlan(t testing.TB, hostNS ns.NetNS, parent string, podNS ns.NetNS, podIf string, mode netlink.MacvlanMode) {
	t.Helper()
	tmp := fmt.Sprintf("mv%d", os.Getpid()%100000)
	InNetns(t, hostNS, func() error {
		p, err := netlinksafe.LinkByName(parent)
		if err != nil {
			return err
		}
		mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: tmp, ParentIndex: p.Attrs().Index, Namespace: netlink.NsFd(int(podNS.Fd()))}, Mode: mode}
		if err := netlink.LinkAdd(mv); err != nil {
			return fmt.Errorf("adding macvlan on %s: %w", parent, err)
		}
		return nil
	})
	InNetns(t, podNS, func() error {
		l, err := netlinksafe.LinkByName(tmp)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetName(l, podIf); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
}

// Link reads an interface inside n.
func Link(t testing.TB, n ns.NetNS, ifName string) netlink.Link {
	t.Helper()
	var l netlink.Link
	InNetns(t, n, func() (err error) {
		l, err = netlinksafe.LinkByName(ifName)
		return err
	})
	return l
}

// MAC reads an interface's MAC inside n and fails the test if it cannot.
func MAC(t testing.TB, n ns.NetNS, ifName string) net.HardwareAddr {
	t.Helper()
	mac, err := ReadMAC(n, ifName)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// ReadMAC is MAC without a testing.TB: it returns the error instead, so
// goroutines can call it (t.Fatal may only be called from the test's own
// goroutine).
func ReadMAC(n ns.NetNS, ifName string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := n.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(ifName)
		if err != nil {
			return fmt.Errorf("reading %s in %s: %w", ifName, n.Path(), err)
		}
		mac = l.Attrs().HardwareAddr
		return nil
	})
	return mac, err
}

// SetMAC changes an interface's MAC inside n, as a human or another
// plugin would.
func SetMAC(t testing.TB, n ns.NetNS, ifName string, mac net.HardwareAddr) {
	t.Helper()
	InNetns(t, n, func() error {
		l, err := netlinksafe.LinkByName(ifName)
		if err != nil {
			return err
		}
		return netlink.LinkSetHardwareAddr(l, mac)
	})
}

// AddAddr adds a CIDR address (IPv6 without DAD, so it is usable at once).
func AddAddr(t testing.TB, n ns.NetNS, ifName, cidr string) {
	t.Helper()
	InNetns(t, n, func() error {
		l, err := netlinksafe.LinkByName(ifName)
		if err != nil {
			return err
		}
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		if a.IP.To4() == nil {
			a.Flags = 0x02 // IFA_F_NODAD
		}
		return netlink.AddrAdd(l, a)
	})
}

// Addrs lists an interface's addresses (all families) inside n.
func Addrs(t testing.TB, n ns.NetNS, ifName string) []net.IP {
	t.Helper()
	var ips []net.IP
	InNetns(t, n, func() error {
		l, err := netlinksafe.LinkByName(ifName)
		if err != nil {
			return err
		}
		as, err := netlinksafe.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range as {
			ips = append(ips, a.IP)
		}
		return err
	})
	return ips
}

// WaitLinkLocal waits for the kernel to give ifName in n the EUI-64 IPv6
// link-local address of its current MAC, and returns that MAC. The kernel
// adds the address asynchronously after the link comes up, so a test that
// asserts on the link-local, or snapshots the addresses to compare later,
// must wait for it first: an address that appears mid-test would look like
// a change macguard made.
func WaitLinkLocal(t testing.TB, n ns.NetNS, ifName string) net.HardwareAddr {
	t.Helper()
	mac := MAC(t, n, ifName)
	want := macaddr.LinkLocal(mac)
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, ip := range Addrs(t, n, ifName) {
			if ip.Equal(want) {
				return mac
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kernel never generated the link-local address %s for %s (%s) in %s", want, ifName, mac, n.Path())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Pod is a sandbox namespace whose interface hangs off a node-side
// namespace, as a main plugin would have left it before macguard runs.
type Pod struct {
	Host, NS ns.NetNS
	IfName   string
	// HostIf is the node-side veth name, or the macvlan parent.
	HostIf string
}

// NewVethPod creates a pod with a veth pair: hostIf in host (a fresh
// namespace when host is nil), "eth0" in the pod.
func NewVethPod(t testing.TB, host ns.NetNS, hostIf string) *Pod {
	t.Helper()
	if host == nil {
		host = NewNetns(t)
	}
	p := &Pod{Host: host, NS: NewNetns(t), IfName: "eth0", HostIf: hostIf}
	VethPair(t, host, hostIf, p.NS, p.IfName)
	return p
}

// PrevResult is what a main plugin such as bridge or macvlan returns for
// the pod, in the given cniVersion, reporting mac for the pod interface.
func (p *Pod) PrevResult(version, mac string) string {
	return fmt.Sprintf(`{"cniVersion":%q,"interfaces":[{"name":%q,"mac":"aa:bb:cc:00:00:01"},{"name":%q,"mac":%q,"sandbox":%q}],"ips":[{"address":"10.88.0.2/24","gateway":"10.88.0.1","interface":1}],"dns":{}}`,
		version, p.HostIf, p.IfName, mac, p.NS.Path())
}

// Env is the CNI environment for cmd on this pod.
func (p *Pod) Env(cmd, containerID, cniArgs string) Env {
	return Env{Command: cmd, ContainerID: containerID, Netns: p.NS.Path(), IfName: p.IfName, Args: cniArgs}
}

// Env is the CNI environment of one plugin invocation.
type Env struct {
	Command     string
	ContainerID string
	Netns       string
	IfName      string
	Args        string
	Path        string
	// Roots, when not nil, replaces RootsEnv: the environment entries
	// that set the plugin's allowed roots (a test of the roots themselves).
	Roots []string
}

func (e Env) list() []string {
	path := e.Path
	if path == "" {
		path = "/opt/cni/bin"
	}
	roots := e.Roots
	if roots == nil {
		roots = RootsEnv()
	}
	return append(append(os.Environ(), roots...),
		"CNI_COMMAND="+e.Command, "CNI_CONTAINERID="+e.ContainerID, "CNI_NETNS="+e.Netns,
		"CNI_IFNAME="+e.IfName, "CNI_ARGS="+e.Args, "CNI_PATH="+path)
}

// Run executes a plugin binary like a runtime: config on stdin, CNI_*
// variables in the environment. On failure it returns the CNI error the
// plugin printed; a failure that is not a CNI error fails the test, because
// the spec requires one.
func Run(t testing.TB, bin string, env Env, stdin []byte) (stdout []byte, stderr string, cniErr *types.Error) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = env.list()
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err == nil {
		return out.Bytes(), errb.String(), nil
	}
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("running %s: %v", bin, err)
	}
	var e types.Error
	if jerr := json.Unmarshal(out.Bytes(), &e); jerr != nil || e.Code == 0 {
		t.Fatalf("%s %s failed without a CNI error on stdout (stdout %q, stderr %q): %v", bin, env.Command, out.String(), errb.String(), err)
	}
	return out.Bytes(), errb.String(), &e
}

// PluginBinary returns the plugin under test: $MACGUARD_BIN, or bin/macguard
// in the repository root (found by walking up to go.mod).
func PluginBinary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("MACGUARD_BIN"); b != "" {
		return b
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("%v; set MACGUARD_BIN", err)
	}
	b := filepath.Join(root, "bin", "macguard")
	if _, err := os.Stat(b); err != nil {
		t.Fatalf("plugin binary %s missing: run `make build` (or set MACGUARD_BIN)", b)
	}
	return b
}

// ToolBinary returns macguardctl, the operator's tool: $MACGUARDCTL_BIN, or
// the macguardctl next to PluginBinary (make build puts both in bin/).
func ToolBinary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("MACGUARDCTL_BIN"); b != "" {
		return b
	}
	b := filepath.Join(filepath.Dir(PluginBinary(t)), "macguardctl")
	if _, err := os.Stat(b); err != nil {
		t.Fatalf("macguardctl %s missing: run `make build` (or set MACGUARDCTL_BIN)", b)
	}
	return b
}

// RepoRoot is the directory holding go.mod, above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// RepoFile reads the file at the slash-separated path rel below the
// repository's root, failing the test when it cannot.
func RepoFile(t testing.TB, rel string) []byte {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// MakefileVersion is the VERSION the top-level Makefile builds (`VERSION ?=`),
// which the manifests, the chart and the image must carry.
func MakefileVersion(t testing.TB) string {
	t.Helper()
	b := RepoFile(t, "Makefile")
	m := regexp.MustCompile(`(?m)^VERSION\s*\?=\s*(\S+)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no `VERSION ?= ...` line in the Makefile")
	}
	return string(m[1])
}
