package doctor

import (
	"testing"

	"github.com/macguard-cni/macguard/pkg/link"
)

// TestDuplicates: a MAC on interfaces of two pods is an error for each,
// except on devices the plugin's policy says cannot carry a MAC of their
// own (policy.CannotCarry): ipvlan slaves of one parent show its MAC in
// every pod by design.
func TestDuplicates(t *testing.T) {
	const mac = "02:00:00:00:00:01"
	iface := func(kind string) Interface {
		return Interface{Name: "eth0", Kind: kind, Encap: "ether", MAC: mac, Up: true}
	}
	tests := []struct {
		name   string
		ifaces []podIface
		want   int // mac-duplicate findings
	}{
		{"two veths in two pods", []podIface{{"a", 1, iface("veth")}, {"b", 2, iface("veth")}}, 2},
		{"two interfaces of one pod", []podIface{{"a", 1, iface("veth")}, {"a", 1, iface("macvlan")}}, 0},
		{"ipvlan slaves of one parent", []podIface{{"a", 1, iface(link.KindIPVlan)}, {"b", 2, iface(link.KindIPVlan)}}, 0},
		{"ipvtap slaves of one parent", []podIface{{"a", 1, iface(link.KindIPVtap)}, {"b", 2, iface(link.KindIPVtap)}}, 0},
		{"an ipvlan next to a macvlan with its MAC", []podIface{{"a", 1, iface(link.KindIPVlan)}, {"b", 2, iface("macvlan")}}, 0},
		{"zero MACs", []podIface{{"a", 1, Interface{Name: "eth0", Kind: link.KindNetkit, MAC: "00:00:00:00:00:00"}}, {"b", 2, Interface{Name: "eth0", Kind: link.KindNetkit, MAC: "00:00:00:00:00:00"}}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &analysis{w: &World{}, r: &Report{}}
			a.duplicates(tt.ifaces)
			got := 0
			for _, f := range a.r.Findings {
				if f.Code == "mac-duplicate" {
					got++
				}
			}
			if got != tt.want {
				t.Errorf("%d mac-duplicate findings, want %d: %+v", got, tt.want, a.r.Findings)
			}
		})
	}
}
