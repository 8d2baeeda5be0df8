package doctor_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/ctl/doctor"
	"github.com/macguard-cni/macguard/pkg/state"
	"github.com/macguard-cni/macguard/test/doctor/nodeworld"
)

// --fix removes the stale records and nothing else: not the live record,
// not a corrupt one (whose attachment cannot be known), not the cache.
func TestFixRemovesOnlyStaleRecords(t *testing.T) {
	bin := testutil.ToolBinary(t)
	w := base(t)
	pod := webPod(t, w, "web", webMAC)
	w.Record(t, "gone-sandbox", "eth0", filepath.Join(w.Root, "no-such-netns"), "", otherMAC)
	w.Record(t, pod.ContainerID, "net9", pod.NetnsPath(), "", otherMAC)
	torn := nodeworld.RecordName("torn", "eth0")
	if err := os.WriteFile(filepath.Join(w.Data, torn), []byte(`{"version":2,"contai`), 0o600); err != nil {
		t.Fatal(err)
	}
	live := nodeworld.RecordName(pod.ContainerID, "eth0")

	r, code := w.Run(t, bin, "--fix")
	if code != 1 {
		t.Errorf("exit code %d, want 1 (the corrupt record is still a warning)", code)
	}
	want := []string{live, torn}
	sort.Strings(want)
	if got := w.Records(t); !reflect.DeepEqual(got, want) {
		t.Errorf("records after --fix: %v, want %v", got, want)
	}
	states := map[string]string{}
	for _, rec := range r.Records {
		states[filepath.Base(rec.File)] = rec.State
	}
	wantStates := map[string]string{live: "live", nodeworld.RecordName("gone-sandbox", "eth0"): "removed", nodeworld.RecordName(pod.ContainerID, "net9"): "removed", torn: "corrupt"}
	if !reflect.DeepEqual(states, wantStates) {
		t.Errorf("record states %v, want %v", states, wantStates)
	}
	if f := nodeworld.Find(r, "record-stale", ""); f != nil {
		t.Errorf("--fix still reports a stale record: %+v", f)
	}

	// A second look: nothing stale is left, the rest is unchanged.
	r, _ = w.Run(t, bin)
	if got := nodeworld.Problems(r); !reflect.DeepEqual(got, []nodeworld.Problem{p(doctor.Warning, "record-corrupt", "", "", torn)}) {
		t.Errorf("after --fix: %v", got)
	}
}

// --fix takes the lock the plugin's GC takes: while someone else holds it
// exclusively, nothing is removed; once it is released, the stale record
// goes.
func TestFixWaitsForTheGCLock(t *testing.T) {
	bin := testutil.ToolBinary(t)
	w := base(t)
	stale := w.Record(t, "gone-sandbox", "eth0", filepath.Join(w.Root, "no-such-netns"), "", otherMAC)
	unlock, err := state.New(w.Data).Lock(true)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, w.Args("--fix", "--json")...)
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		unlock()
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	time.Sleep(700 * time.Millisecond)
	select {
	case err := <-done:
		unlock()
		t.Fatalf("doctor --fix finished (%v) while GC's lock was held", err)
	default:
	}
	if _, err := os.Stat(stale); err != nil {
		t.Errorf("the stale record went while GC's lock was held: %v", err)
	}
	unlock()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("doctor --fix did not finish after the lock was released")
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale record still there after --fix: %v", err)
	}
}

// snapshot is every file under root with its mode and a hash of its
// content (symlinks by target), to prove a run wrote nothing.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			out[path] = "-> " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out[path] = fmt.Sprintf("%v %x %v", fi.Mode(), sha256.Sum256(data), fi.ModTime().UnixNano())
		default:
			out[path] = fmt.Sprintf("%v %v", fi.Mode(), fi.ModTime().UnixNano())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Without --fix nothing is written, not even the dataDir's lock file, and
// no MAC changes.
func TestDoctorIsReadOnly(t *testing.T) {
	bin := testutil.ToolBinary(t)
	w := base(t)
	pod := webPod(t, w, "web", webMAC)
	w.Record(t, "gone-sandbox", "eth0", filepath.Join(w.Root, "no-such-netns"), "", otherMAC)
	w.WriteConf(t, "00-broken.conflist", `{"cniVersion":`)
	before := snapshot(t, w.Root)
	for _, args := range [][]string{nil, {"--json"}} {
		if _, _, code := w.RunRaw(t, bin, args...); code != 1 {
			t.Errorf("doctor %v: exit code %d, want 1", args, code)
		}
	}
	if after := snapshot(t, w.Root); !reflect.DeepEqual(after, before) {
		for k, v := range after {
			if before[k] != v {
				t.Errorf("%s changed: %q -> %q", k, before[k], v)
			}
		}
		for k := range before {
			if _, ok := after[k]; !ok {
				t.Errorf("%s removed", k)
			}
		}
	}
	if got := w.MAC(t, pod, "eth0"); got != webMAC {
		t.Errorf("eth0's MAC changed to %s", got)
	}
}

// Exit code 2 when the doctor could not look, with a message naming what.
func TestCannotLook(t *testing.T) {
	bin := testutil.ToolBinary(t)
	w := base(t)
	missing := filepath.Join(w.Root, "no-such-dir")
	tests := []struct {
		name string
		args []string
		// want is what stderr must say besides the path.
		want string
	}{
		{"cache dir given and missing", []string{"--cache-dir", missing}, "pass --cache-dir"},
		{"conf dir missing", []string{"--conf-dir", missing}, "pass --conf-dir"},
		{"bin dir missing", []string{"--bin-dir", missing}, "pass --bin-dir"},
		{"--conf file missing", []string{"--conf", missing}, ""},
		{"unknown flag", []string{"--no-such-flag"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := w.RunRaw(t, bin, tc.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2 (stdout %s)", code, out)
			}
			if tc.name != "unknown flag" && !strings.Contains(stderr, missing) {
				t.Errorf("stderr %q does not name %s", stderr, missing)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not say %q", stderr, tc.want)
			}
			if tc.name == "unknown flag" {
				return
			}
			// --json: one object with the error, for monitoring.
			out, _, code = w.RunRaw(t, bin, append([]string{"--json"}, tc.args...)...)
			var got doctor.CannotLook
			dec := json.NewDecoder(bytes.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil || code != 2 || !strings.Contains(got.Error, missing) {
				t.Errorf("--json: exit %d, %+v (%v), want exit 2 and the error naming %s\n%s", code, got, err, missing, out)
			}
		})
	}
}

// The plugin creates its dataDir on the first MAC it changes: one that does
// not exist yet is the info finding dir-missing, given explicitly or not.
func TestDataDirNotCreatedYet(t *testing.T) {
	bin := testutil.ToolBinary(t)
	w := base(t)
	missing := filepath.Join(w.Root, "no-such-dir")
	r, code := w.Run(t, bin, "--data-dir", missing)
	if code != 0 || nodeworld.Find(r, "dir-missing", "") == nil || r.Summary.Status != "healthy" {
		t.Errorf("exit code %d, findings %+v: want 0 and dir-missing", code, r.Findings)
	}
	out, _, _ := w.RunRaw(t, bin, "--data-dir", missing)
	if !strings.Contains(string(out), "info    "+missing+": does not exist") {
		t.Errorf("the text report does not name %s in full:\n%s", missing, out)
	}
}

// Not root: exit code 2, and it says why, before looking at anything.
func TestNotRootCannotLook(t *testing.T) {
	bin := testutil.ToolBinary(t)
	w := base(t)
	// A copy nobody can reach: the checkout may be under a 0700 home.
	dir, err := os.MkdirTemp("", "doctor-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Log(err)
		}
	})
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	copyBin := filepath.Join(dir, "macguardctl")
	if err := os.WriteFile(copyBin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(copyBin, w.Args()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("as nobody: %v, want exit code 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "must run as root") {
		t.Errorf("output %q does not say it must run as root", out)
	}
}

// The readable report groups findings under their pod and gives the remedy.
func TestTextReport(t *testing.T) {
	bin := testutil.ToolBinary(t)
	w := base(t)
	webPod(t, w, "web", webMAC)
	other := w.NewPod(t, "default", "db", true)
	w.Veth(t, other, "eth0", webMAC)
	w.Record(t, "gone-sandbox", "eth0", filepath.Join(w.Root, "no-such-netns"), "", otherMAC)
	out, _, code := w.RunRaw(t, bin)
	text := string(out)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	pod := strings.Index(text, "\n  default/web\n")
	dup := strings.Index(text[max(pod, 0):], "eth0 has "+webMAC+", which "+filepath.Join(w.NetnsDir, "cni-db")+" eth0 also has")
	if pod < 0 || dup < 0 {
		t.Fatalf("report does not show the duplicate under default/web:\n%s", text)
	}
	for _, want := range []string{"(2: 1 live, 1 stale)", nodeworld.RecordName("gone-sandbox", "eth0") + ": stale record", "fix: macguardctl doctor --fix",
		"10-net.conflist  bridge -> macguard  loaded by the runtime, chains macguard after bridge", "2 error(s), 1 warning(s)"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
}

// A record of a build from before records named their network is shown
// (info) and left alone, by the report and by --fix.
func TestLegacyRecordShownNotRemoved(t *testing.T) {
	bin := testutil.ToolBinary(t)
	w := base(t)
	legacy := filepath.Join(w.Data, "eth0@0f3c8e1d2b7a.json")
	if err := os.MkdirAll(w.Data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(legacy, []byte(`{"version":1,"containerID":"0f3c8e1d2b7a","ifName":"eth0"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, _ := w.Run(t, bin, "--fix")
	if f := nodeworld.Find(r, "record-legacy", ""); f == nil || f.File != legacy || f.Severity != doctor.Info {
		t.Errorf("no info finding for the legacy record: %+v", r.Findings)
	}
	if _, err := os.Stat(legacy); err != nil {
		t.Errorf("--fix touched the legacy record: %v", err)
	}
}
