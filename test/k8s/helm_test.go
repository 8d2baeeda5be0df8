package k8s

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// helmEnv is what make test-k8s hands the Helm scenarios: the two pinned
// Helm builds, the chart packaged for the node's image and the chart and
// image of another version to upgrade to.
type helmEnv struct {
	helm3, helm4 string
	// chart and image are the version under test (make chart, make image).
	chart, image, archive string
	// nextChart and nextImage were built with another VERSION.
	nextChart, nextImage, nextArchive string
	// home holds Helm's config, cache and data, and $HOME/.kube/cache,
	// under the node's run dir.
	home string
	// values is the values file every release on the node starts from.
	values string
}

func (n *node) helmSetup(t *testing.T) *helmEnv {
	t.Helper()
	get := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			t.Fatalf("%s is not set: run make test-k8s, which builds Helm, packages the charts and builds the upgrade image", k)
		}
		return v
	}
	h := &helmEnv{
		helm3: get("K8S_HELM3"), helm4: get("K8S_HELM4"),
		chart: get("MACGUARD_CHART"), image: n.env["MACGUARD_IMAGE"], archive: n.env["MACGUARD_IMAGE_ARCHIVE"],
		nextChart: get("MACGUARD_NEXT_CHART"), nextImage: get("MACGUARD_NEXT_IMAGE"), nextArchive: get("MACGUARD_NEXT_IMAGE_ARCHIVE"),
		home: filepath.Join(n.env["K8S_RUN"], "helm"),
	}
	if err := os.MkdirAll(h.home, 0o755); err != nil {
		t.Fatal(err)
	}
	// The upgrade's image, imported as k8s-up imports the first.
	if out, err := exec.Command("ctr", "--address", n.env["CONTAINERD_ADDRESS"], "-n", "k8s.io", "images", "import", h.nextArchive).CombinedOutput(); err != nil {
		t.Fatalf("importing %s: %v\n%s", h.nextArchive, err, out)
	}
	// The values a Cilium user writes (cni.binPath, cni.confPath, a
	// chaining target), pointed at this node's CNI directories and its
	// stand-in primary conflist. The image's tag comes from each chart's
	// appVersion, so the upgrade's chart brings its own image.
	repo, _, _ := strings.Cut(h.image, ":")
	h.values = filepath.Join(h.home, "node-values.yaml")
	v := fmt.Sprintf(`image:
  repository: %s
  pullPolicy: Never
cni:
  binPath: %s
  confPath: %s
chaining:
  target: cilium
  conflist: %s
`, repo, n.env["CNI_BIN_DIR"], n.env["CNI_CONF_DIR"], filepath.Base(n.env["PRIMARY_CONFLIST"]))
	if err := os.WriteFile(h.values, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// run runs a Helm build against the node and returns its combined output.
func (h *helmEnv) run(n *node, helm string, args ...string) (string, error) {
	cmd := exec.Command(helm, append(args, "--kubeconfig", n.env["KUBECONFIG"])...)
	cmd.Env = append(os.Environ(),
		"HOME="+h.home,
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(filepath.Dir(helm)), strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

func (h *helmEnv) must(t *testing.T, n *node, helm string, args ...string) string {
	t.Helper()
	start := time.Now()
	out, err := h.run(n, helm, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %s (%v)", filepath.Base(filepath.Dir(helm)), strings.Join(args[:min(2, len(args))], " "), time.Since(start).Round(100*time.Millisecond))
	return out
}

// clean removes every release this file installs and waits until the
// namespace is gone, so that each scenario starts from a node without
// macguard's DaemonSet.
func (h *helmEnv) clean(t *testing.T, n *node) {
	t.Helper()
	for _, rel := range []string{"macguard", "macguard-cleanup", "macguard-broken"} {
		if _, err := h.run(n, h.helm4, "uninstall", rel, "-n", "macguard", "--ignore-not-found", "--wait", "--timeout", "2m"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if _, err := n.kubectlErr("", "delete", "namespace", "macguard", "--ignore-not-found", "--wait", "--timeout", "120s"); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// sha is the hex SHA-256 of b.
func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// rolledOut waits until the DaemonSet's pods are all updated and Ready.
// Helm's --wait is not that: Helm 3 counts a DaemonSet ready once no more
// than maxUnavailable pods are unready (10% of one node rounds up to one).
func (n *node) rolledOut(t *testing.T) {
	t.Helper()
	if out, err := n.kubectlErr("", "-n", "macguard", "rollout", "status", "ds/macguard", "--timeout", "150s"); err != nil {
		t.Fatalf("the DaemonSet did not roll out: %v\n%s\nevents:\n%s", err, out, n.kubectl(t, "", "-n", "macguard", "get", "events"))
	}
}

// checkInstalled checks what a release with the node's values put on the
// node: a Ready DaemonSet pod running image, the image's plugin byte for
// byte, and exactly one macguard entry, last, in the primary conflist.
func (h *helmEnv) checkInstalled(t *testing.T, n *node, image, archive string) {
	t.Helper()
	n.rolledOut(t)
	pods, err := n.cs.CoreV1().Pods("macguard").List(ctx(t), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=macguard,app.kubernetes.io/component=installer"})
	if err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready {
			ready++
			if p.Spec.Containers[0].Image != image {
				t.Errorf("DaemonSet pod %s runs %s, want %s", p.Name, p.Spec.Containers[0].Image, image)
			}
		}
	}
	if ready != 1 {
		t.Errorf("%d Ready DaemonSet pods, want 1", ready)
	}
	want := imageFile(t, archive, "/macguard")
	got, err := os.ReadFile(filepath.Join(n.env["CNI_BIN_DIR"], "macguard"))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("the node's macguard (%d bytes, %v) is not %s's /macguard (%d bytes)", len(got), err, image, len(want))
	}
	err = eventually(30*time.Second, func() error {
		types, mg := conflistPlugins(t, n.env["PRIMARY_CONFLIST"])
		if mg == nil || !oneMacguardLast(types) {
			return fmt.Errorf("plugins %v, want one macguard entry, last", types)
		}
		if mg["onUnsupported"] != "skip" || fmt.Sprint(mg["capabilities"]) != "map[mac:true]" {
			return fmt.Errorf("entry %v is not the chart's default (onUnsupported skip, capabilities.mac)", mg)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestHelm installs macguard with the chart (deploy/helm/macguard) the way
// a user does, with Helm 3 and with Helm 4: install with Cilium-style
// values, helm test, an upgrade to another version's chart and image while
// pods start and run, an upgrade that changes an option of the entry, and
// the uninstall path; and helm test failing where macguard is missing.
func TestHelm(t *testing.T) {
	n := theNode
	h := n.helmSetup(t)
	// A kustomize-installed DaemonSet (TestCluster, TestDoctor) or an
	// earlier run's release must not be there.
	if _, err := n.kubectlErr("", "delete", "--ignore-not-found", "--wait", "--timeout", "120s", "-n", "macguard", "daemonset/macguard"); err != nil {
		t.Fatal(err)
	}
	// Nor the cluster-wide objects of a kustomize-installed webhook
	// (TestWebhook): Helm refuses to adopt objects it did not make.
	if _, err := n.kubectlErr("", "delete", "--ignore-not-found", "mutatingwebhookconfiguration/macguard-webhook",
		"clusterrole/macguard-webhook", "clusterrolebinding/macguard-webhook"); err != nil {
		t.Fatal(err)
	}
	h.clean(t, n)
	t.Cleanup(func() { h.clean(t, n) })

	t.Run("ServerDryRun", func(t *testing.T) { testHelmDryRun(t, n, h) })
	t.Run("Helm3", func(t *testing.T) { testHelm3(t, n, h) })
	t.Run("Helm4", func(t *testing.T) { testHelm4(t, n, h) })
	t.Run("Webhook", func(t *testing.T) {
		for _, helm := range []string{h.helm3, h.helm4} {
			t.Run(filepath.Base(filepath.Dir(helm)), func(t *testing.T) { testHelmWebhook(t, n, h, helm) })
		}
	})
	t.Run("TestFailsWithoutMacguard", func(t *testing.T) { testHelmTestFails(t, n, h) })
}

// testHelmDryRun renders the chart with every example values file of the
// repository and the node's own, with both Helm builds, and has the
// node's API server validate every object (kubectl apply
// --dry-run=server): field names and types, enums, the API server's
// defaulting and admission, without creating anything.
func testHelmDryRun(t *testing.T, n *node, h *helmEnv) {
	const ns = "macguard-dryrun"
	n.ensureNamespace(t, ns)
	t.Cleanup(func() {
		if _, err := n.kubectlErr("", "delete", "namespace", ns, "--ignore-not-found", "--wait=false"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	examples, err := filepath.Glob(filepath.Join(n.repo, "deploy", "helm", "macguard", "ci", "*-values.yaml"))
	if err != nil || len(examples) < 5 {
		t.Fatalf("example values files: %v %v", examples, err)
	}
	for _, helm := range []string{h.helm3, h.helm4} {
		for _, values := range append(examples, h.values) {
			name := filepath.Base(filepath.Dir(helm)) + "/" + filepath.Base(values)
			t.Run(name, func(t *testing.T) {
				manifest := h.must(t, n, helm, "template", "macguard", h.chart, "-n", ns, "-f", values)
				// The node has no cert-manager: its objects are checked by
				// make test-deploy only (strict decoding, the drift test).
				manifest, dropped := withoutAPIGroup(manifest, "cert-manager.io/")
				if strings.Contains(values, "cert-manager") != (dropped > 0) {
					t.Fatalf("%d cert-manager objects in the rendering of %s", dropped, values)
				}
				out, err := n.kubectlErr(manifest, "apply", "--dry-run=server", "-f", "-")
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out, "daemonset.apps/macguard created (server dry run)") || !strings.Contains(out, "pod/macguard-test created (server dry run)") {
					t.Errorf("the API server did not validate the DaemonSet and the test pod:\n%s", out)
				}
			})
		}
	}
}

// withoutAPIGroup drops the documents of a manifest stream whose
// apiVersion starts with group and says how many it dropped.
func withoutAPIGroup(manifest, group string) (string, int) {
	var kept []string
	dropped := 0
	for _, doc := range strings.Split(manifest, "\n---") {
		if strings.Contains(doc, "\napiVersion: "+group) || strings.HasPrefix(doc, "apiVersion: "+group) {
			dropped++
			continue
		}
		kept = append(kept, doc)
	}
	return strings.Join(kept, "\n---"), dropped
}

// testHelm3: Helm 3 installs the chart, helm test passes, and a plain
// helm uninstall removes the release, leaving what the NOTES say it leaves
// (the binary and the entry) on the node.
func testHelm3(t *testing.T, n *node, h *helmEnv) {
	h.must(t, n, h.helm3, "install", "macguard", h.chart, "-n", "macguard", "--create-namespace", "-f", h.values, "--wait", "--timeout", "3m")
	h.checkInstalled(t, n, h.image, h.archive)
	if out := h.must(t, n, h.helm3, "test", "macguard", "-n", "macguard", "--logs", "--timeout", "2m"); !strings.Contains(out, "Succeeded") {
		t.Errorf("helm test:\n%s", out)
	}
	h.must(t, n, h.helm3, "uninstall", "macguard", "-n", "macguard", "--wait", "--timeout", "2m")
	if _, mg := conflistPlugins(t, n.env["PRIMARY_CONFLIST"]); mg == nil {
		t.Error("a plain helm uninstall removed the entry; the NOTES say it stays (the uninstall mode removes it)")
	}
	if _, err := os.Stat(filepath.Join(n.env["CNI_BIN_DIR"], "macguard")); err != nil {
		t.Errorf("the binary is gone after a plain helm uninstall: %v", err)
	}
	h.clean(t, n)
}

// fileWatch samples a file until stopped and reports every content it
// saw, by SHA-256, and every inode.
type fileWatch struct {
	stop   chan struct{}
	done   chan struct{}
	seen   map[string]int
	inodes map[uint64]bool
	errs   []string
}

func watchFile(path string) *fileWatch {
	w := &fileWatch{stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]int{}, inodes: map[uint64]bool{}}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			f, err := os.Open(path)
			if err != nil {
				w.errs = append(w.errs, err.Error())
				continue
			}
			var st syscall.Stat_t
			if err := syscall.Fstat(int(f.Fd()), &st); err == nil {
				w.inodes[st.Ino] = true
			}
			var b bytes.Buffer
			_, err = b.ReadFrom(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				w.errs = append(w.errs, err.Error())
				continue
			}
			w.seen[sha(b.Bytes())]++
		}
	}()
	return w
}

func (w *fileWatch) end() { close(w.stop); <-w.done }

// testHelm4: Helm 4 installs, tests, upgrades to the next version while
// pods run and start, upgrades an option, and takes macguard out again.
func testHelm4(t *testing.T, n *node, h *helmEnv) {
	h.must(t, n, h.helm4, "install", "macguard", h.chart, "-n", "macguard", "--create-namespace", "-f", h.values, "--wait", "--timeout", "3m")
	h.checkInstalled(t, n, h.image, h.archive)
	if out := h.must(t, n, h.helm4, "test", "macguard", "-n", "macguard", "--logs", "--timeout", "2m"); !strings.Contains(out, "Succeeded") {
		t.Errorf("helm test:\n%s", out)
	}

	// Running pods: one on the primary network only, one with a requested
	// MAC on host-device (which macguard applies and records).
	n.applyNAD(t, hostDeviceNAD(t, n, "host-device-mac", true))
	const mac = "0a:58:c0:a8:37:0a"
	type running struct {
		pod     *corev1.Pod
		sb      sandbox
		eth0    string
		net1    string
		records int
	}
	before := map[string]*running{}
	for name, sel := range map[string]string{"helm-primary": "", "helm-hostdev": selection("default", "host-device-mac", mac)} {
		p := n.podSpec("default", name, sel)
		n.createPod(t, p)
		p = n.runningPod(t, "default", name)
		r := &running{pod: p, sb: n.sandboxOf(t, p)}
		r.eth0 = podMAC(t, r.sb, "eth0")
		if sel != "" {
			if r.net1 = podMAC(t, r.sb, "net1"); r.net1 != mac {
				t.Fatalf("%s: net1 has %s, requested %s", name, r.net1, mac)
			}
		}
		r.records = len(n.recordsOf(t, r.sb.ID))
		before[name] = r
	}

	t.Run("UpgradeWhilePodsRunAndStart", func(t *testing.T) {
		bin := filepath.Join(n.env["CNI_BIN_DIR"], "macguard")
		oldSum, newSum := sha(imageFile(t, h.archive, "/macguard")), sha(imageFile(t, h.nextArchive, "/macguard"))
		if oldSum == newSum {
			t.Fatal("the two images hold the same plugin binary: the upgrade would prove nothing")
		}
		w := watchFile(bin)
		// Pods created every 300 ms from before the upgrade until 3 s
		// after the DaemonSet rolled, so that their sandboxes are set up
		// before, while and after the binary is replaced.
		var mu sync.Mutex
		var started []string
		stop := make(chan struct{})
		creator := make(chan struct{})
		go func() {
			defer close(creator)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(300 * time.Millisecond):
				}
				p := n.podSpec("default", fmt.Sprintf("helm-roll-%d", i), "")
				if _, err := n.cs.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err == nil {
					mu.Lock()
					started = append(started, p.Name)
					mu.Unlock()
				}
			}
		}()
		time.Sleep(time.Second)
		out, err := h.run(n, h.helm4, "upgrade", "macguard", h.nextChart, "-n", "macguard", "-f", h.values, "--wait", "--timeout", "3m")
		if err == nil {
			_, err = n.kubectlErr("", "-n", "macguard", "rollout", "status", "ds/macguard", "--timeout", "150s")
		}
		time.Sleep(3 * time.Second)
		close(stop)
		<-creator
		w.end()
		for _, name := range started {
			t.Cleanup(func() {
				if err := n.deletePodErr("default", name); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			})
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("helm upgrade:\n%s", out)
		if len(started) < 10 {
			t.Errorf("only %d pods were created around the roll", len(started))
		}
		for _, name := range started {
			p := n.runningPod(t, "default", name)
			if evs := n.eventText("default", name); strings.Contains(evs, "Failed") {
				t.Errorf("pod %s started during the roll with failures:\n%s", name, evs)
			}
			sb := n.sandboxOf(t, p)
			if st := networkStatus(t, p, "eth0"); st.MAC != podMAC(t, sb, "eth0") {
				t.Errorf("pod %s: network-status %s, eth0 %s", name, st.MAC, podMAC(t, sb, "eth0"))
			}
		}
		h.checkInstalled(t, n, h.nextImage, h.nextArchive)
		// Atomic replacement: every read of the file during the roll was
		// one of the two binaries, whole, and the new one is a new inode
		// (written beside it and renamed over it), not the old one
		// rewritten in place.
		for sum, count := range w.seen {
			if sum != oldSum && sum != newSum {
				t.Errorf("read %d times a %s that was neither binary (sha256 %s): a torn write", count, bin, sum[:12])
			}
		}
		if w.seen[oldSum] == 0 || w.seen[newSum] == 0 || len(w.inodes) < 2 {
			t.Errorf("samples %v, inodes %v: want both binaries seen and the inode replaced", w.seen, w.inodes)
		}
		if len(w.errs) > 0 {
			t.Errorf("the binary could not be read during the roll: %v", w.errs)
		}
		t.Logf("%d pods started around the roll; binary samples %d old, %d new, %d inodes", len(started), w.seen[oldSum], w.seen[newSum], len(w.inodes))
		// The pods that ran through it kept their sandbox and MACs.
		for name, r := range before {
			p, err := n.cs.CoreV1().Pods("default").Get(ctx(t), name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if sb := n.sandboxOf(t, p); sb != r.sb || p.Status.ContainerStatuses[0].RestartCount != 0 {
				t.Errorf("%s: sandbox %+v (was %+v), restarts %d", name, sb, r.sb, p.Status.ContainerStatuses[0].RestartCount)
			}
			if got := podMAC(t, r.sb, "eth0"); got != r.eth0 {
				t.Errorf("%s: eth0 %s, had %s", name, got, r.eth0)
			}
			if r.net1 != "" {
				if got := podMAC(t, r.sb, "net1"); got != r.net1 {
					t.Errorf("%s: net1 %s, had %s", name, got, r.net1)
				}
			}
			if got := len(n.recordsOf(t, r.sb.ID)); got != r.records {
				t.Errorf("%s: %d records, had %d", name, got, r.records)
			}
		}
		if out := h.must(t, n, h.helm4, "test", "macguard", "-n", "macguard", "--logs", "--timeout", "2m"); !strings.Contains(out, "Succeeded") {
			t.Errorf("helm test after the upgrade:\n%s", out)
		}
	})

	t.Run("UpgradeChangesAnOption", func(t *testing.T) {
		h.must(t, n, h.helm4, "upgrade", "macguard", h.nextChart, "-n", "macguard", "--reuse-values", "--set", "chaining.plugin.logLevel=debug", "--wait", "--timeout", "3m")
		err := eventually(30*time.Second, func() error {
			types, mg := conflistPlugins(t, n.env["PRIMARY_CONFLIST"])
			if !oneMacguardLast(types) || mg["logLevel"] != "debug" || mg["onUnsupported"] != "skip" {
				return fmt.Errorf("plugins %v, entry %v: want one macguard entry, last, with logLevel debug and the other options kept", types, mg)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})

	t.Run("Uninstall", func(t *testing.T) {
		// The uninstall path of the NOTES: upgrade to uninstall mode, wait,
		// helm uninstall. The entries go; the binary stays while a pod
		// created with macguard exists.
		out := h.must(t, n, h.helm4, "upgrade", "macguard", h.nextChart, "-n", "macguard", "--reuse-values", "--set", "uninstall.enabled=true", "--wait", "--timeout", "3m")
		n.rolledOut(t)
		if !strings.Contains(out, "helm uninstall macguard") {
			t.Errorf("the uninstall mode's NOTES do not say what comes next:\n%s", out)
		}
		if types, mg := conflistPlugins(t, n.env["PRIMARY_CONFLIST"]); mg != nil {
			t.Errorf("the entry is still there in uninstall mode: %v", types)
		}
		h.must(t, n, h.helm4, "uninstall", "macguard", "-n", "macguard", "--wait", "--timeout", "2m")
		bin := filepath.Join(n.env["CNI_BIN_DIR"], "macguard")
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("the binary must stay for the DEL of pods created with it: %v", err)
		}
		if types, mg := conflistPlugins(t, n.env["PRIMARY_CONFLIST"]); mg != nil {
			t.Errorf("the entry came back: %v", types)
		}
		for name, r := range before {
			n.deletePod(t, "default", name)
			if rs := n.recordsOf(t, r.sb.ID); len(rs) != 0 {
				t.Errorf("%s: records left after the DEL: %+v", name, rs)
			}
			if evs := n.eventText("default", name); strings.Contains(evs, "Failed") {
				t.Errorf("%s: the deletion left failure events:\n%s", name, evs)
			}
		}
		// Then, with no such pod left, the binary as the NOTES say.
		h.must(t, n, h.helm4, "install", "macguard-cleanup", h.nextChart, "-n", "macguard", "--create-namespace", "-f", h.values,
			"--set", "uninstall.enabled=true", "--set", "uninstall.removeBinary=true", "--wait", "--timeout", "3m")
		n.rolledOut(t)
		if _, err := os.Stat(bin); err == nil {
			t.Error("the binary is still there after uninstall.removeBinary")
		}
		h.must(t, n, h.helm4, "uninstall", "macguard-cleanup", "-n", "macguard", "--wait", "--timeout", "2m")
	})
}

// testHelmTestFails shows that helm test fails where macguard is not
// working: a release whose DaemonSet matches no node (nodeSelector) on a
// node without macguard's binary and entry. The test pod still runs there
// and must fail, saying what is missing.
func testHelmTestFails(t *testing.T, n *node, h *helmEnv) {
	h.clean(t, n)
	// With no agent left, take the entry out as a CNI agent's rewrite
	// would, in case an earlier scenario failed before its uninstall.
	rewriteLikeAnAgent(t, n.env["PRIMARY_CONFLIST"])
	h.must(t, n, h.helm4, "install", "macguard-broken", h.chart, "-n", "macguard", "--create-namespace", "-f", h.values,
		"--set", `nodeSelector.kubernetes\.io/os=plan9`, "--wait", "--timeout", "2m")
	out, err := h.run(n, h.helm4, "test", "macguard-broken", "-n", "macguard", "--logs", "--timeout", "2m")
	if err == nil {
		t.Fatalf("helm test passed on a node without macguard:\n%s", out)
	}
	logs, _ := n.kubectlErr("", "-n", "macguard", "logs", "macguard-test")
	if !strings.Contains(logs, "no macguard entry") && !strings.Contains(logs, "does not exist") {
		t.Errorf("the failed test's pod does not say what is missing:\n%s", logs)
	}
	t.Logf("helm test failed as it must:\n%s\npod log:\n%s", out, logs)
}

// testHelmWebhook enables the VM webhook the way a Helm user does: a
// release installed with the node's values is upgraded with
// webhook.enabled=true, a salt and a prefix (set before the first VM). The
// real API server calls it (KubeVirt's generated CRDs, as TestWebhook), and
// a VM created with kubectl gets the MACs `macguardctl mac --vm-interface`
// predicts. An upgrade that changes the webhook configuration keeps the CA
// bundle the webhook wrote into it (Helm never rendered that field), and
// VMs keep getting their MACs; helm uninstall removes the configuration (a
// VM is then admitted unchanged) and leaves the run-time Secret, which the
// NOTES say to delete.
func testHelmWebhook(t *testing.T, n *node, h *helmEnv, helm string) {
	n.kubeVirtCRDs(t)
	const ns, prefix = "vms-helm", "0a:58"
	n.ensureNamespace(t, ns)
	t.Cleanup(func() {
		if _, err := n.kubectlErr("", "delete", "namespace", ns, "--ignore-not-found", "--wait", "--timeout", "120s"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	h.must(t, n, helm, "install", "macguard", h.chart, "-n", "macguard", "--create-namespace", "-f", h.values, "--wait", "--timeout", "3m")
	n.rolledOut(t)

	// The node runs no kube-proxy: the webhook reaches the API server on
	// the node's address, as in TestWebhook.
	values := filepath.Join(h.home, "webhook-values.yaml")
	v := fmt.Sprintf(`webhook:
  enabled: true
  salt: %s
  prefix: %q
  extraEnv:
    - name: KUBERNETES_SERVICE_HOST
      value: %q
    - name: KUBERNETES_SERVICE_PORT
      value: "6443"
`, whSalt, prefix, n.env["NODE_IP"])
	if err := os.WriteFile(values, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
	out := h.must(t, n, helm, "upgrade", "macguard", h.chart, "-n", "macguard", "--reuse-values", "-f", values, "--wait", "--timeout", "3m")
	if want := "macguardctl mac --namespace NS --vm VM --vm-interface IFACE --salt \"" + whSalt + "\" --prefix " + prefix; !strings.Contains(out, want) {
		t.Errorf("the NOTES do not say how to predict a MAC (%s):\n%s", want, out)
	}
	if out, err := n.kubectlErr("", "-n", "macguard", "rollout", "status", "deploy/macguard-webhook", "--timeout", "150s"); err != nil {
		t.Fatalf("the webhook did not roll out: %v\n%s\n%s", err, out, n.kubectl(t, "", "-n", "macguard", "get", "events"))
	}
	bundle := n.webhookCABundle(t)

	// The MACs a VM gets are the ones the operator's tool predicts.
	vmGetsPredictedMACs := func(t *testing.T, name string) {
		t.Helper()
		n.kubectl(t, vmManifest(ns, name), "apply", "-f", "-")
		got := n.specMACs(t, "vm", ns, name)
		want := map[string]string{"mine": whUserMAC}
		for _, iface := range []string{"default", "sec"} {
			want[iface] = strings.TrimSpace(n.runCtl(t, "mac", "--namespace", ns, "--vm", name, "--vm-interface", iface, "--salt", whSalt, "--prefix", prefix))
			if !strings.HasPrefix(want[iface], prefix+":") {
				t.Fatalf("macguardctl mac --prefix %s printed %s", prefix, want[iface])
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("VM %s/%s interfaces %v, want %v (the user's MAC kept, the others as macguardctl mac --vm-interface predicts)", ns, name, got, want)
		}
		t.Logf("VM %s/%s: %v, as macguardctl mac --vm-interface predicts", ns, name, got)
	}
	vmGetsPredictedMACs(t, "vm1")

	// An upgrade rewrites the webhook configuration: the caBundle the
	// webhook wrote must survive it (with failurePolicy Ignore a lost one
	// would let VMs through without MACs until the next sync).
	h.must(t, n, helm, "upgrade", "macguard", h.chart, "-n", "macguard", "--reuse-values", "--set", "webhook.timeoutSeconds=5", "--wait", "--timeout", "3m")
	after, err := n.kubectlErr("", "get", "mutatingwebhookconfiguration", "macguard-webhook", "-o", "jsonpath={.webhooks[*].timeoutSeconds} {.webhooks[*].clientConfig.caBundle}")
	if err != nil {
		t.Fatal(err)
	}
	if want := "5 5 " + bundle + " " + bundle; after != want {
		t.Errorf("after the upgrade the webhooks have timeoutSeconds and caBundles %.40q..., want 5, 5 and the bundle written before", after)
	}
	vmGetsPredictedMACs(t, "vm2")

	h.must(t, n, helm, "uninstall", "macguard", "-n", "macguard", "--wait", "--timeout", "2m")
	if out, err := n.kubectlErr("", "get", "mutatingwebhookconfiguration", "macguard-webhook"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("the webhook configuration is still there after helm uninstall: %v\n%s", err, out)
	}
	n.kubectl(t, vmManifest(ns, "after"), "apply", "-f", "-")
	if got := n.specMACs(t, "vm", ns, "after"); got["default"] != "" || got["mine"] != whUserMAC {
		t.Errorf("a VM created after the uninstall was changed: %v", got)
	}
	// What the NOTES say is left, and to delete.
	n.kubectl(t, "", "-n", "macguard", "delete", "secret", "macguard-webhook-cert")
	h.clean(t, n)
}

// oneMacguardLast says whether a chain's plugin types hold exactly one
// macguard entry, and last: the first "macguard" is the last entry.
func oneMacguardLast(types []string) bool {
	return len(types) > 0 && slices.Index(types, "macguard") == len(types)-1
}
