package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/macguard-cni/macguard/internal/testutil"
)

const (
	// envKubeVirtLauncher names test/kubevirt's cmd/kubevirt-launcher
	// (make test-k8s builds it): KubeVirt's own network code, which this
	// module cannot import.
	envKubeVirtLauncher = "KUBEVIRT_LAUNCHER_BIN"
	// envWithoutMacguard is test/kubevirt's switch: the VM's networks
	// without macguard, to see the assertions fail.
	envWithoutMacguard = "KUBEVIRT_CHAIN_WITHOUT_MACGUARD"
	// kvBridges are the bridges of the VM's primary networks on the node
	// (with and without macguard), one each: the bridge plugin refuses a
	// bridge that already holds another network's gateway address.
	kvBridgeWith, kvBridgeWithout = "kv0", "kv1"
)

// kubevirtDomain is what cmd/kubevirt-launcher's domain command prints.
type kubevirtDomain struct {
	Interfaces []struct {
		Alias  string `json:"alias"`
		MAC    string `json:"mac"`
		Target string `json:"target"`
	} `json:"interfaces"`
	XML string `json:"xml"`
}

// vmNetworks is one way to wire the VM: its primary network (a Multus
// network marked default, bridge + host-local) and its host-device
// secondary, with or without macguard.
type vmNetworks struct {
	primary, secondary string
	nads               []string
}

// kubevirtNetworks applies the NADs of both wirings: with macguard (the
// primary chained with assign "always", the secondary as shipped in
// cni-conf/multus) and without it.
func kubevirtNetworks(t *testing.T, n *node) (with, without vmNetworks) {
	t.Helper()
	primary := func(name, bridge, subnet string, macguard bool) string {
		plugins := []any{map[string]any{"type": "bridge", "bridge": bridge, "isGateway": true,
			"ipam": map[string]any{"type": "host-local", "ranges": [][]map[string]string{{{"subnet": subnet}}}}}}
		if macguard {
			plugins = append(plugins, map[string]any{"type": "macguard", "assign": "always"})
		}
		b, _ := json.MarshalIndent(map[string]any{"cniVersion": "1.0.0", "name": name, "plugins": plugins}, "", "  ")
		return nadYAML("vms", name, string(b))
	}
	with = vmNetworks{primary: "vms/pod-always", secondary: "default/host-device-mac",
		nads: []string{primary("pod-always", kvBridgeWith, "192.168.61.0/24", true), hostDeviceNAD(t, n, "host-device-mac", true)}}
	without = vmNetworks{primary: "vms/pod-plain", secondary: "default/host-device-plain",
		nads: []string{primary("pod-plain", kvBridgeWithout, "192.168.62.0/24", false), hostDeviceNAD(t, n, "host-device-plain", false)}}
	for _, w := range []vmNetworks{with, without} {
		for _, nad := range w.nads {
			n.applyNAD(t, nad)
		}
	}
	// The bridge plugin never deletes its bridge; the node's namespace
	// (where this test runs) gets them back without.
	t.Cleanup(func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for _, br := range []string{kvBridgeWith, kvBridgeWithout} {
			if l, err := netlink.LinkByName(br); err == nil {
				if err := netlink.LinkDel(l); err != nil {
					t.Errorf("cleanup: deleting the bridge %s: %v", br, err)
				}
			}
		}
	})
	return with, without
}

// kubevirtLauncher runs cmd/kubevirt-launcher for VMI vm in namespace vms
// on networks w and decodes its JSON into out. The binary missing fails
// the test: KubeVirt's verdict is the point.
func kubevirtLauncher(t *testing.T, vm string, w vmNetworks, mac string, out any, args ...string) {
	t.Helper()
	bin := os.Getenv(envKubeVirtLauncher)
	if bin == "" {
		t.Fatalf("%s is not set: make test-k8s builds test/kubevirt's cmd/kubevirt-launcher (KubeVirt's own code) and sets it", envKubeVirtLauncher)
	}
	argv := append([]string{"-namespace", "vms", "-vm", vm, "-primary", w.primary, "-secondary", w.secondary, "-secondary-mac", mac}, args...)
	cmd := exec.Command(bin, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(argv, " "), err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("%s %s printed %q: %v", bin, strings.Join(argv, " "), stdout.String(), err)
	}
}

// launcherPod is what the node made of one virt-launcher pod: the MACs of
// its interfaces and the domain KubeVirt's code generated inside its
// network namespace.
type launcherPod struct {
	// eth0 is the pod interface of the primary network; secondary the
	// one of the host-device network (KubeVirt's name for it, pod<hash>).
	eth0, secondary string
	// macs are the MACs of the pod's links, by name.
	macs map[string]string
	// domain maps each domain interface's alias to its MAC and target.
	domain map[string][2]string
	xml    string
}

// runLauncherPod creates pod virt-launcher-<vm>-<suffix> with the
// annotations KubeVirt's virt-controller writes for the VMI on networks w
// (the secondary's spec macAddress mac), waits until it runs, and runs
// KubeVirt's domain generation in its network namespace. The pod is
// deleted before it returns.
func runLauncherPod(t *testing.T, n *node, vm, suffix string, w vmNetworks, mac string) launcherPod {
	t.Helper()
	var ann map[string]string
	kubevirtLauncher(t, vm, w, mac, &ann, "annotations")
	var sel []struct {
		Interface string `json:"interface"`
		MAC       string `json:"mac"`
	}
	if err := json.Unmarshal([]byte(ann[networksAnnotation]), &sel); err != nil || len(sel) != 1 || sel[0].MAC != mac || sel[0].Interface == "" {
		t.Fatalf("KubeVirt's annotations %v: want one network selection element with mac %s and an interface name (%v)", ann, mac, err)
	}
	p := n.podSpec("vms", "virt-launcher-"+vm+"-"+suffix, "")
	p.Annotations = ann
	n.createPod(t, p)
	p = n.runningPod(t, p.Namespace, p.Name)
	sb := n.sandboxOf(t, p)
	lp := launcherPod{eth0: "eth0", secondary: sel[0].Interface, macs: map[string]string{}, domain: map[string][2]string{}}
	for _, l := range podLinks(t, sb) {
		if l != "lo" {
			lp.macs[l] = podMAC(t, sb, l)
		}
	}
	for _, ifName := range []string{lp.eth0, lp.secondary} {
		if st := networkStatus(t, p, ifName); st.MAC != lp.macs[ifName] {
			t.Errorf("%s: network-status says %s for %s, the kernel %s", p.Name, st.MAC, ifName, lp.macs[ifName])
		}
	}
	var d kubevirtDomain
	kubevirtLauncher(t, vm, w, mac, &d, "-netns", fmt.Sprintf("/proc/%d/ns/net", sb.PID), "domain")
	for _, i := range d.Interfaces {
		lp.domain[i.Alias] = [2]string{i.MAC, i.Target}
	}
	lp.xml = d.XML
	t.Logf("%s (networks %s, %s): pod links %v; KubeVirt's domain interfaces (MAC, target) %v", p.Name, w.primary, w.secondary, lp.macs, lp.domain)
	n.deletePod(t, p.Namespace, p.Name)
	return lp
}

// testKubeVirtLauncher: a VM's virt-launcher pod made by the real node,
// its annotations written by KubeVirt's own code (virt-controller's
// generator): eth0 on a primary network chained with macguard (assign
// "always"; a Multus network the VMI marks default, which KubeVirt turns
// into Multus' default-network annotation) and a host-device secondary
// whose spec macAddress KubeVirt requests through the network selection
// element. KubeVirt's own domain generation (virt-launcher's converter
// and TapLibvirtSpecGenerator, test/kubevirt's cmd/kubevirt-launcher) then
// runs in the pod's network namespace: the guest's NIC on eth0 gets the
// MAC `macguardctl mac --vm` promises, the one on the secondary gets the
// requested MAC, and the pod device it is attached to carries that same
// MAC. libvirt accepts the domain.
//
// KubeVirt writes a spec macAddress into the domain without reading the
// pod, so for the secondary what macguard decides is whether the pod
// device agrees with the guest. The same VM on the networks without
// macguard is the control: eth0 keeps the veth's random MAC (so does the
// domain), and the host-device keeps its own MAC while the domain says the
// requested one. KUBEVIRT_CHAIN_WITHOUT_MACGUARD=1 runs the assertions on
// those networks: they must fail.
func testKubeVirtLauncher(t *testing.T, n *node) {
	n.ensureNamespace(t, "vms")
	const vm, mac = "vmk", "0a:58:c0:a8:3d:0a"
	with, without := kubevirtNetworks(t, n)
	if os.Getenv(envWithoutMacguard) == "1" {
		t.Logf("%s=1: the VM's networks without macguard; the assertions must fail", envWithoutMacguard)
		with = without
	}
	want := testutil.DerivedMAC(t, "--namespace", "vms", "--vm", vm, "--ifname", "eth0")

	lp := runLauncherPod(t, n, vm, "abcde", with, mac)
	if got := lp.macs[lp.eth0]; got != want {
		t.Errorf("eth0 has %s, macguardctl mac --vm %s says %s", got, vm, want)
	}
	if got := lp.domain["default"]; got != [2]string{want, lp.eth0} {
		t.Errorf("KubeVirt's domain interface \"default\" has (MAC, target) %q, want (%s, %s)", got, want, lp.eth0)
	}
	if got := lp.domain["hostdev"]; got != [2]string{mac, lp.secondary} {
		t.Errorf("KubeVirt's domain interface \"hostdev\" has (MAC, target) %q, want (%s, %s)", got, mac, lp.secondary)
	}
	if got := lp.macs[lp.secondary]; got != mac {
		t.Errorf("the guest's NIC on the secondary has %s; the pod device %s it is attached to has %s", mac, lp.secondary, got)
	}
	if out, ok := testutil.VirshDefine(t, []byte(lp.xml)); !ok {
		t.Errorf("libvirt refused the domain KubeVirt generated: %s\n%s", out, lp.xml)
	}

	t.Run("WithoutMacguard", func(t *testing.T) {
		lp := runLauncherPod(t, n, vm, "plain", without, mac)
		if got := lp.domain["default"][0]; got == want || got == "" || got != lp.macs[lp.eth0] {
			t.Errorf("without macguard KubeVirt's domain interface \"default\" has %q: want eth0's own MAC %s, not the VM's %s", got, lp.macs[lp.eth0], want)
		}
		if got := lp.domain["hostdev"][0]; got != mac {
			t.Errorf("KubeVirt's domain interface \"hostdev\" has %q, want the spec's %s", got, mac)
		}
		if got := lp.macs[lp.secondary]; got == mac || got == "" {
			t.Errorf("without macguard the host-device %s has %q: host-device was expected to ignore the requested %s", lp.secondary, got, mac)
		}
	})
}
