package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/macguard-cni/macguard/pkg/ctl/cniconf"
)

// The cluster's side of the packet-path checks (paths.go is the node's):
// Calico's eBPF data plane redirecting to bridge-bound VMs, and Calico
// VXLAN pools next to macvlan NADs. Calico's and KubeVirt's objects are
// read through the dynamic client, as unstructured objects: no module of
// theirs is linked, and a cluster without their CRDs is simply not one of
// these cases.

// Resources of Calico (its CRDs, as calico-node and the operator install
// them) and KubeVirt's VMIs (its VMs are kubevirt.go's, read once for every
// check).
var (
	calicoFelixResource  = schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "felixconfigurations"}
	calicoIPPoolResource = schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "ippools"}
	kubevirtVMIResource  = schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "virtualmachineinstances"}
)

// bpfRedirectDefault is what Felix does when bpfRedirectToPeer is not set.
const bpfRedirectDefault = "L2Only"

// FelixConfig is one FelixConfiguration's eBPF settings; empty strings and a nil
// BPFEnabled are fields not set.
type FelixConfig struct {
	Name              string `json:"name"`
	BPFEnabled        *bool  `json:"bpfEnabled,omitempty"`
	BPFRedirectToPeer string `json:"bpfRedirectToPeer,omitempty"`
}

// CalicoIPPool is a Calico IP pool's encapsulation.
type CalicoIPPool struct {
	Name      string `json:"name"`
	CIDR      string `json:"cidr,omitempty"`
	VXLANMode string `json:"vxlanMode,omitempty"`
}

// PathVM is a KubeVirt VirtualMachineInstance with the interfaces it binds
// to the pod network with bridge (a VM's are read from Cluster.VMs).
type PathVM struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// PodBridge are its interfaces on the pod network with bridge binding
	// ("(default)" for the interface KubeVirt adds when none is listed).
	PodBridge []string `json:"podBridge,omitempty"`
}

// PathCluster is what the cluster's packet-path checks read.
type PathCluster struct {
	// Felix is nil without Calico's FelixConfiguration CRD; IPPools nil
	// without its IPPool CRD; VMIs nil without KubeVirt's VMI CRD.
	Felix   []FelixConfig  `json:"felix,omitempty"`
	IPPools []CalicoIPPool `json:"ipPools,omitempty"`
	VMIs    []PathVM       `json:"vmis,omitempty"`
	// Errs are the lists that failed for another reason than a missing
	// CRD (RBAC, mostly).
	Errs []string `json:"errs,omitempty"`
}

// gatherPaths reads FelixConfigurations, IP pools and VMIs. A CRD that
// is not installed leaves its list nil; any other failure is kept in Errs.
func gatherPaths(ctx context.Context, dc dynamic.Interface) *PathCluster {
	pc := &PathCluster{}
	list := func(gvr schema.GroupVersionResource, each func(u *unstructured.Unstructured)) bool {
		l, err := dc.Resource(gvr).Namespace("").List(ctx, metav1.ListOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return false
		case err != nil:
			pc.Errs = append(pc.Errs, fmt.Sprintf("listing %s: %v", gvr.GroupResource(), err))
			return false
		}
		for i := range l.Items {
			each(&l.Items[i])
		}
		return true
	}
	if list(calicoFelixResource, func(u *unstructured.Unstructured) {
		f := FelixConfig{Name: u.GetName()}
		if b, ok, _ := unstructured.NestedBool(u.Object, "spec", "bpfEnabled"); ok {
			f.BPFEnabled = &b
		}
		f.BPFRedirectToPeer, _, _ = unstructured.NestedString(u.Object, "spec", "bpfRedirectToPeer")
		pc.Felix = append(pc.Felix, f)
	}) && pc.Felix == nil {
		pc.Felix = []FelixConfig{}
	}
	if list(calicoIPPoolResource, func(u *unstructured.Unstructured) {
		p := CalicoIPPool{Name: u.GetName()}
		p.CIDR, _, _ = unstructured.NestedString(u.Object, "spec", "cidr")
		p.VXLANMode, _, _ = unstructured.NestedString(u.Object, "spec", "vxlanMode")
		pc.IPPools = append(pc.IPPools, p)
	}) && pc.IPPools == nil {
		pc.IPPools = []CalicoIPPool{}
	}
	if list(kubevirtVMIResource, func(u *unstructured.Unstructured) {
		spec, _, _ := unstructured.NestedMap(u.Object, "spec")
		pc.VMIs = append(pc.VMIs, PathVM{Kind: "VirtualMachineInstance", Namespace: u.GetNamespace(), Name: u.GetName(), PodBridge: podBridges(spec)})
	}) && pc.VMIs == nil {
		pc.VMIs = []PathVM{}
	}
	sort.Slice(pc.Felix, func(i, j int) bool { return pc.Felix[i].Name < pc.Felix[j].Name })
	sort.Slice(pc.IPPools, func(i, j int) bool { return pc.IPPools[i].Name < pc.IPPools[j].Name })
	sort.Slice(pc.VMIs, func(i, j int) bool { return pc.VMIs[i].key() < pc.VMIs[j].key() })
	return pc
}

func (v PathVM) key() string { return v.Namespace + "/" + v.Name + "/" + v.Kind }

// podBridges returns the interfaces of a VMI spec (a VM's template spec)
// that bind the pod network with bridge. With no interface and no network
// listed, KubeVirt adds one on the pod network with its default binding,
// bridge (unless autoattachPodInterface is false or the cluster's
// defaultNetworkInterface says otherwise, which the doctor does not read).
func podBridges(spec map[string]any) []string {
	ifaces, _, _ := unstructured.NestedSlice(spec, "domain", "devices", "interfaces")
	nets, _, _ := unstructured.NestedSlice(spec, "networks")
	if len(ifaces) == 0 && len(nets) == 0 {
		if auto, ok, _ := unstructured.NestedBool(spec, "domain", "devices", "autoattachPodInterface"); !ok || auto {
			return []string{"(default)"}
		}
		return nil
	}
	pod := map[string]bool{}
	for _, n := range nets {
		m, _ := n.(map[string]any)
		if _, ok := m["pod"]; ok {
			name, _ := m["name"].(string)
			pod[name] = true
		}
	}
	var out []string
	for _, i := range ifaces {
		m, _ := i.(map[string]any)
		name, _ := m["name"].(string)
		if _, ok := m["bridge"]; ok && pod[name] {
			out = append(out, name)
		}
	}
	return out
}

// vmPodBridges are a VM's interfaces on the pod network with bridge
// binding; a VM that lists no interface gets KubeVirt's default one, bridge
// on the pod network (see podBridges).
func vmPodBridges(v ClusterVM) []string {
	if len(v.Interfaces) == 0 {
		return []string{"(default)"}
	}
	var out []string
	for _, i := range v.Interfaces {
		if i.PodNetwork && i.Binding == "bridge" {
			out = append(out, i.Name)
		}
	}
	return out
}

// ebpfRedirecting returns the FelixConfigurations whose effective settings
// (a node's "node.<name>" over "default") turn the eBPF data plane on with
// bpfRedirectToPeer not Disabled, each with the redirect mode in force.
func ebpfRedirecting(fs []FelixConfig) []string {
	var def FelixConfig
	for _, f := range fs {
		if f.Name == "default" {
			def = f
		}
	}
	var out []string
	for _, f := range fs {
		if f.Name != "default" && !strings.HasPrefix(f.Name, "node.") {
			continue
		}
		on, redirect := f.BPFEnabled, f.BPFRedirectToPeer
		if f.Name != "default" {
			if on == nil {
				on = def.BPFEnabled
			}
			if redirect == "" {
				redirect = def.BPFRedirectToPeer
			}
		}
		if on == nil || !*on || redirect == "Disabled" {
			continue
		}
		if redirect == "" {
			redirect = bpfRedirectDefault + ", the default"
		}
		out = append(out, fmt.Sprintf("%s (bpfRedirectToPeer %s)", f.Name, redirect))
	}
	return out
}

// clusterPaths applies the cluster's packet-path rules: what could not be
// read, then calicoBPFBridgeRule and calicoVXLANMacvlanRule.
func (a *analysis) clusterPaths() {
	c := a.w.Cluster
	if c == nil || c.Paths == nil {
		return
	}
	pc := c.Paths
	add := func(f Finding) {
		f.Section = SectionCluster
		a.add(f)
	}
	for _, e := range pc.Errs {
		add(Finding{Severity: Info, Code: "cluster-paths-unlisted",
			Message: fmt.Sprintf("the packet-path checks could not read: %s", e),
			Remedy:  "give the doctor get and list on Calico's felixconfigurations and ippools and KubeVirt's virtualmachines and virtualmachineinstances (the ClusterRole of deploy/components/doctor)"})
	}
	calicoBPFBridgeRule(c, add)
	calicoVXLANMacvlanRule(c, add)
}

// calicoBPFBridgeRule: Calico's eBPF data plane redirects to the pod's peer
// while VMs bind the pod network with bridge.
func calicoBPFBridgeRule(c *Cluster, add func(Finding)) {
	pc := c.Paths
	redirecting := ebpfRedirecting(pc.Felix)
	if len(redirecting) == 0 {
		return
	}
	var bridged []string
	vms := map[string]bool{}
	for _, v := range c.VMs {
		vms[v.Namespace+"/"+v.Name] = true
		if b := vmPodBridges(v); len(b) > 0 {
			bridged = append(bridged, fmt.Sprintf("VirtualMachine %s/%s (%s)", v.Namespace, v.Name, strings.Join(b, ", ")))
		}
	}
	for _, v := range pc.VMIs {
		// A VM's VMI has the VM's name and its template's interfaces.
		if len(v.PodBridge) > 0 && !vms[v.Namespace+"/"+v.Name] {
			bridged = append(bridged, fmt.Sprintf("%s %s/%s (%s)", v.Kind, v.Namespace, v.Name, strings.Join(v.PodBridge, ", ")))
		}
	}
	if len(bridged) > 0 {
		add(Finding{Severity: Warning, Code: "cluster-calico-bpf-bridge-vm",
			Message: fmt.Sprintf("Calico's eBPF data plane is on with redirect to the pod's peer in FelixConfiguration %s, and %d VM(s) bind the pod network with bridge: %s. From other nodes such a VM answers only the first packet of a flow and TCP never completes: the packets after the first are redirected straight into the pod's interface, and the VM bridged behind it drops them (wrong MAC or packet type)",
				strings.Join(redirecting, ", "), len(bridged), strings.Join(first(bridged, 5), "; ")),
			Remedy: "set bpfRedirectToPeer: Disabled in the FelixConfiguration (kubectl patch felixconfiguration default --type merge -p '{\"spec\":{\"bpfRedirectToPeer\":\"Disabled\"}}'), or give these VMs' pod network interface the masquerade binding instead of bridge"})
	}
}

// calicoVXLANMacvlanRule: Calico carries the pod network over VXLAN while
// NADs attach macvlan or ipvlan secondaries, whose replies may go missing.
func calicoVXLANMacvlanRule(c *Cluster, add func(Finding)) {
	pc := c.Paths
	var vxlan []string
	for _, p := range pc.IPPools {
		if p.VXLANMode == "Always" || p.VXLANMode == "CrossSubnet" {
			vxlan = append(vxlan, fmt.Sprintf("%s (%s, vxlanMode %s)", p.Name, p.CIDR, p.VXLANMode))
		}
	}
	if len(vxlan) == 0 {
		return
	}
	var macvlan []string
	for _, n := range c.NADs {
		ch, _ := cniconf.Read([]byte(n.Config), false)
		if ch != nil && len(ch.Entries) > 0 && (ch.Entries[0].Type == "macvlan" || ch.Entries[0].Type == "ipvlan") {
			macvlan = append(macvlan, n.Namespace+"/"+n.Name)
		}
	}
	if len(macvlan) == 0 {
		return
	}
	add(Finding{Severity: Info, Code: "cluster-calico-vxlan-macvlan",
		Message: fmt.Sprintf("Calico IP pool(s) %s carry the pod network over VXLAN, and NAD(s) %s attach macvlan or ipvlan secondaries: if replies to requests that came in through such a secondary go missing, the pod is likely answering through its default route on eth0 (asymmetric path), or talking to the node through the secondary's parent",
			strings.Join(first(vxlan, 5), ", "), strings.Join(first(macvlan, 5), ", ")),
		Remedy: "run macguardctl doctor on the nodes of those pods: path-asymmetric names a secondary whose replies leave elsewhere (and where sbr goes in the NAD), path-node-via-parent one that cannot reach the node through its parent"})
}
