package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/macguard-cni/macguard/pkg/ctl/servingcert"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// TestRunCertDir runs the command as cert-manager's component deploys it
// (--cert-dir) on loopback, sends a review over TLS verified against the
// CA, and stops it through its context.
func TestRunCertDir(t *testing.T) {
	dir := t.TempDir()
	st, _, err := servingcert.Step(servingcert.State{}, servingcert.Params{DNSNames: []string{"localhost"}, CAValidity: time.Hour, CertValidity: time.Hour, Grace: time.Minute}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), st.Cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), st.Key, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testutil.LockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--cert-dir", dir, "--listen", addr, "--salt", "cluster-a"}, &testutil.LockedBuffer{}, &stderr)
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(st.Bundle())
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	body := strings.Replace(review(vmJSON("fedora-vm", "default")), `"namespace":"default"`, `"namespace":"prod"`, 1)
	var resp *http.Response
	for i := 0; i < 100; i++ {
		resp, err = client.Post("https://"+addr+"/mutate", "application/json", strings.NewReader(body))
		if err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("webhook never answered: %v; log: %s", err, stderr.String())
	}
	var out admissionv1.AdmissionReview
	err = json.NewDecoder(resp.Body).Decode(&out)
	_ = resp.Body.Close()
	if err != nil || out.Response == nil || !strings.Contains(string(out.Response.Patch), macFedoraSalt) {
		t.Fatalf("response %+v (%v): want the salted MAC %s", out.Response, err, macFedoraSalt)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d; log: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the webhook did not stop with its context")
	}
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--prefix", "01"}, "--prefix"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--cert-dir", "/nonexistent"}, "--cert-dir"},
		{[]string{"--cert-secret", "nons"}, "want NAMESPACE/NAME"},
	}
	for _, tt := range tests {
		t.Setenv("POD_NAMESPACE", "")
		var stderr bytes.Buffer
		if code := run(context.Background(), tt.args, &bytes.Buffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %s", tt.args, code, stderr.String(), tt.want)
		}
	}
}
