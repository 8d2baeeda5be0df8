// Package pathpolicy decides where on the node macguard may write, and
// opens files there without following a symlink in any component.
//
// A conflist entry, and through Multus a NetworkAttachmentDefinition, is
// written by whoever may create one in a namespace; macguard runs as root.
// So the entry's dataDir and logFile are only accepted beneath roots that
// the node chose: built-in defaults, widened by the runtime's environment
// (MACGUARD_DATA_ROOTS, MACGUARD_LOG_ROOTS), which the kubelet, containerd
// or cnitool pass down and no tenant can set. The plugin and the doctor ask
// the same functions here, so there is one rule in one place.
package pathpolicy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Environment variables that widen the roots: colon-separated absolute
// paths, added to the defaults.
const (
	EnvDataRoots = "MACGUARD_DATA_ROOTS"
	EnvLogRoots  = "MACGUARD_LOG_ROOTS"
)

// Built-in roots: the directories runtimes and CNI plugins keep their state
// in, and the node's log directory.
var (
	DefaultDataRoots = []string{"/run/cni", "/var/lib/cni"}
	DefaultLogRoots  = []string{"/var/log"}
)

// forbidden are the pseudo-filesystems that no root may lie in: a write
// there changes the kernel (a sysctl, the hostname) or a device.
var forbidden = []string{"/proc", "/sys", "/dev"}

// ErrRefused marks a path outside the allowed roots, or one that would have
// to go through a symlink, a FIFO, a device or a pseudo-filesystem.
var ErrRefused = errors.New("refused")

// Roots are the directories beneath which the plugin may keep state (Data)
// and write its log (Log).
type Roots struct {
	Data []string `json:"data"`
	Log  []string `json:"log"`
	// Ignored lists the environment entries that were not usable roots
	// (relative, not clean, or in /proc, /sys, /dev), for a warning.
	Ignored []string `json:"ignored,omitempty"`
}

// FromEnv returns the default roots widened by the environment getenv
// reads.
func FromEnv(getenv func(string) string) Roots {
	var r Roots
	r.Data = widen(DefaultDataRoots, getenv(EnvDataRoots), EnvDataRoots, &r.Ignored)
	r.Log = widen(DefaultLogRoots, getenv(EnvLogRoots), EnvLogRoots, &r.Ignored)
	return r
}

// Node returns the roots of this process's environment.
func Node() Roots { return FromEnv(os.Getenv) }

func widen(defaults []string, list, env string, ignored *[]string) []string {
	roots := append([]string(nil), defaults...)
	for _, e := range strings.Split(list, ":") {
		if e == "" {
			continue
		}
		if !filepath.IsAbs(e) || filepath.Clean(e) != e || e == "/" || underForbidden(e) {
			*ignored = append(*ignored, env+"="+e)
			continue
		}
		roots = append(roots, e)
	}
	return roots
}

func underForbidden(p string) bool {
	for _, f := range forbidden {
		if within(p, f) || p == f {
			return true
		}
	}
	return false
}

// within reports whether p lies strictly beneath dir; both are clean and
// absolute.
func within(p, dir string) bool {
	return strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// Place is an allowed path split into the root it lies beneath and the
// part below that root.
type Place struct {
	Root string
	Rel  string
}

// Path is the whole path.
func (p Place) Path() string { return filepath.Join(p.Root, p.Rel) }

// DataDir checks a dataDir against the data roots.
func (r Roots) DataDir(path string) (Place, error) { return place("dataDir", path, r.Data) }

// LogFile checks a logFile against the log roots.
func (r Roots) LogFile(path string) (Place, error) { return place("logFile", path, r.Log) }

func place(field, path string, roots []string) (Place, error) {
	refuse := func(why string) (Place, error) {
		return Place{}, fmt.Errorf("%w: %s %q %s; allowed: beneath %s (the node widens them with %s / %s, a conflist or NetworkAttachmentDefinition cannot)",
			ErrRefused, field, path, why, strings.Join(roots, ", "), EnvDataRoots, EnvLogRoots)
	}
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return refuse("is not a clean absolute path (no '..', '//' or trailing '/')")
	}
	if underForbidden(path) {
		return refuse("is in /proc, /sys or /dev")
	}
	for _, root := range roots {
		if within(path, root) {
			return Place{Root: root, Rel: strings.TrimPrefix(path, strings.TrimSuffix(root, "/")+"/")}, nil
		}
	}
	return refuse("is outside the allowed roots")
}

// resolveFlags: never leave the root, never follow a symlink (nor a /proc
// magic link), in any component.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openBeneath opens rel beneath the directory dirfd without following a
// symlink in any component. It uses openat2; on a kernel without it
// (before 5.6, ENOSYS) it walks the components with O_NOFOLLOW, which is
// equivalent here because rel is clean and has no "..".
func openBeneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Mode: uint64(mode), Resolve: resolveFlags}
	for {
		fd, err := unix.Openat2(dirfd, rel, &how)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue // EAGAIN: a rename raced the lookup; try again
		case errors.Is(err, unix.ENOSYS):
			return walkBeneath(dirfd, rel, flags, mode)
		}
		return -1, err
	}
}

func walkBeneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	parts := strings.Split(rel, "/")
	cur := dirfd
	for i, part := range parts {
		if part == ".." || part == "" {
			return -1, unix.EXDEV
		}
		last := i == len(parts)-1
		f, m := unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(0)
		if last {
			f, m = flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode
		}
		fd, err := unix.Openat(cur, part, f, m)
		if cur != dirfd {
			_ = unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	return cur, nil
}

// openRoot opens an allowed root. The root is the node's choice and may
// itself be reached through a symlink (/var/run); create makes it (0755)
// when missing, as a CNI directory is on a fresh node.
func openRoot(root string, create bool) (int, error) {
	if create {
		if err := os.MkdirAll(root, 0o755); err != nil {
			return -1, err
		}
	}
	return unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// notPseudo refuses a descriptor on procfs or sysfs: a bind mount can put
// either beneath an allowed root.
func notPseudo(fd int, path string) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", path, err)
	}
	switch st.Type {
	case unix.PROC_SUPER_MAGIC, unix.SYSFS_MAGIC, unix.DEVPTS_SUPER_MAGIC, unix.CGROUP_SUPER_MAGIC, unix.CGROUP2_SUPER_MAGIC:
		return fmt.Errorf("%w: %s is on a kernel pseudo-filesystem", ErrRefused, path)
	}
	return nil
}

// OpenDir opens the directory p (0700 when made) beneath its root without
// following a symlink; create makes the missing components, otherwise a
// missing directory is an error wrapping fs.ErrNotExist.
func OpenDir(p Place, create bool) (*os.File, error) {
	rootfd, err := openRoot(p.Root, create)
	if err != nil {
		return nil, fmt.Errorf("opening root %s of %s: %w", p.Root, p.Path(), err)
	}
	defer unix.Close(rootfd)
	const flags = unix.O_RDONLY | unix.O_DIRECTORY
	fd, err := openBeneath(rootfd, p.Rel, flags, 0)
	if errors.Is(err, unix.ENOENT) && create {
		parts := strings.Split(p.Rel, "/")
		for i := range parts {
			sub := strings.Join(parts[:i+1], "/")
			dfd, err := openBeneath(rootfd, strings.Join(parts[:i], "/"), flags, 0)
			if i == 0 {
				dfd, err = unix.Dup(rootfd)
			}
			if err != nil {
				return nil, pathErr(p.Root+"/"+strings.Join(parts[:i], "/"), err)
			}
			err = unix.Mkdirat(dfd, parts[i], 0o700)
			_ = unix.Close(dfd)
			if err != nil && !errors.Is(err, unix.EEXIST) {
				return nil, pathErr(filepath.Join(p.Root, sub), err)
			}
		}
		fd, err = openBeneath(rootfd, p.Rel, flags, 0)
	}
	if errors.Is(err, unix.ENOTDIR) && isSymlink(rootfd, p.Rel) {
		// O_DIRECTORY|O_NOFOLLOW on a final symlink says ENOTDIR.
		err = unix.ELOOP
	}
	if err != nil {
		return nil, pathErr(p.Path(), err)
	}
	if err := notPseudo(fd, p.Path()); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), p.Path()), nil
}

// isSymlink reports whether rel beneath dirfd is itself a symlink.
func isSymlink(dirfd int, rel string) bool {
	fd, err := openBeneath(dirfd, rel, unix.O_PATH, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

// pathErr names path and says when the cause is a symlink on the way.
func pathErr(path string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		return fmt.Errorf("%w: %s: a component is a symlink (macguard follows none): %w", ErrRefused, path, err)
	}
	return &os.PathError{Op: "open", Path: path, Err: err}
}

// OpenAppend opens the log file p for appending, creating it 0600 in an
// existing directory. It follows no symlink, never blocks on a FIFO
// (O_NONBLOCK) and accepts only a regular file.
func OpenAppend(p Place) (*os.File, error) {
	rootfd, err := openRoot(p.Root, false)
	if err != nil {
		return nil, fmt.Errorf("opening root %s of %s: %w", p.Root, p.Path(), err)
	}
	defer unix.Close(rootfd)
	fd, err := openBeneath(rootfd, p.Rel, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NONBLOCK, 0o600)
	if err != nil {
		if errors.Is(err, unix.ENXIO) {
			return nil, fmt.Errorf("%w: %s is a FIFO or socket, not a regular file", ErrRefused, p.Path())
		}
		return nil, pathErr(p.Path(), err)
	}
	f := os.NewFile(uintptr(fd), p.Path())
	if err := RegularFile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := notPseudo(fd, p.Path()); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// RegularFile refuses an open file that is not a regular file (a FIFO, a
// device, a directory).
func RegularFile(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file (%s)", ErrRefused, f.Name(), fi.Mode().Type())
	}
	return nil
}
