package deploy_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/ctl/webhook"
)

const (
	webhookComponent     = "components/webhook"
	certManagerComponent = "components/webhook-cert-manager"
)

// cert-manager's Issuer and Certificate (cert-manager.io/v1), the fields
// the component uses; strict decoding catches a misspelt one.
type cmIssuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SelfSigned *struct{} `json:"selfSigned,omitempty"`
		CA         *struct {
			SecretName string `json:"secretName"`
		} `json:"ca,omitempty"`
	} `json:"spec"`
}

type cmCertificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		IsCA        bool     `json:"isCA,omitempty"`
		CommonName  string   `json:"commonName,omitempty"`
		SecretName  string   `json:"secretName"`
		DNSNames    []string `json:"dnsNames,omitempty"`
		Duration    string   `json:"duration,omitempty"`
		RenewBefore string   `json:"renewBefore,omitempty"`
		PrivateKey  struct {
			Algorithm string `json:"algorithm"`
			Size      int    `json:"size"`
		} `json:"privateKey"`
		IssuerRef struct {
			Kind  string `json:"kind"`
			Name  string `json:"name"`
			Group string `json:"group,omitempty"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// webhookObjects are the kinds only the webhook components use.
type webhookObjects struct {
	deployments  []appsv1.Deployment
	services     []corev1.Service
	pdbs         []policyv1.PodDisruptionBudget
	roles        []rbacv1.Role
	roleBindings []rbacv1.RoleBinding
	mwcs         []admissionregistrationv1.MutatingWebhookConfiguration
	issuers      []cmIssuer
	certificates []cmCertificate
}

func (w webhookObjects) count() int {
	return len(w.deployments) + len(w.services) + len(w.pdbs) + len(w.roles) + len(w.roleBindings) + len(w.mwcs) + len(w.issuers) + len(w.certificates)
}

// decode decodes doc strictly when it is one of these kinds.
func (w *webhookObjects) decode(tm metav1.TypeMeta, doc []byte) (bool, error) {
	into := func(v any, add func()) (bool, error) {
		err := decodeStrict(doc, v)
		add()
		return true, err
	}
	switch tm.APIVersion + "/" + tm.Kind {
	case "apps/v1/Deployment":
		var x appsv1.Deployment
		return into(&x, func() { w.deployments = append(w.deployments, x) })
	case "v1/Service":
		var x corev1.Service
		return into(&x, func() { w.services = append(w.services, x) })
	case "policy/v1/PodDisruptionBudget":
		var x policyv1.PodDisruptionBudget
		return into(&x, func() { w.pdbs = append(w.pdbs, x) })
	case "rbac.authorization.k8s.io/v1/Role":
		var x rbacv1.Role
		return into(&x, func() { w.roles = append(w.roles, x) })
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		var x rbacv1.RoleBinding
		return into(&x, func() { w.roleBindings = append(w.roleBindings, x) })
	case "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration":
		var x admissionregistrationv1.MutatingWebhookConfiguration
		return into(&x, func() { w.mwcs = append(w.mwcs, x) })
	case "cert-manager.io/v1/Issuer":
		var x cmIssuer
		return into(&x, func() { w.issuers = append(w.issuers, x) })
	case "cert-manager.io/v1/Certificate":
		var x cmCertificate
		return into(&x, func() { w.certificates = append(w.certificates, x) })
	}
	return false, nil
}

// renderWith builds overlay plus components with the real kustomize and
// decodes the result.
func renderWith(t *testing.T, overlay string, components ...string) objects {
	t.Helper()
	return decodeAll(t, "kustomize build "+overlay+" + "+strings.Join(components, " + "), kustomizeWith(t, overlay, components...))
}

// TestWebhookComponent: the webhook as deployed is reachable through its
// Service, answers only for VMs and VMIs outside kube-system and opted-out
// namespaces, never blocks VM creation by default, and may touch only its
// own Secret and webhook configuration.
func TestWebhookComponent(t *testing.T) {
	version := testutil.MakefileVersion(t)
	o := renderWith(t, "overlays/cilium", webhookComponent)
	w := o.webhook
	if len(w.deployments) != 1 || len(w.services) != 1 || len(w.pdbs) != 1 || len(w.mwcs) != 1 || len(o.daemonSets) != 1 {
		t.Fatalf("rendered %d Deployments, %d Services, %d PDBs, %d webhook configurations, %d DaemonSets; want one each",
			len(w.deployments), len(w.services), len(w.pdbs), len(w.mwcs), len(o.daemonSets))
	}
	d, svc, pdb, mwc := w.deployments[0], w.services[0], w.pdbs[0], w.mwcs[0]
	spec := d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)

	// Two replicas of the same image, kept available through disruptions.
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Namespace != d.Namespace {
		t.Errorf("PDB minAvailable %v in %s, want 1 in %s", pdb.Spec.MinAvailable, pdb.Namespace, d.Namespace)
	}
	for what, sel := range map[string]*metav1.LabelSelector{"Deployment": d.Spec.Selector, "PDB": pdb.Spec.Selector} {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || !s.Matches(podLabels) {
			t.Errorf("%s selector %v does not select the webhook's pods %v", what, sel, podLabels)
		}
	}
	// The DaemonSet's selector must not pick up the webhook's pods.
	if s, _ := metav1.LabelSelectorAsSelector(o.daemonSets[0].Spec.Selector); s.Matches(podLabels) {
		t.Errorf("the DaemonSet's selector %v also selects the webhook's pods", o.daemonSets[0].Spec.Selector)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.Image != imageRepo+":"+version || !slices.Equal(c.Command, []string{"/macguardctl", "webhook"}) {
		t.Errorf("runs %s %q, want %s:%s [/macguardctl webhook]", c.Image, c.Command, imageRepo, version)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v, want HTTPS /readyz", c.ReadinessProbe)
	}
	// Least privilege: not root, nothing writable, no capability.
	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v", psc)
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext %+v", sc)
	}
	if spec.HostNetwork || spec.HostPID || len(spec.Volumes) != 0 {
		t.Errorf("hostNetwork %v hostPID %v volumes %v: the webhook needs none", spec.HostNetwork, spec.HostPID, spec.Volumes)
	}

	// The Service reaches the container's port.
	if s := labels.SelectorFromSet(svc.Spec.Selector); !s.Matches(podLabels) || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != c.Ports[0].Name {
		t.Errorf("Service %+v does not reach the pods' port %+v", svc.Spec, c.Ports)
	}

	// The webhook configuration.
	if mwc.Name != webhook.DefaultConfigName {
		t.Errorf("MutatingWebhookConfiguration %s, but the webhook writes the caBundle of %s", mwc.Name, webhook.DefaultConfigName)
	}
	wantRules := map[string][]admissionregistrationv1.OperationType{
		"virtualmachines":         {admissionregistrationv1.Create, admissionregistrationv1.Update},
		"virtualmachineinstances": {admissionregistrationv1.Create},
	}
	if len(mwc.Webhooks) != len(wantRules) {
		t.Fatalf("%d webhooks, want %d", len(mwc.Webhooks), len(wantRules))
	}
	for _, h := range mwc.Webhooks {
		if h.FailurePolicy == nil || *h.FailurePolicy != admissionregistrationv1.Ignore {
			t.Errorf("%s: failurePolicy %v, want Ignore (an outage must not block VM creation)", h.Name, h.FailurePolicy)
		}
		if h.SideEffects == nil || *h.SideEffects != admissionregistrationv1.SideEffectClassNone {
			t.Errorf("%s: sideEffects %v, want None", h.Name, h.SideEffects)
		}
		if h.TimeoutSeconds == nil || *h.TimeoutSeconds > 5 {
			t.Errorf("%s: timeoutSeconds %v, want at most 5", h.Name, h.TimeoutSeconds)
		}
		if !slices.Equal(h.AdmissionReviewVersions, []string{"v1"}) {
			t.Errorf("%s: admissionReviewVersions %v, want [v1] (the only version the handler reads)", h.Name, h.AdmissionReviewVersions)
		}
		if h.ReinvocationPolicy == nil || *h.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
			t.Errorf("%s: reinvocationPolicy %v, want IfNeeded", h.Name, h.ReinvocationPolicy)
		}
		s := h.ClientConfig.Service
		if s == nil || s.Name != svc.Name || s.Namespace != svc.Namespace || s.Path == nil || *s.Path != "/mutate" || s.Port == nil || *s.Port != svc.Spec.Ports[0].Port {
			t.Errorf("%s: clientConfig %+v does not name the Service %s/%s port %d path /mutate", h.Name, s, svc.Namespace, svc.Name, svc.Spec.Ports[0].Port)
		}
		if len(h.Rules) != 1 || !slices.Equal(h.Rules[0].APIGroups, []string{"kubevirt.io"}) || len(h.Rules[0].Resources) != 1 ||
			!slices.Equal(h.Rules[0].Operations, wantRules[h.Rules[0].Resources[0]]) {
			t.Errorf("%s: rules %+v", h.Name, h.Rules)
		}
		sel, err := metav1.LabelSelectorAsSelector(h.NamespaceSelector)
		if err != nil {
			t.Fatal(err)
		}
		for ns, want := range map[string]bool{"default": true, "kube-system": false, "optout": false} {
			l := labels.Set{"kubernetes.io/metadata.name": ns}
			if ns == "optout" {
				l["macguard.io/webhook"] = "disabled"
			}
			if sel.Matches(l) != want {
				t.Errorf("%s: namespace %v selected %v, want %v", h.Name, l, !want, want)
			}
		}
	}

	// RBAC: its own Secret (create is namespaced, get/update by name) and
	// its own webhook configuration, nothing else.
	sa := spec.ServiceAccountName
	if len(w.roles) != 1 || len(w.roleBindings) != 1 {
		t.Fatalf("%d Roles, %d RoleBindings", len(w.roles), len(w.roleBindings))
	}
	wantRole := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{webhook.DefaultSecretName}, Verbs: []string{"get", "update"}},
	}
	if r := w.roles[0]; r.Namespace != d.Namespace || !reflect.DeepEqual(r.Rules, wantRole) {
		t.Errorf("Role %s/%s rules %+v, want %+v in %s", r.Namespace, r.Name, r.Rules, wantRole, d.Namespace)
	}
	if b := w.roleBindings[0]; b.RoleRef.Name != w.roles[0].Name || !reflect.DeepEqual(b.Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: d.Namespace}}) {
		t.Errorf("RoleBinding %+v does not bind the Role to %s", b, sa)
	}
	var found bool
	for i, r := range o.roles {
		if r.Name != "macguard-webhook" {
			continue
		}
		found = true
		want := []rbacv1.PolicyRule{{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"},
			ResourceNames: []string{mwc.Name}, Verbs: []string{"get", "patch"}}}
		if !reflect.DeepEqual(r.Rules, want) {
			t.Errorf("ClusterRole rules %+v, want %+v", r.Rules, want)
		}
		if b := o.bindings[i]; b.RoleRef.Name != r.Name || !reflect.DeepEqual(b.Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: d.Namespace}}) {
			t.Errorf("ClusterRoleBinding %+v", b)
		}
	}
	if !found {
		t.Error("no ClusterRole for the webhook configuration's caBundle")
	}
	if !slices.ContainsFunc(o.accounts, func(a corev1.ServiceAccount) bool { return a.Name == sa && a.Namespace == d.Namespace }) {
		t.Errorf("service account %s not rendered", sa)
	}
}

// TestWebhookCertManager: with cert-manager the webhook serves the
// certificate cert-manager keeps in the mounted Secret, cert-manager injects
// its CA, the certificate names the Service, and the webhook's RBAC goes.
func TestWebhookCertManager(t *testing.T) {
	o := renderWith(t, "overlays/secondary", webhookComponent, certManagerComponent)
	w := o.webhook
	if len(w.roles) != 0 || len(w.roleBindings) != 0 || slices.ContainsFunc(o.roles, func(r rbacv1.ClusterRole) bool { return r.Name == "macguard-webhook" }) {
		t.Error("the webhook keeps RBAC it does not need with cert-manager")
	}
	if len(w.deployments) != 1 || len(w.mwcs) != 1 || len(w.services) != 1 {
		t.Fatal("webhook objects missing")
	}
	d, mwc, svc := w.deployments[0], w.mwcs[0], w.services[0]
	spec := d.Spec.Template.Spec
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it does not use")
	}
	c := spec.Containers[0]
	var dir string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--cert-dir="); ok {
			dir = v
		}
	}
	var secret string
	for _, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if m.Name == v.Name && m.MountPath == dir && v.Secret != nil && m.ReadOnly {
				secret = v.Secret.SecretName
			}
		}
	}
	var serving *cmCertificate
	for i, cert := range w.certificates {
		if cert.Spec.SecretName == secret && !cert.Spec.IsCA {
			serving = &w.certificates[i]
		}
	}
	if dir == "" || serving == nil {
		t.Fatalf("args %q, mounts %+v: --cert-dir is not a read-only mount of a Certificate's Secret", c.Args, c.VolumeMounts)
	}
	if got := mwc.Annotations["cert-manager.io/inject-ca-from"]; got != serving.Namespace+"/"+serving.Name {
		t.Errorf("inject-ca-from %q, want %s/%s", got, serving.Namespace, serving.Name)
	}
	if name := svc.Name + "." + svc.Namespace + ".svc"; !slices.Contains(serving.Spec.DNSNames, name) {
		t.Errorf("certificate names %v lack %s", serving.Spec.DNSNames, name)
	}
	issuers := map[string]bool{}
	for _, i := range w.issuers {
		issuers[i.Name] = true
	}
	for _, cert := range w.certificates {
		if cert.Spec.IssuerRef.Kind != "Issuer" || !issuers[cert.Spec.IssuerRef.Name] {
			t.Errorf("certificate %s: issuer %+v not rendered", cert.Name, cert.Spec.IssuerRef)
		}
	}
}
