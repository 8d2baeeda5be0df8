package install

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/ctl/cniconf"
)

// fixtures are the conflists real agents write (see cni-conf/installer).
var fixtures = []string{"05-cilium.conflist", "10-calico.conflist", "10-calico-operator.conflist"}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	return testutil.RepoFile(t, "cni-conf/installer/"+name)
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
	cases := []struct {
		name, in string
		// own is macguard's message for what libcni accepts; empty means
		// libcni refuses the file, and the error must be libcni's,
		// verbatim, behind macguard's words (not pinned here, so a libcni
		// upgrade that rewords it changes nothing).
		own string
	}{
		{name: "empty", in: ``},
		{name: "truncated", in: string(calico[:len(calico)/2])},
		{name: "truncated at end", in: string(calico[:len(calico)-1])},
		{name: "not an object", in: `["a"]`},
		{name: "trailing data", in: `{"name":"n","plugins":[{"type":"bridge"}]} {}`},
		{name: "duplicate key", in: `{"name":"n","plugins":[{"type":"bridge"}],"name":"m"}`, own: `key "name" appears twice`},
		{name: "no name", in: `{"plugins":[{"type":"bridge"}]}`},
		{name: "no plugins", in: `{"name":"n","cniVersion":"1.1.0"}`, own: `it has no inline "plugins" list to chain into`},
		{name: "empty plugins", in: `{"name":"n","plugins":[]}`},
		{name: "plugins not list", in: `{"name":"n","plugins":{"type":"bridge"}}`},
		{name: "plugin no type", in: `{"name":"n","plugins":[{"bridge":"br0"}]}`},
		{name: "name not string", in: `{"name":1,"plugins":[{"type":"bridge"}]}`},
		{name: "number too large", in: `{"name":"n","plugins":[{"type":"bridge","mtu":1e400}]}`},
		{name: "bad disableCheck", in: `{"name":"n","disableCheck":"maybe","plugins":[{"type":"bridge"}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.own
			if _, lerr := libcni.NetworkConfFromBytes([]byte(c.in)); lerr != nil {
				want = "the runtime would refuse it: " + lerr.Error()
			} else if want == "" {
				t.Fatal("libcni accepts the input; give the message macguard refuses it with")
			}
			out, _, err := chainList([]byte(c.in), mustEntry(t, ""))
			if err == nil {
				t.Fatalf("chainList accepted it and produced:\n%s", out)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("chainList: %v\nwant it to contain %q", err, want)
			}
			if out, _, err := unchainList([]byte(c.in)); err == nil {
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
	entry := mustEntry(t, "")
	cases := []struct {
		name, in string
		// kept are substrings of the input the output must hold as
		// written: libcni's own conversion would re-encode them.
		kept []string
	}{
		{name: "bridge", in: `{"cniVersion":"0.4.0","name":"mynet","type":"bridge","bridge":"cni0","ipam":{"type":"host-local","subnet":"10.22.0.0/16"}}`},
		{name: "exact numbers", in: `{"cniVersion":"1.0.0","name":"n","type":"bridge","mtu":1e3,"x-big":12345678901234567890}`,
			kept: []string{`1e3`, `12345678901234567890`}},
		{name: "no cniVersion", in: `{"name":"n","type":"bridge"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := []byte(c.in)
			out, err := convertConf(in, entry)
			if err != nil {
				t.Fatal(err)
			}
			list, err := libcni.NetworkConfFromBytes(out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			// What the runtime makes of the .conf, plus macguard:
			// libcni's conversion is the oracle for the list's header and
			// the plugin's meaning.
			conf, err := libcni.NetworkPluginConfFromBytes(in)
			if err != nil {
				t.Fatal(err)
			}
			implicit, err := libcni.ConfListFromConf(conf) //nolint:staticcheck // the oracle; deprecated only for loading .conf files
			if err != nil {
				t.Fatal(err)
			}
			if list.Name != implicit.Name || list.CNIVersion != implicit.CNIVersion || len(list.Plugins) != 2 {
				t.Fatalf("got name %q version %q %d plugins; libcni's conversion: name %q version %q", list.Name, list.CNIVersion, len(list.Plugins), implicit.Name, implicit.CNIVersion)
			}
			ps := pluginsOf(t, out)
			var got, want any
			if err := json.Unmarshal(ps[0], &got); err != nil {
				t.Fatalf("converted plugin %s: %v", ps[0], err)
			}
			if err := json.Unmarshal(pluginsOf(t, implicit.Bytes)[0], &want); err != nil {
				t.Fatalf("libcni's converted plugin %s: %v", pluginsOf(t, implicit.Bytes)[0], err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("converted plugin %s means something else than libcni's own conversion %s", ps[0], pluginsOf(t, implicit.Bytes)[0])
			}
			if !sameJSON(ps[0], in) {
				t.Errorf("converted plugin %s is not the .conf as written", ps[0])
			}
			for _, k := range c.kept {
				if !strings.Contains(string(out), k) {
					t.Errorf("output lost %s:\n%s", k, out)
				}
			}
			if !sameJSON(ps[1], entry) {
				t.Errorf("second plugin %s, want the entry", ps[1])
			}
		})
	}
	for _, bad := range []struct{ in, errPart string }{
		{`{"type":"bridge"}`, `no "name"`},
		{`{"name":"","type":"bridge"}`, `no "name"`},
		{`{"name":"x","type":"macguard"}`, "macguard alone"},
		{`{"name":"x"}`, "the runtime would refuse it"},
		{`{"name":"x","type":"bridge"`, "the runtime would refuse it"},
		{`{"name":"x","type":"bridge","type":"ptp"}`, "twice"},
	} {
		if out, err := convertConf([]byte(bad.in), entry); err == nil || !strings.Contains(err.Error(), bad.errPart) {
			t.Errorf("convertConf(%s) = %s, %v; want an error containing %q", bad.in, out, err, bad.errPart)
		}
	}
}

// pluginType is the "type" of one plugin entry, for the tests' checks.
func pluginType(entry json.RawMessage) string { return cniconf.EntryType(entry) }
