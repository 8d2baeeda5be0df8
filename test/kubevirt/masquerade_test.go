package kubevirt

import (
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	v1 "kubevirt.io/api/core/v1"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/ctl/webhook"
)

// bridgeMain is the reference bridge plugin as a primary network's main
// plugin: a veth per pod on a node bridge, the pod end with the random MAC
// the kernel gives a veth.
func bridgeMain() map[string]any {
	return map[string]any{"type": "bridge", "bridge": "kvbr0", "isGateway": true}
}

// netkitMain is the netkit-cni fixture (test/fixtures/netkit-cni), a
// stand-in for cilium-cni in netkit mode "l3" or "l2".
func netkitMain(mode string) map[string]any {
	return map[string]any{"type": "netkit-cni", "mode": mode}
}

// A VM on masquerade binding (or a binding plugin attached through a tap),
// primary network, chained with macguard (assign: always): the MAC KubeVirt
// writes into the domain is the one `macguardctl mac --vm` promises,
// libvirt accepts the domain, and the restarted VM (a new launcher pod, a
// new sandbox and container ID) gets the same MAC. Without macguard the
// domain carries the device's random MAC, which changes on every restart.
func TestMasqueradeDomainMACIsStableAcrossRestarts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		main  map[string]any
		needs []string
	}{
		{"veth from the bridge plugin", bridgeMain(), []string{"veth", "bridge"}},
		{"netkit L2", netkitMain("l2"), []string{"netkit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.RequireKernel(t, vmSuite, tc.needs...)
			const vm = "vm1"
			n := newNode(t, "pods", tc.main, map[string]any{"assign": "always"})
			want := vmMAC(t, vm)

			var seen []string
			for _, suffix := range []string{"abcde", "fghij"} {
				l := n.startLauncher(t, vm, suffix)
				if got := testutil.MAC(t, l.ns, "eth0").String(); got != want {
					t.Errorf("%s: pod interface eth0 has %s, want %s (macguardctl mac --vm %s)", l.pod, got, want, vm)
				}
				d := launcherDomain(t, masqueradeVMI(vm, ""), l.ns)
				macs := domainMACs(d)
				if len(macs) != 1 || macs[0] != want {
					t.Errorf("%s: KubeVirt's domain has interface MACs %q, want [%s]", l.pod, macs, want)
				}
				x := domainXML(t, d)
				if !strings.Contains(string(x), `<mac address="`+want+`">`) {
					t.Errorf("%s: the domain XML does not carry <mac address=%q>:\n%s", l.pod, want, x)
				}
				if out, ok := testutil.VirshDefine(t, x); !ok {
					t.Errorf("%s: libvirt refused the domain KubeVirt generated: %s\n%s", l.pod, out, x)
				}
				seen = append(seen, macs...)
			}
			if len(seen) == 2 && seen[0] != seen[1] {
				t.Errorf("the restarted VM got another MAC: %s, then %s", seen[0], seen[1])
			}
		})
	}
}

// The failure as users report it, on Cilium's default netkit datapath (L3):
// the pod interface has no MAC and cannot get one (macguard, with
// onUnsupported: skip, lets the pod start and changes nothing), so
// KubeVirt's generator writes <mac address=""/> and libvirt refuses the
// domain with "unable to parse mac address ”". The remedy on L3 is the
// VMI spec's macAddress (what the companion webhook fills in, the MAC
// `macguardctl mac --vm` derives): KubeVirt then takes the spec's MAC and
// libvirt accepts the domain.
func TestNetkitL3DomainNeedsTheSpecMAC(t *testing.T) {
	testutil.RequireKernel(t, vmSuite, "netkit")
	const vm = "vm3"
	n := newNode(t, "cilium", netkitMain("l3"), map[string]any{"onUnsupported": "skip"})
	l := n.startLauncher(t, vm, "abcde")

	d := launcherDomain(t, masqueradeVMI(vm, ""), l.ns)
	if macs := domainMACs(d); len(macs) != 1 || macs[0] != "" {
		t.Errorf("on netkit L3 KubeVirt's domain has interface MACs %q, want [\"\"] (the pod interface has none)", macs)
	}
	x := domainXML(t, d)
	out, ok := testutil.VirshDefine(t, x)
	if ok || !strings.Contains(out, "unable to parse mac address ''") {
		t.Errorf("libvirt on the netkit L3 domain: accepted %v, said %q; want it refused with \"unable to parse mac address ''\"\n%s", ok, out, x)
	}

	// The fix, end to end: macguard's webhook admits the VMI as the API
	// server would send it (its Review on a CREATE request, the JSON patch
	// applied as the API server applies it), and KubeVirt's generator takes
	// the spec MAC the webhook wrote: the MAC `macguardctl mac --vm-interface`
	// predicts.
	spec := testutil.DerivedMAC(t, "--namespace", vmNamespace, "--vm", vm, "--vm-interface", "default")
	vmi := webhookAdmitted(t, masqueradeVMI(vm, ""))
	if ifs := vmi.Spec.Domain.Devices.Interfaces; len(ifs) != 1 || ifs[0].MacAddress != spec {
		t.Fatalf("the webhook left the VMI's interfaces as %+v, want macAddress %s", ifs, spec)
	}
	d = launcherDomain(t, vmi, l.ns)
	if macs := domainMACs(d); len(macs) != 1 || macs[0] != spec {
		t.Errorf("with the webhook's spec macAddress %s KubeVirt's domain has interface MACs %q", spec, macs)
	}
	if out, ok := testutil.VirshDefine(t, domainXML(t, d)); !ok {
		t.Errorf("libvirt refused the netkit L3 domain with the webhook's spec MAC %s: %s", spec, out)
	}
}

// webhookAdmitted is vmi after macguard's webhook: a CREATE admission
// request for it goes through webhook.Mutator.Review (no salt or prefix, as
// `macguardctl mac` without them), and the JSON patch it answers is applied
// with the library the API server's admission chain uses.
func webhookAdmitted(t *testing.T, vmi *v1.VirtualMachineInstance) *v1.VirtualMachineInstance {
	t.Helper()
	raw, err := json.Marshal(vmi)
	if err != nil {
		t.Fatal(err)
	}
	req := &admissionv1.AdmissionRequest{
		UID:       "kubevirt-test",
		Kind:      metav1.GroupVersionKind{Group: "kubevirt.io", Version: "v1", Kind: "VirtualMachineInstance"},
		Operation: admissionv1.Create,
		Namespace: vmi.Namespace,
		Name:      vmi.Name,
		Object:    k8sruntime.RawExtension{Raw: raw},
	}
	resp, decisions := (&webhook.Mutator{}).Review(req)
	if !resp.Allowed || len(resp.Patch) == 0 {
		t.Fatalf("the webhook did not patch VMI %s/%s: allowed %v, decisions %+v, warnings %q", vmi.Namespace, vmi.Name, resp.Allowed, decisions, resp.Warnings)
	}
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("the webhook's patch %s: %v", resp.Patch, err)
	}
	patched, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("applying the webhook's patch %s: %v", resp.Patch, err)
	}
	out := &v1.VirtualMachineInstance{}
	if err := json.Unmarshal(patched, out); err != nil {
		t.Fatal(err)
	}
	return out
}
