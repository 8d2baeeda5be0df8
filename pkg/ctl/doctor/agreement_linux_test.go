package doctor

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/macguard-cni/macguard/pkg/config"
	"github.com/macguard-cni/macguard/pkg/identity"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/macaddr"
	"github.com/macguard-cni/macguard/pkg/policy"
)

// verdictCodes are the doctor's findings that say what macguard's ADD
// would do with an interface: change it (the first four), or refuse it.
var (
	changeCodes      = []string{"mac-missing", "mac-request-ignored", "mac-not-derived", "mac-not-local"}
	unsupportedCodes = []string{"mac-unsupported"}
)

// TestDoctorAgreesWithPolicy feeds the same observed links to the plugin's
// decision (config.Parse, Requested, identity, macaddr.Derive, then
// policy.Decide, as ADD does) and to the doctor (as gathered, then
// Analyze), and asserts they agree: where ADD would keep the interface the
// doctor reports no change, where it would set a MAC the doctor reports
// one thing wrong with the MAC, and where the device cannot carry the MAC
// the doctor says so.
func TestDoctorAgreesWithPolicy(t *testing.T) {
	const (
		pod  = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"
		req  = "02:00:00:00:00:42"
		some = "52:54:00:12:34:56"
	)
	derived := macaddr.Derive(macaddr.Input{Kind: identity.KindPod, Key: "default/web", IfName: "eth0"}).String()
	eth := func(kind, mac string) link.Observed {
		return link.Observed{Name: "eth0", Kind: kind, EncapType: "ether", MAC: parseMAC(mac), Up: true}
	}
	netkit := func(mode, mac string) link.Observed {
		o := eth(link.KindNetkit, mac)
		o.NetkitMode = mode
		if mode == link.NetkitL3 {
			o.EncapType = "none"
		}
		return o
	}
	tun := link.Observed{Name: "eth0", Kind: "tun", EncapType: "none", Up: true}
	tests := []struct {
		name   string
		link   link.Observed
		assign string // macguard's "assign", "" for the default
		req    string // runtimeConfig.mac, through the mac capability
		// own is the doctor's own finding where the plugin keeps the
		// interface as it is: a missing MAC is worth a warning even
		// where assign "never" leaves it so (the remedy says why).
		own string
	}{
		{"veth, zero MAC", eth("veth", "00:00:00:00:00:00"), "", "", ""},
		{"veth, no MAC", eth("veth", ""), "", "", ""},
		{"veth with a MAC", eth("veth", some), "", "", ""},
		{"veth, always, another MAC", eth("veth", "0a:58:0a:00:00:05"), "always", "", ""},
		{"veth, always, universal MAC", eth("veth", "00:16:3e:12:34:56"), "always", "", ""},
		{"veth, always, the derived MAC", eth("veth", derived), "always", "", ""},
		{"veth, requested MAC not applied", eth("veth", some), "", req, ""},
		{"veth, requested MAC applied", eth("veth", req), "", req, ""},
		{"veth, never, requested MAC applied", eth("veth", req), "never", req, ""},
		{"veth, never, a MAC", eth("veth", some), "never", "", ""},
		{"veth, never, zero MAC", eth("veth", "00:00:00:00:00:00"), "never", "", "mac-missing"},
		{"veth, never, requested MAC not applied", eth("veth", "00:00:00:00:00:00"), "never", req, ""},
		{"multicast MAC", eth("veth", "01:00:5e:00:00:01"), "", "", ""},
		{"multicast MAC, always", eth("veth", "01:00:5e:00:00:01"), "always", "", ""},
		{"macvlan, requested MAC not applied", eth("macvlan", some), "", req, ""},
		{"netkit L3", netkit(link.NetkitL3, ""), "", "", ""},
		{"netkit L3, always", netkit(link.NetkitL3, ""), "always", "", ""},
		{"netkit L3, requested MAC", netkit(link.NetkitL3, ""), "", req, ""},
		{"netkit L2, zero MAC", netkit(link.NetkitL2, "00:00:00:00:00:00"), "", "", ""},
		{"netkit L2 with a MAC", netkit(link.NetkitL2, some), "", "", ""},
		{"netkit L2, requested MAC not applied", netkit(link.NetkitL2, some), "", req, ""},
		{"ipvlan", eth(link.KindIPVlan, some), "", "", ""},
		{"ipvlan, requested MAC", eth(link.KindIPVlan, some), "", req, ""},
		{"ipvtap, requested MAC", eth(link.KindIPVtap, some), "", req, ""},
		{"tun", tun, "", "", ""},
		{"tun, always", tun, "always", "", ""},
		{"tun, requested MAC", tun, "", req, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entry := map[string]any{"type": "macguard", "capabilities": map[string]any{"mac": true}}
			if tt.assign != "" {
				entry["assign"] = tt.assign
			}
			raw, _ := json.Marshal(entry)

			// The plugin: what ADD decides for this link.
			stdin := raw
			if tt.req != "" {
				stdin = withRuntimeMAC(raw, tt.req)
			}
			cfg, err := config.Parse(stdin, pod)
			if err != nil {
				t.Fatal(err)
			}
			requested, err := cfg.Requested()
			if err != nil {
				t.Fatal(err)
			}
			id, err := identity.Resolve(cfg.Identity, cfg.Pod, "c1")
			if err != nil {
				t.Fatal(err)
			}
			d := policy.Decide(policy.Input{Assign: cfg.Assign, Requested: requested, Identity: id.String(), Link: tt.link,
				Derived: macaddr.Derive(macaddr.Input{Kind: id.Kind, Key: id.Key, IfName: tt.link.Name, Salt: cfg.Salt, Prefix: cfg.Prefix})})

			// The doctor: the same link as Gather reports it, in a pod
			// whose cached attachment ran the same configuration.
			w := healthyWorld()
			w.Netns[0].Interfaces[1] = interfaces([]link.Inventoried{{Observed: tt.link}})[0]
			w.Cache[0].Config = json.RawMessage(conflist("net", `{"type":"bridge"}`, string(raw)))
			w.Cache[0].RuntimeMAC = tt.req
			w.Cache[0].Result, w.Records = nil, nil
			var verdict []string
			for _, f := range Analyze(w).Findings {
				if f.Interface == "eth0" && (slices.Contains(changeCodes, f.Code) || slices.Contains(unsupportedCodes, f.Code)) {
					verdict = append(verdict, f.Code)
				}
			}

			ok := false
			switch d.Action {
			case policy.Keep:
				var own []string
				if tt.own != "" {
					own = []string{tt.own}
				}
				ok = slices.Equal(verdict, own)
			case policy.Set:
				ok = len(verdict) == 1 && slices.Contains(changeCodes, verdict[0])
			case policy.Unsupported:
				ok = slices.Equal(verdict, unsupportedCodes)
			}
			if !ok {
				t.Errorf("policy.Decide: %s (%s); the doctor reports %q", d.Action, d.Reason, verdict)
			}
		})
	}
}
