package vm

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// uplink creates a veth pair inside the node namespace, both ends up, and
// returns the index of the end named name: a stand-in for the node NIC that
// macvlan and ipvlan devices hang off.
func (n *node) uplink(t *testing.T, name string) int {
	t.Helper()
	var idx int
	testutil.InNetns(t, n.NS, func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "-p"}); err != nil {
			return fmt.Errorf("adding veth %s: %w", name, err)
		}
		for _, ifName := range []string{name, name + "-p"} {
			l, err := netlinksafe.LinkByName(ifName)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("setting %s up: %w", ifName, err)
			}
			if ifName == name {
				idx = l.Attrs().Index
			}
		}
		return nil
	})
	return idx
}

// linkMAC reads a node-side link's MAC.
func (n *node) linkMAC(t *testing.T, name string) string {
	t.Helper()
	return macString(testutil.MAC(t, n.NS, name))
}

// setUpWithAddr brings the pod interface up with an address, as a main
// plugin leaves it, so announcements after a change have something to say.
func setUpWithAddr(t *testing.T, pod ns.NetNS, cidr string) {
	t.Helper()
	testutil.InNetns(t, pod, func() error {
		l, err := netlinksafe.LinkByName(podIf)
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
	testutil.AddAddr(t, pod, podIf, cidr)
}

// mainPluginResult is the prevResult the reference main plugins (macvlan,
// ipvlan, dummy) return: the sandbox interface with its MAC, and its IP.
func mainPluginResult(pod ns.NetNS, mac, cidr string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":%q,"interfaces":[{"name":%q,"mac":%q,"sandbox":%q}],"ips":[{"address":%q,"interface":0}],"dns":{}}`,
		cniVersion, podIf, mac, pod.Path(), cidr))
}

// ipvlan slaves share their parent's MAC; the kernel would accept a new
// one only by changing it for every slave and the parent, so macguard must
// refuse with advice (use macvlan) and change nothing.
func TestIPvlanRequestedMACIsRefused(t *testing.T) {
	requireKernel(t, "veth", "ipvlan")
	mg := testutil.PluginBinary(t)
	tests := []struct {
		name string
		mode netlink.IPVlanMode
	}{
		{"l2", netlink.IPVLAN_MODE_L2},
		{"l3", netlink.IPVLAN_MODE_L3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			pod := testutil.NewNetns(t)
			parent := n.uplink(t, "uplink")
			parentMAC := n.linkMAC(t, "uplink")
			testutil.InNetns(t, n.NS, func() error {
				iv := &netlink.IPVlan{LinkAttrs: netlink.LinkAttrs{Name: podIf, ParentIndex: parent, Namespace: netlink.NsFd(int(pod.Fd()))}, Mode: tc.mode}
				if err := netlink.LinkAdd(iv); err != nil {
					return fmt.Errorf("adding ipvlan %s on uplink: %w", tc.name, err)
				}
				return nil
			})
			setUpWithAddr(t, pod, "10.99.2.2/24")
			before := readLinkState(t, pod, podIf)
			if before.Kind != "ipvlan" || before.MAC != parentMAC {
				t.Fatalf("setup: pod interface is %+v, want an ipvlan carrying the parent's MAC %s", before, parentMAC)
			}
			prev := mainPluginResult(pod, parentMAC, "10.99.2.2/24")
			const requested = "0a:58:0a:63:02:02"

			call := cniCall{command: "ADD", containerID: "cid-ipvlan", netns: pod.Path(), args: testutil.PodArgs("default", "web-0", "cid-ipvlan", "uid-web-0")}
			o := n.plugin(t, mg, call, n.macguardConf(t, nil, prev, map[string]any{"mac": requested}))
			if o.err == nil {
				t.Fatalf("ADD succeeded on ipvlan (result %s); an ipvlan cannot have a MAC of its own", o.stdout)
			}
			if o.err.Code != 101 {
				t.Errorf("error code %d, want 101 (device cannot carry a MAC): %s", o.err.Code, o.err.Msg)
			}
			// The contract: messages name the interface, the netns, the MAC
			// and where a requested MAC came from; and this one says why
			// (the MAC is the parent's) and what to use instead.
			requireContains(t, "the error", o.err.Msg+" "+o.err.Details, "ipvlan", "shares its parent's MAC", "macvlan",
				podIf, pod.Path(), requested, "runtimeConfig.mac")
			if after := readLinkState(t, pod, podIf); !reflect.DeepEqual(after, before) {
				t.Errorf("the failed ADD changed the device:\nbefore %+v\nafter  %+v", before, after)
			}
			if got := n.linkMAC(t, "uplink"); got != parentMAC {
				t.Errorf("the failed ADD changed the parent's MAC: %s, was %s", got, parentMAC)
			}
			if files := n.Records(t); len(files) != 0 {
				t.Errorf("the failed ADD left state in dataDir: %v", files)
			}
		})
	}
}

// Devices that take a MAC: a requested MAC is applied, reported, checked,
// and the original is back after DEL.
func TestRequestedMACOnDevices(t *testing.T) {
	mg := testutil.PluginBinary(t)
	macvlan := func(mode netlink.MacvlanMode) func(*testing.T, *node, ns.NetNS) {
		return func(t *testing.T, n *node, pod ns.NetNS) {
			n.uplink(t, "uplink")
			testutil.Macvlan(t, n.NS, "uplink", pod, podIf, mode)
		}
	}
	tests := []struct {
		name      string
		needs     []string
		make      func(*testing.T, *node, ns.NetNS)
		requested string
	}{
		{"dummy", []string{"dummy"}, func(t *testing.T, n *node, pod ns.NetNS) {
			testutil.InNetns(t, pod, func() error {
				return netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: podIf}})
			})
		}, "0a:58:0a:63:03:01"},
		{"macvlan-bridge", []string{"veth", "macvlan"}, macvlan(netlink.MACVLAN_MODE_BRIDGE), "0a:58:0a:63:03:02"},
		{"macvlan-private", []string{"veth", "macvlan"}, macvlan(netlink.MACVLAN_MODE_PRIVATE), "0a:58:0a:63:03:03"},
		{"macvlan-vepa", []string{"veth", "macvlan"}, macvlan(netlink.MACVLAN_MODE_VEPA), "0a:58:0a:63:03:04"},
		{"macvlan-passthru", []string{"veth", "macvlan"}, macvlan(netlink.MACVLAN_MODE_PASSTHRU), "0a:58:0a:63:03:05"},
		// What the reference bridge plugin builds: a veth whose node end
		// is a bridge port.
		{"veth-on-bridge", []string{"veth", "bridge"}, func(t *testing.T, n *node, pod ns.NetNS) {
			testutil.VethPair(t, n.NS, "vethpod", pod, podIf)
			testutil.InNetns(t, n.NS, func() error {
				br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cni0"}}
				if err := netlink.LinkAdd(br); err != nil {
					return fmt.Errorf("adding bridge: %w", err)
				}
				port, err := netlinksafe.LinkByName("vethpod")
				if err != nil {
					return err
				}
				if err := netlink.LinkSetMaster(port, br); err != nil {
					return fmt.Errorf("enslaving vethpod: %w", err)
				}
				return netlink.LinkSetUp(br)
			})
		}, "0a:58:0a:63:03:06"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			requireKernel(t, tc.needs...)
			n := newNode(t)
			pod := testutil.NewNetns(t)
			tc.make(t, n, pod)
			setUpWithAddr(t, pod, "10.99.3.2/24")
			orig := podMAC(t, pod)
			if orig == "" || orig == tc.requested {
				t.Fatalf("setup: pod interface MAC %q; want one that differs from the requested %s", orig, tc.requested)
			}
			prev := mainPluginResult(pod, orig, "10.99.3.2/24")
			rc := map[string]any{"mac": tc.requested}
			cid := "cid-" + tc.name
			call := cniCall{command: "ADD", containerID: cid, netns: pod.Path(), args: testutil.PodArgs("default", "web-0", cid, "uid-web-0")}

			out := n.plugin(t, mg, call, n.macguardConf(t, nil, prev, rc)).mustSucceed(t, "ADD")
			if mac := podMAC(t, pod); mac != tc.requested {
				t.Errorf("interface MAC %s, want the requested %s", mac, tc.requested)
			}
			if _, resMAC := sandboxEntry(t, out, pod.Path()); resMAC != tc.requested {
				t.Errorf("result reports MAC %q, want %s", resMAC, tc.requested)
			}
			if files := n.Records(t); len(files) != 1 {
				t.Errorf("dataDir holds %v, want one record of the original MAC", files)
			}
			if w := n.warnings(t); len(w) != 0 {
				t.Errorf("ADD logged warnings: %q", w)
			}
			call.command = "CHECK"
			n.plugin(t, mg, call, n.macguardConf(t, nil, out, rc)).mustSucceed(t, "CHECK")
			call.command = "DEL"
			n.plugin(t, mg, call, n.macguardConf(t, nil, out, rc)).mustSucceed(t, "DEL")
			if mac := podMAC(t, pod); mac != orig {
				t.Errorf("DEL left MAC %s, want the original %s", mac, orig)
			}
			if files := n.Records(t); len(files) != 0 {
				t.Errorf("DEL left state: %v", files)
			}
		})
	}
}
