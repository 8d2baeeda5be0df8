package doctor_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/ctl/doctor"
	"github.com/macguard-cni/macguard/test/doctor/nodeworld"
)

// --conf on what an operator has at hand: a conflist with a JSON typo is
// reported with its JSON error (exit 1, not 2), and the List that kubectl
// get net-attach-def -o yaml prints is checked NAD by NAD, one without
// spec.config among them (valid: Multus reads its conf dir).
func TestConfFlag(t *testing.T) {
	bin := testutil.ToolBinary(t)
	w := base(t)
	typo := filepath.Join(w.Root, "typo.conflist")
	if err := os.WriteFile(typo, []byte(`{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"},]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(w.Root, "nads.yaml")
	if err := os.WriteFile(list, []byte(`apiVersion: v1
kind: List
items:
- apiVersion: k8s.cni.cncf.io/v1
  kind: NetworkAttachmentDefinition
  metadata: {name: mv, namespace: vms}
  spec:
    config: '{"cniVersion":"1.0.0","name":"mv","plugins":[{"type":"macvlan"},{"type":"macguard","assign":"sometimes"}]}'
- apiVersion: k8s.cni.cncf.io/v1
  kind: NetworkAttachmentDefinition
  metadata: {name: fromfile, namespace: vms}
metadata: {resourceVersion: ""}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r, code := w.Run(t, bin, "--conf", typo, "--conf", list)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	got := nodeworld.Problems(r)
	want := []nodeworld.Problem{p(doctor.Error, "conf-entry-invalid", "", "", "nads.yaml"), p(doctor.Error, "conf-invalid", "", "", "typo.conflist")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems\n  got  %v\n  want %v", got, want)
	}
	if f := nodeworld.Find(r, "conf-invalid", ""); f == nil || !strings.Contains(f.Message, "invalid character ']'") {
		t.Errorf("conf-invalid %+v does not carry the JSON error", f)
	}
	if f := nodeworld.Find(r, "conf-nad-no-config", ""); f == nil || f.NAD != "vms/fromfile" || f.Severity != doctor.Info {
		t.Errorf("no info finding for the NAD without spec.config: %+v", r.Findings)
	}
}

// A NAD whose macguard entry names a dataDir outside the node's roots is
// reported (conf-path-not-allowed, with the plugin's own message naming
// the field, the path and the roots); one beneath them is not.
func TestConfPathNotAllowed(t *testing.T) {
	bin := testutil.ToolBinary(t)
	w := base(t)
	list := filepath.Join(w.Root, "nads.yaml")
	if err := os.WriteFile(list, []byte(`apiVersion: v1
kind: List
items:
- apiVersion: k8s.cni.cncf.io/v1
  kind: NetworkAttachmentDefinition
  metadata: {name: evil, namespace: tenant}
  spec:
    config: '{"cniVersion":"1.0.0","name":"evil","plugins":[{"type":"macvlan"},{"type":"macguard","dataDir":"/etc/cni/net.d"}]}'
- apiVersion: k8s.cni.cncf.io/v1
  kind: NetworkAttachmentDefinition
  metadata: {name: fine, namespace: tenant}
  spec:
    config: '{"cniVersion":"1.0.0","name":"fine","plugins":[{"type":"macvlan"},{"type":"macguard","dataDir":"/run/cni/macguard","logFile":"/var/log/macguard.log"}]}'
metadata: {resourceVersion: ""}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r, code := w.Run(t, bin, "--conf", list)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	var found []string
	for _, f := range r.Findings {
		if f.Code == "conf-path-not-allowed" {
			found = append(found, f.NAD)
			for _, want := range []string{"dataDir", "/etc/cni/net.d", "/run/cni, /var/lib/cni"} {
				if !strings.Contains(f.Message, want) {
					t.Errorf("message lacks %q: %s", want, f.Message)
				}
			}
		}
	}
	if !reflect.DeepEqual(found, []string{"tenant/evil"}) {
		t.Errorf("conf-path-not-allowed for %v, want only tenant/evil\n%+v", found, r.Findings)
	}
}
