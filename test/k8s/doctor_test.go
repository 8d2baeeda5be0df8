package k8s

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/macguard-cni/macguard/pkg/ctl/doctor"
)

// doctorOverlay is the secondary variant of the test node (n.overlay) plus
// deploy/components/doctor, with two changes this node needs and a real
// one does not:
//   - the conf dir's hostPath: the node's CNI conf dir is under K8S_RUN;
//   - no mount propagation for /var/run/netns: the node's mount namespace
//     is private (hack/k8s/up.sh), and containerd refuses HostToContainer
//     on a private mount. The doctor still finds every pod, through the
//     sandbox processes it sees with hostPID;
//   - the API server's address: the node runs no kube-proxy, so the
//     in-cluster service address leads nowhere; the pod (hostNetwork) reaches
//     the API server on the node's address directly;
//   - Multus' cache: this node's Multus keeps it under K8S_RUN (its
//     cniDir), not in /var/lib/cni/multus; it is mounted at
//     /multus-cache, which runDoctor passes as --multus-cache-dir.
//
// Multus makes its cache dir on its first pod, and the kubelet refuses the
// hostPath volume (type: Directory) while it is missing, so doctorOverlay
// makes it:
// a test that runs the doctor may start no pod, or run first.
func (n *node) doctorOverlay(t *testing.T) string {
	t.Helper()
	if n.env["K8S_RUN"] == "" {
		t.Fatal("the node's env file sets no K8S_RUN")
	}
	if err := os.MkdirAll(filepath.Join(n.env["K8S_RUN"], "multus", "cache"), 0o700); err != nil {
		t.Fatal(err)
	}
	base := n.overlay(t, "doctor-base", "overlays/secondary")
	return n.writeOverlay(t, "doctor", func(rel func(string) string) string {
		return fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
components:
  - %s
`+installPatch+`                env:
                  - name: KUBERNETES_SERVICE_HOST
                    value: %q
                  - name: KUBERNETES_SERVICE_PORT
                    value: "6443"
                volumeMounts:
                  - name: doctor-netns
                    mountPath: /var/run/netns
                    mountPropagation: None
                  - name: doctor-multus-cache
                    mountPath: /multus-cache
                    readOnly: true
            volumes:
              - name: doctor-cni-conf
                hostPath:
                  path: %s
              - name: doctor-multus-cache
                hostPath:
                  path: %s
                  type: Directory
`, rel(base), rel(filepath.Join(n.repo, "deploy", "components", "doctor")), n.env["NODE_IP"], n.env["CNI_CONF_DIR"], filepath.Join(n.env["K8S_RUN"], "multus", "cache"))
	})
}

// runDoctor runs macguardctl doctor --json in the DaemonSet's pod, as the
// README tells an operator to, and returns the report and the exit code.
func (n *node) runDoctor(t *testing.T, pod string, args ...string) (doctor.Report, int) {
	t.Helper()
	stdout, err := n.kubectlErr("", append([]string{"-n", "macguard", "exec", pod, "-c", "install", "--", "/macguardctl", "doctor", "--json", "--multus-cache-dir", "/multus-cache"}, args...)...)
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	var r doctor.Report
	if jerr := json.Unmarshal([]byte(stdout), &r); jerr != nil {
		t.Fatalf("doctor in %s printed no report (exit %d): %v\n%v", pod, code, jerr, err)
	}
	return r, code
}

// TestDoctor: macguardctl doctor in the DaemonSet's pod (the doctor
// component) on the real node names the pod whose requested MAC did not
// stick and the NAD that cannot honour it, sees the pod whose MAC macguard
// set with its record, and finds the plugin binary of its own build.
func TestDoctor(t *testing.T) {
	n := theNode
	ds := n.rollout(t, n.doctorOverlay(t))
	t.Cleanup(func() {
		if _, err := n.kubectlErr("", "delete", "--ignore-not-found", "-k", n.doctorOverlay(t)); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	// host-device ignores a requested MAC (macvlan would not do: it
	// applies the CNI_ARGS MAC Multus passes): with macguard, the shipped
	// NAD on eth2, macguard applies it and keeps a record; without, the
	// suite's copy on eth3, the request silently does not stick.
	n.applyNAD(t, hostDeviceNAD(t, n, "host-device-mac", true))
	n.applyNAD(t, hostDeviceNAD(t, n, "doctor-hostdev", false))
	const wantMAC, lostMAC = "0a:58:0a:46:00:07", "0a:58:0a:47:00:07"
	pods := []struct{ namespace, name, networks string }{
		{"default", "kept", selection("default", "host-device-mac", wantMAC)},
		{"default", "lost", selection("default", "doctor-hostdev", lostMAC)},
	}
	running := map[string]*corev1.Pod{}
	for _, pod := range pods {
		p := n.podSpec(pod.namespace, pod.name, pod.networks)
		n.createPod(t, p)
		running[pod.name] = n.runningPod(t, pod.namespace, pod.name)
	}
	if st := networkStatus(t, running["kept"], "net1"); st.MAC != wantMAC {
		t.Fatalf("setup: macguard did not apply the requested MAC (network-status %s)", st.MAC)
	}

	r, code := n.runDoctor(t, ds.Name)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := json.MarshalIndent(r, "", "  ")
			t.Logf("the doctor's report:\n%s", b)
		}
	})
	if code != 1 {
		t.Errorf("exit code %d, want 1 (the lost request)", code)
	}
	if r.Node != n.env["NODE_NAME"] {
		t.Errorf("report for node %q, want %q", r.Node, n.env["NODE_NAME"])
	}
	var kept *doctor.Pod
	for i := range r.Pods {
		if r.Pods[i].Name == "default/kept" {
			kept = &r.Pods[i]
		}
	}
	if kept == nil {
		var names []string
		for _, p := range r.Pods {
			names = append(names, p.Name)
		}
		t.Fatalf("default/kept not among the pods the doctor found: %v", names)
	}
	var net1 *doctor.PodInterface
	for i := range kept.Interfaces {
		if kept.Interfaces[i].Name == "net1" {
			net1 = &kept.Interfaces[i]
		}
	}
	// The node's host-device devices are veth ends (hack/k8s/up.sh).
	if net1 == nil || net1.Kind != "veth" || net1.MAC != wantMAC || net1.Network != "host-device-mac" || !net1.Macguard || net1.Applied != wantMAC {
		t.Errorf("default/kept net1 reported as %+v, want %s from host-device-mac, applied by macguard", net1, wantMAC)
	}
	var live bool
	for _, rec := range r.Records {
		live = live || (rec.IfName == "net1" && rec.AppliedMAC == wantMAC && rec.State == "live")
	}
	if !live {
		t.Errorf("no live record of net1 with %s: %+v", wantMAC, r.Records)
	}
	want := map[string]bool{}
	for _, f := range r.Findings {
		switch {
		case f.Pod == "default/kept" && f.Severity != doctor.Info:
			t.Errorf("finding about the healthy pod: %+v", f)
		case f.Code == "mac-request-ignored" && f.Pod == "default/lost" && f.Interface == "net1":
			// Multus keeps the request in its cache (capabilityArgs) even
			// though no plugin of the chain declares the capability.
			want["node: request ignored"] = true
		case f.Code == "cluster-mac-not-applied" && f.Pod == "default/lost" && f.NAD == "default/doctor-hostdev":
			want["cluster: request not applied"] = true
		case f.Code == "cluster-nad-mac-without-owner" && f.NAD == "default/doctor-hostdev":
			want["cluster: NAD without an owner"] = true
		case f.Section == doctor.SectionBinary && f.Severity != doctor.Info:
			t.Errorf("binary finding: %+v (the image's plugin and macguardctl are one build)", f)
		case f.Code == "cluster-node-unknown" || f.Code == "cluster-nads-unlisted":
			t.Errorf("the doctor's RBAC does not let it look: %+v", f)
		}
	}
	for _, w := range []string{"node: request ignored", "cluster: request not applied", "cluster: NAD without an owner"} {
		if !want[w] {
			t.Errorf("no finding for %s; findings:\n%s", w, findingLines(r))
		}
	}
	if !r.Binary.Present || !strings.HasPrefix(r.Binary.Version, "macguard ") {
		t.Errorf("binary %+v", r.Binary)
	}
	if _, err := n.cs.CoreV1().Pods("default").Get(ctx(t), "kept", metav1.GetOptions{}); err != nil {
		t.Errorf("the healthy pod is gone after the doctor ran: %v", err)
	}
}

func findingLines(r doctor.Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "  %s %s pod=%s if=%s nad=%s: %s\n", f.Severity, f.Code, f.Pod, f.Interface, f.NAD, f.Message)
	}
	return b.String()
}
