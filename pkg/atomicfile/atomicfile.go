// Package atomicfile replaces files so that a reader, or a process killed at
// any moment, sees either the old content or the new one, never a part: the
// data goes to a temporary file in the same directory, which is renamed over
// the target. It also sweeps the temporary files a killed writer leaves.
//
// Whether the result must also survive a machine crash is the caller's
// decision (Options.Durable): that costs an fsync of the file and one of the
// directory, milliseconds on a disk, and protects only files that still
// matter after a reboot.
package atomicfile

import (
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

// Marker is part of the name of every temporary file Write creates:
// "." + the target's name + Marker + random digits. The name starts with a
// dot and never ends in the target's extension, so neither a directory
// listing of records nor a CNI runtime (which picks configurations by
// extension) takes a half-written file for a real one, and it is specific
// enough that Sweep never deletes a file another program left.
const Marker = ".tmp-macguard-"

// Owner is a numeric file owner.
type Owner struct{ UID, GID int }

// Options says how Write creates the file.
type Options struct {
	// Mode is the new file's permission bits, set explicitly so that
	// neither the umask nor the temporary file's 0600 decides them.
	Mode fs.FileMode
	// Owner, when not nil, is given to the new file if it differs from the
	// writer's (which needs CAP_CHOWN). Write fails rather than leave a
	// file to the wrong owner.
	Owner *Owner
	// Durable syncs the file before the rename and the directory after it,
	// so the new content survives a machine crash. Without it the rename
	// is still atomic for every process, and a killed writer loses nothing
	// the kernel already has; only a crash of the machine can leave an
	// empty or partial file.
	Durable bool
	// BeforeRename, when not nil, runs right before the rename; an error
	// from it cancels the write and is returned as it is. It lets a caller
	// check at the last moment that nobody else changed the target.
	BeforeRename func() error
}

// Write replaces path with the content of data. On any failure the
// temporary file is removed and path is left as it was.
func Write(path string, data io.Reader, opts Options) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+Marker+"*")
	if err != nil {
		return fmt.Errorf("creating a temporary file next to %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			// err is what the caller gets: a cleanup failure must not
			// replace it, and Write promises the removal, not a report of
			// it. The data is being thrown away, so Close has nothing to
			// lose (after the explicit Close below it just says "already
			// closed"). A temporary file a failed Remove leaves carries
			// Marker, so Sweep takes it later; after a successful rename
			// (a failed SyncDir) the name is gone and Remove finds nothing.
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if opts.Durable {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
		}
	}
	if err := tmp.Chmod(opts.Mode.Perm()); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if opts.Owner != nil {
		if err := chown(tmp, path, *opts.Owner); err != nil {
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if opts.BeforeRename != nil {
		if err := opts.BeforeRename(); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", tmp.Name(), path, err)
	}
	if opts.Durable {
		// The rename is in the directory, not in the file: without this a
		// crash can bring back the old name's content.
		return SyncDir(dir)
	}
	return nil
}

// chown gives tmp the owner own unless it already has it, so a writer
// without CAP_CHOWN can still replace its own files.
func chown(tmp *os.File, path string, own Owner) error {
	fi, err := tmp.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", tmp.Name(), err)
	}
	if cur, ok := OwnerOf(fi); ok && cur == own {
		return nil
	}
	if err := tmp.Chown(own.UID, own.GID); err != nil {
		return fmt.Errorf("keeping the owner %d:%d of %s: %w", own.UID, own.GID, path, err)
	}
	return nil
}

// OwnerOf returns the numeric owner of the file fi describes; ok is false
// when fi does not say.
func OwnerOf(fi fs.FileInfo) (own Owner, ok bool) {
	if st, isStat := fi.Sys().(*syscall.Stat_t); isStat {
		return Owner{int(st.Uid), int(st.Gid)}, true
	}
	return Owner{}, false
}

// SyncDir makes the entries of dir (a rename or a removal in it) durable.
func SyncDir(dir string) error {
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

// IsTemp reports whether name (a base name) is a temporary file of Write.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, Marker)
}

// Sweep removes the temporary files of Write in dir (see IsTemp) whose
// modification time is more than olderThan before now: files a writer
// killed mid-write left behind. olderThan must exceed the longest write, so
// that a temporary file another process is still writing is kept. Sweep
// returns the names it removed; a missing dir is not an error, and other
// errors are joined but do not stop the sweep.
func Sweep(dir string, olderThan time.Duration, now time.Time) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s for stale temporary files: %w", dir, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !IsTemp(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) <= olderThan {
			continue // gone meanwhile, or maybe still being written
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing stale temporary file %s: %w", p, err))
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}
