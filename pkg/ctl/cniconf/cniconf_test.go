package cniconf

import (
	"reflect"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		asList   bool
		wantErr  string
		network  string
		types    []string
		macguard int
		mac      string // macguard's entry's own "mac"
		capable  bool
	}{
		{name: "conflist", data: `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","mac":"02:00:00:00:00:01"},{"type":"macguard","capabilities":{"mac":true}}]}`,
			network: "n", types: []string{"bridge", "macguard"}, macguard: 1, capable: true},
		{name: "single plugin", data: `{"cniVersion":"1.0.0","name":"n","type":"bridge"}`, network: "n", types: []string{"bridge"}, macguard: -1},
		{name: "macguard's own mac", data: `{"name":"n","plugins":[{"type":"bridge"},{"type":"macguard","mac":"02:00:00:00:00:02"}]}`,
			network: "n", types: []string{"bridge", "macguard"}, macguard: 1, mac: "02:00:00:00:00:02"},
		{name: "not JSON", data: `{"name":`, wantErr: "not JSON"},
		{name: "no type", data: `{"name":"n"}`, wantErr: "type"},
		// A .conflist is read as a list even without "plugins": libcni
		// then finds no plugin in it (the doctor: not loadable).
		{name: "forced list", data: `{"name":"n","type":"bridge"}`, asList: true, network: "n", types: []string{}, macguard: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := Read([]byte(tt.data), tt.asList)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ch.Name != tt.network || !reflect.DeepEqual(ch.Types(), tt.types) || ch.MacguardIndex() != tt.macguard {
				t.Fatalf("chain %q %q, macguard at %d; want %q %q at %d", ch.Name, ch.Types(), ch.MacguardIndex(), tt.network, tt.types, tt.macguard)
			}
			mg := ch.Macguard()
			if (mg != nil) != (tt.macguard >= 0) {
				t.Fatalf("Macguard() = %v", mg)
			}
			if mg != nil && (mg.MAC != tt.mac || mg.MACCapability != tt.capable) {
				t.Errorf("macguard's entry %+v, want mac %q capability %v", mg, tt.mac, tt.capable)
			}
			if (len(tt.types) > 0 && !ch.HasType(tt.types[0])) || ch.HasType("tuning") {
				t.Errorf("HasType disagrees with Types %q", ch.Types())
			}
		})
	}
}

func TestEntryType(t *testing.T) {
	for in, want := range map[string]string{
		`{"type":"macguard"}`: "macguard",
		`{"type":5}`:          "",
		`{}`:                  "",
		`not json`:            "",
	} {
		if got := EntryType([]byte(in)); got != want {
			t.Errorf("EntryType(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckEntry(t *testing.T) {
	tests := []struct {
		entry, wantErr string
	}{
		{`{"type":"macguard"}`, ""},
		{`{"type":"macguard","assign":"sometimes"}`, "assign"},
		{`{"type":"macguard","mac":"01:00:5e:00:00:01"}`, "unicast"},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			cfg, err := CheckEntry([]byte(tt.entry))
			switch {
			case tt.wantErr == "" && (err != nil || cfg == nil):
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
