// Package state remembers, per attachment, the MAC an interface had before
// macguard changed it, so DEL can put it back and GC can drop what no runtime
// will ever delete.
//
// Records live in small JSON files under dataDir (tmpfs on nodes), one per
// attachment: network name, container ID and interface. Networks share a
// dataDir (the default one), so the network is part of the key, and GC
// touches only records of its own network. A file is named
// "macguard-<hash of the key>.record": within NAME_MAX for any container ID
// or network name, never taken for a CNI configuration (*.conf, *.conflist,
// *.json) and never a name another program uses; the record inside names
// its attachment, and only a file whose content hashes back to its name
// counts as a record. Files are 0600 in a 0700 directory.
//
// # Trust
//
// dataDir comes from a conflist a tenant may have written (through Multus),
// so the plugin opens it with pathpolicy (beneath the node's roots, no
// symlink in any component) and every file in it with O_NOFOLLOW and
// O_NONBLOCK, by name relative to that directory, reading at most
// maxRecordSize bytes of a regular file. Whatever else is in the directory
// is never read, changed or removed.
//
// # Records of earlier builds
//
// Builds before this format (no release had it) named records
// "<ifname>@<containerID>.json" without a network. This version neither
// reads nor removes them: their owner cannot be told, and a wrong guess
// would undo another network's MAC. A DEL for such an attachment finds no
// record and succeeds without restoring the MAC; the files stay until an
// operator removes them (the doctor lists them, see Legacy).
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
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/macguard-cni/macguard/pkg/atomicfile"
	"github.com/macguard-cni/macguard/pkg/macaddr"
	"github.com/macguard-cni/macguard/pkg/pathpolicy"
)

// recordVersion lets a later macguard read records written by this one.
// Version 2 added the network.
const recordVersion = 2

// maxRecordSize bounds a read: a record is a few hundred bytes, and a
// bigger file (a planted 1 GiB one) is not a record.
const maxRecordSize = 64 << 10

// ErrBusy is returned when the lock could not be taken in time; the plugin
// maps it to CNI's "try again later".
var ErrBusy = errors.New("state directory busy")

// ErrCorrupt marks a record file that exists but holds no record: empty, cut
// short, not JSON, too big, not a regular file, or the record of another
// attachment. Load returns it with found false. An intact record is only
// ever replaced by rename, so an empty or cut-short file is what a machine
// crash left (see Durability), the record of a network namespace that is
// gone; anything else was not written by macguard for this attachment at
// all. Either way nothing in it can be acted on: ADD may treat it as absent
// and write its own record over it, and DEL may drop it.
var ErrCorrupt = errors.New("corrupt")

// staleTempAge is how old a temporary file must be before GC removes it:
// far longer than any write takes, so one an ADD is writing is kept.
const staleTempAge = time.Minute

const (
	filePrefix = "macguard-"
	fileSuffix = ".record"
)

// Record is what is kept for one attachment.
type Record struct {
	Version     int    `json:"version"`
	Network     string `json:"network"`
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

// Key is the record's attachment.
func (r Record) Key() Key {
	return Key{Network: r.Network, ContainerID: r.ContainerID, IfName: r.IfName}
}

// Key identifies an attachment: CNI's (network name, container ID,
// interface).
type Key struct {
	Network     string
	ContainerID string
	IfName      string
}

func (k Key) hash() [sha256.Size]byte {
	// Length-prefixed, so no two keys give the same input.
	var b bytes.Buffer
	for _, s := range []string{k.Network, k.ContainerID, k.IfName} {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(s)))
		b.WriteString(s)
	}
	return sha256.Sum256(b.Bytes())
}

// FileName is the record file's name in dataDir.
func (k Key) FileName() string {
	h := k.hash()
	return filePrefix + hex.EncodeToString(h[:20]) + fileSuffix
}

// String is for messages.
func (k Key) String() string { return k.Network + ":" + k.ContainerID + "/" + k.IfName }

// Store is a state directory.
type Store struct {
	// Dir is dataDir, for messages.
	Dir string
	// LockTimeout bounds how long an operation waits for GC (or the other
	// way round), or for another ADD of the same attachment, before
	// answering "try again later".
	LockTimeout time.Duration

	place *pathpolicy.Place
	dir   *os.File
	lock  *os.File
}

// New returns a Store for dir, a path an operator gave (the doctor, tests):
// it is opened as it is written. The plugin uses Beneath.
func New(dir string) *Store { return &Store{Dir: dir, LockTimeout: 10 * time.Second} }

// Beneath returns a Store for a dataDir that pathpolicy allowed: it is
// opened beneath its root without following any symlink.
func Beneath(p pathpolicy.Place) *Store {
	s := New(p.Path())
	s.place = &p
	return s
}

// Open opens dataDir, creating it (0700) when create is set; without
// create a missing dataDir is an error wrapping fs.ErrNotExist. Every other
// method opens it (creating it for Lock) when it is not open yet.
func (s *Store) Open(create bool) error {
	if s.dir != nil {
		return nil
	}
	var d *os.File
	var err error
	if s.place != nil {
		d, err = pathpolicy.OpenDir(*s.place, create)
	} else {
		if create {
			if err := os.MkdirAll(s.Dir, 0o700); err != nil {
				return fmt.Errorf("creating dataDir %s: %w", s.Dir, err)
			}
		}
		d, err = os.OpenFile(s.Dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		if create {
			return fmt.Errorf("creating dataDir %s: %w", s.Dir, err)
		}
		return fmt.Errorf("opening dataDir %s: %w", s.Dir, err)
	}
	s.dir = d
	return nil
}

// Close releases the directory and the locks.
func (s *Store) Close() {
	if s.lock != nil {
		_ = s.lock.Close()
		s.lock = nil
	}
	if s.dir != nil {
		_ = s.dir.Close()
		s.dir = nil
	}
}

func (s *Store) fd() int { return int(s.dir.Fd()) }

// openIn opens name in dataDir, never following a symlink and never
// blocking on a FIFO.
func (s *Store) openIn(name string, flags int, mode uint32) (*os.File, error) {
	fd, err := unix.Openat(s.fd(), name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, mode)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(s.Dir, name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(s.Dir, name)), nil
}

const lockName = ".lock"

// Lock takes the directory lock: shared for ADD/CHECK/DEL, which touch only
// their own file, exclusive for GC, which must not delete a record an ADD is
// writing. It opens dataDir, creating it if needed, so an unusable dataDir
// is found before any link is touched. Unlocking closes the Store.
func (s *Store) Lock(exclusive bool) (unlock func(), err error) {
	if err := s.Open(true); err != nil {
		return nil, err
	}
	f, err := s.openIn(lockName, unix.O_RDWR|unix.O_CREAT, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file in dataDir %s: %w", s.Dir, err)
	}
	if err := pathpolicy.RegularFile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock file in dataDir %s: %w", s.Dir, err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	err = s.poll(func() error { return unix.Flock(int(f.Fd()), how|unix.LOCK_NB) })
	if err != nil {
		_ = f.Close() // never locked, never written
		if errors.Is(err, ErrBusy) {
			return nil, fmt.Errorf("dataDir %s still locked after %s: %w", s.Dir, s.LockTimeout, ErrBusy)
		}
		return nil, fmt.Errorf("locking dataDir %s: %w", s.Dir, err)
	}
	// Closing the descriptor releases the flock (and the attachment
	// locks) whatever Close returns, and nothing is written to the lock
	// file, so its error has nothing to lose.
	s.lock = f
	return s.Close, nil
}

// poll retries try while it says the lock is held, up to LockTimeout, then
// returns ErrBusy.
func (s *Store) poll(try func() error) error {
	deadline := time.Now().Add(s.LockTimeout)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		err := try()
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EACCES) {
			return err
		}
		if time.Now().After(deadline) {
			return ErrBusy
		}
		time.Sleep(delay)
	}
}

// LockAttachment serializes the ADDs of one attachment, under Lock: an
// open-file-description lock on one byte of the lock file, at an offset
// the key's hash picks (two keys that share it only wait for each other).
// It needs no file per attachment, so nothing is left to clean up, and the
// kernel drops it when the process dies.
func (s *Store) LockAttachment(k Key) (unlock func(), err error) {
	if s.lock == nil {
		return nil, errors.New("LockAttachment without Lock")
	}
	h := k.hash()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: int64(binary.BigEndian.Uint64(h[:8]) >> 2), Len: 1}
	fd := int(s.lock.Fd())
	err = s.poll(func() error { return unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk) })
	if errors.Is(err, ErrBusy) {
		return nil, fmt.Errorf("another ADD of %s was still running after %s; nothing was changed: %w", k, s.LockTimeout, ErrBusy)
	}
	if err != nil {
		return nil, fmt.Errorf("locking %s in dataDir %s: %w", k, s.Dir, err)
	}
	return func() {
		un := lk
		un.Type = unix.F_UNLCK
		_ = unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &un) // closing the fd drops it anyway
	}, nil
}

// Save writes r atomically and without fsync (see Durability): a temporary
// file created exclusively in dataDir, renamed over the record.
func (s *Store) Save(r Record) (err error) {
	if err := s.Open(true); err != nil {
		return err
	}
	r.Version = recordVersion
	k := r.Key()
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding state for %s: %w", k, err)
	}
	name := k.FileName()
	var rnd [8]byte
	_, _ = rand.Read(rnd[:]) // never fails on Linux
	tmpName := "." + name + atomicfile.Marker + hex.EncodeToString(rnd[:])
	tmp, err := s.openIn(tmpName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing state for %s in dataDir %s: %w", k, s.Dir, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = unix.Unlinkat(s.fd(), tmpName, 0)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing state for %s in dataDir %s: %w", k, s.Dir, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing state for %s in dataDir %s: %w", k, s.Dir, err)
	}
	if err := unix.Renameat(s.fd(), tmpName, s.fd(), name); err != nil {
		return fmt.Errorf("writing state for %s in dataDir %s: renaming into %s: %w", k, s.Dir, name, err)
	}
	return nil
}

// File is the path of k's record, for messages.
func (s *Store) File(k Key) string { return filepath.Join(s.Dir, k.FileName()) }

// Load returns the record for k; found is false when there is none. A file
// that holds no record for k (see ErrCorrupt) gives found false and an error
// that wraps ErrCorrupt and names the file; other errors (dataDir or the
// file cannot be read) wrap the cause.
func (s *Store) Load(k Key) (r Record, found bool, err error) {
	if err := s.Open(false); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Record{}, false, nil
		}
		return Record{}, false, err
	}
	r, err = s.read(k.FileName())
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, false, nil
	}
	if err == nil && r.Key() != k {
		err = fmt.Errorf("state file %s for %s is %w: it holds the record of %q", s.File(k), k, ErrCorrupt, r.Key())
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("reading state for %s: %w", k, err)
	}
	return r, true, nil
}

// read reads and decodes the record file name: at most maxRecordSize bytes
// of a regular file, and a MAC that is not a unicast address (or empty) is
// no record either.
func (s *Store) read(name string) (Record, error) {
	path := filepath.Join(s.Dir, name)
	corrupt := func(cause error) (Record, error) {
		return Record{}, fmt.Errorf("state file %s is %w: %w", path, ErrCorrupt, cause)
	}
	f, err := s.openIn(name, unix.O_RDONLY, 0)
	switch {
	case errors.Is(err, unix.ELOOP):
		return corrupt(errors.New("it is a symlink"))
	case errors.Is(err, unix.ENXIO):
		return corrupt(errors.New("it is a socket"))
	case err != nil:
		return Record{}, err
	}
	defer f.Close()
	if err := pathpolicy.RegularFile(f); err != nil {
		return corrupt(err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return Record{}, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxRecordSize {
		return corrupt(fmt.Errorf("it is larger than %d bytes", maxRecordSize))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return corrupt(errors.New("it is empty"))
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return corrupt(err)
	}
	if r.Version != recordVersion {
		return corrupt(fmt.Errorf("it has version %d, not %d", r.Version, recordVersion))
	}
	// JSON null decodes into an empty record without an error, and a
	// record must name the attachment its file is named after.
	if r.Key().FileName() != name {
		return corrupt(fmt.Errorf("it holds the record of %q, not the one its name is for", r.Key()))
	}
	// DEL applies OriginalMAC: it must be an address an interface can
	// carry (all zeros means there was none and is never applied).
	if err := checkMAC("originalMAC", r.OriginalMAC, true); err != nil {
		return corrupt(err)
	}
	if err := checkMAC("appliedMAC", r.AppliedMAC, false); err != nil {
		return corrupt(err)
	}
	return r, nil
}

// Remove deletes the record for k; a missing record (or dataDir) is not an
// error (DEL must be idempotent).
func (s *Store) Remove(k Key) error {
	if err := s.Open(false); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	err := unix.Unlinkat(s.fd(), k.FileName(), 0)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing state for %s (%s): %w", k, s.File(k), err)
	}
	return nil
}

// Entry is a file of dataDir named like a record, as Records found it.
type Entry struct {
	File   string
	Record Record
	// Err is set when the file holds no record (it wraps ErrCorrupt then)
	// or could not be read.
	Err error
}

// Records reads every file of dataDir named like a record. A missing
// directory means none.
func (s *Store) Records() ([]Entry, error) {
	names, err := s.names()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, n := range names {
		if !strings.HasPrefix(n, filePrefix) || !strings.HasSuffix(n, fileSuffix) {
			continue
		}
		r, err := s.read(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		out = append(out, Entry{File: filepath.Join(s.Dir, n), Record: r, Err: err})
	}
	return out, nil
}

// names lists dataDir through its descriptor (a fresh one, so the listing
// starts at the beginning); a missing dataDir lists nothing.
func (s *Store) names() ([]string, error) {
	if err := s.Open(false); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	fd, err := unix.Openat(s.fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listing dataDir %s: %w", s.Dir, err)
	}
	d := os.NewFile(uintptr(fd), s.Dir)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("listing dataDir %s: %w", s.Dir, err)
	}
	return names, nil
}

// Legacy lists the files of dataDir named like the records of builds
// before records named their network ("<ifname>@<containerID>.json"),
// which this version neither reads nor removes (see the package comment),
// so that the doctor can show them. A missing directory means none.
func (s *Store) Legacy() ([]string, error) {
	names, err := s.names()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		base, isJSON := strings.CutSuffix(n, ".json")
		at := strings.LastIndexByte(base, '@')
		if isJSON && !strings.HasPrefix(n, ".") && at > 0 && at < len(base)-1 {
			out = append(out, filepath.Join(s.Dir, n))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Keys lists the attachments that have intact records, of every network.
func (s *Store) Keys() ([]Key, error) {
	entries, err := s.Records()
	var keys []Key
	for _, e := range entries {
		if e.Err == nil {
			keys = append(keys, e.Record.Key())
		}
	}
	return keys, err
}

// GC removes every record of network whose attachment is not in valid and
// returns the keys it removed. It touches nothing but intact records of
// network: another network's records, files that are no record (even
// named like one) and other programs' files stay. Its own temporary files
// older than a minute (left by a killed writer) are removed too.
func (s *Store) GC(network string, valid map[Key]bool) ([]Key, error) {
	entries, err := s.Records()
	if err != nil {
		return nil, err
	}
	var removed []Key
	var errs []error
	for _, e := range entries {
		k := e.Record.Key()
		if e.Err != nil || k.Network != network || valid[k] {
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
	s.sweep(time.Now())
	return removed, errors.Join(errs...)
}

// sweep removes Save's temporary files ("." + a record name + Marker)
// older than staleTempAge.
func (s *Store) sweep(now time.Time) {
	names, err := s.names()
	if err != nil {
		return
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "."+filePrefix) || !strings.Contains(n, fileSuffix+atomicfile.Marker) {
			continue
		}
		var st unix.Stat_t
		if unix.Fstatat(s.fd(), n, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		if now.Sub(time.Unix(st.Mtim.Unix())) > staleTempAge {
			_ = unix.Unlinkat(s.fd(), n, 0)
		}
	}
}

func checkMAC(field, s string, zeroOK bool) error {
	if s == "" {
		return nil
	}
	mac, err := macaddr.Parse(s)
	if err == nil && (!zeroOK || !macaddr.IsZero(mac)) {
		err = macaddr.CheckAssignable(mac)
	}
	if err != nil {
		return fmt.Errorf("%s %q: %w", field, s, err)
	}
	return nil
}
