// Package badinput drives the real plugin binary with bad input, as a
// runtime (or a broken one) would call it, in real network namespaces.
//
// Every case must end in a non-zero exit with a CNI error object on stdout
// carrying the right code and a message that names the field or variable
// and what is allowed, and must leave the pod interface (MAC and addresses)
// and everything under the case's directory (dataDir, log files) exactly
// as they were.
//
// To make "unchanged" mean something, every case starts from a pod that a
// bad command could visibly damage: the config asks for assign "always"
// (an ADD that went ahead would change the MAC and write state), and the
// dataDir already holds a record for this very attachment whose original
// MAC differs from the current one (a DEL that went ahead would change the
// MAC back and remove the record). TestControl proves both would show.
package badinput

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/macaddr"
	"github.com/macguard-cni/macguard/pkg/pathpolicy"
	"github.com/macguard-cni/macguard/pkg/plugin"
	"github.com/macguard-cni/macguard/pkg/stdin"
)

const (
	containerID = "c1"
	// seededOriginal is what the seeded record says the interface had
	// before an earlier ADD; a DEL that acted would put it back.
	seededOriginal = "0a:58:de:ad:be:ef"
	// runTimeout bounds one plugin run; the endless-stdin case relies on it.
	runTimeout = 30 * time.Second
)

// fixture is one case's world: a veth pod and a directory holding its
// dataDir and anything else the case points the plugin at.
type fixture struct {
	pod     *testutil.Pod
	root    string
	dataDir string
	mac     string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pod := testutil.NewVethPod(t, nil, "veth-host")
	root := t.TempDir()
	f := &fixture{pod: pod, root: root, dataDir: filepath.Join(root, "state"), mac: macaddr.String(testutil.MAC(t, pod.NS, pod.IfName))}
	if err := os.Mkdir(f.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, rec := range []struct{ cid, applied string }{{containerID, f.mac}, {"other", "0a:58:00:00:00:02"}} {
		data := fmt.Sprintf(`{"version":2,"network":"badinput","containerID":%q,"ifName":"eth0","netns":%q,"originalMAC":%q,"appliedMAC":%q,"created":"2026-01-01T00:00:00Z"}`,
			rec.cid, pod.NS.Path(), seededOriginal, rec.applied)
		if err := os.WriteFile(filepath.Join(f.dataDir, testutil.RecordName("badinput", rec.cid, "eth0")), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// conf is the valid base config with fields overridden by over (a JSON
// object) and the named top-level fields dropped.
func (f *fixture) conf(over string, drop ...string) []byte {
	base := map[string]json.RawMessage{
		"cniVersion": raw(`"1.0.0"`),
		"name":       raw(`"badinput"`),
		"type":       raw(`"macguard"`),
		"assign":     raw(`"always"`),
		"dataDir":    mustJSON(f.dataDir),
		"prevResult": raw(f.pod.PrevResult("1.0.0", f.mac)),
	}
	if over != "" {
		var o map[string]json.RawMessage
		if err := json.Unmarshal([]byte(over), &o); err != nil {
			panic(fmt.Sprintf("bad override %s: %v", over, err))
		}
		for k, v := range o {
			base[k] = v
		}
	}
	for _, k := range drop {
		delete(base, k)
	}
	return mustJSON(base)
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// prev is the base prevResult with its top level overridden by over.
func (f *fixture) prev(over string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(f.pod.PrevResult("1.0.0", f.mac)), &m); err != nil {
		panic(fmt.Sprintf("base prevResult: %v", err))
	}
	var o map[string]json.RawMessage
	if err := json.Unmarshal([]byte(over), &o); err != nil {
		panic(fmt.Sprintf("bad override %s: %v", over, err))
	}
	for k, v := range o {
		m[k] = v
	}
	return string(mustJSON(m))
}

// allowOnly gives the run the roots of a node that widens them (besides
// the built-in ones) to the case's subdirectories data and log only ("" is
// the case's directory itself, where the fixture's dataDir is).
func allowOnly(data, log string) func(*testing.T, *fixture, *testutil.Env) {
	return func(_ *testing.T, f *fixture, e *testutil.Env) {
		e.Roots = []string{pathpolicy.EnvDataRoots + "=" + filepath.Join(f.root, data), pathpolicy.EnvLogRoots + "=" + filepath.Join(f.root, log)}
	}
}

type badCase struct {
	name string
	// cmd is CNI_COMMAND; ADD when empty.
	cmd string
	// setup prepares the fixture before the snapshot (a file where a
	// directory should be, a symlink, ...).
	setup func(t *testing.T, f *fixture)
	// env adjusts the environment of the run.
	env func(t *testing.T, f *fixture, e *testutil.Env)
	// stdin is the config; the valid base config when nil.
	stdin func(f *fixture) io.Reader
	code  uint
	// want are fragments the message (msg and details) must contain:
	// the field or variable and what is allowed.
	want []string
}

func conf(over string, drop ...string) func(f *fixture) io.Reader {
	return func(f *fixture) io.Reader { return bytes.NewReader(f.conf(over, drop...)) }
}

func text(s string) func(f *fixture) io.Reader {
	return func(*fixture) io.Reader { return strings.NewReader(s) }
}

func cniArgs(a string) func(t *testing.T, f *fixture, e *testutil.Env) {
	return func(_ *testing.T, _ *fixture, e *testutil.Env) { e.Args = a }
}

func ifName(n string) func(t *testing.T, f *fixture, e *testutil.Env) {
	return func(_ *testing.T, _ *fixture, e *testutil.Env) { e.IfName = n }
}

func netns(path func(t *testing.T, f *fixture) string) func(t *testing.T, f *fixture, e *testutil.Env) {
	return func(t *testing.T, f *fixture, e *testutil.Env) { e.Netns = path(t, f) }
}

// endless never ends, like a caller that streams without closing stdin.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// padded is the valid base config followed by whitespace up to n bytes:
// still valid JSON, so only its size can be wrong.
func padded(n int) func(f *fixture) io.Reader {
	return func(f *fixture) io.Reader {
		c := f.conf("")
		return bytes.NewReader(append(c, bytes.Repeat([]byte(" "), n-len(c))...))
	}
}

// The bad values every requested-MAC source is tried with, and what the
// message must say about each.
var badMACs = []struct{ name, value, why string }{
	{"multicast", "01:00:5e:00:00:01", "multicast"},
	{"broadcast", "ff:ff:ff:ff:ff:ff", "broadcast"},
	{"zero", "00:00:00:00:00:00", "all zeros"},
	{"8-byte", "0a:58:00:00:00:00:00:01", "only 6-octet"},
	{"garbage", "not-a-mac", "six hex octets"},
}

func macSourceCases() []badCase {
	var cases []badCase
	for _, m := range badMACs {
		v := string(mustJSON(m.value))
		want := func(source string) []string { return []string{"invalid requested MAC from " + source, m.value, m.why} }
		cases = append(cases,
			badCase{name: "config mac " + m.name, stdin: conf(`{"mac":` + v + `}`), code: types.ErrInvalidNetworkConfig, want: want("config mac")},
			badCase{name: "CNI_ARGS MAC " + m.name, env: cniArgs("IgnoreUnknown=1;MAC=" + m.value), code: types.ErrInvalidNetworkConfig, want: want("CNI_ARGS MAC")},
			badCase{name: "runtimeConfig.mac " + m.name, stdin: conf(`{"runtimeConfig":{"mac":` + v + `}}`), code: types.ErrInvalidNetworkConfig, want: want("runtimeConfig.mac")},
			badCase{name: "args.cni.mac " + m.name, stdin: conf(`{"args":{"cni":{"mac":` + v + `}}}`), code: types.ErrInvalidNetworkConfig, want: want("args.cni.mac")},
		)
	}
	return cases
}

var supported = `plugin supports ["0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]`

func cases() []badCase {
	cs := []badCase{
		// stdin that is not a usable config
		{name: "empty stdin", stdin: text(""), code: types.ErrDecodingFailure, want: []string{"network config", "unexpected end of JSON input"}},
		{name: "not JSON", stdin: text("cniVersion=1.0.0"), code: types.ErrDecodingFailure, want: []string{"network config", "invalid character"}},
		{name: "truncated JSON", stdin: func(f *fixture) io.Reader { c := f.conf(""); return bytes.NewReader(c[:len(c)/2]) }, code: types.ErrDecodingFailure, want: []string{"network config", "unexpected end of JSON input"}},
		{name: "binary garbage", stdin: text("\x00\xff\xfe{\x01"), code: types.ErrDecodingFailure, want: []string{"network config", "invalid character"}},
		{name: "top-level array", stdin: text(`[{"cniVersion":"1.0.0","name":"x"}]`), code: types.ErrDecodingFailure, want: []string{"network config", "cannot unmarshal array"}},
		{name: "one byte over the stdin limit", stdin: padded(stdin.Limit + 1), code: types.ErrInvalidNetworkConfig, want: []string{"network config on stdin is larger than 1 MiB (1048576 bytes)"}},
		{name: "endless stdin", stdin: func(*fixture) io.Reader { return endless{} }, code: types.ErrInvalidNetworkConfig, want: []string{"network config on stdin is larger than 1 MiB (1048576 bytes)"}},
		{name: "missing name", stdin: conf("", "name"), code: types.ErrInvalidNetworkConfig, want: []string{"missing network name"}},

		// wrong JSON types
		{name: "cniVersion is a number", stdin: conf(`{"cniVersion":1.0}`), code: types.ErrDecodingFailure, want: []string{"cniVersion", "of type string"}},
		{name: "assign is a number", stdin: conf(`{"assign":1}`), code: types.ErrInvalidNetworkConfig, want: []string{`field "assign" must be a string`}},
		{name: "announce is a string", stdin: conf(`{"announce":"yes"}`), code: types.ErrInvalidNetworkConfig, want: []string{`field "announce" must be a boolean`}},
		{name: "dataDir is an array", stdin: conf(`{"dataDir":["/run"]}`), code: types.ErrInvalidNetworkConfig, want: []string{`field "dataDir" must be a string`}},
		{name: "runtimeConfig is a string", stdin: conf(`{"runtimeConfig":"mac"}`), code: types.ErrInvalidNetworkConfig, want: []string{`field "runtimeConfig" must be an object`}},
		{name: "prevResult is a string", stdin: conf(`{"prevResult":"ok"}`), code: types.ErrInvalidNetworkConfig, want: []string{`field "prevResult" must be an object`}},

		// values outside what a field allows
		{name: "unknown assign", stdin: conf(`{"assign":"sometimes"}`), code: types.ErrInvalidNetworkConfig, want: []string{`"assign" "sometimes"`, `"zero"`, `"always"`, `"never"`}},
		{name: "unknown identity", stdin: conf(`{"identity":"node"}`), code: types.ErrInvalidNetworkConfig, want: []string{`"identity" "node"`, `"auto"`, `"pod"`, `"container"`}},
		{name: "unknown onUnsupported", stdin: conf(`{"onUnsupported":"ignore"}`), code: types.ErrInvalidNetworkConfig, want: []string{`"onUnsupported" "ignore"`, `"fail"`, `"skip"`}},
		{name: "unknown logLevel", stdin: conf(`{"logLevel":"verbose"}`), code: types.ErrInvalidNetworkConfig, want: []string{`"logLevel" "verbose"`, `"debug"`, `"error"`}},
		{name: "prefix multicast", stdin: conf(`{"prefix":"0b:58"}`), code: types.ErrInvalidNetworkConfig, want: []string{`"prefix"`, "multicast", "e.g. 0a or 02"}},
		{name: "prefix universally administered", stdin: conf(`{"prefix":"00:50:56"}`), code: types.ErrInvalidNetworkConfig, want: []string{`"prefix"`, "universally administered", "locally administered bit"}},
		{name: "prefix too long", stdin: conf(`{"prefix":"0a:58:00:00:00:01"}`), code: types.ErrInvalidNetworkConfig, want: []string{`"prefix"`, "at most 5 octets"}},
		{name: "prefix garbage", stdin: conf(`{"prefix":"0a:zz"}`), code: types.ErrInvalidNetworkConfig, want: []string{`"prefix"`, `"zz" is not a two-digit hex octet`}},

		// cniVersion
		{name: "cniVersion 0.2.0 (no chaining)", stdin: conf(`{"cniVersion":"0.2.0"}`), code: types.ErrIncompatibleCNIVersion, want: []string{`config is "0.2.0"`, supported}},
		{name: "cniVersion from the future", stdin: conf(`{"cniVersion":"2.0.0"}`), code: types.ErrIncompatibleCNIVersion, want: []string{`config is "2.0.0"`, supported}},
		{name: "CHECK with cniVersion 0.3.1", cmd: "CHECK", stdin: conf(`{"cniVersion":"0.3.1","prevResult":` + "null" + `}`), code: types.ErrIncompatibleCNIVersion, want: []string{"config version does not allow CHECK"}},
		{name: "GC with cniVersion 1.0.0", cmd: "GC", stdin: conf(`{"cni.dev/valid-attachments":[]}`), code: types.ErrIncompatibleCNIVersion, want: []string{"config version does not allow GC"}},

		// prevResult
		{name: "missing prevResult", stdin: conf("", "prevResult"), code: types.ErrInvalidNetworkConfig, want: []string{"missing prevResult", "chained plugin", `"plugins" array`}},
		{name: "null prevResult", stdin: conf(`{"prevResult":null}`), code: types.ErrInvalidNetworkConfig, want: []string{"missing prevResult", "chained plugin"}},
		{name: "prevResult of an unknown version", stdin: func(f *fixture) io.Reader {
			return bytes.NewReader(f.conf(`{"prevResult":` + f.prev(`{"cniVersion":"9.9.9"}`) + `}`))
		}, code: types.ErrInvalidNetworkConfig, want: []string{"invalid prevResult", `cniVersion "9.9.9"`, "unsupported CNI result version"}},
		{name: "prevResult from a newer spec than the config", stdin: func(f *fixture) io.Reader {
			return bytes.NewReader(f.conf(`{"cniVersion":"1.1.0","prevResult":` + f.prev(`{"cniVersion":"1.2.0"}`) + `}`))
		}, code: types.ErrInvalidNetworkConfig, want: []string{"invalid prevResult", `cniVersion "1.2.0"`, "unsupported CNI result version"}},
		// Found by FuzzCorrect: converting this to 0.3.1 used to print an
		// address "<nil>" the runtime could not read.
		{name: "prevResult IP without an address, in another version", stdin: func(f *fixture) io.Reader {
			return bytes.NewReader(f.conf(`{"cniVersion":"0.3.1","prevResult":` + f.prev(`{"ips":[{"interface":1}]}`) + `}`))
		}, code: types.ErrInvalidNetworkConfig, want: []string{"invalid prevResult", `converted to the config's "0.3.1" is not a valid result`}},
		// libcni's converters dereference list entries: this killed the
		// plugin with a nil-pointer panic and no CNI error.
		{name: "prevResult with a null list entry, in another version", stdin: func(f *fixture) io.Reader {
			return bytes.NewReader(f.conf(`{"cniVersion":"0.4.0","prevResult":` + f.prev(`{"routes":[null]}`) + `}`))
		}, code: types.ErrInvalidNetworkConfig, want: []string{"invalid prevResult", `"routes"[0] is null`}},
		{name: "prevResult IP interface index past the end", stdin: func(f *fixture) io.Reader {
			return bytes.NewReader(f.conf(`{"prevResult":` + f.prev(`{"ips":[{"address":"10.88.0.2/24","interface":5}]}`) + `}`))
		}, code: types.ErrInvalidNetworkConfig, want: []string{"ips[0].interface is 5", `"interfaces" has 2 entries`}},
		{name: "prevResult IP interface index negative", stdin: func(f *fixture) io.Reader {
			return bytes.NewReader(f.conf(`{"prevResult":` + f.prev(`{"ips":[{"address":"10.88.0.2/24","interface":-1}]}`) + `}`))
		}, code: types.ErrInvalidNetworkConfig, want: []string{"ips[0].interface is -1", `"interfaces" has 2 entries`}},
		{name: "prevResult interfaces not a list", stdin: func(f *fixture) io.Reader {
			return bytes.NewReader(f.conf(`{"prevResult":` + f.prev(`{"interfaces":{"name":"eth0"}}`) + `}`))
		}, code: types.ErrInvalidNetworkConfig, want: []string{"invalid prevResult", "cannot be decoded"}},
		{name: "prevResult reports a bad MAC on CHECK", cmd: "CHECK", stdin: func(f *fixture) io.Reader {
			return bytes.NewReader(f.conf(`{"prevResult":` + f.pod.PrevResult("1.0.0", "zz:zz") + `}`))
		}, code: types.ErrInvalidNetworkConfig, want: []string{`prevResult reports an invalid MAC for "eth0"`, "six hex octets"}},

		// environment
		{name: "CNI_COMMAND unknown", cmd: "ATTACH", code: types.ErrInvalidEnvironmentVariables, want: []string{`unknown CNI_COMMAND "ATTACH"`, "ADD, CHECK, DEL, GC, STATUS, VERSION"}},
		{name: "CNI_CONTAINERID invalid", env: func(_ *testing.T, _ *fixture, e *testutil.Env) { e.ContainerID = "c1;rm" }, code: types.ErrInvalidEnvironmentVariables, want: []string{`invalid CNI_CONTAINERID "c1;rm"`, "letters, digits"}},
		{name: "CNI_IFNAME missing", env: ifName(""), code: types.ErrInvalidEnvironmentVariables, want: []string{"required env variables [CNI_IFNAME] missing"}},
		{name: "CNI_IFNAME too long", env: ifName("eth0123456789012"), code: types.ErrInvalidEnvironmentVariables, want: []string{`invalid CNI_IFNAME "eth0123456789012"`, "1 to 15 bytes"}},
		{name: "CNI_IFNAME dot", env: ifName("."), code: types.ErrInvalidEnvironmentVariables, want: []string{`invalid CNI_IFNAME "."`, `not "." or ".."`}},
		{name: "CNI_IFNAME with slash", env: ifName("eth0/1"), code: types.ErrInvalidEnvironmentVariables, want: []string{`invalid CNI_IFNAME "eth0/1"`, "without '/', ':' or whitespace"}},
		{name: "CNI_IFNAME absent from the netns", env: ifName("net7"), code: plugin.ErrCodeInterfaceNotFound, want: []string{`"net7" not found`, "it has: eth0, lo"}},
		{name: "CNI_NETNS missing", env: netns(func(*testing.T, *fixture) string { return "" }), code: types.ErrInvalidEnvironmentVariables, want: []string{"required env variables [CNI_NETNS] missing"}},
		{name: "CNI_NETNS does not exist", env: netns(func(_ *testing.T, f *fixture) string { return filepath.Join(f.root, "no-such-netns") }), code: types.ErrInvalidEnvironmentVariables, want: []string{"CNI_NETNS", "does not exist"}},
		{name: "CNI_NETNS is a regular file", setup: func(t *testing.T, f *fixture) { write(t, filepath.Join(f.root, "netns-file"), "") },
			env: netns(func(_ *testing.T, f *fixture) string { return filepath.Join(f.root, "netns-file") }), code: types.ErrInvalidEnvironmentVariables, want: []string{"CNI_NETNS", "is not a network namespace"}},
		{name: "CNI_NETNS is a directory", env: netns(func(_ *testing.T, f *fixture) string { return f.root }), code: types.ErrInvalidEnvironmentVariables, want: []string{"CNI_NETNS", "is not a network namespace"}},
		{name: "CNI_NETNS of a dead process", env: netns(func(t *testing.T, _ *fixture) string { return testutil.DeadProcessNetns(t) }), code: types.ErrInvalidEnvironmentVariables, want: []string{"CNI_NETNS", "/ns/net", "does not exist"}},
		{name: "CNI_ARGS pair without =", env: cniArgs("K8S_POD_NAMESPACE=default;K8S_POD_NAME"), code: types.ErrInvalidEnvironmentVariables, want: []string{"invalid CNI_ARGS", `"K8S_POD_NAME"`, "KEY=VALUE"}},
		{name: "CNI_ARGS empty key", env: cniArgs("=web-0"), code: types.ErrInvalidEnvironmentVariables, want: []string{"invalid CNI_ARGS", `"=web-0"`, "KEY=VALUE"}},
		{name: `identity "pod" without pod CNI_ARGS`, stdin: conf(`{"identity":"pod"}`), code: types.ErrInvalidEnvironmentVariables, want: []string{`identity "pod" needs K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS`, `"auto"`}},

		// dataDir and logFile
		{name: "dataDir relative", stdin: conf(`{"dataDir":"run/macguard"}`), code: types.ErrInvalidNetworkConfig, want: []string{`invalid "dataDir" "run/macguard"`, "absolute path"}},
		{name: "dataDir below a regular file", setup: func(t *testing.T, f *fixture) { write(t, filepath.Join(f.root, "file"), "x") },
			stdin: func(f *fixture) io.Reader {
				return bytes.NewReader(f.conf(`{"dataDir":` + string(mustJSON(filepath.Join(f.root, "file", "state"))) + `}`))
			}, code: plugin.ErrCodeState, want: []string{"creating dataDir", "not a directory", "must be a writable directory"}},
		{name: "dataDir is a regular file", setup: func(t *testing.T, f *fixture) { write(t, filepath.Join(f.root, "file"), "x") },
			stdin: func(f *fixture) io.Reader {
				return bytes.NewReader(f.conf(`{"dataDir":` + string(mustJSON(filepath.Join(f.root, "file"))) + `}`))
			}, code: plugin.ErrCodeState, want: []string{"dataDir", "not a directory", "must be a writable directory"}},
		{name: "dataDir read-only", setup: func(t *testing.T, f *fixture) {
			// A fresh directory, so the lock file cannot be created either:
			// the plugin must stop before touching the link.
			ro := filepath.Join(f.root, "ro")
			if err := os.Mkdir(ro, 0o700); err != nil {
				t.Fatal(err)
			}
			testutil.MakeUnwritable(t, ro)
		}, stdin: func(f *fixture) io.Reader {
			return bytes.NewReader(f.conf(`{"dataDir":` + string(mustJSON(filepath.Join(f.root, "ro"))) + `}`))
		}, code: plugin.ErrCodeState, want: []string{"lock file in dataDir", "must be a writable directory"}},
		{name: "logFile in a missing directory", stdin: func(f *fixture) io.Reader {
			return bytes.NewReader(f.conf(`{"logFile":` + string(mustJSON(filepath.Join(f.root, "no-dir", "macguard.log"))) + `}`))
		}, code: types.ErrInvalidNetworkConfig, want: []string{"opening logFile", "no such file or directory", "the directory must exist"}},
		// Issue 24: the node's roots, not the config, say where macguard
		// writes (test/tenant has the rest). The node here allows only
		// the case's "allowed" directory, and the refused paths lie in
		// the case's own directory too, so that even a plugin that
		// wrongly accepted them would write nothing outside it.
		{name: "dataDir outside the allowed roots", env: allowOnly("allowed", "allowed"),
			stdin: func(f *fixture) io.Reader {
				return bytes.NewReader(f.conf(`{"dataDir":` + string(mustJSON(filepath.Join(f.root, "etc", "cni", "net.d"))) + `}`))
			}, code: types.ErrInvalidNetworkConfig, want: []string{`dataDir "`, "/etc/cni/net.d", "outside the allowed roots", "/run/cni, /var/lib/cni", "/allowed", "MACGUARD_DATA_ROOTS"}},
		{name: "logFile outside the allowed roots", env: allowOnly("", "allowed"),
			setup: func(t *testing.T, f *fixture) {
				if err := os.Mkdir(filepath.Join(f.root, "etc"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			stdin: func(f *fixture) io.Reader {
				return bytes.NewReader(f.conf(`{"logFile":` + string(mustJSON(filepath.Join(f.root, "etc", "ld.so.preload"))) + `}`))
			}, code: types.ErrInvalidNetworkConfig, want: []string{`logFile "`, "/etc/ld.so.preload", "outside the allowed roots", "/var/log", "MACGUARD_LOG_ROOTS"}},
		{name: "logFile relative", stdin: conf(`{"logFile":"macguard.log"}`), code: types.ErrInvalidNetworkConfig, want: []string{`invalid "logFile" "macguard.log"`, "absolute path"}},
		{name: "logFile is a symlink", setup: func(t *testing.T, f *fixture) {
			// Root must not follow a link someone planted in the log
			// directory; the target stays untouched (the snapshot shows it).
			write(t, filepath.Join(f.root, "target"), "precious\n")
			if err := os.Symlink(filepath.Join(f.root, "target"), filepath.Join(f.root, "macguard.log")); err != nil {
				t.Fatal(err)
			}
		}, stdin: func(f *fixture) io.Reader {
			return bytes.NewReader(f.conf(`{"logFile":` + string(mustJSON(filepath.Join(f.root, "macguard.log"))) + `}`))
		}, code: types.ErrInvalidNetworkConfig, want: []string{"opening logFile", "too many levels of symbolic links"}},

		// the other commands refuse bad input before touching anything too
		{name: "DEL with truncated JSON", cmd: "DEL", stdin: func(f *fixture) io.Reader { c := f.conf(""); return bytes.NewReader(c[:len(c)-1]) }, code: types.ErrDecodingFailure, want: []string{"network config", "unexpected end of JSON input"}},
		{name: "DEL with unknown assign", cmd: "DEL", stdin: conf(`{"assign":"sometimes"}`), code: types.ErrInvalidNetworkConfig, want: []string{`"assign" "sometimes"`, `"zero"`}},
		{name: "GC with valid-attachments not a list", cmd: "GC", stdin: conf(`{"cniVersion":"1.1.0","cni.dev/valid-attachments":"all"}`), code: types.ErrInvalidNetworkConfig, want: []string{`field "cni.dev/valid-attachments" must be an array`}},
		{name: "STATUS with unknown onUnsupported", cmd: "STATUS", stdin: conf(`{"cniVersion":"1.1.0","onUnsupported":"maybe"}`), code: types.ErrInvalidNetworkConfig, want: []string{`"onUnsupported" "maybe"`, `"skip"`}},
	}
	return append(cs, macSourceCases()...)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCorpusSize keeps the corpus from shrinking below what the README
// promises.
func TestCorpusSize(t *testing.T) {
	if n := len(cases()); n < 40 {
		t.Fatalf("%d bad-input cases, want at least 40", n)
	}
}

func TestBadInput(t *testing.T) {
	bin := testutil.PluginBinary(t)
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(t, f)
			}
			cmd := tc.cmd
			if cmd == "" {
				cmd = "ADD"
			}
			env := f.pod.Env(cmd, containerID, "")
			if tc.env != nil {
				tc.env(t, f, &env)
			}
			in := tc.stdin
			if in == nil {
				in = conf("")
			}
			addrsBefore := fmt.Sprint(testutil.Addrs(t, f.pod.NS, f.pod.IfName))
			before := testutil.Snapshot(t, f.root)

			o, err := testutil.Exec(bin, env, in(f), runTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if o.Err == nil {
				t.Fatalf("%s succeeded, want code %d; stdout %s", cmd, tc.code, o.Stdout)
			}
			if o.Err.Code != tc.code {
				t.Errorf("code %d, want %d: %s", o.Err.Code, tc.code, o.Err.Error())
			}
			msg := o.Err.Error() // msg and details
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q: %s", w, msg)
				}
			}
			if got := macaddr.String(testutil.MAC(t, f.pod.NS, f.pod.IfName)); got != f.mac {
				t.Errorf("interface MAC changed %s -> %s", f.mac, got)
			}
			if got := fmt.Sprint(testutil.Addrs(t, f.pod.NS, f.pod.IfName)); got != addrsBefore {
				t.Errorf("interface addresses changed %s -> %s", addrsBefore, got)
			}
			if after := testutil.Snapshot(t, f.root); after != before {
				t.Errorf("files changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestControl shows that the fixture would catch a command that went ahead:
// with the base config ADD changes the MAC and the state record, and DEL
// puts back the seeded original and removes the record. Without this, a
// broken fixture could make every case above pass vacuously.
func TestControl(t *testing.T) {
	bin := testutil.PluginBinary(t)
	t.Run("ADD changes MAC and state", func(t *testing.T) {
		f := newFixture(t)
		before := testutil.Snapshot(t, f.root)
		o, err := testutil.Exec(bin, f.pod.Env("ADD", containerID, ""), bytes.NewReader(f.conf("")), runTimeout)
		if err != nil || o.Err != nil {
			t.Fatalf("ADD: %v %v", err, o.Err)
		}
		if macaddr.String(testutil.MAC(t, f.pod.NS, f.pod.IfName)) == f.mac || testutil.Snapshot(t, f.root) == before {
			t.Fatal("a successful ADD left MAC and files as they were; the corpus could not detect a change")
		}
	})
	t.Run("DEL restores the seeded original", func(t *testing.T) {
		f := newFixture(t)
		o, err := testutil.Exec(bin, f.pod.Env("DEL", containerID, ""), bytes.NewReader(f.conf("")), runTimeout)
		if err != nil || o.Err != nil {
			t.Fatalf("DEL: %v %v", err, o.Err)
		}
		if got := macaddr.String(testutil.MAC(t, f.pod.NS, f.pod.IfName)); got != seededOriginal {
			t.Fatalf("DEL left %s, want the seeded original %s", got, seededOriginal)
		}
	})
	// The limit is on size alone: a config of exactly Limit bytes is read.
	t.Run("config of exactly the stdin limit", func(t *testing.T) {
		f := newFixture(t)
		o, err := testutil.Exec(bin, f.pod.Env("ADD", containerID, ""), padded(stdin.Limit)(f), runTimeout)
		if err != nil || o.Err != nil {
			t.Fatalf("ADD with a %d-byte config: %v %v", stdin.Limit, err, o.Err)
		}
	})
	// A prevResult in another version that converts is not bad input: the
	// result comes out in the config's version, carrying the new MAC.
	for _, tc := range []struct{ name, version, prev string }{
		{"prevResult 1.1.0 under a 0.3.1 config", "0.3.1", `"1.1.0"`},
		{"prevResult 0.2.0 under a 1.0.0 config", "1.0.0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			prev := `{"cniVersion":"0.2.0","ip4":{"ip":"10.88.0.2/24"}}`
			if tc.prev != "" {
				prev = f.pod.PrevResult("1.1.0", f.mac)
			}
			c := f.conf(`{"cniVersion":"` + tc.version + `","prevResult":` + prev + `}`)
			o, err := testutil.Exec(bin, f.pod.Env("ADD", containerID, ""), bytes.NewReader(c), runTimeout)
			if err != nil || o.Err != nil {
				t.Fatalf("ADD: %v %v", err, o.Err)
			}
			var r struct{ CNIVersion string }
			if json.Unmarshal(o.Stdout, &r) != nil || r.CNIVersion != tc.version {
				t.Fatalf("result not in cniVersion %s: %s", tc.version, o.Stdout)
			}
			mac, err := testutil.ResultMAC(o.Stdout, f.pod.IfName, f.pod.NS.Path())
			if err != nil || mac != macaddr.String(testutil.MAC(t, f.pod.NS, f.pod.IfName)) {
				t.Fatalf("result MAC %q (%v), interface has %s", mac, err, testutil.MAC(t, f.pod.NS, f.pod.IfName))
			}
		})
	}
}
