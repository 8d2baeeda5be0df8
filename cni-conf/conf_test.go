// Package cniconf holds no code: its test loads every file under cni-conf/
// the way the real consumers do, so that no example can rot unnoticed.
// Conflists go through libcni's parser (what containerd, CRI-O, Multus and
// cnitool use); NetworkAttachmentDefinitions are decoded from YAML and
// their embedded config goes through the same parser; every macguard entry
// goes through macguard's own config validation.
//
// The examples users copy that can run with the reference plugins
// (local/*, and the macvlan NADs in multus/) are also executed by the e2e
// suite (test/e2e, TestExamples).
package cniconf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"sigs.k8s.io/yaml"

	"github.com/macguard-cni/macguard/pkg/config"
)

// exampleDirs are the directories of examples for users; each of their
// conflists must chain macguard. Other directories (installer/ holds the
// primary agents' own conflists as test fixtures for `macguardctl install`)
// are parsed too, but need not contain macguard.
var exampleDirs = []string{"chained", "local", "multus"}

// macguardVersions is what the plugin supports (docs/contract.md): a
// conflist in any other cniVersion would fail at the first ADD.
var macguardVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// dns1123 is the Kubernetes object-name rule a NAD's metadata.name must meet.
var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// nad is a Multus NetworkAttachmentDefinition, only the fields Multus reads.
// Decoded strictly, so a misspelt key fails here and not in a cluster.
type nad struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Config string `json:"config"`
	} `json:"spec"`
}

func TestEveryFileLoads(t *testing.T) {
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking cni-conf: %v", err)
	}
	loaded := map[string]int{}
	for _, f := range files {
		kind := fileKind(f)
		if kind == "" {
			t.Errorf("%s: unknown file kind; cni-conf holds conflists (.conflist, .json), NADs (.yaml) and their docs (.md) — teach this test about it or move it", f)
			continue
		}
		if kind == "doc" || kind == "test" {
			continue
		}
		t.Run(f, func(t *testing.T) {
			var lists []*libcni.NetworkConfigList
			switch kind {
			case "conflist":
				l, err := libcni.ConfListFromFile(f)
				if err != nil {
					t.Fatalf("libcni cannot load it: %v", err)
				}
				lists = append(lists, l)
			case "nad":
				lists = append(lists, loadNAD(t, f))
			}
			for _, l := range lists {
				checkList(t, f, l)
			}
		})
		loaded[topDir(f)]++
	}
	// The walk must have found the examples; an empty directory (or a
	// test run from the wrong place) must not pass as "all files load".
	for _, d := range exampleDirs {
		if loaded[d] == 0 {
			t.Errorf("no example loaded from cni-conf/%s", d)
		}
	}
}

func fileKind(p string) string {
	switch filepath.Ext(p) {
	case ".conflist", ".json":
		return "conflist"
	case ".yaml", ".yml":
		return "nad"
	case ".md":
		return "doc"
	case ".go":
		return "test"
	}
	return ""
}

func topDir(p string) string {
	d, _, _ := strings.Cut(filepath.ToSlash(p), "/")
	return d
}

func loadNAD(t *testing.T, f string) *libcni.NetworkConfigList {
	t.Helper()
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("\n---")) {
		t.Fatalf("holds several YAML documents; keep one NetworkAttachmentDefinition per file")
	}
	var n nad
	if err := yaml.UnmarshalStrict(data, &n); err != nil {
		t.Fatalf("not a NetworkAttachmentDefinition: %v", err)
	}
	if n.APIVersion != "k8s.cni.cncf.io/v1" || n.Kind != "NetworkAttachmentDefinition" {
		t.Errorf("apiVersion/kind %s/%s, want k8s.cni.cncf.io/v1 NetworkAttachmentDefinition", n.APIVersion, n.Kind)
	}
	if !dns1123.MatchString(n.Metadata.Name) || len(n.Metadata.Name) > 253 {
		t.Errorf("metadata.name %q is not a valid Kubernetes object name", n.Metadata.Name)
	}
	if strings.TrimSpace(n.Spec.Config) == "" {
		t.Fatalf("spec.config is empty")
	}
	l, err := libcni.ConfListFromBytes([]byte(n.Spec.Config))
	if err != nil {
		t.Fatalf("spec.config: libcni cannot parse it: %v", err)
	}
	if len(l.Plugins) == 0 {
		t.Fatalf("spec.config has no \"plugins\": Multus would treat it as a single plugin, and macguard can only run chained")
	}
	return l
}

// checkList validates one parsed conflist: the basics every runtime needs,
// then every macguard entry with macguard's own parser.
func checkList(t *testing.T, f string, l *libcni.NetworkConfigList) {
	t.Helper()
	if l.Name == "" || l.CNIVersion == "" {
		t.Errorf("name %q / cniVersion %q must both be set", l.Name, l.CNIVersion)
	}
	mustChain := slices.Contains(exampleDirs, topDir(f))
	found := 0
	for i, p := range l.Plugins {
		if p.Network.Type == "" {
			t.Errorf("plugin %d has no type", i)
		}
		if p.Network.Type != "macguard" {
			continue
		}
		found++
		if i == 0 {
			t.Errorf("macguard is the first plugin: it corrects the result of a main plugin, so it must come after one")
		}
		if !slices.Contains(macguardVersions, l.CNIVersion) {
			t.Errorf("cniVersion %q: macguard supports %v", l.CNIVersion, macguardVersions)
		}
		checkMacguard(t, i, p.Bytes)
	}
	if mustChain && found != 1 {
		t.Errorf("has %d macguard entries, want exactly one in an example", found)
	}
}

func checkMacguard(t *testing.T, i int, raw []byte) {
	t.Helper()
	c, err := config.Parse(raw, "")
	if err == nil {
		_, err = c.Requested()
	}
	if err != nil {
		t.Errorf("macguard entry (plugin %d) is rejected by macguard: %v", i, err)
	}
	// Every key must be one macguard or the runtime knows: config.Parse
	// ignores unknown keys, so a typo ("asign") would silently fall back to
	// the default without this.
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	known := []string{"type", "name", "cniVersion", "capabilities", "assign", "identity", "salt",
		"prefix", "mac", "onUnsupported", "announce", "dataDir", "logFile", "logLevel"}
	for k := range keys {
		if !slices.Contains(known, k) {
			t.Errorf("macguard entry (plugin %d) has unknown key %q", i, k)
		}
	}
	if caps, ok := keys["capabilities"]; ok {
		var m map[string]bool
		if err := json.Unmarshal(caps, &m); err != nil || len(m) != 1 || !m["mac"] {
			t.Errorf(`macguard entry (plugin %d): capabilities %s; the only one macguard reads is {"mac": true}`, i, caps)
		}
	}
}

// TestEveryFileIsDescribed keeps the READMEs honest: every example is
// explained in the README.md of its directory or of cni-conf/.
func TestEveryFileIsDescribed(t *testing.T) {
	top, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatalf("cni-conf/README.md: %v", err)
	}
	err = filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if k := fileKind(p); k != "conflist" && k != "nad" {
			return nil
		}
		docs := string(top)
		if local, err := os.ReadFile(filepath.Join(filepath.Dir(p), "README.md")); err == nil {
			docs += string(local)
		}
		if !strings.Contains(docs, filepath.Base(p)) {
			t.Errorf("%s is not described in cni-conf/README.md (or its directory's README.md)", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(fmt.Errorf("walking cni-conf: %w", err))
	}
}

// TestCiliumSkipsUnsupported: every macguard entry shipped for Cilium (the
// chained examples and the entry the cilium overlay's installer writes)
// lets a pod whose interface cannot carry a MAC (netkit in L3 mode) start.
// A KubeVirt VM's MAC then comes from its spec (macguard's webhook,
// docs/webhook.md); failing the launcher pod would stop the very VM the
// webhook fixed.
func TestCiliumSkipsUnsupported(t *testing.T) {
	entries := map[string][]byte{}
	files, err := filepath.Glob("chained/05-cilium-*.conflist")
	if err != nil || len(files) < 2 {
		t.Fatalf("Cilium examples %v: %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var l struct{ Plugins []json.RawMessage }
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Plugins {
			if strings.Contains(string(p), `"macguard"`) {
				entries[f] = p
			}
		}
	}
	overlay, err := os.ReadFile("../deploy/overlays/cilium/chain.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)MACGUARD_PLUGIN_CONFIG\s*\n\s*value:\s*'([^']*)'`).FindSubmatch(overlay)
	if m == nil {
		t.Fatal("deploy/overlays/cilium/chain.yaml sets no MACGUARD_PLUGIN_CONFIG")
	}
	entries["deploy/overlays/cilium"] = m[1]
	for name, raw := range entries {
		var e struct{ OnUnsupported string }
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if e.OnUnsupported != string(config.UnsupportedSkip) {
			t.Errorf("%s: onUnsupported %q, want %q", name, e.OnUnsupported, config.UnsupportedSkip)
		}
	}
	if len(entries) != len(files)+1 {
		t.Errorf("macguard entries %d, want one per Cilium example plus the overlay's", len(entries))
	}
}
