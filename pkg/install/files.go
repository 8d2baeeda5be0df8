package install

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// tmpMarker is part of every temporary file name this package creates. The
// name never ends in .conf, .conflist or .json, so neither the runtime
// (libcni picks configurations by extension) nor Cilium's cni.exclusive
// clean-up ever sees a half-written file as a configuration.
const tmpMarker = ".macguard-tmp-"

// staleTmpAge is how old a leftover temporary file must be before it is
// deleted: old enough that no other macguard process (a DaemonSet rolling
// update can overlap two) is still writing it.
const staleTmpAge = time.Minute

// owner is the numeric owner of a file.
type owner struct{ uid, gid int }

func ownerOf(fi fs.FileInfo) *owner {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return &owner{int(st.Uid), int(st.Gid)}
	}
	return nil
}

// writeAtomic replaces path with data so that a reader sees either the old
// file or the new one, never a part: a temporary file in the same
// directory, fsync, chmod, the original owner, rename, fsync of the
// directory (so the rename survives a crash). On failure the temporary file
// is removed and path is untouched.
//
// guard, when not nil, runs right before the rename; an error from it
// cancels the write. It narrows the window in which a concurrent writer's
// update could be replaced to the rename itself.
func writeAtomic(path string, data io.Reader, mode fs.FileMode, own *owner, guard func() error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+tmpMarker+"*")
	if err != nil {
		return fmt.Errorf("creating a temporary file next to %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	// Explicit, because CreateTemp's 0600 and the umask must not decide
	// the mode of a CNI binary or configuration.
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if own != nil {
		if fi, err := tmp.Stat(); err == nil {
			if cur := ownerOf(fi); cur != nil && *cur != *own {
				// Needs CAP_CHOWN when the owner differs; without it
				// we stop rather than silently hand someone else's
				// file to root.
				if err := tmp.Chown(own.uid, own.gid); err != nil {
					return fmt.Errorf("keeping the owner %d:%d of %s: %w", own.uid, own.gid, path, err)
				}
			}
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if guard != nil {
		if err := guard(); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", tmp.Name(), path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// removeStaleTmp deletes temporary files this package left in dir when a
// previous run was killed mid-write.
func removeStaleTmp(dir string, now time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") || !strings.Contains(e.Name(), tmpMarker) {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && now.Sub(fi.ModTime()) > staleTmpAge {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// fileSHA256 returns the hex SHA-256 of a file's content.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// binaryMode is the mode of the installed plugin: the runtime executes it,
// only root replaces it.
const binaryMode fs.FileMode = 0o755

// binaryState compares the installed binary at dst with the source's
// checksum; "" means it is in place.
func binaryState(dst, wantSum string) (problem string, err error) {
	fi, err := os.Lstat(dst)
	if errors.Is(err, fs.ErrNotExist) {
		return "missing", nil
	}
	if err != nil {
		return "", fmt.Errorf("stat %s: %w", dst, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Sprintf("not a regular file (%s)", fi.Mode().Type()), nil
	}
	sum, err := fileSHA256(dst)
	if err != nil {
		return "", fmt.Errorf("checksum of %s: %w", dst, err)
	}
	if sum != wantSum {
		return fmt.Sprintf("checksum %s, want %s", short(sum), short(wantSum)), nil
	}
	if fi.Mode().Perm() != binaryMode {
		return fmt.Sprintf("mode %o, want %o", fi.Mode().Perm(), binaryMode), nil
	}
	return "", nil
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// installBinary copies src to dst atomically unless dst already has the
// same content and mode, so a kubelet never executes a half-written file
// and a restart of the installer rewrites nothing. It reports whether it
// wrote.
func installBinary(src, srcSum, dst string) (bool, error) {
	problem, err := binaryState(dst, srcSum)
	if err != nil {
		return false, err
	}
	if problem == "" {
		return false, nil
	}
	in, err := os.Open(src)
	if err != nil {
		return false, fmt.Errorf("opening the source binary %s: %w", src, err)
	}
	defer in.Close()
	// Hash what is actually copied: if src changed since srcSum was taken,
	// the install is refused instead of leaving an unknown binary behind.
	h := sha256.New()
	if err := writeAtomic(dst, &verifying{r: io.TeeReader(in, h), h: h, want: srcSum, src: src}, binaryMode, nil, nil); err != nil {
		return false, err
	}
	return true, nil
}

// verifying passes a reader through and fails at EOF when the content's
// checksum is not the expected one.
type verifying struct {
	r    io.Reader
	h    interface{ Sum([]byte) []byte }
	want string
	src  string
}

func (v *verifying) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, fmt.Errorf("%s changed while it was copied (checksum %s, want %s)", v.src, short(got), short(v.want))
		}
	}
	return n, err
}

// readRegular reads a file that must be a regular file. A symlink is
// refused rather than followed: the atomic rename would replace the link
// itself, not the file it points to.
func readRegular(path string) ([]byte, fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		dst, _ := os.Readlink(path)
		return nil, nil, fmt.Errorf("%s is a symlink to %s; point --chain-into at the file itself", path, dst)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return data, fi, nil
}

// errBusy cancels a write because the file changed after it was read.
var errBusy = errors.New("the file changed while macguard was updating it; retrying on the next event")

// unchangedSince returns errBusy unless path still is the file fi and holds
// exactly data, i.e. nobody rewrote it while the new content was prepared.
// Calico's installer, for one, truncates and rewrites 10-calico.conflist in
// place, and its update must not be replaced by one based on older bytes.
func unchangedSince(path string, data []byte, fi fs.FileInfo) func() error {
	return func() error {
		now, err := os.Lstat(path)
		if err != nil || !os.SameFile(fi, now) {
			return errBusy
		}
		cur, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(cur, data) {
			return errBusy
		}
		return nil
	}
}
