package doctor_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/ctl/doctor"
	"github.com/macguard-cni/macguard/test/doctor/nodeworld"
)

// The real binary without --no-cluster: with no credentials the report
// says the cluster was not checked (exit 0 on a healthy node); with a
// cluster that does not answer, the node report is still printed, with a
// warning naming the error (exit 1, not 2).
func TestClusterNotLookedAt(t *testing.T) {
	bin := testutil.ToolBinary(t)
	w := base(t)
	webPod(t, w, "web", webMAC)
	r, code := w.Run(t, bin, "--no-cluster=false")
	if f := nodeworld.Find(r, "cluster-not-checked", ""); code != 0 || f == nil || f.Severity != doctor.Info {
		t.Errorf("no credentials: exit %d, findings %+v; want 0 and cluster-not-checked", code, r.Findings)
	}

	kubeconfig := filepath.Join(w.Root, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, code = w.Run(t, bin, "--no-cluster=false", "--kubeconfig", kubeconfig)
	f := nodeworld.Find(r, "cluster-unavailable", "")
	if code != 1 || f == nil || f.Severity != doctor.Warning || !strings.Contains(f.Message, "127.0.0.1:1") {
		t.Errorf("unreachable API server: exit %d, finding %+v; want 1 and cluster-unavailable naming it", code, f)
	}
	if len(r.Pods) != 1 || r.Pods[0].Name != "default/web" {
		t.Errorf("the node report is not there: pods %+v", r.Pods)
	}
}
