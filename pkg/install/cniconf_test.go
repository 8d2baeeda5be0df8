package install

import (
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"sigs.k8s.io/yaml"
)

// The validator replaces libcni in the binary; these tests keep the two in
// agreement. libcni is the oracle: every input goes through both, and a
// difference in accept/reject fails, whatever the table says.

// agreeList fails t when validateList and libcni's ConfListFromBytes do not
// both accept or both reject data, and returns validateList's error.
func agreeList(t *testing.T, data []byte) error {
	t.Helper()
	got := validateList(data)
	_, want := libcni.ConfListFromBytes(data)
	if (got == nil) != (want == nil) {
		t.Errorf("validateList: %v; libcni: %v; input:\n%s", got, want, data)
	}
	return got
}

// agreePlugin is agreeList for a single-plugin configuration (a .conf).
func agreePlugin(t *testing.T, data []byte) error {
	t.Helper()
	got := validatePlugin(data)
	_, want := libcni.ConfFromBytes(data)
	if (got == nil) != (want == nil) {
		t.Errorf("validatePlugin: %v; libcni: %v; input:\n%s", got, want, data)
	}
	return got
}

// exampleConfigs returns every network configuration list under cni-conf/:
// the conflists, and the config embedded in each NetworkAttachmentDefinition.
func exampleConfigs(t *testing.T) map[string][]byte {
	t.Helper()
	root := filepath.Join("..", "..", "cni-conf")
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name, _ := filepath.Rel(root, p)
		switch filepath.Ext(p) {
		case ".conflist", ".json":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[name] = b
		case ".yaml", ".yml":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			var nad struct {
				Spec struct {
					Config string `json:"config"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(b, &nad); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			out[name] = []byte(nad.Spec.Config)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// installer/ has three, chained/ and local/ three each, multus/ three.
	if len(out) < 12 {
		t.Fatalf("found only %d configurations under %s", len(out), root)
	}
	return out
}

func TestValidatorAcceptsTheExamples(t *testing.T) {
	for name, data := range exampleConfigs(t) {
		t.Run(name, func(t *testing.T) {
			if err := agreeList(t, data); err != nil {
				t.Errorf("refused: %v", err)
			}
			var list struct{ Plugins []json.RawMessage }
			if err := json.Unmarshal(data, &list); err != nil {
				t.Fatal(err)
			}
			for i, p := range list.Plugins {
				if err := agreePlugin(t, p); err != nil {
					t.Errorf("plugin %d refused as a .conf: %v", i, err)
				}
			}
		})
	}
}

func TestValidatorAgreesWithLibcni(t *testing.T) {
	cases := []struct {
		name, in string
		ok       bool
		errPart  string // in validateList's message, when !ok
	}{
		{"minimal", `{"name":"n","plugins":[{"type":"bridge"}]}`, true, ""},
		{"spaces around", " \n{\"name\":\"n\",\"plugins\":[{\"type\":\"bridge\"}]}\n\t", true, ""},
		{"empty name", `{"name":"","plugins":[{"type":"bridge"}]}`, true, ""},
		{"no plugins key", `{"name":"n","cniVersion":"1.0.0"}`, true, ""},
		{"duplicate key, last valid", `{"name":1,"name":"n","plugins":[{"type":"bridge"}]}`, true, ""},
		{"invalid UTF-8 in a string", "{\"name\":\"n\xff\",\"plugins\":[{\"type\":\"bridge\"}]}", true, ""},
		{"unknown members", `{"name":"n","x":{"y":[1,2e3]},"plugins":[{"type":"bridge","z":null}]}`, true, ""},

		{"empty input", ``, false, "not valid JSON"},
		{"truncated", `{"name":"n","plugins":[{"type":"bri`, false, "not valid JSON"},
		{"trailing data", `{"name":"n","plugins":[{"type":"bridge"}]} {}`, false, "not valid JSON"},
		{"byte order mark", "\xef\xbb\xbf{\"name\":\"n\",\"plugins\":[{\"type\":\"bridge\"}]}", false, "not valid JSON"},
		{"top-level array", `[{"name":"n","plugins":[{"type":"bridge"}]}]`, false, "not a JSON object"},
		{"top-level string", `"n"`, false, "not a JSON object"},
		{"top-level null", `null`, false, `"name" is missing`},
		{"empty object", `{}`, false, `"name" is missing`},
		{"number too large", `{"name":"n","plugins":[{"type":"bridge","mtu":1e400}]}`, false, "number too large"},

		{"missing name", `{"plugins":[{"type":"bridge"}]}`, false, `"name" is missing`},
		{"name in capitals", `{"Name":"n","plugins":[{"type":"bridge"}]}`, false, `"name" is missing`},
		{"name a number", `{"name":1,"plugins":[{"type":"bridge"}]}`, false, `"name" is a number`},
		{"name null", `{"name":null,"plugins":[{"type":"bridge"}]}`, false, `"name" is null`},

		{"cniVersion a number", `{"name":"n","cniVersion":1.0,"plugins":[{"type":"bridge"}]}`, false, `"cniVersion" is a number`},
		{"cniVersion nonsense alone", `{"name":"n","cniVersion":"banana","plugins":[{"type":"bridge"}]}`, true, ""},
		{"cniVersion nonsense with cniVersions", `{"name":"n","cniVersion":"banana","cniVersions":["1.0.0"],"plugins":[{"type":"bridge"}]}`, false, `"cniVersion"`},
		{"cniVersion nonsense with empty cniVersions", `{"name":"n","cniVersion":"banana","cniVersions":[],"plugins":[{"type":"bridge"}]}`, false, `"cniVersion"`},
		{"cniVersions", `{"name":"n","cniVersion":"1.0.0","cniVersions":["0.4.0","1.1.0","9.9.9"],"plugins":[{"type":"bridge"}]}`, true, ""},
		{"cniVersions empty string entry", `{"name":"n","cniVersions":[""],"plugins":[{"type":"bridge"}]}`, true, ""},
		{"cniVersions short entries", `{"name":"n","cniVersions":["1","1.1"],"plugins":[{"type":"bridge"}]}`, true, ""},
		{"cniVersions a string", `{"name":"n","cniVersions":"1.0.0","plugins":[{"type":"bridge"}]}`, false, `"cniVersions" is a string`},
		{"cniVersions null", `{"name":"n","cniVersions":null,"plugins":[{"type":"bridge"}]}`, false, `"cniVersions" is null`},
		{"cniVersions number entry", `{"name":"n","cniVersions":["1.0.0",1],"plugins":[{"type":"bridge"}]}`, false, `"cniVersions"[1] is a number`},
		{"cniVersions bad entry", `{"name":"n","cniVersions":["1.x.0"],"plugins":[{"type":"bridge"}]}`, false, `"cniVersions"[0]`},
		{"cniVersions four parts", `{"name":"n","cniVersions":["1.0.0.0"],"plugins":[{"type":"bridge"}]}`, false, `"cniVersions"[0]`},
		{"cniVersions v prefix", `{"name":"n","cniVersions":["v1.0.0"],"plugins":[{"type":"bridge"}]}`, false, `"cniVersions"[0]`},

		{"disableCheck true", `{"name":"n","disableCheck":true,"plugins":[{"type":"bridge"}]}`, true, ""},
		{"disableCheck \"TRUE\"", `{"name":"n","disableCheck":"TRUE","plugins":[{"type":"bridge"}]}`, true, ""},
		{"disableCheck \"False\"", `{"name":"n","disableCheck":"False","plugins":[{"type":"bridge"}]}`, true, ""},
		{"disableCheck \"yes\"", `{"name":"n","disableCheck":"yes","plugins":[{"type":"bridge"}]}`, false, `"disableCheck" is "yes"`},
		{"disableCheck \"\"", `{"name":"n","disableCheck":"","plugins":[{"type":"bridge"}]}`, false, `"disableCheck"`},
		{"disableCheck long s", `{"name":"n","disableCheck":"fal\u017fe","plugins":[{"type":"bridge"}]}`, false, `"disableCheck"`},
		{"disableCheck 1", `{"name":"n","disableCheck":1,"plugins":[{"type":"bridge"}]}`, false, `"disableCheck" is a number`},
		{"disableGC null", `{"name":"n","disableGC":null,"plugins":[{"type":"bridge"}]}`, false, `"disableGC" is null`},
		{"disableGC \"yes\"", `{"name":"n","disableGC":"yes","plugins":[{"type":"bridge"}]}`, false, `"disableGC"`},
		{"loadOnlyInlinedPlugins with plugins", `{"name":"n","loadOnlyInlinedPlugins":true,"plugins":[{"type":"bridge"}]}`, true, ""},
		{"loadOnlyInlinedPlugins false without plugins", `{"name":"n","loadOnlyInlinedPlugins":false}`, true, ""},
		{"loadOnlyInlinedPlugins without plugins", `{"name":"n","loadOnlyInlinedPlugins":true}`, false, `"loadOnlyInlinedPlugins" is true`},
		{"loadOnlyInlinedPlugins \"True\" without plugins", `{"name":"n","loadOnlyInlinedPlugins":"True"}`, false, `"loadOnlyInlinedPlugins" is true`},
		{"loadOnlyInlinedPlugins an array", `{"name":"n","loadOnlyInlinedPlugins":[],"plugins":[{"type":"bridge"}]}`, false, `"loadOnlyInlinedPlugins" is an array`},

		{"plugins empty", `{"name":"n","plugins":[]}`, false, `"plugins" is empty`},
		{"plugins an object", `{"name":"n","plugins":{"type":"bridge"}}`, false, `"plugins" is an object`},
		{"plugins null", `{"name":"n","plugins":null}`, false, `"plugins" is null`},
		{"plugins a string", `{"name":"n","plugins":"bridge"}`, false, `"plugins" is a string`},
		{"plugin without type", `{"name":"n","plugins":[{"bridge":"br0"}]}`, false, `"plugins"[0]: "type" is missing`},
		{"second plugin without type", `{"name":"n","plugins":[{"type":"bridge"},{}]}`, false, `"plugins"[1]: "type" is missing`},
		{"plugin type empty", `{"name":"n","plugins":[{"type":""}]}`, false, `"type" is missing or empty`},
		{"plugin type null", `{"name":"n","plugins":[{"type":null}]}`, false, `"type" is missing or empty`},
		{"plugin type a number", `{"name":"n","plugins":[{"type":5}]}`, false, `"plugins"[0]: "type" has the wrong type`},
		{"plugin type an object", `{"name":"n","plugins":[{"type":{"name":"bridge"}}]}`, false, `"plugins"[0]`},
		{"plugin type in capitals", `{"name":"n","plugins":[{"Type":"bridge"}]}`, true, ""},
		// libcni decodes a re-encoded copy, keys sorted: "Type" before
		// "type", so "type" is the one that counts.
		{"plugin type and Type, type set", `{"name":"n","plugins":[{"type":"bridge","Type":""}]}`, true, ""},
		{"plugin type and Type, Type set", `{"name":"n","plugins":[{"Type":"bridge","type":""}]}`, false, `"type" is missing or empty`},
		{"plugin a string", `{"name":"n","plugins":["bridge"]}`, false, `"plugins"[0]: it is a string, not a JSON object`},
		{"plugin null", `{"name":"n","plugins":[null]}`, false, `"plugins"[0]: "type" is missing`},
		{"plugin an array", `{"name":"n","plugins":[[{"type":"bridge"}]]}`, false, `"plugins"[0]: it is an array`},
		{"plugin a number", `{"name":"n","plugins":[1]}`, false, `"plugins"[0]: it is a number`},
		{"plugin name a number", `{"name":"n","plugins":[{"type":"bridge","name":5}]}`, false, "name"},
		{"plugin cniVersion a number", `{"name":"n","plugins":[{"type":"bridge","cniVersion":1}]}`, false, "cniVersion"},
		{"plugin cniVersion nonsense", `{"name":"n","plugins":[{"type":"bridge","cniVersion":"banana"}]}`, true, ""},
		{"plugin capabilities", `{"name":"n","plugins":[{"type":"bridge","capabilities":{"mac":true,"ips":false}}]}`, true, ""},
		{"plugin capability \"yes\"", `{"name":"n","plugins":[{"type":"bridge","capabilities":{"mac":"yes"}}]}`, false, "capabilities"},
		{"plugin capabilities an array", `{"name":"n","plugins":[{"type":"bridge","capabilities":["mac"]}]}`, false, "capabilities"},
		{"plugin ipam", `{"name":"n","plugins":[{"type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/8"}]]}}]}`, true, ""},
		{"plugin ipam a string", `{"name":"n","plugins":[{"type":"bridge","ipam":"host-local"}]}`, false, "ipam"},
		{"plugin ipam type a number", `{"name":"n","plugins":[{"type":"bridge","ipam":{"type":5}}]}`, false, `"ipam.type" has the wrong type`},
		{"plugin dns", `{"name":"n","plugins":[{"type":"bridge","dns":{"nameservers":["10.0.0.1"],"domain":"d","search":["s"],"options":["o"]}}]}`, true, ""},
		{"plugin dns nameservers a string", `{"name":"n","plugins":[{"type":"bridge","dns":{"nameservers":"10.0.0.1"}}]}`, false, "dns"},
		{"plugin prevResult an array", `{"name":"n","plugins":[{"type":"bridge","prevResult":[]}]}`, false, "prevResult"},
		{"plugin prevResult", `{"name":"n","plugins":[{"type":"bridge","prevResult":{"cniVersion":"1.0.0"}}]}`, true, ""},
		{"plugin valid-attachments a string", `{"name":"n","plugins":[{"type":"bridge","cni.dev/valid-attachments":"x"}]}`, false, "valid-attachments"},
		{"plugin valid-attachments", `{"name":"n","plugins":[{"type":"bridge","cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"}]}]}`, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := agreeList(t, []byte(c.in))
			if (err == nil) != c.ok {
				t.Fatalf("validateList(%s) = %v, want ok=%v", c.in, err, c.ok)
			}
			if err != nil && !strings.Contains(err.Error(), c.errPart) {
				t.Errorf("validateList(%s) = %q, want a message containing %q", c.in, err, c.errPart)
			}
		})
	}
}

func TestPluginValidatorAgreesWithLibcni(t *testing.T) {
	cases := []struct {
		name, in string
		ok       bool
		errPart  string // in validatePlugin's message, when !ok
	}{
		{"minimal", `{"type":"bridge"}`, true, ""},
		{"a .conf", `{"cniVersion":"0.4.0","name":"n","type":"bridge","ipam":{"type":"host-local"}}`, true, ""},
		{"no name", `{"type":"bridge"}`, true, ""},
		{"type in capitals", `{"TYPE":"bridge"}`, true, ""},
		// Decoded as written, not re-encoded: the last key counts.
		{"type then TYPE", `{"type":"","TYPE":"bridge"}`, true, ""},
		{"TYPE then type", `{"TYPE":"bridge","type":""}`, false, `"type" is missing`},
		{"duplicate type, last empty", `{"type":"bridge","type":""}`, false, `"type" is missing`},
		{"empty object", `{}`, false, `"type" is missing`},
		{"null", `null`, false, `"type" is missing`},
		{"empty input", ``, false, "not valid JSON"},
		{"truncated", `{"type":"bri`, false, "not valid JSON"},
		{"trailing data", `{"type":"bridge"} x`, false, "not valid JSON"},
		{"an array", `[{"type":"bridge"}]`, false, "it is an array, not a JSON object"},
		{"a string", `"bridge"`, false, "it is a string, not a JSON object"},
		{"type a number", `{"type":1}`, false, "type"},
		{"ipam an array", `{"type":"bridge","ipam":[]}`, false, "ipam"},
		{"number too large, unknown field", `{"type":"bridge","mtu":1e400}`, true, ""},
		{"number too large, in a known field", `{"type":"bridge","ipam":{"type":1e400}}`, false, "ipam"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := agreePlugin(t, []byte(c.in))
			if (err == nil) != c.ok {
				t.Fatalf("validatePlugin(%s) = %v, want ok=%v", c.in, err, c.ok)
			}
			if err != nil && !strings.Contains(err.Error(), c.errPart) {
				t.Errorf("validatePlugin(%s) = %q, want a message containing %q", c.in, err, c.errPart)
			}
		})
	}
}

// TestValidatorAgreesOnDamagedExamples derives broken and odd variants from
// every example, without randomness: each prefix, each file with one byte
// removed, and each top-level and plugin member deleted or replaced by a
// value of another type. Both parsers must judge each variant alike.
func TestValidatorAgreesOnDamagedExamples(t *testing.T) {
	values := []string{`null`, `true`, `false`, `0`, `1e400`, `""`, `"x"`, `"true"`, `"1.0.0"`, `[]`, `["1.0.0"]`, `[1]`, `{}`, `[{}]`, `[{"type":"x"}]`, `{"type":"x"}`}
	for name, data := range exampleConfigs(t) {
		t.Run(name, func(t *testing.T) {
			for i := range data {
				agreeList(t, data[:i])
				cut := append(append([]byte{}, data[:i]...), data[i+1:]...)
				agreeList(t, cut)
			}
			top, err := parseObject(data)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range top {
				without := append(append(object{}, top[:i]...), top[i+1:]...)
				agreeList(t, without.compact())
				for _, v := range values {
					agreeList(t, top.with(m.key, json.RawMessage(v)).compact())
				}
			}
			d, err := parseList(data)
			if err != nil {
				t.Fatal(err)
			}
			for pi, p := range d.plugins {
				plugin, err := parseObject(p)
				if err != nil {
					t.Fatal(err)
				}
				variant := func(np object) {
					ps := append([]json.RawMessage{}, d.plugins...)
					ps[pi] = np.compact()
					raw, err := json.Marshal(ps)
					if err != nil {
						t.Fatal(err)
					}
					agreeList(t, top.with("plugins", raw).compact())
					agreePlugin(t, np.compact())
				}
				for i, m := range plugin {
					variant(append(append(object{}, plugin[:i]...), plugin[i+1:]...))
					for _, v := range values {
						variant(plugin.with(m.key, json.RawMessage(v)))
					}
				}
			}
		})
	}
}

// TestNoLibcniInThePackage: this package is linked into the plugin, and
// libcni would bring pkg/invoke and os/exec into every CNI invocation; only
// its tests may use libcni.
func TestNoLibcniInThePackage(t *testing.T) {
	forbidden := []string{"github.com/containernetworking/cni/libcni", "github.com/containernetworking/cni/pkg/invoke", "os/exec"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range file.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); slices.Contains(forbidden, path) {
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files found; is the test running in the package directory?")
	}
}
