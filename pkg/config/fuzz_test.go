package config

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/macguard-cni/macguard/pkg/macaddr"
)

// FuzzParse feeds arbitrary stdin and CNI_ARGS to the config parser.
// Properties: it never panics; every failure is a CNI error with a code the
// contract documents for config (4, 6, 7) and a message; every success is a
// config the plugin can act on without further checks (enumerations known,
// paths absolute, prefix and requested MAC assignable); and the normalised
// config, encoded again, parses to the same config (it is its own fixed
// point, so nothing the parser accepts depends on how it was spelled).
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"n","type":"macguard"}`), "")
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"n","type":"macguard","assign":"always","identity":"pod","salt":"s","prefix":"0a:58","mac":"0a:58:00:00:00:01","onUnsupported":"skip","announce":false,"dataDir":"/run/x","logFile":"/var/log/m.log","logLevel":"DEBUG","runtimeConfig":{"mac":"02:00:00:00:00:01"},"args":{"cni":{"mac":"02:00:00:00:00:02"}},"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"}]}}`),
		"K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;MAC=02:00:00:00:00:03;IgnoreUnknown=1")
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"}]}`), "")
	f.Add([]byte(`{"assign":1}`), "a=b;;c=d")
	f.Add([]byte(`{"prefix":"01:00"}`), "=x")
	f.Add([]byte(`{"prevResult":null,"mac":"ff:ff:ff:ff:ff:ff"}`), "MAC=00:00:00:00:00:00")
	f.Add([]byte(`{"cniVersion":`), "")
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		c, err := Parse(stdin, cniArgs)
		if err != nil {
			requireCNIError(t, err, types.ErrInvalidEnvironmentVariables, types.ErrDecodingFailure, types.ErrInvalidNetworkConfig)
			return
		}
		requireUsable(t, c)
		req, reqErr := c.Requested()
		if reqErr != nil {
			requireCNIError(t, reqErr, types.ErrInvalidNetworkConfig)
		} else if req != nil {
			if err := macaddr.CheckAssignable(req.MAC); err != nil {
				t.Fatalf("requested MAC %s from %s accepted but not assignable: %v", req.MAC, req.Source, err)
			}
		}
		if c.PrevResult != nil && !json.Valid(c.PrevResult) {
			t.Fatalf("prevResult kept as invalid JSON: %q", c.PrevResult)
		}

		// The wire form, encoded again in encoding/json's own spelling.
		var wire NetConf
		if err := json.Unmarshal(stdin, &wire); err != nil {
			t.Fatalf("Parse accepted what NetConf does not decode: %v", err)
		}
		again, err := json.Marshal(wire)
		if err != nil {
			t.Fatalf("encoding the parsed config: %v", err)
		}
		c2, err := Parse(again, cniArgs)
		if err != nil {
			t.Fatalf("the parsed config, encoded, does not parse: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(normal(c), normal(c2)) {
			t.Fatalf("parsing is not stable:\nfirst  %+v\nsecond %+v", normal(c), normal(c2))
		}
		if req2, reqErr2 := c2.Requested(); (reqErr == nil) != (reqErr2 == nil) || (reqErr == nil && !reflect.DeepEqual(req, req2)) {
			t.Fatalf("requested MAC not stable: %v %+v / %v %+v", reqErr, req, reqErr2, req2)
		}
	})
}

func requireCNIError(t *testing.T, err error, codes ...uint) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("not a CNI error: %v", err)
	}
	ok := false
	for _, c := range codes {
		ok = ok || e.Code == c
	}
	if !ok || strings.TrimSpace(e.Msg) == "" {
		t.Fatalf("error code %d (want one of %v) with message %q", e.Code, codes, e.Msg)
	}
}

func requireUsable(t *testing.T, c *Config) {
	t.Helper()
	switch {
	case c.Assign != AssignZero && c.Assign != AssignAlways && c.Assign != AssignNever:
		t.Fatalf("assign %q accepted", c.Assign)
	case c.Identity != "auto" && c.Identity != "pod" && c.Identity != "container":
		t.Fatalf("identity %q accepted", c.Identity)
	case c.OnUnsupported != UnsupportedFail && c.OnUnsupported != UnsupportedSkip:
		t.Fatalf("onUnsupported %q accepted", c.OnUnsupported)
	case !strings.HasPrefix(c.DataDir, "/"):
		t.Fatalf("dataDir %q accepted", c.DataDir)
	case c.LogFile != "" && !strings.HasPrefix(c.LogFile, "/"):
		t.Fatalf("logFile %q accepted", c.LogFile)
	case c.LogLevel != "debug" && c.LogLevel != "info" && c.LogLevel != "warn" && c.LogLevel != "error":
		t.Fatalf("logLevel %q accepted", c.LogLevel)
	case len(c.Prefix) > macaddr.Len-1:
		t.Fatalf("prefix of %d octets accepted", len(c.Prefix))
	case len(c.Prefix) > 0 && (c.Prefix[0]&0x01 != 0 || c.Prefix[0]&0x02 == 0):
		t.Fatalf("prefix %s accepted: derived MACs would be multicast or vendor space", c.Prefix)
	}
}

// normal is what the plugin acts on, minus the raw prevResult (kept byte
// for byte, and re-indented by encoding/json's RawMessage encoding) and the
// requests (compared through Requested).
func normal(c *Config) any {
	n := *c
	n.PrevResult = nil
	n.requests = [4]request{}
	return n
}
