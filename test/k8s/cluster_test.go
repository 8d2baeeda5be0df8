package k8s

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// TestCluster runs the scenarios of issue 11 in order on one node: the
// DaemonSet must be installed before any pod can run macguard, and the
// uninstall comes last. A scenario that fails does not stop the next,
// except the installation, without which none can mean anything.
func TestCluster(t *testing.T) {
	n := theNode
	if !t.Run("DaemonSet", func(t *testing.T) { testDaemonSet(t, n) }) {
		t.Fatal("macguard is not installed on the node; the other scenarios would test nothing")
	}
	t.Run("PrimaryPod", func(t *testing.T) { testPrimaryPod(t, n) })
	t.Run("Secondaries", func(t *testing.T) { testSecondaries(t, n) })
	t.Run("VMRestart", func(t *testing.T) { testVMRestart(t, n) })
	t.Run("KubeVirtLauncher", func(t *testing.T) { testKubeVirtLauncher(t, n) })
	t.Run("BadRequest", func(t *testing.T) { testBadRequest(t, n) })
	t.Run("Restarts", func(t *testing.T) { testRestarts(t, n) })
	t.Run("Uninstall", func(t *testing.T) { testUninstall(t, n) })
}

// shippedNAD reads a NetworkAttachmentDefinition from cni-conf/multus as
// users get it.
func shippedNAD(t *testing.T, n *node, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.repo, "cni-conf", "multus", file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hostDeviceNAD is cni-conf/multus/host-device-mac.yaml, or (withMacguard
// false) the same network without macguard: what a user has before
// adding it.
func hostDeviceNAD(t *testing.T, n *node, name string, withMacguard bool) string {
	t.Helper()
	if withMacguard {
		return shippedNAD(t, n, "host-device-mac.yaml")
	}
	var nad struct {
		Spec struct {
			Config string `json:"config"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(shippedNAD(t, n, "host-device-mac.yaml")), &nad); err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal([]byte(nad.Spec.Config), &conf); err != nil {
		t.Fatal(err)
	}
	conf["name"] = name
	plugins := conf["plugins"].([]any)
	main := plugins[0].(map[string]any)
	// The shipped NAD owns eth2; the one without macguard gets eth3.
	main["device"] = "eth3"
	conf["plugins"] = []any{main}
	out, _ := json.MarshalIndent(conf, "", "  ")
	return nadYAML("default", name, string(out))
}

// bareMacvlanNAD is cni-conf/multus/macvlan-mac.yaml without macguard and
// without the "mac" capability.
func bareMacvlanNAD(t *testing.T, n *node) string {
	t.Helper()
	var nad struct {
		Spec struct {
			Config string `json:"config"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(shippedNAD(t, n, "macvlan-mac.yaml")), &nad); err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal([]byte(nad.Spec.Config), &conf); err != nil {
		t.Fatal(err)
	}
	main := conf["plugins"].([]any)[0].(map[string]any)
	delete(main, "capabilities")
	// A subnet of its own: the shipped NAD's leases are its own business.
	main["ipam"] = map[string]any{"type": "host-local", "ranges": [][]map[string]string{{{"subnet": "192.168.58.0/24"}}}}
	conf["name"] = "macvlan-bare"
	conf["plugins"] = []any{main}
	out, _ := json.MarshalIndent(conf, "", "  ")
	return nadYAML("default", "macvlan-bare", string(out))
}

// testPrimaryPod: a pod on the primary network only. macguard is chained
// with assign "zero" and nothing is requested: the MAC the bridge plugin
// gave eth0 is kept, no record is written, and the kernel, the runtime's
// result and Multus' annotation agree.
func testPrimaryPod(t *testing.T, n *node) {
	p := n.podSpec("default", "primary", "")
	n.createPod(t, p)
	p = n.runningPod(t, p.Namespace, p.Name)
	sb := n.sandboxOf(t, p)
	kernel := podMAC(t, sb, "eth0")
	st := networkStatus(t, p, "eth0")
	if !st.Default || st.Name != primaryNetwork {
		t.Errorf("network-status eth0 entry %+v: want the default network %s", st, primaryNetwork)
	}
	if st.MAC != kernel {
		t.Errorf("network-status says %s, eth0 has %s", st.MAC, kernel)
	}
	if res := n.cachedResultMAC(t, sb, "eth0"); res != kernel {
		t.Errorf("the runtime's CNI result says %s, eth0 has %s", res, kernel)
	}
	if rs := n.recordsOf(t, sb.ID); len(rs) != 0 {
		t.Errorf("a pass-through wrote records: %+v", rs)
	}
	logs := n.macguardLog(t, sb.ID)
	if len(logs) == 0 || !strings.Contains(logs[0], "action=keep") {
		t.Errorf("macguard's log for %s: %q, want action=keep", sb.ID, logs)
	}
}

// testSecondaries: pods asking for a MAC through their network selection
// element, on a macvlan NAD exactly as shipped and on host-device with and
// without macguard.
func testSecondaries(t *testing.T, n *node) {
	tests := []struct {
		name string
		nad  func(t *testing.T) string
		// network is the NAD's name; the pod asks for mac on it.
		network, mac string
		// device is the node device host-device moves into the pod.
		device string
		// applied: the requested MAC ends up on net1 (false: the main
		// plugin ignores it and nobody fixes that).
		applied bool
		// record: macguard changed the MAC and keeps a record of it.
		record bool
	}{
		{name: "MacvlanShipped", nad: func(t *testing.T) string { return shippedNAD(t, n, "macvlan-mac.yaml") },
			network: "macvlan-mac", mac: "0a:58:c0:a8:32:0a", applied: true},
		// The docs' claim that macvlan honours Multus' request by itself
		// (MAC= in CNI_ARGS), even without the "mac" capability and
		// without macguard.
		{name: "MacvlanBare", nad: func(t *testing.T) string { return bareMacvlanNAD(t, n) },
			network: "macvlan-bare", mac: "0a:58:c0:a8:38:0a", applied: true},
		{name: "HostDeviceWithoutMacguard", nad: func(t *testing.T) string { return hostDeviceNAD(t, n, "host-device-plain", false) },
			network: "host-device-plain", mac: "0a:58:c0:a8:35:0a", device: "eth3"},
		{name: "HostDeviceWithMacguard", nad: func(t *testing.T) string { return hostDeviceNAD(t, n, "host-device-mac", true) },
			network: "host-device-mac", mac: "0a:58:c0:a8:34:0a", device: "eth2", applied: true, record: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n.applyNAD(t, tc.nad(t))
			before := nodeLinks(t)
			p := n.podSpec("default", strings.ToLower(tc.name), selection("default", tc.network, tc.mac))
			n.createPod(t, p)
			p = n.runningPod(t, p.Namespace, p.Name)
			sb := n.sandboxOf(t, p)
			kernel := podMAC(t, sb, "net1")
			st := networkStatus(t, p, "net1")
			if st.Name != "default/"+tc.network {
				t.Errorf("network-status net1 entry %+v, want network default/%s", st, tc.network)
			}
			if st.MAC != kernel {
				t.Errorf("network-status says %s, net1 has %s", st.MAC, kernel)
			}
			if tc.applied != (kernel == tc.mac) {
				t.Errorf("net1 has %s with %s requested; want applied=%v", kernel, tc.mac, tc.applied)
			}
			if tc.device != "" && kernel != before[tc.device] && !tc.applied {
				t.Errorf("net1 has %s, the device %s had %s: who changed it?", kernel, tc.device, before[tc.device])
			}
			rs := n.recordsOf(t, sb.ID)
			if tc.record {
				if len(rs) != 1 || rs[0].IfName != "net1" || rs[0].AppliedMAC != tc.mac || (tc.device != "" && rs[0].OriginalMAC != before[tc.device]) {
					t.Errorf("records of %s: %+v, want one for net1 %s -> %s", sb.ID, rs, before[tc.device], tc.mac)
				}
			} else if len(rs) != 0 {
				t.Errorf("records of %s: %+v, want none", sb.ID, rs)
			}
			if tc.name == "MacvlanShipped" {
				if logs := n.macguardLog(t, sb.ID); !slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, "action=keep") }) {
					t.Errorf("macguard's log for %s: %q, want action=keep (macvlan applied the request itself)", sb.ID, logs)
				}
			}

			n.deletePod(t, p.Namespace, p.Name)
			if rs := n.recordsOf(t, sb.ID); len(rs) != 0 {
				t.Errorf("records left after the pod's deletion: %+v", rs)
			}
			if tc.device != "" {
				after := nodeLinks(t)
				if after[tc.device] != before[tc.device] {
					t.Errorf("after the deletion %s is on the node with MAC %q, had %q", tc.device, after[tc.device], before[tc.device])
				}
			}
		})
	}
}

// testVMRestart: a KubeVirt VM's launcher pod on a NAD with assign
// "always" gets the MAC derived from the VM, and its next launcher pod
// (another name suffix) gets the same one.
func testVMRestart(t *testing.T, n *node) {
	n.ensureNamespace(t, "vms")
	n.applyNAD(t, nadYAML("vms", "vm-net", fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "vm-net",
  "plugins": [
    {
      "type": "macvlan",
      "master": %q,
      "mode": "bridge",
      "ipam": { "type": "host-local", "ranges": [[ { "subnet": "192.168.60.0/24" } ]] }
    },
    { "type": "macguard", "assign": "always" }
  ]
}`, n.env["NAD_MASTER"])))
	want := testutil.DerivedMAC(t, "--namespace", "vms", "--vm", "vm1", "--ifname", "net1")
	for _, name := range []string{"virt-launcher-vm1-abcde", "virt-launcher-vm1-fghij"} {
		p := n.podSpec("vms", name, selection("vms", "vm-net", ""))
		n.createPod(t, p)
		p = n.runningPod(t, p.Namespace, p.Name)
		sb := n.sandboxOf(t, p)
		if got := podMAC(t, sb, "net1"); got != want {
			t.Errorf("%s: net1 has %s, macguardctl mac says %s", name, got, want)
		}
		if st := networkStatus(t, p, "net1"); st.MAC != want {
			t.Errorf("%s: network-status says %s, want %s", name, st.MAC, want)
		}
		if rs := n.recordsOf(t, sb.ID); len(rs) != 1 || rs[0].AppliedMAC != want {
			t.Errorf("%s: records %+v, want one with %s", name, rs, want)
		}
		n.deletePod(t, p.Namespace, p.Name)
		if rs := n.recordsOf(t, sb.ID); len(rs) != 0 {
			t.Errorf("%s: records left after the deletion: %+v", name, rs)
		}
	}
}

// testBadRequest: a multicast MAC requested on host-device + macguard. The
// pod never starts; the kubelet's Events carry macguard's refusal naming
// the value and where it came from; after the pod is deleted nothing is
// left (records, interfaces, leases of the primary network).
func testBadRequest(t *testing.T, n *node) {
	const bad = "0b:58:c0:a8:34:0a" // lowest bit of the first octet: multicast
	n.applyNAD(t, hostDeviceNAD(t, n, "host-device-mac", true))
	links, records, leases := nodeLinks(t), n.records(t), n.leases(t)
	p := n.podSpec("default", "bad-request", selection("default", "host-device-mac", bad))
	n.createPod(t, p)
	var msg string
	err := eventually(90*time.Second, func() error {
		evs, err := n.events(p.Namespace, p.Name)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.Reason == "FailedCreatePodSandBox" && strings.Contains(e.Message, "macguard") {
				msg = e.Message
				return nil
			}
		}
		return fmt.Errorf("no FailedCreatePodSandBox event naming macguard:\n%s", n.eventText(p.Namespace, p.Name))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("event: %s", msg)
	if !strings.Contains(msg, bad) {
		t.Errorf("the event does not name the value %s: %s", bad, msg)
	}
	if !strings.Contains(msg, "runtimeConfig.mac") && !strings.Contains(msg, "CNI_ARGS MAC") {
		t.Errorf("the event does not name the request's source: %s", msg)
	}
	if !strings.Contains(msg, "multicast") {
		t.Errorf("the event does not say what is wrong (multicast): %s", msg)
	}
	got, err := n.cs.CoreV1().Pods(p.Namespace).Get(ctx(t), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase == corev1.PodRunning {
		t.Errorf("the pod runs")
	}

	n.deletePod(t, p.Namespace, p.Name)
	if after := n.records(t); !maps.Equal(keys(after), keys(records)) {
		t.Errorf("records before %v, after %v", keys(records), keys(after))
	}
	if after := nodeLinks(t); !maps.Equal(after, links) {
		t.Errorf("node links before %v, after %v", links, after)
	}
	if after := n.leases(t); !maps.Equal(after, leases) {
		t.Errorf("IPAM leases before %v, after %v", leases, after)
	}
}

func keys[V any](m map[string]V) map[string]bool {
	k := map[string]bool{}
	for s := range m {
		k[s] = true
	}
	return k
}

// testRestarts: containerd and then the kubelet are restarted under
// running pods. The pods keep their sandboxes (no new CNI ADD), their MACs,
// and macguard's records stay exactly as they were (none duplicated).
func testRestarts(t *testing.T, n *node) {
	n.applyNAD(t, hostDeviceNAD(t, n, "host-device-mac", true))
	const mac = "0a:58:c0:a8:37:0a"
	specs := []*corev1.Pod{
		n.podSpec("default", "restart-primary", ""),
		n.podSpec("default", "restart-secondary", selection("default", "host-device-mac", mac)),
	}
	type seen struct {
		sandbox  sandbox
		macs     map[string]string
		restarts int32
	}
	observe := func(p *corev1.Pod) seen {
		p = n.runningPod(t, p.Namespace, p.Name)
		sb := n.sandboxOf(t, p)
		s := seen{sandbox: sb, macs: map[string]string{}, restarts: p.Status.ContainerStatuses[0].RestartCount}
		for _, l := range podLinks(t, sb) {
			if l != "lo" {
				s.macs[l] = podMAC(t, sb, l)
			}
		}
		return s
	}
	for _, p := range specs {
		n.createPod(t, p)
	}
	before := map[string]seen{}
	for _, p := range specs {
		before[p.Name] = observe(p)
	}
	if got := before["restart-secondary"].macs["net1"]; got != mac {
		t.Fatalf("restart-secondary: net1 has %s, want %s", got, mac)
	}
	records := n.records(t)

	n.nodeCtl(t, "restart", "containerd")
	n.nodeCtl(t, "restart", "kubelet")
	// Evidence that the new kubelet runs: a renewal of the node's Lease
	// after it started (the old one is gone by now).
	restarted := time.Now()
	err := eventually(2*time.Minute, func() error {
		l, err := n.cs.CoordinationV1().Leases("kube-node-lease").Get(ctx(t), n.env["NODE_NAME"], metav1.GetOptions{})
		if err != nil {
			return err
		}
		if l.Spec.RenewTime == nil || !l.Spec.RenewTime.After(restarted) {
			return fmt.Errorf("the node's Lease was not renewed since the kubelet's restart at %s: %+v", restarted.Format(time.RFC3339Nano), l.Spec.RenewTime)
		}
		nd, err := n.cs.CoreV1().Nodes().Get(ctx(t), n.env["NODE_NAME"], metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range nd.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("node not Ready after the restarts: %+v", nd.Status.Conditions)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The restarted kubelet syncs the pods (it would re-create a sandbox it
	// found broken, which is what must not happen): for 30 s, each pod
	// keeps its sandbox, MACs and restart count, and the records stay.
	deadline := time.Now().Add(30 * time.Second)
	for polls := 0; ; polls++ {
		for _, p := range specs {
			after := observe(p)
			b := before[p.Name]
			if after.sandbox != b.sandbox {
				t.Fatalf("%s: sandbox %+v became %+v (poll %d): the pod was re-created", p.Name, b.sandbox, after.sandbox, polls)
			}
			if !reflect.DeepEqual(after.macs, b.macs) {
				t.Fatalf("%s: MACs %v became %v (poll %d)", p.Name, b.macs, after.macs, polls)
			}
			if after.restarts != b.restarts {
				t.Fatalf("%s: restart count %d became %d (poll %d)", p.Name, b.restarts, after.restarts, polls)
			}
		}
		if after := n.records(t); !reflect.DeepEqual(after, records) {
			t.Fatalf("records changed across the restarts (poll %d):\nbefore %+v\nafter  %+v", polls, records, after)
		}
		if time.Now().After(deadline) {
			t.Logf("sandboxes, MACs, restart counts and records unchanged for 30 s after the kubelet's restart (%d polls)", polls+1)
			return
		}
		time.Sleep(3 * time.Second)
	}
}
