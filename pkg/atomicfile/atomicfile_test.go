package atomicfile

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// temps lists the temporary files of Write left in dir.
func temps(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if IsTemp(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// failingReader returns some data, then an error.
type failingReader struct{ sent bool }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.sent {
		return 0, errors.New("source broke")
	}
	f.sent = true
	return copy(p, "partial"), nil
}

func TestWrite(t *testing.T) {
	errGuard := errors.New("changed meanwhile")
	cases := []struct {
		name     string
		existing string // content before the write; "" means no file
		data     func() io.Reader
		opts     Options
		wantErr  error  // errors.Is target; nil with errPart "" means success
		errPart  string // part of the message
		want     string // content after
		wantMode fs.FileMode
	}{
		{name: "new file", data: func() io.Reader { return strings.NewReader("v1") },
			opts: Options{Mode: 0o644}, want: "v1", wantMode: 0o644},
		{name: "new file durable", data: func() io.Reader { return strings.NewReader("v1") },
			opts: Options{Mode: 0o600, Durable: true}, want: "v1", wantMode: 0o600},
		{name: "replaces", existing: "old content, longer", data: func() io.Reader { return strings.NewReader("new") },
			opts: Options{Mode: 0o755}, want: "new", wantMode: 0o755},
		{name: "replaces durable", existing: "old", data: func() io.Reader { return strings.NewReader("new") },
			opts: Options{Mode: 0o640, Durable: true}, want: "new", wantMode: 0o640},
		{name: "empty content", existing: "old", data: func() io.Reader { return strings.NewReader("") },
			opts: Options{Mode: 0o600}, want: "", wantMode: 0o600},
		{name: "source fails", existing: "old", data: func() io.Reader { return &failingReader{} },
			opts: Options{Mode: 0o600, Durable: true}, errPart: "source broke", want: "old"},
		{name: "guard cancels", existing: "old", data: func() io.Reader { return strings.NewReader("new") },
			opts: Options{Mode: 0o600, BeforeRename: func() error { return errGuard }}, wantErr: errGuard, want: "old"},
		{name: "same owner needs no chown", data: func() io.Reader { return strings.NewReader("v1") },
			opts: Options{Mode: 0o600, Owner: &Owner{os.Getuid(), os.Getgid()}}, want: "v1", wantMode: 0o600},
	}
	// The umask must not decide the mode.
	defer syscall.Umask(syscall.Umask(0o077))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f.conflist")
			if c.existing != "" {
				if err := os.WriteFile(p, []byte(c.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := Write(p, c.data(), c.opts)
			switch {
			case c.wantErr != nil:
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("Write = %v, want %v", err, c.wantErr)
				}
			case c.errPart != "":
				if err == nil || !strings.Contains(err.Error(), c.errPart) {
					t.Fatalf("Write = %v, want an error containing %q", err, c.errPart)
				}
			case err != nil:
				t.Fatal(err)
			}
			got, rerr := os.ReadFile(p)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if string(got) != c.want {
				t.Errorf("content %q, want %q", got, c.want)
			}
			if err == nil {
				fi, _ := os.Stat(p)
				if fi.Mode().Perm() != c.wantMode {
					t.Errorf("mode %o, want %o", fi.Mode().Perm(), c.wantMode)
				}
			}
			if left := temps(t, dir); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestWriteErrorsNameTheFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir", "f.json")
	err := Write(missing, strings.NewReader("x"), Options{Mode: 0o600})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Write into a missing directory = %v, want an error naming %s", err, missing)
	}
}

func TestWriteSetsTheOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	p := filepath.Join(t.TempDir(), "f")
	want := Owner{UID: 4242, GID: 4343}
	if err := Write(p, strings.NewReader("x"), Options{Mode: 0o644, Owner: &want}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := OwnerOf(fi); !ok || got != want {
		t.Errorf("owner %v (%v), want %v", got, ok, want)
	}
}

// TestReadersNeverSeeAPart rewrites a file with versions of different
// lengths while readers read it: every read must be one whole version.
func TestReadersNeverSeeAPart(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rec.json")
	versions := [][]byte{
		[]byte(`{"v":1}`),
		bytes.Repeat([]byte("x"), 64<<10),
		[]byte(`{"v":3,"pad":"` + strings.Repeat("y", 5000) + `"}`),
	}
	if err := Write(p, bytes.NewReader(versions[0]), Options{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad []int
	var mu sync.Mutex
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				b, err := os.ReadFile(p)
				if err != nil || !slices.ContainsFunc(versions, func(v []byte) bool { return bytes.Equal(v, b) }) {
					mu.Lock()
					bad = append(bad, len(b))
					mu.Unlock()
				}
			}
		}()
	}
	for i := range 300 {
		if err := Write(p, bytes.NewReader(versions[i%len(versions)]), Options{Mode: 0o600}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d reads saw something other than a whole version (lengths %v)", len(bad), bad[:min(len(bad), 10)])
	}
}

func TestIsTemp(t *testing.T) {
	cases := []struct {
		name string
		want bool
	}{
		{".eth0@c1.json" + Marker + "123", true},
		{".05-cilium.conflist" + Marker + "9", true},
		{"eth0@c1.json" + Marker + "1", false}, // not a dot file: not ours
		{".lock", false},
		{".other-tool.tmp", false},
		{"eth0@c1.json", false},
		{".macguard.macguard-tmp-1", false},
	}
	for _, c := range cases {
		if got := IsTemp(c.name); got != c.want {
			t.Errorf("IsTemp(%q) = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSweep(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	files := []struct {
		name    string
		age     time.Duration
		dir     bool
		removed bool
	}{
		{name: ".rec.json" + Marker + "1", age: 2 * time.Minute, removed: true},
		{name: ".rec.json" + Marker + "2", age: 10 * time.Second}, // maybe still being written
		{name: ".old.macguard-tmp-3", age: time.Hour},             // not Marker: not Write's
		{name: ".cilium-tmp-4", age: time.Hour},                   // another program's
		{name: "rec.json", age: time.Hour},                        // a real file
		{name: ".d" + Marker + "5", age: time.Hour, dir: true},    // a directory is never removed
		{name: ".rec.json" + Marker + "6", age: time.Minute + time.Second, removed: true},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		var err error
		if f.dir {
			err = os.Mkdir(p, 0o700)
		} else {
			err = os.WriteFile(p, []byte("x"), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
		mt := now.Add(-f.age)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := Sweep(dir, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		_, statErr := os.Lstat(filepath.Join(dir, f.name))
		if gone := errors.Is(statErr, fs.ErrNotExist); gone != f.removed {
			t.Errorf("%s: removed %v, want %v", f.name, gone, f.removed)
		}
		if f.removed {
			want = append(want, f.name)
		}
	}
	slices.Sort(removed)
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Errorf("Sweep reported %v, want %v", removed, want)
	}

	if removed, err := Sweep(filepath.Join(dir, "missing"), time.Minute, now); err != nil || removed != nil {
		t.Errorf("Sweep of a missing directory = %v, %v; want nothing, no error", removed, err)
	}
}

// BenchmarkWrite shows what Durable costs on the filesystem of the test's
// temporary directory (on tmpfs both are about the same).
func BenchmarkWrite(b *testing.B) {
	data := []byte(`{"version":1,"containerID":"c1","ifName":"eth0","netns":"/var/run/netns/x","originalMAC":"02:00:00:00:00:01","appliedMAC":"0a:58:00:00:00:01","created":"2026-01-01T00:00:00Z"}`)
	for _, durable := range []bool{false, true} {
		name := "rename-only"
		if durable {
			name = "durable"
		}
		b.Run(name, func(b *testing.B) {
			p := filepath.Join(b.TempDir(), "eth0@c1.json")
			for b.Loop() {
				if err := Write(p, bytes.NewReader(data), Options{Mode: 0o600, Durable: durable}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
