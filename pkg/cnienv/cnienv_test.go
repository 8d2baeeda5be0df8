package cnienv

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestCheckMessages(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // nil: valid
	}{
		{"add ok", map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0"}, nil},
		{"missing left to skel", map[string]string{"CNI_COMMAND": "ADD"}, nil},
		{"gc ignores ifname", map[string]string{"CNI_COMMAND": "GC", "CNI_IFNAME": "a/b"}, nil},
		{"unknown command", map[string]string{"CNI_COMMAND": "ATTACH"}, []string{"CNI_COMMAND", `"ATTACH"`, "ADD, CHECK, DEL, GC, STATUS, VERSION"}},
		{"lowercase command", map[string]string{"CNI_COMMAND": "add"}, []string{"CNI_COMMAND", `"add"`, "ADD"}},
		{"container id", map[string]string{"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "a b"}, []string{"CNI_CONTAINERID", `"a b"`, "letter or digit"}},
		{"ifname long", map[string]string{"CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0123456789012"}, []string{"CNI_IFNAME", "16 bytes is too long", "1 to 15 bytes"}},
		{"ifname dot", map[string]string{"CNI_COMMAND": "CHECK", "CNI_IFNAME": "."}, []string{"CNI_IFNAME", `"."`, `not "." or ".."`}},
		{"ifname slash", map[string]string{"CNI_COMMAND": "ADD", "CNI_IFNAME": "a/b"}, []string{"CNI_IFNAME", "'/'"}},
		{"ifname tab", map[string]string{"CNI_COMMAND": "ADD", "CNI_IFNAME": "a\tb"}, []string{"CNI_IFNAME", "whitespace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(env(tt.env))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || err.Code != types.ErrInvalidEnvironmentVariables {
				t.Fatalf("want code 4, got %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Msg, w) {
					t.Errorf("message %q lacks %q", err.Msg, w)
				}
			}
		})
	}
}

// TestSameRulesAsSkel: macguard must accept exactly what skel accepts, or
// it would refuse invocations every other plugin in the chain takes, and
// for what skel refuses it must name the rule that was broken. skel's
// functions judge (see Check); the table pins the reason macguard gives,
// and a skel whose rules moved fails here on the names it now judges
// otherwise.
func TestSameRulesAsSkel(t *testing.T) {
	const (
		long  = "bytes is too long"
		dots  = "not a name"
		chars = "contains '/', ':' or whitespace"
	)
	ifNames := []struct{ name, reason string }{
		{"eth0", ""}, {"e", ""}, {"net1", ""}, {".", dots}, {"..", dots}, {"...", ""}, {".a", ""}, {"a.", ""},
		{"a/b", chars}, {"a:b", chars}, {"a b", chars}, {"a\u00a0b", chars}, {"a\u2028b", chars},
		{"eth0123456789ab", ""}, {"eth0123456789abc", long}, {"\xff\xfe", ""}, {"ü", ""}, {"üüüüüüüü", long},
		{"-", ""}, {"a\x00b", ""}, {"a\nb", chars}, {"../../etc", chars}, {"eth0123456789a/b", long}, {"a/", chars}, {"/", chars},
	}
	for _, tc := range ifNames {
		err := Check(env(map[string]string{"CNI_COMMAND": "ADD", "CNI_IFNAME": tc.name}))
		skels := utils.ValidateInterfaceName(tc.name) == nil
		if (err == nil) != skels {
			t.Errorf("CNI_IFNAME %q: macguard accepts=%v, skel accepts=%v", tc.name, err == nil, skels)
		}
		if (tc.reason == "") != skels {
			t.Errorf("CNI_IFNAME %q: the table says reason %q, skel accepts=%v", tc.name, tc.reason, skels)
		}
		if err != nil && !strings.Contains(err.Msg, tc.reason) {
			t.Errorf("CNI_IFNAME %q: message %q does not give the reason %q", tc.name, err.Msg, tc.reason)
		}
	}
	ids := []string{"c1", "0", "a_b.c-d", "_a", ".a", "-a", "a b", "a/b", "a@b", "ü", strings.Repeat("a", 300), "A9"}
	for _, id := range ids {
		ours := Check(env(map[string]string{"CNI_COMMAND": "DEL", "CNI_CONTAINERID": id})) == nil
		skels := utils.ValidateContainerID(id) == nil
		if ours != skels {
			t.Errorf("CNI_CONTAINERID %q: macguard accepts=%v, skel accepts=%v", id, ours, skels)
		}
	}
}
