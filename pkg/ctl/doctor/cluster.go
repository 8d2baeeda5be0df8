package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/macguard-cni/macguard/pkg/ctl/cniconf"
	"github.com/macguard-cni/macguard/pkg/identity"
	"github.com/macguard-cni/macguard/pkg/macaddr"
	"github.com/macguard-cni/macguard/pkg/policy"
)

// Annotation keys Multus reads and writes.
const (
	annotationNetworks      = nadv1.NetworkAttachmentAnnot // "k8s.v1.cni.cncf.io/networks"
	annotationNetworkStatus = nadv1.NetworkStatusAnnot     // "k8s.v1.cni.cncf.io/network-status"
	// labelKubeVirt is how KubeVirt marks its launcher pods.
	labelKubeVirt = "kubevirt.io"
)

// appliesMAC are the reference main plugins that apply a requested MAC
// themselves (CNI_ARGS MAC, which Multus passes for a selection's "mac",
// runtimeConfig.mac, their own "mac"); host-device, vlan, ipvlan and ptp
// ignore it.
var appliesMAC = map[string]bool{"macvlan": true, "bridge": true, "tap": true}

// NADResource is the NetworkAttachmentDefinition resource, read through the
// dynamic client so no generated clientset is needed.
var NADResource = schema.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1", Resource: "network-attachment-definitions"}

// The core resources the cluster checks read, also through the dynamic
// client: the typed clientset (k8s.io/client-go/kubernetes) registers every
// API group at init, which would cost macguardctl's agent mode, running on
// every node, about 10 MB of memory (TestNoTypedClientset).
var (
	podResource  = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	nodeResource = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
)

// GatherCluster reads what the cluster checks need: the node, every pod's
// Multus annotations and every NetworkAttachmentDefinition. A failure to
// list pods means the cluster could not be looked at; a failure to list
// NADs (no CRD, no RBAC) is kept in the result.
func GatherCluster(ctx context.Context, dc dynamic.Interface, node string) (*Cluster, error) {
	c := &Cluster{Node: node, Pods: []ClusterPod{}, NADs: []NAD{}}
	if node != "" {
		if _, err := dc.Resource(nodeResource).Get(ctx, node, metav1.GetOptions{}); err != nil {
			c.NodeErr = err.Error()
		}
	}
	pods, err := dc.Resource(podResource).Namespace("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	for i := range pods.Items {
		// Only these fields of a pod are read, straight from the object:
		// converting every pod of the cluster to a corev1.Pod would build
		// specs nothing looks at.
		p := &pods.Items[i]
		nodeName, _, _ := unstructured.NestedString(p.Object, "spec", "nodeName")
		annotations := p.GetAnnotations()
		cp := ClusterPod{Namespace: p.GetNamespace(), Name: p.GetName(), Node: nodeName,
			Networks: annotations[annotationNetworks], NetworkStatus: annotations[annotationNetworkStatus]}
		cp.Launcher = p.GetLabels()[labelKubeVirt] == "virt-launcher" || identity.VMName(cp.Name) != ""
		if cp.Networks == "" && !cp.Launcher {
			continue
		}
		c.Pods = append(c.Pods, cp)
	}
	list, err := dc.Resource(NADResource).Namespace("").List(ctx, metav1.ListOptions{})
	if err != nil {
		c.NADErr = err.Error()
	} else {
		for _, u := range list.Items {
			cfg, _, _ := unstructured.NestedString(u.Object, "spec", "config")
			c.NADs = append(c.NADs, NAD{Namespace: u.GetNamespace(), Name: u.GetName(), Config: cfg})
		}
	}
	gatherKubeVirt(ctx, dc, c)
	c.Paths = gatherPaths(ctx, dc)
	sort.Slice(c.Pods, func(i, j int) bool {
		return c.Pods[i].Namespace+"/"+c.Pods[i].Name < c.Pods[j].Namespace+"/"+c.Pods[j].Name
	})
	sort.Slice(c.NADs, func(i, j int) bool {
		return c.NADs[i].Namespace+"/"+c.NADs[i].Name < c.NADs[j].Namespace+"/"+c.NADs[j].Name
	})
	return c, nil
}

// selections parses the networks annotation. Only its JSON form can carry a
// MAC; the short "ns/name@if" form is returned without one.
func selections(s, podNamespace string) ([]nadv1.NetworkSelectionElement, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []nadv1.NetworkSelectionElement
	if strings.HasPrefix(s, "[") {
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, fmt.Errorf("annotation %s is not a JSON list of network selection elements: %w", annotationNetworks, err)
		}
	} else {
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			e := nadv1.NetworkSelectionElement{}
			name, ifc, _ := strings.Cut(part, "@")
			e.InterfaceRequest = ifc
			if ns, n, ok := strings.Cut(name, "/"); ok {
				e.Namespace, e.Name = ns, n
			} else {
				e.Name = name
			}
			out = append(out, e)
		}
	}
	for i := range out {
		if out[i].Namespace == "" {
			out[i].Namespace = podNamespace
		}
	}
	return out, nil
}

// cluster applies the cluster rules, in this order: whether the cluster
// could be read; the NADs' configurations (the rules after read their
// chains); the pods' Multus annotations, then the MACs they request and
// the VMs' launcher pods on this node (which read the node's pods and
// findings, so cluster runs after pods); KubeVirt's rules (kubevirt.go,
// which revise the launcher findings); last the NADs that MACs are
// requested on but nothing applies them.
func (a *analysis) cluster() {
	add := func(f Finding) {
		f.Section = SectionCluster
		a.add(f)
	}
	clusterAccess(a.w, add)
	c := a.w.Cluster
	if c == nil {
		return
	}
	nads := a.clusterNADs(c, add)
	pods := annotatedPods(c, add)
	requestedOn := macRequests(pods, nads, add)
	a.launchers(c, pods, add)
	a.kubevirt(c, add)
	nadsWithoutOwner(nads, requestedOn, add)
}

// clusterAccess reports what kept the doctor from reading the cluster, or
// part of it (the node, NADs, webhooks, KubeVirt's VMs).
func clusterAccess(w *World, add func(Finding)) {
	addEach(add, []unread{
		{w.ClusterErr, Finding{Severity: Warning, Code: "cluster-unavailable",
			Message: fmt.Sprintf("the cluster checks failed, so only the node was checked: %s", w.ClusterErr),
			Remedy:  "check that the API server is reachable from here and that the doctor's service account (or the kubeconfig's user) may list pods and NetworkAttachmentDefinitions and get nodes (the ClusterRole of deploy/components/doctor); --no-cluster checks the node alone"}},
		{w.ClusterNotChecked, Finding{Severity: Info, Code: "cluster-not-checked",
			Message: fmt.Sprintf("the cluster was not checked: %s", w.ClusterNotChecked),
			Remedy:  "pass --kubeconfig FILE (or set $KUBECONFIG), or run the doctor in the DaemonSet's pod deployed with deploy/components/doctor; --no-cluster checks the node alone without this finding"}},
	})
	c := w.Cluster
	if c == nil {
		return
	}
	addEach(add, []unread{
		{c.NodeErr, Finding{Severity: Warning, Code: "cluster-node-unknown",
			Message: fmt.Sprintf("node %q: %s", c.Node, c.NodeErr),
			Remedy:  "pass --node with the node's Kubernetes name (the DaemonSet sets NODE_NAME)"}},
		{c.NADErr, Finding{Severity: Info, Code: "cluster-nads-unlisted",
			Message: fmt.Sprintf("cannot list NetworkAttachmentDefinitions: %s", c.NADErr),
			Remedy:  "without Multus' CRD there are none; otherwise give the doctor the RBAC of deploy/components/doctor"}},
		{c.WebhookErr, Finding{Severity: Info, Code: "cluster-webhooks-unlisted",
			Message: fmt.Sprintf("cannot list MutatingWebhookConfigurations, so whether KubeMacPool and macguard's webhook both assign VM MACs is not known: %s", c.WebhookErr),
			Remedy:  "give the doctor the RBAC of deploy/components/doctor (get/list mutatingwebhookconfigurations)"}},
		{c.VMErr, Finding{Severity: Info, Code: "cluster-vms-unlisted",
			Message: fmt.Sprintf("cannot list KubeVirt VirtualMachines: %s", c.VMErr),
			Remedy:  "give the doctor the RBAC of deploy/components/doctor (get/list virtualmachines)"}},
	})
}

// unread is something the doctor could not read (err, "" when it could)
// and the finding that says so.
type unread struct {
	err string
	f   Finding
}

// addEach adds the finding of every unread whose err is set.
func addEach(add func(Finding), us []unread) {
	for _, u := range us {
		if u.err != "" {
			add(u.f)
		}
	}
}

// nadChains are the NADs' configurations by "namespace/name": the parsed
// chain (nil when it does not parse) and whether it has none at all.
type nadChains struct {
	chains   map[string]*cniconf.Chain
	noConfig map[string]bool
}

// clusterNADs checks the configuration of every NAD that chains macguard
// (or does not parse) as a conf file is checked, and returns every NAD's
// chain.
func (a *analysis) clusterNADs(c *Cluster, add func(Finding)) nadChains {
	nads := nadChains{chains: map[string]*cniconf.Chain{}, noConfig: map[string]bool{}}
	for _, n := range c.NADs {
		key := n.Namespace + "/" + n.Name
		nads.noConfig[key] = strings.TrimSpace(n.Config) == ""
		ch, _ := cniconf.Read([]byte(n.Config), false)
		nads.chains[key] = ch
		if ch == nil || ch.MacguardIndex() >= 0 {
			st, _, fs := checkConf(ConfFile{Path: "NAD " + key, NAD: key, Content: n.Config}, SectionCluster, a.w.roots())
			a.r.Configs = append(a.r.Configs, st)
			for _, f := range fs {
				add(f)
			}
		}
	}
	return nads
}

// annotatedPod is a pod with its Multus annotations parsed.
type annotatedPod struct {
	ClusterPod
	key      string
	sels     []nadv1.NetworkSelectionElement
	statuses []nadv1.NetworkStatus
}

// annotatedPods parses every pod's networks and network-status
// annotations; a pod whose annotations do not parse is reported and left
// out of the rules that read them.
func annotatedPods(c *Cluster, add func(Finding)) []annotatedPod {
	var out []annotatedPod
	for _, p := range c.Pods {
		key := p.Namespace + "/" + p.Name
		sels, err := selections(p.Networks, p.Namespace)
		if err != nil {
			add(Finding{Severity: Warning, Code: "cluster-networks-invalid", Pod: key, Message: err.Error(),
				Remedy: "fix the pod's annotation: Multus refuses to start it"})
			continue
		}
		statuses, err := parseStatuses(p.NetworkStatus)
		if err != nil {
			add(Finding{Severity: Warning, Code: "cluster-status-invalid", Pod: key,
				Message: fmt.Sprintf("annotation %s is not a JSON list: %v", annotationNetworkStatus, err),
				Remedy:  "Multus writes this annotation: recreate the pod, and check that nothing else edits it"})
			continue
		}
		out = append(out, annotatedPod{ClusterPod: p, key: key, sels: sels, statuses: statuses})
	}
	return out
}

// macRequests compares the MAC each pod's network selection requests with
// the one its network-status reports, and returns the pods that request a
// MAC, by NAD.
func macRequests(pods []annotatedPod, nads nadChains, add func(Finding)) map[string][]string {
	requestedOn := map[string][]string{}
	for _, p := range pods {
		for _, s := range p.sels {
			if s.MacRequest == "" {
				continue
			}
			nad := s.Namespace + "/" + s.Name
			requestedOn[nad] = append(requestedOn[nad], p.key)
			st := matchStatus(p.statuses, nad, s.InterfaceRequest, s.MacRequest)
			remedy := nadRemedy(nads.chains, nads.noConfig, nad)
			switch {
			case p.NetworkStatus == "":
				// Not started yet, or Multus did not report: nothing to compare.
			case st == nil:
				add(Finding{Severity: Warning, Code: "cluster-mac-unreported", Pod: p.key, NAD: nad, MAC: s.MacRequest,
					Message: fmt.Sprintf("requests MAC %s on network %s, but its network-status has no entry for that network", s.MacRequest, nad),
					Remedy:  remedy})
			case !sameMAC(st.Mac, s.MacRequest):
				got := st.Mac
				if got == "" {
					got = "no MAC"
				}
				add(Finding{Severity: Error, Code: "cluster-mac-not-applied", Pod: p.key, Interface: st.Interface, NAD: nad, MAC: s.MacRequest,
					Message: fmt.Sprintf("requests MAC %s on network %s, but network-status reports %s on %s: the request did not stick", s.MacRequest, nad, got, st.Interface),
					Remedy:  remedy})
			}
		}
	}
	return requestedOn
}

// launchers finds the virt-launcher pods on this node whose network-status
// reports an interface without a MAC, which KubeVirt cannot start a VM
// on. It reads the node's pods and findings: a pod the node already
// reports (vm-cannot-start) is not reported again.
func (a *analysis) launchers(c *Cluster, pods []annotatedPod, add func(Finding)) {
	nodeReported := map[string]bool{}
	for _, f := range a.r.Findings {
		if f.Code == "vm-cannot-start" {
			nodeReported[f.Pod] = true
		}
	}
	for _, p := range pods {
		if !p.Launcher || p.Node != c.Node || nodeReported[p.key] {
			continue
		}
		for _, st := range p.statuses {
			if st.Mac != "" || st.Interface == "" {
				continue
			}
			remedy := "give the VM interface an explicit macAddress, or attach it through a device that carries a MAC (macvlan, bridge; on Cilium, bpf.datapathMode=netkit-l2, Cilium >= 1.17.3)"
			ifc := a.nodeInterface(p.Namespace, p.Name, st.Interface)
			if ifc == nil {
				// Not seen on this node (the doctor cannot enter the
				// pod's netns, or the pod is not named in libcni's
				// cache): report what is known, not a guess at the
				// device.
				add(Finding{Severity: Info, Code: "cluster-vm-mac-unknown", Pod: p.key, Interface: st.Interface, NAD: st.Name,
					Message: fmt.Sprintf("virt-launcher pod on this node: network-status reports no MAC on %s (network %s), and the doctor cannot see that interface on this node, so it cannot tell whether the VM can start", st.Interface, st.Name),
					Remedy:  "run the doctor as root on the node (or in the DaemonSet's pod with the doctor component) so that it sees the pod's interfaces; if the VM does not start with unable to parse mac address '', " + remedy})
				continue
			}
			if why := policy.CannotCarry(ifc.observed()); why != "" {
				remedy = why
			} else if !macaddr.IsZero(parseMAC(ifc.MAC)) {
				// The node sees a device that carries a MAC and has
				// one: network-status just does not report it.
				continue
			}
			add(Finding{Severity: Error, Code: "cluster-vm-cannot-start", Pod: p.key, Interface: st.Interface, NAD: st.Name,
				Message: fmt.Sprintf("virt-launcher pod on this node: network-status reports no MAC on %s (network %s), so the VM will not start (KubeVirt: unable to parse mac address '')", st.Interface, st.Name),
				Remedy:  remedy})
		}
	}
}

// nadsWithoutOwner finds the NADs on which a MAC is requested (by a pod,
// or declared in the chain) but nothing in the chain applies one.
func nadsWithoutOwner(nads nadChains, requestedOn map[string][]string, add func(Finding)) {
	keys := make([]string, 0, len(nads.chains))
	for k := range nads.chains {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		ch := nads.chains[key]
		if ch == nil || ch.HasType(cniconf.PluginType) || ch.HasType("tuning") || appliesMAC[ch.Entries[0].Type] {
			continue
		}
		declares := false
		for _, e := range ch.Entries {
			declares = declares || e.MACCapability || e.MAC != ""
		}
		pods := requestedOn[key]
		if !declares && len(pods) == 0 {
			continue
		}
		why := "its chain declares a MAC (\"mac\" or the mac capability)"
		if len(pods) > 0 {
			why = fmt.Sprintf("%d pod(s) request a MAC on it (%s)", len(pods), strings.Join(first(pods, 3), ", "))
		}
		add(Finding{Severity: Warning, Code: "cluster-nad-mac-without-owner", NAD: key,
			Message: fmt.Sprintf("%s, but nothing in its chain (%s) applies a MAC: neither macguard nor tuning is there, and %s ignores the request", why, strings.Join(ch.Types(), " -> "), ch.Entries[0].Type),
			Remedy:  fmt.Sprintf("add {\"type\": \"macguard\", \"capabilities\": {\"mac\": true}} after %s in the NAD's config", ch.Entries[len(ch.Entries)-1].Type)})
	}
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(append([]string(nil), s[:n]...), "...")
	}
	return s
}

func sameMAC(a, b string) bool {
	ma, mb := parseMAC(a), parseMAC(b)
	return ma != nil && mb != nil && ma.String() == mb.String()
}

// matchStatus finds the network-status entry of a selection: by network and
// interface when the selection names one, else by network, preferring the
// entry with the requested MAC (a pod may attach one network twice).
func matchStatus(statuses []nadv1.NetworkStatus, nad, ifc, mac string) *nadv1.NetworkStatus {
	var found *nadv1.NetworkStatus
	for i := range statuses {
		s := &statuses[i]
		if s.Name != nad || (ifc != "" && s.Interface != ifc) {
			continue
		}
		if sameMAC(s.Mac, mac) {
			return s
		}
		if found == nil {
			found = s
		}
	}
	return found
}

func nadRemedy(chains map[string]*cniconf.Chain, noConfig map[string]bool, nad string) string {
	ch, ok := chains[nad]
	switch {
	case !ok:
		return fmt.Sprintf("check that NetworkAttachmentDefinition %s exists", nad)
	case ch == nil && noConfig[nad]:
		return fmt.Sprintf("NetworkAttachmentDefinition %s has no spec.config: chain macguard, with \"capabilities\": {\"mac\": true}, in the file of Multus' conf dir that holds its configuration", nad)
	case ch == nil:
		return fmt.Sprintf("fix the config of NetworkAttachmentDefinition %s", nad)
	case ch.HasType(cniconf.PluginType):
		if mg := ch.Macguard(); !mg.MACCapability {
			return fmt.Sprintf("add \"capabilities\": {\"mac\": true} to macguard's entry in %s, so that the requested MAC reaches it", nad)
		}
		return "recreate the pod and look for a second owner of the MAC in the chain (macguardctl doctor on its node)"
	}
	return fmt.Sprintf("add {\"type\": \"macguard\", \"capabilities\": {\"mac\": true}} after %s in %s's config", ch.Entries[len(ch.Entries)-1].Type, nad)
}

// nodeInterface finds a pod's interface in the node inventory.
func (a *analysis) nodeInterface(ns, name, ifName string) *Interface {
	for _, p := range a.r.Pods {
		if p.Namespace != ns || p.PodName != name {
			continue
		}
		for i := range p.Interfaces {
			if p.Interfaces[i].Name == ifName {
				return &p.Interfaces[i].Interface
			}
		}
	}
	return nil
}
