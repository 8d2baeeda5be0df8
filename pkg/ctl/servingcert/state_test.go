package servingcert

import (
	"bytes"
	"crypto/x509"
	"testing"
	"time"
)

var params = Params{DNSNames: []string{"macguard-webhook.macguard.svc"}, CAValidity: 300 * 24 * time.Hour, CertValidity: 30 * 24 * time.Hour, Grace: 10 * time.Minute}

// verify checks that the serving certificate chains to the bundle for the
// service name at now, as the API server does.
func verify(t *testing.T, s State, now time.Time) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.Bundle()) {
		t.Fatal("bundle has no certificate")
	}
	c, err := parseCert(s.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: params.DNSNames[0], CurrentTime: now}); err != nil {
		t.Fatalf("at %s the serving certificate does not verify against the bundle: %v", now, err)
	}
}

func TestStepLifecycle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, changed, err := Step(State{}, params, t0)
	if err != nil || !changed {
		t.Fatalf("fresh: changed %v err %v", changed, err)
	}
	verify(t, s, t0)
	if _, changed, _ := Step(s, params, t0.Add(time.Hour)); changed {
		t.Fatal("nothing due, but Step changed the state")
	}
	// The serving certificate is renewed under the same CA: the bundle
	// stays the same, so the API server's trust never lapses.
	t1 := t0.Add(21 * 24 * time.Hour)
	s1, changed, _ := Step(s, params, t1)
	if !changed || bytes.Equal(s1.Cert, s.Cert) || !bytes.Equal(s1.Bundle(), s.Bundle()) {
		t.Fatalf("serving certificate not renewed alone (changed %v)", changed)
	}
	verify(t, s1, t1)
	// The CA is due: first only announced in the bundle, the old one still signs.
	t2 := t0.Add(201 * 24 * time.Hour)
	s2, changed, _ := Step(s1, params, t2)
	if !changed || s2.Next == nil || !bytes.Equal(s2.Signer, s1.Signer) {
		t.Fatalf("next CA not announced: changed %v", changed)
	}
	verify(t, s2, t2)
	// Before the grace is over the next CA does not sign.
	if s3, _, _ := Step(s2, params, t2.Add(params.Grace-time.Second)); !bytes.Equal(s3.Signer, s1.Signer) {
		t.Fatal("next CA promoted before the grace")
	}
	// After it, it signs, the certificate is reissued, and the old CA stays trusted.
	t4 := t2.Add(params.Grace)
	s4, changed, _ := Step(s2, params, t4)
	if !changed || !bytes.Equal(s4.Signer, s2.Next) || !bytes.Equal(s4.Prev, s1.Signer) || s4.Next != nil || bytes.Equal(s4.Cert, s2.Cert) {
		t.Fatal("next CA not promoted after the grace")
	}
	verify(t, s4, t4)
	// An old serving certificate (from a replica that has not synced yet)
	// still verifies against the new bundle.
	verify(t, State{Signer: s4.Signer, Prev: s4.Prev, Cert: s2.Cert}, t4)
	// Once the old CA has expired it leaves the bundle.
	t5 := t0.Add(301 * 24 * time.Hour)
	s5, _, _ := Step(s4, params, t5)
	if s5.Prev != nil {
		t.Fatal("expired CA kept in the bundle")
	}
	verify(t, s5, t5)
}

func TestStepRepairs(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	good, _, _ := Step(State{}, params, t0)
	other := params
	other.DNSNames = []string{"macguard-webhook.other.svc"}
	tests := []struct {
		name      string
		s         State
		p         Params
		keepsCA   bool
		wantNames []string
	}{
		{"garbage", State{Signer: []byte("nope"), Cert: []byte("x")}, params, false, params.DNSNames},
		{"missing serving key", State{Signer: good.Signer, SignerKey: good.SignerKey, Cert: good.Cert}, params, true, params.DNSNames},
		{"other service name", good, other, true, other.DNSNames},
		{"expired CA", good, params, false, params.DNSNames},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := t0
			if tt.name == "expired CA" {
				now = t0.Add(400 * 24 * time.Hour)
			}
			s, changed, err := Step(tt.s, tt.p, now)
			if err != nil || !changed {
				t.Fatalf("changed %v err %v", changed, err)
			}
			if bytes.Equal(s.Signer, tt.s.Signer) != tt.keepsCA {
				t.Fatalf("CA kept: %v, want %v", !tt.keepsCA, tt.keepsCA)
			}
			c, _ := parseCert(s.Cert)
			if c == nil || c.DNSNames[0] != tt.wantNames[0] {
				t.Fatalf("serving certificate names %v", c)
			}
		})
	}
}
