package k8s

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// overlay writes a kustomization over deploy/<base> that changes only what
// the test node needs: the hostPath directories (the node's CNI dirs are
// under .cache/k8s/run, not /opt/cni and /etc/cni), the image reference
// (the one `make image` built and k8s-up imported) and the pull policy
// (the node reaches no registry). It returns the overlay's directory.
func (n *node) overlay(t *testing.T, name, base string) string {
	t.Helper()
	return n.writeOverlay(t, name, func(rel func(string) string) string {
		k := n.imageKustomization(t, rel, base) + fmt.Sprintf(`            volumes:
              - name: cni-bin
                hostPath:
                  path: %s
`, n.env["CNI_BIN_DIR"])
		if base != "overlays/secondary" && base != "base" {
			k += fmt.Sprintf(`              - name: cni-conf
                hostPath:
                  path: %s
`, n.env["CNI_CONF_DIR"])
		}
		return k
	})
}

// imageKustomization is the start of every test overlay over deploy/<base>:
// the image `make image` built and k8s-up imported, never pulled (the node
// reaches no registry), and the install container's patch open for the
// caller's volumes.
func (n *node) imageKustomization(t *testing.T, rel func(string) string, base string) string {
	t.Helper()
	repo, tag, ok := strings.Cut(n.env["MACGUARD_IMAGE"], ":")
	if !ok {
		t.Fatalf("MACGUARD_IMAGE %q has no tag", n.env["MACGUARD_IMAGE"])
	}
	return fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
images:
  - name: ghcr.io/macguard-cni/macguard
    newName: %s
    newTag: %s
`+installPatch+`                imagePullPolicy: Never
`, rel(filepath.Join(n.repo, "deploy", base)), repo, tag)
}

// rollout applies an overlay and waits until the DaemonSet's pod on the
// node is updated and Ready.
func (n *node) rollout(t *testing.T, dir string) *corev1.Pod {
	t.Helper()
	n.kubectl(t, "", "apply", "-k", dir)
	out, err := n.kubectlErr("", "-n", "macguard", "rollout", "status", "ds/macguard", "--timeout", "150s")
	if err != nil {
		t.Fatalf("the DaemonSet did not roll out: %v\n%s\nevents:\n%s", err, out, n.kubectl(t, "", "-n", "macguard", "get", "events"))
	}
	pods, err := n.cs.CoreV1().Pods("macguard").List(ctx(t), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=macguard"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp == nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready {
			return p
		}
	}
	t.Fatalf("no Ready macguard pod after the rollout: %+v", pods.Items)
	return nil
}

// imageFile reads one file of the linux/amd64 image in the oci-archive
// `make image` wrote: what the DaemonSet's container really holds.
func imageFile(t *testing.T, archive, name string) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := untar(archive, dir); err != nil {
		t.Fatalf("unpacking %s: %v", archive, err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("%s is not an OCI layout: %v", archive, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	img, err := findImage(top, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatalf("%s: %v", archive, err)
	}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s in the linux/amd64 image: %v", archive, name, err)
		}
		if strings.TrimPrefix(h.Name, "/") == strings.TrimPrefix(name, "/") {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// findImage walks nested indexes to the image of platform.
func findImage(idx v1.ImageIndex, platform v1.Platform) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			if img, err := findImage(child, platform); err == nil {
				return img, nil
			}
		case d.MediaType.IsImage() && d.Platform != nil && d.Platform.OS == platform.OS && d.Platform.Architecture == platform.Architecture:
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no image for %s/%s", platform.OS, platform.Architecture)
}

func untar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return err
			}
		}
	}
}

// conflistPlugins returns the plugin types of a conflist and macguard's
// entry (nil if it has none).
func conflistPlugins(t *testing.T, path string) (types []string, macguard map[string]any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Plugins []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatalf("%s: %v: %s", path, err, data)
	}
	for _, p := range l.Plugins {
		ty, _ := p["type"].(string)
		types = append(types, ty)
		if ty == "macguard" {
			macguard = p
		}
	}
	return types, macguard
}

// rewriteLikeAnAgent writes the primary conflist without macguard the way
// calico-node's install-cni (and cilium-agent) do: a complete new file
// renamed over the old one.
func rewriteLikeAnAgent(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var l map[string]any
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	var kept []any
	for _, p := range l["plugins"].([]any) {
		if p.(map[string]any)["type"] != "macguard" {
			kept = append(kept, p)
		}
	}
	l["plugins"] = kept
	out, _ := json.MarshalIndent(l, "", "  ")
	tmp := path + ".agent-tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// testDaemonSet installs macguard the way a user does: deploy/overlays/calico
// (the stand-in primary conflist has Calico's file name) through the test
// overlay, and checks what the node got.
func testDaemonSet(t *testing.T, n *node) {
	dir := n.overlay(t, "calico", "overlays/calico")
	// A DaemonSet left by an earlier run on this node would keep its pod
	// (and that pod its image): start from none.
	n.kubectl(t, "", "delete", "--ignore-not-found", "--wait", "--timeout", "120s", "-k", dir)
	pod := n.rollout(t, dir)

	t.Run("SecurityContextAsShipped", func(t *testing.T) {
		c := pod.Spec.Containers[0]
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Fatal("no securityContext")
		case sc.Privileged == nil || *sc.Privileged:
			t.Error("privileged is not false")
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Error("readOnlyRootFilesystem is not true")
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Error("allowPrivilegeEscalation is not false")
		case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0:
			t.Errorf("capabilities %+v, want drop [ALL]", sc.Capabilities)
		}
		if c.Image != n.env["MACGUARD_IMAGE"] || c.ImagePullPolicy != corev1.PullNever {
			t.Errorf("image %s (%s), want %s (Never)", c.Image, c.ImagePullPolicy, n.env["MACGUARD_IMAGE"])
		}
		if !pod.Spec.HostNetwork || pod.Spec.PriorityClassName != "system-node-critical" {
			t.Errorf("hostNetwork %v priorityClassName %q: the shipped spec changed", pod.Spec.HostNetwork, pod.Spec.PriorityClassName)
		}
	})

	t.Run("BinaryByteIdentical", func(t *testing.T) {
		want := imageFile(t, n.env["MACGUARD_IMAGE_ARCHIVE"], "/macguard")
		got, err := os.ReadFile(filepath.Join(n.env["CNI_BIN_DIR"], "macguard"))
		if err != nil {
			t.Fatalf("the CNI bin dir has no macguard: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s/macguard (%d bytes) is not the image's /macguard (%d bytes)", n.env["CNI_BIN_DIR"], len(got), len(want))
		}
	})

	t.Run("ChainedAndReAdded", func(t *testing.T) {
		primary := n.env["PRIMARY_CONFLIST"]
		check := func() error {
			types, mg := conflistPlugins(t, primary)
			if mg == nil {
				return fmt.Errorf("no macguard entry in %s: %v", primary, types)
			}
			if types[len(types)-1] != "macguard" || types[0] != "bridge" {
				return fmt.Errorf("plugins %v, want bridge first and macguard last", types)
			}
			return nil
		}
		if err := eventually(30*time.Second, check); err != nil {
			t.Fatal(err)
		}
		_, mg := conflistPlugins(t, primary)
		if mg["onUnsupported"] != "skip" {
			t.Errorf("macguard entry %v: not the calico overlay's (onUnsupported skip)", mg)
		}
		rewriteLikeAnAgent(t, primary)
		start := time.Now()
		if err := eventually(60*time.Second, check); err != nil {
			t.Fatalf("after the primary conflist was rewritten without macguard: %v", err)
		}
		t.Logf("entry back %v after the rewrite", time.Since(start).Round(time.Millisecond))
	})
}

// testUninstall applies deploy/uninstall the way the docs say, and checks
// that a pod created with macguard in its chain still deletes cleanly.
func testUninstall(t *testing.T, n *node) {
	links := nodeLinks(t)
	n.applyNAD(t, hostDeviceNAD(t, n, "host-device-mac", true))
	const mac = "0a:58:c0:a8:36:0a"
	p := n.podSpec("default", "before-uninstall", selection("default", "host-device-mac", mac))
	n.createPod(t, p)
	p = n.runningPod(t, p.Namespace, p.Name)
	sb := n.sandboxOf(t, p)
	if got := podMAC(t, sb, "net1"); got != mac {
		t.Fatalf("net1 has %s before the uninstall, want %s", got, mac)
	}
	if rs := n.recordsOf(t, sb.ID); len(rs) != 1 {
		t.Fatalf("records of %s: %+v, want one (net1)", sb.ID, rs)
	}

	dir := n.overlay(t, "uninstall", "uninstall")
	n.rollout(t, dir)
	t.Cleanup(func() {
		if _, err := n.kubectlErr("", "delete", "--ignore-not-found", "--wait", "-k", dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	primary := n.env["PRIMARY_CONFLIST"]
	err := eventually(30*time.Second, func() error {
		if types, mg := conflistPlugins(t, primary); mg != nil {
			return fmt.Errorf("%s still has macguard: %v", primary, types)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(n.env["CNI_BIN_DIR"], "macguard")); err != nil {
		t.Errorf("the binary must stay for the DEL of pods created with it: %v", err)
	}

	n.deletePod(t, p.Namespace, p.Name)
	if rs := n.recordsOf(t, sb.ID); len(rs) != 0 {
		t.Errorf("records left after the DEL: %+v", rs)
	}
	after := nodeLinks(t)
	if after["eth2"] != links["eth2"] {
		t.Errorf("eth2 back on the node with %q, had %q", after["eth2"], links["eth2"])
	}
	if evs := n.eventText(p.Namespace, p.Name); strings.Contains(evs, "Failed") {
		t.Errorf("the pod's deletion left failure events:\n%s", evs)
	}
}
