package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/macguard-cni/macguard/pkg/pathpolicy"
)

// Everything a run creates carries its PID in its name, so a later run can
// tell leftovers of a killed run (owner gone) from the live resources of a
// concurrent one, and never touches anything it did not make.
const (
	netnsDir     = "/run/netns"
	netnsPrefix  = "mgbench-"
	tmpDirPrefix = "macguard-bench-"

	// nodeParent is the veth end inside the node namespace that macvlan
	// pods hang off; its peer stays in the node namespace too, so no frame
	// ever reaches a real NIC.
	nodeParent = "mgb-mv0"
)

// env is one run's private world: a tmpfs for every piece of state the
// plugins and libcni write (as /run is on a real node), a "node" network
// namespace in which the plugins run, and the pod namespaces. Close removes
// all of it; it is safe to call after a partial setup.
type env struct {
	root string
	node ns.NetNS

	mu      sync.Mutex
	netns   map[string]ns.NetNS
	seq     atomic.Int64
	mounted bool
}

func newEnv() (*env, error) {
	sweepStale()
	e := &env{netns: map[string]ns.NetNS{}}
	root, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", tmpDirPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("creating the run directory: %w", err)
	}
	e.root = root
	// State on tmpfs, as under /run on a node, so that every plugin's state
	// writes (macguard's records, tuning's) cost what they cost there, not
	// what this machine's disk makes of them.
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700,size=512m"); err != nil {
		e.Close()
		return nil, fmt.Errorf("mounting a tmpfs on %s: %w", root, err)
	}
	e.mounted = true
	// The run directory is not beneath the node's default roots: widen
	// them the way a node does, through the environment libcni passes on
	// to every plugin.
	if err := os.Setenv(pathpolicy.EnvDataRoots, root); err != nil {
		e.Close()
		return nil, err
	}
	node, err := e.newNetns("node")
	if err != nil {
		e.Close()
		return nil, err
	}
	e.node = node
	if err := e.setupNode(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// path returns a location inside the run's tmpfs.
func (e *env) path(parts ...string) string {
	return filepath.Join(append([]string{e.root}, parts...)...)
}

// setupNode gives the node namespace what the chains need: lo up, and a
// veth pair whose one end is the macvlan parent.
func (e *env) setupNode() error {
	return e.node.Do(func(ns.NetNS) error {
		if err := linkUp("lo"); err != nil {
			return err
		}
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nodeParent}, PeerName: nodeParent + "p"}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("adding the macvlan parent veth %s in the node netns: %w", nodeParent, err)
		}
		if err := linkUp(nodeParent); err != nil {
			return err
		}
		return linkUp(nodeParent + "p")
	})
}

func linkUp(name string) error {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bringing %s up: %w", name, err)
	}
	return nil
}

// newNetns creates a network namespace pinned at /run/netns/mgbench-<pid>-...
// the way a runtime creates a pod sandbox, and registers it for Close.
func (e *env) newNetns(tag string) (ns.NetNS, error) {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", netnsDir, err)
	}
	path := filepath.Join(netnsDir, fmt.Sprintf("%s%d-%s-%d", netnsPrefix, os.Getpid(), tag, e.seq.Add(1)))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return nil, fmt.Errorf("creating the netns mount point %s: %w", path, err)
	}
	_ = f.Close() // opened only to create the empty mount point
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it ends up in the new namespace,
		// and Go must discard it when this goroutine exits rather than
		// hand it to other goroutines.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind-mounting the new netns on %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path) // best effort: the mount's error is the one to report
		return nil, err
	}
	n, err := ns.GetNS(path)
	if err != nil {
		_ = removeNetnsPath(path) // best effort: the open's error is the one to report
		return nil, fmt.Errorf("opening netns %s: %w", path, err)
	}
	e.mu.Lock()
	e.netns[path] = n
	e.mu.Unlock()
	return n, nil
}

// removeNetns deletes a pod namespace; the kernel destroys whatever
// interfaces are still in it.
func (e *env) removeNetns(n ns.NetNS) error {
	e.mu.Lock()
	delete(e.netns, n.Path())
	e.mu.Unlock()
	_ = n.Close() // only a handle: removing the mount is what can fail
	return removeNetnsPath(n.Path())
}

// dropNetns is removeNetns for deferred cleanup: an error is reported, like
// Close's, and the run goes on.
func (e *env) dropNetns(n ns.NetNS) {
	if err := e.removeNetns(n); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup: %v\n", err)
	}
}

func removeNetnsPath(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	return nil
}

// Close removes every namespace and the tmpfs. Errors are reported, not
// returned: cleanup goes on as far as it can.
func (e *env) Close() {
	e.mu.Lock()
	paths := make([]string, 0, len(e.netns))
	for p, n := range e.netns {
		_ = n.Close() // only a handle: removing the mount is what can fail
		paths = append(paths, p)
	}
	e.netns = map[string]ns.NetNS{}
	e.mu.Unlock()
	for _, p := range paths {
		if err := removeNetnsPath(p); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup: %v\n", err)
		}
	}
	if e.root == "" {
		return
	}
	if e.mounted {
		if err := unix.Unmount(e.root, unix.MNT_DETACH); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup: unmounting %s: %v\n", e.root, err)
		}
	}
	if err := os.RemoveAll(e.root); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup: removing %s: %v\n", e.root, err)
	}
}

// sweepStale removes what an earlier run left behind when it was killed
// before its own cleanup could run (SIGKILL, a machine reset): namespaces
// and tmpfs mounts whose owning PID no longer exists.
func sweepStale() {
	if entries, err := os.ReadDir(netnsDir); err == nil {
		for _, en := range entries {
			if pid, ok := ownerPID(en.Name(), netnsPrefix); ok && !alive(pid) {
				if err := removeNetnsPath(filepath.Join(netnsDir, en.Name())); err != nil {
					fmt.Fprintf(os.Stderr, "removing a stale namespace: %v\n", err)
				}
			}
		}
	}
	tmp := os.TempDir()
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	mounts := mountPoints()
	for _, en := range entries {
		pid, ok := ownerPID(en.Name(), tmpDirPrefix)
		if !ok || alive(pid) {
			continue
		}
		dir := filepath.Join(tmp, en.Name())
		if mounts[dir] {
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				fmt.Fprintf(os.Stderr, "unmounting stale %s: %v\n", dir, err)
				continue
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(os.Stderr, "removing stale %s: %v\n", dir, err)
		}
	}
}

// ownerPID reads the PID out of "<prefix><pid>-...".
func ownerPID(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	digits, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(digits)
	return pid, err == nil && pid > 0
}

func alive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

func mountPoints() map[string]bool {
	out := map[string]bool{}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 4 {
			out[fields[4]] = true
		}
	}
	return out
}
