package faults

// File safety: macguard runs as root on every node, so what it writes must
// be private, whole or absent, and never redirected through a planted link;
// and it must never start another program.

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/atomicfile"
	"github.com/macguard-cni/macguard/pkg/state"
)

// noUmask clears the umask for the test, so the modes seen are the ones the
// plugin asked for rather than what a umask of 022 happens to leave. The
// child processes inherit it.
func noUmask(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
}

func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode()
}

// TestStateFilesPrivate: dataDir (and any parent the plugin creates) is
// 0700, records and the lock file are 0600.
func TestStateFilesPrivate(t *testing.T) {
	noUmask(t)
	w := newWorld(t)
	w.dataDir = filepath.Join(t.TempDir(), "run", "cni", "macguard")
	if o := w.run(t, "ADD", w.conf("")); o.Err != nil {
		t.Fatalf("ADD: %v", o.Err)
	}
	want := map[string]os.FileMode{
		filepath.Dir(filepath.Dir(w.dataDir)): os.ModeDir | 0o700,
		filepath.Dir(w.dataDir):               os.ModeDir | 0o700,
		w.dataDir:                             os.ModeDir | 0o700,
		filepath.Join(w.dataDir, ".lock"):     0o600,
		filepath.Join(w.dataDir, testutil.RecordName("reliability", "c1", "eth0")): 0o600,
	}
	for path, mode := range want {
		if got := perm(t, path); got != mode {
			t.Errorf("%s: mode %v, want %v", path, got, mode)
		}
	}
}

// inotifyEvent is one decoded struct inotify_event.
type inotifyEvent struct {
	mask uint32
	name string
}

func (e inotifyEvent) String() string {
	names := []struct {
		bit  uint32
		name string
	}{{unix.IN_CREATE, "CREATE"}, {unix.IN_MODIFY, "MODIFY"}, {unix.IN_CLOSE_WRITE, "CLOSE_WRITE"},
		{unix.IN_MOVED_FROM, "MOVED_FROM"}, {unix.IN_MOVED_TO, "MOVED_TO"}, {unix.IN_DELETE, "DELETE"}}
	var s []string
	for _, n := range names {
		if e.mask&n.bit != 0 {
			s = append(s, n.name)
		}
	}
	return e.name + ":" + strings.Join(s, "|")
}

// watch records changes to the entries of dir until the returned function
// is called, which returns them.
func watch(t *testing.T, dir string) func() []inotifyEvent {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	mask := uint32(unix.IN_CREATE | unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE)
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		_ = unix.Close(fd) // the watch's error is the one to report
		t.Fatal(err)
	}
	return func() []inotifyEvent {
		defer unix.Close(fd)
		var events []inotifyEvent
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EAGAIN) {
				return events
			}
			if err != nil {
				t.Fatalf("reading inotify events: %v", err)
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				mask := binary.NativeEndian.Uint32(buf[off+4:])
				nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
				name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen], "\x00"))
				events = append(events, inotifyEvent{mask: mask, name: name})
				off += unix.SizeofInotifyEvent + nameLen
			}
		}
	}
}

// TestStateWrittenAtomically watches dataDir while ADD writes a record and
// a repeated ADD rewrites it: the record's name may only ever appear by a
// rename (IN_MOVED_TO), never be created or written in place, so a reader
// or a crash sees the old record or the new one, never part of one. The
// data is written to a dot file, which Keys and GC skip while it is in
// flight.
func TestStateWrittenAtomically(t *testing.T) {
	w := newWorld(t)
	if err := os.MkdirAll(w.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	record := testutil.RecordName("reliability", cid, "eth0")
	// The second ADD asks for another MAC, so the record is rewritten (an
	// ADD that finds the MAC already right writes nothing).
	for _, run := range []struct{ name, fields string }{{"first ADD", ""}, {"ADD rewriting the record", `"mac":"0a:58:00:00:00:77"`}} {
		stop := watch(t, w.dataDir)
		if o := w.run(t, "ADD", w.conf(run.fields)); o.Err != nil {
			t.Fatalf("%s: %v", run.name, o.Err)
		}
		events := stop()
		renamedIn, wroteTemp := false, false
		for _, e := range events {
			switch {
			case e.name == record && e.mask == unix.IN_MOVED_TO:
				renamedIn = true
			case e.name == record:
				t.Errorf("%s: record changed in place: %v", run.name, e)
			case e.name == ".lock":
			case strings.HasPrefix(e.name, "."+record+atomicfile.Marker):
				wroteTemp = wroteTemp || e.mask&unix.IN_MODIFY != 0
			default:
				t.Errorf("%s: unexpected change: %v", run.name, e)
			}
		}
		if !renamedIn || !wroteTemp {
			t.Fatalf("%s: want data written to a dot temp file and renamed onto %s; saw %v", run.name, record, events)
		}
		if _, found, err := state.New(w.dataDir).Load(state.Key{Network: "reliability", ContainerID: cid, IfName: "eth0"}); !found || err != nil {
			t.Fatalf("%s: record unreadable after the rename: %v", run.name, err)
		}
	}
}

// openFlags returns the open flags (from /proc/<pid>/fdinfo) of every file
// pid has open, by path.
func openFlags(t *testing.T, pid int) map[string]int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]int{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				f, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				if err != nil {
					t.Fatal(err)
				}
				flags[target] = int(f)
			}
		}
	}
	return flags
}

// TestLogFile: the log is created 0600, opened write-only in append mode
// (so concurrent plugins never overwrite each other and nothing is ever
// truncated), with O_NOFOLLOW, O_NONBLOCK (a FIFO never blocks it) and
// O_CLOEXEC; existing lines survive. The
// open flags are read from /proc of a plugin stopped in the middle of ADD,
// together with those of the state lock.
func TestLogFile(t *testing.T) {
	noUmask(t)
	w := newWorld(t)
	logFile := filepath.Join(t.TempDir(), "macguard.log")
	fields := fmt.Sprintf(`"assign":"always","logFile":%q`, logFile)

	p := startPaused(t, w.pod.Env("ADD", cid, ""), w.conf(fields), atRecordWritten)
	flags := openFlags(t, p.cmd.Process.Pid)
	p.kill(t)
	for _, f := range []struct {
		path string
		want int
	}{
		{logFile, unix.O_WRONLY | unix.O_APPEND | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC},
		{filepath.Join(w.dataDir, ".lock"), unix.O_RDWR | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC},
	} {
		got, ok := flags[f.path]
		if !ok {
			t.Fatalf("%s not open in the paused plugin; open files: %v", f.path, flags)
		}
		if got&f.want != f.want || got&unix.O_ACCMODE != f.want&unix.O_ACCMODE {
			t.Errorf("%s open with flags %#o, want %#o included", f.path, got, f.want)
		}
	}
	if got := perm(t, logFile); got != 0o600 {
		t.Errorf("log file mode %v, want 0600", got)
	}

	// Lines already there survive and new ones come after them.
	if err := os.WriteFile(logFile, []byte("line written before\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.run(t, "DEL", w.delConf())
	if o := w.run(t, "ADD", w.conf(fields)); o.Err != nil {
		t.Fatalf("ADD: %v", o.Err)
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("line written before\n")) || !bytes.Contains(data, []byte("msg=ADD")) {
		t.Fatalf("log does not keep the old line and add the new one:\n%s", data)
	}
}

// TestLogFileDanglingSymlink: a link planted where the log should be,
// pointing at a file that does not exist yet, is the classic way to make a
// root process create a file of an attacker's choosing. The plugin must
// refuse (code 7) without creating the target or touching the pod. (A link
// to an existing file is in test/badinput.)
func TestLogFileDanglingSymlink(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	target, logFile := filepath.Join(dir, "created-by-root"), filepath.Join(dir, "macguard.log")
	if err := os.Symlink(target, logFile); err != nil {
		t.Fatal(err)
	}
	o := w.run(t, "ADD", w.conf(fmt.Sprintf(`"assign":"always","logFile":%q`, logFile)))
	if o.Err == nil || o.Err.Code != types.ErrInvalidNetworkConfig || !strings.Contains(o.Err.Msg, "logFile") {
		t.Fatalf("got %v, want code 7 about logFile", o.Err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the symlink's target was created (%v)", err)
	}
	if w.mac(t) != w.orig {
		t.Fatal("MAC changed although the log could not be opened")
	}
}

// processStarters are the calls that start another program. os/exec is
// checked separately, by import.
var processStarters = map[string][]string{
	"os":                    {"StartProcess"},
	"syscall":               {"ForkExec", "StartProcess", "Exec"},
	"golang.org/x/sys/unix": {"Exec"},
}

// startsProcesses lists the calls to processStarters in one Go source.
func startsProcesses(fset *token.FileSet, file *ast.File) []string {
	local := map[string]string{} // name in this file -> import path
	for _, imp := range file.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		name := filepath.Base(path)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		local[name] = path
	}
	var found []string
	ast.Inspect(file, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		x, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		for _, fn := range processStarters[local[x.Name]] {
			if sel.Sel.Name == fn {
				found = append(found, fmt.Sprintf("%s: %s.%s", fset.Position(sel.Pos()), local[x.Name], fn))
			}
		}
		return true
	})
	return found
}

func TestStartsProcessesDetects(t *testing.T) {
	src := `package p
import (
	"os"
	sc "syscall"
)
func f() { os.StartProcess("/bin/sh", nil, nil); sc.Exec("/bin/sh", nil, nil); os.Getpid() }`
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := startsProcesses(fset, file); len(got) != 2 {
		t.Fatalf("detector found %v in a source with two process starts", got)
	}
}

// TestNoShellingOut, at the source: no non-test Go file of the packages the
// plugin binary is built from imports os/exec or calls a function that
// starts a process. macguardctl, the operator's tool, may (the doctor runs
// the installed plugin to read its version); the plugin, which runs on
// every pod start, must not.
func TestNoShellingOut(t *testing.T) {
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/macguard-cni/macguard"
	cmd := exec.Command("go", "list", "-deps", "-f", `{{if .Module}}{{.Module.Path}} {{.Dir}}{{end}}`, "./plugins/meta/macguard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./plugins/meta/macguard: %v", err)
	}
	fset := token.NewFileSet()
	files := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		mod, dir, _ := strings.Cut(line, " ")
		if mod != module {
			continue
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			path := filepath.Join(dir, name)
			file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			files++
			for _, imp := range file.Imports {
				if imp.Path.Value == `"os/exec"` {
					t.Errorf("%s imports os/exec", path)
				}
			}
			for _, call := range startsProcesses(fset, file) {
				t.Errorf("%s starts a process", call)
			}
		}
	}
	if files < 10 {
		t.Fatalf("scanned only %d files of the plugin's packages; is the repository layout different?", files)
	}
}

// TestNoProcessStartLinked, in the binary: the linker drops every function
// nothing calls, so if no process-starting function is in the plugin's
// symbol table, no code path - in macguard or any dependency - can start a
// program. (Dependencies do define such wrappers, e.g. x/sys/unix.Exec;
// only a call would link them.)
func TestNoProcessStartLinked(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test builds the plugin with the go tool, which is not on PATH: %v", err)
	}
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "macguard")
	// As `make build`, but keeping the symbol table (-s -w strip it).
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", bin, "./plugins/meta/macguard")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{"syscall.forkExec", "syscall.Exec", "syscall.StartProcess", "os.StartProcess", "os.startProcess"}
	sawKnown := false
	for _, s := range syms {
		if slices.Contains(forbidden, s.Name) || strings.HasPrefix(s.Name, "os/exec.") {
			t.Errorf("linked into the plugin: %s", s.Name)
		}
		// The plugin certainly opens files: proof the table is the real one.
		sawKnown = sawKnown || s.Name == "os.OpenFile"
	}
	if !sawKnown {
		t.Fatalf("os.OpenFile not among %d symbols; the check would see nothing", len(syms))
	}
}
