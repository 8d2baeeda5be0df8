package doctor

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// pathWorld is healthyWorld's pod with a macvlan net1 from network mvnet
// (macvlan -> macguard) and the routing the kernel reported for it.
func pathWorld(rt *Routing) *World {
	w := healthyWorld()
	w.Netns[0].Interfaces = append(w.Netns[0].Interfaces,
		Interface{Name: "net1", Kind: "macvlan", MacvlanMode: "bridge", Encap: "ether", MAC: "0a:58:c0:a8:32:0a", Up: true})
	w.Netns[0].Routing = rt
	w.Cache = append(w.Cache, CacheEntry{File: "/var/lib/cni/multus/results/mvnet-c1-net1", ContainerID: "c1", IfName: "net1", Network: "mvnet",
		Netns: "/var/run/netns/cni-1", NetnsInode: 101, Args: map[string]string{"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web"},
		Config: json.RawMessage(conflist("mvnet", `{"type":"macvlan","master":"lan0"}`, mgEntry))})
	return w
}

func routed(name string, rpFilter int, gws []string, addrs []string, replies ...ReplyPath) RoutedInterface {
	return RoutedInterface{Name: name, Addrs: addrs, RPFilter: rpFilter, Gateways: gws, Replies: replies}
}

func TestPaths(t *testing.T) {
	eth0 := routed("eth0", 0, []string{"10.0.0.1"}, []string{"10.0.0.2/24"},
		ReplyPath{Source: "10.0.0.2", Dest: "198.51.100.1", Target: TargetPeer, Via: "eth0", Gateway: "10.0.0.1"})
	asym := ReplyPath{Source: "192.168.50.10", Dest: "198.51.100.1", Target: TargetPeer, Via: "eth0", Gateway: "10.0.0.1"}
	sym := ReplyPath{Source: "192.168.50.10", Dest: "198.51.100.1", Target: TargetPeer, Via: "net1", Gateway: "192.168.50.1"}
	gwOK := ReplyPath{Source: "192.168.50.10", Dest: "192.168.50.1", Target: TargetGateway, Via: "net1"}
	tests := []struct {
		name string
		rt   *Routing
		want []codeAt
		// in are words the finding's message and remedy must hold.
		in []string
	}{
		{name: "no routing looked at", rt: nil},
		{
			name: "secondary with a gateway answers through eth0",
			rt: &Routing{Default: "eth0", RPFilterAll: 0, Interfaces: []RoutedInterface{eth0,
				routed("net1", 1, []string{"192.168.50.1"}, []string{"192.168.50.10/24"}, asym, gwOK)}},
			want: []codeAt{{Warning, "path-asymmetric", "default/web", "net1"}},
			in: []string{"would leave through eth0, not net1", "any address outside 192.168.50.0/24", "rp_filter net1 1 (strict), eth0 0 (off), all 0 (off)", "strict, so the kernel drops",
				`chain {"type": "sbr"} right after macvlan, the main plugin, in network "mvnet"`, "macvlan -> sbr -> macguard", "route of its own"},
		},
		{
			name: "loose rp_filter: no word of a drop on arrival",
			rt: &Routing{Default: "eth0", RPFilterAll: 2, Interfaces: []RoutedInterface{eth0,
				routed("net1", 0, []string{"192.168.50.1"}, []string{"192.168.50.10/24"}, asym)}},
			want: []codeAt{{Warning, "path-asymmetric", "default/web", "net1"}},
			in:   []string{"all 2 (loose)"},
		},
		{
			name: "secondary without a gateway: info",
			rt: &Routing{Default: "eth0", Interfaces: []RoutedInterface{eth0,
				routed("net1", 0, nil, []string{"192.168.50.10/24"}, asym)}},
			want: []codeAt{{Info, "path-asymmetric", "default/web", "net1"}},
			in:   []string{"has no gateway"},
		},
		{
			name: "sbr: the reply leaves through net1",
			rt: &Routing{Default: "eth0", Interfaces: []RoutedInterface{eth0,
				routed("net1", 1, []string{"192.168.50.1"}, []string{"192.168.50.10/24"}, sym, gwOK)}},
		},
		{
			name: "the default route's interface is never a secondary",
			rt: &Routing{Default: "net1", Interfaces: []RoutedInterface{
				routed("net1", 0, []string{"192.168.50.1"}, []string{"192.168.50.10/24"}, asym)}},
		},
		{
			name: "macvlan whose parent carries the node's address, reached through net1",
			rt: &Routing{Default: "eth0", Interfaces: []RoutedInterface{eth0,
				{Name: "net1", Addrs: []string{"192.168.50.10/24"}, Replies: []ReplyPath{sym}, Parent: "lan0",
					ParentAddrs: []ReplyPath{{Dest: "192.168.50.2", Target: TargetNode, Via: "net1"}, {Dest: "172.16.0.1", Target: TargetNode, Via: "eth0"}}}}},
			want: []codeAt{{Warning, "path-node-via-parent", "default/web", "net1"}},
			in:   []string{"macvlan of the node's lan0, which carries the node's address 192.168.50.2", "cannot reach the node at 192.168.50.2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Analyze(pathWorld(tc.rt))
			var got []codeAt
			for _, c := range codes(r, true) {
				if strings.HasPrefix(c.Code, "path-") {
					got = append(got, c)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("findings %v, want %v\n%+v", got, tc.want, r.Findings)
			}
			for _, f := range r.Findings {
				if !strings.HasPrefix(f.Code, "path-") {
					continue
				}
				text := f.Message + " | " + f.Remedy
				for _, w := range tc.in {
					if !strings.Contains(text, w) {
						t.Errorf("%q not in %s", w, text)
					}
				}
			}
		})
	}
}

// The remedy names the network's own chain; sbr already chained is said
// so, and an interface without a cached chain gets the general words.
func TestSBRRemedy(t *testing.T) {
	rt := &Routing{Default: "eth0", Interfaces: []RoutedInterface{
		routed("net1", 0, []string{"192.168.50.1"}, []string{"192.168.50.10/24"},
			ReplyPath{Source: "192.168.50.10", Dest: "198.51.100.1", Target: TargetPeer, Via: "eth0"})}}
	for _, tc := range []struct {
		name   string
		config string
		want   string
	}{
		{"sbr already chained", conflist("mvnet", `{"type":"macvlan"}`, `{"type":"sbr"}`), `network "mvnet" chains sbr, yet`},
		{"no cached chain", "", "right after the main plugin in the configuration (NAD) that made net1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := pathWorld(rt)
			w.Cache[1].Config = json.RawMessage(tc.config)
			if tc.config == "" {
				w.Cache[1].Config = nil
			}
			r := Analyze(w)
			var remedy string
			for _, f := range r.Findings {
				if f.Code == "path-asymmetric" {
					remedy = f.Remedy
				}
			}
			if !strings.Contains(remedy, tc.want) {
				t.Errorf("remedy %q, want it to say %q", remedy, tc.want)
			}
		})
	}
}
