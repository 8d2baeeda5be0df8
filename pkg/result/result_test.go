package result

import (
	"cmp"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

const sandbox = "/var/run/netns/pod"

func inSandbox(s string) bool { return s == sandbox }

// results per supported cniVersion, shaped like the reference plugins'
// output: a host-side veth named like the pod interface (the case the
// reference tuning plugin gets wrong), the pod interface, and an IP.
func sample(version string) string {
	ips := `"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":1}]`
	if strings.HasPrefix(version, "0.3") || version == "0.4.0" {
		ips = `"ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1","interface":1}]`
	}
	return `{"cniVersion":"` + version + `","interfaces":[{"name":"eth0","mac":"aa:aa:aa:aa:aa:aa"},` +
		`{"name":"eth0","mac":"00:00:00:00:00:00","sandbox":"` + sandbox + `"}],` + ips +
		`,"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.96.0.10"]}}`
}

func decode(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, raw)
	}
	return m
}

func TestCorrectEveryVersion(t *testing.T) {
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			in := sample(v)
			r, err := Parse(json.RawMessage(in), v)
			if err != nil {
				t.Fatal(err)
			}
			if string(r.Raw) != in {
				t.Fatalf("same-version prevResult must be kept verbatim")
			}
			i, mac, ok := r.Find("eth0", inSandbox)
			if !ok || i != 1 || mac != "00:00:00:00:00:00" {
				t.Fatalf("Find = %d %q %v; want the sandbox entry (index 1), not the host veth", i, mac, ok)
			}
			out, err := r.WithMAC("eth0", sandbox, inSandbox, "0a:58:00:00:00:01")
			if err != nil {
				t.Fatal(err)
			}
			got, want := decode(t, out), decode(t, []byte(in))
			ifs := want["interfaces"].([]any)
			ifs[1].(map[string]any)["mac"] = "0a:58:00:00:00:01"
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("only the sandbox MAC may change:\n got %s\nwant %v", out, want)
			}
		})
	}
}

func TestCorrectAppendsMissingEntry(t *testing.T) {
	in := `{"cniVersion":"1.0.0","interfaces":[{"name":"lxc1"}],"ips":[{"address":"10.0.0.2/32","interface":0}]}`
	r, err := Parse(json.RawMessage(in), "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := r.Find("eth0", inSandbox); ok {
		t.Fatal("no sandbox entry exists")
	}
	out, err := r.WithMAC("eth0", sandbox, inSandbox, "0a:58:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, out)
	ifs := got["interfaces"].([]any)
	if len(ifs) != 2 || !reflect.DeepEqual(ifs[1], map[string]any{"name": "eth0", "mac": "0a:58:00:00:00:01", "sandbox": sandbox}) {
		t.Fatalf("want appended {name, mac, sandbox}, got %v", ifs)
	}
	if idx := got["ips"].([]any)[0].(map[string]any)["interface"]; idx != float64(0) {
		t.Fatalf("IP interface index moved to %v", idx)
	}
}

func TestCorrectKeepsUnknownFields(t *testing.T) {
	in := `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"` + sandbox + `","x-vendor":{"a":[1,2]}}],"x-top":true}`
	r, err := Parse(json.RawMessage(in), "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.WithMAC("eth0", sandbox, inSandbox, "0a:58:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, out)
	if got["x-top"] != true || got["interfaces"].([]any)[0].(map[string]any)["x-vendor"] == nil {
		t.Fatalf("unknown fields dropped: %s", out)
	}
}

func TestConvertsOtherVersion(t *testing.T) {
	r, err := Parse(json.RawMessage(sample("0.3.1")), "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, r.Raw)
	if got["cniVersion"] != "1.0.0" {
		t.Fatalf("not converted: %s", r.Raw)
	}
	if _, _, ok := r.Find("eth0", inSandbox); !ok {
		t.Fatal("sandbox entry lost in conversion")
	}
}

// TestConversionStaysReadable: libcni re-encodes what it decoded without
// checking it, so a prevResult IP without an address converts to the
// address "<nil>", which libcni (in the runtime) then refuses to read.
// macguard must refuse such a prevResult itself, naming it, rather than
// print a result the runtime cannot parse. Found by FuzzCorrect.
func TestConversionStaysReadable(t *testing.T) {
	_, err := Parse(json.RawMessage(`{"cniVersion":"1.0.0","ips":[{}]}`), "0.3.1")
	if err == nil || !strings.Contains(err.Error(), "prevResult") {
		t.Fatalf("got %v, want an error about the prevResult", err)
	}
}

func TestParseErrors(t *testing.T) {
	// to is the config's cniVersion, 1.0.0 where empty.
	tests := []struct{ name, in, want, to string }{
		{"not object", `[1]`, "not a JSON object", ""},
		{"bad version", `{"cniVersion":"9.9.9"}`, "9.9.9", ""},
		{"index out of range", `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.0.0.1/24","interface":3}]}`, "ips[0].interface is 3", ""},
		{"negative index", `{"cniVersion":"1.0.0","interfaces":[],"ips":[{"address":"10.0.0.1/24","interface":-1}]}`, "interface is -1", ""},
		{"interfaces wrong type", `{"cniVersion":"1.0.0","interfaces":{"name":"eth0"}}`, "interfaces", ""},
		// libcni's converters dereference list entries: each of these
		// panicked (the plugin died without a CNI error) before they were
		// refused.
		{"null interface to convert", `{"cniVersion":"1.1.0","interfaces":[{"name":"eth0"},null],"ips":[{"address":"10.0.0.1/24","interface":0}]}`, `"interfaces"[1] is null`, "0.4.0"},
		{"null ip to convert", `{"cniVersion":"1.1.0","ips":[null]}`, `"ips"[0] is null`, "0.4.0"},
		{"null route to convert", `{"cniVersion":"1.1.0","routes":[{"dst":"0.0.0.0/0"},null]}`, `"routes"[1] is null`, "0.4.0"},
		{"null entry to convert up", `{"cniVersion":"0.3.1","interfaces":[null]}`, `"interfaces"[0] is null`, "1.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(json.RawMessage(tt.in), cmp.Or(tt.to, "1.0.0"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse(%s) = %v; want error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func BenchmarkCorrect(b *testing.B) {
	in := json.RawMessage(sample("1.0.0"))
	b.ReportAllocs()
	for b.Loop() {
		r, err := Parse(in, "1.0.0")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.WithMAC("eth0", sandbox, inSandbox, "0a:58:00:00:00:01"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOutputBytes pins the corrected result byte for byte, not only as
// decoded JSON: what runtimes have seen from macguard so far is what
// json.Marshal writes for the decoded maps (keys sorted, the last of a
// repeated key kept, compact, <, >, &, U+2028 escaped), and a prevResult
// already in the config's version passes through as sent.
func TestOutputBytes(t *testing.T) {
	tests := []struct{ name, in, version, mac, raw, out string }{
		{
			name: "keys sorted", in: sample("1.0.0"), version: "1.0.0", mac: "0a:58:00:00:00:01",
			out: `{"cniVersion":"1.0.0","dns":{"nameservers":["10.96.0.10"]},"interfaces":[{"mac":"aa:aa:aa:aa:aa:aa","name":"eth0"},{"mac":"0a:58:00:00:00:01","name":"eth0","sandbox":"/var/run/netns/pod"}],"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":1}],"routes":[{"dst":"0.0.0.0/0"}]}`,
		},
		{
			name:    "spaces dropped",
			in:      `{"cniVersion": "0.4.0", "interfaces": [{"name": "cni0", "mac": "aa:bb:cc:00:00:01"}, {"name": "eth0", "mac": "aa:bb:cc:00:00:03", "sandbox": "/var/run/netns/pod"}], "ips": [{"version": "4", "address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 1}], "dns": {}}`,
			version: "0.4.0", mac: "0a:58:00:00:00:02",
			out: `{"cniVersion":"0.4.0","dns":{},"interfaces":[{"mac":"aa:bb:cc:00:00:01","name":"cni0"},{"mac":"0a:58:00:00:00:02","name":"eth0","sandbox":"/var/run/netns/pod"}],"ips":[{"version":"4","address":"10.88.0.5/16","gateway":"10.88.0.1","interface":1}]}`,
		},
		{
			name: "entry appended", in: `{"cniVersion":"1.0.0","interfaces":[{"name":"lxc1"}],"ips":[{"address":"10.0.0.2/32","interface":0}]}`,
			version: "1.0.0", mac: "0a:58:00:00:00:01",
			out: `{"cniVersion":"1.0.0","interfaces":[{"name":"lxc1"},{"mac":"0a:58:00:00:00:01","name":"eth0","sandbox":"/var/run/netns/pod"}],"ips":[{"address":"10.0.0.2/32","interface":0}]}`,
		},
		{
			name:    "escapes, repeats and nulls",
			in:      `{"cniVersion":"1.1.0","x-top":"<a&b>` + "\u2028" + `","interf\u0061ces":[null,{"name":"eth0","sandbox":"/var/run/netns/pod","mac":"old","mac":"older","x-vendor":{"z":1,"a":[1.50,"\u00e9"]}}],"ips":[],"ips":null}`,
			version: "1.1.0", mac: "0a:58:00:00:00:03",
			out: `{"cniVersion":"1.1.0","interfaces":[null,{"mac":"0a:58:00:00:00:03","name":"eth0","sandbox":"/var/run/netns/pod","x-vendor":{"z":1,"a":[1.50,"\u00e9"]}}],"ips":null,"x-top":"\u003ca\u0026b\u003e\u2028"}`,
		},
		{
			name: "converted", in: sample("0.3.1"), version: "1.0.0", mac: "0a:58:00:00:00:04",
			raw: `{"cniVersion":"1.0.0","dns":{"nameservers":["10.96.0.10"]},"interfaces":[{"mac":"aa:aa:aa:aa:aa:aa","name":"eth0"},{"mac":"00:00:00:00:00:00","name":"eth0","sandbox":"/var/run/netns/pod"}],"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":1}],"routes":[{"dst":"0.0.0.0/0"}]}`,
			out: `{"cniVersion":"1.0.0","dns":{"nameservers":["10.96.0.10"]},"interfaces":[{"mac":"aa:aa:aa:aa:aa:aa","name":"eth0"},{"mac":"0a:58:00:00:00:04","name":"eth0","sandbox":"/var/run/netns/pod"}],"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":1}],"routes":[{"dst":"0.0.0.0/0"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse(json.RawMessage(tt.in), tt.version)
			if err != nil {
				t.Fatal(err)
			}
			raw := tt.raw
			if raw == "" {
				raw = tt.in
			}
			if string(r.Raw) != raw {
				t.Fatalf("Raw:\n got %s\nwant %s", r.Raw, raw)
			}
			out, err := r.WithMAC("eth0", sandbox, inSandbox, tt.mac)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.out {
				t.Fatalf("WithMAC:\n got %s\nwant %s", out, tt.out)
			}
		})
	}
}
