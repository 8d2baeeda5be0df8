package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/macguard-cni/macguard/pkg/identity"
	"github.com/macguard-cni/macguard/pkg/link"
)

// The KubeVirt side of the cluster checks: VMs' spec MACs, and which
// admission webhooks assign them.
var (
	vmResource  = schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "virtualmachines"}
	mwcResource = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}
)

// ClusterVM is the part of a VirtualMachine the checks read.
type ClusterVM struct {
	Namespace  string        `json:"namespace"`
	Name       string        `json:"name"`
	Interfaces []VMInterface `json:"interfaces"`
}

// VMInterface is one interface of a VM's template.
type VMInterface struct {
	Name string `json:"name"`
	MAC  string `json:"mac,omitempty"`
	// Binding is masquerade, bridge, sriov, passt, or a binding plugin's name.
	Binding string `json:"binding,omitempty"`
	// PodNetwork is true when the interface's network is the pod network.
	PodNetwork bool `json:"podNetwork,omitempty"`
}

// MAC webhooks, recognised by their webhook names.
const (
	webhookMacguard    = "webhook.macguard.io"
	webhookKubeMacPool = "kubemacpool.io"
)

// gatherKubeVirt adds the VMs and the MAC-assigning webhooks to c. Without
// KubeVirt (no such resource) there are simply none; other errors are kept.
func gatherKubeVirt(ctx context.Context, dc dynamic.Interface, c *Cluster) {
	vms, err := dc.Resource(vmResource).Namespace("").List(ctx, metav1.ListOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		c.VMErr = err.Error()
	default:
		for i := range vms.Items {
			c.VMs = append(c.VMs, vmOf(&vms.Items[i]))
		}
		sort.Slice(c.VMs, func(i, j int) bool {
			return c.VMs[i].Namespace+"/"+c.VMs[i].Name < c.VMs[j].Namespace+"/"+c.VMs[j].Name
		})
	}
	mwcs, err := dc.Resource(mwcResource).List(ctx, metav1.ListOptions{})
	if err != nil {
		c.WebhookErr = err.Error()
		return
	}
	for _, u := range mwcs.Items {
		hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
		for _, h := range hooks {
			if m, ok := h.(map[string]any); ok {
				name, _ := m["name"].(string)
				c.MACWebhooks = append(c.MACWebhooks, u.GetName()+"/"+name)
			}
		}
	}
}

func vmOf(u *unstructured.Unstructured) ClusterVM {
	vm := ClusterVM{Namespace: u.GetNamespace(), Name: u.GetName(), Interfaces: []VMInterface{}}
	pod := map[string]bool{}
	nets, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "networks")
	for _, n := range nets {
		if m, ok := n.(map[string]any); ok {
			name, _ := m["name"].(string)
			_, pod[name] = m["pod"]
		}
	}
	ifaces, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "domain", "devices", "interfaces")
	for _, i := range ifaces {
		m, ok := i.(map[string]any)
		if !ok {
			continue
		}
		vi := VMInterface{}
		vi.Name, _ = m["name"].(string)
		vi.MAC, _ = m["macAddress"].(string)
		vi.PodNetwork = pod[vi.Name]
		for _, b := range []string{"masquerade", "bridge", "sriov", "passt", "slirp", "macvtap"} {
			if _, ok := m[b]; ok {
				vi.Binding = b
			}
		}
		if b, ok := m["binding"].(map[string]any); ok {
			vi.Binding, _ = b["name"].(string)
		}
		vm.Interfaces = append(vm.Interfaces, vi)
	}
	return vm
}

// kubevirt applies the VM rules to the cluster c seen from this node, in
// this order (what could not be listed is clusterAccess's): the MAC webhooks, the VMs a netkit
// L3 node cannot give a MAC, the node's vm-cannot-start findings revised
// for VMs whose spec sets the MAC (so it runs after pods and launchers),
// and MACs two workloads carry.
func (a *analysis) kubevirt(c *Cluster, add func(Finding)) {
	macWebhooksRule(c, add)
	vmsWithoutSpecMAC(c, a.netkitL3(), add)
	a.specMACStartsVM(c)
	a.duplicateMACs(c, add)
}

// macWebhooksRule: KubeMacPool and macguard's webhook both assign VM MACs.
func macWebhooksRule(c *Cluster, add func(Finding)) {
	var mg, kmp []string
	for _, h := range c.MACWebhooks {
		switch {
		case strings.HasSuffix(h, "."+webhookMacguard):
			mg = append(mg, h)
		case strings.HasSuffix(h, "."+webhookKubeMacPool):
			kmp = append(kmp, h)
		}
	}
	if len(mg) > 0 && len(kmp) > 0 {
		add(Finding{Severity: Warning, Code: "cluster-mac-webhooks-both",
			Message: fmt.Sprintf("both KubeMacPool (%s) and macguard's webhook (%s) assign VM MACs: whichever the API server calls first sets the MAC, so a VM's MAC depends on webhook order and a restored VM may get the other one's", strings.Join(kmp, ", "), strings.Join(mg, ", ")),
			Remedy:  "keep one: remove the other, or split the namespaces between them (label a namespace macguard.io/webhook=disabled to leave it to KubeMacPool; KubeMacPool's own opt-in/opt-out labels for the reverse)"})
	}
}

// vmsWithoutSpecMAC: on a node whose pod interfaces are netkit L3 (l3
// names one, "" when there is none), VMs whose guest MAC would come from a
// pod interface that has none.
func vmsWithoutSpecMAC(c *Cluster, l3 string, add func(Finding)) {
	if l3 == "" {
		return
	}
	for _, vm := range c.VMs {
		for _, ifc := range vm.Interfaces {
			if !ifc.PodNetwork || ifc.MAC != "" || ifc.Binding == "bridge" {
				continue
			}
			add(Finding{Severity: Error, Code: "cluster-vm-no-spec-mac", Pod: "vm " + vm.Namespace + "/" + vm.Name, Interface: ifc.Name,
				Message: fmt.Sprintf("VM interface %s (binding %s, pod network) has no macAddress, and pod interfaces on this node are netkit in L3 mode (%s), which carry no MAC: started here, KubeVirt gives the guest no MAC (unable to parse mac address '')", ifc.Name, orUnset(ifc.Binding), l3),
				Remedy: fmt.Sprintf("deploy macguard's webhook (deploy/components/webhook): it writes the stable MAC into the spec on the VM's next update; or set macAddress yourself (macguardctl mac --namespace %s --vm %s --vm-interface %s prints the same MAC); or run Cilium with bpf.datapathMode=netkit-l2",
					vm.Namespace, vm.Name, ifc.Name)})
		}
	}
}

// specMACStartsVM revises the node's and the launchers' findings that a
// VM cannot start: a VM whose spec MAC the guest gets does not depend on
// the pod interface, so they are downgraded to info and say why.
func (a *analysis) specMACStartsVM(c *Cluster) {
	specMAC := map[string]VMInterface{}
	for _, vm := range c.VMs {
		for _, ifc := range vm.Interfaces {
			if ifc.PodNetwork {
				specMAC[vm.Namespace+"/"+vm.Name] = ifc
			}
		}
	}
	for i := range a.r.Findings {
		f := &a.r.Findings[i]
		if (f.Code != "vm-cannot-start" && f.Code != "cluster-vm-cannot-start") || f.Interface != "eth0" {
			continue
		}
		ns, name, _ := strings.Cut(f.Pod, "/")
		ifc, ok := specMAC[ns+"/"+identity.VMName(name)]
		if !ok || ifc.MAC == "" || ifc.Binding == "bridge" {
			continue
		}
		f.Severity = Info
		f.Message += fmt.Sprintf("; but VM %s/%s sets macAddress %s on interface %s (binding %s), which KubeVirt gives the guest instead, so the VM starts", ns, identity.VMName(name), ifc.MAC, ifc.Name, orUnset(ifc.Binding))
		f.Remedy = ""
	}
}

// parseStatuses reads a network-status annotation; the pod loop of
// cluster() reports one that does not parse.
func parseStatuses(s string) ([]nadv1.NetworkStatus, error) {
	if s == "" {
		return nil, nil
	}
	var out []nadv1.NetworkStatus
	err := json.Unmarshal([]byte(s), &out)
	return out, err
}

func orUnset(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}

// netkitL3 names a netkit L3 interface the node's pods have, or "".
func (a *analysis) netkitL3() string {
	for _, p := range a.r.Pods {
		for _, i := range p.Interfaces {
			if i.Kind == link.KindNetkit && i.NetkitMode == link.NetkitL3 {
				return p.Name + " " + i.Name
			}
		}
	}
	return ""
}

// duplicateMACs reports a MAC that two workloads carry: a VM's spec MACs
// and the MACs in pods' network-status, where a virt-launcher pod counts
// as its VM (its secondaries carry the VM's spec MACs).
func (a *analysis) duplicateMACs(c *Cluster, add func(Finding)) {
	owners := map[string]map[string]bool{}
	note := func(mac, owner string) {
		m := parseMAC(mac)
		if m == nil {
			return
		}
		k := m.String()
		if owners[k] == nil {
			owners[k] = map[string]bool{}
		}
		owners[k][owner] = true
	}
	for _, vm := range c.VMs {
		for _, ifc := range vm.Interfaces {
			note(ifc.MAC, "vm "+vm.Namespace+"/"+vm.Name)
		}
	}
	for _, p := range c.Pods {
		owner := "pod " + p.Namespace + "/" + p.Name
		if vm := identity.VMName(p.Name); p.Launcher && vm != "" {
			owner = "vm " + p.Namespace + "/" + vm
		}
		statuses, _ := parseStatuses(p.NetworkStatus)
		for _, st := range statuses {
			note(st.Mac, owner)
		}
	}
	macs := make([]string, 0, len(owners))
	for m, o := range owners {
		if len(o) > 1 {
			macs = append(macs, m)
		}
	}
	sort.Strings(macs)
	for _, m := range macs {
		var who []string
		for o := range owners[m] {
			who = append(who, o)
		}
		sort.Strings(who)
		add(Finding{Severity: Error, Code: "cluster-mac-duplicate", MAC: m,
			Message: fmt.Sprintf("MAC %s is carried by %s: on a shared L2 segment frames go to the wrong one", m, strings.Join(who, " and ")),
			Remedy:  "give one of them another MAC: remove a copied macAddress from a VM spec (macguard's webhook then derives one from the VM's name), or change the requested MAC"})
	}
}
