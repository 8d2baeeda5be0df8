package doctor

import (
	"reflect"
	"testing"

	"github.com/macguard-cni/macguard/pkg/ctl/cniconf"
)

// collect returns an add func for the cluster rules and the codes it got.
func collect() (func(Finding), *[]string) {
	var codes []string
	return func(f Finding) { codes = append(codes, f.Code) }, &codes
}

func TestClusterAccess(t *testing.T) {
	tests := []struct {
		name string
		w    World
		want []string
	}{
		{"read", World{Cluster: &Cluster{}}, nil},
		{"not asked", World{}, nil},
		{"failed", World{ClusterErr: "connection refused"}, []string{"cluster-unavailable"}},
		{"no credentials", World{ClusterNotChecked: "no kubeconfig"}, []string{"cluster-not-checked"}},
		{"node and NADs unknown", World{Cluster: &Cluster{Node: "n", NodeErr: "not found", NADErr: "no CRD"}}, []string{"cluster-node-unknown", "cluster-nads-unlisted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			add, got := collect()
			clusterAccess(&tt.w, add)
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("codes %q, want %q", *got, tt.want)
			}
		})
	}
}

func TestAnnotatedPods(t *testing.T) {
	tests := []struct {
		name      string
		pod       ClusterPod
		want      []string
		kept      bool
		selection int
	}{
		{"short form", ClusterPod{Namespace: "d", Name: "p", Networks: "mg@net1,infra/vlan"}, nil, true, 2},
		{"JSON with a MAC", ClusterPod{Namespace: "d", Name: "p", Networks: `[{"name":"mg","mac":"0a:58:0a:00:00:51"}]`}, nil, true, 1},
		{"networks broken", ClusterPod{Namespace: "d", Name: "p", Networks: `[{"name":`}, []string{"cluster-networks-invalid"}, false, 0},
		{"status broken", ClusterPod{Namespace: "d", Name: "p", Networks: "mg", NetworkStatus: "{"}, []string{"cluster-status-invalid"}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			add, got := collect()
			pods := annotatedPods(&Cluster{Pods: []ClusterPod{tt.pod}}, add)
			if !reflect.DeepEqual(*got, tt.want) || (len(pods) == 1) != tt.kept {
				t.Fatalf("codes %q, kept %d pods; want %q, kept %v", *got, len(pods), tt.want, tt.kept)
			}
			if tt.kept && len(pods[0].sels) != tt.selection {
				t.Errorf("%d selections, want %d", len(pods[0].sels), tt.selection)
			}
		})
	}
}

func TestMACRequestsAndOwners(t *testing.T) {
	mustChain := func(s string) *cniconf.Chain {
		ch, err := cniconf.Read([]byte(s), false)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	nads := nadChains{chains: map[string]*cniconf.Chain{
		"d/mg":   mustChain(conflist("mg", `{"type":"macvlan"}`, mgEntry)),
		"d/vlan": mustChain(conflist("vlan", `{"type":"vlan"}`)),
		"d/cap":  mustChain(conflist("cap", `{"type":"vlan","capabilities":{"mac":true}}`)),
		"d/mv":   mustChain(conflist("mv", `{"type":"macvlan"}`)),
	}, noConfig: map[string]bool{}}
	tests := []struct {
		name           string
		networks       string
		status         string
		requests       []string // the codes macRequests reports
		owners         []string // the codes nadsWithoutOwner then reports
		requestedOnMg  int
		requestedOnVln int
	}{
		{"applied", `[{"name":"mg","mac":"0a:58:0a:00:00:51"}]`, `[{"name":"d/mg","interface":"net1","mac":"0a:58:0a:00:00:51"}]`,
			nil, []string{"cluster-nad-mac-without-owner"}, 1, 0},
		{"not started", `[{"name":"mg","mac":"0a:58:0a:00:00:51"}]`, "",
			nil, []string{"cluster-nad-mac-without-owner"}, 1, 0},
		{"not applied", `[{"name":"mg","mac":"0a:58:0a:00:00:51"}]`, `[{"name":"d/mg","interface":"net1","mac":"52:54:00:00:00:01"}]`,
			[]string{"cluster-mac-not-applied"}, []string{"cluster-nad-mac-without-owner"}, 1, 0},
		{"not reported", `[{"name":"mg","mac":"0a:58:0a:00:00:51"}]`, `[{"name":"d/other","interface":"net1"}]`,
			[]string{"cluster-mac-unreported"}, []string{"cluster-nad-mac-without-owner"}, 1, 0},
		// vlan ignores a requested MAC: a second NAD without an owner.
		{"requested on a chain that ignores it", `[{"name":"vlan","mac":"0a:58:0a:00:00:52"}]`, `[{"name":"d/vlan","interface":"net1","mac":"0a:58:0a:00:00:52"}]`,
			nil, []string{"cluster-nad-mac-without-owner", "cluster-nad-mac-without-owner"}, 0, 1},
		{"no MAC requested", `[{"name":"vlan"}]`, "", nil, []string{"cluster-nad-mac-without-owner"}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			add, got := collect()
			pods := annotatedPods(&Cluster{Pods: []ClusterPod{{Namespace: "d", Name: "p", Networks: tt.networks, NetworkStatus: tt.status}}}, add)
			requestedOn := macRequests(pods, nads, add)
			if !reflect.DeepEqual(*got, tt.requests) {
				t.Errorf("macRequests: codes %q, want %q", *got, tt.requests)
			}
			if len(requestedOn["d/mg"]) != tt.requestedOnMg || len(requestedOn["d/vlan"]) != tt.requestedOnVln {
				t.Errorf("requested on %v", requestedOn)
			}
			// d/cap declares the capability without an owner, always.
			add, got = collect()
			nadsWithoutOwner(nads, requestedOn, add)
			if !reflect.DeepEqual(*got, tt.owners) {
				t.Errorf("nadsWithoutOwner: codes %q, want %q", *got, tt.owners)
			}
		})
	}
}

func TestKubeVirtUnlistedAndWebhooks(t *testing.T) {
	tests := []struct {
		name string
		c    Cluster
		want []string
	}{
		{"nothing", Cluster{}, nil},
		{"unlisted", Cluster{WebhookErr: "forbidden", VMErr: "no CRD"}, []string{"cluster-webhooks-unlisted", "cluster-vms-unlisted"}},
		{"macguard's webhook alone", Cluster{MACWebhooks: []string{"macguard/vm." + webhookMacguard}}, nil},
		{"KubeMacPool alone", Cluster{MACWebhooks: []string{"kubemacpool/vm." + webhookKubeMacPool}}, nil},
		{"both", Cluster{MACWebhooks: []string{"macguard/vm." + webhookMacguard, "kubemacpool/vm." + webhookKubeMacPool}}, []string{"cluster-mac-webhooks-both"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			add, got := collect()
			clusterAccess(&World{Cluster: &tt.c}, add)
			macWebhooksRule(&tt.c, add)
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("codes %q, want %q", *got, tt.want)
			}
		})
	}
}

func TestVMsWithoutSpecMAC(t *testing.T) {
	c := &Cluster{VMs: []ClusterVM{
		{Namespace: "v", Name: "masq", Interfaces: []VMInterface{{Name: "default", PodNetwork: true, Binding: "masquerade"}}},
		{Namespace: "v", Name: "spec", Interfaces: []VMInterface{{Name: "default", PodNetwork: true, Binding: "masquerade", MAC: "02:00:00:00:00:01"}}},
		{Namespace: "v", Name: "bridge", Interfaces: []VMInterface{{Name: "default", PodNetwork: true, Binding: "bridge"}}},
		{Namespace: "v", Name: "secondary", Interfaces: []VMInterface{{Name: "net1", Binding: "bridge"}}},
	}}
	for _, tt := range []struct {
		l3   string
		want []string
	}{{"", nil}, {"default/web eth0", []string{"cluster-vm-no-spec-mac"}}} {
		add, got := collect()
		vmsWithoutSpecMAC(c, tt.l3, add)
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("netkit L3 %q: codes %q, want %q", tt.l3, *got, tt.want)
		}
	}
}
