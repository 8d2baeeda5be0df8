package vm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/macguard-cni/macguard/internal/testutil"
)

const (
	cniVersion = "1.0.0"
	netName    = "vmtest"
	podIf      = "eth0"
)

// node is one simulated node, testutil's Node (the namespace where
// plugins run and host-side devices live, its NETCONFPATH, host-local's
// and macguard's files), to which this suite adds running the binaries in
// it directly.
type node struct{ *testutil.Node }

func newNode(t *testing.T) *node {
	t.Helper()
	return &node{testutil.NewNode(t)}
}

// run executes a program inside the node namespace. The child inherits the
// namespace of the OS thread that forks it, which ns.Do locks and switches.
func (n *node) run(bin string, env []string, stdin []byte, args ...string) (stdout []byte, stderr string, err error) {
	var out, errb bytes.Buffer
	err = n.NS.Do(func(ns.NetNS) error {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, testutil.RootsEnv()...), env...)
		cmd.Stdin = bytes.NewReader(stdin)
		cmd.Stdout, cmd.Stderr = &out, &errb
		return cmd.Run()
	})
	return out.Bytes(), errb.String(), err
}

// cniCall is the environment of one plugin invocation.
type cniCall struct {
	command, containerID, netns, args, path string
}

func (c cniCall) env() []string {
	if c.path == "" {
		// Required by skel even when the plugin delegates to nothing.
		c.path = "/opt/cni/bin"
	}
	return []string{"CNI_COMMAND=" + c.command, "CNI_CONTAINERID=" + c.containerID, "CNI_NETNS=" + c.netns,
		"CNI_IFNAME=" + podIf, "CNI_ARGS=" + c.args, "CNI_PATH=" + c.path}
}

// outcome is what a plugin invocation left: its result on success, or the
// CNI error it printed.
type outcome struct {
	stdout []byte
	stderr string
	err    *types.Error
}

// plugin runs a CNI plugin binary as a runtime does: config on stdin,
// CNI_* in the environment, inside the node namespace. A failure that does
// not print a CNI error fails the test, because the spec requires one.
func (n *node) plugin(t *testing.T, bin string, c cniCall, stdin []byte) outcome {
	t.Helper()
	stdout, stderr, err := n.run(bin, c.env(), stdin)
	o := outcome{stdout: stdout, stderr: stderr}
	if err == nil {
		return o
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("running %s %s: %v", filepath.Base(bin), c.command, err)
	}
	var e types.Error
	if jerr := json.Unmarshal(stdout, &e); jerr != nil || e.Code == 0 {
		t.Fatalf("%s %s failed without a CNI error on stdout (stdout %q, stderr %q): %v",
			filepath.Base(bin), c.command, stdout, stderr, err)
	}
	o.err = &e
	return o
}

// mustSucceed fails the test when the invocation returned a CNI error.
func (o outcome) mustSucceed(t *testing.T, what string) []byte {
	t.Helper()
	if o.err != nil {
		t.Fatalf("%s: code %d: %s (details %q; stderr %s)", what, o.err.Code, o.err.Msg, o.err.Details, o.stderr)
	}
	return o.stdout
}

// macguardConf is macguard's entry in a conflist as the runtime hands it
// over: the plugin's fields, the node's dataDir/logFile, prevResult and
// (when a capability is set) runtimeConfig.
func (n *node) macguardConf(t *testing.T, fields map[string]any, prev []byte, runtimeConfig map[string]any) []byte {
	t.Helper()
	c := map[string]any{"cniVersion": cniVersion, "name": netName}
	maps.Copy(c, fields)
	c = n.MacguardEntry(c)
	if prev != nil {
		c["prevResult"] = json.RawMessage(prev)
	}
	if runtimeConfig != nil {
		c["runtimeConfig"] = runtimeConfig
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("encoding the macguard config: %v", err)
	}
	return b
}

// warnings returns the WARN lines of macguard's log. After an ADD that
// changed a MAC there should be none: one would mean, for example, that
// announcing the new MAC failed on this kernel.
func (n *node) warnings(t *testing.T) []string {
	t.Helper()
	var w []string
	for _, l := range n.LogLines(t) {
		if l["level"] == "WARN" {
			w = append(w, fmt.Sprint(l))
		}
	}
	return w
}

// linkState is everything about the pod interface a failed or skipped ADD
// must leave alone.
type linkState struct {
	Kind, NetkitMode, MAC string
	Up                    bool
	MTU                   int
	Addrs                 []string
}

func readLinkState(t *testing.T, pod ns.NetNS, ifName string) linkState {
	t.Helper()
	var s linkState
	testutil.InNetns(t, pod, func() error {
		l, err := netlinksafe.LinkByName(ifName)
		if err != nil {
			return fmt.Errorf("reading %s: %w", ifName, err)
		}
		a := l.Attrs()
		s = linkState{Kind: l.Type(), MAC: macString(a.HardwareAddr), Up: a.Flags&net.FlagUp != 0, MTU: a.MTU}
		if nk, ok := l.(*netlink.Netkit); ok {
			s.NetkitMode = netkitMode(nk.Mode)
		}
		addrs, err := netlinksafe.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("listing addresses of %s: %w", ifName, err)
		}
		for _, ad := range addrs {
			s.Addrs = append(s.Addrs, ad.IPNet.String())
		}
		sort.Strings(s.Addrs)
		return nil
	})
	return s
}

func netkitMode(m netlink.NetkitMode) string {
	switch m {
	case netlink.NETKIT_MODE_L2:
		return "l2"
	case netlink.NETKIT_MODE_L3:
		return "l3"
	}
	return fmt.Sprintf("mode%d", m)
}

// macString normalizes a MAC: lowercase with colons, "" for none. An
// all-zero address (what `ip link` shows for an L3 netkit) counts as none,
// as it does for the plugin.
func macString(hw net.HardwareAddr) string {
	if len(hw) == 0 || bytes.Equal(hw, make(net.HardwareAddr, len(hw))) {
		return ""
	}
	return hw.String()
}

func mustMAC(t *testing.T, s string) string {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		t.Fatalf("%q is not a MAC: %v", s, err)
	}
	return macString(hw)
}

// podMAC reads the pod interface's MAC from the kernel.
func podMAC(t *testing.T, pod ns.NetNS) string {
	t.Helper()
	return macString(testutil.MAC(t, pod, podIf))
}

// sandboxEntry returns the index and MAC of the result's entry for the pod
// interface in sandbox; it fails the test when there is none.
func sandboxEntry(t *testing.T, out []byte, sandbox string) (int, string) {
	t.Helper()
	r := testutil.ParseResult(t, out)
	for i, in := range r.Interfaces {
		if in.Name == podIf && in.Sandbox == sandbox {
			return i, in.Mac
		}
	}
	t.Fatalf("result has no interface entry {name %s, sandbox %s}: %s", podIf, sandbox, out)
	return 0, ""
}

// sameJSON reports whether two JSON documents are equal as values (key
// order and spacing aside).
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("not JSON: %v: %s", err, a)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

// derivedMAC asks macguardctl which MAC the pod interface of a pod (a
// virt-launcher pod for a VM) gets: the operator-facing promise the data
// path must keep.
func derivedMAC(t *testing.T, namespace, pod string) string {
	t.Helper()
	return testutil.DerivedMAC(t, "--namespace", namespace, "--pod", pod, "--ifname", podIf)
}

// requireContains fails unless s contains every fragment.
func requireContains(t *testing.T, what, s string, fragments ...string) {
	t.Helper()
	for _, f := range fragments {
		if !strings.Contains(s, f) {
			t.Errorf("%s does not mention %q: %s", what, f, s)
		}
	}
}
