package doctor

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/macguard-cni/macguard/pkg/link"
)

func pod(ns, name, node string, labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{NodeName: node}}
}

func nadObject(ns, name, config string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("k8s.cni.cncf.io/v1")
	u.SetKind("NetworkAttachmentDefinition")
	u.SetNamespace(ns)
	u.SetName(name)
	_ = unstructured.SetNestedField(u.Object, config, "spec", "config")
	return u
}

// dynamicClient serves the core objects (pods, nodes) as the API server
// would, through the dynamic client GatherCluster reads them with, and NADs
// under their real resource name; the fake's constructor would guess
// "networkattachmentdefinitions" from the kind, so the NADs go through the
// tracker with the resource given.
func dynamicClient(t *testing.T, core []runtime.Object, nads ...*unstructured.Unstructured) *dynamicfake.FakeDynamicClient {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	dc := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme,
		map[schema.GroupVersionResource]string{NADResource: "NetworkAttachmentDefinitionList",
			vmResource: "VirtualMachineList", mwcResource: "MutatingWebhookConfigurationList",
			// Calico's, and KubeVirt's VMIs, for the packet-path checks (calico.go).
			calicoFelixResource: "FelixConfigurationList", calicoIPPoolResource: "IPPoolList",
			kubevirtVMIResource: "VirtualMachineInstanceList"}, core...)
	for _, o := range nads {
		if err := dc.Tracker().Create(NADResource, o, o.GetNamespace()); err != nil {
			t.Fatal(err)
		}
	}
	return dc
}

const (
	netsKey   = "k8s.v1.cni.cncf.io/networks"
	statusKey = "k8s.v1.cni.cncf.io/network-status"
)

// The cluster checks on what client-go's dynamic client returns: requested MACs against
// network-status, NADs with macguard validated, NADs asked for MACs without
// an owner, launcher pods on this node without a MAC.
func TestClusterChecks(t *testing.T) {
	core := []runtime.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}},
		pod("default", "applied", "node-2", nil, map[string]string{
			netsKey:   `[{"name":"mg","mac":"0a:58:0a:00:00:51","interface":"net1"}]`,
			statusKey: `[{"name":"default/mg","interface":"net1","mac":"0a:58:0a:00:00:51"}]`}),
		pod("default", "ignored", "node-2", nil, map[string]string{
			netsKey:   `[{"name":"vlan","namespace":"infra","mac":"0a:58:0a:00:00:52"}]`,
			statusKey: `[{"name":"infra/vlan","interface":"net1","mac":"52:54:00:00:00:01"}]`}),
		// macvlan applies a requested MAC itself (CNI_ARGS MAC): no owner
		// is missing, and it stuck.
		pod("default", "mv-only", "node-2", nil, map[string]string{
			netsKey:   `[{"name":"mvplain","namespace":"infra","mac":"0a:58:0a:00:00:54"}]`,
			statusKey: `[{"name":"infra/mvplain","interface":"net1","mac":"0a:58:0a:00:00:54"}]`}),
		pod("default", "pending", "node-2", nil, map[string]string{netsKey: `[{"name":"mg","mac":"0a:58:0a:00:00:53"}]`}),
		pod("default", "short-form", "node-2", nil, map[string]string{netsKey: `mg@net1,infra/vlan`}),
		pod("default", "broken", "node-2", nil, map[string]string{netsKey: `[{"name":`}),
		pod("vms", "virt-launcher-vm1-abcde", "node-1", map[string]string{"kubevirt.io": "virt-launcher"}, map[string]string{
			statusKey: `[{"name":"cilium","interface":"eth0","default":true}]`}),
		pod("vms", "virt-launcher-vm2-abcde", "node-2", map[string]string{"kubevirt.io": "virt-launcher"}, map[string]string{
			statusKey: `[{"name":"cilium","interface":"eth0","default":true}]`}),
		pod("default", "plain", "node-1", nil, nil),
	}
	dc := dynamicClient(t, core,
		nadObject("default", "mg", conflist("mg", `{"type":"macvlan"}`, mgEntry)),
		nadObject("infra", "vlan", conflist("vlan", `{"type":"vlan","vlanId":5}`)),
		nadObject("infra", "mvplain", conflist("mvplain", `{"type":"macvlan"}`)),
		nadObject("default", "mg-bad", conflist("mg-bad", `{"type":"macvlan"}`, `{"type":"macguard","identity":"vm"}`)),
	)
	c, err := GatherCluster(context.Background(), dc, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range c.Pods {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	// Pods without Multus annotations that are not launchers are of no
	// interest and not kept.
	wantNames := []string{"default/applied", "default/broken", "default/ignored", "default/mv-only", "default/pending", "default/short-form", "vms/virt-launcher-vm1-abcde", "vms/virt-launcher-vm2-abcde"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("pods %v, want %v", names, wantNames)
	}
	if len(c.NADs) != 4 || c.NodeErr != "" || c.NADErr != "" {
		t.Errorf("cluster %+v", c)
	}

	w := healthyWorld()
	w.Cluster = c
	r := Analyze(w)
	got := codes(r, true)
	want := []codeAt{
		{Error, "cluster-mac-not-applied", "default/ignored", "net1"},
		{Warning, "cluster-nad-mac-without-owner", "", ""},
		{Warning, "cluster-networks-invalid", "default/broken", ""},
		// healthyWorld has no such pod: the doctor cannot tell.
		{Info, "cluster-vm-mac-unknown", "vms/virt-launcher-vm1-abcde", "eth0"},
		{Info, "conf-no-mac-capability", "", ""},
		{Error, "conf-entry-invalid", "", ""},
	}
	sortCodes(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings\n  got  %v\n  want %v\n%+v", got, want, r.Findings)
	}
	for _, f := range r.Findings {
		if f.Code == "conf-entry-invalid" && f.NAD != "default/mg-bad" {
			t.Errorf("invalid entry reported for %q, want default/mg-bad", f.NAD)
		}
		if f.Code == "cluster-nad-mac-without-owner" && f.NAD != "infra/vlan" {
			t.Errorf("NAD without an owner reported for %q, want infra/vlan", f.NAD)
		}
	}
}

// A node the API server does not know and NADs it cannot list are findings;
// pods it cannot list mean the doctor could not look.
func TestClusterFailures(t *testing.T) {
	dc := dynamicClient(t, nil)
	dc.PrependReactor("list", "network-attachment-definitions", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New(`the server could not find the requested resource`)
	})
	c, err := GatherCluster(context.Background(), dc, "node-x")
	if err != nil {
		t.Fatal(err)
	}
	w := healthyWorld()
	w.Cluster = c
	got := codes(Analyze(w), true)
	want := []codeAt{{Warning, "cluster-node-unknown", "", ""}, {Info, "cluster-nads-unlisted", "", ""}}
	sortCodes(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}

	dc.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden")
	})
	if _, err := GatherCluster(context.Background(), dc, "node-x"); err == nil {
		t.Error("GatherCluster succeeded although pods cannot be listed")
	}
}

// A launcher pod on this node whose network-status has no MAC is a VM that
// will not start only when the node sees an interface that cannot carry
// one, or has none (what the node saw, never a guess from the name); a veth with a MAC is not a finding, and an interface
// the node cannot see is said to be unknown, not guessed at.
func TestClusterLauncher(t *testing.T) {
	const name = "virt-launcher-vm1-abcde"
	tests := []struct {
		name string
		ifc  *Interface // the pod's eth0 on the node; nil: not seen
		want []codeAt
	}{
		{"veth with a MAC", &Interface{Name: "eth0", Kind: "veth", Encap: "ether", MAC: "0a:58:0a:00:00:05", Up: true}, nil},
		{"netkit L2 with a MAC", &Interface{Name: "eth0", Kind: link.KindNetkit, NetkitMode: link.NetkitL2, Encap: "ether", MAC: "0a:58:0a:00:00:05", Up: true}, nil},
		// The node's own finding says it; the cluster's does not repeat it.
		{"netkit L3", &Interface{Name: "eth0", Kind: link.KindNetkit, NetkitMode: link.NetkitL3, Encap: "none", Up: true},
			[]codeAt{{Error, "vm-cannot-start", "default/" + name, "eth0"}}},
		{"ipvlan", &Interface{Name: "eth0", Kind: link.KindIPVlan, Encap: "ether", MAC: "52:54:00:12:34:56", Up: true},
			[]codeAt{{Error, "vm-cannot-start", "default/" + name, "eth0"}}},
		{"veth without a MAC", &Interface{Name: "eth0", Kind: "veth", Encap: "ether", MAC: "00:00:00:00:00:00", Up: true},
			[]codeAt{{Error, "cluster-vm-cannot-start", "default/" + name, "eth0"}}},
		{"not seen on the node", nil, []codeAt{{Info, "cluster-vm-mac-unknown", "default/" + name, "eth0"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := healthyWorld()
			// The node's findings about the pod are not what is tested.
			w.Cache[0].Result, w.Records = nil, nil
			w.Cache[0].Args["K8S_POD_NAME"] = name
			if tc.ifc != nil {
				w.Netns[0].Interfaces[1] = *tc.ifc
			} else {
				w.Cache[0].Args["K8S_POD_NAME"] = "elsewhere"
			}
			w.Cluster = &Cluster{Node: "node-1", NADs: []NAD{}, Pods: []ClusterPod{{Namespace: "default", Name: name, Node: "node-1", Launcher: true,
				NetworkStatus: `[{"name":"cilium","interface":"eth0","default":true}]`}}}
			var got []codeAt
			for _, c := range codes(Analyze(w), true) {
				if strings.Contains(c.Code, "vm-") {
					got = append(got, c)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("cluster findings %v, want %v", got, tc.want)
			}
		})
	}
}

// A NAD without spec.config is valid (Multus reads the network's
// configuration from its conf dir): an info finding that says so, not
// conf-invalid, from the cluster and from --conf alike; a MAC requested on
// it gets the remedy that points there.
func TestNADWithoutConfig(t *testing.T) {
	u := nadObject("infra", "fromfile", "")
	unstructured.RemoveNestedField(u.Object, "spec")
	dc := dynamicClient(t, []runtime.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}},
		pod("default", "asks", "node-2", nil, map[string]string{
			netsKey:   `[{"name":"fromfile","namespace":"infra","mac":"0a:58:0a:00:00:52"}]`,
			statusKey: `[{"name":"infra/fromfile","interface":"net1","mac":"52:54:00:00:00:01"}]`}),
	}, u)
	c, err := GatherCluster(context.Background(), dc, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	w := healthyWorld()
	w.Cluster = c
	w.Extra = []ConfFile{{Path: "nad.yaml", NAD: "vms/fromfile2"}}
	r := Analyze(w)
	got := codes(r, true)
	want := []codeAt{{Info, "conf-nad-no-config", "", ""}, {Info, "conf-nad-no-config", "", ""}, {Error, "cluster-mac-not-applied", "default/asks", "net1"}}
	sortCodes(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("findings %v, want %v\n%+v", got, want, r.Findings)
	}
	for _, f := range r.Findings {
		if f.Code == "conf-nad-no-config" && !strings.Contains(f.Message, "Multus reads the configuration") {
			t.Errorf("message %q does not say where Multus takes the config from", f.Message)
		}
		if f.Code == "cluster-mac-not-applied" && !strings.Contains(f.Remedy, "Multus' conf dir") {
			t.Errorf("remedy %q does not point at Multus' conf dir", f.Remedy)
		}
	}
	for _, st := range r.Configs {
		if st.NAD != "" && (!st.NoConfig || !st.Valid) {
			t.Errorf("config state %+v, want valid and noConfig", st)
		}
	}
}
