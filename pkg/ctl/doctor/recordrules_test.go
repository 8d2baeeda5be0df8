package doctor

import "testing"

func TestRecordRule(t *testing.T) {
	live := Record{File: "/d/r.json", ContainerID: "c1", IfName: "eth0", Netns: "/n/1", IfPresent: true}
	tests := []struct {
		name   string
		change func(r *Record)
		fixed  bool
		state  string
		code   string // "" = no finding
	}{
		{"live", func(r *Record) {}, false, "live", ""},
		{"corrupt", func(r *Record) { r.Err = "not JSON" }, false, "corrupt", "record-corrupt"},
		{"unknown", func(r *Record) { r.NetnsErr = "permission denied" }, false, "unknown", "record-unknown"},
		{"netns gone", func(r *Record) { r.NetnsGone, r.IfPresent = true, false }, false, "stale", "record-stale"},
		{"interface gone", func(r *Record) { r.IfPresent = false }, false, "stale", "record-stale"},
		{"removed by --fix", func(r *Record) { r.IfPresent = false }, true, "removed", "record-removed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := live
			tt.change(&rec)
			st, f := recordRule(rec, tt.fixed)
			code := ""
			if f != nil {
				code = f.Code
			}
			if st.State != tt.state || code != tt.code {
				t.Errorf("state %q finding %q, want %q %q", st.State, code, tt.state, tt.code)
			}
		})
	}
}

func TestSeenFromSandbox(t *testing.T) {
	rec := Record{ContainerID: "c1", IfName: "eth0", Netns: "/unreachable", NetnsErr: "no such file"}
	tests := []struct {
		name    string
		netns   []Netns
		err     string
		present bool
	}{
		{"no sandbox process", nil, "no such file", false},
		{"sandbox holds the interface", []Netns{{ContainerIDs: []string{"c1"}, Interfaces: []Interface{veth("eth0", "")}}}, "", true},
		{"sandbox without it", []Netns{{ContainerIDs: []string{"c1"}, Interfaces: []Interface{veth("eth1", "")}}}, "", false},
		{"another sandbox", []Netns{{ContainerIDs: []string{"c2"}, Interfaces: []Interface{veth("eth0", "")}}}, "no such file", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := seenFromSandbox(rec, tt.netns)
			if got.NetnsErr != tt.err || got.IfPresent != tt.present {
				t.Errorf("NetnsErr %q IfPresent %v, want %q %v", got.NetnsErr, got.IfPresent, tt.err, tt.present)
			}
		})
	}
}
