package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
)

// call is one plugin process as the runtime saw it: from fork to reaped.
type call struct {
	Plugin  string        // binary name: macvlan, tuning, macguard, ...
	Command string        // CNI_COMMAND
	Wall    time.Duration // fork+exec+run+exit, what the runtime waits for
	CPU     time.Duration // user+system of the process and its reaped children
	// MaxRSSKiB is ru_maxrss from wait4: the peak resident set of the
	// plugin, or of its largest reaped child (macvlan's IPAM plugin) if
	// that was bigger. Only meaningful when Probed (see withProbe).
	MaxRSSKiB int64
	// Probed: started under rssprobe, so MaxRSSKiB is the plugin's own
	// and Wall includes the probe's start-up (not a latency figure).
	Probed bool
	// Stdout is what the plugin printed (its result, for ADD), kept only
	// when the collector asks for it (see collector.keepOutput).
	Stdout []byte
}

// collector gathers the calls made on behalf of one operation. It travels
// in the context libcni hands to Exec, so concurrent pods never mix their
// calls.
type collector struct {
	// keepOutput: keep each plugin's stdout in its call, for a check that
	// needs an intermediate result of the chain, which libcni does not
	// return (it returns the last plugin's only).
	keepOutput bool

	mu    sync.Mutex
	calls []call
}

func (c *collector) add(cl call) {
	c.mu.Lock()
	c.calls = append(c.calls, cl)
	c.mu.Unlock()
}

type collectorKey struct{}

func withCollector(ctx context.Context, c *collector) context.Context {
	return context.WithValue(ctx, collectorKey{}, c)
}

// benchExec is libcni's invoke.Exec done by hand, for two things the
// default one cannot give: the plugin's rusage from wait4 (peak RSS, CPU),
// and starting the plugin inside the bench's node namespace, so that the
// host side of every chain (macvlan parent, bridge, ptp host veths) lives in
// a namespace the bench made instead of on the machine.
type benchExec struct {
	node ns.NetNS
	// probe is the rssprobe launcher; see withProbe.
	probe   string
	decoder version.PluginDecoder
}

type probeKey struct{}

// withProbe marks operations whose plugins run under rssprobe, for a true
// peak RSS. wait4 on a plugin the bench starts directly reports at least
// the bench's own peak: Go forks with CLONE_VM, and exec records the
// high-water mark of the memory the child shared until then. The probe
// costs a process start, so timed operations never use it.
func withProbe(ctx context.Context) context.Context {
	return context.WithValue(ctx, probeKey{}, true)
}

func (e *benchExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	probing, _ := ctx.Value(probeKey{}).(bool)
	cmd := exec.CommandContext(ctx, pluginPath)
	var probeOut *os.File
	if probing {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("pipe for rssprobe: %w", err)
		}
		defer r.Close()
		cmd = exec.CommandContext(ctx, e.probe, pluginPath)
		cmd.ExtraFiles = []*os.File{w} // fd 3 in the probe
		probeOut = r
	}
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	var start time.Time
	// A forked child inherits the network namespace of the thread that
	// forked it; ns.Do runs the fork on a thread locked into the node
	// namespace and restores the thread afterwards.
	startErr := e.node.Do(func(ns.NetNS) error {
		start = time.Now()
		return cmd.Start()
	})
	if probing {
		// Only the probe may hold the write end, or the read below would
		// never see EOF.
		_ = cmd.ExtraFiles[0].Close()
	}
	if startErr != nil {
		return nil, fmt.Errorf("starting %s: %w", pluginPath, startErr)
	}
	waitErr := cmd.Wait()
	wall := time.Since(start)

	cl := call{Plugin: filepath.Base(pluginPath), Command: envValue(environ, "CNI_COMMAND"), Wall: wall}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cl.MaxRSSKiB = ru.Maxrss // Linux reports kilobytes
		cl.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if probing {
		var err error
		if cl.MaxRSSKiB, cl.CPU, err = readProbe(probeOut); err != nil {
			return nil, fmt.Errorf("%s under rssprobe: %w", pluginPath, err)
		}
		cl.Probed = true
	}
	if c, ok := ctx.Value(collectorKey{}).(*collector); ok {
		if c.keepOutput {
			cl.Stdout = stdout.Bytes()
		}
		c.add(cl)
	}
	if waitErr != nil {
		return nil, pluginError(pluginPath, waitErr, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// readProbe parses rssprobe's "maxrss_kib utime_us stime_us" line.
func readProbe(r io.Reader) (int64, time.Duration, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the probe's report: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("the probe reported %q, want three numbers", string(b))
	}
	var v [3]int64
	for i := range v {
		if v[i], err = strconv.ParseInt(f[i], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("the probe reported %q: %w", string(b), err)
		}
	}
	return v[0], time.Duration(v[1]+v[2]) * time.Microsecond, nil
}

// pluginError turns a failed plugin into the *types.Error libcni expects,
// as invoke.RawExec does, keeping stderr for the operator.
func pluginError(path string, err error, stdout, stderr []byte) error {
	var cniErr types.Error
	if len(stdout) > 0 && json.Unmarshal(stdout, &cniErr) == nil && (cniErr.Code != 0 || cniErr.Msg != "") {
		if len(stderr) > 0 {
			cniErr.Details = strings.TrimSpace(cniErr.Details + " stderr: " + lastLines(stderr, 5))
		}
		return &cniErr
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return fmt.Errorf("running %s: %w", path, err)
	}
	return &types.Error{Code: 999, Msg: fmt.Sprintf("%s failed without a CNI error (%v); stdout %q; stderr %q",
		filepath.Base(path), err, string(stdout), lastLines(stderr, 5))}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func envValue(environ []string, key string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

func (e *benchExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (e *benchExec) Decode(jsonBytes []byte) (version.PluginInfo, error) {
	return e.decoder.Decode(jsonBytes)
}
