// Package servingcert keeps the admission webhook's TLS material without
// cert-manager: a CA and a serving certificate it signs, kept in one Secret
// that every replica reads and writes, and the CA bundle the API server
// must trust, written into the MutatingWebhookConfiguration.
//
// Step is the pure part: given what the Secret holds and the time, it says
// what the Secret should hold. Rotation never leaves the API server without
// trust in the certificate being served: a serving certificate is renewed
// under the same CA (the bundle does not change); a CA due for renewal is
// first added to the bundle as "next" and becomes the signer only after
// Grace, by which time every replica's sync has written the bundle with
// both into the webhook configuration; the old CA stays in the bundle until
// it expires.
package servingcert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// State is the content of the Secret (one PEM block per field).
type State struct {
	Signer, SignerKey []byte // the CA that signs Cert
	Next, NextKey     []byte // a CA announced in the bundle, not yet signing
	NextSince         time.Time
	Prev              []byte // the CA before Signer, trusted until it expires
	Cert, Key         []byte // the serving certificate and its key
}

// Params are the lifetimes and names.
type Params struct {
	DNSNames     []string
	CAValidity   time.Duration
	CertValidity time.Duration
	// Grace is how long a next CA sits in the bundle before it signs;
	// it must exceed the interval at which replicas sync.
	Grace time.Duration
}

// Bundle is the caBundle: every CA a client should trust now.
func (s State) Bundle() []byte {
	return bytes.Join([][]byte{s.Signer, s.Next, s.Prev}, nil)
}

// renewDue: a certificate is renewed once less than a third of its
// lifetime remains, so a renewal that fails is retried for a long time
// before anything expires.
func renewDue(c *x509.Certificate, now time.Time) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return now.Add(life / 3).After(c.NotAfter)
}

// Step returns the state the Secret should hold at now and whether it
// differs from s. It fixes anything unreadable by starting afresh.
func Step(s State, p Params, now time.Time) (State, bool, error) {
	signer, errSigner := parseCert(s.Signer)
	if errSigner != nil || now.After(signer.NotAfter) || parseKey(s.SignerKey) == nil {
		ca, key, err := newCA(now, p.CAValidity)
		if err != nil {
			return s, false, err
		}
		n := State{Signer: ca, SignerKey: key}
		if n.Cert, n.Key, err = issue(ca, key, p, now); err != nil {
			return s, false, err
		}
		return n, true, nil
	}
	n, changed := s, false
	if prev, err := parseCert(n.Prev); n.Prev != nil && (err != nil || now.After(prev.NotAfter)) {
		n.Prev, changed = nil, true
	}
	if next, err := parseCert(n.Next); n.Next != nil && (err != nil || parseKey(n.NextKey) == nil || now.After(next.NotAfter)) {
		n.Next, n.NextKey, n.NextSince, changed = nil, nil, time.Time{}, true
	}
	switch {
	case n.Next == nil && renewDue(signer, now):
		ca, key, err := newCA(now, p.CAValidity)
		if err != nil {
			return s, false, err
		}
		n.Next, n.NextKey, n.NextSince, changed = ca, key, now, true
	case n.Next != nil && !now.Before(n.NextSince.Add(p.Grace)):
		n.Prev, n.Signer, n.SignerKey = n.Signer, n.Next, n.NextKey
		n.Next, n.NextKey, n.NextSince = nil, nil, time.Time{}
		n.Cert, changed = nil, true // reissued below by the new signer
	}
	if certDue(n, p, now) {
		var err error
		if n.Cert, n.Key, err = issue(n.Signer, n.SignerKey, p, now); err != nil {
			return s, false, err
		}
		changed = true
	}
	return n, changed, nil
}

// certDue: the serving certificate is missing, unreadable, not signed by
// the signer, for other names, or due for renewal.
func certDue(s State, p Params, now time.Time) bool {
	c, err := parseCert(s.Cert)
	if err != nil || parseKey(s.Key) == nil {
		return true
	}
	signer, err := parseCert(s.Signer)
	if err != nil || c.CheckSignatureFrom(signer) != nil {
		return true
	}
	if !slices.Equal(c.DNSNames, p.DNSNames) {
		return true
	}
	return renewDue(c, now)
}

func parseCert(p []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

func parseKey(p []byte) *ecdsa.PrivateKey {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil
	}
	k, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return nil
	}
	return k
}

func newKey() (*ecdsa.PrivateKey, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newCA(now time.Time, validity time.Duration) ([]byte, []byte, error) {
	k, keyPEM, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: "macguard-webhook-ca " + now.UTC().Format(time.RFC3339)},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(validity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the webhook CA: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

func issue(caPEM, caKeyPEM []byte, p Params, now time.Time) ([]byte, []byte, error) {
	ca, err := parseCert(caPEM)
	if err != nil {
		return nil, nil, err
	}
	caKey := parseKey(caKeyPEM)
	if caKey == nil {
		return nil, nil, fmt.Errorf("the CA key does not parse")
	}
	k, keyPEM, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(p.CertValidity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: p.DNSNames[0]}, DNSNames: p.DNSNames,
		NotBefore: now.Add(-time.Minute), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing the serving certificate for %v: %w", p.DNSNames, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}
