// Package state remembers, per attachment, the MAC an interface had before
// macguard changed it, so DEL can put it back and GC can drop what no runtime
// will ever delete.
//
// Records live in small JSON files under dataDir (tmpfs on nodes), one per
// container ID and interface, named "<ifname>@<containerID>.json": '@' never
// appears in a container ID, so the name splits unambiguously, and an
// operator can read the directory. Files are 0600 in a 0700 directory.
//
// # Durability
//
// A record is replaced atomically (a temporary file in dataDir renamed over
// it, see pkg/atomicfile) but not fsynced, on purpose. A record only matters
// while its network namespace exists, and no network namespace survives a
// machine crash; what must be survived is the death of the plugin at any
// moment, and for that the page cache is enough (the kernel keeps what a
// killed process wrote) and the rename makes every reader see the old record
// or the new one. An fsync of the file and the directory would protect only
// against a crash, after which the record is of no use, and would cost every
// ADD milliseconds when dataDir is on a disk (2.7 ms measured; 4.4 ms against
// 0.15 ms per write in atomicfile's BenchmarkWrite on ext4). What a crash
// can leave — an empty or cut-short record, if dataDir is on a disk — Load
// reports as ErrCorrupt with found false, so that it is handled as safely
// as a missing record.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/macguard-cni/macguard/pkg/atomicfile"
)

// recordVersion lets a later macguard read records written by this one.
const recordVersion = 1

// ErrBusy is returned when the lock could not be taken in time; the plugin
// maps it to CNI's "try again later".
var ErrBusy = errors.New("state directory busy")

// ErrCorrupt marks a record file that exists but holds no record: empty, cut
// short, not JSON, or the record of another attachment. Load returns it with
// found false. An intact record is only ever replaced by rename, so an empty
// or cut-short file is what a machine crash left (see Durability), the
// record of a network namespace that is gone; a foreign record was not
// written by macguard for this attachment at all. Either way nothing in it
// can be acted on: ADD may treat it as absent and write its own record over
// it, and DEL may drop it.
var ErrCorrupt = errors.New("corrupt")

// staleTempAge is how old a temporary file must be before GC removes it:
// far longer than any write takes, so one an ADD is writing is kept.
const staleTempAge = time.Minute

// legacyTempMarker is in the temporary file names of macguard versions
// before pkg/atomicfile (".<record>.json.tmp<digits>"), so that GC also
// removes those a killed writer left before an upgrade.
const legacyTempMarker = ".json.tmp"

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
			// Closing the descriptor releases the flock whatever Close
			// returns (Linux frees the descriptor even when close fails),
			// and nothing is written to the lock file, so its error has
			// nothing to lose and nothing a caller could do about it.
			return func() { _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close() // never locked, never written: see unlock above
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("dataDir %s still locked after %s: %w", s.Dir, s.LockTimeout, ErrBusy)
			}
			return nil, fmt.Errorf("locking dataDir %s: %w", s.Dir, err)
		}
		time.Sleep(delay)
	}
}

// Save writes r atomically and without fsync (see Durability).
func (s *Store) Save(r Record) error {
	r.Version = recordVersion
	k := Key{r.ContainerID, r.IfName}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding state for %s: %w", k, err)
	}
	final := filepath.Join(s.Dir, k.fileName())
	if err := atomicfile.Write(final, bytes.NewReader(data), atomicfile.Options{Mode: 0o600}); err != nil {
		return fmt.Errorf("writing state for %s in dataDir %s: %w", k, s.Dir, err)
	}
	return nil
}

// Load returns the record for k; found is false when there is none. A file
// that holds no record for k (see ErrCorrupt) gives found false and an error
// that wraps ErrCorrupt and names the file; other errors (the file cannot be
// read) wrap the cause.
func (s *Store) Load(k Key) (r Record, found bool, err error) {
	path := filepath.Join(s.Dir, k.fileName())
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("reading state for %s: %w", k, err)
	}
	corrupt := func(cause error) (Record, bool, error) {
		return Record{}, false, fmt.Errorf("state file %s for %s is %w: %w", path, k, ErrCorrupt, cause)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return corrupt(errors.New("it is empty"))
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return corrupt(err)
	}
	// JSON null decodes into an empty record without an error, and a
	// record must name the attachment its file is named after.
	if (Key{r.ContainerID, r.IfName}) != k {
		return corrupt(fmt.Errorf("it holds the record of %q", Key{r.ContainerID, r.IfName}))
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
	// Best effort: a leftover temporary file is harmless, and must not
	// turn a GC that removed every stale record into a failure.
	_, _ = atomicfile.Sweep(s.Dir, staleTempAge, time.Now(), legacyTempMarker)
	return removed, errors.Join(errs...)
}
