package servingcert

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Files serves tls.crt and tls.key from a directory that something else
// keeps current (cert-manager's Certificate mounted from its Secret, which
// the kubelet refreshes in place): the pair is read again every interval.
type Files struct {
	Dir string
	Log *slog.Logger

	current atomic.Pointer[served]
}

// Load reads the pair; a pair that does not load leaves the last good one
// in use.
func (f *Files) Load() error {
	crt, err := os.ReadFile(filepath.Join(f.Dir, "tls.crt"))
	if err != nil {
		return fmt.Errorf("--cert-dir: %w", err)
	}
	if old := f.current.Load(); old != nil && bytes.Equal(old.pem, crt) {
		return nil
	}
	key, err := os.ReadFile(filepath.Join(f.Dir, "tls.key"))
	if err != nil {
		return fmt.Errorf("--cert-dir: %w", err)
	}
	c, err := tls.X509KeyPair(crt, key)
	if err != nil {
		return fmt.Errorf("--cert-dir %s: tls.crt and tls.key: %w", f.Dir, err)
	}
	f.current.Store(&served{pem: crt, cert: c})
	f.Log.Info("serving certificate loaded", "dir", f.Dir, "notAfter", c.Leaf.NotAfter)
	return nil
}

// GetCertificate is tls.Config.GetCertificate.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := f.current.Load()
	if c == nil {
		return nil, fmt.Errorf("no serving certificate loaded from %s", f.Dir)
	}
	return &c.cert, nil
}

// Run reloads every interval until ctx ends.
func (f *Files) Run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, f.Log, "reloading the serving certificate failed; serving the last good one", func(context.Context) error { return f.Load() })
}
