package policy

import (
	"net"
	"strings"
	"testing"

	"github.com/macguard-cni/macguard/pkg/config"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/macaddr"
)

func TestDecide(t *testing.T) {
	derived := macaddr.MustParse("0a:58:00:00:00:99")
	req := &config.Requested{MAC: macaddr.MustParse("02:00:00:00:00:01"), Source: config.SourceRuntimeConfig}
	veth := func(m string) link.Observed {
		o := link.Observed{Name: "eth0", Kind: "veth", EncapType: "ether"}
		if m != "" {
			o.MAC = macaddr.MustParse(m)
		}
		return o
	}
	netkit := func(mode, m string) link.Observed {
		o := veth(m)
		o.Kind, o.NetkitMode = link.KindNetkit, mode
		return o
	}
	ipvlan := veth("52:54:00:00:00:01")
	ipvlan.Kind = link.KindIPVlan
	tun := link.Observed{Name: "tun0", Kind: "tun", EncapType: "none"}

	tests := []struct {
		name       string
		assign     config.Assign
		requested  *config.Requested
		link       link.Observed
		wantAction Action
		wantMAC    net.HardwareAddr
		wantReason string
	}{
		{"zero: has MAC -> keep", config.AssignZero, nil, veth("52:54:00:00:00:01"), Keep, macaddr.MustParse("52:54:00:00:00:01"), "already has a MAC"},
		{"zero: empty MAC -> derive", config.AssignZero, nil, veth(""), Set, derived, "no MAC"},
		{"zero: all-zero MAC -> derive", config.AssignZero, nil, veth("00:00:00:00:00:00"), Set, derived, "no MAC"},
		{"always: other MAC -> derive", config.AssignAlways, nil, veth("52:54:00:00:00:01"), Set, derived, `"always"`},
		{"always: already derived -> keep", config.AssignAlways, nil, veth("0a:58:00:00:00:99"), Keep, derived, "already has the stable MAC"},
		{"never: nothing requested -> keep", config.AssignNever, nil, veth(""), Keep, nil, `"never"`},
		{"requested wins over always", config.AssignAlways, req, veth("52:54:00:00:00:01"), Set, req.MAC, "runtimeConfig.mac"},
		{"requested with never", config.AssignNever, req, veth("52:54:00:00:00:01"), Set, req.MAC, "runtimeConfig.mac"},
		{"requested equals current -> keep", config.AssignZero, req, veth("02:00:00:00:00:01"), Keep, req.MAC, "already has the MAC requested"},
		{"netkit L3 zero -> unsupported", config.AssignZero, nil, netkit(link.NetkitL3, ""), Unsupported, derived, "netkit-l2"},
		{"netkit L3 requested -> unsupported", config.AssignZero, req, netkit(link.NetkitL3, ""), Unsupported, req.MAC, "macAddress"},
		{"netkit L2 always -> set", config.AssignAlways, nil, netkit(link.NetkitL2, "52:54:00:00:00:01"), Set, derived, `"always"`},
		{"ipvlan requested -> unsupported", config.AssignZero, req, ipvlan, Unsupported, req.MAC, "macvlan"},
		{"ipvlan zero -> keep (has parent MAC)", config.AssignZero, nil, ipvlan, Keep, ipvlan.MAC, "already has a MAC"},
		{"no link layer, zero -> keep", config.AssignZero, nil, tun, Keep, nil, "no Ethernet address"},
		{"no link layer, always -> keep", config.AssignAlways, nil, tun, Keep, nil, "no Ethernet address"},
		{"no link layer, requested -> unsupported", config.AssignZero, req, tun, Unsupported, req.MAC, "no Ethernet address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(Input{Assign: tt.assign, Requested: tt.requested, Derived: derived, Identity: "pod ns/p", Link: tt.link})
			if d.Action != tt.wantAction {
				t.Fatalf("action %v, want %v (reason %q)", d.Action, tt.wantAction, d.Reason)
			}
			if d.MAC.String() != tt.wantMAC.String() {
				t.Fatalf("MAC %v, want %v", d.MAC, tt.wantMAC)
			}
			if !strings.Contains(d.Reason, tt.wantReason) {
				t.Fatalf("reason %q lacks %q", d.Reason, tt.wantReason)
			}
		})
	}
}

func TestWhyUnsupported(t *testing.T) {
	tests := []struct {
		name          string
		link          link.Observed
		cannot, whyNo string // substrings of CannotCarry and WhyUnsupported; "" = none
	}{
		{"veth", link.Observed{Name: "eth0", Kind: "veth", EncapType: "ether"}, "", ""},
		{"netkit L2", link.Observed{Name: "eth0", Kind: link.KindNetkit, NetkitMode: link.NetkitL2, EncapType: "ether"}, "", ""},
		{"netkit L3", link.Observed{Name: "eth0", Kind: link.KindNetkit, NetkitMode: link.NetkitL3, EncapType: "none"}, "netkit-l2", "netkit-l2"},
		{"ipvlan", link.Observed{Name: "eth0", Kind: link.KindIPVlan, EncapType: "ether"}, "macvlan", "macvlan"},
		{"ipvtap", link.Observed{Name: "eth0", Kind: link.KindIPVtap, EncapType: "ether"}, "macvlan", "macvlan"},
		{"tun", link.Observed{Name: "tun0", Kind: "tun", EncapType: "none"}, "", "no Ethernet address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				fn   string
				got  string
				want string
			}{{"CannotCarry", CannotCarry(tt.link), tt.cannot}, {"WhyUnsupported", WhyUnsupported(tt.link), tt.whyNo}} {
				if (c.got == "") != (c.want == "") || !strings.Contains(c.got, c.want) {
					t.Errorf("%s = %q, want %q", c.fn, c.got, c.want)
				}
			}
		})
	}
}
