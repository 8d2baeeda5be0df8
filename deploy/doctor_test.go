package deploy_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const doctorComponent = "components/doctor"

// doctorRBAC decodes the component's RBAC strictly: one ClusterRole and
// its binding.
func doctorRBAC(t *testing.T) (rbacv1.ClusterRole, rbacv1.ClusterRoleBinding) {
	t.Helper()
	name := filepath.Join(doctorComponent, "rbac.yaml")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	o := decodeAll(t, name, data)
	if len(o.roles) != 1 || len(o.bindings) != 1 || o.count() != 2 {
		t.Fatalf("%s: %d ClusterRoles, %d bindings and other objects; want one ClusterRole and its binding", name, len(o.roles), len(o.bindings))
	}
	return o.roles[0], o.bindings[0]
}

// The doctor reads pods, NADs, its node, VMs, VMIs, webhook configurations
// and Calico's FelixConfigurations and IP pools, and can write nothing.
func TestDoctorRBACIsReadOnly(t *testing.T) {
	role, binding := doctorRBAC(t)
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}},
		{APIGroups: []string{"k8s.cni.cncf.io"}, Resources: []string{"network-attachment-definitions"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{"kubevirt.io"}, Resources: []string{"virtualmachines", "virtualmachineinstances"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{"crd.projectcalico.org"}, Resources: []string{"felixconfigurations", "ippools"}, Verbs: []string{"get", "list"}},
	}
	if !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("ClusterRole rules %+v, want %+v", role.Rules, want)
	}
	if binding.RoleRef.Name != role.Name || binding.RoleRef.Kind != "ClusterRole" ||
		!reflect.DeepEqual(binding.Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "macguard", Namespace: "macguard"}}) {
		t.Errorf("ClusterRoleBinding %+v does not bind %s to the DaemonSet's service account", binding, role.Name)
	}
}

// renderWithDoctor builds overlay plus the doctor component with the real
// kustomize and returns the DaemonSet and the kinds rendered.
func renderWithDoctor(t *testing.T, overlay string) (appsv1.DaemonSet, []string) {
	t.Helper()
	out := kustomizeWith(t, overlay, doctorComponent)
	var ds []appsv1.DaemonSet
	var kinds []string
	for _, doc := range splitDocs(out) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, tm.Kind)
		if tm.Kind == "DaemonSet" {
			var d appsv1.DaemonSet
			if err := decodeStrict(doc, &d); err != nil {
				t.Fatal(err)
			}
			ds = append(ds, d)
		}
	}
	if len(ds) != 1 {
		t.Fatalf("%d DaemonSets rendered", len(ds))
	}
	return ds[0], kinds
}

// With the component, the pod can look at everything the doctor reads, at
// the node's own paths and read-only, and gains exactly SYS_ADMIN and
// SYS_PTRACE; every mount the overlay had is unchanged.
func TestDoctorComponent(t *testing.T) {
	for _, overlay := range []string{"overlays/secondary", "overlays/cilium", "overlays/calico"} {
		t.Run(overlay, func(t *testing.T) {
			plain := render(t, overlay).daemonSets[0]
			ds, kinds := renderWithDoctor(t, overlay)
			for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
				if !slices.Contains(kinds, kind) {
					t.Errorf("no %s rendered (kinds %v)", kind, kinds)
				}
			}
			spec := ds.Spec.Template.Spec
			if !spec.HostPID || spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
				t.Errorf("hostPID %v, automountServiceAccountToken %v; want both true", spec.HostPID, spec.AutomountServiceAccountToken)
			}
			c := spec.Containers[0]
			caps := c.SecurityContext.Capabilities
			if !reflect.DeepEqual(caps.Add, []corev1.Capability{"SYS_ADMIN", "SYS_PTRACE"}) || !reflect.DeepEqual(caps.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("capabilities add %v drop %v; want add [SYS_ADMIN SYS_PTRACE], drop [ALL]", caps.Add, caps.Drop)
			}
			if p := c.SecurityContext.Privileged; p == nil || *p {
				t.Errorf("privileged %v, want false", p)
			}
			var nodeName bool
			for _, e := range c.Env {
				nodeName = nodeName || (e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName")
			}
			if !nodeName {
				t.Error("no NODE_NAME from spec.nodeName")
			}
			hostPath := map[string]string{}
			for _, v := range spec.Volumes {
				if v.HostPath != nil {
					hostPath[v.Name] = v.HostPath.Path
				}
			}
			mounts := map[string]corev1.VolumeMount{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = m
			}
			for _, path := range []string{"/var/run/netns", "/var/lib/cni", "/etc/cni/net.d", "/opt/cni/bin", "/run/cni"} {
				m, ok := mounts[path]
				switch {
				case !ok:
					t.Errorf("%s not mounted", path)
				case !m.ReadOnly:
					t.Errorf("%s mounted writable", path)
				case hostPath[m.Name] != path:
					t.Errorf("%s is hostPath %q, want the node's %s", path, hostPath[m.Name], path)
				}
			}
			if m := mounts["/var/run/netns"]; m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationHostToContainer {
				t.Errorf("/var/run/netns propagation %v, want HostToContainer", m.MountPropagation)
			}
			// Nothing writable is added: the writable mounts are the
			// overlay's own.
			var writable, plainWritable []string
			for _, m := range c.VolumeMounts {
				if !m.ReadOnly {
					writable = append(writable, m.MountPath)
				}
			}
			for _, m := range plain.Spec.Template.Spec.Containers[0].VolumeMounts {
				if !m.ReadOnly {
					plainWritable = append(plainWritable, m.MountPath)
				}
			}
			slices.Sort(writable)
			slices.Sort(plainWritable)
			if !reflect.DeepEqual(writable, plainWritable) {
				t.Errorf("writable mounts %v, the overlay alone has %v", writable, plainWritable)
			}
		})
	}
}
