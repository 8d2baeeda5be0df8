// Command webhook measures `macguardctl webhook` as the API server meets
// it: the real binary serving TLS on loopback (--cert-dir, a certificate
// made here), AdmissionReviews of a VirtualMachine with two interfaces sent
// at a steady rate over one kept-alive connection, each request's latency
// (send to full response), and the server's resident memory (VmRSS at the
// end, VmHWM its peak) from /proc. The count and the time are both bounded.
//
// It prints a Markdown table and writes it (webhook.md) and webhook.json
// to -out. Run by
// `make bench` (hack/mk/bench.mk); docs/performance.md says how to read it.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/macguard-cni/macguard/pkg/ctl/servingcert"
)

// review is a CREATE of a VM with a pod-network and a Multus interface,
// neither with a MAC: the webhook derives two and builds a two-operation
// patch, its usual work.
const review = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"%d",` +
	`"kind":{"group":"kubevirt.io","version":"v1","kind":"VirtualMachine"},"resource":{"group":"kubevirt.io","version":"v1","resource":"virtualmachines"},` +
	`"namespace":"bench","name":"vm-%d","operation":"CREATE","object":{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachine",` +
	`"metadata":{"name":"vm-%d","namespace":"bench"},"spec":{"runStrategy":"Always","template":{"spec":{"domain":{"devices":{` +
	`"interfaces":[{"name":"default","masquerade":{}},{"name":"sec","bridge":{}}]},"resources":{"requests":{"memory":"1Gi"}}},` +
	`"networks":[{"name":"default","pod":{}},{"name":"sec","multus":{"networkName":"bench/br"}}]}}}}}}`

type result struct {
	Command     string  `json:"command"`
	Rate        float64 `json:"rate_per_s"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	DurationS   float64 `json:"duration_s"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	Maxms       float64 `json:"max_ms"`
	RSSStartMiB float64 `json:"rss_start_mib"`
	RSSEndMiB   float64 `json:"rss_end_mib"`
	HWMMiB      float64 `json:"hwm_mib"`
}

func main() {
	bin := flag.String("macguardctl", "bin/macguardctl", "the macguardctl binary under test")
	rate := flag.Float64("rate", 200, "requests per second")
	n := flag.Int("n", 3000, "requests to send (at most)")
	maxTime := flag.Duration("max-time", 30*time.Second, "stop sending after this long")
	out := flag.String("out", "bench", "directory for webhook.json")
	flag.Parse()
	if err := run(*bin, *rate, *n, *maxTime, *out); err != nil {
		fmt.Fprintln(os.Stderr, "webhook bench:", err)
		os.Exit(1)
	}
}

func run(bin string, rate float64, n int, maxTime time.Duration, out string) error {
	dir, err := os.MkdirTemp("", "macguard-webhook-bench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	st, _, err := servingcert.Step(servingcert.State{}, servingcert.Params{DNSNames: []string{"localhost"},
		CAValidity: time.Hour, CertValidity: time.Hour, Grace: time.Minute}, time.Now())
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{"tls.crt": st.Cert, "tls.key": st.Key} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	_ = l.Close()

	var logs bytes.Buffer
	cmd := exec.Command(bin, "webhook", "--cert-dir", dir, "--listen", addr, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = io.Discard, &logs
	if err := cmd.Start(); err != nil {
		return err
	}
	// Stopped by its PID, whatever happens below.
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(st.Bundle())
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}, MaxIdleConnsPerHost: 1, ForceAttemptHTTP2: true}}
	post := func(i int) error {
		resp, err := client.Post("https://"+addr+"/mutate", "application/json", strings.NewReader(fmt.Sprintf(review, i, i, i)))
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"patchType":"JSONPatch"`)) {
			return fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return nil
	}
	ready := false
	for i := 0; i < 100 && !ready; i++ {
		ready = post(-1) == nil
		if !ready {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !ready {
		return fmt.Errorf("%s webhook never answered on %s: %s", bin, addr, logs.String())
	}
	rssStart, _ := status(cmd.Process.Pid, "VmRSS")

	ctx, cancel := context.WithTimeout(context.Background(), maxTime)
	defer cancel()
	interval := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var lat []time.Duration
	errs := 0
	start := time.Now()
send:
	for i := 0; i < n; i++ {
		select {
		case <-ctx.Done():
			break send
		case <-tick.C:
		}
		t0 := time.Now()
		if err := post(i); err != nil {
			errs++
			fmt.Fprintln(os.Stderr, "request", i, err)
			continue
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	if len(lat) == 0 {
		return fmt.Errorf("no request succeeded")
	}
	rssEnd, _ := status(cmd.Process.Pid, "VmRSS")
	hwm, _ := status(cmd.Process.Pid, "VmHWM")
	slices.Sort(lat)
	pct := func(p float64) float64 {
		rank := int(math.Ceil(p / 100 * float64(len(lat))))
		return msec(lat[min(max(rank, 1), len(lat))-1])
	}
	r := result{Command: strings.Join(os.Args, " "), Rate: rate, Requests: len(lat), Errors: errs,
		DurationS: math.Round(elapsed.Seconds()*100) / 100,
		P50ms:     pct(50), P90ms: pct(90), P99ms: pct(99), Maxms: msec(lat[len(lat)-1]),
		RSSStartMiB: mib(rssStart), RSSEndMiB: mib(rssEnd), HWMMiB: mib(hwm)}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	j, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "webhook.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	md := fmt.Sprintf("## Admission webhook (macguardctl webhook, TLS on loopback)\n\n"+
		"| rate | requests | errors | p50 | p90 | p99 | max | RSS start | RSS end | RSS peak |\n|---|---|---|---|---|---|---|---|---|---|\n"+
		"| %.0f/s | %d | %d | %.3f ms | %.3f ms | %.3f ms | %.3f ms | %.1f MiB | %.1f MiB | %.1f MiB |\n",
		r.Rate, r.Requests, r.Errors, r.P50ms, r.P90ms, r.P99ms, r.Maxms, r.RSSStartMiB, r.RSSEndMiB, r.HWMMiB)
	fmt.Print(md)
	if err := os.WriteFile(filepath.Join(out, "webhook.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if errs > 0 {
		return fmt.Errorf("%d requests failed", errs)
	}
	return nil
}

// status reads a "Vm..." line of /proc/PID/status, in KiB.
func status(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

func msec(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*1000) / 1000
}

func mib(kib int64) float64 { return math.Round(float64(kib)/1024*100) / 100 }
