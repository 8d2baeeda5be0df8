package link

import (
	"errors"
	"fmt"
	"sort"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// Inventoried is one interface of a namespace as the node doctor sees it:
// what the plugin observes, plus the relations (parent, master, mode) that
// explain where its MAC comes from. It is a separate struct so that
// Observed, which every ADD fills in, stays as small as the plugin needs.
type Inventoried struct {
	Observed
	// MacvlanMode is "bridge", "private", "vepa", "passthru" or "source"
	// for macvlan and macvtap devices.
	MacvlanMode string
	// IPVlanMode is "l2", "l3" or "l3s" for ipvlan and ipvtap devices.
	IPVlanMode string
	// Master is the name of the bridge (or bond, VRF) the device is
	// enslaved to inside the namespace, and MasterKind its kind; a bridge
	// port's MAC is what the bridge forwards by.
	Master     string
	MasterKind string
	// ParentIndex is the lower device of a macvlan, ipvlan or vlan, and
	// the peer of a veth or netkit device; it usually lives in another
	// namespace (LinkNetnsID >= 0), where this index means nothing here.
	ParentIndex int
	LinkNetnsID int
}

// Inventory lists every interface of the network namespace at path, sorted
// by index. Unlike Open it accepts any namespace, because it only reads.
func Inventory(path string) ([]Inventoried, error) {
	n, err := getNS(path, nsWords{
		notExist: "netns %s does not exist",
		notNS:    "%s is not a network namespace",
		opening:  "opening netns %s",
	})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	var out []Inventoried
	err = n.Do(func(ns.NetNS) error {
		links, err := netlinksafe.LinkList()
		if err != nil {
			return fmt.Errorf("listing interfaces in netns %s: %w", path, err)
		}
		byIndex := make(map[int]netlink.Link, len(links))
		for _, l := range links {
			byIndex[l.Attrs().Index] = l
		}
		for _, l := range links {
			out = append(out, inventoried(l, byIndex))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

// nsWords are how a caller of getNS words its errors: each a format with
// one verb, the path.
type nsWords struct {
	notExist, notNS, opening string
}

// getNS opens the namespace at path with the reference plugins' ns package
// (which also verifies it is a netns), and translates its errors into
// ErrNetns in the caller's words. Open and Inventory both use it.
func getNS(path string, w nsWords) (ns.NetNS, error) {
	n, err := ns.GetNS(path)
	if err == nil {
		return n, nil
	}
	var notExist ns.NSPathNotExistErr
	var notNS ns.NSPathNotNSErr
	switch {
	case errors.As(err, &notExist):
		return nil, fmt.Errorf(w.notExist+": %w", path, ErrNetns)
	case errors.As(err, &notNS):
		return nil, fmt.Errorf(w.notNS+": %w", path, ErrNetns)
	}
	return nil, fmt.Errorf(w.opening+": %w: %w", path, ErrNetns, err)
}

func inventoried(l netlink.Link, byIndex map[int]netlink.Link) Inventoried {
	a := l.Attrs()
	inv := Inventoried{Observed: observe(l), ParentIndex: a.ParentIndex, LinkNetnsID: a.NetNsID}
	if inv.Kind == "" {
		inv.Kind = "device"
	}
	switch d := l.(type) {
	case *netlink.Macvlan:
		inv.MacvlanMode = macvlanMode(d.Mode)
	case *netlink.Macvtap:
		inv.MacvlanMode = macvlanMode(d.Mode)
	case *netlink.IPVlan:
		inv.IPVlanMode = ipvlanMode(d.Mode)
	case *netlink.IPVtap:
		inv.IPVlanMode = ipvlanMode(d.Mode)
	}
	if a.MasterIndex > 0 {
		if m, ok := byIndex[a.MasterIndex]; ok {
			inv.Master, inv.MasterKind = m.Attrs().Name, m.Type()
		} else {
			inv.Master = fmt.Sprintf("index %d", a.MasterIndex)
		}
	}
	return inv
}

func macvlanMode(m netlink.MacvlanMode) string {
	switch m {
	case netlink.MACVLAN_MODE_PRIVATE:
		return "private"
	case netlink.MACVLAN_MODE_VEPA:
		return "vepa"
	case netlink.MACVLAN_MODE_BRIDGE:
		return "bridge"
	case netlink.MACVLAN_MODE_PASSTHRU:
		return "passthru"
	case netlink.MACVLAN_MODE_SOURCE:
		return "source"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

func ipvlanMode(m netlink.IPVlanMode) string {
	switch m {
	case netlink.IPVLAN_MODE_L2:
		return "l2"
	case netlink.IPVLAN_MODE_L3:
		return "l3"
	case netlink.IPVLAN_MODE_L3S:
		return "l3s"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}
