package pathpolicy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	r := FromEnv(env(map[string]string{
		EnvDataRoots: "/srv/mg::relative:/proc/x:/srv/a/../b:/",
		EnvLogRoots:  "/srv/log",
	}))
	if want := []string{"/run/cni", "/var/lib/cni", "/srv/mg"}; !reflect.DeepEqual(r.Data, want) {
		t.Errorf("data roots %v, want %v", r.Data, want)
	}
	if want := []string{"/var/log", "/srv/log"}; !reflect.DeepEqual(r.Log, want) {
		t.Errorf("log roots %v, want %v", r.Log, want)
	}
	if len(r.Ignored) != 4 {
		t.Errorf("ignored %v, want the relative, /proc, unclean and / entries", r.Ignored)
	}
}

func TestPlace(t *testing.T) {
	r := FromEnv(env(nil))
	for _, tc := range []struct {
		path, root, rel string // root "" means refused
	}{
		{"/run/cni/macguard", "/run/cni", "macguard"},
		{"/var/lib/cni/a/b", "/var/lib/cni", "a/b"},
		{"/run/cni", "", ""},
		{"/run/cnix/macguard", "", ""},
		{"/run/cni/../../etc", "", ""},
		{"/run/cni/macguard/", "", ""},
		{"run/cni/macguard", "", ""},
		{"/etc/cni/net.d", "", ""},
		{"/proc/sys", "", ""},
	} {
		p, err := r.DataDir(tc.path)
		if tc.root == "" {
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "dataDir") || !strings.Contains(err.Error(), "/run/cni, /var/lib/cni") {
				t.Errorf("DataDir(%q) = %v, %v; want a refusal naming the field and the roots", tc.path, p, err)
			}
			continue
		}
		if err != nil || p != (Place{tc.root, tc.rel}) || p.Path() != tc.path {
			t.Errorf("DataDir(%q) = %+v, %v; want %s + %s", tc.path, p, err, tc.root, tc.rel)
		}
	}
	if _, err := r.LogFile("/var/log/macguard.log"); err != nil {
		t.Errorf("LogFile beneath /var/log: %v", err)
	}
	if _, err := r.LogFile("/proc/sys/kernel/hostname"); !errors.Is(err, ErrRefused) {
		t.Errorf("LogFile /proc/sys/kernel/hostname: %v, want refused", err)
	}
}

// TestOpenDir: directories are made 0700 beneath the root, a symlink in
// any component is refused, and without create a missing one is
// fs.ErrNotExist.
func TestOpenDir(t *testing.T) {
	root := t.TempDir()
	d, err := OpenDir(Place{root, "a/b/c"}, true)
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Close()
	for _, p := range []string{"a", "a/b", "a/b/c"} {
		if fi, err := os.Stat(filepath.Join(root, p)); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want a 0700 directory", p, fi.Mode(), err)
		}
	}
	if _, err := OpenDir(Place{root, "missing"}, false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing without create: %v", err)
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "a", "link")); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"a/link", "a/link/x"} {
		if _, err := OpenDir(Place{root, rel}, true); !errors.Is(err, ErrRefused) {
			t.Errorf("OpenDir through a symlink %s: %v, want refused", rel, err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("something was made through the symlink: %v", entries)
	}
}

// TestOpenAppend: only a regular file in an existing directory, never
// through a symlink, never blocking on a FIFO.
func TestOpenAppend(t *testing.T) {
	root := t.TempDir()
	f, err := OpenAppend(Place{root, "new.log"})
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	if fi, err := os.Stat(filepath.Join(root, "new.log")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new log: %v %v, want 0600", fi.Mode(), err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "new.log"), filepath.Join(root, "link.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"fifo", "link.log", "dir", "missing/x.log"} {
		if f, err := OpenAppend(Place{root, rel}); err == nil {
			_ = f.Close()
			t.Errorf("OpenAppend(%s) succeeded", rel)
		}
	}
}

// TestWalkBeneath: the fallback for kernels without openat2 refuses a
// symlink in any component as openat2 does.
func TestWalkBeneath(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "a"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	rootfd, err := openRoot(root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	fd, err := walkBeneath(rootfd, "a/b", syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatalf("a/b: %v", err)
	}
	_ = syscall.Close(fd)
	for _, rel := range []string{"link/b", "link", "a/../a/b"} {
		if fd, err := walkBeneath(rootfd, rel, syscall.O_RDONLY|syscall.O_DIRECTORY, 0); err == nil {
			_ = syscall.Close(fd)
			t.Errorf("walkBeneath(%s) succeeded", rel)
		}
	}
}
