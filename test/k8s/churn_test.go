package k8s

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// churnNamespace holds the churn's pods and NADs.
const churnNamespace = "churn"

// churnKind is what a lifecycle's pod asks of macguard.
type churnKind int

const (
	// churnPrimary: the primary network only; macguard passes through.
	churnPrimary churnKind = iota
	// churnLauncher: a virt-launcher pod on a NAD with assign "always",
	// started on one node and then again on the other (two lifecycles):
	// both get the MAC `macguardctl mac` predicts for the VM.
	churnLauncher
	// churnHostDevice: host-device + macguard with a requested MAC.
	churnHostDevice
	// churnMacvlan: macvlan + macguard with a requested MAC.
	churnMacvlan
)

func (k churnKind) String() string {
	return [...]string{"primary", "launcher", "host-device", "macvlan"}[k]
}

// worker is the second node of make k8s-up K8S_NODES=2 (hack/k8s/worker.sh),
// sharing the first node's API server and client.
func (n *node) worker(t *testing.T) *node {
	t.Helper()
	f := n.env["WORKER_ENV_FILE"]
	if f == "" {
		t.Fatalf("the node has no second node (%s sets no WORKER_ENV_FILE): run make test-k8s-churn, or make k8s-up K8S_NODES=2", os.Getenv("K8S_ENV_FILE"))
	}
	env, err := readEnv(f)
	if err != nil {
		t.Fatal(err)
	}
	return &node{env: env, repo: n.repo, cs: n.cs}
}

// links maps the link names of the node's network namespace to their MACs.
func (n *node) links(t *testing.T) map[string]string {
	t.Helper()
	h, err := netns.GetFromName(n.env["NODE_NETNS"])
	if err != nil {
		t.Fatalf("network namespace %s: %v", n.env["NODE_NETNS"], err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	ls, err := nl.LinkList()
	if err != nil {
		t.Fatalf("links of %s: %v", n.env["NODE_NAME"], err)
	}
	m := map[string]string{}
	for _, l := range ls {
		m[l.Attrs().Name] = l.Attrs().HardwareAddr.String()
	}
	return m
}

// ctl runs hack/k8s/node.sh for this node (through worker.sh for the
// second one).
func (n *node) ctl(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(n.repo, "hack/k8s/node.sh"), args...)
	if n.env["NODE_NAME"] != theNode.env["NODE_NAME"] {
		cmd = exec.Command(filepath.Join(n.repo, "hack/k8s/worker.sh"), append([]string{"node.sh"}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s %s: %v\n%s", cmd.Path, strings.Join(args, " "), err, out)
		return
	}
	t.Logf("%s: %s %s: %s", n.env["NODE_NAME"], filepath.Base(cmd.Path), strings.Join(args, " "), strings.TrimSpace(string(out)))
}

// churnOverlay is deploy/overlays/calico with only the image and the pull
// policy changed: the shipped hostPaths (/opt/cni/bin, /etc/cni/net.d) are
// each node's own CNI dirs in its mount namespace, so one DaemonSet serves
// both nodes.
func (n *node) churnOverlay(t *testing.T) string {
	t.Helper()
	return n.writeOverlay(t, "churn", func(rel func(string) string) string {
		return n.imageKustomization(t, rel, filepath.Join("overlays", "calico"))
	})
}

// installCalico applies churnOverlay (deleted again when the test ends),
// waits for the DaemonSet's rollout and until the agent has chained
// macguard into the primary conflist of each of nodes.
func (n *node) installCalico(t *testing.T, nodes []*node) {
	t.Helper()
	dir := n.churnOverlay(t)
	n.kubectl(t, "", "delete", "--ignore-not-found", "--wait", "--timeout", "120s", "-k", dir)
	n.kubectl(t, "", "apply", "-k", dir)
	t.Cleanup(func() {
		if _, err := n.kubectlErr("", "delete", "--ignore-not-found", "--wait", "--timeout", "120s", "-k", dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if out, err := n.kubectlErr("", "-n", "macguard", "rollout", "status", "ds/macguard", "--timeout", "180s"); err != nil {
		t.Fatalf("the DaemonSet did not roll out: %v\n%s", err, out)
	}
	for _, nd := range nodes {
		err := eventually(60*time.Second, func() error {
			if _, mg := conflistPlugins(t, nd.env["PRIMARY_CONFLIST"]); mg == nil {
				return fmt.Errorf("no macguard in %s", nd.env["PRIMARY_CONFLIST"])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// agentPod is the DaemonSet's pod on the node.
func (n *node) agentPod(t *testing.T) *corev1.Pod {
	t.Helper()
	l, err := n.cs.CoreV1().Pods("macguard").List(context.Background(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/name=macguard", FieldSelector: "spec.nodeName=" + n.env["NODE_NAME"]})
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.Items {
		if l.Items[i].DeletionTimestamp == nil {
			return &l.Items[i]
		}
	}
	t.Fatalf("no macguard agent pod on %s", n.env["NODE_NAME"])
	return nil
}

// agentPID is the agent container's first process (macguardctl install
// --watch), found by its container ID in the node's containerd state (its
// init.pid); 0 and an error when it has none.
func (n *node) agentPID(t *testing.T) (*corev1.Pod, int, error) {
	t.Helper()
	p := n.agentPod(t)
	if len(p.Status.ContainerStatuses) == 0 {
		return p, 0, fmt.Errorf("agent pod %s has no container status", p.Name)
	}
	cid := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://")
	b, err := os.ReadFile(filepath.Join(n.env["CONTAINERD_STATE"], "io.containerd.runtime.v2.task", "k8s.io", cid, "init.pid"))
	if err != nil {
		return p, 0, fmt.Errorf("agent container %s: %w", cid, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return p, 0, fmt.Errorf("agent init.pid: %w", err)
	}
	return p, pid, nil
}

// agentUsage is the agent process's CPU time so far (utime + stime, in
// clock ticks of 1/100 s) and its resident memory now and at its peak.
type agentUsage struct {
	pid            int
	at             time.Time
	ticks          int64
	rssKiB, hwmKiB int64
}

func (n *node) agentUsage(t *testing.T) (agentUsage, error) {
	t.Helper()
	_, pid, err := n.agentPID(t)
	if err != nil {
		return agentUsage{}, err
	}
	u := agentUsage{pid: pid, at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The fields after the command name, which may hold spaces.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	u.ticks = ut + st
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(l, ":")
		kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			u.rssKiB = kib
		case "VmHWM":
			u.hwmKiB = kib
		}
	}
	return u, nil
}

// killAgent sends SIGKILL to the agent container's first process and
// waits until the kubelet has restarted the container and it is Ready
// again; it returns the container's restart count then.
func (n *node) killAgent(t *testing.T) int32 {
	t.Helper()
	p, pid, err := n.agentPID(t)
	if err != nil {
		t.Error(err)
		return 0
	}
	restarts := p.Status.ContainerStatuses[0].RestartCount
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Errorf("kill -9 %d (agent %s): %v", pid, p.Name, err)
		return 0
	}
	t.Logf("%s: kill -9 of the macguard agent (pod %s, pid %d)", n.env["NODE_NAME"], p.Name, pid)
	err = eventually(2*time.Minute, func() error {
		got, err := n.cs.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cs := got.Status.ContainerStatuses; len(cs) == 0 || cs[0].RestartCount <= restarts || !cs[0].Ready {
			return fmt.Errorf("agent pod %s: container statuses %+v", p.Name, cs)
		}
		restarts = got.Status.ContainerStatuses[0].RestartCount
		return nil
	})
	if err != nil {
		t.Errorf("the killed agent did not come back: %v", err)
	}
	return restarts
}

// churnEnv reads a positive integer knob.
func churnEnv(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return i
}

// churnResult is what one lifecycle ended in.
type churnResult struct {
	kind churnKind
	node string
	// refused is macguard's error from the pod's events when the pod did
	// not run ("" when it ran).
	refused string
	// sandboxFailures counts the kubelet's FailedCreatePodSandBox events
	// before the pod ran (the restarts make some).
	sandboxFailures int32
}

// TestChurn (issue 22): MACGUARD_CHURN_N pod lifecycles (create -> running
// -> delete), MACGUARD_CHURN_INFLIGHT at a time, spread over both nodes and
// mixing pass-through, virt-launcher, host-device and macvlan pods, while
// containerd restarts on the first node, the kubelet on the second, the
// agent is killed with SIGKILL and the DaemonSet rolls to another image.
// Every pod runs with the expected MAC or fails with macguard's error;
// afterwards each node has the records, leases and links it had before.
func TestChurn(t *testing.T) {
	nodes := []*node{theNode, theNode.worker(t)}
	n := theNode
	total := churnEnv(t, "MACGUARD_CHURN_N", 40)
	inflight := churnEnv(t, "MACGUARD_CHURN_INFLIGHT", 6)
	nextImage, nextArchive := os.Getenv("MACGUARD_NEXT_IMAGE"), os.Getenv("MACGUARD_NEXT_IMAGE_ARCHIVE")
	if nextImage == "" || nextArchive == "" {
		t.Fatal("MACGUARD_NEXT_IMAGE and MACGUARD_NEXT_IMAGE_ARCHIVE are not set (make test-k8s-churn builds the image of another version)")
	}
	for _, nd := range nodes {
		if out, err := exec.Command("ctr", "--address", nd.env["CONTAINERD_ADDRESS"], "-n", "k8s.io", "images", "import", nextArchive).CombinedOutput(); err != nil {
			t.Fatalf("importing %s on %s: %v\n%s", nextArchive, nd.env["NODE_NAME"], err, out)
		}
	}

	n.installCalico(t, nodes)

	n.ensureNamespace(t, churnNamespace)
	nad := func(name, config string) { n.applyNAD(t, nadYAML(churnNamespace, name, config)) }
	for _, dev := range []string{"eth2", "eth3"} {
		nad("churn-hd-"+dev, fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "churn-hd-%s", "plugins": [
  {"type": "host-device", "device": %q},
  {"type": "macguard", "assign": "never", "capabilities": {"mac": true}}]}`, dev, dev))
	}
	nad("churn-macvlan", fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "churn-macvlan", "plugins": [
  {"type": "macvlan", "master": %q, "mode": "bridge", "capabilities": {"mac": true},
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "192.168.70.0/24"}]]}},
  {"type": "macguard", "assign": "never", "capabilities": {"mac": true}}]}`, n.env["NAD_MASTER"]))
	nad("churn-vm", fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "churn-vm", "plugins": [
  {"type": "macvlan", "master": %q, "mode": "bridge",
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "192.168.71.0/24"}]]}},
  {"type": "macguard", "assign": "always"}]}`, n.env["NAD_MASTER"]))

	// What each node has before: after the last delete it must have it again.
	type nodeState struct {
		records map[string]bool
		leases  map[string]string
		links   map[string]string
	}
	before := map[string]nodeState{}
	for _, nd := range nodes {
		before[nd.env["NODE_NAME"]] = nodeState{keys(nd.records(t)), nd.leases(t), nd.links(t)}
	}

	// host-device moves a device into the pod: one pod per device and node
	// at a time.
	devices := map[string]chan string{}
	for _, nd := range nodes {
		c := make(chan string, 2)
		c <- "eth2"
		c <- "eth3"
		devices[nd.env["NODE_NAME"]] = c
	}

	var (
		mu       sync.Mutex
		results  []churnResult
		done     atomic.Int32
		running  atomic.Int32
		sem      = make(chan struct{}, inflight)
		wg       sync.WaitGroup
		launched int
	)
	// lifecycle runs one pod on nd through create -> running -> delete and
	// checks its MAC; want is the expected MAC of net1 ("" for the
	// primary, whose MAC macguard keeps).
	lifecycle := func(nd *node, kind churnKind, name, networks, ifName, want string) {
		running.Add(1)
		defer running.Add(-1)
		defer done.Add(1)
		p := nd.podSpec(churnNamespace, name, networks)
		p.Spec.NodeName = nd.env["NODE_NAME"]
		res := churnResult{kind: kind, node: nd.env["NODE_NAME"]}
		defer func() {
			mu.Lock()
			results = append(results, res)
			mu.Unlock()
		}()
		if _, err := n.cs.CoreV1().Pods(churnNamespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Errorf("creating %s: %v", name, err)
			return
		}
		defer func() {
			if err := nd.deletePodErr(churnNamespace, name); err != nil {
				t.Errorf("%s on %s: %v", name, res.node, err)
			}
		}()
		var got *corev1.Pod
		err := eventually(4*time.Minute, func() error {
			var err error
			got, err = n.cs.CoreV1().Pods(churnNamespace).Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got.Status.Phase == corev1.PodRunning && len(got.Status.ContainerStatuses) > 0 && got.Status.ContainerStatuses[0].Ready && got.Annotations[statusAnnotation] != "" {
				return nil
			}
			return fmt.Errorf("phase %s", got.Status.Phase)
		})
		evs, _ := nd.events(churnNamespace, name)
		for _, e := range evs {
			if e.Reason == "FailedCreatePodSandBox" {
				res.sandboxFailures += e.Count
				if strings.Contains(e.Message, "macguard") && err != nil {
					res.refused = e.Message
				}
			}
		}
		if err != nil {
			if res.refused == "" {
				t.Errorf("%s (%s) on %s is stuck: %v\nevents:\n%s", name, kind, res.node, err, nd.eventText(churnNamespace, name))
			}
			return
		}
		sb := nd.sandboxOf(t, got)
		if kind == churnPrimary {
			l, err := podLink(sb.PID, "eth0")
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			if st := networkStatus(t, got, "eth0"); st.MAC != l.Attrs().HardwareAddr.String() {
				t.Errorf("%s on %s: network-status says %s, eth0 has %s", name, res.node, st.MAC, l.Attrs().HardwareAddr)
			}
			return
		}
		l, err := podLink(sb.PID, ifName)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if mac := l.Attrs().HardwareAddr.String(); mac != want {
			t.Errorf("%s (%s) on %s: %s has %s, want %s", name, kind, res.node, ifName, mac, want)
		}
		if st := networkStatus(t, got, ifName); st.MAC != want {
			t.Errorf("%s (%s) on %s: network-status says %s, want %s", name, kind, res.node, st.MAC, want)
		}
	}

	// The events, each once a share of the lifecycles is done, while
	// others are in flight.
	type churnEvent struct {
		at   int
		what string
		do   func()
	}
	rolled := false
	var agentRestarts int32
	// The first node's agent lives through the churn until the roll: its
	// CPU and memory over that time, against the DaemonSet's requests and
	// limits (5m / 16Mi, 100m / 64Mi in deploy/base).
	usage0, usageErr := nodes[0].agentUsage(t)
	var usage1 agentUsage
	events := []churnEvent{
		{total / 5, "containerd restart on " + nodes[0].env["NODE_NAME"], func() { nodes[0].ctl(t, "restart", "containerd") }},
		{2 * total / 5, "kubelet restart on " + nodes[1].env["NODE_NAME"], func() { nodes[1].ctl(t, "restart", "kubelet") }},
		{3 * total / 5, "kill -9 of the agent on " + nodes[1].env["NODE_NAME"], func() { agentRestarts = nodes[1].killAgent(t) }},
		{4 * total / 5, "DaemonSet roll to " + nextImage, func() {
			if usageErr == nil {
				usage1, usageErr = nodes[0].agentUsage(t)
			}
			n.kubectl(t, "", "-n", "macguard", "set", "image", "ds/macguard", "install="+nextImage)
			rolled = true
		}},
	}
	evDone := make(chan struct{})
	var eventLog []string
	go func() {
		defer close(evDone)
		for _, e := range events {
			for int(done.Load()) < e.at {
				time.Sleep(200 * time.Millisecond)
			}
			inFlight := running.Load()
			e.do()
			eventLog = append(eventLog, fmt.Sprintf("%s after %d lifecycles, %d in flight", e.what, e.at, inFlight))
			if inFlight == 0 {
				t.Errorf("%s: no lifecycle was in flight", e.what)
			}
		}
	}()

	start := time.Now()
	for i := 0; launched < total; i++ {
		// Each kind alternates between the nodes from one round of four to the next.
		nd := nodes[(i+i/4)%2]
		kind := churnKind(i % 4)
		sem <- struct{}{}
		wg.Add(1)
		switch kind {
		case churnPrimary:
			launched++
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				lifecycle(nd, kind, fmt.Sprintf("primary-%d", i), "", "eth0", "")
			}()
		case churnLauncher:
			// Two lifecycles: the VM's launcher on one node, then on the other.
			launched += 2
			vm := fmt.Sprintf("vm%d", i)
			want := testutil.DerivedMAC(t, "--namespace", churnNamespace, "--vm", vm, "--ifname", "net1")
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				sel := selection(churnNamespace, "churn-vm", "")
				lifecycle(nd, kind, "virt-launcher-"+vm+"-abcde", sel, "net1", want)
				lifecycle(nodes[(i+i/4+1)%2], kind, "virt-launcher-"+vm+"-fghij", sel, "net1", want)
			}()
		case churnHostDevice, churnMacvlan:
			launched++
			mac := fmt.Sprintf("0a:58:00:%02x:%02x:%02x", int(kind), i/256, i%256)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				network := "churn-macvlan"
				if kind == churnHostDevice {
					dev := <-devices[nd.env["NODE_NAME"]]
					defer func() { devices[nd.env["NODE_NAME"]] <- dev }()
					network = "churn-hd-" + dev
				}
				lifecycle(nd, kind, fmt.Sprintf("%s-%d", kind, i), selection(churnNamespace, network, mac), "net1", mac)
			}()
		}
	}
	wg.Wait()
	<-evDone
	elapsed := time.Since(start)

	// The roll reached both nodes: each runs the next image's binary.
	if rolled {
		if out, err := n.kubectlErr("", "-n", "macguard", "rollout", "status", "ds/macguard", "--timeout", "180s"); err != nil {
			t.Errorf("the DaemonSet did not roll to %s: %v\n%s", nextImage, err, out)
		}
		want := imageFile(t, nextArchive, "/macguard")
		for _, nd := range nodes {
			err := eventually(60*time.Second, func() error {
				got, err := os.ReadFile(filepath.Join(nd.env["CNI_BIN_DIR"], "macguard"))
				if err != nil {
					return err
				}
				if string(got) != string(want) {
					return fmt.Errorf("%s/macguard is not the binary of %s", nd.env["CNI_BIN_DIR"], nextImage)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}
	}

	// After the last delete each node is as it was.
	for _, nd := range nodes {
		name := nd.env["NODE_NAME"]
		b := before[name]
		if after := keys(nd.records(t)); !maps.Equal(after, b.records) {
			t.Errorf("%s: macguard's records before %v, after %v", name, b.records, after)
		}
		if after := nd.leases(t); !maps.Equal(after, b.leases) {
			t.Errorf("%s: host-local leases before %v, after %v", name, b.leases, after)
		}
		after := nd.links(t)
		if _, had := b.links["cni0"]; !had {
			// The primary network's bridge, made by the first pod on the
			// node, stays as on any node.
			delete(after, "cni0")
		}
		if !maps.Equal(after, b.links) {
			t.Errorf("%s: links (name -> MAC) before %v, after %v", name, b.links, after)
		}
	}

	// The doctor reports each node healthy: the macguardctl of the image
	// the nodes run now (after the roll, the next version's), as root on
	// the node.
	ctl := os.Getenv("MACGUARDCTL_BIN")
	if rolled {
		ctl = filepath.Join(t.TempDir(), "macguardctl")
		if err := os.WriteFile(ctl, imageFile(t, nextArchive, "/macguardctl"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if ctl == "" {
		t.Fatal("MACGUARDCTL_BIN is not set")
	}
	for _, nd := range nodes {
		r := nd.doctor(t, ctl)
		var findings strings.Builder
		for _, f := range r.report.Findings {
			fmt.Fprintf(&findings, "  %s %s pod=%s: %s\n", f.Severity, f.Code, f.Pod, f.Message)
		}
		if r.code != 0 || r.report.Node != nd.env["NODE_NAME"] {
			t.Errorf("%s: the doctor after the churn reports node %q, exit %d, want 0 (healthy); findings:\n%s", nd.env["NODE_NAME"], r.report.Node, r.code, findings.String())
		} else {
			var pods []string
			for _, p := range r.report.Pods {
				pods = append(pods, p.Name)
			}
			t.Logf("churn: the doctor on %s: healthy (exit 0 in %s), pods %v, findings:\n%s", nd.env["NODE_NAME"], r.wall.Round(time.Millisecond), pods, findings.String())
		}
	}

	// The counts.
	perKind := map[string]int{}
	perNode := map[string]int{}
	var refused []string
	var sandboxFailures int32
	for _, r := range results {
		perKind[r.kind.String()]++
		perNode[r.node]++
		sandboxFailures += r.sandboxFailures
		if r.refused != "" {
			refused = append(refused, r.refused)
		}
	}
	t.Logf("churn: %d lifecycles in %s (%d in flight at most, %d cores): per kind %v, per node %v", len(results), elapsed.Round(time.Second), inflight, runtime.NumCPU(), perKind, perNode)
	for _, e := range eventLog {
		t.Logf("churn event: %s", e)
	}
	t.Logf("churn: %d pods failed with macguard's error %q; %d FailedCreatePodSandBox events on pods that then ran (the restarts); the killed agent's restart count %d",
		len(refused), refused, sandboxFailures, agentRestarts)
	switch {
	case usageErr != nil:
		t.Logf("churn: no agent usage: %v", usageErr)
	case usage1.pid != usage0.pid:
		t.Logf("churn: the first node's agent was restarted during the churn (pid %d, then %d): no usage figure", usage0.pid, usage1.pid)
	default:
		wall := usage1.at.Sub(usage0.at)
		t.Logf("churn: the first node's agent over %s of churn: CPU %.1f millicores on average (utime+stime %d ticks), RSS %d KiB now, peak %d KiB (requests 5m / 16Mi, limits 100m / 64Mi)",
			wall.Round(time.Second), float64(usage1.ticks-usage0.ticks)*10/wall.Seconds(), usage1.ticks-usage0.ticks, usage1.rssKiB, usage1.hwmKiB)
	}
	if len(results) != launched {
		t.Errorf("%d lifecycles ended, %d launched", len(results), launched)
	}
}
