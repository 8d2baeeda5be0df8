package k8s

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/macguard-cni/macguard/pkg/state"
)

const (
	// networksAnnotation is Multus' network selection annotation and
	// statusAnnotation what it writes back from the CNI results.
	networksAnnotation = "k8s.v1.cni.cncf.io/networks"
	statusAnnotation   = "k8s.v1.cni.cncf.io/network-status"
	// primaryNetwork is the name of the stand-in primary conflist
	// (hack/k8s/up.sh), which Multus reports in network-status.
	primaryNetwork = "k8s-pod-network"
	// sandboxIDAnnotation is what containerd's CRI puts into every
	// container's OCI spec: the pod sandbox the container belongs to,
	// whose ID is the CNI container ID.
	sandboxIDAnnotation = "io.kubernetes.cri.sandbox-id"
)

// node is the running one-node cluster, as make k8s-up describes it in
// .cache/k8s/env.
type node struct {
	env  map[string]string
	repo string
	cs   kubernetes.Interface
}

// theNode is set by TestMain; every test uses the same cluster.
var theNode *node

func TestMain(m *testing.M) {
	n, err := connect()
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "FAIL: test/k8s needs the node from make k8s-up and cannot reach it: %v\n", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "test/k8s: no node (%v); run make test-k8s, which brings one up\n", err)
		os.Exit(0)
	}
	theNode = n
	os.Exit(m.Run())
}

// connect reads the env file and builds a client for the API server.
func connect() (*node, error) {
	f := os.Getenv("K8S_ENV_FILE")
	if f == "" {
		return nil, errors.New("K8S_ENV_FILE is not set")
	}
	env, err := readEnv(f)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"KUBECONFIG", "KUBECACHEDIR", "KUBECTL", "NODE_NAME", "NODE_NETNS", "NAD_MASTER", "CNI_BIN_DIR",
		"PRIMARY_CONFLIST", "CONTAINERD_STATE", "MACGUARD_DATA_DIR", "IPAM_DATA_DIR", "MACGUARD_IMAGE", "MACGUARD_IMAGE_ARCHIVE"} {
		if env[k] == "" {
			return nil, fmt.Errorf("%s sets no %s", f, k)
		}
	}
	repo := os.Getenv("REPO_ROOT")
	if repo == "" {
		return nil, errors.New("REPO_ROOT is not set")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", env["KUBECONFIG"])
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", env["KUBECONFIG"], err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", cfg.Host, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cs.CoreV1().Nodes().Get(ctx, env["NODE_NAME"], metav1.GetOptions{}); err != nil {
		return nil, fmt.Errorf("getting node %s from %s (is this running in netns %s?): %w", env["NODE_NAME"], cfg.Host, env["NODE_NETNS"], err)
	}
	return &node{env: env, repo: repo, cs: cs}, nil
}

// readEnv parses the KEY=VALUE lines of the env file k8s-up writes.
func readEnv(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the node's env file: %w", err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "export ") {
			continue
		}
		env[k] = strings.Trim(v, `"`)
	}
	return env, sc.Err()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return c
}

// kubectl runs the node's kubectl and returns its stdout.
func (n *node) kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := n.kubectlErr(stdin, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

func (n *node) kubectlErr(stdin string, args ...string) (string, error) {
	cmd := exec.Command(n.env["KUBECTL"], append([]string{"--kubeconfig", n.env["KUBECONFIG"], "--cache-dir", n.env["KUBECACHEDIR"]}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// nodeCtl runs hack/k8s/node.sh (restarting a daemon of the node).
func (n *node) nodeCtl(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(n.repo, "hack/k8s/node.sh"), args...)
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hack/k8s/node.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("hack/k8s/node.sh %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
}

// eventually polls f every 500ms until it returns nil or timeout passes,
// and returns f's last error.
func eventually(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// podSpec is a pod running the node's pause image (the only workload image
// the node has) with the given network selection annotation ("" for the
// primary network only).
func (n *node) podSpec(namespace, name, networks string) *corev1.Pod {
	grace := int64(1)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app": "macguard-k8s-test"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			// The node runs no cluster DNS.
			DNSPolicy: corev1.DNSDefault,
			Containers: []corev1.Container{{
				Name: "pause", Image: n.env["PAUSE_IMAGE"], ImagePullPolicy: corev1.PullNever,
			}},
		},
	}
	if networks != "" {
		p.Annotations = map[string]string{networksAnnotation: networks}
	}
	return p
}

// createPod creates p and deletes it when the test ends (unless the test
// deleted it itself).
func (n *node) createPod(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if _, err := n.cs.CoreV1().Pods(p.Namespace).Create(ctx(t), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod %s/%s: %v", p.Namespace, p.Name, err)
	}
	t.Cleanup(func() {
		if err := n.deletePodErr(p.Namespace, p.Name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// runningPod waits until the pod runs with its container ready and
// Multus' annotation written, and returns it.
func (n *node) runningPod(t *testing.T, namespace, name string) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	err := eventually(2*time.Minute, func() error {
		var err error
		p, err = n.cs.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 || !p.Status.ContainerStatuses[0].Ready {
			return fmt.Errorf("phase %s, container statuses %+v", p.Status.Phase, p.Status.ContainerStatuses)
		}
		if p.Annotations[statusAnnotation] == "" {
			return fmt.Errorf("running, but no %s annotation", statusAnnotation)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s did not start: %v\nevents:\n%s", namespace, name, err, n.eventText(namespace, name))
	}
	return p
}

// deletePodErr deletes a pod and waits until the API no longer has it,
// which is after the kubelet tore its sandbox down (CNI DEL included).
func (n *node) deletePodErr(namespace, name string) error {
	c := context.Background()
	err := n.cs.CoreV1().Pods(namespace).Delete(c, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting pod %s/%s: %w", namespace, name, err)
	}
	err = eventually(2*time.Minute, func() error {
		_, err := n.cs.CoreV1().Pods(namespace).Get(c, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return errors.New("still there")
	})
	if err != nil {
		return fmt.Errorf("pod %s/%s was not deleted: %w\nevents:\n%s", namespace, name, err, n.eventText(namespace, name))
	}
	return nil
}

func (n *node) deletePod(t *testing.T, namespace, name string) {
	t.Helper()
	if err := n.deletePodErr(namespace, name); err != nil {
		t.Fatal(err)
	}
}

// events are the pod's Events, oldest first.
func (n *node) events(namespace, name string) ([]corev1.Event, error) {
	l, err := n.cs.CoreV1().Events(namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing the events of %s/%s: %w", namespace, name, err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].LastTimestamp.Before(&l.Items[j].LastTimestamp) })
	return l.Items, nil
}

func (n *node) eventText(namespace, name string) string {
	evs, err := n.events(namespace, name)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s %s (x%d): %s\n", e.Type, e.Reason, e.Count, e.Message)
	}
	return b.String()
}

// netStatus is one element of the network-status annotation.
type netStatus struct {
	Name      string   `json:"name"`
	Interface string   `json:"interface"`
	IPs       []string `json:"ips"`
	MAC       string   `json:"mac"`
	Default   bool     `json:"default"`
}

// networkStatus returns the annotation's entry for the pod interface
// ifName.
func networkStatus(t *testing.T, p *corev1.Pod, ifName string) netStatus {
	t.Helper()
	raw := p.Annotations[statusAnnotation]
	var all []netStatus
	if err := json.Unmarshal([]byte(raw), &all); err != nil {
		t.Fatalf("%s of %s/%s: %v: %s", statusAnnotation, p.Namespace, p.Name, err, raw)
	}
	for _, s := range all {
		if s.Interface == ifName {
			return s
		}
	}
	t.Fatalf("%s of %s/%s has no entry for %s: %s", statusAnnotation, p.Namespace, p.Name, ifName, raw)
	return netStatus{}
}

// sandbox is a pod's sandbox as containerd runs it.
type sandbox struct {
	// ID is the sandbox's ID, the CNI container ID of every attachment.
	ID string
	// PID is the sandbox (pause) process, whose network namespace is the
	// pod's.
	PID int
}

// sandboxOf finds the running pod's sandbox from its container: the ID in
// the pod status, the sandbox ID in the container's OCI spec, the PID in
// containerd's state directory.
func (n *node) sandboxOf(t *testing.T, p *corev1.Pod) sandbox {
	t.Helper()
	if len(p.Status.ContainerStatuses) == 0 {
		t.Fatalf("pod %s/%s has no container status", p.Namespace, p.Name)
	}
	cid := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://")
	tasks := filepath.Join(n.env["CONTAINERD_STATE"], "io.containerd.runtime.v2.task", "k8s.io")
	spec, err := os.ReadFile(filepath.Join(tasks, cid, "config.json"))
	if err != nil {
		t.Fatalf("container %s of pod %s/%s: %v", cid, p.Namespace, p.Name, err)
	}
	var oci struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(spec, &oci); err != nil {
		t.Fatalf("OCI spec of container %s: %v", cid, err)
	}
	id := oci.Annotations[sandboxIDAnnotation]
	if id == "" {
		t.Fatalf("OCI spec of container %s has no %s", cid, sandboxIDAnnotation)
	}
	pidText, err := os.ReadFile(filepath.Join(tasks, id, "init.pid"))
	if err != nil {
		t.Fatalf("sandbox %s of pod %s/%s: %v", id, p.Namespace, p.Name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatalf("sandbox %s init.pid: %v", id, err)
	}
	return sandbox{ID: id, PID: pid}
}

// inPod runs f with a netlink handle in the network namespace of pid.
func inPod(pid int, f func(nl *netlink.Handle) error) error {
	h, err := netns.GetFromPath(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return fmt.Errorf("the network namespace of pid %d: %w", pid, err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return fmt.Errorf("netlink in the namespace of pid %d: %w", pid, err)
	}
	defer nl.Close()
	return f(nl)
}

// podLink returns a link in the pod's network namespace.
func podLink(pid int, ifName string) (netlink.Link, error) {
	var l netlink.Link
	err := inPod(pid, func(nl *netlink.Handle) error {
		var err error
		if l, err = nl.LinkByName(ifName); err != nil {
			return fmt.Errorf("%s in the namespace of pid %d: %w", ifName, pid, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// podMAC is the MAC of ifName in the sandbox's network namespace.
func podMAC(t *testing.T, sb sandbox, ifName string) string {
	t.Helper()
	l, err := podLink(sb.PID, ifName)
	if err != nil {
		t.Fatalf("pod interface: %v", err)
	}
	return l.Attrs().HardwareAddr.String()
}

// podLinks lists the link names in the sandbox's network namespace.
func podLinks(t *testing.T, sb sandbox) []string {
	t.Helper()
	var ls []netlink.Link
	err := inPod(sb.PID, func(nl *netlink.Handle) error {
		var err error
		ls, err = nl.LinkList()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range ls {
		names = append(names, l.Attrs().Name)
	}
	sort.Strings(names)
	return names
}

// nodeLinks maps the node namespace's link names to their MACs (the test
// runs in the node's network namespace).
func nodeLinks(t *testing.T) map[string]string {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ls, err := netlink.LinkList()
	if err != nil {
		t.Fatalf("listing the node's links: %v", err)
	}
	m := map[string]string{}
	for _, l := range ls {
		m[l.Attrs().Name] = l.Attrs().HardwareAddr.String()
	}
	return m
}

// records reads macguard's records on the node, keyed by
// "network:containerID/ifName" (state.Key.String), through macguard's own store.
func (n *node) records(t *testing.T) map[string]state.Record {
	t.Helper()
	s := state.New(n.env["MACGUARD_DATA_DIR"])
	keys, err := s.Keys()
	if errors.Is(err, os.ErrNotExist) {
		return map[string]state.Record{}
	}
	if err != nil {
		t.Fatalf("listing macguard's records in %s: %v", s.Dir, err)
	}
	m := map[string]state.Record{}
	for _, k := range keys {
		r, found, err := s.Load(k)
		if err != nil || !found {
			t.Fatalf("record %s in %s: found %v, %v", k, s.Dir, found, err)
		}
		m[k.String()] = r
	}
	return m
}

// recordsOf are the records of one sandbox.
func (n *node) recordsOf(t *testing.T, id string) []state.Record {
	t.Helper()
	var rs []state.Record
	for _, r := range n.records(t) {
		if r.ContainerID == id {
			rs = append(rs, r)
		}
	}
	return rs
}

// leases are host-local's lease files on the node (network/IP -> the
// container ID and interface it is held for).
func (n *node) leases(t *testing.T) map[string]string {
	t.Helper()
	dir := n.env["IPAM_DATA_DIR"]
	m := map[string]string{}
	nets, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return m
	}
	if err != nil {
		t.Fatalf("reading host-local's leases: %v", err)
	}
	for _, nw := range nets {
		files, err := os.ReadDir(filepath.Join(dir, nw.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			// last_reserved_ip.* and the lock are bookkeeping, not leases.
			if net.ParseIP(f.Name()) == nil {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, nw.Name(), f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			m[nw.Name()+"/"+f.Name()] = strings.Join(strings.Fields(string(b)), " ")
		}
	}
	return m
}

// cachedResultMAC is the MAC of ifName in the result the runtime got back
// for the sandbox's ADD (libcni's result cache on the node).
func (n *node) cachedResultMAC(t *testing.T, sb sandbox, ifName string) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(n.env["IPAM_DATA_DIR"]), "results")
	matches, _ := filepath.Glob(filepath.Join(dir, "*-"+sb.ID+"-"+ifName))
	if len(matches) != 1 {
		t.Fatalf("libcni's cached results for %s/%s in %s: %v, want one", sb.ID, ifName, dir, matches)
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	var cached struct {
		Result struct {
			Interfaces []struct {
				Name    string `json:"name"`
				MAC     string `json:"mac"`
				Sandbox string `json:"sandbox"`
			} `json:"interfaces"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &cached); err != nil {
		t.Fatalf("%s: %v", matches[0], err)
	}
	for _, i := range cached.Result.Interfaces {
		if i.Name == ifName && i.Sandbox != "" {
			return i.MAC
		}
	}
	t.Fatalf("the cached result %s has no pod interface %s: %s", matches[0], ifName, data)
	return ""
}

// macguardLog returns macguard's log lines (in containerd's log: the
// runtime and Multus pass the plugins' stderr on) that name id.
func (n *node) macguardLog(t *testing.T, id string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(n.env["K8S_RUN"], "logs", "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "plugin=macguard") && strings.Contains(l, id) {
			lines = append(lines, l)
		}
	}
	return lines
}

// applyNAD applies a NetworkAttachmentDefinition and deletes it when the
// test ends.
func (n *node) applyNAD(t *testing.T, manifest string) {
	t.Helper()
	n.kubectl(t, manifest, "apply", "-f", "-")
	t.Cleanup(func() {
		if _, err := n.kubectlErr(manifest, "delete", "--ignore-not-found", "-f", "-"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// nadYAML is a NetworkAttachmentDefinition holding config.
func nadYAML(namespace, name, config string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  config: |\n", name, namespace)
	for _, l := range strings.Split(strings.TrimSpace(config), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// selection is a network selection annotation asking for one network,
// optionally with a MAC.
func selection(namespace, name, mac string) string {
	e := map[string]string{"name": name, "namespace": namespace}
	if mac != "" {
		e["mac"] = mac
	}
	b, _ := json.Marshal([]map[string]string{e})
	return string(b)
}

func (n *node) ensureNamespace(t *testing.T, name string) {
	t.Helper()
	_, err := n.cs.CoreV1().Namespaces().Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	err = eventually(time.Minute, func() error {
		_, err := n.cs.CoreV1().ServiceAccounts(name).Get(context.Background(), "default", metav1.GetOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("namespace %s has no default ServiceAccount: %v", name, err)
	}
}

// installPatch opens the patches of an overlay's kustomization: a
// strategic-merge patch of the macguard DaemonSet, whose next lines are
// fields of its install container (indented 16 spaces) and then the
// pod's volumes (from 12).
const installPatch = `patches:
  - patch: |-
      apiVersion: apps/v1
      kind: DaemonSet
      metadata:
        name: macguard
        namespace: macguard
      spec:
        template:
          spec:
            containers:
              - name: install
`

// writeOverlay writes the kustomization of the overlay name, what
// kustomization returns, into K8S_RUN/overlays/<name> and returns that
// directory; rel gives kustomization a path relative to it.
func (n *node) writeOverlay(t *testing.T, name string, kustomization func(rel func(path string) string) string) string {
	t.Helper()
	dir := filepath.Join(n.env["K8S_RUN"], "overlays", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rel := func(path string) string {
		r, err := filepath.Rel(dir, path)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization(rel)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
