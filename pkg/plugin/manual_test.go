package plugin

import (
	"bytes"
	"strings"
	"testing"
)

// TestManual: run by hand, the plugin prints what reference plugins print
// and points to macguardctl; only "version" and "help" are commands.
func TestManual(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout bool
	}{
		{"no arguments", nil, 0, nil, []string{"macguard ", "CNI protocol versions supported: 0.3.0", "macguardctl mac"}, true},
		{"version", []string{"version"}, 0, []string{"macguard ", "(commit "}, nil, false},
		{"version with more", []string{"--version", "extra"}, 0, []string{"macguard "}, nil, false},
		{"help", []string{"help"}, 0, []string{"CNI plugin", "macguardctl install"}, nil, false},
		{"an operator command", []string{"mac", "--namespace", "x"}, 2, nil, []string{`unknown command "mac"`, "macguardctl"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := Manual(tt.args, &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, tt.code, out.String(), errb.String())
			}
			for _, w := range tt.stdout {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q: %q", w, out.String())
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q: %q", w, errb.String())
				}
			}
			if tt.noStdout && out.Len() != 0 {
				t.Errorf("stdout should stay empty (a runtime reads it as a result): %q", out.String())
			}
		})
	}
}
