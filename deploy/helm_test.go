package deploy_test

// The Helm chart in helm/macguard and the kustomize variants describe the
// same installation. They are kept apart (neither is generated from the
// other) because each is what its users read: kustomize users apply plain
// YAML they can patch, Helm users read values and templates; a generator
// would make one of them unreadable output. Instead TestChartMatchesKustomize
// renders both with the same settings, with each pinned Helm build, and
// compares the objects, so that they cannot drift apart.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/macguard-cni/macguard/pkg/ctl/install"

	"github.com/macguard-cni/macguard/internal/testutil"
)

const chartDir = "helm/macguard"

// kubeVersion is what the chart is rendered for: the test node's
// Kubernetes (hack/mk/k8s.mk).
const kubeVersion = "v1.34.2"

// helmLabels are the labels the chart adds to every object's metadata and
// the kustomize variants do not have: Helm's bookkeeping.
var helmLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"}

// helms are the pinned Helm builds `make test-deploy` passes, by name.
func helms(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, v := range []string{"HELM3", "HELM4"} {
		p := os.Getenv(v)
		if p == "" {
			t.Fatalf("%s is not set; run `make test-deploy`, which builds Helm 3 and 4 and sets HELM3 and HELM4", v)
		}
		m[v] = p
	}
	return m
}

// helmTemplate renders the chart as release "macguard" in namespace
// macguard and returns stdout, or the error with stderr.
func helmTemplate(helm string, args ...string) ([]byte, error) {
	cmd := exec.Command(helm, append([]string{"template", "macguard", chartDir, "--namespace", "macguard", "--kube-version", kubeVersion}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm template %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// normalized decodes a manifest stream into its objects keyed by
// "Kind namespace/name", with Helm's labels dropped (and a labels map left
// empty by that), every JSON-valued MACGUARD_PLUGIN_CONFIG re-encoded
// canonically (its key order means nothing) and keyed lists (env,
// volumes, volumeMounts, containers: their items have a "name") sorted,
// since Kubernetes merges them by key.
func normalized(t *testing.T, what string, stream []byte) map[string]any {
	t.Helper()
	objs := map[string]any{}
	for i, doc := range splitDocs(stream) {
		var o map[string]any
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatalf("%s doc %d: %v", what, i, err)
		}
		if o == nil {
			continue
		}
		md, _ := o["metadata"].(map[string]any)
		if labels, ok := md["labels"].(map[string]any); ok {
			for _, l := range helmLabels {
				delete(labels, l)
			}
			// Objects that have only Helm's labels (cert-manager's).
			if len(labels) == 0 {
				delete(md, "labels")
			}
		}
		key := fmt.Sprintf("%v %v/%v", o["kind"], md["namespace"], md["name"])
		if _, dup := objs[key]; dup {
			t.Fatalf("%s: %s twice", what, key)
		}
		objs[key] = canonical(o)
	}
	return objs
}

func canonical(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = canonical(e)
		}
		if x["name"] == "MACGUARD_PLUGIN_CONFIG" {
			if s, ok := x["value"].(string); ok {
				var j any
				if json.Unmarshal([]byte(s), &j) == nil {
					b, _ := json.Marshal(j)
					x["value"] = string(b)
				}
			}
		}
		return x
	case []any:
		keyed := len(x) > 0
		for i, e := range x {
			x[i] = canonical(e)
			m, ok := x[i].(map[string]any)
			keyed = keyed && ok && m["name"] != nil
		}
		if keyed {
			sort.SliceStable(x, func(i, j int) bool {
				a, _ := json.Marshal(x[i])
				b, _ := json.Marshal(x[j])
				return string(a) < string(b)
			})
		}
		return x
	}
	return v
}

// differences lists the paths at which a and b differ.
func differences(path string, a, b any) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		var out []string
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			out = append(out, differences(path+"."+k, am[k], bm[k])...)
		}
		return out
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		var out []string
		for i := range al {
			out = append(out, differences(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i])...)
		}
		return out
	}
	if reflect.DeepEqual(a, b) {
		return nil
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return []string{fmt.Sprintf("%s: chart %s, kustomize %s", path, ja, jb)}
}

// pairs are the chart's example values (helm/macguard/ci) and the
// kustomize variant each must render the same as.
var pairs = []struct {
	values     string
	resource   string
	components []string
}{
	{"secondary-values.yaml", "overlays/secondary", nil},
	{"cilium-values.yaml", "overlays/cilium", nil},
	{"calico-values.yaml", "overlays/calico", nil},
	{"uninstall-values.yaml", "uninstall", nil},
	{"doctor-values.yaml", "overlays/secondary", []string{"components/doctor"}},
	{"webhook-values.yaml", "overlays/cilium", []string{webhookComponent}},
	{"webhook-cert-manager-values.yaml", "overlays/secondary", []string{webhookComponent, certManagerComponent}},
}

// TestChartMatchesKustomize: for every kustomize variant, the chart with
// its example values renders the same objects but the namespace, with
// Helm 3 and with Helm 4.
func TestChartMatchesKustomize(t *testing.T) {
	hs := helms(t)
	for _, p := range pairs {
		want := normalized(t, "kustomize "+p.resource, kustomizeWith(t, p.resource, p.components...))
		for name, helm := range hs {
			t.Run(name+"/"+p.values, func(t *testing.T) {
				out, err := helmTemplate(helm, "--skip-tests", "-f", filepath.Join(chartDir, "ci", p.values))
				if err != nil {
					t.Fatal(err)
				}
				got := normalized(t, "chart", out)
				// The one difference: Helm creates the release namespace
				// (helm install --create-namespace) and keeps its own record
				// in it, so the chart cannot hold it.
				want := maps.Clone(want)
				delete(want, "Namespace <nil>/macguard")
				for k := range want {
					if _, ok := got[k]; !ok {
						t.Errorf("the chart renders no %s", k)
					}
				}
				for k, g := range got {
					w, ok := want[k]
					if !ok {
						t.Errorf("the chart renders %s, which kustomize %s does not have", k, p.resource)
						continue
					}
					for _, d := range differences(k, g, w) {
						t.Error(d)
					}
				}
			})
		}
	}
	// Every example is compared, or says why not.
	examples, _ := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	compared := map[string]bool{"options-values.yaml": true} // checked by TestChartOptions: no kustomize twin
	for _, p := range pairs {
		compared[p.values] = true
	}
	for _, e := range examples {
		if !compared[filepath.Base(e)] {
			t.Errorf("%s is compared with no kustomize variant", e)
		}
	}
}

// TestChartOptions renders the example with every option of the macguard
// entry: the entry the DaemonSet and the test pod get is one the
// installer's validator (the plugin's own parser) accepts, with the values
// as given, and the objects decode strictly into the Kubernetes types.
func TestChartOptions(t *testing.T) {
	for name, helm := range helms(t) {
		t.Run(name, func(t *testing.T) {
			out, err := helmTemplate(helm, "-f", filepath.Join(chartDir, "ci", "options-values.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			o := decodeAll(t, "chart", out)
			if len(o.daemonSets) != 1 || len(o.pods) != 1 || len(o.namespaces) != 0 {
				t.Fatalf("%d DaemonSets, %d pods (the test), %d namespaces; want 1, 1, 0", len(o.daemonSets), len(o.pods), len(o.namespaces))
			}
			ds, test := o.daemonSets[0], o.pods[0]
			if test.Annotations["helm.sh/hook"] != "test" {
				t.Errorf("the pod is not a test hook: %v", test.Annotations)
			}
			c := ds.Spec.Template.Spec.Containers[0]
			if want := imageRepo + ":" + testutil.MakefileVersion(t) + "@sha256:" + strings.Repeat("0", 64); c.Image != want {
				t.Errorf("image %s, want %s", c.Image, want)
			}
			for _, ctr := range []struct {
				what string
				env  map[string]string
			}{{"DaemonSet", env(c)}, {"test pod", env(test.Spec.Containers[0])}} {
				e := ctr.env
				if e["MACGUARD_CHAIN_INTO"] != "/host/etc/cni/net.d/10-flannel.conflist" || e["MACGUARD_CONVERT_CONF"] != "true" || e["MACGUARD_RESYNC"] != "30s" {
					t.Errorf("%s environment %v", ctr.what, e)
				}
				entry, err := install.Entry(e["MACGUARD_PLUGIN_CONFIG"])
				if err != nil {
					t.Fatalf("%s: MACGUARD_PLUGIN_CONFIG: %v", ctr.what, err)
				}
				var got map[string]any
				if err := json.Unmarshal(entry, &got); err != nil {
					t.Fatal(err)
				}
				want := map[string]any{"type": "macguard", "assign": "always", "identity": "pod", "salt": "cluster-a", "prefix": "0a:58",
					"onUnsupported": "fail", "announce": true, "dataDir": "/run/cni/macguard", "logFile": "/var/log/macguard.log",
					"logLevel": "debug", "capabilities": map[string]any{"mac": true}}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: entry %v, want %v", ctr.what, got, want)
				}
			}
			if env(c)["GOMAXPROCS"] != "1" || ds.Spec.Template.Annotations["example.com/owner"] != "network-team" {
				t.Errorf("extraEnv or podAnnotations not rendered: %v %v", env(c), ds.Spec.Template.Annotations)
			}
		})
	}
}

// TestChartRefusesBadValues: a misspelt key, a wrong type or a value out
// of range fails rendering with a message naming the value, before
// anything is rendered.
func TestChartRefusesBadValues(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // substrings of the error, any Helm
	}{
		{"unknown top-level key", []string{"--set", "chainng.target=cilium"}, []string{"chainng"}},
		{"unknown nested key", []string{"--set", "chaining.targt=cilium"}, []string{"targt"}},
		{"unknown plugin option", []string{"--set", "chaining.plugin.onUnsupport=skip"}, []string{"onUnsupport"}},
		{"wrong type", []string{"--set", "doctor.enabled=yes"}, []string{"doctor", "enabled", "boolean"}},
		{"wrong type for a path", []string{"--set", "cni.binPath=5"}, []string{"binPath", "string"}},
		{"out of the enum", []string{"--set", "chaining.target=flannel"}, []string{"target", "flannel"}},
		{"plugin enum", []string{"--set", "chaining.plugin.assign=sometimes"}, []string{"assign"}},
		{"relative path", []string{"--set", "cni.confPath=etc/cni"}, []string{"confPath"}},
		{"custom without a conflist", []string{"--set", "chaining.target=custom"}, []string{"chaining.conflist", "custom"}},
		{"unknown webhook key", []string{"--set", "webhook.replica=3"}, []string{"replica"}},
		{"webhook failure policy", []string{"--set", "webhook.failurePolicy=ignore"}, []string{"failurePolicy"}},
		{"webhook certificates", []string{"--set", "webhook.certificates.source=vault"}, []string{"source", "vault"}},
		{"issuer without a name", []string{"--set", "webhook.certificates.certManager.issuerRef.kind=ClusterIssuer"}, []string{"issuerRef"}},
		{"webhook prefix", []string{"--set", "webhook.prefix=zz"}, []string{"prefix"}},
		{"webhook resources", []string{"--set", "webhook.resources.requests.cpus=1"}, []string{"cpus"}},
	}
	for name, helm := range helms(t) {
		for _, tc := range tests {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				_, err := helmTemplate(helm, tc.args...)
				if err == nil {
					t.Fatalf("helm template %v succeeded", tc.args)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("the error does not name %q:\n%v", w, err)
					}
				}
			})
		}
	}
}

// TestChartVersion: Chart.yaml carries the Makefile's VERSION, as the
// chart's SemVer (no "v") and as appVersion, the image tag.
func TestChartVersion(t *testing.T) {
	v := testutil.MakefileVersion(t)
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Version != strings.TrimPrefix(v, "v") || c.AppVersion != v {
		t.Errorf("Chart.yaml version %q appVersion %q, want %q and %q (run `make manifests`)", c.Version, c.AppVersion, strings.TrimPrefix(v, "v"), v)
	}
}

// TestChartWebhookOptions renders the webhook with every value changed
// from its default (the drift test covers the defaults): the flags, the
// webhook configuration and the certificate follow them, and the objects
// decode strictly into their types.
func TestChartWebhookOptions(t *testing.T) {
	for name, helm := range helms(t) {
		t.Run(name, func(t *testing.T) {
			out, err := helmTemplate(helm, "--skip-tests", "--set", "webhook.enabled=true", "--set", "webhook.replicas=1",
				"--set", "webhook.failurePolicy=Fail", "--set", "webhook.timeoutSeconds=10",
				"--set", "webhook.salt=cluster-a", "--set", "webhook.prefix=0a:58", "--set", "webhook.excludeNamespaces={kube-system,legacy}",
				"--set", "webhook.optOutLabel=example.com/no-macs", "--set", "webhook.extraArgs={--log-level=debug}",
				"--set", "webhook.priorityClassName=system-cluster-critical", "--set", "webhook.tolerations[0].operator=Exists",
				"--set", "webhook.certificates.source=certManager",
				"--set", "webhook.certificates.certManager.issuerRef.kind=ClusterIssuer", "--set", "webhook.certificates.certManager.issuerRef.name=corp-ca")
			if err != nil {
				t.Fatal(err)
			}
			w := decodeAll(t, "chart", out).webhook
			if len(w.deployments) != 1 || len(w.mwcs) != 1 || len(w.pdbs) != 0 || len(w.issuers) != 0 || len(w.certificates) != 1 || len(w.roles) != 0 {
				t.Fatalf("%d Deployments, %d webhook configurations, %d PDBs, %d Issuers, %d Certificates, %d Roles; want 1, 1, 0 (one replica), 0, 1 (from the given issuer), 0",
					len(w.deployments), len(w.mwcs), len(w.pdbs), len(w.issuers), len(w.certificates), len(w.roles))
			}
			spec := w.deployments[0].Spec.Template.Spec
			wantArgs := []string{"--listen=:8443", "--cert-dir=/tls", "--salt=cluster-a", "--prefix=0a:58", "--exclude-namespaces=kube-system,legacy", "--log-level=debug"}
			if args := spec.Containers[0].Args; !reflect.DeepEqual(args, wantArgs) {
				t.Errorf("args %q, want %q", args, wantArgs)
			}
			if *w.deployments[0].Spec.Replicas != 1 || spec.PriorityClassName != "system-cluster-critical" || len(spec.Tolerations) != 1 {
				t.Errorf("replicas %d, priorityClassName %q, tolerations %v", *w.deployments[0].Spec.Replicas, spec.PriorityClassName, spec.Tolerations)
			}
			if ref := w.certificates[0].Spec.IssuerRef; ref.Kind != "ClusterIssuer" || ref.Name != "corp-ca" {
				t.Errorf("the serving certificate's issuer %+v, want ClusterIssuer corp-ca", ref)
			}
			for _, h := range w.mwcs[0].Webhooks {
				if string(*h.FailurePolicy) != "Fail" || *h.TimeoutSeconds != 10 {
					t.Errorf("%s: failurePolicy %s, timeoutSeconds %d", h.Name, *h.FailurePolicy, *h.TimeoutSeconds)
				}
				sel, err := metav1.LabelSelectorAsSelector(h.NamespaceSelector)
				if err != nil {
					t.Fatal(err)
				}
				for ns, want := range map[string]bool{"default": true, "legacy": false, "kube-system": false, "optout": false} {
					l := labels.Set{"kubernetes.io/metadata.name": ns}
					if ns == "optout" {
						l["example.com/no-macs"] = "disabled"
					}
					if sel.Matches(l) != want {
						t.Errorf("%s: namespace %v selected %v, want %v", h.Name, l, !want, want)
					}
				}
			}
		})
	}
	// No namespace excluded: no empty NotIn (the API server refuses one),
	// and the webhook's own default is cleared too.
	out, err := helmTemplate(helms(t)["HELM4"], "--skip-tests", "--set", "webhook.enabled=true", "--set", "webhook.excludeNamespaces=null")
	if err != nil {
		t.Fatal(err)
	}
	w := decodeAll(t, "chart", out).webhook
	if args := w.deployments[0].Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--exclude-namespaces=") {
		t.Errorf("args %q lack an empty --exclude-namespaces=", args)
	}
	for _, h := range w.mwcs[0].Webhooks {
		if e := h.NamespaceSelector.MatchExpressions; len(e) != 1 || e[0].Key != "macguard.io/webhook" {
			t.Errorf("%s: namespaceSelector %+v, want only the opt-out label", h.Name, e)
		}
	}
}
