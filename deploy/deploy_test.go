// Package deploy_test checks the Kubernetes manifests in deploy/: every
// file decodes strictly into the k8s.io/api types (an unknown or misspelt
// field fails), the overlays rendered by the real kustomize have the
// properties the installer needs, and what each DaemonSet's container runs
// (entrypoint, args, MACGUARD_* environment, readiness probe) is executed
// against a fake node to show it installs and reports ready.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/macguard-cni/macguard/pkg/ctl/install"

	"github.com/macguard-cni/macguard/internal/testutil"
)

const imageRepo = "ghcr.io/macguard-cni/macguard"

// The NetworkAttachmentDefinition CRD (k8s.cni.cncf.io/v1), which is not in
// k8s.io/api.
type nad struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Config string `json:"config"`
	} `json:"spec"`
}

// kustomization is the subset of kustomize's Kustomization and Component
// this directory uses; decoding strictly into it catches typos that
// kustomize itself may accept silently.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources,omitempty"`
	Components []string `json:"components,omitempty"`
	Patches    []struct {
		Path string `json:"path"`
	} `json:"patches,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
}

// decodeStrict converts one YAML document to JSON (refusing duplicate
// keys) and decodes it into v, refusing unknown fields.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

// splitDocs splits a YAML stream on "---" lines and drops empty documents.
func splitDocs(data []byte) [][]byte {
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")) != "" {
			out = append(out, []byte(d))
		}
	}
	return out
}

// patchDelete is the directive line of a strategic-merge patch that
// deletes the object.
var patchDelete = regexp.MustCompile(`(?m)^\$patch: delete\s*$`)

// objects is every object of a manifest stream, decoded by kind.
type objects struct {
	namespaces []corev1.Namespace
	accounts   []corev1.ServiceAccount
	daemonSets []appsv1.DaemonSet
	pods       []corev1.Pod
	nads       []nad
	roles      []rbacv1.ClusterRole
	bindings   []rbacv1.ClusterRoleBinding
	webhook    webhookObjects
}

// count is how many objects there are, of every kind.
func (o objects) count() int {
	return len(o.namespaces) + len(o.accounts) + len(o.daemonSets) + len(o.pods) + len(o.nads) + len(o.roles) + len(o.bindings) + o.webhook.count()
}

func decodeAll(t *testing.T, name string, data []byte) objects {
	t.Helper()
	var o objects
	for i, doc := range splitDocs(data) {
		// A kustomize patch that deletes an object names it and nothing else.
		doc = patchDelete.ReplaceAll(doc, nil)
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s doc %d: %v", name, i, err)
		}
		var err error
		switch tm.APIVersion + "/" + tm.Kind {
		case "v1/Namespace":
			var x corev1.Namespace
			err = decodeStrict(doc, &x)
			o.namespaces = append(o.namespaces, x)
		case "v1/ServiceAccount":
			var x corev1.ServiceAccount
			err = decodeStrict(doc, &x)
			o.accounts = append(o.accounts, x)
		case "apps/v1/DaemonSet":
			var x appsv1.DaemonSet
			err = decodeStrict(doc, &x)
			o.daemonSets = append(o.daemonSets, x)
		case "v1/Pod":
			var x corev1.Pod
			err = decodeStrict(doc, &x)
			o.pods = append(o.pods, x)
		case "rbac.authorization.k8s.io/v1/ClusterRole":
			var x rbacv1.ClusterRole
			err = decodeStrict(doc, &x)
			o.roles = append(o.roles, x)
		case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
			var x rbacv1.ClusterRoleBinding
			err = decodeStrict(doc, &x)
			o.bindings = append(o.bindings, x)
		case "k8s.cni.cncf.io/v1/NetworkAttachmentDefinition":
			var x nad
			err = decodeStrict(doc, &x)
			o.nads = append(o.nads, x)
		default:
			var ok bool
			if ok, err = o.webhook.decode(tm, doc); !ok {
				err = fmt.Errorf("unexpected object %s %s", tm.APIVersion, tm.Kind)
			}
		}
		if err != nil {
			t.Errorf("%s doc %d (%s): %v", name, i, tm.Kind, err)
		}
	}
	return o
}

// manifestFiles are all YAML files under deploy/.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		// The chart's files are templates and values, checked by helm_test.go.
		if err == nil && d.IsDir() && p == "helm" {
			return filepath.SkipDir
		}
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestEveryFileDecodesStrictly(t *testing.T) {
	files := manifestFiles(t)
	if len(files) < 10 {
		t.Fatalf("found only %d manifests: %v", len(files), files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(f) == "kustomization.yaml" {
				var k kustomization
				if err := decodeStrict(data, &k); err != nil {
					t.Fatal(err)
				}
				for _, p := range k.Patches {
					if _, err := os.Stat(filepath.Join(filepath.Dir(f), p.Path)); err != nil {
						t.Errorf("patch %s: %v", p.Path, err)
					}
				}
				return
			}
			o := decodeAll(t, f, data)
			if o.count() == 0 {
				t.Error("no object in the file")
			}
		})
	}
}

// TestImageTagIsTheMakefileVersion checks every place deploy/ names the
// image: `make manifests` writes the Makefile's VERSION into them.
func TestImageTagIsTheMakefileVersion(t *testing.T) {
	v := testutil.MakefileVersion(t)
	data, err := os.ReadFile("base/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := decodeStrict(data, &k); err != nil {
		t.Fatal(err)
	}
	if len(k.Images) != 1 || k.Images[0].Name != imageRepo || k.Images[0].NewTag != v || k.Images[0].NewName != "" {
		t.Errorf("base/kustomization.yaml images %+v, want %s with newTag %s (run `make manifests`)", k.Images, imageRepo, v)
	}
	for _, f := range manifestFiles(t) {
		data, _ := os.ReadFile(f)
		for _, m := range regexp.MustCompile(`image:\s*(\S*macguard\S*)`).FindAllSubmatch(data, -1) {
			if string(m[1]) != imageRepo+":"+v {
				t.Errorf("%s: image %s, want %s:%s (run `make manifests`)", f, m[1], imageRepo, v)
			}
		}
	}
}

// kustomize returns the kustomize binary `make test-deploy` installs.
func kustomize(t *testing.T) string {
	t.Helper()
	k := os.Getenv("KUSTOMIZE")
	if k == "" {
		t.Fatal("KUSTOMIZE is not set; run `make test-deploy`, which installs kustomize and sets it")
	}
	return k
}

func render(t *testing.T, dir string) objects {
	t.Helper()
	return decodeAll(t, "kustomize build "+dir, kustomizeBuild(t, dir, dir))
}

// kustomizeBuild runs the real `kustomize build dir`; what names the
// kustomization in a failure.
func kustomizeBuild(t *testing.T, dir, what string) []byte {
	t.Helper()
	cmd := exec.Command(kustomize(t), "build", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", what, err, stderr.String())
	}
	return out
}

// kustomizeWith builds, with the real kustomize, a kustomization of
// resource plus components written in a scratch directory (paths relative
// to deploy/).
func kustomizeWith(t *testing.T, resource string, components ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	rel := func(p string) string {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := filepath.Rel(dir, abs)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + rel(resource) + "\n"
	if len(components) > 0 {
		k += "components:\n"
		for _, c := range components {
			k += "  - " + rel(c) + "\n"
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return kustomizeBuild(t, dir, fmt.Sprintf("%s %v", resource, components))
}

// variant is one way to deploy and what it must do.
type variant struct {
	dir       string
	uninstall bool
	// chainInto are the conflists (container paths) it works on.
	chainInto []string
	// fixtures are the agents' files placed on the fake node.
	fixtures []string
}

var variants = []variant{
	{dir: "overlays/secondary"},
	{dir: "overlays/cilium", chainInto: []string{"/host/etc/cni/net.d/05-cilium.conflist"}, fixtures: []string{"05-cilium.conflist"}},
	{dir: "overlays/calico", chainInto: []string{"/host/etc/cni/net.d/10-calico.conflist"}, fixtures: []string{"10-calico.conflist"}},
	{dir: "uninstall", uninstall: true,
		chainInto: []string{"/host/etc/cni/net.d/05-cilium.conflist", "/host/etc/cni/net.d/10-calico.conflist"},
		fixtures:  []string{"05-cilium.conflist"}},
}

func env(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			continue
		}
		m[e.Name] = e.Value
	}
	return m
}

// entrypoint is the ENTRYPOINT of the image `make image` built (the OCI
// layout `make test-deploy` names in MACGUARD_IMAGE_LAYOUT), the same on
// every platform, which the DaemonSet runs when it sets no command.
func entrypoint(t *testing.T) []string {
	t.Helper()
	dir := os.Getenv("MACGUARD_IMAGE_LAYOUT")
	if dir == "" {
		t.Fatal("MACGUARD_IMAGE_LAYOUT is not set; run `make test-deploy`, which builds the image first")
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("%s is not an OCI layout: %v", dir, err)
	}
	tm, err := top.IndexManifest()
	if err != nil || len(tm.Manifests) != 1 {
		t.Fatalf("%s: want one image index, got %v (%v)", dir, tm, err)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var ep []string
	for i, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && !slices.Equal(cf.Config.Entrypoint, ep) {
			t.Fatalf("%s: entrypoint %q on %v, %q on another platform", dir, cf.Config.Entrypoint, d.Platform, ep)
		}
		ep = cf.Config.Entrypoint
	}
	if len(ep) == 0 {
		t.Fatalf("%s: the image has no entrypoint", dir)
	}
	return ep
}

func TestRenderedVariants(t *testing.T) {
	version := testutil.MakefileVersion(t)
	for _, v := range variants {
		t.Run(v.dir, func(t *testing.T) {
			o := render(t, v.dir)
			if len(o.namespaces) != 1 || len(o.accounts) != 1 || len(o.daemonSets) != 1 || len(o.pods)+len(o.nads) != 0 {
				t.Fatalf("want one Namespace, ServiceAccount and DaemonSet, got %d, %d, %d (+%d other)",
					len(o.namespaces), len(o.accounts), len(o.daemonSets), len(o.pods)+len(o.nads))
			}
			ns, sa, ds := o.namespaces[0], o.accounts[0], o.daemonSets[0]
			spec := ds.Spec.Template.Spec
			if ds.Namespace != ns.Name || sa.Namespace != ns.Name || spec.ServiceAccountName != sa.Name {
				t.Errorf("namespace %q, DaemonSet in %q, account %s/%s, pod uses %q", ns.Name, ds.Namespace, sa.Namespace, sa.Name, spec.ServiceAccountName)
			}
			if ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
				t.Error("the namespace does not allow hostPath pods under Pod Security admission")
			}
			// No API access needed: no token in the pod.
			if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Error("the pod mounts a service account token")
			}

			// Every node.
			if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool {
				return tl.Operator == corev1.TolerationOpExists && tl.Key == "" && tl.Effect == "" && tl.TolerationSeconds == nil
			}) {
				t.Errorf("tolerations %+v do not tolerate every taint", spec.Tolerations)
			}
			if spec.Affinity != nil || spec.NodeName != "" || len(spec.NodeSelector) != 1 || spec.NodeSelector["kubernetes.io/os"] != "linux" {
				t.Errorf("node selection narrower than all Linux nodes: selector %v affinity %v", spec.NodeSelector, spec.Affinity)
			}
			if !spec.HostNetwork || spec.HostPID || spec.HostIPC {
				t.Errorf("hostNetwork %v (want true: the pod must not need the network it configures), hostPID %v, hostIPC %v", spec.HostNetwork, spec.HostPID, spec.HostIPC)
			}
			if len(spec.InitContainers) != 0 || len(spec.Containers) != 1 {
				t.Fatalf("%d init containers, %d containers; want 0 and 1", len(spec.InitContainers), len(spec.Containers))
			}
			c := spec.Containers[0]
			if c.Image != imageRepo+":"+version {
				t.Errorf("image %s, want %s:%s", c.Image, imageRepo, version)
			}

			// Least privilege.
			psc, sc := spec.SecurityContext, c.SecurityContext
			if sc == nil || psc == nil {
				t.Fatal("no securityContext")
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Error("privileged")
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Error("allowPrivilegeEscalation is not false")
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Error("root filesystem is not read-only")
			}
			if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
				t.Errorf("capabilities %+v, want drop [ALL] and nothing added", sc.Capabilities)
			}
			if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Error("no RuntimeDefault seccomp profile")
			}

			// Requests and limits for CPU and memory, limits above requests.
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, okR := c.Resources.Requests[r]
				lim, okL := c.Resources.Limits[r]
				if !okR || !okL || req.IsZero() || lim.Cmp(req) < 0 {
					t.Errorf("%s: request %v limit %v", r, req.String(), lim.String())
				}
			}
			if lim := c.Resources.Limits[corev1.ResourceMemory]; lim.Cmp(resource.MustParse("32Mi")) < 0 {
				t.Errorf("memory limit %s leaves no room to hash the binary", lim.String())
			}

			// What runs: the image's entrypoint or the overridden command.
			cmd := entrypoint(t)
			if len(c.Command) > 0 {
				cmd = c.Command
			}
			sub := "install"
			if v.uninstall {
				sub = "uninstall"
			}
			if !slices.Equal(cmd, []string{"/macguardctl", sub}) || !slices.Equal(c.Args, []string{"--watch"}) {
				t.Errorf("runs %q %q, want [/macguardctl %s] [--watch]", cmd, c.Args, sub)
			}
			if p := c.ReadinessProbe; p == nil || p.Exec == nil || !slices.Equal(p.Exec.Command, []string{"/macguardctl", sub, "--check"}) {
				t.Errorf("readiness probe %+v, want exec /macguardctl %s --check", c.ReadinessProbe, sub)
			}

			// hostPath mounts.
			mounts := map[string]string{} // host path -> container path
			for _, m := range c.VolumeMounts {
				for _, vol := range spec.Volumes {
					if vol.Name == m.Name && vol.HostPath != nil {
						if vol.HostPath.Type == nil || *vol.HostPath.Type != corev1.HostPathDirectoryOrCreate {
							t.Errorf("hostPath %s: type %v, want DirectoryOrCreate", vol.HostPath.Path, vol.HostPath.Type)
						}
						if m.ReadOnly {
							t.Errorf("hostPath %s is mounted read-only", vol.HostPath.Path)
						}
						mounts[vol.HostPath.Path] = m.MountPath
					}
				}
			}
			e := env(c)
			if mounts["/opt/cni/bin"] == "" || e["MACGUARD_CNI_BIN_DIR"] != mounts["/opt/cni/bin"] {
				t.Errorf("/opt/cni/bin mounted at %q, MACGUARD_CNI_BIN_DIR=%q", mounts["/opt/cni/bin"], e["MACGUARD_CNI_BIN_DIR"])
			}
			var chain []string
			if s := e["MACGUARD_CHAIN_INTO"]; s != "" {
				chain = strings.Split(s, ",")
			}
			if !slices.Equal(chain, v.chainInto) {
				t.Errorf("MACGUARD_CHAIN_INTO %q, want %q", chain, v.chainInto)
			}
			if len(chain) == 0 {
				if _, ok := mounts["/etc/cni/net.d"]; ok {
					t.Error("/etc/cni/net.d is mounted although nothing is chained")
				}
			}
			for _, f := range chain {
				if filepath.Dir(f) != mounts["/etc/cni/net.d"] {
					t.Errorf("%s is not in the /etc/cni/net.d mount (%q)", f, mounts["/etc/cni/net.d"])
				}
			}
			if pc, ok := e["MACGUARD_PLUGIN_CONFIG"]; ok {
				if v.uninstall {
					t.Error("MACGUARD_PLUGIN_CONFIG set for uninstall")
				} else if _, err := install.Entry(pc); err != nil {
					t.Errorf("MACGUARD_PLUGIN_CONFIG: %v", err)
				}
			}

			runOnFakeNode(t, v, c, cmd, spec.Volumes)
		})
	}
}

// runOnFakeNode does what the container does, once, on a fake node: host
// paths become directories under a temporary root, container paths in the
// environment are translated through the mounts, and the realistic
// conflists of the variant are in place. Then the readiness probe's command
// must succeed.
func runOnFakeNode(t *testing.T, v variant, c corev1.Container, cmd []string, vols []corev1.Volume) {
	t.Helper()
	root := t.TempDir()
	translate := map[string]string{} // container mount path -> fake host dir
	for _, m := range c.VolumeMounts {
		for _, vol := range vols {
			if vol.Name == m.Name && vol.HostPath != nil {
				dir := filepath.Join(root, vol.HostPath.Path)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				translate[m.MountPath] = dir
			}
		}
	}
	toHost := func(p string) string {
		for mount, dir := range translate {
			if p == mount || strings.HasPrefix(p, mount+"/") {
				return dir + strings.TrimPrefix(p, mount)
			}
		}
		return p
	}
	// The image's /macguard, the plugin macguardctl copies to the node:
	// the test binary has no macguard next to it.
	plugin := filepath.Join(root, "image", "macguard")
	if err := os.MkdirAll(filepath.Dir(plugin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plugin, []byte("#!/bin/false\nthe plugin\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MACGUARD_PLUGIN_BINARY", plugin)
	confDir := filepath.Join(root, "etc/cni/net.d")
	for _, f := range v.fixtures {
		b, err := os.ReadFile(filepath.Join("..", "cni-conf", "installer", f))
		if err != nil {
			t.Fatal(err)
		}
		if v.uninstall {
			// Uninstall starts from a node where macguard was chained.
			entry, _ := install.Entry("")
			b = chainForTest(t, b, entry)
		}
		if err := os.WriteFile(filepath.Join(confDir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, val := range env(c) {
		var parts []string
		for _, p := range strings.Split(val, ",") {
			parts = append(parts, toHost(p))
		}
		t.Setenv(name, strings.Join(parts, ","))
	}
	run := install.InstallMain
	if cmd[1] == "uninstall" {
		run = install.UninstallMain
	}
	// The container's args minus --watch: one pass instead of forever.
	args := slices.DeleteFunc(slices.Clone(c.Args), func(a string) bool { return a == "--watch" })
	var stderr bytes.Buffer
	if code := run(args, io.Discard, &stderr); code != 0 {
		t.Fatalf("%v %v exited %d:\n%s", cmd, args, code, stderr.String())
	}
	probe := c.ReadinessProbe.Exec.Command
	var out bytes.Buffer
	if code := run(probe[2:], &out, &stderr); code != 0 {
		t.Errorf("readiness probe %v exited %d:\n%s%s", probe, code, out.String(), stderr.String())
	}
	bin := filepath.Join(root, "opt/cni/bin/macguard")
	if _, err := os.Stat(bin); (err == nil) == v.uninstall {
		t.Errorf("%s exists: %v; want %v", bin, err == nil, !v.uninstall)
	}
	if b, err := os.ReadFile(bin); err == nil && !bytes.Equal(b, []byte("#!/bin/false\nthe plugin\n")) {
		t.Errorf("%s is not the plugin the installer was given", bin)
	}
	for _, f := range v.fixtures {
		b, err := os.ReadFile(filepath.Join(confDir, f))
		if err != nil {
			t.Fatal(err)
		}
		list, err := libcni.ConfListFromBytes(b)
		if err != nil {
			t.Fatalf("%s after the run: %v", f, err)
		}
		last := list.Plugins[len(list.Plugins)-1].Network.Type
		if (last == install.PluginType) == v.uninstall {
			t.Errorf("%s: last plugin %s after %s", f, last, cmd[1])
		}
	}
}

// chainForTest chains entry into a conflist with the installer's own CLI
// in a scratch directory, so uninstall starts from real installer output.
func chainForTest(t *testing.T, conflist []byte, entry json.RawMessage) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.conflist")
	if err := os.WriteFile(p, conflist, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := install.InstallMain([]string{"--chain-into", p, "--plugin-config", string(entry)}, io.Discard, &stderr); code != 0 {
		t.Fatalf("chaining for the uninstall test: %s", stderr.String())
	}
	b, _ := os.ReadFile(p)
	return b
}

// TestExampleAttachments checks the examples: every
// NetworkAttachmentDefinition is a symlink into cni-conf/ (shared, so the
// two can never say different things; cni-conf's own test loads them
// through libcni), each chains macguard after its main plugin with an entry
// the installer's validator accepts, and the example pod uses one of them.
func TestExampleAttachments(t *testing.T) {
	files, _ := filepath.Glob("examples/*.yaml")
	var all objects
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		o := decodeAll(t, f, data)
		if len(o.nads) > 0 {
			fi, err := os.Lstat(f)
			if err != nil {
				t.Fatal(err)
			}
			target, err := filepath.EvalSymlinks(f)
			cniConf, _ := filepath.Abs("../cni-conf")
			abs, _ := filepath.Abs(target)
			if fi.Mode()&os.ModeSymlink == 0 || err != nil || !strings.HasPrefix(abs, cniConf+string(filepath.Separator)) {
				t.Errorf("%s defines a NetworkAttachmentDefinition but is not a symlink into cni-conf/ (%v); share the example, do not copy it", f, err)
			}
		}
		all.nads = append(all.nads, o.nads...)
		all.pods = append(all.pods, o.pods...)
	}
	if len(all.nads) == 0 || len(all.pods) == 0 {
		t.Fatalf("%d NetworkAttachmentDefinitions and %d pods in examples/, want at least one of each", len(all.nads), len(all.pods))
	}
	names := map[string]bool{}
	for _, n := range all.nads {
		names[n.Name] = true
		list, err := libcni.ConfListFromBytes([]byte(n.Spec.Config))
		if err != nil {
			t.Errorf("%s: spec.config: %v", n.Name, err)
			continue
		}
		found := 0
		for _, p := range list.Plugins {
			if p.Network.Type != install.PluginType {
				continue
			}
			found++
			if _, err := install.Entry(string(p.Bytes)); err != nil {
				t.Errorf("%s: macguard entry: %v", n.Name, err)
			}
		}
		if found != 1 || list.Plugins[0].Network.Type == install.PluginType {
			t.Errorf("%s: %d macguard entries (want 1, after the main plugin)", n.Name, found)
		}
	}
	for _, p := range all.pods {
		sel := p.Annotations["k8s.v1.cni.cncf.io/networks"]
		var elems []struct{ Name, Interface, MAC string }
		if err := json.Unmarshal([]byte(sel), &elems); err != nil || len(elems) == 0 {
			t.Errorf("pod %s: networks annotation %q: %v", p.Name, sel, err)
			continue
		}
		for _, e := range elems {
			if !names[e.Name] {
				t.Errorf("pod %s uses network %q, which no example defines", p.Name, e.Name)
			}
		}
	}
}
