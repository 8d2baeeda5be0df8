package testutil

// Helpers for the reliability suites (test/badinput, test/faults,
// test/concurrency): running the plugin off the test goroutine, snapshots
// that prove nothing changed, and the faults those suites inject.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Outcome is one plugin run. Err is the CNI error the plugin printed when
// it exited non-zero.
type Outcome struct {
	Stdout  []byte
	Stderr  string
	Err     *types.Error
	Elapsed time.Duration
	// MaxRSS is the run's peak resident set in bytes (wait4's ru_maxrss).
	MaxRSS int64
}

// Exec runs bin like Run, with stdin from a reader and the run bounded by
// timeout, and returns what Run would fail the test for as an error, so it
// can be called from goroutines (t.Fatal may only be called from the test's
// own goroutine).
func Exec(bin string, env Env, stdin io.Reader, timeout time.Duration) (Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = env.list()
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	o := Outcome{Stdout: out.Bytes(), Stderr: errb.String(), Elapsed: time.Since(start)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			o.MaxRSS = ru.Maxrss * 1024 // KiB on Linux
		}
	}
	if ctx.Err() != nil {
		return o, fmt.Errorf("%s %s still running after %s (stderr %q)", bin, env.Command, timeout, o.Stderr)
	}
	if err == nil {
		return o, nil
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return o, fmt.Errorf("running %s: %w", bin, err)
	}
	var e types.Error
	if jerr := json.Unmarshal(o.Stdout, &e); jerr != nil || e.Code == 0 {
		return o, fmt.Errorf("%s %s exited %d without a CNI error on stdout (stdout %q, stderr %q)", bin, env.Command, exitErr.ExitCode(), o.Stdout, o.Stderr)
	}
	if exitErr.ExitCode() == 0 {
		return o, fmt.Errorf("%s %s printed a CNI error but exited 0", bin, env.Command)
	}
	o.Err = &e
	return o, nil
}

// List is the process environment of the invocation (os.Environ plus the
// CNI_* variables), for running a plugin some other way than Run or Exec.
func (e Env) List() []string { return e.list() }

// Snapshot describes everything under path (names, types, modes, sizes,
// content hashes, symlink targets), or says it is absent, so that a test can
// assert a failed command left it exactly as it was.
func Snapshot(t testing.TB, path string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == path {
			b.WriteString("absent\n")
			return nil
		}
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(path, p)
		fmt.Fprintf(&b, "%s %v", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " -> %s", target)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %d %x", len(data), sha256.Sum256(data))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot of %s: %v", path, err)
	}
	return b.String()
}

// LinkNames lists the interfaces in n, sorted.
func LinkNames(n ns.NetNS) ([]string, error) {
	var names []string
	err := n.Do(func(ns.NetNS) error {
		links, err := netlinksafe.LinkList()
		if err != nil {
			return fmt.Errorf("listing links in %s: %w", n.Path(), err)
		}
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		return nil
	})
	sort.Strings(names)
	return names, err
}

// DeleteLink removes an interface inside n, as a runtime tearing a pod down
// (or a racing actor) would.
func DeleteLink(n ns.NetNS, ifName string) error {
	return n.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(ifName)
		if err != nil {
			return fmt.Errorf("deleting %s in %s: %w", ifName, n.Path(), err)
		}
		return netlink.LinkDel(l)
	})
}

// DeadProcessNetns returns the /proc/<pid>/ns/net path of a process that
// had its own network namespace and has exited: what a runtime passes when
// the sandbox died between its decision and the plugin call.
func DeadProcessNetns(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("need sleep(1) to hold a namespace: %v", err)
	}
	cmd := exec.Command(sleep, "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a process in a new netns: %v", err)
	}
	path := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("namespace of the live process: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("killing the process holding the netns: %v", err)
	}
	_ = cmd.Wait() // "signal: killed": what was asked for
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s still there after the process exited: %v", path, err)
	}
	return path
}

// MakeUnwritable makes dir refuse new entries, renames and removals even for
// root (mode bits do not stop root): with the immutable attribute where the
// file system has it (ext4, xfs, btrfs, tmpfs since 6.0), else with a
// read-only bind mount. Files already in dir stay writable in place, like a
// lock file. The returned restore is also registered as a cleanup, and
// calling it twice is harmless.
func MakeUnwritable(t testing.TB, dir string) (restore func()) {
	t.Helper()
	RequireRoot(t)
	if undo, err := setImmutable(dir); err == nil {
		return onceCleanup(t, func() {
			if err := undo(); err != nil {
				t.Errorf("clearing the immutable attribute of %s: %v", dir, err)
			}
		})
	} else if !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) {
		t.Fatalf("making %s immutable: %v", dir, err)
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting %s: %v", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH) // best effort: the remount error is the one to report
		t.Fatalf("remounting %s read-only: %v", dir, err)
	}
	return onceCleanup(t, func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting the read-only bind mount on %s: %v", dir, err)
		}
	})
}

// fsImmutableFL is FS_IMMUTABLE_FL from linux/fs.h (x/sys/unix lacks it).
const fsImmutableFL = 0x00000010

func setImmutable(dir string) (undo func() error, err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return nil, err
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags|fsImmutableFL)); err != nil {
		return nil, err
	}
	return func() error {
		f, err := os.Open(dir)
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags))
	}, nil
}

func onceCleanup(t testing.TB, f func()) func() {
	done := false
	once := func() {
		if !done {
			done = true
			f()
		}
	}
	t.Cleanup(once)
	return once
}

// HoldLock takes dataDir's state lock the way the plugin does (flock on
// dataDir/.lock), shared or exclusive, until release is called or the test
// ends.
func HoldLock(t testing.TB, dataDir string, exclusive bool) (release func()) {
	t.Helper()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dataDir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		_ = f.Close() // the flock error is the one to report
		t.Fatalf("locking %s: %v", f.Name(), err)
	}
	return onceCleanup(t, func() {
		if err := f.Close(); err != nil {
			t.Errorf("releasing the lock %s: %v", f.Name(), err)
		}
	})
}
