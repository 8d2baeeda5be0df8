package install

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseFlagsAndEnvironment(t *testing.T) {
	cases := []struct {
		name      string
		uninstall bool
		args      []string
		env       map[string]string
		want      Options
		check     bool
		errPart   string
	}{
		{name: "flags", args: []string{"--cni-bin-dir", "/b", "--chain-into", "/c/a.conflist", "--chain-into", "/c/b.conflist", "--plugin-config", `{"assign":"always"}`, "--watch", "--resync", "30s", "--convert-conf"},
			want: Options{CNIBinDir: "/b", ChainInto: []string{"/c/a.conflist", "/c/b.conflist"}, PluginConfig: `{"assign":"always"}`, Watch: true, Resync: 30 * time.Second, ConvertConf: true}},
		{name: "environment", args: []string{"--watch"},
			env:  map[string]string{"MACGUARD_CNI_BIN_DIR": "/b", "MACGUARD_CHAIN_INTO": "/c/a.conflist, /c/b.conflist", "MACGUARD_PLUGIN_CONFIG": `{"salt":"s"}`, "MACGUARD_CONVERT_CONF": "true"},
			want: Options{CNIBinDir: "/b", ChainInto: []string{"/c/a.conflist", "/c/b.conflist"}, PluginConfig: `{"salt":"s"}`, Watch: true, Resync: DefaultResync, ConvertConf: true}},
		{name: "flags win over the environment", args: []string{"--chain-into", "/x.conflist", "--cni-bin-dir", "/flag"},
			env:  map[string]string{"MACGUARD_CNI_BIN_DIR": "/env", "MACGUARD_CHAIN_INTO": "/c/a.conflist,/c/b.conflist"},
			want: Options{CNIBinDir: "/flag", ChainInto: []string{"/x.conflist"}, PluginConfig: DefaultPluginConfig, Resync: DefaultResync}},
		{name: "check", args: []string{"--check"}, env: map[string]string{"MACGUARD_CNI_BIN_DIR": "/b"},
			want: Options{CNIBinDir: "/b", PluginConfig: DefaultPluginConfig, Resync: DefaultResync}, check: true},
		{name: "uninstall", uninstall: true, args: []string{"--remove-binary"}, env: map[string]string{"MACGUARD_CNI_BIN_DIR": "/b", "MACGUARD_CHAIN_INTO": "/c/a.conflist"},
			want: Options{CNIBinDir: "/b", ChainInto: []string{"/c/a.conflist"}, RemoveBinary: true, Resync: DefaultResync}},
		{name: "uninstall has no --plugin-config", uninstall: true, args: []string{"--plugin-config", "{}"}, errPart: "plugin-config"},
		{name: "install has no --remove-binary", args: []string{"--remove-binary"}, errPart: "remove-binary"},
		{name: "bad environment value", env: map[string]string{"MACGUARD_RESYNC": "soon"}, errPart: "MACGUARD_RESYNC"},
		{name: "stray argument", args: []string{"--watch", "now"}, errPart: `"now"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			got, check, err := parse(c.uninstall, c.args, &stderr, env(c.env))
			if c.errPart != "" {
				if err == nil || !strings.Contains(err.Error()+stderr.String(), c.errPart) {
					t.Fatalf("err %v (stderr %q), want one mentioning %q", err, stderr.String(), c.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) || check != c.check {
				t.Errorf("got %+v check %v\nwant %+v check %v", got, check, c.want, c.check)
			}
		})
	}
}

func TestCLIExitCodes(t *testing.T) {
	n := newNode(t)
	p := n.place(t, "05-cilium.conflist", fixture(t, "05-cilium.conflist"), 0o644)
	e := env(map[string]string{"MACGUARD_CNI_BIN_DIR": n.bin, "MACGUARD_CHAIN_INTO": p})
	cli := func(uninstall bool, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := runCLI(uninstall, args, &out, &errOut, e)
		return code, out.String(), errOut.String()
	}
	if code, out, _ := cli(false, "--check"); code != 1 || !strings.Contains(out, "not ok") {
		t.Errorf("--check before install: %d\n%s", code, out)
	}
	// The source is the running test binary here.
	if code, _, stderr := cli(false); code != 0 || !strings.Contains(stderr, "chained macguard") {
		t.Errorf("install: %d\n%s", code, stderr)
	}
	if code, out, _ := cli(false, "--check"); code != 0 || strings.Contains(out, "not ok") || !strings.Contains(out, "ok       "+filepath.Join(n.bin, "macguard")) {
		t.Errorf("--check after install: %d\n%s", code, out)
	}
	if code, _, stderr := cli(false, "--plugin-config", `{"assign":"often"}`); code != 2 || !strings.Contains(stderr, `"assign"`) {
		t.Errorf("bad --plugin-config: %d\n%s", code, stderr)
	}
	if code, _, _ := cli(false, "--bogus"); code != 2 {
		t.Errorf("unknown flag: %d", code)
	}
	if code, out, _ := cli(false, "--help"); code != 0 || out != "" {
		t.Errorf("--help: %d %q", code, out)
	}
	if code, _, stderr := cli(true, "--remove-binary"); code != 0 || !strings.Contains(stderr, "removed binary") {
		t.Errorf("uninstall: %d\n%s", code, stderr)
	}
	if code, out, _ := cli(true, "--check", "--remove-binary"); code != 0 {
		t.Errorf("uninstall --check after uninstall: %d\n%s", code, out)
	}
	// A conflist that cannot be parsed: exit 1, file untouched.
	n.place(t, "05-cilium.conflist", []byte(`{"name":`), 0o644)
	if code, _, stderr := cli(false); code != 1 || !strings.Contains(stderr, p) {
		t.Errorf("unparsable conflist: %d\n%s", code, stderr)
	}
}
