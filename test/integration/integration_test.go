// Package integration runs macguard against this machine's kernel in real
// network namespaces: the binary as a runtime calls it, and the plugin
// package with faults injected into the real link layer.
package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/macguard-cni/macguard/internal/plugintest"
	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/macaddr"
	"github.com/macguard-cni/macguard/pkg/plugin"
)

// pod is a veth pod (node side "veth-host", "eth0" inside) with the
// dataDir its macguard runs use. Pods in one test may share a dataDir, as
// pods on one node do.
type pod struct {
	*testutil.Pod
	dataDir string
}

func newVethPod(t *testing.T) *pod {
	return &pod{Pod: testutil.NewVethPod(t, nil, "veth-host"), dataDir: filepath.Join(t.TempDir(), "state")}
}

func (p *pod) conf(version, fields, prev string) []byte {
	return testutil.Conf(version, p.dataDir, fields, prev)
}

func (p *pod) mac(t *testing.T) string { return macaddr.String(testutil.MAC(t, p.NS, p.IfName)) }

const podArgs = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=u1"

func TestVethAssignAlwaysAddCheckDel(t *testing.T) {
	bin := testutil.PluginBinary(t)
	for _, version := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(version, func(t *testing.T) {
			p := newVethPod(t)
			orig := p.mac(t)
			want := macaddr.Derive(macaddr.Input{Kind: "pod", Key: "default/web-0", IfName: "eth0"}).String()
			conf := p.conf(version, `"assign":"always"`, p.PrevResult(version, orig))
			out, stderr, cniErr := testutil.Run(t, bin, p.Env("ADD", "c1", podArgs), conf)
			if cniErr != nil {
				t.Fatalf("ADD: %v", cniErr)
			}
			if got := p.mac(t); got != want {
				t.Fatalf("interface MAC %s, want derived %s", got, want)
			}
			if got, err := testutil.ResultMAC(out, "eth0", p.NS.Path()); err != nil || got != want {
				t.Fatalf("result MAC %s (%v), want %s", got, err, want)
			}
			if !strings.Contains(stderr, "old="+orig) || !strings.Contains(stderr, "new="+want) {
				t.Fatalf("log line lacks old -> new: %s", stderr)
			}
			if files := testutil.StateRecords(t, p.dataDir); len(files) != 1 {
				t.Fatalf("want one state file, have %v", files)
			}
			if version >= "0.4.0" {
				check := p.conf(version, `"assign":"always"`, string(out))
				if _, _, cniErr := testutil.Run(t, bin, p.Env("CHECK", "c1", podArgs), check); cniErr != nil {
					t.Fatalf("CHECK: %v", cniErr)
				}
			}
			if _, _, cniErr := testutil.Run(t, bin, p.Env("DEL", "c1", podArgs), p.conf(version, `"assign":"always"`, "")); cniErr != nil {
				t.Fatalf("DEL: %v", cniErr)
			}
			if got := p.mac(t); got != orig {
				t.Fatalf("DEL left %s, want original %s", got, orig)
			}
			if files := testutil.StateRecords(t, p.dataDir); len(files) != 0 {
				t.Fatalf("state left after DEL: %v", files)
			}
		})
	}
}

func TestVethRequestedMACSources(t *testing.T) {
	bin := testutil.PluginBinary(t)
	tests := []struct {
		name, fields, args, want string
	}{
		{"config", `"mac":"0a:58:00:00:00:01"`, "", "0a:58:00:00:00:01"},
		{"CNI_ARGS", ``, "IgnoreUnknown=1;MAC=0A-58-00-00-00-02", "0a:58:00:00:00:02"},
		{"runtimeConfig", `"runtimeConfig":{"mac":"0A:58:00:00:00:03"}`, "MAC=0a:58:00:00:00:02", "0a:58:00:00:00:03"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newVethPod(t)
			out, _, cniErr := testutil.Run(t, bin, p.Env("ADD", "c1", tt.args), p.conf("1.0.0", tt.fields, p.PrevResult("1.0.0", p.mac(t))))
			if cniErr != nil {
				t.Fatalf("ADD: %v", cniErr)
			}
			res, err := testutil.ResultMAC(out, "eth0", p.NS.Path())
			if err != nil {
				t.Fatal(err)
			}
			if p.mac(t) != tt.want || res != tt.want {
				t.Fatalf("link %s result %s, want %s", p.mac(t), res, tt.want)
			}
		})
	}
}

func TestPassThroughIsByteForByte(t *testing.T) {
	bin := testutil.PluginBinary(t)
	p := newVethPod(t)
	orig := p.mac(t)
	prev := p.PrevResult("1.0.0", orig)
	out, _, cniErr := testutil.Run(t, bin, p.Env("ADD", "c1", podArgs), p.conf("1.0.0", "", prev))
	if cniErr != nil {
		t.Fatalf("ADD: %v", cniErr)
	}
	if got := string(bytes.TrimSpace(out)); got != prev {
		t.Fatalf("pass-through changed the result:\n got %s\nwant %s", got, prev)
	}
	if p.mac(t) != orig {
		t.Fatal("pass-through changed the MAC")
	}
	if _, err := os.Stat(p.dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("pass-through wrote state")
	}
}

func TestMacvlanRequestedAndInUse(t *testing.T) {
	bin := testutil.PluginBinary(t)
	host := testutil.NewNetns(t)
	a, b := testutil.NewNetns(t), testutil.NewNetns(t)
	// The parent is one end of a veth pair inside the node namespace, so the
	// test never touches a real NIC.
	parentPeer := testutil.NewNetns(t)
	testutil.VethPair(t, host, "parent0", parentPeer, "uplink")
	testutil.Macvlan(t, host, "parent0", a, "net1", netlink.MACVLAN_MODE_BRIDGE)
	testutil.Macvlan(t, host, "parent0", b, "net1", netlink.MACVLAN_MODE_BRIDGE)
	dataDir := filepath.Join(t.TempDir(), "state")
	const want = "0a:58:0a:0a:0a:01"
	conf := func(n ns.NetNS) []byte {
		// What the macvlan plugin returns: the sandbox interface only.
		prev := fmt.Sprintf(`{"cniVersion":"1.0.0","interfaces":[{"name":"net1","mac":%q,"sandbox":%q}]}`, macaddr.String(testutil.MAC(t, n, "net1")), n.Path())
		return testutil.Conf("1.0.0", dataDir, fmt.Sprintf(`"runtimeConfig":{"mac":%q}`, strings.ToUpper(want)), prev)
	}
	env := func(n ns.NetNS, cmd, cid string) testutil.Env {
		return testutil.Env{Command: cmd, ContainerID: cid, Netns: n.Path(), IfName: "net1"}
	}
	out, _, cniErr := testutil.Run(t, bin, env(a, "ADD", "pod-a"), conf(a))
	if cniErr != nil {
		t.Fatalf("ADD pod-a: %v", cniErr)
	}
	res, err := testutil.ResultMAC(out, "net1", a.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got := macaddr.String(testutil.MAC(t, a, "net1")); got != want || res != want {
		t.Fatalf("pod-a MAC %s, result %s; want %s", got, res, want)
	}
	before := macaddr.String(testutil.MAC(t, b, "net1"))
	_, _, cniErr = testutil.Run(t, bin, env(b, "ADD", "pod-b"), conf(b))
	if cniErr == nil || cniErr.Code != plugin.ErrCodeAddrInUse {
		t.Fatalf("second pod with the same MAC: got %v, want code %d", cniErr, plugin.ErrCodeAddrInUse)
	}
	if !strings.Contains(cniErr.Msg, want) || !strings.Contains(cniErr.Msg, "already uses it") {
		t.Fatalf("message does not explain: %s", cniErr.Msg)
	}
	if got := macaddr.String(testutil.MAC(t, b, "net1")); got != before {
		t.Fatalf("pod-b MAC changed to %s after a failed ADD", got)
	}
	if files := testutil.StateRecords(t, dataDir); len(files) != 1 || files[0] != testutil.RecordName("reliability", "pod-a", "net1") {
		t.Fatalf("state after failed ADD: %v, want only pod-a's", files)
	}
}

func TestLinkLocalReplacedAndRestored(t *testing.T) {
	bin := testutil.PluginBinary(t)
	p := newVethPod(t)
	orig := testutil.WaitLinkLocal(t, p.NS, "eth0")
	hasLL := func(mac net.HardwareAddr) bool {
		for _, ip := range testutil.Addrs(t, p.NS, "eth0") {
			if ip.Equal(macaddr.LinkLocal(mac)) {
				return true
			}
		}
		return false
	}
	if _, _, cniErr := testutil.Run(t, bin, p.Env("ADD", "c1", ""), p.conf("1.0.0", `"mac":"0a:58:00:00:00:42"`, p.PrevResult("1.0.0", orig.String()))); cniErr != nil {
		t.Fatalf("ADD: %v", cniErr)
	}
	if hasLL(orig) || !hasLL(macaddr.MustParse("0a:58:00:00:00:42")) {
		t.Fatalf("link-local not replaced: %v", testutil.Addrs(t, p.NS, "eth0"))
	}
	if _, _, cniErr := testutil.Run(t, bin, p.Env("DEL", "c1", ""), p.conf("1.0.0", "", "")); cniErr != nil {
		t.Fatalf("DEL: %v", cniErr)
	}
	if !hasLL(orig) || hasLL(macaddr.MustParse("0a:58:00:00:00:42")) {
		t.Fatalf("link-local not restored on DEL: %v", testutil.Addrs(t, p.NS, "eth0"))
	}
}

func TestCheckFailsAfterDrift(t *testing.T) {
	bin := testutil.PluginBinary(t)
	p := newVethPod(t)
	out, _, cniErr := testutil.Run(t, bin, p.Env("ADD", "c1", ""), p.conf("1.0.0", `"mac":"0a:58:00:00:00:44"`, p.PrevResult("1.0.0", p.mac(t))))
	if cniErr != nil {
		t.Fatalf("ADD: %v", cniErr)
	}
	check := p.conf("1.0.0", `"mac":"0a:58:00:00:00:44"`, string(out))
	if _, _, cniErr := testutil.Run(t, bin, p.Env("CHECK", "c1", ""), check); cniErr != nil {
		t.Fatalf("CHECK before drift: %v", cniErr)
	}
	testutil.SetMAC(t, p.NS, "eth0", macaddr.MustParse("0a:58:00:00:00:99"))
	_, _, cniErr = testutil.Run(t, bin, p.Env("CHECK", "c1", ""), check)
	if cniErr == nil || cniErr.Code != plugin.ErrCodeCheckMismatch || !strings.Contains(cniErr.Msg, "0a:58:00:00:00:99") {
		t.Fatalf("CHECK after drift: got %v, want code %d naming the current MAC", cniErr, plugin.ErrCodeCheckMismatch)
	}
	// DEL must not "restore" over a MAC somebody else set.
	if _, _, cniErr := testutil.Run(t, bin, p.Env("DEL", "c1", ""), p.conf("1.0.0", "", "")); cniErr != nil {
		t.Fatalf("DEL: %v", cniErr)
	}
	if p.mac(t) != "0a:58:00:00:00:99" {
		t.Fatalf("DEL overwrote a MAC it did not set: %s", p.mac(t))
	}
}

func TestGCRemovesOnlyStaleState(t *testing.T) {
	bin := testutil.PluginBinary(t)
	live, stale := newVethPod(t), newVethPod(t)
	stale.dataDir = live.dataDir
	for _, x := range []struct {
		p   *pod
		cid string
	}{{live, "live"}, {stale, "stale"}} {
		if _, _, cniErr := testutil.Run(t, bin, x.p.Env("ADD", x.cid, ""), x.p.conf("1.1.0", `"assign":"always"`, x.p.PrevResult("1.1.0", x.p.mac(t)))); cniErr != nil {
			t.Fatalf("ADD %s: %v", x.cid, cniErr)
		}
	}
	gc := live.conf("1.1.0", `"cni.dev/valid-attachments":[{"containerID":"live","ifname":"eth0"}]`, "")
	if _, _, cniErr := testutil.Run(t, bin, testutil.Env{Command: "GC"}, gc); cniErr != nil {
		t.Fatalf("GC: %v", cniErr)
	}
	if files := testutil.StateRecords(t, live.dataDir); len(files) != 1 || files[0] != testutil.RecordName("reliability", "live", "eth0") {
		t.Fatalf("after GC: %v", files)
	}
	if _, _, cniErr := testutil.Run(t, bin, testutil.Env{Command: "STATUS"}, gc); cniErr != nil {
		t.Fatalf("STATUS: %v", cniErr)
	}
}

// faultyNetns wraps the real link layer and fails the link-local swap, the
// step right after the kernel accepted the new MAC.
type faultyNetns struct{ link.Netns }

func (faultyNetns) SwapLinkLocal(string, net.HardwareAddr, net.HardwareAddr) (bool, error) {
	return false, errors.New("injected failure after the MAC change")
}

func TestRollbackAfterMACChange(t *testing.T) {
	p := newVethPod(t)
	testutil.AddAddr(t, p.NS, "eth0", "10.88.0.2/24")
	// The snapshot must include the kernel's link-local: if it arrived after
	// the snapshot, the comparison below would blame the rollback for it.
	orig := macaddr.String(testutil.WaitLinkLocal(t, p.NS, "eth0"))
	addrsBefore := fmt.Sprint(testutil.Addrs(t, p.NS, "eth0"))
	pl, stdout, _ := plugintest.WrappedPlugin(func(n link.Netns) link.Netns { return faultyNetns{n} })
	err := pl.Add(&skel.CmdArgs{ContainerID: "c1", Netns: p.NS.Path(), IfName: "eth0",
		StdinData: p.conf("1.0.0", `"assign":"always"`, p.PrevResult("1.0.0", orig))})
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || !strings.Contains(cniErr.Msg, "injected failure") {
		t.Fatalf("want the injected failure as a CNI error, got %v", err)
	}
	if got := p.mac(t); got != orig {
		t.Fatalf("MAC %s after failed ADD, want original %s", got, orig)
	}
	if after := fmt.Sprint(testutil.Addrs(t, p.NS, "eth0")); after != addrsBefore {
		t.Fatalf("addresses changed: %s -> %s", addrsBefore, after)
	}
	if files := testutil.StateRecords(t, p.dataDir); len(files) != 0 {
		t.Fatalf("state left: %v", files)
	}
	if stdout.Len() != 0 {
		t.Fatalf("failed ADD printed a result: %s", stdout.String())
	}
}

func TestInterfaceMissingNamesExisting(t *testing.T) {
	bin := testutil.PluginBinary(t)
	p := newVethPod(t)
	env := p.Env("ADD", "c1", "")
	env.IfName = "net7"
	_, _, cniErr := testutil.Run(t, bin, env, p.conf("1.0.0", "", p.PrevResult("1.0.0", p.mac(t))))
	if cniErr == nil || cniErr.Code != plugin.ErrCodeInterfaceNotFound || !strings.Contains(cniErr.Msg, "eth0") || !strings.Contains(cniErr.Msg, "net7") {
		t.Fatalf("got %v, want code %d naming net7 and the existing eth0", cniErr, plugin.ErrCodeInterfaceNotFound)
	}
}

// TestRefusesNodeNamespace: skel compares CNI_NETNS with the plugin's own
// namespace only after ADD ran, so macguard must refuse first.
func TestRefusesNodeNamespace(t *testing.T) {
	bin := testutil.PluginBinary(t)
	node := testutil.NewNetns(t)
	peer := testutil.NewNetns(t)
	testutil.VethPair(t, node, "node0", peer, "eth0")
	before := macaddr.String(testutil.MAC(t, node, "node0"))
	var cniErr *types.Error
	testutil.InNetns(t, node, func() error {
		// Run the binary from inside the "node" namespace, pointing
		// CNI_NETNS at that same namespace.
		conf := testutil.Conf("1.0.0", t.TempDir(), `"mac":"0a:58:00:00:00:01"`, `{"cniVersion":"1.0.0"}`)
		_, _, cniErr = testutil.Run(t, bin, testutil.Env{Command: "ADD", ContainerID: "c1", Netns: node.Path(), IfName: "node0"}, conf)
		return nil
	})
	if cniErr == nil || cniErr.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(cniErr.Msg, "plugin's own") {
		t.Fatalf("got %v, want code 4 refusing the plugin's own namespace", cniErr)
	}
	if after := macaddr.String(testutil.MAC(t, node, "node0")); after != before {
		t.Fatalf("node interface changed %s -> %s", before, after)
	}
}
