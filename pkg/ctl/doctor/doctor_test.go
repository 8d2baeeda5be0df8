package doctor

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/pathpolicy"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	confDir = "/etc/cni/net.d"
	mgEntry = `{"type":"macguard","capabilities":{"mac":true}}`
)

func conflist(name string, plugins ...string) string {
	return `{"cniVersion":"1.0.0","name":"` + name + `","plugins":[` + strings.Join(plugins, ",") + `]}`
}

func lo() Interface { return Interface{Name: "lo", Kind: "device", Encap: "loopback", Up: true} }

func veth(name, mac string) Interface {
	return Interface{Name: name, Kind: "veth", Encap: "ether", MAC: mac, Up: true}
}

// healthyWorld is a node with nothing wrong: one pod whose MAC macguard set.
func healthyWorld() *World {
	net := conflist("net", `{"type":"bridge"}`, mgEntry)
	return &World{
		Node: "node-1",
		Dirs: Dirs{Conf: confDir, Bin: "/opt/cni/bin", Data: "/run/cni/macguard", Cache: "/var/lib/cni", Netns: "/var/run/netns", Proc: "/proc"},
		Self: Build{Version: "v0.1.0", Commit: "abc1234"},
		Netns: []Netns{{Path: "/var/run/netns/cni-1", Inode: 101, Seen: []string{"netns-dir"},
			Interfaces: []Interface{lo(), veth("eth0", "0a:58:0a:00:00:05")}}},
		Cache: []CacheEntry{{File: "/var/lib/cni/results/net-c1-eth0", ContainerID: "c1", IfName: "eth0", Network: "net",
			Netns: "/var/run/netns/cni-1", NetnsInode: 101, Args: map[string]string{"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web"},
			Config: json.RawMessage(net), Result: []ResultInterface{{Name: "eth0", MAC: "0a:58:0a:00:00:05", Sandbox: "/var/run/netns/cni-1"}}}},
		Records: []Record{{File: "/run/cni/macguard/eth0@c1.json", ContainerID: "c1", IfName: "eth0", Netns: "/var/run/netns/cni-1",
			AppliedMAC: "0a:58:0a:00:00:05", NetnsInode: 101, IfPresent: true}},
		Confs:  []ConfFile{{Path: confDir + "/10-net.conflist", Content: net}},
		Binary: Binary{Path: "/opt/cni/bin/macguard", Present: true, Executable: true, Version: "macguard v0.1.0 (commit abc1234)"},
	}
}

// fixedWorld has one of every problem the doctor knows, for the golden
// report.
func fixedWorld() *World {
	w := healthyWorld()
	launcherNet := conflist("cilium", `{"type":"cilium-cni"}`, `{"type":"macguard","onUnsupported":"skip"}`)
	w.Netns = append(w.Netns,
		Netns{Path: "/var/run/netns/cni-2", Inode: 102, Seen: []string{"netns-dir", "pid 4242"},
			Interfaces: []Interface{lo(), {Name: "eth0", Kind: "netkit", NetkitMode: "l3", Encap: "none", Up: true}}},
		Netns{Path: "/proc/777/ns/net", Inode: 103, Seen: []string{"pid 777"},
			Interfaces: []Interface{lo(), veth("eth0", "0a:58:0a:00:00:05"),
				{Name: "net1", Kind: "macvlan", MacvlanMode: "bridge", Encap: "ether", MAC: "01:00:5e:00:00:01"},
				{Name: "net2", Kind: "ipvlan", IPVlanMode: "l2", Encap: "ether", MAC: "52:54:00:12:34:56"},
				{Name: "net3", Kind: "veth", Master: "br0", MasterKind: "bridge", Encap: "ether", MAC: "00:00:00:00:00:00"},
				{Name: "br0", Kind: "bridge", Encap: "ether", MAC: "0a:58:0a:00:00:07"}}},
		Netns{Path: "/var/run/netns/cni-4", Inode: 104, Seen: []string{"netns-dir"}, Err: "netns /var/run/netns/cni-4 does not exist: network namespace unusable"},
	)
	w.Cache = append(w.Cache,
		CacheEntry{File: "/var/lib/cni/results/cilium-c2-eth0", ContainerID: "c2", IfName: "eth0", Network: "cilium",
			Netns: "/var/run/netns/cni-2", NetnsInode: 102, Args: map[string]string{"K8S_POD_NAMESPACE": "vms", "K8S_POD_NAME": "virt-launcher-vm1-abcde"},
			Config: json.RawMessage(launcherNet), Result: []ResultInterface{{Name: "eth0", Sandbox: "/var/run/netns/cni-2"}}},
		CacheEntry{File: "/var/lib/cni/results/plain-c3-net2", ContainerID: "c3", IfName: "net2", Network: "plain",
			Netns: "/proc/777/ns/net", NetnsInode: 103, RuntimeMAC: "0a:58:0a:00:00:42",
			Config: json.RawMessage(conflist("plain", `{"type":"ipvlan","capabilities":{"mac":true}}`))},
		CacheEntry{File: "/var/lib/cni/results/net-c3-eth0", ContainerID: "c3", IfName: "eth0", Network: "net",
			Netns: "/proc/777/ns/net", NetnsInode: 103, Config: json.RawMessage(conflist("net", `{"type":"bridge"}`, mgEntry)),
			Result: []ResultInterface{{Name: "eth0", MAC: "0a:58:0a:00:00:06", Sandbox: "/proc/777/ns/net"}}},
	)
	w.CacheErrors = []FileError{{File: "/var/lib/cni/results/junk", Err: "not a libcni cache entry with a container ID, interface and network"}}
	w.Records = append(w.Records,
		Record{File: "/run/cni/macguard/eth0@c3.json", ContainerID: "c3", IfName: "eth0", Netns: "/proc/777/ns/net",
			AppliedMAC: "0a:58:0a:00:00:06", NetnsInode: 103, IfPresent: true},
		Record{File: "/run/cni/macguard/eth0@gone.json", ContainerID: "gone", IfName: "eth0", Netns: "/var/run/netns/cni-9", NetnsGone: true},
		Record{File: "/run/cni/macguard/net5@c1.json", ContainerID: "c1", IfName: "net5", Netns: "/var/run/netns/cni-1", NetnsInode: 101},
		Record{File: "/run/cni/macguard/eth0@torn.json", ContainerID: "torn", IfName: "eth0", Err: "state file is corrupt: it is empty"},
	)
	w.Confs = []ConfFile{
		{Path: confDir + "/05-cilium.conflist", Content: conflist("cilium", `{"type":"cilium-cni"}`)},
		{Path: confDir + "/10-net.conflist", Content: conflist("net", `{"type":"bridge"}`, `{"type":"tuning","mac":"0a:58:0a:00:00:42"}`, mgEntry)},
		{Path: confDir + "/20-bad.conflist", Content: conflist("bad", `{"type":"bridge"}`, `{"type":"macguard","assign":"sometimes"}`)},
		{Path: confDir + "/30-first.conflist", Content: conflist("first", mgEntry)},
		{Path: confDir + "/40-broken.conf", Content: `{"cniVersion":`},
	}
	w.Extra = []ConfFile{{Path: "nad.yaml", NAD: "default/macvlan-mg", Content: conflist("macvlan-mg", `{"type":"macvlan"}`, `{"type":"macguard","prefix":"zz"}`)}}
	w.Binary.Version = "macguard v0.0.9 (commit 0ld0ne)"
	w.Missing = []string{"/var/lib/cni"}
	w.Cluster = &Cluster{Node: "node-1",
		Pods: []ClusterPod{
			{Namespace: "default", Name: "db", Node: "node-2",
				Networks:      `[{"name":"hostdev","mac":"0a:58:0a:00:00:51"}]`,
				NetworkStatus: `[{"name":"cilium","interface":"eth0","mac":"0a:58:0a:00:00:50","default":true},{"name":"default/hostdev","interface":"net1","mac":"0a:58:0a:00:00:99"}]`},
			{Namespace: "default", Name: "ok", Node: "node-2",
				Networks:      `[{"name":"macvlan-mg","mac":"0a:58:0a:00:00:52"}]`,
				NetworkStatus: `[{"name":"default/macvlan-mg","interface":"net1","mac":"0A:58:0A:00:00:52"}]`},
			{Namespace: "vms", Name: "virt-launcher-vm2-fghij", Node: "node-1", Launcher: true,
				NetworkStatus: `[{"name":"cilium","interface":"eth0","default":true}]`},
		},
		NADs: []NAD{
			{Namespace: "default", Name: "hostdev", Config: conflist("hostdev", `{"type":"host-device","device":"eth5"}`)},
			{Namespace: "default", Name: "macvlan-mg", Config: conflist("macvlan-mg", `{"type":"macvlan"}`, mgEntry)},
			{Namespace: "default", Name: "bad-mg", Config: conflist("bad-mg", `{"type":"macvlan"}`, `{"type":"macguard","mac":"ff:ff:ff:ff:ff:ff"}`)},
		},
	}
	return w
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/ctl/doctor -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./pkg/ctl/doctor -update rewrites it after a deliberate change):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// The report format (text and JSON) is pinned on the fixed world.
func TestGoldenReport(t *testing.T) {
	r := Analyze(fixedWorld())
	var text, js bytes.Buffer
	if err := RenderText(&text, r); err != nil {
		t.Fatal(err)
	}
	if err := RenderJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt", text.Bytes())
	golden(t, "report.json", js.Bytes())
	// The world in testdata is what the golden report was made from, so
	// the JSON form of a World is pinned too (it is how worlds are kept).
	wj, err := json.MarshalIndent(fixedWorld(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "world.json", append(wj, '\n'))
}

// Analyze depends on nothing but the World: the order worlds come in does
// not change the report.
func TestAnalyzeIsStable(t *testing.T) {
	a := Analyze(fixedWorld())
	w := fixedWorld()
	for i, j := 0, len(w.Netns)-1; i < j; i, j = i+1, j-1 {
		w.Netns[i], w.Netns[j] = w.Netns[j], w.Netns[i]
	}
	for i, j := 0, len(w.Cache)-1; i < j; i, j = i+1, j-1 {
		w.Cache[i], w.Cache[j] = w.Cache[j], w.Cache[i]
	}
	if b := Analyze(w); !reflect.DeepEqual(a.Findings, b.Findings) {
		t.Errorf("findings depend on the order of the world")
	}
}

type codeAt struct {
	Severity Severity
	Code     string
	Pod      string
	If       string
}

func codes(r Report, withInfo bool) []codeAt {
	var out []codeAt
	for _, f := range r.Findings {
		if f.Severity == Info && !withInfo {
			continue
		}
		out = append(out, codeAt{f.Severity, f.Code, f.Pod, f.Interface})
	}
	sortCodes(out)
	return out
}

func sortCodes(cs []codeAt) {
	sort.Slice(cs, func(i, j int) bool {
		return cs[i].Code+cs[i].Pod+cs[i].If < cs[j].Code+cs[j].Pod+cs[j].If
	})
}

// Each rule on a healthy world with one thing changed.
func TestRules(t *testing.T) {
	tests := []struct {
		name   string
		change func(w *World)
		want   []codeAt
	}{
		{name: "healthy", change: func(w *World) {}},
		{name: "netkit L3 in a virt-launcher pod", change: func(w *World) {
			w.Netns[0].Interfaces[1] = Interface{Name: "eth0", Kind: link.KindNetkit, NetkitMode: link.NetkitL3, Encap: "none"}
			w.Cache[0].Args["K8S_POD_NAME"] = "virt-launcher-vm1-abcde"
			w.Cache[0].Result[0].MAC = ""
			w.Records = nil
		}, want: []codeAt{{Error, "vm-cannot-start", "default/virt-launcher-vm1-abcde", "eth0"}}},
		{name: "netkit L3 in an ordinary pod is fine", change: func(w *World) {
			w.Netns[0].Interfaces[1] = Interface{Name: "eth0", Kind: link.KindNetkit, NetkitMode: link.NetkitL3, Encap: "none"}
			w.Cache[0].Result[0].MAC = ""
			w.Records = nil
		}},
		{name: "ipvlan with a requested MAC", change: func(w *World) {
			w.Netns[0].Interfaces[1] = Interface{Name: "eth0", Kind: link.KindIPVlan, IPVlanMode: "l2", Encap: "ether", MAC: "52:54:00:12:34:56"}
			w.Cache[0].RuntimeMAC = "0a:58:0a:00:00:42"
			w.Cache[0].Result = nil
			w.Records = nil
		}, want: []codeAt{{Error, "mac-unsupported", "default/web", "eth0"}}},
		{name: "zero MAC", change: func(w *World) {
			w.Netns[0].Interfaces[1].MAC = "00:00:00:00:00:00"
			w.Cache[0].Result = nil
			w.Records = nil
		}, want: []codeAt{{Warning, "mac-missing", "default/web", "eth0"}}},
		{name: "multicast MAC", change: func(w *World) {
			w.Netns[0].Interfaces[1].MAC = "01:00:5e:00:00:01"
			w.Cache[0].Result = nil
			w.Records = nil
		}, want: []codeAt{{Error, "mac-multicast", "default/web", "eth0"}}},
		{name: "not locally administered where macguard derives", change: func(w *World) {
			// 00:16:3e is a universally administered (Xen) OUI.
			w.Netns[0].Interfaces[1].MAC = "00:16:3e:12:34:56"
			w.Cache[0].Config = json.RawMessage(conflist("net", `{"type":"bridge"}`, `{"type":"macguard","assign":"always"}`))
			w.Cache[0].Result = nil
			w.Records = nil
		}, want: []codeAt{{Warning, "mac-not-local", "default/web", "eth0"}}},
		{name: "requested MAC via the mac capability reaches macguard but did not stick", change: func(w *World) {
			w.Cache[0].RuntimeMAC = "0a:58:0a:00:00:42"
		}, want: []codeAt{{Error, "mac-request-ignored", "default/web", "eth0"}}},
		{name: "requested MAC that stuck", change: func(w *World) {
			w.Cache[0].RuntimeMAC = "0A:58:0A:00:00:05"
		}},
		{name: "drift", change: func(w *World) {
			w.Records[0].AppliedMAC = "0a:58:0a:00:00:09"
		}, want: []codeAt{{Warning, "mac-drift", "default/web", "eth0"}}},
		{name: "stale record, interface gone", change: func(w *World) {
			w.Records[0].IfPresent = false
		}, want: []codeAt{{Warning, "record-stale", "", ""}}},
		{name: "a record whose netns path is unusable here, held by its sandbox's process", change: func(w *World) {
			w.Netns[0].Path, w.Netns[0].Seen = "/proc/42/ns/net", []string{"pid 42"}
			w.Netns[0].ContainerIDs = []string{"c1"}
			w.Cache[0].NetnsInode = 0
			w.Records[0].NetnsGone, w.Records[0].NetnsInode, w.Records[0].IfPresent = true, 0, false
		}},
		{name: "removed by --fix", change: func(w *World) {
			w.Records[0].NetnsGone = true
			w.Fixed = []string{w.Records[0].File}
		}},
		{name: "binary not executable", change: func(w *World) {
			w.Binary = Binary{Path: "/opt/cni/bin/macguard", Present: true}
		}, want: []codeAt{{Error, "binary-not-executable", "", ""}}},
		{name: "binary prints something else", change: func(w *World) {
			w.Binary.Version = "CNI macvlan plugin v1.9.1"
		}, want: []codeAt{{Warning, "binary-unknown", "", ""}}},
		{name: "macguard first in its chain", change: func(w *World) {
			w.Confs[0].Content = conflist("net", mgEntry, `{"type":"bridge"}`)
		}, want: []codeAt{{Error, "conf-macguard-first", "", ""}}},
		{name: "no conflist chains macguard", change: func(w *World) {
			w.Confs[0].Content = conflist("net", `{"type":"bridge"}`)
		}, want: []codeAt{{Warning, "conf-not-chained", "", ""}}},
		{name: "a file the runtime cannot load is skipped for the next", change: func(w *World) {
			w.Confs = append([]ConfFile{{Path: confDir + "/00-broken.conflist", Content: "{"}}, w.Confs...)
		}, want: []codeAt{{Error, "conf-invalid", "", ""}}},
		{name: "Multus first", change: func(w *World) {
			w.Confs = append([]ConfFile{{Path: confDir + "/00-multus.conf", Content: `{"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus"}`}}, w.Confs...)
		}},
		// It gets the same runtimeConfig.mac as macguard: no conflict.
		{name: "mac capability on another plugin is no second owner", change: func(w *World) {
			w.Confs[0].Content = conflist("net", `{"type":"macvlan","capabilities":{"mac":true}}`, mgEntry)
		}},
		{name: "tuning with a literal mac is a second owner", change: func(w *World) {
			w.Confs[0].Content = conflist("net", `{"type":"bridge"}`, `{"type":"tuning","mac":"0a:58:0a:00:00:42","capabilities":{"mac":true}}`, mgEntry)
		}, want: []codeAt{{Warning, "conf-two-owners", "", ""}}},
		{name: "a main plugin with a literal mac is a second owner", change: func(w *World) {
			w.Confs[0].Content = conflist("net", `{"type":"macvlan","master":"eth0","mac":"0a:58:0a:00:00:42"}`, mgEntry)
		}, want: []codeAt{{Warning, "conf-two-owners", "", ""}}},
		// The plugin's own rule, pkg/pathpolicy: a conflist (or NAD) may
		// name a dataDir or logFile only beneath the node's roots.
		{name: "dataDir in the CNI conf dir", change: func(w *World) {
			w.Confs[0].Content = conflist("net", `{"type":"bridge"}`, `{"type":"macguard","capabilities":{"mac":true},"dataDir":"/etc/cni/net.d"}`)
		}, want: []codeAt{{Error, "conf-path-not-allowed", "", ""}}},
		{name: "logFile outside /var/log", change: func(w *World) {
			w.Confs[0].Content = conflist("net", `{"type":"bridge"}`, `{"type":"macguard","capabilities":{"mac":true},"logFile":"/etc/ld.so.preload"}`)
		}, want: []codeAt{{Error, "conf-path-not-allowed", "", ""}}},
		{name: "paths beneath the default roots", change: func(w *World) {
			w.Confs[0].Content = conflist("net", `{"type":"bridge"}`, `{"type":"macguard","capabilities":{"mac":true},"dataDir":"/var/lib/cni/macguard","logFile":"/var/log/macguard.log"}`)
		}},
		{name: "paths beneath roots the node widened", change: func(w *World) {
			w.Roots = &pathpolicy.Roots{Data: []string{"/run/cni", "/srv/mg"}, Log: []string{"/srv/log"}}
			w.Confs[0].Content = conflist("net", `{"type":"bridge"}`, `{"type":"macguard","capabilities":{"mac":true},"dataDir":"/srv/mg/state","logFile":"/srv/log/mg.log"}`)
		}},
		{name: "macguard listed twice", change: func(w *World) {
			w.Confs[0].Content = conflist("net", `{"type":"bridge"}`, mgEntry, mgEntry)
		}, want: []codeAt{{Warning, "conf-macguard-twice", "", ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := healthyWorld()
			tc.change(w)
			r := Analyze(w)
			got := codes(r, false)
			if !reflect.DeepEqual(got, tc.want) && (len(got) != 0 || len(tc.want) != 0) {
				t.Errorf("findings %v, want %v\n%+v", got, tc.want, r.Findings)
			}
			wantStatus := "healthy"
			for _, c := range tc.want {
				if c.Severity == Error {
					wantStatus = "errors"
				} else if wantStatus == "healthy" {
					wantStatus = "warnings"
				}
			}
			if r.Summary.Status != wantStatus {
				t.Errorf("status %q, want %q", r.Summary.Status, wantStatus)
			}
		})
	}
}

// The remedies are the plugin's own words for the devices that cannot
// carry a MAC.
func TestRemediesAreThePluginsOwn(t *testing.T) {
	w := healthyWorld()
	w.Netns[0].Interfaces[1] = Interface{Name: "eth0", Kind: link.KindNetkit, NetkitMode: link.NetkitL3, Encap: "none"}
	w.Cache[0].Args["K8S_POD_NAME"] = "virt-launcher-vm1-abcde"
	w.Records = nil
	w.Netns = append(w.Netns, Netns{Path: "/var/run/netns/cni-2", Inode: 102, Interfaces: []Interface{{Name: "net1", Kind: link.KindIPVlan, Encap: "ether", MAC: "52:54:00:12:34:56"}}})
	w.Cache = append(w.Cache, CacheEntry{ContainerID: "c2", IfName: "net1", Network: "ipv", NetnsInode: 102,
		Args: map[string]string{"K8S_POD_NAMESPACE": "vms", "K8S_POD_NAME": "virt-launcher-vm2-abcde"}})
	r := Analyze(w)
	want := map[string]string{"eth0": link.NetkitL3Remedy("eth0"), "net1": link.IPVlanRemedy("net1")}
	for _, f := range r.Findings {
		if f.Code == "vm-cannot-start" {
			if f.Remedy != want[f.Interface] {
				t.Errorf("%s: remedy %q, want %q", f.Interface, f.Remedy, want[f.Interface])
			}
			delete(want, f.Interface)
		}
	}
	if len(want) != 0 {
		t.Errorf("no vm-cannot-start for %v", want)
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want Build
		ok   bool
	}{
		{"macguard v0.1.0 (commit abc)", Build{"v0.1.0", "abc"}, true},
		{"macguard v0.0.0-dev (commit unknown)\n", Build{"v0.0.0-dev", "unknown"}, true},
		{"CNI macvlan plugin v1.9.1", Build{}, false},
		{"macguard v0.1.0", Build{}, false},
	}
	for _, tc := range tests {
		got, ok := parseVersion(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseVersion(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestExtraConfs(t *testing.T) {
	manifest := `apiVersion: v1
kind: Namespace
metadata:
  name: x
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: mv
  namespace: vms
spec:
  config: '{"cniVersion":"1.0.0","name":"mv","plugins":[{"type":"macvlan"},{"type":"macguard"}]}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: plain
spec:
  config: '{"cniVersion":"1.0.0","name":"plain","type":"bridge"}'
`
	tests := []struct {
		name, path, content string
		want                []string // NAD keys, or "" for a plain config
		err                 bool
	}{
		{"conflist", "a.conflist", conflist("a", `{"type":"bridge"}`), []string{""}, false},
		{"NAD manifest", "nads.yaml", manifest, []string{"vms/mv", "default/plain"}, false},
		{"NAD as JSON", "nad.json", `{"kind":"NetworkAttachmentDefinition","metadata":{"name":"j","namespace":"n"},"spec":{"config":"{}"}}`, []string{"n/j"}, false},
		{"no NAD in a manifest", "ns.yaml", "kind: Namespace\nmetadata:\n  name: x\n", nil, true},
		// A typo is the configuration's error to report (conf-invalid), not
		// "neither a CNI configuration nor a manifest".
		{"conflist with a JSON typo", "typo.conflist", `{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"},]}`, []string{""}, false},
		{"starts with { but is not JSON", "typo.txt", `{"cniVersion":"1.0.0",`, []string{""}, false},
		{"kubectl get -o yaml", "list.yaml", `apiVersion: v1
kind: List
items:
- apiVersion: k8s.cni.cncf.io/v1
  kind: NetworkAttachmentDefinition
  metadata: {name: a, namespace: vms}
  spec: {config: '{"cniVersion":"1.0.0","name":"a","type":"bridge"}'}
- apiVersion: k8s.cni.cncf.io/v1
  kind: NetworkAttachmentDefinition
  metadata: {name: b, namespace: infra}
  spec: {config: '{}'}
metadata: {resourceVersion: ""}
`, []string{"vms/a", "infra/b"}, false},
		{"kubectl get -o json", "list.json", `{"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinitionList","items":[{"kind":"NetworkAttachmentDefinition","metadata":{"name":"c","namespace":"n"},"spec":{"config":"{}"}}]}`, []string{"n/c"}, false},
		{"not YAML", "bad.yaml", "a: [", nil, true},
		// Documents are split as kubectl splits them (apimachinery's
		// YAML reader): a leading "---", a comment after one, and an empty
		// document are all fine.
		{"kubectl's separators", "seps.yaml", "---\n---   # first\n" + manifest + "---\n\n", []string{"vms/mv", "default/plain"}, false},
		{"text after a separator", "sep.yaml", "kind: Namespace\n--- kind: x\n", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfs, err := ExtraConfs(tc.path, []byte(tc.content))
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			var got []string
			for _, cf := range cfs {
				got = append(got, cf.NAD)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("NADs %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCgroupIDs(t *testing.T) {
	id := strings.Repeat("ab12", 16)
	other := strings.Repeat("0f", 32)
	tests := []struct {
		name, content string
		want          []string
	}{
		{"cgroup v2, systemd driver", "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-" + id + ".scope\n", []string{id}},
		{"cgroup v1, cgroupfs driver", "12:memory:/kubepods/besteffort/pod1/" + id + "\n11:cpu:/kubepods/besteffort/pod1/" + id + "\n", []string{id}},
		{"CRI-O and docker", "0::/crio-" + id + ".scope\n1:name=systemd:/docker/" + other + "\n", []string{id, other}},
		{"not a container", "0::/user.slice/user-0.slice/session-3.scope\n", nil},
		{"63 digits", "0::/kubepods/" + id[1:] + "\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cgroup")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := cgroupIDs(path); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("cgroupIDs = %v, want %v", got, tc.want)
			}
		})
	}
}

// Every error and warning of the fixed world carries a remedy.
func TestEveryProblemHasARemedy(t *testing.T) {
	w := fixedWorld()
	w.Records = append(w.Records, Record{File: "/run/cni/macguard/eth0@x.json", ContainerID: "x", IfName: "eth0", Netns: "/proc/9/ns/net", NetnsErr: "permission denied"})
	w.FixErrors = []string{"--fix: removing state for x/eth0: permission denied"}
	w.Cluster.Pods = append(w.Cluster.Pods, ClusterPod{Namespace: "default", Name: "odd", NetworkStatus: "{"})
	for _, f := range Analyze(w).Findings {
		if f.Severity != Info && f.Remedy == "" {
			t.Errorf("%s %s has no remedy: %s", f.Severity, f.Code, f.Message)
		}
	}
}

// A --conf conflist with a JSON typo is reported as conf-invalid with the
// JSON error, like a file of the conf dir.
func TestExtraConfTypoIsConfInvalid(t *testing.T) {
	cfs, err := ExtraConfs("typo.conflist", []byte(`{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"},]}`))
	if err != nil {
		t.Fatal(err)
	}
	w := healthyWorld()
	w.Extra = cfs
	r := Analyze(w)
	if got, want := codes(r, true), []codeAt{{Error, "conf-invalid", "", ""}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("findings %v, want %v", got, want)
	}
	if f := r.Findings[0]; f.File != "typo.conflist" || !strings.Contains(f.Message, "invalid character ']'") {
		t.Errorf("finding %+v does not carry the JSON error", f)
	}
}

// A MAC requested through runtimeConfig.mac on a chain whose macguard entry
// lacks the mac capability never reached macguard: the remedy is to declare
// it, not to look for a second owner.
func TestRequestIgnoredWithoutTheCapability(t *testing.T) {
	remedyOf := func(w *World) string {
		for _, f := range Analyze(w).Findings {
			if f.Code == "mac-request-ignored" {
				return f.Remedy
			}
		}
		t.Fatal("no mac-request-ignored")
		return ""
	}
	w := healthyWorld()
	w.Cache[0].Config = json.RawMessage(conflist("net", `{"type":"bridge"}`, `{"type":"macguard"}`))
	w.Cache[0].RuntimeMAC = "0a:58:0a:00:00:42"
	if got := remedyOf(w); !strings.Contains(got, `add "capabilities": {"mac": true} to macguard's entry in network "net"`) {
		t.Errorf("remedy %q, want the capability added", got)
	}
	// With the capability, macguard got the request: something else undid it.
	w = healthyWorld()
	w.Cache[0].RuntimeMAC = "0a:58:0a:00:00:42"
	if got := remedyOf(w); !strings.Contains(got, "second owner") {
		t.Errorf("remedy %q, want a second owner looked for", got)
	}
}

// A missing directory is named by its full path, whatever its section:
// "macguard: does not exist" would read like the plugin binary.
func TestMissingDirIsNamedInFull(t *testing.T) {
	w := healthyWorld()
	w.Records = nil
	w.Missing = []string{w.Dirs.Data, w.Dirs.Cache}
	var b bytes.Buffer
	if err := RenderText(&b, Analyze(w)); err != nil {
		t.Fatal(err)
	}
	for _, d := range w.Missing {
		if !strings.Contains(b.String(), "info    "+d+": does not exist") {
			t.Errorf("report does not name %s in full:\n%s", d, b.String())
		}
	}
}

// TestLegacyRecords: files named like the records of builds before records
// named their network are shown (info, nothing to fix in macguard) and
// change nothing else in the report.
func TestLegacyRecords(t *testing.T) {
	w := healthyWorld()
	before := codes(Analyze(w), true)
	w.LegacyRecords = []string{"/run/cni/macguard/eth0@c0ffee.json"}
	r := Analyze(w)
	want := append(before, codeAt{Info, "record-legacy", "", ""})
	sortCodes(want)
	if got := codes(r, true); !reflect.DeepEqual(got, want) {
		t.Fatalf("findings %v, want %v", got, want)
	}
	for _, f := range r.Findings {
		if f.Code == "record-legacy" && (f.File != w.LegacyRecords[0] || f.Section != SectionRecords) {
			t.Errorf("record-legacy finding %+v", f)
		}
	}
}
