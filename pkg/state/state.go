// Package state remembers, per attachment, the MAC an interface had before
// macguard changed it, so DEL can put it back and GC can drop what no runtime
// will ever delete.
//
// Records live in small JSON files under dataDir (tmpfs on nodes), one per
// container ID and interface, named "<ifname>@<containerID>.json": '@' never
// appears in a container ID, so the name splits unambiguously, and an
// operator can read the directory. Files are 0600 in a 0700 directory and are
// written atomically (temporary file, fsync, rename) so a crash never leaves
// half a record.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// recordVersion lets a later macguard read records written by this one.
const recordVersion = 1

// ErrBusy is returned when the lock could not be taken in time; the plugin
// maps it to CNI's "try again later".
var ErrBusy = errors.New("state directory busy")

// Record is what is kept for one attachment.
type Record struct {
	Version     int    `json:"version"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns"`
	// OriginalMAC is what the interface had before macguard's change; empty
	// when it had none (DEL then leaves the MAC alone).
	OriginalMAC string `json:"originalMAC"`
	// AppliedMAC is what macguard set; DEL restores only while the
	// interface still has it, so a MAC someone else set is never undone.
	AppliedMAC string    `json:"appliedMAC"`
	Created    time.Time `json:"created"`
}

// Key identifies an attachment.
type Key struct {
	ContainerID string
	IfName      string
}

func (k Key) fileName() string { return k.IfName + "@" + k.ContainerID + ".json" }

// String is for messages.
func (k Key) String() string { return k.ContainerID + "/" + k.IfName }

// Store is a state directory.
type Store struct {
	Dir string
	// LockTimeout bounds how long an operation waits for GC (or the other
	// way round) before answering "try again later".
	LockTimeout time.Duration
}

// New returns a Store for dir with the default lock timeout.
func New(dir string) *Store { return &Store{Dir: dir, LockTimeout: 10 * time.Second} }

const lockName = ".lock"

// Lock takes the directory lock: shared for ADD/CHECK/DEL, which touch only
// their own file, exclusive for GC, which must not delete a record an ADD is
// writing. It creates the directory (0700) if needed, so an unusable dataDir
// is found before any link is touched.
func (s *Store) Lock(exclusive bool) (unlock func(), err error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating dataDir %s: %w", s.Dir, err)
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, lockName), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file in dataDir %s: %w", s.Dir, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	deadline := time.Now().Add(s.LockTimeout)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("dataDir %s still locked after %s: %w", s.Dir, s.LockTimeout, ErrBusy)
			}
			return nil, fmt.Errorf("locking dataDir %s: %w", s.Dir, err)
		}
		time.Sleep(delay)
	}
}

// Save writes r atomically.
func (s *Store) Save(r Record) error {
	r.Version = recordVersion
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding state for %s: %w", Key{r.ContainerID, r.IfName}, err)
	}
	k := Key{r.ContainerID, r.IfName}
	final := filepath.Join(s.Dir, k.fileName())
	tmp, err := os.CreateTemp(s.Dir, "."+k.fileName()+".tmp*")
	if err != nil {
		return fmt.Errorf("writing state for %s in dataDir %s: %w", k, s.Dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("renaming state into %s: %w", final, err)
	}
	ok = true
	return nil
}

// Load returns the record for k; found is false when there is none.
func (s *Store) Load(k Key) (r Record, found bool, err error) {
	data, err := os.ReadFile(filepath.Join(s.Dir, k.fileName()))
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("reading state for %s: %w", k, err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return Record{}, false, fmt.Errorf("state file for %s in %s is corrupt: %w", k, s.Dir, err)
	}
	return r, true, nil
}

// Remove deletes the record for k; a missing record is not an error (DEL
// must be idempotent).
func (s *Store) Remove(k Key) error {
	err := os.Remove(filepath.Join(s.Dir, k.fileName()))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing state for %s: %w", k, err)
	}
	return nil
}

// Keys lists the attachments that have records. A missing directory means
// none.
func (s *Store) Keys() ([]Key, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing dataDir %s: %w", s.Dir, err)
	}
	var keys []Key
	for _, e := range entries {
		if k, ok := parseFileName(e.Name()); ok && e.Type().IsRegular() {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func parseFileName(name string) (Key, bool) {
	if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
		return Key{}, false
	}
	base := strings.TrimSuffix(name, ".json")
	at := strings.LastIndexByte(base, '@')
	if at <= 0 || at == len(base)-1 {
		return Key{}, false
	}
	return Key{IfName: base[:at], ContainerID: base[at+1:]}, true
}

// GC removes every record whose attachment is not in valid and returns the
// keys it removed. Temporary files older than a minute (left by a killed
// writer) are removed too.
func (s *Store) GC(valid map[Key]bool) ([]Key, error) {
	keys, err := s.Keys()
	if err != nil {
		return nil, err
	}
	var removed []Key
	var errs []error
	for _, k := range keys {
		if valid[k] {
			continue
		}
		if err := s.Remove(k); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, k)
	}
	s.removeStaleTemps(time.Minute)
	return removed, errors.Join(errs...)
}

func (s *Store) removeStaleTemps(age time.Duration) {
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") || !strings.Contains(e.Name(), ".tmp") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > age {
			os.Remove(filepath.Join(s.Dir, e.Name()))
		}
	}
}
