package testutil

// Namespace helpers for suites that play "node" and "pod" with the real
// reference plugins (test/e2e): a pod namespace that can vanish mid-test
// like a dead sandbox, and parent devices that live only inside a
// throwaway node namespace.

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RemovableNetns is NewNetns with a remove function, for a test that
// destroys a sandbox without telling the plugins (a crashed runtime, a
// node losing a pod). remove is idempotent and also runs at cleanup.
func RemovableNetns(t testing.TB) (n ns.NetNS, remove func() error) {
	t.Helper()
	RequireRoot(t)
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("creating netns: %v", err)
	}
	var (
		once    sync.Once
		onceErr error
	)
	remove = func() error {
		once.Do(func() {
			_ = n.Close() // fails only if a test closed it already, to unmount it
			if err := testutils.UnmountNS(n); err != nil {
				onceErr = fmt.Errorf("removing netns %s: %w", n.Path(), err)
			}
		})
		return onceErr
	}
	t.Cleanup(func() {
		if err := remove(); err != nil {
			t.Log(err)
		}
	})
	return n, remove
}

// LocalVeth creates a veth pair with both ends (name, peer) inside n, up:
// a parent device for macvlan/ipvlan that is not one of the host's real
// interfaces. It goes away with n.
func LocalVeth(t testing.TB, n ns.NetNS, name, peer string) {
	t.Helper()
	InNetns(t, n, func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("adding veth %s/%s: %w", name, peer, err)
		}
		for _, ifName := range []string{name, peer} {
			l, err := netlinksafe.LinkByName(ifName)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("setting %s up: %w", ifName, err)
			}
		}
		return nil
	})
}

// KernelHasLinkKind reports whether the running kernel can create a link of
// kind (e.g. "ipvlan") on parent inside n, by creating and deleting one.
// "Not supported" answers false with a nil error; anything else is an
// error, so a broken probe cannot pass for a missing feature.
func KernelHasLinkKind(n ns.NetNS, parent, kind string) (bool, error) {
	var ok bool
	err := n.Do(func(ns.NetNS) error {
		p, err := netlinksafe.LinkByName(parent)
		if err != nil {
			return err
		}
		attrs := netlink.LinkAttrs{Name: "probe0", ParentIndex: p.Attrs().Index}
		var l netlink.Link
		switch kind {
		case "ipvlan":
			l = &netlink.IPVlan{LinkAttrs: attrs, Mode: netlink.IPVLAN_MODE_L2}
		case "macvlan":
			l = &netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}
		default:
			return fmt.Errorf("KernelHasLinkKind: no probe for %q", kind)
		}
		err = netlink.LinkAdd(l)
		// A kernel without the driver (and no module to load) answers
		// EOPNOTSUPP ("Unknown device type" from rtnetlink).
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("probing %s: %w", kind, err)
		}
		ok = true
		return netlink.LinkDel(l)
	})
	return ok, err
}
