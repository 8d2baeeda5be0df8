package testutil

// Helpers for suites that drive the real cnitool (test/e2e, the demo): where
// the pinned tools live, a CNI_PATH holding only plugins, and one cnitool
// invocation with exactly the environment cnitool documents.

import (
	"bytes"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Environment variables naming the tools `make tools` installs; the
// defaults are the places hack/mk/e2e.mk puts them.
const (
	EnvCNITool    = "E2E_CNITOOL"
	EnvCNIPlugins = "E2E_CNI_PLUGINS"
)

// CNIToolBinary is the pinned cnitool: $E2E_CNITOOL, or
// .cache/tools/bin/cnitool in the repository root. Missing, it fails the
// test: a suite that needs cnitool must not pass without running it.
func CNIToolBinary(t testing.TB) string {
	t.Helper()
	return toolPath(t, EnvCNITool, filepath.Join(".cache", "tools", "bin", "cnitool"))
}

// ReferencePluginDir is the directory of the pinned reference plugins
// (bridge, macvlan, ptp, ipvlan, host-local, static, tuning, sbr): $E2E_CNI_PLUGINS,
// or .cache/tools/cni-plugins in the repository root.
func ReferencePluginDir(t testing.TB) string {
	t.Helper()
	return toolPath(t, EnvCNIPlugins, filepath.Join(".cache", "tools", "cni-plugins"))
}

func toolPath(t testing.TB, env, rel string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		root, err := RepoRoot()
		if err != nil {
			t.Fatalf("%s is unset and the repository root is unknown: %v", env, err)
		}
		p = filepath.Join(root, rel)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%v: run `make tools` (or set %s)", err, env)
	}
	return p
}

// CNIPath is a CNI_PATH with the reference plugins and a private copy of the
// plugin under test (PluginBinary) named "macguard", and nothing else.
// A copy, not a symlink: a `make build` running at the same time must not
// swap the binary under a test half-way through a chain.
func CNIPath(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := copyFile(PluginBinary(t), filepath.Join(dir, "macguard"), 0o755); err != nil {
		t.Fatalf("copying the plugin into CNI_PATH: %v", err)
	}
	return ReferencePluginDir(t) + string(os.PathListSeparator) + dir
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close() // the copy's error is the one to report
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return out.Close()
}

// CNIToolContainerID is the container ID cnitool hands the plugins for a
// netns path: it has no flag or variable for one and derives it as
// "cnitool-" + hex(sha512(absolute netns path))[:20]. A new sandbox (a new
// netns path) is therefore a new container ID, as with a real runtime.
func CNIToolContainerID(netnsPath string) string {
	abs, err := filepath.Abs(netnsPath)
	if err != nil {
		abs = netnsPath
	}
	s := sha512.Sum512([]byte(abs))
	return fmt.Sprintf("cnitool-%x", s[:10])
}

// PodArgs is the CNI_ARGS a kubelet/CRI (and Multus for its delegates)
// passes for a pod: IgnoreUnknown first, so that reference plugins which
// parse CNI_ARGS strictly accept the Kubernetes keys. extra pairs such as
// "MAC=0a:58:00:00:00:01" are appended verbatim.
func PodArgs(namespace, pod, infraContainerID, uid string, extra ...string) string {
	pairs := []string{"IgnoreUnknown=1",
		"K8S_POD_NAMESPACE=" + namespace, "K8S_POD_NAME=" + pod,
		"K8S_POD_INFRA_CONTAINER_ID=" + infraContainerID, "K8S_POD_UID=" + uid}
	return strings.Join(append(pairs, extra...), ";")
}

// CNITool runs the cnitool binary on a "node".
type CNITool struct {
	Bin         string // the cnitool binary
	CNIPath     string // CNI_PATH
	NetConfPath string // NETCONFPATH: the directory holding the conflists
	// Node is the network namespace cnitool runs in, standing in for the
	// host: main plugins put their host-side devices (bridges, veth ends,
	// routes) there. nil runs it in the caller's namespace, i.e. on the
	// real host — only for code that knows it may.
	Node ns.NetNS
	// VarLib, when set, is a directory cnitool sees as /var/lib: it runs
	// in a private mount namespace of its own (unshare -m) with VarLib
	// bound there, so libcni's cache, which cnitool always keeps in
	// /var/lib/cni, lands in VarLib/cni and the machine's is untouched.
	VarLib string
}

// Call is one cnitool invocation's per-call environment.
type Call struct {
	IfName  string // CNI_IFNAME; empty leaves it unset (cnitool then uses eth0)
	CNIArgs string // CNI_ARGS, verbatim
	CapArgs string // CAP_ARGS: JSON object of capability arguments (runtimeConfig)
}

// CNIToolRun is what one cnitool invocation did.
type CNIToolRun struct {
	Argv   []string
	Stdout []byte
	Stderr string
	// Err is nil when cnitool exited 0, otherwise the exit error (cnitool
	// prints the plugin's CNI error message on stderr and exits 1).
	Err error
}

// String describes the run for a failure message: the command line, how
// it exited, and everything it printed, since cnitool reports the plugin's
// error only on stderr.
func (r CNIToolRun) String() string {
	status := "ok"
	if r.Err != nil {
		status = r.Err.Error()
	}
	return fmt.Sprintf("cnitool %s: %s\nstdout: %s\nstderr: %s", strings.Join(r.Argv, " "), status, r.Stdout, r.Stderr)
}

// Exec runs `cnitool <cmd> <network> <netnsPath>` and reports how it went;
// an error means cnitool could not be run at all. It does not need a
// testing.TB, so the demo and goroutines can use it.
func (c *CNITool) Exec(cmd, network, netnsPath string, call Call) (CNIToolRun, error) {
	run := CNIToolRun{Argv: []string{cmd, network, netnsPath}}
	// Only the documented variables, on top of a minimal base: a stray
	// CNI_* or NETCONFPATH from the caller's environment must not leak in.
	env := []string{"PATH=" + os.Getenv("PATH"),
		"NETCONFPATH=" + c.NetConfPath, "CNI_PATH=" + c.CNIPath,
		"CNI_ARGS=" + call.CNIArgs, "CAP_ARGS=" + call.CapArgs}
	// cnitool passes its environment to the plugins, as a runtime does:
	// this is where a node widens macguard's allowed roots.
	env = append(env, RootsEnv()...)
	if call.IfName != "" {
		env = append(env, "CNI_IFNAME="+call.IfName)
	}
	do := func() error {
		x := exec.Command(c.Bin, run.Argv...)
		if c.VarLib != "" {
			// The mount is made in the child's own mount namespace, never
			// in the caller's: a thread-level unshare would leak it.
			x = exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c",
				`mount --bind "$0" /var/lib && exec "$@"`, c.VarLib, c.Bin}, run.Argv...)...)
		}
		x.Env = env
		var out, errb bytes.Buffer
		x.Stdout, x.Stderr = &out, &errb
		err := x.Run()
		run.Stdout, run.Stderr = out.Bytes(), errb.String()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			run.Err = err
			return nil
		}
		if err != nil {
			return fmt.Errorf("running %s: %w", c.Bin, err)
		}
		return nil
	}
	if c.Node == nil {
		return run, do()
	}
	// ns.Do locks the goroutine to an OS thread switched into Node; the
	// child process is forked from that thread and inherits its netns.
	err := c.Node.Do(func(ns.NetNS) error { return do() })
	if err != nil {
		return run, fmt.Errorf("cnitool %s in %s: %w", cmd, c.Node.Path(), err)
	}
	return run, nil
}

// Run is Exec that fails the test when cnitool cannot be started. The
// caller judges run.Err.
func (c *CNITool) Run(t testing.TB, cmd, network, netnsPath string, call Call) CNIToolRun {
	t.Helper()
	run, err := c.Exec(cmd, network, netnsPath, call)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// Must is Run that fails the test when cnitool exits non-zero, and returns
// what it printed on stdout (the result, for add).
func (c *CNITool) Must(t testing.TB, cmd, network, netnsPath string, call Call) []byte {
	t.Helper()
	run := c.Run(t, cmd, network, netnsPath, call)
	if run.Err != nil {
		t.Fatalf("%v", run)
	}
	return run.Stdout
}
