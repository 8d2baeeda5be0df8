package doctor

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	k8stesting "k8s.io/client-go/testing"
)

// object is an unstructured object of gvr's kind with the given spec.
func object(apiVersion, kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func felix(name string, spec map[string]any) *unstructured.Unstructured {
	return object("crd.projectcalico.org/v1", "FelixConfiguration", "", name, spec)
}

func ipPool(name, cidr, vxlan string) *unstructured.Unstructured {
	return object("crd.projectcalico.org/v1", "IPPool", "", name, map[string]any{"cidr": cidr, "vxlanMode": vxlan, "ipipMode": "Never"})
}

// vmSpec is a VMI spec with one interface and its network.
func vmSpec(iface, binding, network string) map[string]any {
	net := map[string]any{"name": iface}
	if network == "pod" {
		net["pod"] = map[string]any{}
	} else {
		net["multus"] = map[string]any{"networkName": network}
	}
	return map[string]any{
		"domain":   map[string]any{"devices": map[string]any{"interfaces": []any{map[string]any{"name": iface, binding: map[string]any{}}}}},
		"networks": []any{net},
	}
}

func vm(ns, name string, spec map[string]any) *unstructured.Unstructured {
	return object("kubevirt.io/v1", "VirtualMachine", ns, name, map[string]any{"template": map[string]any{"spec": spec}})
}

func vmi(ns, name string, spec map[string]any) *unstructured.Unstructured {
	return object("kubevirt.io/v1", "VirtualMachineInstance", ns, name, spec)
}

var pathGVR = map[string]schema.GroupVersionResource{
	"FelixConfiguration": calicoFelixResource, "IPPool": calicoIPPoolResource,
	"VirtualMachine": vmResource, "VirtualMachineInstance": kubevirtVMIResource,
}

// The cluster's packet-path checks on what the dynamic client returns:
// the Calico eBPF redirect with bridge-bound VMs (warning), Calico VXLAN
// pools with macvlan NADs (info), and every way of not being that case.
func TestClusterPathChecks(t *testing.T) {
	on, off := true, false
	macvlanNAD := nadObject("infra", "lan", conflist("lan", `{"type":"macvlan","master":"eth1"}`, mgEntry))
	bridgeNAD := nadObject("infra", "br", conflist("br", `{"type":"bridge"}`))
	ebpf := felix("default", map[string]any{"bpfEnabled": on})
	bridgeVM := vm("vms", "db", vmSpec("default", "bridge", "pod"))
	tests := []struct {
		name string
		objs []*unstructured.Unstructured
		// absent are the resources whose CRD is not installed.
		absent []schema.GroupVersionResource
		want   []codeAt
		in     []string
	}{
		{name: "no Calico and no KubeVirt CRDs", objs: []*unstructured.Unstructured{macvlanNAD},
			absent: []schema.GroupVersionResource{calicoFelixResource, calicoIPPoolResource, vmResource, kubevirtVMIResource}},
		{name: "eBPF with the default redirect and a bridge-bound VM",
			objs: []*unstructured.Unstructured{ebpf, bridgeVM, vm("vms", "web", vmSpec("default", "masquerade", "pod"))},
			want: []codeAt{{Warning, "cluster-calico-bpf-bridge-vm", "", ""}},
			in:   []string{"default (bpfRedirectToPeer L2Only, the default)", "VirtualMachine vms/db (default)", "bpfRedirectToPeer: Disabled", "masquerade"}},
		{name: "eBPF with redirect Enabled and a VMI of KubeVirt's default pod interface",
			objs: []*unstructured.Unstructured{felix("default", map[string]any{"bpfEnabled": on, "bpfRedirectToPeer": "Enabled"}), vmi("vms", "bare", map[string]any{"domain": map[string]any{}})},
			want: []codeAt{{Warning, "cluster-calico-bpf-bridge-vm", "", ""}},
			in:   []string{"bpfRedirectToPeer Enabled", "VirtualMachineInstance vms/bare ((default))"}},
		{name: "eBPF with redirect Disabled", objs: []*unstructured.Unstructured{felix("default", map[string]any{"bpfEnabled": on, "bpfRedirectToPeer": "Disabled"}), bridgeVM}},
		{name: "a node's FelixConfiguration turns eBPF on",
			objs: []*unstructured.Unstructured{felix("default", map[string]any{}), felix("node.node-1", map[string]any{"bpfEnabled": on}), bridgeVM},
			want: []codeAt{{Warning, "cluster-calico-bpf-bridge-vm", "", ""}},
			in:   []string{"node.node-1 (bpfRedirectToPeer L2Only, the default)"}},
		{name: "iptables data plane", objs: []*unstructured.Unstructured{felix("default", map[string]any{"bpfEnabled": off}), bridgeVM}},
		{name: "eBPF, VMs bridged only on secondaries", objs: []*unstructured.Unstructured{ebpf, vm("vms", "db", vmSpec("lan", "bridge", "infra/lan"))}},
		{name: "eBPF without KubeVirt", objs: []*unstructured.Unstructured{ebpf}, absent: []schema.GroupVersionResource{vmResource, kubevirtVMIResource}},
		{name: "VXLAN pool and a macvlan NAD", objs: []*unstructured.Unstructured{ipPool("default-ipv4-ippool", "10.244.0.0/16", "Always"), macvlanNAD, bridgeNAD},
			want: []codeAt{{Info, "cluster-calico-vxlan-macvlan", "", ""}},
			in:   []string{"default-ipv4-ippool (10.244.0.0/16, vxlanMode Always)", "infra/lan", "path-asymmetric"}},
		{name: "VXLAN CrossSubnet pool", objs: []*unstructured.Unstructured{ipPool("p", "10.244.0.0/16", "CrossSubnet"), macvlanNAD},
			want: []codeAt{{Info, "cluster-calico-vxlan-macvlan", "", ""}}},
		{name: "IPIP pool and a macvlan NAD", objs: []*unstructured.Unstructured{ipPool("p", "10.244.0.0/16", "Never"), macvlanNAD}},
		{name: "VXLAN pool, no macvlan NAD", objs: []*unstructured.Unstructured{ipPool("p", "10.244.0.0/16", "Always"), bridgeNAD}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var nads []*unstructured.Unstructured
			dc := dynamicClient(t, nil)
			for _, o := range tc.objs {
				if o.GetKind() == "NetworkAttachmentDefinition" {
					nads = append(nads, o)
					continue
				}
				if err := dc.Tracker().Create(pathGVR[o.GetKind()], o, o.GetNamespace()); err != nil {
					t.Fatal(err)
				}
			}
			for _, o := range nads {
				if err := dc.Tracker().Create(NADResource, o, o.GetNamespace()); err != nil {
					t.Fatal(err)
				}
			}
			for _, gvr := range tc.absent {
				dc.PrependReactor("list", gvr.Resource, func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewNotFound(gvr.GroupResource(), "")
				})
			}
			r := clusterReport(t, dc)
			got := codes(r, true)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("findings %v, want %v\n%+v", got, tc.want, r.Findings)
			}
			for _, f := range r.Findings {
				for _, s := range tc.in {
					if !strings.Contains(f.Message+" | "+f.Remedy, s) {
						t.Errorf("%q not in %s | %s", s, f.Message, f.Remedy)
					}
				}
			}
		})
	}
}

// A list that fails for another reason than a missing CRD (RBAC) is an
// info finding that names it, and the other checks still run.
func TestClusterPathsForbidden(t *testing.T) {
	dc := dynamicClient(t, nil)
	dc.PrependReactor("list", "virtualmachineinstances", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(kubevirtVMIResource.GroupResource(), "", errors.New("RBAC"))
	})
	r := clusterReport(t, dc)
	want := []codeAt{{Info, "cluster-paths-unlisted", "", ""}}
	if got := codes(r, true); !reflect.DeepEqual(got, want) {
		t.Fatalf("findings %v, want %v", got, want)
	}
	if f := r.Findings[0]; !strings.Contains(f.Message, "virtualmachineinstances.kubevirt.io") || !strings.Contains(f.Remedy, "deploy/components/doctor") {
		t.Errorf("finding %+v", f)
	}
}

// clusterReport gathers the cluster from dc into a healthy node's world and
// analyses it.
func clusterReport(t *testing.T, dc dynamic.Interface) Report {
	t.Helper()
	c, err := GatherCluster(context.Background(), dc, "")
	if err != nil {
		t.Fatal(err)
	}
	w := healthyWorld()
	w.Cluster = c
	return Analyze(w)
}
