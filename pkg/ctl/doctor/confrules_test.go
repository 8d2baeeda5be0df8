package doctor

import (
	"reflect"
	"testing"

	"github.com/macguard-cni/macguard/pkg/ctl/cniconf"
	"github.com/macguard-cni/macguard/pkg/pathpolicy"
)

func findingCodes(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return out
}

func TestReadConf(t *testing.T) {
	tests := []struct {
		name     string
		cf       ConfFile
		chain    bool
		noConfig bool
		codes    []string
	}{
		{"conflist", ConfFile{Path: "/c/10.conflist", Content: conflist("n", `{"type":"bridge"}`)}, true, false, nil},
		{"unreadable", ConfFile{Path: "/c/10.conflist", Err: "permission denied"}, false, false, []string{"conf-unreadable"}},
		{"not JSON", ConfFile{Path: "/c/10.conf", Content: `{`}, false, false, []string{"conf-invalid"}},
		{"NAD without config", ConfFile{Path: "NAD d/n", NAD: "d/n"}, false, true, []string{"conf-nad-no-config"}},
		{"NAD with a single plugin", ConfFile{Path: "NAD d/n", NAD: "d/n", Content: `{"cniVersion":"1.0.0","name":"n","type":"bridge"}`}, true, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, noConfig, fs := readConf(tt.cf, confFinder{File: tt.cf.Path, NAD: tt.cf.NAD})
			if (ch != nil) != tt.chain || noConfig != tt.noConfig || !reflect.DeepEqual(findingCodes(fs), tt.codes) {
				t.Errorf("chain %v noConfig %v codes %q; want chain %v noConfig %v codes %q", ch != nil, noConfig, findingCodes(fs), tt.chain, tt.noConfig, tt.codes)
			}
		})
	}
}

func TestChainRules(t *testing.T) {
	roots := pathpolicy.FromEnv(func(string) string { return "" })
	tests := []struct {
		name    string
		plugins []string
		entry   []string // macguardEntryRule's codes, all macguard entries
		chain   []string // chainRules' codes
	}{
		{"healthy", []string{`{"type":"bridge"}`, mgEntry}, nil, nil},
		{"first", []string{mgEntry, `{"type":"bridge"}`}, []string{"conf-macguard-first"}, nil},
		{"invalid option", []string{`{"type":"bridge"}`, `{"type":"macguard","assign":"sometimes","capabilities":{"mac":true}}`}, []string{"conf-entry-invalid"}, nil},
		{"dataDir outside the roots", []string{`{"type":"bridge"}`, `{"type":"macguard","dataDir":"/etc/x","capabilities":{"mac":true}}`}, []string{"conf-path-not-allowed"}, nil},
		{"twice", []string{`{"type":"bridge"}`, mgEntry, mgEntry}, nil, []string{"conf-macguard-twice"}},
		{"tuning sets the MAC", []string{`{"type":"bridge"}`, `{"type":"tuning","mac":"02:00:00:00:00:01"}`, mgEntry}, nil, []string{"conf-two-owners"}},
		{"no mac capability", []string{`{"type":"bridge"}`, `{"type":"macguard"}`}, nil, []string{"conf-no-mac-capability"}},
		{"a MAC of its own needs no capability", []string{`{"type":"bridge"}`, `{"type":"macguard","mac":"02:00:00:00:00:01"}`}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := cniconf.Read([]byte(conflist("n", tt.plugins...)), true)
			if err != nil {
				t.Fatal(err)
			}
			f := confFinder{File: "/c/10.conflist"}
			var entry, chain []Finding
			for i, e := range ch.Entries {
				if e.Type == cniconf.PluginType {
					entry = append(entry, macguardEntryRule(f, ch, i, roots)...)
				}
			}
			for _, rule := range chainRules {
				chain = append(chain, rule(f, ch)...)
			}
			if !reflect.DeepEqual(findingCodes(entry), tt.entry) || !reflect.DeepEqual(findingCodes(chain), tt.chain) {
				t.Errorf("entry %q chain %q; want %q %q", findingCodes(entry), findingCodes(chain), tt.entry, tt.chain)
			}
		})
	}
}
