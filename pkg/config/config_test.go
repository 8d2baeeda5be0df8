package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

const prev = `,"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"}]}`

func conf(fields string) []byte {
	if fields != "" {
		fields = "," + fields
	}
	return []byte(`{"cniVersion":"1.0.0","name":"net","type":"macguard"` + fields + prev + `}`)
}

func TestDefaults(t *testing.T) {
	c, err := Parse(conf(""), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Assign != AssignZero || c.Identity != "auto" || c.OnUnsupported != UnsupportedFail ||
		!c.Announce || c.DataDir != DefaultDataDir || c.LogLevel != "info" || c.Prefix != nil {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if r, err := c.Requested(); r != nil || err != nil {
		t.Fatalf("nothing requested, got %+v, %v", r, err)
	}
	if string(c.PrevResult) != `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"}]}` {
		t.Fatalf("prevResult not kept verbatim: %s", c.PrevResult)
	}
}

func TestParseFields(t *testing.T) {
	c, err := Parse(conf(`"assign":"always","identity":"pod","salt":"s","prefix":"0A:58","onUnsupported":"skip","announce":false,"dataDir":"/tmp/x","logLevel":"DEBUG"`), "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u;IgnoreUnknown=1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Assign != AssignAlways || c.Identity != "pod" || c.Salt != "s" || c.Prefix.String() != "0a:58" ||
		c.OnUnsupported != UnsupportedSkip || c.Announce || c.DataDir != "/tmp/x" || c.LogLevel != "debug" ||
		c.Pod.Namespace != "ns" || c.Pod.Name != "p" {
		t.Fatalf("fields not applied: %+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  string
		code  uint
		want  []string
	}{
		{"not json", `{"cniVersion":`, "", types.ErrDecodingFailure, []string{"not valid JSON"}},
		{"assign", string(conf(`"assign":"sometimes"`)), "", types.ErrInvalidNetworkConfig, []string{`"assign"`, "sometimes", `"always"`}},
		{"assign type", string(conf(`"assign":1`)), "", types.ErrInvalidNetworkConfig, []string{`"assign"`, "a string"}},
		{"announce type", string(conf(`"announce":"yes"`)), "", types.ErrInvalidNetworkConfig, []string{`"announce"`, "a boolean"}},
		// Fields are named as they are spelled in the config.
		{"ipam type", string(conf(`"ipam":1`)), "", types.ErrInvalidNetworkConfig, []string{`field "ipam" must be an object`}},
		{"dns field type", string(conf(`"dns":{"nameservers":"x"}`)), "", types.ErrInvalidNetworkConfig, []string{`field "dns.nameservers" must be an array`}},
		{"spec field type", string(conf(`"cni.dev/valid-attachments":"all"`)), "", types.ErrInvalidNetworkConfig, []string{`field "cni.dev/valid-attachments" must be an array`}},
		{"nested field type", string(conf(`"runtimeConfig":{"mac":1}`)), "", types.ErrInvalidNetworkConfig, []string{`field "runtimeConfig.mac" must be a string`}},
		{"identity", string(conf(`"identity":"vm"`)), "", types.ErrInvalidNetworkConfig, []string{`"identity"`, `"pod"`}},
		{"onUnsupported", string(conf(`"onUnsupported":"ignore"`)), "", types.ErrInvalidNetworkConfig, []string{`"onUnsupported"`, `"skip"`}},
		{"prefix multicast", string(conf(`"prefix":"01"`)), "", types.ErrInvalidNetworkConfig, []string{`"prefix"`, "multicast"}},
		{"prefix universal", string(conf(`"prefix":"00:50:56"`)), "", types.ErrInvalidNetworkConfig, []string{`"prefix"`, "locally administered"}},
		{"prefix long", string(conf(`"prefix":"0a:58:00:00:00:01"`)), "", types.ErrInvalidNetworkConfig, []string{`"prefix"`, "at most 5"}},
		{"dataDir relative", string(conf(`"dataDir":"state"`)), "", types.ErrInvalidNetworkConfig, []string{`"dataDir"`, "absolute"}},
		{"logFile relative", string(conf(`"logFile":"x.log"`)), "", types.ErrInvalidNetworkConfig, []string{`"logFile"`, "absolute"}},
		{"logLevel", string(conf(`"logLevel":"loud"`)), "", types.ErrInvalidNetworkConfig, []string{`"logLevel"`, "debug"}},
		{"cni args", string(conf("")), "K8S_POD_NAME", types.ErrInvalidEnvironmentVariables, []string{"CNI_ARGS", "KEY=VALUE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.stdin), tt.args)
			var e *types.Error
			if !errors.As(err, &e) {
				t.Fatalf("want *types.Error, got %v", err)
			}
			if e.Code != tt.code {
				t.Fatalf("code %d, want %d (%s)", e.Code, tt.code, e.Msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(e.Msg, w) {
					t.Errorf("message %q lacks %q", e.Msg, w)
				}
			}
		})
	}
}

func TestRequestedPrecedence(t *testing.T) {
	const (
		cfgMAC  = "02:00:00:00:00:01"
		argsMAC = "02:00:00:00:00:02"
		rcMAC   = "02:00:00:00:00:03"
		cniMAC  = "02:00:00:00:00:04"
	)
	tests := []struct {
		name                string
		fields, cniArgs     string
		wantMAC, wantSource string
	}{
		{"none", ``, "", "", ""},
		{"config only", `"mac":"` + cfgMAC + `"`, "", cfgMAC, SourceConfig},
		{"CNI_ARGS beats config", `"mac":"` + cfgMAC + `"`, "MAC=" + argsMAC, argsMAC, SourceCNIArgs},
		{"runtimeConfig beats CNI_ARGS", `"mac":"` + cfgMAC + `","runtimeConfig":{"mac":"` + rcMAC + `"}`, "MAC=" + argsMAC, rcMAC, SourceRuntimeConfig},
		{"args.cni beats all", `"mac":"` + cfgMAC + `","runtimeConfig":{"mac":"` + rcMAC + `"},"args":{"cni":{"mac":"` + cniMAC + `"}}`, "MAC=" + argsMAC, cniMAC, SourceArgs},
		{"upper case and dashes normalized", `"runtimeConfig":{"mac":"0A-58-0A-F4-00-01"}`, "", "0a:58:0a:f4:00:01", SourceRuntimeConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(conf(tt.fields), tt.cniArgs)
			if err != nil {
				t.Fatal(err)
			}
			req, err := c.Requested()
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantMAC == "" {
				if req != nil {
					t.Fatalf("want no requested MAC, got %+v", req)
				}
				return
			}
			if req == nil || req.MAC.String() != tt.wantMAC || req.Source != tt.wantSource {
				t.Fatalf("got %+v, want %s from %s", req, tt.wantMAC, tt.wantSource)
			}
		})
	}
}

func TestRequestedInvalidNamesSource(t *testing.T) {
	tests := []struct {
		name, fields, cniArgs, source, value string
	}{
		{"config multicast", `"mac":"01:00:5e:00:00:01"`, "", SourceConfig, "01:00:5e:00:00:01"},
		{"CNI_ARGS garbage", ``, "MAC=zz", SourceCNIArgs, "zz"},
		{"runtimeConfig broadcast", `"runtimeConfig":{"mac":"ff:ff:ff:ff:ff:ff"}`, "", SourceRuntimeConfig, "ff:ff:ff:ff:ff:ff"},
		{"runtimeConfig zero", `"runtimeConfig":{"mac":"00:00:00:00:00:00"}`, "", SourceRuntimeConfig, "00:00:00:00:00:00"},
		{"args 8 bytes", `"args":{"cni":{"mac":"02:00:00:00:00:00:00:01"}}`, "", SourceArgs, "02:00:00:00:00:00:00:01"},
		// A bad low-precedence value is reported even though a valid higher one exists.
		{"bad config under good runtimeConfig", `"mac":"nope","runtimeConfig":{"mac":"02:00:00:00:00:01"}`, "", SourceConfig, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(conf(tt.fields), tt.cniArgs)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Requested()
			var e *types.Error
			if !errors.As(err, &e) || e.Code != types.ErrInvalidNetworkConfig {
				t.Fatalf("want invalid-config error, got %v", err)
			}
			if !strings.Contains(e.Msg, tt.source) || !strings.Contains(e.Msg, tt.value) {
				t.Fatalf("message %q must name source %q and value %q", e.Msg, tt.source, tt.value)
			}
		})
	}
}

func TestRequirePrevResult(t *testing.T) {
	for _, stdin := range []string{
		`{"cniVersion":"1.0.0","name":"n","type":"macguard"}`,
		`{"cniVersion":"1.0.0","name":"n","type":"macguard","prevResult":null}`,
	} {
		c, err := Parse([]byte(stdin), "")
		if err != nil {
			t.Fatal(err)
		}
		var e *types.Error
		if err := c.RequirePrevResult(); !errors.As(err, &e) || e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, "prevResult") {
			t.Fatalf("%s: want invalid-config error about prevResult, got %v", stdin, err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	stdin := conf(`"assign":"always","prefix":"0a:58","runtimeConfig":{"mac":"02:00:00:00:00:01"}`)
	b.ReportAllocs()
	for b.Loop() {
		c, err := Parse(stdin, "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Requested(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAllocs holds parsing to what BenchmarkParse measured when it was made
// lean (one decode of stdin; the prevResult kept as bytes): allocation
// counts, unlike times, are deterministic enough to assert.
func TestAllocs(t *testing.T) {
	stdin := conf(`"assign":"always","prefix":"0a:58","runtimeConfig":{"mac":"02:00:00:00:00:01"},"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"02:00:00:00:00:02","sandbox":"/run/netns/p"}]}`)
	allocs := testing.AllocsPerRun(100, func() {
		c, err := Parse(stdin, "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Requested(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 25 {
		t.Fatalf("Parse and Requested allocate %v times, want at most 25", allocs)
	}
}
