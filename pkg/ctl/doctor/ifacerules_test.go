package doctor

import (
	"encoding/json"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/macguard-cni/macguard/pkg/link"
)

// ruleCase is one interface put to one rule: the codes it must report and
// whether it must end the interface's checks. want is a substring of the
// first finding's message or remedy.
type ruleCase struct {
	name      string
	ifc       Interface
	vm        string // the pod runs this VM
	entry     string // macguard's entry in the cached chain; "" = not cached
	chainHead string // the plugin before it; "" = bridge
	runtimeMA string // runtimeConfig.mac in the cache
	applied   string // macguard's record: the MAC it applied; "" = no record
	result    string // the cached result's MAC; "" = none
	codes     []string
	done      bool
	want      string
}

func (rc ruleCase) check() *ifaceCheck {
	p := &Pod{Name: "default/web", Namespace: "default", PodName: "web", VM: rc.vm}
	var ca *cachedAttachment
	if rc.entry != "" || rc.chainHead != "" {
		head := rc.chainHead
		if head == "" {
			head = `{"type":"bridge"}`
		}
		plugins := []string{head}
		if rc.entry != "" {
			plugins = append(plugins, rc.entry)
		}
		e := &CacheEntry{ContainerID: "c1", IfName: rc.ifc.Name, Network: "net", RuntimeMAC: rc.runtimeMA,
			Args:   map[string]string{"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web"},
			Config: json.RawMessage(conflist("net", plugins...))}
		if rc.result != "" {
			e.Result = []ResultInterface{{Name: rc.ifc.Name, MAC: rc.result, Sandbox: "/var/run/netns/cni-1"}}
		}
		ca = newCachedAttachment(e)
	}
	var rec *Record
	if rc.applied != "" {
		rec = &Record{File: "/run/cni/macguard/r.json", ContainerID: "c1", IfName: rc.ifc.Name, AppliedMAC: rc.applied}
	}
	return newIfaceCheck(p, rc.ifc, ca, rec)
}

func TestIfaceRules(t *testing.T) {
	const universal = "00:16:3e:12:34:56" // a Xen OUI: universally administered
	l3 := Interface{Name: "eth0", Kind: link.KindNetkit, NetkitMode: link.NetkitL3, Encap: "none", Up: true}
	ipvlan := Interface{Name: "eth0", Kind: link.KindIPVlan, Encap: "ether", MAC: universal, Up: true}
	tun := Interface{Name: "eth0", Kind: "tun", Encap: "none", Up: true}
	mgCap := `{"type":"macguard","capabilities":{"mac":true}}`
	tests := []struct {
		rule  ifaceRule
		cases []ruleCase
	}{
		{cannotCarryRule, []ruleCase{
			{name: "veth", ifc: veth("eth0", universal)},
			{name: "netkit L3 in a pod", ifc: l3, codes: []string{"mac-unsupported-device"}, done: true, want: "netkit in L3 mode"},
			{name: "netkit L3 in a VM's pod", ifc: l3, vm: "vm1", codes: []string{"vm-cannot-start"}, done: true, want: "netkit-l2"},
			{name: "ipvlan, MAC requested", ifc: ipvlan, entry: mgCap, runtimeMA: "02:00:00:00:00:42", codes: []string{"mac-unsupported"}, done: true, want: "macvlan"},
			{name: "tun", ifc: tun},
			{name: "tun, MAC requested", ifc: tun, entry: mgCap, runtimeMA: "02:00:00:00:00:42", codes: []string{"mac-unsupported"}, done: true, want: "no Ethernet address"},
		}},
		{noLinkLayerRule, []ruleCase{
			{name: "veth", ifc: veth("eth0", universal)},
			{name: "tun", ifc: tun, done: true},
			{name: "netkit L3 (cannotCarryRule's)", ifc: l3},
		}},
		{missingRule, []ruleCase{
			{name: "has a MAC", ifc: veth("eth0", universal)},
			{name: "zero, not chained", ifc: veth("eth0", "00:00:00:00:00:00"), codes: []string{"mac-missing"}, done: true, want: "chain macguard"},
			{name: "empty, chained", ifc: veth("eth0", ""), entry: mgCap, codes: []string{"mac-missing"}, done: true, want: "something cleared it"},
			{name: "zero, assign never", ifc: veth("eth0", "00:00:00:00:00:00"), entry: `{"type":"macguard","assign":"never"}`, codes: []string{"mac-missing"}, done: true, want: `assign "never"`},
		}},
		{multicastRule, []ruleCase{
			{name: "unicast", ifc: veth("eth0", universal)},
			{name: "multicast", ifc: veth("eth0", "01:00:5e:00:00:01"), codes: []string{"mac-multicast"}},
		}},
		{driftRule, []ruleCase{
			{name: "no record", ifc: veth("eth0", universal)},
			{name: "as applied", ifc: veth("eth0", universal), applied: universal},
			{name: "changed since", ifc: veth("eth0", universal), applied: "0a:58:0a:00:00:05", codes: []string{"mac-drift"}, want: "r.json"},
		}},
		{resultDiffersRule, []ruleCase{
			{name: "not cached", ifc: veth("eth0", universal)},
			{name: "same", ifc: veth("eth0", universal), entry: mgCap, result: universal},
			{name: "differs", ifc: veth("eth0", universal), entry: mgCap, result: "0a:58:0a:00:00:05", codes: []string{"mac-differs-from-result"}},
		}},
		{requestIgnoredRule, []ruleCase{
			{name: "nothing requested", ifc: veth("eth0", universal), entry: mgCap},
			{name: "applied", ifc: veth("eth0", "02:00:00:00:00:42"), entry: mgCap, runtimeMA: "02:00:00:00:00:42"},
			{name: "not applied", ifc: veth("eth0", universal), entry: mgCap, runtimeMA: "02:00:00:00:00:42", codes: []string{"mac-request-ignored"}, want: "second owner"},
			{name: "macguard without the capability", ifc: veth("eth0", universal), entry: `{"type":"macguard"}`, runtimeMA: "02:00:00:00:00:42", codes: []string{"mac-request-ignored"}, want: `"capabilities": {"mac": true} to macguard's entry`},
			{name: "no macguard", ifc: veth("eth0", universal), chainHead: `{"type":"ipvlan","capabilities":{"mac":true}}`, runtimeMA: "02:00:00:00:00:42", codes: []string{"mac-request-ignored"}, want: "its main plugin ignores"},
		}},
		{notDerivedRule, []ruleCase{
			{name: "assign zero keeps a MAC", ifc: veth("eth0", universal), entry: mgCap},
			{name: "always, universal MAC", ifc: veth("eth0", universal), entry: `{"type":"macguard","assign":"always"}`, codes: []string{"mac-not-local"}},
			{name: "always, another local MAC", ifc: veth("eth0", "0a:58:0a:00:00:05"), entry: `{"type":"macguard","assign":"always"}`, codes: []string{"mac-not-derived"}},
			{name: "always, requested instead", ifc: veth("eth0", universal), entry: `{"type":"macguard","assign":"always","capabilities":{"mac":true}}`, runtimeMA: "02:00:00:00:00:42"},
		}},
	}
	for _, rt := range tests {
		name := runtime.FuncForPC(reflect.ValueOf(rt.rule).Pointer()).Name()
		name = name[strings.LastIndex(name, ".")+1:]
		for _, rc := range rt.cases {
			t.Run(name+"/"+rc.name, func(t *testing.T) {
				fs, done := rt.rule(rc.check())
				var codes []string
				for _, f := range fs {
					codes = append(codes, f.Code)
				}
				if !reflect.DeepEqual(codes, rc.codes) || done != rc.done {
					t.Fatalf("codes %q done %v, want %q done %v (%+v)", codes, done, rc.codes, rc.done, fs)
				}
				if rc.want != "" && !strings.Contains(fs[0].Message+" "+fs[0].Remedy, rc.want) {
					t.Errorf("%q / %q lacks %q", fs[0].Message, fs[0].Remedy, rc.want)
				}
			})
		}
	}
}
