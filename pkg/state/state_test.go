package state

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/macguard-cni/macguard/pkg/atomicfile"
)

func TestSaveLoadRemove(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "state"))
	unlock, err := s.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	r := Record{Network: "net", ContainerID: "c1", IfName: "eth0", Netns: "/x", OriginalMAC: "02:00:00:00:00:01", AppliedMAC: "0a:58:00:00:00:01", Created: time.Unix(1, 0).UTC()}
	if err := s.Save(r); err != nil {
		t.Fatal(err)
	}
	got, found, err := s.Load(Key{"net", "c1", "eth0"})
	r.Version = recordVersion
	if err != nil || !found || !reflect.DeepEqual(got, r) {
		t.Fatalf("Load = %+v %v %v; want %+v", got, found, err, r)
	}
	dirInfo, _ := os.Stat(s.Dir)
	fileInfo, _ := os.Stat(s.File(Key{"net", "c1", "eth0"}))
	if dirInfo.Mode().Perm() != 0o700 || fileInfo.Mode().Perm() != 0o600 {
		t.Fatalf("modes dir %v file %v; want 0700 / 0600", dirInfo.Mode().Perm(), fileInfo.Mode().Perm())
	}
	if err := s.Remove(Key{"net", "c1", "eth0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(Key{"net", "c1", "eth0"}); err != nil {
		t.Fatalf("second Remove must succeed: %v", err)
	}
	if _, found, _ := s.Load(Key{"net", "c1", "eth0"}); found {
		t.Fatal("record still there")
	}
}

// TestUnreadableRecord: records are written without fsync, so after a
// machine crash a record file can be empty, cut short or full of zeros.
// Every such file must come back as ErrCorrupt with found false, naming
// the file, and must not stand in the way of the next ADD (a Save over it)
// or DEL (a Remove of it).
func TestUnreadableRecord(t *testing.T) {
	k := Key{"net", "c1", "eth0"}
	good := Record{Network: "net", ContainerID: "c1", IfName: "eth0", Netns: "/x", OriginalMAC: "02:00:00:00:00:01", AppliedMAC: "0a:58:00:00:00:01", Created: time.Unix(1, 0).UTC(), Version: recordVersion}
	whole, err := json.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":             {},
		"only a newline":    []byte("\n"),
		"zeros":             make([]byte, len(whole)), // what a crash can leave on ext4
		"half":              whole[:len(whole)/2],
		"all but the brace": whole[:len(whole)-1],
		"not JSON":          []byte("{trunc"),
		"JSON null":         []byte("null"),
		"empty object":      []byte("{}"),
		"another record":    []byte(`{"version":2,"network":"net","containerID":"c2","ifName":"eth0"}`),
		"another network":   []byte(`{"version":2,"network":"other","containerID":"c1","ifName":"eth0"}`),
		"wrong type":        []byte(`{"version":"one","containerID":"c1","ifName":"eth0"}`),
		"old version":       []byte(`{"version":1,"network":"net","containerID":"c1","ifName":"eth0"}`),
		"multicast MAC":     []byte(`{"version":2,"network":"net","containerID":"c1","ifName":"eth0","originalMAC":"01:00:5e:00:00:01","appliedMAC":"0a:58:00:00:00:01"}`),
		"broadcast MAC":     []byte(`{"version":2,"network":"net","containerID":"c1","ifName":"eth0","originalMAC":"ff:ff:ff:ff:ff:ff","appliedMAC":"0a:58:00:00:00:01"}`),
		"not a MAC":         []byte(`{"version":2,"network":"net","containerID":"c1","ifName":"eth0","originalMAC":"02:00","appliedMAC":"0a:58:00:00:00:01"}`),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			s := New(t.TempDir())
			p := s.File(k)
			if err := os.WriteFile(p, content, 0o600); err != nil {
				t.Fatal(err)
			}
			r, found, err := s.Load(k)
			if found || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p) || r != (Record{}) {
				t.Fatalf("Load = %+v, %v, %v; want found false and an ErrCorrupt naming %s", r, found, err, p)
			}
			// ADD: a new record replaces it.
			if err := s.Save(good); err != nil {
				t.Fatal(err)
			}
			if r, found, err := s.Load(k); err != nil || !found || r != good {
				t.Fatalf("after Save: %+v %v %v", r, found, err)
			}
			// DEL: the unreadable record can be removed.
			if err := os.WriteFile(p, content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := s.Remove(k); err != nil {
				t.Fatal(err)
			}
			if _, found, err := s.Load(k); found || err != nil {
				t.Fatalf("after Remove: found %v, err %v", found, err)
			}
		})
	}
}

// TestTornRecordAtEveryLength cuts a record written by Save at every
// length: no prefix may load as a record.
func TestTornRecordAtEveryLength(t *testing.T) {
	s := New(t.TempDir())
	k := Key{"net", "c1", "eth0"}
	if err := s.Save(Record{Network: "net", ContainerID: "c1", IfName: "eth0", OriginalMAC: "02:00:00:00:00:01", AppliedMAC: "0a:58:00:00:00:01"}); err != nil {
		t.Fatal(err)
	}
	p := s.File(k)
	whole, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(whole) {
		if err := os.WriteFile(p, whole[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		if _, found, err := s.Load(k); found || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("record cut to %d of %d bytes: found %v, err %v; want ErrCorrupt", n, len(whole), found, err)
		}
	}
}

// TestNotARegularFile: a record path that holds a directory, a FIFO or a
// symlink is no record (ErrCorrupt, so DEL drops it), and reading it
// neither blocks nor follows the link.
func TestNotARegularFile(t *testing.T) {
	k := Key{"net", "c1", "eth0"}
	for name, make := range map[string]func(p string) error{
		"directory": func(p string) error { return os.Mkdir(p, 0o700) },
		"FIFO":      func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"symlink":   func(p string) error { return os.Symlink("/dev/zero", p) },
	} {
		t.Run(name, func(t *testing.T) {
			s := New(t.TempDir())
			if err := make(s.File(k)); err != nil {
				t.Fatal(err)
			}
			if _, found, err := s.Load(k); found || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Load: found %v, err %v; want ErrCorrupt", found, err)
			}
		})
	}
}

// TestOversizedRecord: a record is read up to maxRecordSize and no further.
func TestOversizedRecord(t *testing.T) {
	s := New(t.TempDir())
	k := Key{"net", "c1", "eth0"}
	f, err := os.Create(s.File(k))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	_ = f.Close()
	if _, found, err := s.Load(k); found || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Load of 1 GiB: found %v, err %v; want ErrCorrupt, larger than", found, err)
	}
}

// TestSaveLeavesNoTemporaryFile: the write goes through a dot file that
// is gone once Save returns, and a Save that cannot write names dataDir.
func TestSaveLeavesNoTemporaryFile(t *testing.T) {
	s := New(t.TempDir())
	k := Key{"net", "c1", "eth0"}
	if err := s.Save(Record{Network: "net", ContainerID: "c1", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(s.Dir)
	if len(entries) != 1 || entries[0].Name() != k.FileName() {
		t.Errorf("dataDir holds %v, want only %s", entries, k.FileName())
	}
	gone := New(filepath.Join(s.Dir, "missing", "deeper"))
	if err := os.WriteFile(filepath.Join(s.Dir, "missing"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := gone.Save(Record{Network: "net", ContainerID: "c1", IfName: "eth0"}); err == nil || !strings.Contains(err.Error(), gone.Dir) {
		t.Errorf("Save into a missing dataDir = %v, want an error naming it", err)
	}
}

// TestFileNames: a record's file name is within NAME_MAX whatever the
// container ID and network, differs per network, and is no CNI
// configuration's name.
func TestFileNames(t *testing.T) {
	long := strings.Repeat("c", 1000)
	a, b := Key{"net-a", long, "eth0"}, Key{"net-b", long, "eth0"}
	if a.FileName() == b.FileName() {
		t.Fatal("two networks share a record file name")
	}
	s := New(t.TempDir())
	if err := s.Save(Record{Network: "net-a", ContainerID: long, IfName: "eth0"}); err != nil {
		t.Fatalf("Save with a 1000-character container ID: %v", err)
	}
	for _, ext := range []string{".conf", ".conflist", ".json"} {
		if strings.HasSuffix(a.FileName(), ext) {
			t.Fatalf("record name %s ends in %s", a.FileName(), ext)
		}
	}
	if r, found, err := s.Load(a); !found || err != nil || r.ContainerID != long {
		t.Fatalf("Load: %v %v", found, err)
	}
}

// TestGC: GC removes the stale records of its own network and nothing
// else: not another network's records, not files named like records that
// hold none, not other programs' files, not a fresh temporary file.
func TestGC(t *testing.T) {
	s := New(t.TempDir())
	for _, k := range []Key{{"net", "live", "eth0"}, {"net", "live", "net1"}, {"net", "stale", "eth0"}, {"other", "stale", "net1"}} {
		if err := s.Save(Record{Network: k.Network, ContainerID: k.ContainerID, IfName: k.IfName}); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-time.Hour)
	foreign := []string{"alice@example.com.json", "eth0@c9.json", ".x.json.tmp1", filePrefix + "0000" + fileSuffix}
	for _, n := range foreign {
		p := filepath.Join(s.Dir, n)
		if err := os.WriteFile(p, []byte(`{"version":2,"network":"net","containerID":"zz","ifName":"eth0"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}
	oldTmp := filepath.Join(s.Dir, "."+Key{"net", "x", "eth0"}.FileName()+atomicfile.Marker+"1")
	freshTmp := filepath.Join(s.Dir, "."+Key{"net", "y", "eth0"}.FileName()+atomicfile.Marker+"2")
	for _, p := range []string{oldTmp, freshTmp} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(oldTmp, past, past); err != nil {
		t.Fatal(err)
	}

	removed, err := s.GC("net", map[Key]bool{{"net", "live", "eth0"}: true, {"net", "live", "net1"}: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(removed, []Key{{"net", "stale", "eth0"}}) {
		t.Fatalf("removed %v, want only the stale attachment of net", removed)
	}
	keys, _ := s.Keys()
	if len(keys) != 3 {
		t.Fatalf("records lost: %v", keys)
	}
	for _, n := range foreign {
		if _, err := os.Stat(filepath.Join(s.Dir, n)); err != nil {
			t.Errorf("GC removed %s, which is not its record", n)
		}
	}
	if _, err := os.Stat(oldTmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old temporary file %s left behind", oldTmp)
	}
	if _, err := os.Stat(freshTmp); err != nil {
		t.Fatal("a temporary file that may belong to a running ADD was removed")
	}
}

func TestLockExclusiveWaitsForShared(t *testing.T) {
	s := New(t.TempDir())
	s.LockTimeout = 50 * time.Millisecond
	unlockShared, err := s.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	other := &Store{Dir: s.Dir, LockTimeout: 50 * time.Millisecond}
	if _, err := other.Lock(true); !errors.Is(err, ErrBusy) {
		t.Fatalf("exclusive lock while shared is held: got %v, want ErrBusy", err)
	}
	unlockShared2, err := other.Lock(false)
	if err != nil {
		t.Fatalf("two shared locks must coexist: %v", err)
	}
	unlockShared2()
	unlockShared()
	unlockEx, err := other.Lock(true)
	if err != nil {
		t.Fatalf("exclusive lock after release: %v", err)
	}
	unlockEx()
}

func TestLockUnusableDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatalf("creating %s: %v", f, err)
	}
	if _, err := New(f).Lock(false); err == nil {
		t.Fatal("a dataDir that is a file must fail")
	}
}

// TestLegacy lists the files named like records of earlier builds, and
// nothing else.
func TestLegacy(t *testing.T) {
	s := New(t.TempDir())
	if err := s.Save(Record{Network: "net", ContainerID: "c1", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"eth0@c9.json", "net@1@c2.json", ".eth0@c3.json.tmp1", "@c4.json", "eth0@.json", "junk.json"} {
		if err := os.WriteFile(filepath.Join(s.Dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Legacy()
	want := []string{filepath.Join(s.Dir, "eth0@c9.json"), filepath.Join(s.Dir, "net@1@c2.json")}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Legacy = %v, %v; want %v", got, err, want)
	}
}
