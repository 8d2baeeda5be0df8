package kubevirt

import (
	"strings"
	"testing"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// bridgeMain is the reference bridge plugin as a primary network's main
// plugin: a veth per pod on a node bridge, the pod end with the random MAC
// the kernel gives a veth.
func bridgeMain() map[string]any {
	return map[string]any{"type": "bridge", "bridge": "kvbr0", "isGateway": true}
}

// A VM on masquerade binding, primary network, veth from the bridge
// plugin chained with macguard (assign: always): the MAC KubeVirt writes
// into the domain is the one `macguardctl mac --vm` promises, libvirt
// accepts the domain, and the restarted VM (a new launcher pod, a new
// sandbox and container ID) gets the same MAC. Without macguard the domain
// carries the veth's random MAC, which changes on every restart.
func TestMasqueradeDomainMACIsStableAcrossRestarts(t *testing.T) {
	testutil.RequireRoot(t)
	const vm = "vm1"
	n := newNode(t, "pods", bridgeMain(), map[string]any{"assign": "always"})
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
		if out, ok := virshDefine(t, x); !ok {
			t.Errorf("%s: libvirt refused the domain KubeVirt generated: %s\n%s", l.pod, out, x)
		}
		seen = append(seen, macs...)
	}
	if len(seen) == 2 && seen[0] != seen[1] {
		t.Errorf("the restarted VM got another MAC: %s, then %s", seen[0], seen[1])
	}
}
