package doctor

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// gatherRouting asks every pod's kernel how replies from each of its
// addresses would leave (paths.go judges the answers). It reads only: route
// lookups (`ip route get DST from SRC`), addresses, routes, rp_filter. A
// namespace it cannot look into keeps the reason in Routing.Err.
func gatherRouting(w *World) {
	// The doctor's own namespace is the node's: a macvlan's parent is a
	// node device when the pod sees it there. Without it only that check
	// is left out.
	self, err := ns.GetCurrentNS()
	if err == nil {
		defer self.Close()
	} else {
		self = nil
	}
	for i := range w.Netns {
		n := &w.Netns[i]
		if n.Err != "" {
			continue
		}
		var gws []ResultIP
		for _, e := range w.Cache {
			if holds(n, e.NetnsInode, e.Netns, e.ContainerID) {
				for _, ip := range e.IPs {
					if ip.Interface == "" {
						ip.Interface = e.IfName
					}
					gws = append(gws, ip)
				}
			}
		}
		rt, err := routing(n.Path, self, gws)
		if err != nil {
			rt = &Routing{Err: err.Error()}
		}
		n.Routing = rt
	}
}

// parentQuery is a macvlan/ipvlan whose parent is in the doctor's netns.
type parentQuery struct {
	at          int // index into Routing.Interfaces
	parentIndex int
}

func routing(path string, self ns.NetNS, cached []ResultIP) (*Routing, error) {
	n, err := ns.GetNS(path)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	rt := &Routing{}
	var parents []parentQuery
	// byIndex names the pod's interfaces by index, for the routes' output
	// devices; the second entry below reads it again.
	byIndex := map[int]string{}
	err = n.Do(func(ns.NetNS) error {
		// Inside the pod's namespace: /proc/sys/net is the namespace's.
		rt.RPFilterAll = readRPFilter("all")
		links, err := netlinksafe.LinkList()
		if err != nil {
			return fmt.Errorf("listing interfaces: %w", err)
		}
		for _, l := range links {
			byIndex[l.Attrs().Index] = l.Attrs().Name
		}
		rt.Default = lookup(net.ParseIP(offSubnetPeers4[0]), nil, byIndex).Via
		rt.Default6 = lookup(net.ParseIP(offSubnetPeers6[0]), nil, byIndex).Via
		selfID := -1
		if self != nil {
			if id, err := netlink.GetNetNsIdByFd(int(self.Fd())); err == nil {
				selfID = id
			}
		}
		for _, l := range links {
			la := l.Attrs()
			if la.Flags&net.FlagLoopback != 0 || la.Flags&net.FlagUp == 0 {
				continue
			}
			addrs, err := netlinksafe.AddrList(l, netlink.FAMILY_ALL)
			if err != nil {
				return fmt.Errorf("listing addresses of %s: %w", la.Name, err)
			}
			ri := RoutedInterface{Name: la.Name, RPFilter: readRPFilter(la.Name)}
			var srcs []net.IP
			var subnets []*net.IPNet
			for _, a := range addrs {
				if a.Scope != unix.RT_SCOPE_UNIVERSE || a.IP.IsLinkLocalUnicast() {
					continue
				}
				ri.Addrs = append(ri.Addrs, a.IPNet.String())
				srcs = append(srcs, a.IP)
				subnets = append(subnets, &net.IPNet{IP: a.IP.Mask(a.Mask), Mask: a.Mask})
			}
			if len(srcs) == 0 {
				continue
			}
			ri.Gateways = gateways(l, cached)
			for _, src := range srcs {
				ri.Replies = append(ri.Replies, withTarget(lookup(offSubnetPeer(src, subnets), src, byIndex), TargetPeer))
				for _, gw := range ri.Gateways {
					g := net.ParseIP(gw)
					if (g.To4() == nil) == (src.To4() == nil) {
						ri.Replies = append(ri.Replies, withTarget(lookup(g, src, byIndex), TargetGateway))
					}
				}
			}
			switch l.Type() {
			case "macvlan", "macvtap", "ipvlan", "ipvtap":
				if selfID >= 0 && la.NetNsID == selfID && la.ParentIndex > 0 {
					parents = append(parents, parentQuery{at: len(rt.Interfaces), parentIndex: la.ParentIndex})
				}
			}
			rt.Interfaces = append(rt.Interfaces, ri)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", path, err)
	}
	if len(parents) == 0 {
		return rt, nil
	}
	// The parents are the node's devices, in the doctor's own namespace:
	// read their addresses here, then ask the pod how it reaches them.
	var nodeAddrs [][]net.IP
	for _, q := range parents {
		var ips []net.IP
		if l, err := netlink.LinkByIndex(q.parentIndex); err == nil {
			rt.Interfaces[q.at].Parent = l.Attrs().Name
			if addrs, err := netlinksafe.AddrList(l, netlink.FAMILY_ALL); err == nil {
				for _, a := range addrs {
					if a.Scope == unix.RT_SCOPE_UNIVERSE && !a.IP.IsLinkLocalUnicast() {
						ips = append(ips, a.IP)
					}
				}
			}
		}
		nodeAddrs = append(nodeAddrs, ips)
	}
	err = n.Do(func(ns.NetNS) error {
		for i, q := range parents {
			for _, ip := range nodeAddrs[i] {
				rt.Interfaces[q.at].ParentAddrs = append(rt.Interfaces[q.at].ParentAddrs, withTarget(lookup(ip, nil, byIndex), TargetNode))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", path, err)
	}
	return rt, nil
}

func withTarget(rp ReplyPath, target string) ReplyPath {
	rp.Target = target
	return rp
}

// lookup is `ip route get dst [from src]` in the current namespace.
func lookup(dst, src net.IP, byIndex map[int]string) ReplyPath {
	rp := ReplyPath{Dest: dst.String()}
	var opts *netlink.RouteGetOptions
	if src != nil {
		rp.Source = src.String()
		opts = &netlink.RouteGetOptions{SrcAddr: src}
	}
	routes, err := netlink.RouteGetWithOptions(dst, opts)
	switch {
	case err != nil:
		rp.Err = err.Error()
	case len(routes) == 0:
		rp.Err = "no route"
	default:
		rp.Via = byIndex[routes[0].LinkIndex]
		if rp.Via == "" {
			rp.Via = "ifindex " + strconv.Itoa(routes[0].LinkIndex)
		}
		if routes[0].Gw != nil {
			rp.Gateway = routes[0].Gw.String()
		}
	}
	return rp
}

// gateways are l's next hops: the cached CNI result's gateways of its
// addresses, and the gateways of routes through it in any table (sbr's
// table, for one).
func gateways(l netlink.Link, cached []ResultIP) []string {
	var out []string
	add := func(ip net.IP) {
		if ip != nil && !ip.IsUnspecified() && !slices.Contains(out, ip.String()) {
			out = append(out, ip.String())
		}
	}
	for _, c := range cached {
		if c.Interface == l.Attrs().Name && c.Gateway != "" {
			add(net.ParseIP(c.Gateway))
		}
	}
	routes, err := netlinksafe.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_UNSPEC},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err == nil {
		for _, r := range routes {
			add(r.Gw)
		}
	}
	return out
}

// readRPFilter reads net.ipv4.conf.<name>.rp_filter of the current thread's
// namespace, -1 when it cannot (an IPv6-only interface has it too; a name
// with dots is read through the slash form).
func readRPFilter(name string) int {
	v, err := sysctl.Sysctl("net/ipv4/conf/" + name + "/rp_filter")
	if err != nil {
		return -1
	}
	i, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return -1
	}
	return i
}
