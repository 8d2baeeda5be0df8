package install

import (
	"bytes"
	"errors"
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
		{name: "flags", args: []string{"--cni-bin-dir", "/b", "--plugin-binary", "/img/macguard", "--chain-into", "/c/a.conflist", "--chain-into", "/c/b.conflist", "--plugin-config", `{"assign":"always"}`, "--watch", "--resync", "30s", "--convert-conf"},
			want: Options{CNIBinDir: "/b", Source: "/img/macguard", ChainInto: []string{"/c/a.conflist", "/c/b.conflist"}, PluginConfig: `{"assign":"always"}`, Watch: true, Resync: 30 * time.Second, ConvertConf: true}},
		{name: "environment", args: []string{"--watch"},
			env:  map[string]string{"MACGUARD_CNI_BIN_DIR": "/b", "MACGUARD_PLUGIN_BINARY": "/img/macguard", "MACGUARD_CHAIN_INTO": "/c/a.conflist, /c/b.conflist", "MACGUARD_PLUGIN_CONFIG": `{"salt":"s"}`, "MACGUARD_CONVERT_CONF": "true"},
			want: Options{CNIBinDir: "/b", Source: "/img/macguard", ChainInto: []string{"/c/a.conflist", "/c/b.conflist"}, PluginConfig: `{"salt":"s"}`, Watch: true, Resync: DefaultResync, ConvertConf: true}},
		{name: "flags win over the environment", args: []string{"--chain-into", "/x.conflist", "--cni-bin-dir", "/flag", "--plugin-binary", "/flag/macguard"},
			env:  map[string]string{"MACGUARD_CNI_BIN_DIR": "/env", "MACGUARD_PLUGIN_BINARY": "/env/macguard", "MACGUARD_CHAIN_INTO": "/c/a.conflist,/c/b.conflist"},
			want: Options{CNIBinDir: "/flag", Source: "/flag/macguard", ChainInto: []string{"/x.conflist"}, PluginConfig: DefaultPluginConfig, Resync: DefaultResync}},
		{name: "no --plugin-binary: resolved later", args: []string{"--cni-bin-dir", "/b"},
			want: Options{CNIBinDir: "/b", PluginConfig: DefaultPluginConfig, Resync: DefaultResync}},
		{name: "check", args: []string{"--check"}, env: map[string]string{"MACGUARD_CNI_BIN_DIR": "/b"},
			want: Options{CNIBinDir: "/b", PluginConfig: DefaultPluginConfig, Resync: DefaultResync}, check: true},
		{name: "uninstall", uninstall: true, args: []string{"--remove-binary"}, env: map[string]string{"MACGUARD_CNI_BIN_DIR": "/b", "MACGUARD_CHAIN_INTO": "/c/a.conflist"},
			want: Options{CNIBinDir: "/b", ChainInto: []string{"/c/a.conflist"}, RemoveBinary: true, Resync: DefaultResync}},
		{name: "uninstall has no --plugin-config", uninstall: true, args: []string{"--plugin-config", "{}"}, errPart: "plugin-config"},
		{name: "uninstall has no --plugin-binary", uninstall: true, args: []string{"--plugin-binary", "/m"}, errPart: "plugin-binary"},
		{name: "uninstall ignores MACGUARD_PLUGIN_BINARY", uninstall: true, env: map[string]string{"MACGUARD_PLUGIN_BINARY": "/m"},
			want: Options{Resync: DefaultResync}},
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
	e := env(map[string]string{"MACGUARD_CNI_BIN_DIR": n.bin, "MACGUARD_CHAIN_INTO": p, "MACGUARD_PLUGIN_BINARY": n.src})
	cli := func(uninstall bool, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := runCLI(uninstall, args, &out, &errOut, e)
		return code, out.String(), errOut.String()
	}
	if code, out, _ := cli(false, "--check"); code != 1 || !strings.Contains(out, "not ok") {
		t.Errorf("--check before install: %d\n%s", code, out)
	}
	if code, _, stderr := cli(false); code != 0 || !strings.Contains(stderr, "chained macguard") {
		t.Errorf("install: %d\n%s", code, stderr)
	}
	if !bytes.Equal(read(t, filepath.Join(n.bin, "macguard")), read(t, n.src)) {
		t.Error("the installed binary is not MACGUARD_PLUGIN_BINARY")
	}
	if code, out, _ := cli(false, "--check"); code != 0 || strings.Contains(out, "not ok") || !strings.Contains(out, "ok       "+filepath.Join(n.bin, "macguard")) {
		t.Errorf("--check after install: %d\n%s", code, out)
	}
	if code, _, stderr := cli(false, "--plugin-config", `{"assign":"often"}`); code != 2 || !strings.Contains(stderr, `"assign"`) {
		t.Errorf("bad --plugin-config: %d\n%s", code, stderr)
	}
	// A plugin binary that is not there: refused before anything is
	// touched, naming the file and the flag.
	missing := filepath.Join(n.bin, "no-such-plugin")
	if code, _, stderr := cli(false, "--plugin-binary", missing); code != 2 || !strings.Contains(stderr, missing) || !strings.Contains(stderr, "--plugin-binary") {
		t.Errorf("missing --plugin-binary: %d\n%s", code, stderr)
	}
	if code, out, _ := cli(false, "--check", "--plugin-binary", n.bin); code != 2 || out != "" {
		t.Errorf("--check with a directory as the plugin binary: %d\n%s", code, out)
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

func TestUsageNamesMacguardctl(t *testing.T) {
	for _, uninstall := range []bool{false, true} {
		var out, errOut bytes.Buffer
		if code := runCLI(uninstall, []string{"--help"}, &out, &errOut, env(nil)); code != 0 {
			t.Fatalf("--help: exit %d", code)
		}
		usage := errOut.String()
		cmd := map[bool]string{false: "macguardctl install", true: "macguardctl uninstall"}[uninstall]
		if !strings.HasPrefix(usage, "usage: "+cmd+" ") || strings.Contains(usage, "macguard install") || strings.Contains(usage, "this binary") {
			t.Errorf("usage of %s:\n%s", cmd, usage)
		}
		if !uninstall && !strings.Contains(usage, "-plugin-binary") {
			t.Errorf("install usage does not document --plugin-binary:\n%s", usage)
		}
	}
}

func TestDefaultSource(t *testing.T) {
	cases := []struct {
		name    string
		exe     string
		err     error
		want    string
		errPart string
	}{
		{name: "in the image", exe: "/macguardctl", want: "/macguard"},
		{name: "installed by make install", exe: "/usr/local/bin/macguardctl", want: "/usr/local/bin/macguard"},
		{name: "unknown executable", err: errors.New("no /proc"), errPart: "--plugin-binary"},
		{name: "the tool renamed to macguard", exe: "/usr/bin/macguard", errPart: "itself named /usr/bin/macguard"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := defaultSource(func() (string, error) { return c.exe, c.err })
			if c.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), c.errPart) {
					t.Fatalf("defaultSource = %q, %v; want an error containing %q", got, err, c.errPart)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("defaultSource = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
