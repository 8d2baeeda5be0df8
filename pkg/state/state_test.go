package state

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"
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

func TestCorruptRecord(t *testing.T) {
	s := New(t.TempDir())
	if err := os.WriteFile(filepath.Join(s.Dir, "eth0@c1.json"), []byte("{trunc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(Key{"c1", "eth0"}); err == nil {
		t.Fatal("corrupt record must be an error")
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
	oldTmp := filepath.Join(s.Dir, ".eth0@x.json.tmp1")
	os.WriteFile(oldTmp, nil, 0o600)
	past := time.Now().Add(-time.Hour)
	os.Chtimes(oldTmp, past, past)
	freshTmp := filepath.Join(s.Dir, ".eth0@y.json.tmp2")
	os.WriteFile(freshTmp, nil, 0o600)

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
	if _, err := os.Stat(oldTmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("old temporary file left behind")
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
	os.WriteFile(f, nil, 0o600)
	if _, err := New(f).Lock(false); err == nil {
		t.Fatal("a dataDir that is a file must fail")
	}
}
