package servingcert

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// Resources read and written through the dynamic client (the typed
// clientset would cost every macguardctl process its init; see
// pkg/ctl/doctor's TestNoTypedClientset).
var (
	secretResource = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	mwcResource    = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}
)

// Manager keeps the Secret current and serves its certificate.
type Manager struct {
	Client            dynamic.Interface
	Namespace, Secret string
	// WebhookConfig is the MutatingWebhookConfiguration whose webhooks get
	// the bundle as caBundle ("" to leave it alone).
	WebhookConfig string
	Params        Params
	Log           *slog.Logger
	Now           func() time.Time

	current atomic.Pointer[served]
}

// served is the certificate in use and the PEM it was loaded from.
type served struct {
	pem  []byte
	cert tls.Certificate
}

// GetCertificate is tls.Config.GetCertificate: the certificate of the last
// successful sync.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := m.current.Load()
	if c == nil {
		return nil, fmt.Errorf("no serving certificate yet (secret %s/%s not synced)", m.Namespace, m.Secret)
	}
	return &c.cert, nil
}

// Sync brings the Secret up to date, loads its certificate and writes the
// bundle into the webhook configuration. Replicas race on the Secret: a
// create that finds it already there, or an update that finds a newer
// resourceVersion, reads it again and starts over, so all agree on the
// one Secret the API server accepted.
func (m *Manager) Sync(ctx context.Context) error {
	sc := m.Client.Resource(secretResource).Namespace(m.Namespace)
	for attempt := 0; attempt < 5; attempt++ {
		u, err := sc.Get(ctx, m.Secret, metav1.GetOptions{})
		exists := err == nil
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("reading secret %s/%s: %w", m.Namespace, m.Secret, err)
		}
		var s State
		if exists {
			s = decode(u)
		}
		n, changed, err := Step(s, m.Params, m.now())
		if err != nil {
			return err
		}
		if changed {
			if !exists {
				u = &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret",
					"metadata": map[string]any{"name": m.Secret, "namespace": m.Namespace}, "type": "Opaque"}}
			}
			encode(u, n)
			if exists {
				_, err = sc.Update(ctx, u, metav1.UpdateOptions{})
			} else {
				_, err = sc.Create(ctx, u, metav1.CreateOptions{})
			}
			if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
				m.Log.Info("another replica wrote the certificate secret first; reading it again", "secret", m.Namespace+"/"+m.Secret)
				continue
			}
			if err != nil {
				return fmt.Errorf("writing secret %s/%s: %w", m.Namespace, m.Secret, err)
			}
			m.Log.Info("certificate secret updated", "secret", m.Namespace+"/"+m.Secret, "created", !exists)
		}
		if err := m.load(n); err != nil {
			return err
		}
		return m.writeBundle(ctx, n.Bundle())
	}
	return fmt.Errorf("secret %s/%s: kept losing the race with other replicas; will retry", m.Namespace, m.Secret)
}

// Run syncs every interval until ctx ends, logging failures (the last good
// certificate keeps serving).
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, m.Log, "certificate sync failed; serving the last good certificate", m.Sync)
}

// every calls f every interval until ctx ends and logs its errors.
func every(ctx context.Context, interval time.Duration, log *slog.Logger, msg string, f func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := f(ctx); err != nil {
				log.Error(msg, "err", err)
			}
		}
	}
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) load(s State) error {
	old := m.current.Load()
	if old != nil && bytes.Equal(old.pem, s.Cert) {
		return nil
	}
	c, err := tls.X509KeyPair(s.Cert, s.Key)
	if err != nil {
		return fmt.Errorf("secret %s/%s: serving certificate: %w", m.Namespace, m.Secret, err)
	}
	m.current.Store(&served{pem: s.Cert, cert: c})
	if old != nil {
		m.Log.Info("serving a new certificate", "secret", m.Namespace+"/"+m.Secret, "notAfter", c.Leaf.NotAfter)
	}
	return nil
}

// writeBundle sets caBundle on every webhook of the configuration, with a
// JSON patch that tests the resourceVersion it read (a concurrent edit makes
// the next sync try again).
func (m *Manager) writeBundle(ctx context.Context, bundle []byte) error {
	if m.WebhookConfig == "" {
		return nil
	}
	mc := m.Client.Resource(mwcResource)
	u, err := mc.Get(ctx, m.WebhookConfig, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", m.WebhookConfig, err)
	}
	hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
	want := base64.StdEncoding.EncodeToString(bundle)
	var ops []string
	if rv := u.GetResourceVersion(); rv != "" {
		ops = append(ops, fmt.Sprintf(`{"op":"test","path":"/metadata/resourceVersion","value":%q}`, rv))
	}
	tests := len(ops)
	for i, h := range hooks {
		hm, _ := h.(map[string]any)
		if got, _, _ := unstructured.NestedString(hm, "clientConfig", "caBundle"); got != want {
			ops = append(ops, fmt.Sprintf(`{"op":"add","path":"/webhooks/%d/clientConfig/caBundle","value":%q}`, i, want))
		}
	}
	if len(ops) == tests {
		return nil
	}
	patch := "[" + strings.Join(ops, ",") + "]"
	if _, err := mc.Patch(ctx, m.WebhookConfig, types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("writing caBundle into MutatingWebhookConfiguration %s: %w", m.WebhookConfig, err)
	}
	m.Log.Info("caBundle written", "mutatingwebhookconfiguration", m.WebhookConfig, "webhooks", len(ops)-tests)
	return nil
}

func decode(u *unstructured.Unstructured) State {
	data, _, _ := unstructured.NestedStringMap(u.Object, "data")
	get := func(k string) []byte {
		b, err := base64.StdEncoding.DecodeString(data[k])
		if err != nil || len(b) == 0 {
			return nil
		}
		return b
	}
	s := State{Signer: get("signer.crt"), SignerKey: get("signer.key"), Next: get("next.crt"), NextKey: get("next.key"),
		Prev: get("prev.crt"), Cert: get("tls.crt"), Key: get("tls.key")}
	s.NextSince, _ = time.Parse(time.RFC3339, string(get("next.since")))
	return s
}

func encode(u *unstructured.Unstructured, s State) {
	data := map[string]any{}
	put := func(k string, v []byte) {
		if len(v) > 0 {
			data[k] = base64.StdEncoding.EncodeToString(v)
		}
	}
	put("tls.crt", s.Cert)
	put("tls.key", s.Key)
	put("ca.crt", s.Bundle())
	put("signer.crt", s.Signer)
	put("signer.key", s.SignerKey)
	put("next.crt", s.Next)
	put("next.key", s.NextKey)
	put("prev.crt", s.Prev)
	if !s.NextSince.IsZero() {
		put("next.since", []byte(s.NextSince.UTC().Format(time.RFC3339)))
	}
	u.Object["data"] = data
}
