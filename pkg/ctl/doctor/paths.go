package doctor

import (
	"fmt"
	"net"
	"slices"
	"strings"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/macguard-cni/macguard/pkg/ctl/cniconf"
	"github.com/macguard-cni/macguard/pkg/link"
)

// The packet-path checks: a secondary interface (net1 of a macvlan NAD next
// to an overlay eth0, say) whose replies would leave through another
// interface, and a macvlan or ipvlan secondary whose parent carries the
// node's address. From inside the pod both look the same: traffic goes out,
// nothing comes back. Gather asks the pod's kernel (routecheck_linux.go);
// this file judges what it said.

// Off-subnet peers stand for "any address outside the secondary's subnets":
// the doctor only asks the kernel how a reply to them would be routed (as
// `ip route get PEER from ADDR`), it sends nothing. They are documentation
// addresses (RFC 5737, RFC 3849), which no pod really talks to, so no
// specific route of the pod matches them by accident; the second of each
// family is used when a subnet of the interface holds the first.
var (
	offSubnetPeers4 = []string{"198.51.100.1", "203.0.113.1"}
	offSubnetPeers6 = []string{"2001:db8::1", "2001:db8:ffff::1"}
)

// Targets of a ReplyPath.
const (
	TargetPeer    = "peer"
	TargetGateway = "gateway"
	TargetNode    = "node"
)

// Routing is how a pod's kernel would route replies from its addresses.
type Routing struct {
	// Default and Default6 are the interfaces a packet to an off-subnet
	// peer leaves through when the pod picks the source itself (its
	// default route); "" when it has none. That interface is the pod's
	// primary for such peers; the others are the secondaries checked.
	Default  string `json:"default,omitempty"`
	Default6 string `json:"default6,omitempty"`
	// RPFilterAll is net.ipv4.conf.all.rp_filter in the pod's netns (-1
	// when it could not be read); the kernel applies the higher of it and
	// the interface's own.
	RPFilterAll int               `json:"rpFilterAll"`
	Interfaces  []RoutedInterface `json:"interfaces,omitempty"`
	// Err is why the routes could not be looked up.
	Err string `json:"err,omitempty"`
}

// RoutedInterface is one interface with an address and the routes the
// kernel picked for replies from it.
type RoutedInterface struct {
	Name string `json:"name"`
	// Addrs are its global addresses with their prefix length.
	Addrs []string `json:"addrs"`
	// RPFilter is net.ipv4.conf.<name>.rp_filter (-1 unknown).
	RPFilter int `json:"rpFilter"`
	// Gateways are its next hops: the cached CNI result's gateways for it
	// and the gateways of routes through it, in any table.
	Gateways []string    `json:"gateways,omitempty"`
	Replies  []ReplyPath `json:"replies,omitempty"`
	// Parent is the macvlan or ipvlan parent when it is in the doctor's
	// own network namespace (the node's); ParentAddrs are the parent's
	// addresses with the route the pod takes to each (no source chosen).
	Parent      string      `json:"parent,omitempty"`
	ParentAddrs []ReplyPath `json:"parentAddrs,omitempty"`
}

// ReplyPath is one route lookup: from Source (when set) to Dest.
type ReplyPath struct {
	Source string `json:"source,omitempty"`
	Dest   string `json:"dest"`
	// Target is what Dest stands for: "peer" (an off-subnet address),
	// "gateway", or "node" (an address of the node on the parent).
	Target string `json:"target"`
	// Via is the interface the packet would leave through, Gateway its
	// next hop; Err is the kernel's answer when there is no route.
	Via     string `json:"via,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	Err     string `json:"err,omitempty"`
}

// resultIPs lists a CNI result's addresses with the interface they are on.
func resultIPs(r *types100.Result) []ResultIP {
	var out []ResultIP
	for _, ip := range r.IPs {
		if ip == nil {
			continue
		}
		ri := ResultIP{Address: ip.Address.String()}
		if ip.Gateway != nil {
			ri.Gateway = ip.Gateway.String()
		}
		if ip.Interface != nil && *ip.Interface >= 0 && *ip.Interface < len(r.Interfaces) && r.Interfaces[*ip.Interface] != nil {
			ri.Interface = r.Interfaces[*ip.Interface].Name
		}
		out = append(out, ri)
	}
	return out
}

// ResultIP is an address of a cached CNI result.
type ResultIP struct {
	Interface string `json:"interface,omitempty"`
	Address   string `json:"address"`
	Gateway   string `json:"gateway,omitempty"`
}

// offSubnetPeer returns the peer of addr's family that none of subnets
// holds.
func offSubnetPeer(addr net.IP, subnets []*net.IPNet) net.IP {
	peers := offSubnetPeers4
	if addr.To4() == nil {
		peers = offSubnetPeers6
	}
	for _, p := range peers {
		ip := net.ParseIP(p)
		if !slices.ContainsFunc(subnets, func(n *net.IPNet) bool { return n.Contains(ip) }) {
			return ip
		}
	}
	return net.ParseIP(peers[len(peers)-1])
}

// subnetsOf turns addresses with their prefix ("192.168.50.10/24") into
// their subnets ("192.168.50.0/24").
func subnetsOf(cidrs []string) []string {
	out := make([]string, 0, len(cidrs))
	for _, c := range cidrs {
		if _, n, err := net.ParseCIDR(c); err == nil {
			out = append(out, n.String())
		} else {
			out = append(out, c)
		}
	}
	return out
}

// addressesOf drops the prefix lengths.
func addressesOf(cidrs []string) []string {
	out := make([]string, 0, len(cidrs))
	for _, c := range cidrs {
		ip, _, _ := strings.Cut(c, "/")
		out = append(out, ip)
	}
	return out
}

func rpFilterWord(v int) string {
	switch v {
	case 0:
		return "0 (off)"
	case 1:
		return "1 (strict)"
	case 2:
		return "2 (loose)"
	case -1:
		return "unknown"
	}
	return fmt.Sprint(v)
}

func isIPv4(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && ip.To4() != nil
}

// paths judges every pod's Routing: replies that leave through another
// interface than the one their source is on (path-asymmetric), and a
// macvlan or ipvlan secondary through which the pod routes to an address
// its parent, the node's device, carries (path-node-via-parent).
func (a *analysis) paths() {
	for i := range a.w.Netns {
		n := &a.w.Netns[i]
		rt := n.Routing
		if rt == nil || n.Err != "" {
			continue
		}
		pod := n.Path
		for _, p := range a.r.Pods {
			if p.Netns == n.Path {
				pod = p.Name
			}
		}
		kinds := map[string]Interface{}
		for _, ifc := range n.Interfaces {
			kinds[ifc.Name] = ifc
		}
		for _, ri := range rt.Interfaces {
			a.asymmetric(n, pod, rt, ri)
			a.nodeViaParent(pod, kinds[ri.Name], ri)
		}
	}
}

func (a *analysis) asymmetric(n *Netns, pod string, rt *Routing, ri RoutedInterface) {
	var bad []ReplyPath
	for _, rp := range ri.Replies {
		def := rt.Default
		if !isIPv4(rp.Source) {
			def = rt.Default6
		}
		if ri.Name == def || rp.Via == "" || rp.Via == ri.Name {
			continue
		}
		bad = append(bad, rp)
	}
	if len(bad) == 0 {
		return
	}
	var says []string
	other, v4 := "", false
	for _, rp := range bad {
		what := fmt.Sprintf("an off-subnet peer (%s, standing for any address outside %s)", rp.Dest, strings.Join(subnetsOf(ri.Addrs), ", "))
		if rp.Target == TargetGateway {
			what = fmt.Sprintf("its gateway %s", rp.Dest)
		}
		says = append(says, fmt.Sprintf("a reply from %s to %s would leave through %s", rp.Source, what, rp.Via))
		if other == "" {
			other = rp.Via
		}
		v4 = v4 || isIPv4(rp.Source)
	}
	msg := fmt.Sprintf("%s answers through another interface (asymmetric path): %s, not %s, so a request that reaches %s from outside its subnet gets no answer (the reply is dropped upstream or by the peer)",
		ri.Name, strings.Join(says, "; "), ri.Name, ri.Name)
	if v4 {
		rps := []string{fmt.Sprintf("%s %s", ri.Name, rpFilterWord(ri.RPFilter))}
		for _, o := range rt.Interfaces {
			if o.Name == other {
				rps = append(rps, fmt.Sprintf("%s %s", o.Name, rpFilterWord(o.RPFilter)))
			}
		}
		rps = append(rps, "all "+rpFilterWord(rt.RPFilterAll))
		msg += "; rp_filter " + strings.Join(rps, ", ") + " (the higher of all and the interface's applies)"
		if max(ri.RPFilter, rt.RPFilterAll) == 1 {
			msg += fmt.Sprintf(": strict, so the kernel drops such a request on %s before anything answers", ri.Name)
		}
	}
	sev := Warning
	if len(ri.Gateways) == 0 {
		// No gateway: nothing says peers outside the subnet are meant to
		// reach it, so it only matters if they do.
		sev = Info
		msg += fmt.Sprintf("; %s has no gateway, so this matters only if peers outside its subnet talk to it", ri.Name)
	}
	a.add(Finding{Severity: sev, Code: "path-asymmetric", Section: SectionPods, Pod: pod, Interface: ri.Name,
		Message: msg, Remedy: a.sbrRemedy(n, ri)})
}

// sbrRemedy says where sbr goes in the chain that made the interface.
func (a *analysis) sbrRemedy(n *Netns, ri RoutedInterface) string {
	own := fmt.Sprintf("or give %s a route of its own to the peers it serves (\"routes\" in its IPAM, via its gateway)", ri.Name)
	what := fmt.Sprintf("replies from %s then leave through %s (sbr moves its routes into a table of their own, chosen by the source address)", strings.Join(addressesOf(ri.Addrs), ", "), ri.Name)
	for j := range a.w.Cache {
		e := &a.w.Cache[j]
		if e.IfName != ri.Name || !holds(n, e.NetnsInode, e.Netns, e.ContainerID) || len(e.Config) == 0 {
			continue
		}
		ch, err := cniconf.Read(e.Config, true)
		if err != nil || len(ch.Entries) == 0 {
			break
		}
		if ch.HasType("sbr") {
			return fmt.Sprintf("network %q chains sbr, yet the reply leaves elsewhere: compare `ip rule` and `ip route show table all` in the pod with what sbr set up, and look for what changed them; %s", e.Network, own)
		}
		types := ch.Types()
		with := append([]string{types[0], "sbr"}, types[1:]...)
		return fmt.Sprintf("chain {\"type\": \"sbr\"} right after %s, the main plugin, in network %q (the NAD's config): plugins %s; %s; %s",
			types[0], e.Network, strings.Join(with, " -> "), what, own)
	}
	return fmt.Sprintf("chain {\"type\": \"sbr\"} right after the main plugin in the configuration (NAD) that made %s; %s; %s", ri.Name, what, own)
}

func (a *analysis) nodeViaParent(pod string, ifc Interface, ri RoutedInterface) {
	kind := ""
	switch ifc.Kind {
	case link.KindIPVlan, link.KindIPVtap:
		kind = "ipvlan"
	case "macvlan", "macvtap":
		kind = "macvlan"
	default:
		return
	}
	for _, pa := range ri.ParentAddrs {
		if pa.Via != ri.Name {
			continue
		}
		a.add(Finding{Severity: Warning, Code: "path-node-via-parent", Section: SectionPods, Pod: pod, Interface: ri.Name,
			Message: fmt.Sprintf("%s is a %s of the node's %s, which carries the node's address %s; the pod routes to %s through %s, and %s never passes traffic between a parent and its %ss, so the pod cannot reach the node at %s (nor the node the pod at %s)",
				ri.Name, kind, ri.Parent, pa.Dest, pa.Dest, ri.Name, kind, kind, pa.Dest, strings.Join(addressesOf(ri.Addrs), ", ")),
			Remedy: fmt.Sprintf("let the pod reach the node through its primary interface (a route for %s via the primary's gateway, or another node address), or move the node's address from %s to a %s of its own on %s (in bridge mode a macvlan reaches its sibling macvlans)",
				pa.Dest, ri.Parent, kind, ri.Parent)})
	}
}
