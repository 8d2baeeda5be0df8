package doctor

import (
	"reflect"
	"strings"
	"testing"
)

func TestConfigNotes(t *testing.T) {
	tests := []struct {
		name string
		c    ConfigState
		want []string
	}{
		{"loaded, chained", ConfigState{Loaded: true, Valid: true, Macguard: true, After: "bridge", Plugins: []string{"bridge", "macguard"}}, []string{"loaded by the runtime", "chains macguard after bridge"}},
		{"macguard first", ConfigState{Macguard: true, Plugins: []string{"macguard"}}, []string{"has macguard first"}},
		{"invalid", ConfigState{}, []string{"invalid"}},
		{"NAD without config", ConfigState{Valid: true, NoConfig: true}, []string{"no spec.config: Multus reads it from its conf dir"}},
		{"without macguard", ConfigState{Valid: true, Plugins: []string{"bridge"}}, []string{"no macguard"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := configNotes(tt.c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteBinary(t *testing.T) {
	self := Build{Version: "v0.1.0", Commit: "abc"}
	tests := []struct {
		name string
		bin  Binary
		want string
	}{
		{"missing", Binary{Path: "/b/macguard"}, "  /b/macguard: missing\n"},
		{"same build", Binary{Path: "/b/macguard", Present: true, Version: "macguard v0.1.0 (commit abc)"}, "  /b/macguard: macguard v0.1.0 (commit abc), the same build as this macguardctl\n"},
		{"other build", Binary{Path: "/b/macguard", Present: true, Version: "macguard v0.0.9 (commit def)"}, "  /b/macguard: macguard v0.0.9 (commit def)\n"},
		{"no version", Binary{Path: "/b/macguard", Present: true}, "  /b/macguard\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			writeBinary(&b, Report{Binary: tt.bin, Macguardctl: self}, nil)
			if got := strings.TrimPrefix(b.String(), "\nBinary\n"); got != tt.want {
				t.Errorf("%q, want %q", got, tt.want)
			}
		})
	}
}
