package doctor

import (
	"context"
	"errors"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/macguard-cni/macguard/pkg/link"
)

func vmObject(ns, name string, ifaces []any, networks []any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetAPIVersion("kubevirt.io/v1")
	u.SetKind("VirtualMachine")
	u.SetNamespace(ns)
	u.SetName(name)
	_ = unstructured.SetNestedSlice(u.Object, ifaces, "spec", "template", "spec", "domain", "devices", "interfaces")
	_ = unstructured.SetNestedSlice(u.Object, networks, "spec", "template", "spec", "networks")
	return u
}

func mwcObject(name string, hooks ...string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetAPIVersion("admissionregistration.k8s.io/v1")
	u.SetKind("MutatingWebhookConfiguration")
	u.SetName(name)
	var hs []any
	for _, h := range hooks {
		hs = append(hs, map[string]any{"name": h})
	}
	_ = unstructured.SetNestedSlice(u.Object, hs, "webhooks")
	return u
}

// GatherCluster reads VMs' interfaces (binding, pod network, MAC) and every
// mutating webhook's name through the dynamic client.
func TestGatherKubeVirt(t *testing.T) {
	dc := dynamicClient(t, []runtime.Object{&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}})
	vm := vmObject("vms", "vm1",
		[]any{map[string]any{"name": "default", "masquerade": map[string]any{}},
			map[string]any{"name": "sec", "bridge": map[string]any{}, "macAddress": "02:00:00:00:00:01"},
			map[string]any{"name": "pl", "binding": map[string]any{"name": "passt-plugin"}}},
		[]any{map[string]any{"name": "default", "pod": map[string]any{}}, map[string]any{"name": "sec", "multus": map[string]any{"networkName": "x"}}})
	if err := dc.Tracker().Create(vmResource, vm, "vms"); err != nil {
		t.Fatal(err)
	}
	if err := dc.Tracker().Create(mwcResource, mwcObject("macguard-webhook", "vm.webhook.macguard.io", "vmi.webhook.macguard.io"), ""); err != nil {
		t.Fatal(err)
	}
	c, err := GatherCluster(context.Background(), dc, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	want := []ClusterVM{{Namespace: "vms", Name: "vm1", Interfaces: []VMInterface{
		{Name: "default", Binding: "masquerade", PodNetwork: true},
		{Name: "sec", Binding: "bridge", MAC: "02:00:00:00:00:01"},
		{Name: "pl", Binding: "passt-plugin"}}}}
	if !reflect.DeepEqual(c.VMs, want) || c.VMErr != "" {
		t.Errorf("VMs %+v (%s), want %+v", c.VMs, c.VMErr, want)
	}
	if !reflect.DeepEqual(c.MACWebhooks, []string{"macguard-webhook/vm.webhook.macguard.io", "macguard-webhook/vmi.webhook.macguard.io"}) {
		t.Errorf("webhooks %v", c.MACWebhooks)
	}

	// Forbidden (no RBAC) is kept; KubeVirt not installed is no VMs.
	dc.PrependReactor("list", "virtualmachines", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden")
	})
	if c, _ = GatherCluster(context.Background(), dc, "node-1"); c.VMErr != "forbidden" {
		t.Errorf("VMErr %q", c.VMErr)
	}
}

func TestKubeVirtFindings(t *testing.T) {
	const launcher = "virt-launcher-vm1-abcde"
	masq := func(mac string) []VMInterface {
		return []VMInterface{{Name: "default", Binding: "masquerade", PodNetwork: true, MAC: mac}}
	}
	l3 := &Interface{Name: "eth0", Kind: link.KindNetkit, NetkitMode: link.NetkitL3, Encap: "none", Up: true}
	veth := &Interface{Name: "eth0", Kind: "veth", Encap: "ether", MAC: "0a:58:0a:00:00:05", Up: true}
	tests := []struct {
		name     string
		ifc      *Interface // the node's launcher pod eth0
		vms      []ClusterVM
		pods     []ClusterPod
		webhooks []string
		vmErr    string
		want     []codeAt
	}{
		{name: "netkit L3, VM without a spec MAC", ifc: l3, vms: []ClusterVM{{Namespace: "vms", Name: "other", Interfaces: masq("")}},
			want: []codeAt{{Error, "vm-cannot-start", "default/" + launcher, "eth0"}, {Error, "cluster-vm-no-spec-mac", "vm vms/other", "default"}}},
		// The node's own finding about its launcher (whose VM, default/vm1,
		// is not listed) stays.
		{name: "netkit L3, VM with a spec MAC", ifc: l3, vms: []ClusterVM{{Namespace: "vms", Name: "other", Interfaces: masq("02:00:00:00:00:01")}},
			want: []codeAt{{Error, "vm-cannot-start", "default/" + launcher, "eth0"}}},
		{name: "netkit L3, bridge binding is not this rule", ifc: l3,
			vms:  []ClusterVM{{Namespace: "vms", Name: "other", Interfaces: []VMInterface{{Name: "default", Binding: "bridge", PodNetwork: true}}}},
			want: []codeAt{{Error, "vm-cannot-start", "default/" + launcher, "eth0"}}},
		{name: "netkit L3, secondary without a MAC", ifc: l3,
			vms:  []ClusterVM{{Namespace: "vms", Name: "other", Interfaces: []VMInterface{{Name: "sec", Binding: "bridge"}}}},
			want: []codeAt{{Error, "vm-cannot-start", "default/" + launcher, "eth0"}}},
		{name: "veth node, VM without a spec MAC", ifc: veth, vms: []ClusterVM{{Namespace: "vms", Name: "other", Interfaces: masq("")}}},
		// The launcher on this node runs default/vm1: with a spec MAC
		// (masquerade) the node's vm-cannot-start becomes info.
		{name: "launcher on netkit L3 whose VM has a spec MAC", ifc: l3, vms: []ClusterVM{{Namespace: "default", Name: "vm1", Interfaces: masq("02:00:00:00:00:01")}},
			want: []codeAt{{Info, "vm-cannot-start", "default/" + launcher, "eth0"}}},
		{name: "launcher on netkit L3 whose VM has no spec MAC", ifc: l3, vms: []ClusterVM{{Namespace: "default", Name: "vm1", Interfaces: masq("")}},
			want: []codeAt{{Error, "vm-cannot-start", "default/" + launcher, "eth0"}, {Error, "cluster-vm-no-spec-mac", "vm default/vm1", "default"}}},
		{name: "launcher on netkit L3, bridge binding with a spec MAC", ifc: l3,
			vms:  []ClusterVM{{Namespace: "default", Name: "vm1", Interfaces: []VMInterface{{Name: "default", Binding: "bridge", PodNetwork: true, MAC: "02:00:00:00:00:01"}}}},
			want: []codeAt{{Error, "vm-cannot-start", "default/" + launcher, "eth0"}}},
		{name: "both MAC webhooks", webhooks: []string{"kubemacpool-mutator/mutatevirtualmachines.kubemacpool.io", "macguard-webhook/vm.webhook.macguard.io"},
			want: []codeAt{{Warning, "cluster-mac-webhooks-both", "", ""}}},
		{name: "one MAC webhook", webhooks: []string{"macguard-webhook/vm.webhook.macguard.io", "other/x.example.com"}},
		{name: "two VMs with one MAC", vms: []ClusterVM{
			{Namespace: "a", Name: "vm1", Interfaces: masq("02:00:00:00:00:07")}, {Namespace: "b", Name: "vm2", Interfaces: masq("02:00:00:00:00:07")}},
			want: []codeAt{{Error, "cluster-mac-duplicate", "", ""}}},
		{name: "a VM's MAC in its own launcher's network-status", vms: []ClusterVM{{Namespace: "a", Name: "vm1", Interfaces: masq("02:00:00:00:00:07")}},
			pods: []ClusterPod{{Namespace: "a", Name: "virt-launcher-vm1-xyz12", Launcher: true, NetworkStatus: `[{"name":"a/n","interface":"pod1","mac":"02:00:00:00:00:07"}]`}}},
		{name: "a pod carries a VM's MAC", vms: []ClusterVM{{Namespace: "a", Name: "vm1", Interfaces: masq("02:00:00:00:00:07")}},
			pods: []ClusterPod{{Namespace: "a", Name: "web", NetworkStatus: `[{"name":"a/n","interface":"net1","mac":"02:00:00:00:00:07"}]`}},
			want: []codeAt{{Error, "cluster-mac-duplicate", "", ""}}},
		{name: "VMs not listable", vmErr: "forbidden", want: []codeAt{{Info, "cluster-vms-unlisted", "", ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := healthyWorld()
			w.Cache[0].Result, w.Records = nil, nil
			w.Cache[0].Args["K8S_POD_NAME"] = launcher
			if tc.ifc != nil {
				w.Netns[0].Interfaces[1] = *tc.ifc
			}
			w.Cluster = &Cluster{Node: "node-1", NADs: []NAD{}, Pods: tc.pods, VMs: tc.vms, MACWebhooks: tc.webhooks, VMErr: tc.vmErr}
			if w.Cluster.Pods == nil {
				w.Cluster.Pods = []ClusterPod{}
			}
			r := Analyze(w)
			var got []codeAt
			for _, c := range codes(r, true) {
				switch c.Code {
				case "vm-cannot-start", "cluster-vm-no-spec-mac", "cluster-mac-webhooks-both", "cluster-mac-duplicate", "cluster-vms-unlisted":
					got = append(got, c)
				}
			}
			want := tc.want
			sortCodes(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("findings %v, want %v\n%+v", got, want, r.Findings)
			}
		})
	}
}
