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
	"time"

	"github.com/macguard-cni/macguard/pkg/atomicfile"
)

// staleTmpAge is how old a leftover temporary file must be before it is
// deleted: old enough that no other installer (a DaemonSet rolling update
// can overlap two) is still writing it.
const staleTmpAge = time.Minute

// The files the installer writes stay on the node across reboots, and a
// kubelet or runtime may read them right after one: every write is durable
// (fsync of the file and of its directory), unlike the plugin's records
// (see pkg/state).

// writeAtomic replaces path with data (see atomicfile.Write), durably, with
// mode and, when own is not nil, that owner. guard, when not nil, runs right
// before the rename; an error from it cancels the write. It narrows the
// window in which a concurrent writer's update could be replaced to the
// rename itself.
func writeAtomic(path string, data io.Reader, mode fs.FileMode, own *atomicfile.Owner, guard func() error) error {
	return atomicfile.Write(path, data, atomicfile.Options{Mode: mode, Owner: own, Durable: true, BeforeRename: guard})
}

// ownerOf returns the owner of the file fi describes, nil when unknown.
func ownerOf(fi fs.FileInfo) *atomicfile.Owner {
	if own, ok := atomicfile.OwnerOf(fi); ok {
		return &own
	}
	return nil
}

// removeStaleTmp deletes the temporary files an installer killed mid-write
// left in dir. It is best effort: a leftover is harmless and is tried
// again on the next pass.
func removeStaleTmp(dir string, now time.Time) {
	_, _ = atomicfile.Sweep(dir, staleTmpAge, now)
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
