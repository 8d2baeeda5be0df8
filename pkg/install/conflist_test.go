package install

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// fixtures are the conflists real agents write (see cni-conf/installer).
var fixtures = []string{"05-cilium.conflist", "10-calico.conflist", "10-calico-operator.conflist"}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "cni-conf", "installer", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustEntry(t *testing.T, cfg string) json.RawMessage {
	t.Helper()
	e, err := Entry(cfg)
	if err != nil {
		t.Fatalf("Entry(%s): %v", cfg, err)
	}
	return e
}

// members returns the top-level members of a JSON object in order.
func members(t *testing.T, data []byte) object {
	t.Helper()
	o, err := parseObject(data)
	if err != nil {
		t.Fatalf("parse %q: %v", data, err)
	}
	return o
}

func pluginsOf(t *testing.T, data []byte) []json.RawMessage {
	t.Helper()
	raw, ok := members(t, data).get("plugins")
	if !ok {
		t.Fatalf("no plugins in %s", data)
	}
	var ps []json.RawMessage
	if err := json.Unmarshal(raw, &ps); err != nil {
		t.Fatal(err)
	}
	return ps
}

func countMacguard(ps []json.RawMessage) int {
	n := 0
	for _, p := range ps {
		if pluginType(p) == PluginType {
			n++
		}
	}
	return n
}

// assertSameExceptMacguard checks that got holds every top-level member and
// every non-macguard plugin of want, with the same values in the same order.
func assertSameExceptMacguard(t *testing.T, want, got []byte) {
	t.Helper()
	wo, gotO := members(t, want), members(t, got)
	if len(wo) != len(gotO) {
		t.Fatalf("top-level members: got %d, want %d\n%s", len(gotO), len(wo), got)
	}
	for i := range wo {
		if wo[i].key != gotO[i].key {
			t.Errorf("member %d: key %q, want %q", i, gotO[i].key, wo[i].key)
		}
		if wo[i].key != "plugins" && !sameJSON(wo[i].value, gotO[i].value) {
			t.Errorf("member %q changed: %s -> %s", wo[i].key, wo[i].value, gotO[i].value)
		}
	}
	var wp, gp []json.RawMessage
	for _, p := range pluginsOf(t, want) {
		if pluginType(p) != PluginType {
			wp = append(wp, p)
		}
	}
	for _, p := range pluginsOf(t, got) {
		if pluginType(p) != PluginType {
			gp = append(gp, p)
		}
	}
	if len(wp) != len(gp) {
		t.Fatalf("other plugins: got %d, want %d", len(gp), len(wp))
	}
	for i := range wp {
		if !sameJSON(wp[i], gp[i]) {
			t.Errorf("plugin %d changed:\n%s\n->\n%s", i, wp[i], gp[i])
		}
	}
}

func TestChainRealConflists(t *testing.T) {
	entries := []string{
		DefaultPluginConfig,
		`{"onUnsupported":"skip"}`,
		`{"type":"macguard","assign":"always","salt":"prod-1","capabilities":{"mac":true}}`,
	}
	for _, name := range fixtures {
		for _, cfg := range entries {
			t.Run(name+"/"+cfg, func(t *testing.T) {
				in := fixture(t, name)
				entry := mustEntry(t, cfg)
				out, change, err := chainList(in, entry)
				if err != nil {
					t.Fatal(err)
				}
				if change != Appended {
					t.Errorf("change = %s, want appended", change)
				}
				if _, err := libcni.ConfListFromBytes(out); err != nil {
					t.Fatalf("output does not parse with libcni: %v\n%s", err, out)
				}
				assertSameExceptMacguard(t, in, out)
				ps := pluginsOf(t, out)
				if last := ps[len(ps)-1]; !sameJSON(last, entry) {
					t.Errorf("last plugin = %s, want the entry %s", last, entry)
				}
				if n := countMacguard(ps); n != 1 {
					t.Errorf("%d macguard entries, want 1", n)
				}

				again, change, err := chainList(out, entry)
				if err != nil || change != Unchanged || string(again) != string(out) {
					t.Errorf("second chain: change %s, err %v, bytes equal %v; want unchanged", change, err, string(again) == string(out))
				}

				back, change, err := unchainList(out)
				if err != nil || change != Removed {
					t.Fatalf("unchain: change %s, err %v", change, err)
				}
				assertSameExceptMacguard(t, in, back)
				if n := countMacguard(pluginsOf(t, back)); n != 0 {
					t.Errorf("%d macguard entries left after unchain", n)
				}
			})
		}
	}
}

func TestChainUpdatesInPlaceAndDropsDuplicates(t *testing.T) {
	in := []byte(`{"cniVersion":"1.0.0","name":"n","plugins":[
		{"type":"bridge","bridge":"br0"},
		{"type":"macguard","assign":"always"},
		{"type":"portmap","capabilities":{"portMappings":true}},
		{"type":"macguard","assign":"never"}]}`)
	entry := mustEntry(t, `{"salt":"x"}`)
	out, change, err := chainList(in, entry)
	if err != nil {
		t.Fatal(err)
	}
	if change != Updated {
		t.Errorf("change = %s, want updated", change)
	}
	ps := pluginsOf(t, out)
	var types []string
	for _, p := range ps {
		types = append(types, pluginType(p))
	}
	if got := strings.Join(types, ","); got != "bridge,macguard,portmap" {
		t.Fatalf("plugin order %s, want bridge,macguard,portmap (entry kept where it stood, duplicate dropped)", got)
	}
	if !sameJSON(ps[1], entry) {
		t.Errorf("entry = %s, want %s", ps[1], entry)
	}

	// Same options, but a duplicate: still a change.
	dup := []byte(`{"name":"n","plugins":[{"type":"bridge"},{"type":"macguard"},{"type":"macguard"}]}`)
	out, change, err = chainList(dup, mustEntry(t, ""))
	if err != nil || change != Updated || countMacguard(pluginsOf(t, out)) != 1 {
		t.Errorf("duplicate: change %s err %v entries %d; want updated with one entry", change, err, countMacguard(pluginsOf(t, out)))
	}
}

func TestChainKeepsValuesExactly(t *testing.T) {
	// Numbers that a float64 round trip would alter, escapes, unicode and
	// extension members of the list itself.
	in := []byte(`{"cniVersion":"1.0.0","name":"n","x-big":12345678901234567890,"disableCheck":true,
		"plugins":[{"type":"bridge","mtu":1e3,"note":"caf\u00e9 \"q\" <b>","ratio":0.10}]}`)
	out, _, err := chainList(in, mustEntry(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`12345678901234567890`, `1e3`, `"caf\u00e9 \"q\" <b>"`, `0.10`, `"disableCheck": true`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lost %s:\n%s", want, out)
		}
	}
}

func TestChainRefusesWhatItCannotParse(t *testing.T) {
	calico := fixture(t, "10-calico.conflist")
	cases := map[string]string{
		"empty":            ``,
		"truncated":        string(calico[:len(calico)/2]),
		"truncated at end": string(calico[:len(calico)-1]),
		"not an object":    `["a"]`,
		"trailing data":    `{"name":"n","plugins":[{"type":"bridge"}]} {}`,
		"duplicate key":    `{"name":"n","plugins":[{"type":"bridge"}],"name":"m"}`,
		"no name":          `{"plugins":[{"type":"bridge"}]}`,
		"no plugins":       `{"name":"n","cniVersion":"1.1.0"}`,
		"empty plugins":    `{"name":"n","plugins":[]}`,
		"plugins not list": `{"name":"n","plugins":{"type":"bridge"}}`,
		"plugin no type":   `{"name":"n","plugins":[{"bridge":"br0"}]}`,
		"name not string":  `{"name":1,"plugins":[{"type":"bridge"}]}`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if out, _, err := chainList([]byte(in), mustEntry(t, "")); err == nil {
				t.Errorf("chainList accepted it and produced:\n%s", out)
			}
			if out, _, err := unchainList([]byte(in)); err == nil {
				t.Errorf("unchainList accepted it and produced:\n%s", out)
			}
		})
	}
}

func TestUnchainRefusesToEmptyTheList(t *testing.T) {
	in := []byte(`{"name":"n","plugins":[{"type":"macguard"}]}`)
	if out, _, err := unchainList(in); err == nil {
		t.Errorf("unchainList emptied the list:\n%s", out)
	}
	same := []byte(`{"name":"n","plugins":[{"type":"bridge"}]}`)
	out, change, err := unchainList(same)
	if err != nil || change != Unchanged || string(out) != string(same) {
		t.Errorf("no entry: change %s err %v; want unchanged, same bytes", change, err)
	}
}

func TestEntry(t *testing.T) {
	cases := []struct {
		in      string
		want    string // canonical JSON of the entry; "" means an error
		errPart string
	}{
		{"", `{"type":"macguard"}`, ""},
		{`{}`, `{"type":"macguard"}`, ""},
		{`{"assign":"always","salt":"s"}`, `{"type":"macguard","assign":"always","salt":"s"}`, ""},
		{`{"type":"macguard","mac":"02:00:00:00:00:01"}`, `{"type":"macguard","mac":"02:00:00:00:00:01"}`, ""},
		{`{"capabilities":{"mac":true}}`, `{"type":"macguard","capabilities":{"mac":true}}`, ""},
		{`{"type":"tuning"}`, "", `must be "macguard"`},
		{`{"type":5}`, "", `must be "macguard"`},
		{`{"asign":"always"}`, "", `unknown field "asign"`},
		{`{"assign":"sometimes"}`, "", `"assign"`},
		{`{"mac":"01:00:5e:00:00:01"}`, "", "config mac"},
		{`{"prevResult":{}}`, "", "prevResult"},
		{`{"assign":`, "", "not valid JSON"},
		{`"macguard"`, "", "not a JSON object"},
		{`{"salt":"a","salt":"b"}`, "", "twice"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := Entry(c.in)
			if c.want == "" {
				if err == nil || !strings.Contains(err.Error(), c.errPart) {
					t.Fatalf("Entry(%s) = %s, %v; want an error containing %q", c.in, got, err, c.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(got, json.RawMessage(c.want)) {
				t.Errorf("Entry(%s) = %s, want %s", c.in, got, c.want)
			}
		})
	}
}

func TestConvertConf(t *testing.T) {
	in := []byte(`{"cniVersion":"0.4.0","name":"mynet","type":"bridge","bridge":"cni0","ipam":{"type":"host-local","subnet":"10.22.0.0/16"}}`)
	entry := mustEntry(t, "")
	out, err := convertConf(in, entry)
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if list.Name != "mynet" || list.CNIVersion != "0.4.0" || len(list.Plugins) != 2 {
		t.Fatalf("got name %q version %q %d plugins", list.Name, list.CNIVersion, len(list.Plugins))
	}
	// What the runtime would have made of the .conf, plus macguard.
	conf, err := libcni.ConfFromBytes(in)
	if err != nil {
		t.Fatal(err)
	}
	implicit, err := libcni.ConfListFromConf(conf)
	if err != nil {
		t.Fatal(err)
	}
	ps := pluginsOf(t, out)
	if !sameJSON(ps[0], pluginsOf(t, implicit.Bytes)[0]) {
		t.Errorf("converted plugin %s differs from libcni's own conversion %s", ps[0], pluginsOf(t, implicit.Bytes)[0])
	}
	if !sameJSON(ps[1], entry) {
		t.Errorf("second plugin %s, want the entry", ps[1])
	}
	for _, bad := range []string{`{"type":"bridge"}`, `{"name":"x","type":"macguard"}`, `{"name":"x"}`, `{"name":"x","type":"bridge"`} {
		if out, err := convertConf([]byte(bad), entry); err == nil {
			t.Errorf("convertConf(%s) = %s, want an error", bad, out)
		}
	}
}
