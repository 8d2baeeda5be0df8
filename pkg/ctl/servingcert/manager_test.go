package servingcert

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/macguard-cni/macguard/pkg/logging"
)

func newFake() *dynamicfake.FakeDynamicClient {
	mwc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
		"metadata": map[string]any{"name": "macguard-webhook"},
		"webhooks": []any{
			map[string]any{"name": "vm.macguard.io", "clientConfig": map[string]any{"service": map[string]any{"name": "macguard-webhook", "namespace": "macguard"}}},
			map[string]any{"name": "vmi.macguard.io", "clientConfig": map[string]any{"service": map[string]any{"name": "macguard-webhook", "namespace": "macguard"}}},
		}}}
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{secretResource: "SecretList", mwcResource: "MutatingWebhookConfigurationList"}, mwc)
}

func manager(c *dynamicfake.FakeDynamicClient) *Manager {
	return &Manager{Client: c, Namespace: "macguard", Secret: "macguard-webhook-cert", WebhookConfig: "macguard-webhook",
		Params: params, Log: logging.Discard()}
}

// TestReplicasAgree: two replicas start together; the second reads "no
// Secret", the first creates it, the second's create is refused and it
// reads again. Both serve the same certificate, and both webhooks of the
// configuration carry a caBundle that verifies it.
func TestReplicasAgree(t *testing.T) {
	c := newFake()
	a, b := manager(c), manager(c)
	// a creates the Secret; b's first read happened just before that, so
	// it sees none and tries to create one too.
	if err := a.Sync(context.Background()); err != nil {
		t.Fatalf("replica a: %v", err)
	}
	var raced atomic.Bool
	c.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if raced.CompareAndSwap(false, true) {
			return true, nil, apierrors.NewNotFound(secretResource.GroupResource(), "macguard-webhook-cert")
		}
		return false, nil, nil
	})
	if err := b.Sync(context.Background()); err != nil {
		t.Fatalf("replica b: %v", err)
	}
	ca, _ := a.GetCertificate(nil)
	cb, _ := b.GetCertificate(nil)
	if ca == nil || cb == nil || string(ca.Certificate[0]) != string(cb.Certificate[0]) {
		t.Fatal("the replicas serve different certificates")
	}
	creates := 0
	for _, act := range c.Actions() {
		if act.GetVerb() == "create" {
			creates++
		}
	}
	if creates != 2 {
		t.Fatalf("%d creates, want 2 (one refused)", creates)
	}
	mwc, err := c.Resource(mwcResource).Get(context.Background(), "macguard-webhook", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
	for _, h := range hooks {
		bundle, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "caBundle")
		pem, err := base64.StdEncoding.DecodeString(bundle)
		pool := x509.NewCertPool()
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			t.Fatalf("webhook caBundle %q", bundle)
		}
		leaf, _ := x509.ParseCertificate(ca.Certificate[0])
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: params.DNSNames[0]}); err != nil {
			t.Fatalf("the served certificate does not verify against the caBundle: %v", err)
		}
	}
}

// TestRotationServes: when the serving certificate is due, a sync renews
// it and GetCertificate returns the new one; the bundle is unchanged.
func TestRotationServes(t *testing.T) {
	c := newFake()
	m := manager(c)
	now := time.Now()
	m.Now = func() time.Time { return now }
	if err := m.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	first, _ := m.GetCertificate(nil)
	now = now.Add(21 * 24 * time.Hour)
	if err := m.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	second, _ := m.GetCertificate(nil)
	if string(first.Certificate[0]) == string(second.Certificate[0]) {
		t.Fatal("the certificate was not renewed")
	}
	// A second replica now reads the renewed certificate without writing.
	before := len(c.Actions())
	o := manager(c)
	o.Now = m.Now
	if err := o.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	third, _ := o.GetCertificate(nil)
	if string(third.Certificate[0]) != string(second.Certificate[0]) {
		t.Fatal("the second replica serves another certificate")
	}
	for _, act := range c.Actions()[before:] {
		if v := act.GetVerb(); v != "get" {
			t.Fatalf("an up-to-date replica did %s", v)
		}
	}
}
