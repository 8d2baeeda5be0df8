package vm

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// pluginDir gathers the chain's plugins under the names a conflist uses,
// wherever the binaries were built.
func pluginDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, path := range map[string]string{
		"macguard":   testutil.PluginBinary(t),
		"netkit-cni": tool(t, "netkit-cni"),
		"host-local": tool(t, "host-local"),
		"ipvlan":     tool(t, "ipvlan"),
		"macvlan":    tool(t, "macvlan"),
	} {
		if err := os.Symlink(path, filepath.Join(dir, name)); err != nil {
			t.Fatalf("linking %s into CNI_PATH: %v", name, err)
		}
	}
	return dir
}

// chain is one conflist in the node's NETCONFPATH and the cnitool that
// runs it inside the node namespace, as a runtime on that node would.
type chain struct {
	name string
	n    *node
	tool *testutil.CNITool
}

// newChain writes a conflist named name whose plugins are the given
// entries; the first one's IPAM should be ch.hostLocal.
func (n *node) newChain(t *testing.T, name string, plugins ...func(*chain) map[string]any) *chain {
	t.Helper()
	ch := &chain{name: name, n: n, tool: n.CNITool(tool(t, "cnitool"), pluginDir(t))}
	var list []map[string]any
	for _, p := range plugins {
		list = append(list, p(ch))
	}
	n.WriteConfList(t, map[string]any{"cniVersion": "1.1.0", "name": name, "plugins": list})
	return ch
}

// hostLocal is the IPAM section for a main plugin of the chain.
func (ch *chain) hostLocal(subnet string) map[string]any { return ch.n.HostLocal(subnet) }

// macguardEntry is macguard's entry in a conflist, writing to the node's
// dataDir and logFile.
func (n *node) macguardEntry(fields map[string]any) func(*chain) map[string]any {
	return func(*chain) map[string]any { return n.MacguardEntry(fields) }
}

// run is `cnitool <cmd> <chain> <pod netns>`.
func (ch *chain) run(t *testing.T, cmd string, pod ns.NetNS, call testutil.Call) testutil.CNIToolRun {
	t.Helper()
	return ch.tool.Run(t, cmd, ch.name, pod.Path(), call)
}

// leases lists the addresses host-local holds for the chain.
func (ch *chain) leases(t *testing.T) []string {
	t.Helper()
	return ch.n.Leases(t, ch.name)
}

// The whole chain as a runtime runs it: cnitool (libcni, what Multus uses
// to call delegates) executes netkit-cni with host-local IPAM and then the
// macguard binary on the real netkit device, and CHECK and DEL through the
// same list.
func TestCnitoolChainOnNetkit(t *testing.T) {
	requireKernel(t, "netkit")
	const requested = "0a:58:0a:63:01:0a"
	launcher := "virt-launcher-vm2-abcde"

	tests := []struct {
		name     string
		mode     string
		macguard map[string]any
		capArgs  string
		// want is the pod MAC after ADD ("" for none); wantErr lists
		// fragments of the failure cnitool must report instead.
		want    func(t *testing.T) string
		wantErr []string
		// wantLog is the level of macguard's log line for this ADD: proof
		// that the binary ran, even where its result is a pass-through.
		wantLog string
	}{
		{
			name: "netkit-l2 requested MAC via CAP_ARGS", mode: "l2",
			macguard: map[string]any{"capabilities": map[string]any{"mac": true}},
			capArgs:  `{"mac":"` + requested + `"}`,
			want:     func(*testing.T) string { return requested },
			wantLog:  "INFO",
		},
		{
			name: "netkit-l2 assign always", mode: "l2",
			macguard: map[string]any{"assign": "always"},
			want:     func(t *testing.T) string { return derivedMAC(t, "vms", launcher) },
			wantLog:  "INFO",
		},
		{
			name: "netkit-l3 onUnsupported skip", mode: "l3",
			macguard: map[string]any{"onUnsupported": "skip"},
			want:     func(*testing.T) string { return "" },
			wantLog:  "WARN",
		},
		{
			name: "netkit-l3 default config fails", mode: "l3",
			macguard: map[string]any{},
			wantErr:  []string{"netkit-l2", "macAddress"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			pod := testutil.NewNetns(t)
			ch := n.newChain(t, "vmchain", func(ch *chain) map[string]any {
				return map[string]any{"type": "netkit-cni", "mode": tc.mode, "ipam": ch.hostLocal("10.99.1.0/24")}
			}, n.macguardEntry(tc.macguard))
			call := testutil.Call{IfName: podIf, CNIArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=vms;K8S_POD_NAME=" + launcher,
				CapArgs: tc.capArgs}
			// Whatever happens below, tear the chain down, as a runtime
			// would: DEL must succeed and remove the pod interface.
			t.Cleanup(func() {
				if run := ch.run(t, "del", pod, call); run.Err != nil {
					t.Errorf("%v", run)
				}
				if _, err := podLink(t, pod); err == nil {
					t.Errorf("%s still exists after cnitool del", podIf)
				}
			})

			run := ch.run(t, "add", pod, call)
			out := run.Stdout
			if tc.wantErr != nil {
				if run.Err == nil {
					t.Fatalf("cnitool add succeeded on netkit L3 (result %s)", out)
				}
				requireContains(t, "cnitool's error", run.Stderr, tc.wantErr...)
				s := readLinkState(t, pod, podIf)
				if s.Kind != "netkit" || s.MAC != "" {
					t.Errorf("after the failed ADD the pod interface is %+v, want the untouched netkit L3 device", s)
				}
				if files := n.Records(t); len(files) != 0 {
					t.Errorf("the failed ADD left state in dataDir: %v", files)
				}
				return
			}
			if run.Err != nil {
				t.Fatalf("%v", run)
			}
			want := tc.want(t)
			s := readLinkState(t, pod, podIf)
			if s.Kind != "netkit" || s.NetkitMode != tc.mode {
				t.Fatalf("pod interface is %s mode %q, want netkit %s: the chain did not run on netkit", s.Kind, s.NetkitMode, tc.mode)
			}
			if s.MAC != want {
				t.Errorf("interface MAC %q, want %q", s.MAC, want)
			}
			if _, resMAC := sandboxEntry(t, out, pod.Path()); resMAC != want {
				t.Errorf("result reports MAC %q, want %q: %s", resMAC, want, out)
			}
			ip := leasedIP(t, out, "10.99.1.")
			if !containsAddr(s.Addrs, ip) {
				t.Errorf("pod interface addresses %v lack the leased %s", s.Addrs, ip)
			}
			if !n.logged(t, tc.wantLog) {
				t.Errorf("macguard's logFile has no %s line for %s:\n%s", tc.wantLog, podIf, n.ReadLog(t))
			}
			if run := ch.run(t, "check", pod, call); run.Err != nil {
				t.Errorf("%v", run)
			}
			if run := ch.run(t, "del", pod, call); run.Err != nil {
				t.Fatalf("%v", run)
			}
			if leases := ch.leases(t); len(leases) != 0 {
				t.Errorf("host-local still holds %v after DEL", leases)
			}
			if files := n.Records(t); len(files) != 0 {
				t.Errorf("DEL left macguard state: %v", files)
			}
		})
	}
}

// Scenario 6 of the e2e suite, which skips on a host without ipvlan: the
// reference ipvlan plugin (its slaves share the parent's MAC) and macguard
// with a MAC requested through CAP_ARGS, through cnitool. ADD must fail with
// macguard's advice and leave the interface as ipvlan made it; the DEL a
// runtime sends after a failed ADD must then clean everything up.
func TestCnitoolChainIPvlanRequestedMACIsRefused(t *testing.T) {
	requireKernel(t, "veth", "ipvlan")
	n := newNode(t)
	pod := testutil.NewNetns(t)
	n.uplink(t, "uplink")
	parentMAC := n.linkMAC(t, "uplink")
	ch := n.newChain(t, "ipvlanchain", func(ch *chain) map[string]any {
		return map[string]any{"type": "ipvlan", "master": "uplink", "mode": "l2", "ipam": ch.hostLocal("10.99.4.0/24")}
	}, n.macguardEntry(map[string]any{"capabilities": map[string]any{"mac": true}}))
	const requested = "0a:58:0a:63:04:0a"
	call := testutil.Call{IfName: podIf, CNIArgs: testutil.PodArgs("default", "web-0", "infra-ipvlan", "uid-web-0"),
		CapArgs: `{"mac":"` + requested + `"}`}
	n.delOnCleanup(t, ch, pod, call)

	run := ch.run(t, "add", pod, call)
	if run.Err == nil {
		t.Fatalf("cnitool add succeeded on ipvlan with a requested MAC: %v", run)
	}
	t.Logf("cnitool add failed, as it must: %s", strings.TrimSpace(run.Stderr))
	// libcni reports which plugin failed; the message is macguard's, with
	// the reason, the advice, and what and where was requested.
	requireContains(t, "cnitool's error", run.Stderr, `type="macguard"`, "ipvlan", "shares its parent's MAC", "macvlan",
		podIf, pod.Path(), requested, "runtimeConfig.mac")
	leases := ch.leases(t)
	if len(leases) != 1 {
		t.Fatalf("host-local holds %v, want the one lease ipvlan's ADD took", leases)
	}
	s := readLinkState(t, pod, podIf)
	if s.Kind != "ipvlan" || s.MAC != parentMAC || !containsAddr(s.Addrs, net.ParseIP(leases[0])) {
		t.Errorf("after the failed ADD the pod interface is %+v, want the ipvlan as the plugin made it (parent MAC %s, address %s)",
			s, parentMAC, leases[0])
	}
	if got := n.linkMAC(t, "uplink"); got != parentMAC {
		t.Errorf("the failed ADD changed the parent's MAC: %s, was %s", got, parentMAC)
	}
	if files := n.Records(t); len(files) != 0 {
		t.Errorf("the failed ADD left state in dataDir: %v", files)
	}

	n.delLeavesNothing(t, ch, pod, call, parentMAC)
}

// The remedy the ipvlan error points to: the reference macvlan plugin
// (which does not declare the mac capability here, so only macguard gets
// runtimeConfig.mac) and macguard with a MAC requested through CAP_ARGS.
func TestCnitoolChainMacvlanRequestedMAC(t *testing.T) {
	requireKernel(t, "veth", "macvlan")
	n := newNode(t)
	pod := testutil.NewNetns(t)
	n.uplink(t, "uplink")
	parentMAC := n.linkMAC(t, "uplink")
	ch := n.newChain(t, "macvlanchain", func(ch *chain) map[string]any {
		return map[string]any{"type": "macvlan", "master": "uplink", "mode": "bridge", "ipam": ch.hostLocal("10.99.5.0/24")}
	}, n.macguardEntry(map[string]any{"capabilities": map[string]any{"mac": true}}))
	const requested = "0a:58:0a:63:05:0a"
	call := testutil.Call{IfName: podIf, CNIArgs: testutil.PodArgs("default", "web-0", "infra-macvlan", "uid-web-0"),
		CapArgs: `{"mac":"` + strings.ToUpper(requested) + `"}`}
	n.delOnCleanup(t, ch, pod, call)

	run := ch.run(t, "add", pod, call)
	if run.Err != nil {
		t.Fatalf("%v", run)
	}
	out := run.Stdout
	s := readLinkState(t, pod, podIf)
	if s.Kind != "macvlan" || s.MAC != requested {
		t.Errorf("pod interface is %s with MAC %q, want macvlan with the requested %s", s.Kind, s.MAC, requested)
	}
	if _, resMAC := sandboxEntry(t, out, pod.Path()); resMAC != requested {
		t.Errorf("result reports MAC %q, want %s: %s", resMAC, requested, out)
	}
	ip := leasedIP(t, out, "10.99.5.")
	if !containsAddr(s.Addrs, ip) {
		t.Errorf("pod interface addresses %v lack the leased %s", s.Addrs, ip)
	}
	if files := n.Records(t); len(files) != 1 {
		t.Errorf("dataDir holds %v, want one record of macvlan's MAC", files)
	}
	if w := n.warnings(t); len(w) != 0 {
		t.Errorf("ADD logged warnings: %q", w)
	}
	if run := ch.run(t, "check", pod, call); run.Err != nil {
		t.Errorf("%v", run)
	}
	n.delLeavesNothing(t, ch, pod, call, parentMAC)
}

// delOnCleanup runs cnitool del once more when the test ends, also after
// a failure half-way: on the host the chain's libcni cache entry lives in
// the real /var/lib/cni and must not stay behind. DEL is idempotent, so
// after the test's own DEL this one must succeed as well.
func (n *node) delOnCleanup(t *testing.T, ch *chain, pod ns.NetNS, call testutil.Call) {
	t.Cleanup(func() {
		if run := ch.run(t, "del", pod, call); run.Err != nil {
			t.Errorf("%v", run)
		}
	})
}

// leasedIP returns the result's one IP and fails unless host-local leased
// it from the subnet starting with prefix.
func leasedIP(t *testing.T, out []byte, prefix string) net.IP {
	t.Helper()
	r := testutil.ParseResult(t, out)
	if len(r.IPs) != 1 {
		t.Fatalf("result has %d IPs, want the one host-local leased: %s", len(r.IPs), out)
	}
	ip, _, err := net.ParseCIDR(r.IPs[0].Address)
	if err != nil || !strings.HasPrefix(ip.String(), prefix) {
		t.Fatalf("result IP %q is not from host-local's %s0/24: %v", r.IPs[0].Address, prefix, err)
	}
	return ip
}

// logged reports whether macguard's log has a line at level for the pod
// interface.
func (n *node) logged(t *testing.T, level string) bool {
	t.Helper()
	for _, line := range strings.Split(n.ReadLog(t), "\n") {
		if strings.Contains(line, "level="+level) && strings.Contains(line, "ifname="+podIf) {
			return true
		}
	}
	return false
}

func containsAddr(addrs []string, ip net.IP) bool {
	for _, a := range addrs {
		if got, _, err := net.ParseCIDR(a); err == nil && got.Equal(ip) {
			return true
		}
	}
	return false
}

// podLink looks the pod interface up without failing the test: used to
// assert that it is gone.
func podLink(t *testing.T, pod ns.NetNS) (netlink.Link, error) {
	t.Helper()
	var l netlink.Link
	err := pod.Do(func(ns.NetNS) (err error) {
		l, err = netlinksafe.LinkByName(podIf)
		return err
	})
	return l, err
}

// delLeavesNothing runs cnitool del for an uplink-parented chain and checks
// that nothing of the attachment is left: no pod interface, no lease, no
// state record, and the parent's MAC as it was before the chain ran.
func (n *node) delLeavesNothing(t *testing.T, ch *chain, pod ns.NetNS, call testutil.Call, parentMAC string) {
	t.Helper()
	if run := ch.run(t, "del", pod, call); run.Err != nil {
		t.Fatalf("%v", run)
	}
	if _, err := podLink(t, pod); err == nil {
		t.Errorf("%s still exists after cnitool del", podIf)
	}
	if leases := ch.leases(t); len(leases) != 0 {
		t.Errorf("host-local still holds %v after DEL", leases)
	}
	if got := n.linkMAC(t, "uplink"); got != parentMAC {
		t.Errorf("the parent's MAC is %s after DEL, was %s", got, parentMAC)
	}
	if files := n.Records(t); len(files) != 0 {
		t.Errorf("DEL left state in dataDir: %v", files)
	}
}
