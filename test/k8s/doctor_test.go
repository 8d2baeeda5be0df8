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

	"github.com/macguard-cni/macguard/pkg/doctor"
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
//     the API server on the node's address directly.
func (n *node) doctorOverlay(t *testing.T) string {
	t.Helper()
	base := n.overlay(t, "doctor-base", "overlays/secondary")
	dir := filepath.Join(n.env["K8S_RUN"], "overlays", "doctor")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	relBase, err := filepath.Rel(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	relComponent, err := filepath.Rel(dir, filepath.Join(n.repo, "deploy", "components", "doctor"))
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
components:
  - %s
patches:
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
                env:
                  - name: KUBERNETES_SERVICE_HOST
                    value: %q
                  - name: KUBERNETES_SERVICE_PORT
                    value: "6443"
                volumeMounts:
                  - name: doctor-netns
                    mountPath: /var/run/netns
                    mountPropagation: None
            volumes:
              - name: doctor-cni-conf
                hostPath:
                  path: %s
`, relBase, relComponent, n.env["NODE_IP"], n.env["CNI_CONF_DIR"])
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runDoctor runs macguardctl doctor --json in the DaemonSet's pod, as the
// README tells an operator to, and returns the report and the exit code.
func (n *node) runDoctor(t *testing.T, pod string, args ...string) (doctor.Report, int) {
	t.Helper()
	stdout, err := n.kubectlErr("", append([]string{"-n", "macguard", "exec", pod, "-c", "install", "--", "/macguardctl", "doctor", "--json"}, args...)...)
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
	n.ensureNamespace(t, "doctor")
	mg := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"doctor-mg","plugins":[{"type":"macvlan","master":%q,"mode":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"192.168.70.0/24"}]]}},{"type":"macguard","capabilities":{"mac":true}}]}`, n.env["NAD_MASTER"])
	// The same network without macguard: Multus passes a requested MAC
	// only to a plugin that declares the mac capability, and none does.
	plain := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"doctor-plain","plugins":[{"type":"macvlan","master":%q,"mode":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"192.168.71.0/24"}]]}}]}`, n.env["NAD_MASTER"])
	n.applyNAD(t, nadYAML("doctor", "doctor-mg", mg))
	n.applyNAD(t, nadYAML("doctor", "doctor-plain", plain))
	const wantMAC, lostMAC = "0a:58:0a:46:00:07", "0a:58:0a:47:00:07"
	pods := map[string]string{"kept": selection("doctor", "doctor-mg", wantMAC), "lost": selection("doctor", "doctor-plain", lostMAC)}
	running := map[string]*corev1.Pod{}
	for name, sel := range pods {
		p := n.podSpec("doctor", name, sel)
		n.createPod(t, p)
		running[name] = n.runningPod(t, "doctor", name)
	}
	if st := networkStatus(t, running["kept"], "net1"); st.MAC != wantMAC {
		t.Fatalf("setup: macguard did not apply the requested MAC (network-status %s)", st.MAC)
	}

	r, code := n.runDoctor(t, ds.Name)
	if code != 1 {
		t.Errorf("exit code %d, want 1 (the lost request)", code)
	}
	if r.Node != n.env["NODE_NAME"] {
		t.Errorf("report for node %q, want %q", r.Node, n.env["NODE_NAME"])
	}
	var kept *doctor.Pod
	for i := range r.Pods {
		if r.Pods[i].Name == "doctor/kept" {
			kept = &r.Pods[i]
		}
	}
	if kept == nil {
		var names []string
		for _, p := range r.Pods {
			names = append(names, p.Name)
		}
		t.Fatalf("doctor/kept not among the pods the doctor found: %v", names)
	}
	var net1 *doctor.PodInterface
	for i := range kept.Interfaces {
		if kept.Interfaces[i].Name == "net1" {
			net1 = &kept.Interfaces[i]
		}
	}
	if net1 == nil || net1.Kind != "macvlan" || net1.MAC != wantMAC || net1.Network != "doctor-mg" || !net1.Macguard || net1.Applied != wantMAC {
		t.Errorf("doctor/kept net1 reported as %+v, want macvlan %s from doctor-mg, applied by macguard", net1, wantMAC)
	}
	want := map[string]bool{}
	for _, f := range r.Findings {
		switch {
		case f.Pod == "doctor/kept" && f.Severity != doctor.Info:
			t.Errorf("finding about the healthy pod: %+v", f)
		case f.Code == "mac-request-ignored" && f.Pod == "doctor/lost":
			// Only when Multus put the request into libcni's cache
			// (capabilityArgs) although no plugin declared the capability;
			// the cluster check below does not depend on that.
			t.Logf("the node check saw the lost request too: %s", f.Message)
		case f.Code == "cluster-mac-not-applied" && f.Pod == "doctor/lost" && f.NAD == "doctor/doctor-plain":
			want["cluster: request not applied"] = true
		case f.Code == "cluster-nad-mac-without-owner" && f.NAD == "doctor/doctor-plain":
			want["cluster: NAD without an owner"] = true
		case f.Section == doctor.SectionBinary && f.Severity != doctor.Info:
			t.Errorf("binary finding: %+v (the image's plugin and macguardctl are one build)", f)
		case f.Code == "cluster-node-unknown" || f.Code == "cluster-nads-unlisted":
			t.Errorf("the doctor's RBAC does not let it look: %+v", f)
		}
	}
	for _, w := range []string{"cluster: request not applied", "cluster: NAD without an owner"} {
		if !want[w] {
			t.Errorf("no finding for %s; findings:\n%s", w, findingLines(r))
		}
	}
	if !r.Binary.Present || !strings.HasPrefix(r.Binary.Version, "macguard ") {
		t.Errorf("binary %+v", r.Binary)
	}
	if _, err := n.cs.CoreV1().Pods("doctor").Get(ctx(t), "kept", metav1.GetOptions{}); err != nil {
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
