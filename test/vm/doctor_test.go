package vm

import (
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/ctl/doctor"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/test/doctor/nodeworld"
)

// doctorWorld is a node whose conflist chains macguard after a netkit main
// plugin, as Cilium with netkit does, with the plugin's skip for devices
// that cannot carry a MAC (otherwise such pods would not exist).
func doctorWorld(t *testing.T) *nodeworld.World {
	t.Helper()
	w := nodeworld.New(t)
	w.WriteConf(t, "05-cilium.conflist", nodeworld.Conflist("cilium", `{"type":"cilium-cni"}`, `{"type":"macguard","onUnsupported":"skip"}`))
	return w
}

func doctorFinding(r doctor.Report, code, pod, ifName string) *doctor.Finding {
	for i, f := range r.Findings {
		if f.Code == code && f.Pod == pod && f.Interface == ifName {
			return &r.Findings[i]
		}
	}
	return nil
}

func doctorInterface(r doctor.Report, pod, ifName string) *doctor.PodInterface {
	for _, p := range r.Pods {
		for i, ifc := range p.Interfaces {
			if p.Name == pod && ifc.Name == ifName {
				return &p.Interfaces[i]
			}
		}
	}
	return nil
}

// macguardctl doctor on netkit L2 and L3 pods: it reports the device and
// its mode, says nothing is wrong with an ordinary pod on netkit L3 (no
// MAC is normal there) or on netkit L2, and names the virt-launcher pod on
// netkit L3 as a VM that will not start, with the plugin's remedy.
func TestDoctorNetkit(t *testing.T) {
	requireKernel(t, "netkit")
	bin := testutil.ToolBinary(t)
	w := doctorWorld(t)
	cilium := nodeworld.Conflist("cilium", `{"type":"cilium-cni"}`, `{"type":"macguard","onUnsupported":"skip"}`)
	pods := []struct {
		namespace, name, mode string
	}{
		{"default", "web", "l3"},
		{"default", "api", "l2"},
		{"vms", "virt-launcher-vm1-abcde", "l3"},
		{"vms", "virt-launcher-vm2-abcde", "l2"},
	}
	for _, p := range pods {
		pod := w.NewPod(t, p.namespace, p.name, true)
		w.Netkit(t, pod, "eth0", p.mode)
		mac := ""
		if p.mode == "l2" {
			mac = w.MAC(t, pod, "eth0")
		}
		w.CacheAttachment(t, pod, nodeworld.Attachment{Network: "cilium", IfName: "eth0", Conflist: cilium, ResultMAC: mac})
	}
	r, code := w.Run(t, bin)
	if code != 1 {
		t.Errorf("exit code %d, want 1 (the VM that will not start)", code)
	}
	want := []nodeworld.Problem{{Severity: doctor.Error, Code: "vm-cannot-start", Pod: "vms/virt-launcher-vm1-abcde", Interface: "eth0"}}
	if got := nodeworld.Problems(r); len(got) != 1 || got[0] != want[0] {
		t.Errorf("problems %v, want %v\n%+v", got, want, r.Findings)
	}
	f := doctorFinding(r, "vm-cannot-start", "vms/virt-launcher-vm1-abcde", "eth0")
	if f == nil || f.Remedy != link.NetkitL3Remedy("eth0") || !strings.Contains(f.Message, "vm1") {
		t.Errorf("vm-cannot-start finding %+v, want the plugin's netkit L3 remedy", f)
	}
	for _, p := range pods {
		ifc := doctorInterface(r, p.namespace+"/"+p.name, "eth0")
		if ifc == nil || ifc.Kind != "netkit" || ifc.NetkitMode != p.mode || (p.mode == "l3") != (ifc.MAC == "") {
			t.Errorf("%s/%s eth0 reported as %+v, want netkit %s", p.namespace, p.name, ifc, p.mode)
		}
	}
}

// ipvlan: a MAC requested for it cannot be honoured, and a VM on it will
// not start; both with the plugin's ipvlan remedy. The slaves of one parent
// share its MAC, which is not a duplicate.
func TestDoctorIPVlan(t *testing.T) {
	requireKernel(t, "veth", "ipvlan")
	bin := testutil.ToolBinary(t)
	w := doctorWorld(t)
	conf := nodeworld.Conflist("ipv", `{"type":"ipvlan","master":"eth0"}`, `{"type":"macguard","onUnsupported":"skip","capabilities":{"mac":true}}`)
	requested := w.NewPod(t, "default", "db", true)
	w.IPVlan(t, requested, "net1", netlink.IPVLAN_MODE_L2)
	w.CacheAttachment(t, requested, nodeworld.Attachment{Network: "ipv", IfName: "net1", Conflist: conf,
		ResultMAC: w.MAC(t, requested, "net1"), RuntimeMAC: "0a:58:0a:63:02:02"})
	vm := w.NewPod(t, "vms", "virt-launcher-vm3-abcde", true)
	w.IPVlan(t, vm, "net1", netlink.IPVLAN_MODE_L3)
	w.CacheAttachment(t, vm, nodeworld.Attachment{Network: "ipv", IfName: "net1", Conflist: conf, ResultMAC: w.MAC(t, vm, "net1")})

	r, code := w.Run(t, bin)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	want := []nodeworld.Problem{
		{Severity: doctor.Error, Code: "mac-unsupported", Pod: "default/db", Interface: "net1"},
		{Severity: doctor.Error, Code: "vm-cannot-start", Pod: "vms/virt-launcher-vm3-abcde", Interface: "net1"},
	}
	got := nodeworld.Problems(r)
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("problems %v, want %v\n%+v", got, want, r.Findings)
	}
	for _, f := range r.Findings {
		if (f.Code == "mac-unsupported" || f.Code == "vm-cannot-start") && f.Remedy != link.IPVlanRemedy("net1") {
			t.Errorf("%s: remedy %q, want the plugin's ipvlan remedy", f.Code, f.Remedy)
		}
	}
	if ifc := doctorInterface(r, "vms/virt-launcher-vm3-abcde", "net1"); ifc == nil || ifc.Kind != "ipvlan" || ifc.IPVlanMode != "l3" {
		t.Errorf("net1 reported as %+v, want ipvlan l3", ifc)
	}
}
