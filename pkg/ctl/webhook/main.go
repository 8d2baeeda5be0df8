package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/macguard-cni/macguard/pkg/buildinfo"
	"github.com/macguard-cni/macguard/pkg/ctl/servingcert"
	"github.com/macguard-cni/macguard/pkg/macaddr"
)

const usage = `macguardctl webhook: the mutating admission webhook that writes each KubeVirt
VM interface's stable MAC into the VM spec (docs/webhook.md).

Certificates: by default macguardctl keeps a CA and serving certificate in
--cert-secret and writes the CA bundle into --webhook-config; with --cert-dir
it serves tls.crt/tls.key from a directory kept by someone else (cert-manager).
`

// The names deploy/components/webhook uses (deploy's tests hold them
// together).
const (
	DefaultSecretName = "macguard-webhook-cert"
	DefaultConfigName = "macguard-webhook"
)

// Main runs "macguardctl webhook" until SIGTERM or SIGINT.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return run(ctx, args, stdout, stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	listen := fs.String("listen", ":8443", "address to serve HTTPS on")
	salt := fs.String("salt", "", "salt of the derivation (macguardctl mac --salt predicts with the same value)")
	prefix := fs.String("prefix", "", "octets laid over the start of every MAC, e.g. 0a:58")
	exclude := fs.String("exclude-namespaces", "kube-system", "comma-separated namespaces never mutated (behind the configuration's namespaceSelector)")
	secret := fs.String("cert-secret", "", "NAMESPACE/NAME of the Secret holding the CA and serving certificate (default: $POD_NAMESPACE/macguard-webhook-cert)")
	certDir := fs.String("cert-dir", "", "serve tls.crt and tls.key from this directory instead (cert-manager)")
	webhookConfig := fs.String("webhook-config", DefaultConfigName, "MutatingWebhookConfiguration to write the caBundle into (self-managed certificates only)")
	service := fs.String("service", "", "the Service's DNS name in the certificate (default: macguard-webhook.$POD_NAMESPACE.svc)")
	certValidity := fs.Duration("cert-validity", 365*24*time.Hour, "serving certificate lifetime (renewed with a third left)")
	caValidity := fs.Duration("ca-validity", 10*365*24*time.Hour, "CA lifetime (a new CA is announced with a third left)")
	interval := fs.Duration("sync-interval", time.Minute, "how often the certificate Secret (or --cert-dir) is read again")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: in-cluster credentials)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "macguardctl webhook: "+format+"\n", a...)
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fail("--log-level %q: use debug, info, warn or error", *level)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})).With("component", "webhook")
	p, err := macaddr.ParsePrefix(*prefix)
	if err != nil {
		return fail("--prefix: %v", err)
	}
	m := &Mutator{Salt: *salt, Prefix: p, Exclude: map[string]bool{}, Log: log}
	for _, ns := range strings.Split(*exclude, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			m.Exclude[ns] = true
		}
	}
	var getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	if *certDir != "" {
		f := &servingcert.Files{Dir: *certDir, Log: log}
		if err := f.Load(); err != nil {
			return fail("%v", err)
		}
		go f.Run(ctx, *interval)
		getCert = f.GetCertificate
	} else {
		podNS := os.Getenv("POD_NAMESPACE")
		if *secret == "" {
			if podNS == "" {
				return fail("give --cert-secret NAMESPACE/NAME (or set POD_NAMESPACE), or --cert-dir")
			}
			*secret = podNS + "/" + DefaultSecretName
		}
		ns, name, ok := strings.Cut(*secret, "/")
		if !ok || ns == "" || name == "" {
			return fail("--cert-secret %q: want NAMESPACE/NAME", *secret)
		}
		if *service == "" {
			*service = "macguard-webhook." + ns + ".svc"
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
		if err != nil {
			return fail("cluster credentials: %v", err)
		}
		cfg.UserAgent = "macguardctl-webhook/" + buildinfo.Version
		cfg.Timeout = 10 * time.Second
		dc, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return fail("cluster client: %v", err)
		}
		short := strings.TrimSuffix(*service, ".svc")
		mgr := &servingcert.Manager{Client: dc, Namespace: ns, Secret: name, WebhookConfig: *webhookConfig, Log: log,
			Params: servingcert.Params{DNSNames: []string{*service, short, *service + ".cluster.local"},
				CAValidity: *caValidity, CertValidity: *certValidity, Grace: 3 * *interval}}
		// Serving waits for a certificate: retry the first sync (RBAC or
		// the API server may not be ready yet) instead of exiting.
		for {
			if err := mgr.Sync(ctx); err == nil {
				break
			} else {
				log.Error("certificate sync failed; retrying", "err", err)
			}
			select {
			case <-ctx.Done():
				return 1
			case <-time.After(5 * time.Second):
			}
		}
		go mgr.Run(ctx, *interval)
		getCert = mgr.GetCertificate
	}
	return serve(ctx, *listen, getCert, &Handler{Mutator: m, Log: log}, log, stdout)
}

// serve runs the HTTPS server: /mutate answers AdmissionReviews, /readyz
// says whether a certificate is loaded (it is, once serve runs).
func serve(ctx context.Context, addr string, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), h http.Handler, log *slog.Logger, stdout io.Writer) int {
	mux := http.NewServeMux()
	mux.Handle("/mutate", h)
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := &http.Server{Addr: addr, Handler: mux,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert},
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServeTLS("", "") }()
	log.Info("serving", "addr", addr, "version", buildinfo.Version)
	fmt.Fprintln(stdout, "macguardctl webhook: serving on", addr)
	select {
	case err := <-errc:
		log.Error("server stopped", "err", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}
