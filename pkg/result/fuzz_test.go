package result

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/containernetworking/cni/pkg/version"
)

var fuzzVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

const fuzzSandbox = "/var/run/netns/pod"

func inFuzzSandbox(s string) bool { return s == fuzzSandbox }

// FuzzCorrect feeds arbitrary prevResults (in any of the config versions
// macguard speaks) through Parse and WithMAC. Properties: nothing panics; a
// result Parse accepts can always be corrected; the corrected result is
// JSON that libcni and Parse accept in the config's version; and it is the
// parsed prevResult with exactly one change - the pod interface's "mac"
// (set on its entry, or on one appended {name, mac, sandbox} entry) - so
// every other field, known to libcni or not, survives.
func FuzzCorrect(f *testing.F) {
	seeds := []string{
		`{"cniVersion":"1.0.0","interfaces":[{"name":"veth1","mac":"aa:bb:cc:00:00:01"},{"name":"eth0","mac":"02:00:00:00:00:01","sandbox":"/var/run/netns/pod"}],"ips":[{"address":"10.88.0.2/24","gateway":"10.88.0.1","interface":1}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.96.0.10"]}}`,
		`{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/pod","mtu":1450,"socketPath":"/run/x.sock","pciID":"0000:00:1f.6"}],"ips":[{"address":"fd00::2/64","interface":0}],"x-vendor":{"keep":["me",1.5e300]}}`,
		`{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","mac":"","sandbox":"/other"}],"ips":[{"version":"4","address":"10.0.0.2/8","interface":0}]}`,
		`{"cniVersion":"0.3.1","interfaces":null,"ips":null}`,
		`{"cniVersion":"0.2.0","ip4":{"ip":"10.88.0.2/24","gateway":"10.88.0.1"},"dns":{}}`,
		`{"interfaces":[{"name":"eth0","sandbox":"/var/run/netns/pod","mac":"<&>"}]}`,
		`{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/8","interface":3}]}`,
		`[]`,
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint8(i), "eth0", uint64(0x0a580af40001))
	}
	f.Fuzz(func(t *testing.T, raw []byte, v uint8, ifName string, macBits uint64) {
		cniVersion := fuzzVersions[int(v)%len(fuzzVersions)]
		// The plugin only ever writes a MAC in macaddr's canonical form.
		mac := net.HardwareAddr(binary.BigEndian.AppendUint64(nil, macBits)[2:]).String()
		// JSON strings are UTF-8, so a result can name no interface whose
		// name is not; such a name can never match and is not a case of
		// correction. (skel lets such CNI_IFNAMEs through; see
		// docs/reliability.md.)
		if !utf8.ValidString(ifName) {
			return
		}
		r, err := Parse(raw, cniVersion)
		if err != nil {
			return
		}
		out, err := r.WithMAC(ifName, fuzzSandbox, inFuzzSandbox, mac)
		if err != nil {
			t.Fatalf("a prevResult Parse accepted cannot be corrected: %v\n%s", err, r.Raw)
		}
		if _, err := version.NewResult(cniVersion, out); err != nil {
			t.Fatalf("libcni rejects the corrected result as %s: %v\n%s", cniVersion, err, out)
		}
		r2, err := Parse(out, cniVersion)
		if err != nil {
			t.Fatalf("the corrected result does not parse: %v\n%s", err, out)
		}
		if _, got, ok := r2.Find(ifName, inFuzzSandbox); !ok || got != mac {
			t.Fatalf("corrected result reports %q (found %v) for %q, want %q\n%s", got, ok, ifName, mac, out)
		}

		// Apply the one allowed change to the parsed input by hand and
		// compare with the output, as decoded JSON values.
		want, got := decodeNumbers(t, r.Raw), decodeNumbers(t, out)
		ifs, _ := want["interfaces"].([]any)
		if i, _, ok := r.Find(ifName, inFuzzSandbox); ok {
			ifs[i].(map[string]any)["mac"] = mac
		} else {
			ifs = append(ifs, map[string]any{"name": ifName, "mac": mac, "sandbox": fuzzSandbox})
		}
		want["interfaces"] = ifs
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("correction changed more than the MAC:\n in  %s\n out %s", r.Raw, out)
		}
	})
}

// decodeNumbers reads JSON keeping numbers as written, so a field the plugin only
// passes through compares exactly.
func decodeNumbers(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, b)
	}
	return m
}
