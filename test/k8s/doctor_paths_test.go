package k8s

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/macguard-cni/macguard/pkg/ctl/doctor"
)

// standInCRD is a minimal CustomResourceDefinition that keeps every field:
// it stands in for Calico's CRDs, whose module is not served here, and for
// KubeVirt's when $MACGUARD_KUBEVIRT_CRDS (KubeVirt's real CRDs, made by
// test/kubevirtcrd for TestWebhook) is not set and they are not installed
// already. The doctor reads these objects through the dynamic client,
// as unstructured objects, exactly as it reads the real ones: only the
// group, version, plural and scope matter to it.
func standInCRD(group, kind, plural, scope string) string {
	return fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: %[3]s.%[1]s
  labels:
    macguard.test/stand-in: "true"
spec:
  group: %[1]s
  scope: %[4]s
  names:
    kind: %[2]s
    listKind: %[2]sList
    plural: %[3]s
    singular: %[5]s
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
`, group, kind, plural, scope, strings.ToLower(kind))
}

// installStandIns creates the stand-in CRDs that are not there yet and
// removes them (and so every object of theirs) when the test ends. A CRD
// already installed (the real one) is used as it is and left alone.
func (n *node) installStandIns(t *testing.T, crds map[string]string) {
	t.Helper()
	for name, manifest := range crds {
		if _, err := n.kubectlErr("", "get", "crd", name); err == nil {
			t.Logf("CRD %s is installed already: using it", name)
			continue
		}
		n.kubectl(t, manifest, "apply", "-f", "-")
		t.Cleanup(func() {
			if _, err := n.kubectlErr("", "delete", "--ignore-not-found", "--wait", "crd", name); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
		n.kubectl(t, "", "wait", "--for", "condition=Established", "--timeout", "60s", "crd/"+name)
	}
}

// pathCodes are the doctor's cluster packet-path findings, by code.
func pathCodes(r doctor.Report) map[string]doctor.Finding {
	out := map[string]doctor.Finding{}
	for _, f := range r.Findings {
		if strings.HasPrefix(f.Code, "cluster-calico-") || f.Code == "cluster-paths-unlisted" {
			out[f.Code] = f
		}
	}
	return out
}

// TestDoctorPaths: the doctor in the DaemonSet's pod (the doctor component
// and its RBAC) on the real API server. Without Calico's and KubeVirt's
// CRDs nothing is said. With stand-ins for them: a VM bridged to the pod
// network under Calico eBPF is a warning while bpfRedirectToPeer is left
// at its default, and nothing once it is Disabled; a macvlan NAD next to a
// VXLAN IP pool is an info finding, and nothing next to an IPIP pool.
func TestDoctorPaths(t *testing.T) {
	n := theNode
	ds := n.rollout(t, n.doctorOverlay(t))
	t.Cleanup(func() {
		if _, err := n.kubectlErr("", "delete", "--ignore-not-found", "-k", n.doctorOverlay(t)); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	n.applyNAD(t, nadYAML("default", "paths-lan", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"paths-lan","plugins":[{"type":"macvlan","master":%q,"ipam":{"type":"static"}},{"type":"macguard","capabilities":{"mac":true}}]}`, n.env["NAD_MASTER"])))

	report := func(step string) map[string]doctor.Finding {
		t.Helper()
		r, _ := n.runDoctor(t, ds.Name)
		got := pathCodes(r)
		t.Logf("%s: %d packet-path finding(s)", step, len(got))
		for _, f := range r.Findings {
			if f.Code == "cluster-unavailable" || f.Code == "cluster-not-checked" {
				t.Fatalf("%s: the doctor did not check the cluster: %+v", step, f)
			}
		}
		return got
	}

	crds := map[string]string{
		"felixconfigurations.crd.projectcalico.org": standInCRD("crd.projectcalico.org", "FelixConfiguration", "felixconfigurations", "Cluster"),
		"ippools.crd.projectcalico.org":             standInCRD("crd.projectcalico.org", "IPPool", "ippools", "Cluster"),
		"virtualmachines.kubevirt.io":               standInCRD("kubevirt.io", "VirtualMachine", "virtualmachines", "Namespaced"),
		"virtualmachineinstances.kubevirt.io":       standInCRD("kubevirt.io", "VirtualMachineInstance", "virtualmachineinstances", "Namespaced"),
	}
	standIns := true
	for name := range crds {
		if _, err := n.kubectlErr("", "get", "crd", name); err == nil {
			standIns = false
		}
	}
	if standIns {
		// A cluster without Calico and KubeVirt: not a finding.
		if got := report("no Calico or KubeVirt CRDs"); len(got) != 0 {
			t.Errorf("findings without Calico's and KubeVirt's CRDs: %+v", got)
		}
	}
	if os.Getenv("MACGUARD_KUBEVIRT_CRDS") != "" {
		// KubeVirt's own CRDs (TestWebhook's; left installed, as there):
		// the stand-ins are then used for Calico's only.
		n.kubeVirtCRDs(t)
	}
	n.installStandIns(t, crds)

	const objects = `apiVersion: crd.projectcalico.org/v1
kind: FelixConfiguration
metadata:
  name: default
spec:
  bpfEnabled: true
  bpfRedirectToPeer: Disabled
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: paths-pool
spec:
  cidr: 10.250.0.0/16
  ipipMode: Always
  vxlanMode: Never
---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: paths-vm
  namespace: default
spec:
  runStrategy: Halted
  template:
    spec:
      domain:
        devices:
          interfaces:
            - name: default
              bridge: {}
      networks:
        - name: default
          pod: {}
`
	n.kubectl(t, objects, "apply", "-f", "-")
	t.Cleanup(func() {
		if _, err := n.kubectlErr(objects, "delete", "--ignore-not-found", "-f", "-"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if got := report("eBPF with redirect Disabled, an IPIP pool"); len(got) != 0 {
		t.Errorf("findings with bpfRedirectToPeer Disabled and no VXLAN pool: %+v", got)
	}

	// Back to Felix's default (L2Only), and the pool to VXLAN.
	n.kubectl(t, "", "patch", "felixconfiguration", "default", "--type", "json", "-p", `[{"op":"remove","path":"/spec/bpfRedirectToPeer"}]`)
	n.kubectl(t, "", "patch", "ippool", "paths-pool", "--type", "merge", "-p", `{"spec":{"ipipMode":"Never","vxlanMode":"Always"}}`)
	got := report("eBPF with the default redirect, a VXLAN pool")
	bpf, ok := got["cluster-calico-bpf-bridge-vm"]
	switch {
	case !ok:
		t.Errorf("no cluster-calico-bpf-bridge-vm: %+v", got)
	case bpf.Severity != doctor.Warning || !strings.Contains(bpf.Message, "VirtualMachine default/paths-vm") ||
		!strings.Contains(bpf.Message, "L2Only, the default") || !strings.Contains(bpf.Remedy, "Disabled") || !strings.Contains(bpf.Remedy, "masquerade"):
		t.Errorf("cluster-calico-bpf-bridge-vm does not name the VM, the default and both remedies: %+v", bpf)
	}
	vx, ok := got["cluster-calico-vxlan-macvlan"]
	switch {
	case !ok:
		t.Errorf("no cluster-calico-vxlan-macvlan: %+v", got)
	case vx.Severity != doctor.Info || !strings.Contains(vx.Message, "paths-pool") || !strings.Contains(vx.Message, "default/paths-lan"):
		t.Errorf("cluster-calico-vxlan-macvlan does not name the pool and the NAD: %+v", vx)
	}
	if f, ok := got["cluster-paths-unlisted"]; ok {
		t.Errorf("the doctor's RBAC does not let it read: %+v", f)
	}
}
