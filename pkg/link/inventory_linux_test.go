package link_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/link"
)

// requireRootOrSkip: Inventory needs real namespaces. CI runs as root, so
// there the test must run and fails without root; elsewhere it skips, so a
// developer's `go test ./pkg/...` as a user still works.
func requireRootOrSkip(t *testing.T) {
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Inventory's test creates network namespaces and must run as root in CI")
	}
	t.Skip("needs root to create network namespaces")
}

func TestInventoryListsEveryInterface(t *testing.T) {
	requireRootOrSkip(t)
	node, pod := testutil.NewNetns(t), testutil.NewNetns(t)
	testutil.VethPair(t, node, "vh0", pod, "eth0")
	testutil.LocalVeth(t, node, "up0", "up0p")
	testutil.Macvlan(t, node, "up0", pod, "net1", netlink.MACVLAN_MODE_PRIVATE)
	// A bridge inside the pod with one port, as a VM launcher builds.
	testutil.InNetns(t, pod, func() error {
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
			return fmt.Errorf("adding bridge: %w", err)
		}
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "tap0"}, PeerName: "tap0p"}); err != nil {
			return fmt.Errorf("adding veth: %w", err)
		}
		br, err := netlinksafe.LinkByName("br0")
		if err != nil {
			return err
		}
		port, err := netlinksafe.LinkByName("tap0")
		if err != nil {
			return err
		}
		return netlink.LinkSetMaster(port, br)
	})
	mac := func(name string) string { return testutil.MAC(t, pod, name).String() }

	got, err := link.Inventory(pod.Path())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]link.Inventoried{}
	for i, l := range got {
		byName[l.Name] = l
		if i > 0 && got[i-1].Index >= l.Index {
			t.Errorf("not sorted by index: %s (%d) after %s (%d)", l.Name, l.Index, got[i-1].Name, got[i-1].Index)
		}
	}
	tests := []struct {
		name                     string
		kind, encap, macvlanMode string
		master, masterKind       string
		mac                      string
		otherNetns               bool
	}{
		// lo reports no address at all (netlink gives an empty one).
		{name: "lo", kind: "device", encap: "loopback", mac: ""},
		{name: "eth0", kind: "veth", encap: "ether", mac: mac("eth0"), otherNetns: true},
		{name: "net1", kind: "macvlan", encap: "ether", macvlanMode: "private", mac: mac("net1"), otherNetns: true},
		{name: "br0", kind: "bridge", encap: "ether", mac: mac("br0")},
		{name: "tap0", kind: "veth", encap: "ether", master: "br0", masterKind: "bridge", mac: mac("tap0")},
		{name: "tap0p", kind: "veth", encap: "ether", mac: mac("tap0p")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, ok := byName[tc.name]
			if !ok {
				t.Fatalf("%s not listed; got %v", tc.name, got)
			}
			if l.Kind != tc.kind || l.EncapType != tc.encap || l.MacvlanMode != tc.macvlanMode || l.Master != tc.master || l.MasterKind != tc.masterKind {
				t.Errorf("%s: kind %q encap %q macvlan %q master %q (%q); want %q %q %q %q (%q)", tc.name, l.Kind, l.EncapType, l.MacvlanMode, l.Master, l.MasterKind,
					tc.kind, tc.encap, tc.macvlanMode, tc.master, tc.masterKind)
			}
			if l.MAC.String() != tc.mac {
				t.Errorf("%s: MAC %s, want %s", tc.name, l.MAC, tc.mac)
			}
			if tc.otherNetns != (l.LinkNetnsID >= 0) {
				t.Errorf("%s: link netns id %d; peer or parent in another netns: %v", tc.name, l.LinkNetnsID, tc.otherNetns)
			}
		})
	}
	if len(got) != len(tests) {
		t.Errorf("%d interfaces listed, want %d: %+v", len(got), len(tests), got)
	}
}

func TestInventoryErrors(t *testing.T) {
	requireRootOrSkip(t)
	dir := t.TempDir()
	plain := dir + "/not-a-netns"
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir + "/missing", plain} {
		if _, err := link.Inventory(path); err == nil {
			t.Errorf("Inventory(%s) succeeded", path)
		}
	}
}
