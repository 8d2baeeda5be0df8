package doctor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// unreachableKubeconfig is a kubeconfig for an API server nothing listens
// on (port 1 of the loopback refuses at once).
func unreachableKubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	const cfg = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:1
users:
- name: u
  user:
    token: t
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func noInCluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
}

// A cluster that does not answer leaves the node report standing, with a
// warning that names the error (exit 1), instead of discarding it.
func TestClusterUnavailableKeepsTheNodeReport(t *testing.T) {
	noInCluster(t)
	t.Setenv("KUBECONFIG", "")
	w := healthyWorld()
	w.Netns[0].Interfaces[1].MAC = "01:00:5e:00:00:01" // a node finding that must survive
	w.Cache[0].Result, w.Records = nil, nil
	if err := gatherClusterInto(w, unreachableKubeconfig(t), "node-1"); err != nil {
		t.Fatalf("gatherClusterInto: %v, want the failure kept in the world", err)
	}
	if w.Cluster != nil || !strings.Contains(w.ClusterErr, "127.0.0.1:1") {
		t.Fatalf("cluster %+v, err %q: want the error naming the API server", w.Cluster, w.ClusterErr)
	}
	r := Analyze(w)
	got := codes(r, true)
	want := []codeAt{{Warning, "cluster-unavailable", "", ""}, {Error, "mac-multicast", "default/web", "eth0"}}
	sortCodes(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}
}

// $KUBECONFIG is read when --kubeconfig is not given, as kubectl does.
func TestKubeconfigFromEnvironment(t *testing.T) {
	noInCluster(t)
	t.Setenv("KUBECONFIG", unreachableKubeconfig(t))
	w := healthyWorld()
	if err := gatherClusterInto(w, "", "node-1"); err != nil {
		t.Fatal(err)
	}
	if w.ClusterNotChecked != "" || !strings.Contains(w.ClusterErr, "127.0.0.1:1") {
		t.Errorf("not checked %q, err %q: $KUBECONFIG was not used", w.ClusterNotChecked, w.ClusterErr)
	}
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	if err := gatherClusterInto(healthyWorld(), "", "node-1"); err == nil || !strings.Contains(err.Error(), "$KUBECONFIG") {
		t.Errorf("a $KUBECONFIG that cannot be loaded: %v, want an error naming it", err)
	}
}

// Without any credentials the report says the cluster was not checked and
// how to have it checked; it stays healthy.
func TestNoCredentialsIsSaid(t *testing.T) {
	noInCluster(t)
	t.Setenv("KUBECONFIG", "")
	w := healthyWorld()
	if err := gatherClusterInto(w, "", "node-1"); err != nil {
		t.Fatal(err)
	}
	r := Analyze(w)
	if got, want := codes(r, true), []codeAt{{Info, "cluster-not-checked", "", ""}}; !reflect.DeepEqual(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}
	if r.Summary.Status != "healthy" || !strings.Contains(r.Findings[0].Remedy, "--kubeconfig") {
		t.Errorf("status %q, finding %+v", r.Summary.Status, r.Findings[0])
	}
}

// Could not look with --json: still one JSON object on stdout, with the
// error; a missing conf dir names the flag to pass.
func TestCannotLookJSON(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	var stdout, stderr strings.Builder
	code := Main([]string{"--json", "--no-cluster", "--node", "n1", "--conf-dir", missing}, &stdout, &stderr)
	if code != ExitCannot {
		t.Fatalf("exit code %d, want %d", code, ExitCannot)
	}
	var got CannotLook
	dec := json.NewDecoder(strings.NewReader(stdout.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("stdout %q is not the JSON of docs/doctor.md: %v", stdout.String(), err)
	}
	if got.SchemaVersion != SchemaVersion || got.Node != "n1" || got.Error == "" || !strings.Contains(stderr.String(), got.Error) {
		t.Errorf("got %+v, stderr %q", got, stderr.String())
	}
	if !isNotRoot() && !strings.Contains(got.Error, missing+" does not exist: pass --conf-dir") {
		t.Errorf("error %q does not say which flag to pass", got.Error)
	}
}

// A directory that must exist names the flag, and in a pod the component
// that mounts it.
func TestMissingDirSaysWhatToDo(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if got := missingDir("/opt/cni/bin", "--bin-dir").Error(); got != "/opt/cni/bin does not exist: pass --bin-dir with this node's directory" {
		t.Errorf("on a node: %q", got)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	if got := missingDir("/etc/cni/net.d", "--conf-dir").Error(); !strings.Contains(got, "pass --conf-dir") || !strings.Contains(got, "deploy/components/doctor") {
		t.Errorf("in a pod: %q", got)
	}
}
