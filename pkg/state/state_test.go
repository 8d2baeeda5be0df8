package state

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
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
	r := Record{ContainerID: "c1", IfName: "eth0", Netns: "/x", OriginalMAC: "02:00:00:00:00:01", AppliedMAC: "0a:58:00:00:00:01", Created: time.Unix(1, 0).UTC()}
	if err := s.Save(r); err != nil {
		t.Fatal(err)
	}
	got, found, err := s.Load(Key{"c1", "eth0"})
	r.Version = recordVersion
	if err != nil || !found || !reflect.DeepEqual(got, r) {
		t.Fatalf("Load = %+v %v %v; want %+v", got, found, err, r)
	}
	dirInfo, _ := os.Stat(s.Dir)
	fileInfo, _ := os.Stat(filepath.Join(s.Dir, "eth0@c1.json"))
	if dirInfo.Mode().Perm() != 0o700 || fileInfo.Mode().Perm() != 0o600 {
		t.Fatalf("modes dir %v file %v; want 0700 / 0600", dirInfo.Mode().Perm(), fileInfo.Mode().Perm())
	}
	if err := s.Remove(Key{"c1", "eth0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(Key{"c1", "eth0"}); err != nil {
		t.Fatalf("second Remove must succeed: %v", err)
	}
	if _, found, _ := s.Load(Key{"c1", "eth0"}); found {
		t.Fatal("record still there")
	}
}

// TestUnreadableRecord: records are written without fsync, so after a
// machine crash a record file can be empty, cut short or full of zeros.
// Every such file must come back as ErrCorrupt with found false, naming
// the file, and must not stand in the way of the next ADD (a Save over it)
// or DEL (a Remove of it).
func TestUnreadableRecord(t *testing.T) {
	k := Key{"c1", "eth0"}
	good := Record{ContainerID: "c1", IfName: "eth0", Netns: "/x", OriginalMAC: "02:00:00:00:00:01", AppliedMAC: "0a:58:00:00:00:01", Created: time.Unix(1, 0).UTC(), Version: recordVersion}
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
		"another record":    []byte(`{"version":1,"containerID":"c2","ifName":"eth0"}`),
		"wrong type":        []byte(`{"version":"one","containerID":"c1","ifName":"eth0"}`),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			s := New(t.TempDir())
			p := filepath.Join(s.Dir, k.fileName())
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
	k := Key{"c1", "eth0"}
	if err := s.Save(Record{ContainerID: "c1", IfName: "eth0", OriginalMAC: "02:00:00:00:00:01", AppliedMAC: "0a:58:00:00:00:01"}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.Dir, k.fileName())
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

// TestUnreadableIsNotCorrupt: a record that cannot be read at all is an
// error of its own, not ErrCorrupt; nothing says the record is gone.
func TestUnreadableIsNotCorrupt(t *testing.T) {
	s := New(t.TempDir())
	k := Key{"c1", "eth0"}
	if err := os.Mkdir(filepath.Join(s.Dir, k.fileName()), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.Load(k); found || err == nil || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Load of a directory: found %v, err %v; want a read error that is not ErrCorrupt", found, err)
	}
}

// TestSaveLeavesNoTemporaryFile: the write goes through a dot file that
// is gone once Save returns, and a Save that cannot write names dataDir.
func TestSaveLeavesNoTemporaryFile(t *testing.T) {
	s := New(t.TempDir())
	if err := s.Save(Record{ContainerID: "c1", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(s.Dir)
	if len(entries) != 1 || entries[0].Name() != "eth0@c1.json" {
		t.Errorf("dataDir holds %v, want only eth0@c1.json", entries)
	}
	gone := New(filepath.Join(s.Dir, "missing"))
	if err := gone.Save(Record{ContainerID: "c1", IfName: "eth0"}); err == nil || !strings.Contains(err.Error(), gone.Dir) {
		t.Errorf("Save into a missing dataDir = %v, want an error naming it", err)
	}
}

func TestKeysParseNames(t *testing.T) {
	s := New(t.TempDir())
	for _, n := range []string{"eth0@c1.json", "net@1@c2.json", ".lock", ".eth0@c3.json.tmp123", "junk", "@c4.json", "eth0@.json"} {
		if err := os.WriteFile(filepath.Join(s.Dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := s.Keys()
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ContainerID < keys[j].ContainerID })
	want := []Key{{"c1", "eth0"}, {"c2", "net@1"}}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("Keys = %v, want %v", keys, want)
	}
}

func TestGC(t *testing.T) {
	s := New(t.TempDir())
	for _, k := range []Key{{"live", "eth0"}, {"live", "net1"}, {"stale", "eth0"}} {
		if err := s.Save(Record{ContainerID: k.ContainerID, IfName: k.IfName}); err != nil {
			t.Fatal(err)
		}
	}
	// A temporary file of a killed writer, and one of a writer from
	// before pkg/atomicfile: both go once a minute old.
	oldTmp := filepath.Join(s.Dir, ".eth0@x.json"+atomicfile.Marker+"1")
	legacyTmp := filepath.Join(s.Dir, ".eth0@x.json.tmp1")
	past := time.Now().Add(-time.Hour)
	for _, p := range []string{oldTmp, legacyTmp} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatalf("creating %s: %v", p, err)
		}
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatalf("ageing %s: %v", p, err)
		}
	}
	freshTmp := filepath.Join(s.Dir, ".eth0@y.json"+atomicfile.Marker+"2")
	if err := os.WriteFile(freshTmp, nil, 0o600); err != nil {
		t.Fatalf("creating %s: %v", freshTmp, err)
	}

	removed, err := s.GC(map[Key]bool{{"live", "eth0"}: true, {"live", "net1"}: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(removed, []Key{{"stale", "eth0"}}) {
		t.Fatalf("removed %v, want only the stale attachment", removed)
	}
	keys, _ := s.Keys()
	if len(keys) != 2 {
		t.Fatalf("live records lost: %v", keys)
	}
	for _, p := range []string{oldTmp, legacyTmp} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("old temporary file %s left behind", p)
		}
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
