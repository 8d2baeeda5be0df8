package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// example is how to run one file of cni-conf/ and what it must do.
type example struct {
	pod       pod
	capArgs   string
	parent    bool // needs the macvlan parent on the node
	nodeLinks []string
	// want is the pod interface's MAC after ADD; "" means "whatever the
	// main plugin gave it" (a pass-through).
	want func(t *testing.T) string
	// action is macguard's logged decision: "set" (it changed the MAC) or
	// "keep" (the MAC was already right).
	action string
}

// runnable are the examples the reference plugins can execute. Every file
// under cni-conf/local and cni-conf/multus must be here or in notRunnable,
// so a new example cannot be added without being run or explained.
var runnable = map[string]example{
	"local/10-bridge-vm.conflist": {
		pod: pod{"vms", "virt-launcher-vm1-abcde"}, nodeLinks: []string{"mgbr0"}, action: "set",
		want: func(t *testing.T) string {
			return testutil.DerivedMAC(t, "--namespace", "vms", "--vm", "vm1", "--ifname", podIf)
		},
	},
	"local/20-ptp.conflist": {pod: webPod, action: "keep", want: func(*testing.T) string { return "" }},
	"local/30-macvlan-mac.conflist": {
		pod: webPod, parent: true, nodeLinks: []string{parentIf, parentPeer}, action: "set",
		capArgs: `{"mac":"0a:58:c0:a8:3c:0a"}`, want: func(*testing.T) string { return "0a:58:c0:a8:3c:0a" },
	},
	// macvlan holds the "mac" capability here and applies the MAC itself.
	"multus/macvlan-mac.yaml": {
		pod: webPod, parent: true, nodeLinks: []string{parentIf, parentPeer}, action: "keep",
		capArgs: `{"mac":"0a:58:c0:a8:32:0a"}`, want: func(*testing.T) string { return "0a:58:c0:a8:32:0a" },
	},
	// tuning applies it; macguard agrees.
	"multus/macvlan-mac-tuning.yaml": {
		pod: webPod, parent: true, nodeLinks: []string{parentIf, parentPeer}, action: "keep",
		capArgs: `{"mac":"0a:58:c0:a8:33:0a"}`, want: func(*testing.T) string { return "0a:58:c0:a8:33:0a" },
	},
}

var notRunnable = map[string]string{
	"multus/kube-ovn-macvlan.yaml": "needs Kube-OVN's IPAM daemon; its macvlan-without-capability case is TestMacvlanRequestEnforced",
	"multus/host-device-mac.yaml":  "moves a node device into the pod through Multus; run on a real node by test/k8s (TestCluster/Secondaries)",
}

// TestExamples runs the shipped examples with cnitool, changing only what
// must differ on a test node (see localize), and checks each does what
// cni-conf/README.md says.
func TestExamples(t *testing.T) {
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	confDir := filepath.Join(root, "cni-conf")
	for _, dir := range []string{"local", "multus"} {
		entries, err := os.ReadDir(filepath.Join(confDir, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			rel := dir + "/" + e.Name()
			if e.IsDir() || strings.HasSuffix(rel, ".md") {
				continue
			}
			if _, ok := runnable[rel]; ok {
				continue
			}
			if _, ok := notRunnable[rel]; !ok {
				t.Errorf("cni-conf/%s is neither run by TestExamples nor listed in notRunnable with a reason", rel)
			}
		}
	}
	for rel, ex := range runnable {
		t.Run(rel, func(t *testing.T) {
			list := loadExample(t, filepath.Join(confDir, rel))
			n := newNode(t)
			if ex.parent {
				n.withParent()
			}
			name := uniqueName(list["name"].(string))
			n.localize(list, name)
			n.WriteConfList(t, list)

			a := n.attach(name, testutil.NewNetns(t), ex.pod, ex.capArgs)
			r, raw := a.add()
			want := ex.want(t)
			got := a.linkMAC()
			if want != "" && got != want {
				t.Errorf("pod interface has %s, want %s", got, want)
			}
			if res := a.podMACInResult(r); res != got {
				t.Errorf("result reports %s, the interface has %s: %s", res, got, raw)
			}
			if l := a.addLog(); l["action"] != ex.action || l["new"] != got {
				t.Errorf("macguard logged %v, want action=%s new=%s", l, ex.action, got)
			}
			a.check()
			a.del()
			a.assertClean(ex.nodeLinks...)
		})
	}
	for rel, why := range notRunnable {
		if _, err := os.Stat(filepath.Join(confDir, rel)); err != nil {
			t.Errorf("notRunnable lists %s (%s), which does not exist: %v", rel, why, err)
		}
	}
}

// loadExample reads a conflist, or the config embedded in a
// NetworkAttachmentDefinition, as JSON values.
func loadExample(t *testing.T, path string) obj {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if ext := filepath.Ext(path); ext == ".yaml" || ext == ".yml" {
		var nad struct {
			Spec struct {
				Config string `json:"config"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(data, &nad); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		data = []byte(nad.Spec.Config)
	}
	var list obj
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return list
}

// localize points an example at the test node: a unique network name, the
// node's state directories, macguard's logFile (to read its decision), and
// the node's macvlan parent. Nothing else is touched, so the chain that
// runs is the one users copy.
func (n *node) localize(list obj, name string) {
	list["name"] = name
	plugins, _ := list["plugins"].([]any)
	for _, p := range plugins {
		p := p.(obj)
		switch p["type"] {
		case "macguard":
			p["dataDir"], p["logFile"] = n.DataDir, n.LogFile
		case "tuning":
			p["dataDir"] = n.tuningDir
		case "macvlan":
			p["master"] = parentIf
		}
		if ipam, ok := p["ipam"].(obj); ok && ipam["type"] == "host-local" {
			ipam["dataDir"] = n.IPAMDir
		}
	}
}
