// Package tenant runs the real plugin binary the way Multus runs it for a
// NetworkAttachmentDefinition: with a config a namespace's tenant wrote,
// as root, in real network namespaces on the real kernel (issue 24). The
// node allows two roots of this test's own (MACGUARD_DATA_ROOTS,
// MACGUARD_LOG_ROOTS); everything the config names outside them must stay
// exactly as it was, and no state of macguard's may block a teardown.
package tenant

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/macaddr"
	"github.com/macguard-cni/macguard/pkg/pathpolicy"
)

// runTimeout bounds every plugin run: a FIFO or a lock must never make
// the plugin hang, and a hang fails the test instead of the suite.
const runTimeout = 20 * time.Second

// world is one pod interface and a node with allowed roots and a
// directory outside them.
type world struct {
	pod      *testutil.Pod
	orig     string
	dataRoot string // the node's allowed data root
	logRoot  string // the node's allowed log root
	outside  string // beneath neither
	dataDir  string // a dataDir beneath dataRoot
	logFile  string // a logFile beneath logRoot
}

func newWorld(t *testing.T) *world {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	w := &world{pod: testutil.NewVethPod(t, nil, "veth-host"),
		dataRoot: filepath.Join(root, "data"), logRoot: filepath.Join(root, "log"), outside: filepath.Join(root, "outside")}
	for _, d := range []string{w.dataRoot, w.logRoot, w.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w.dataDir = filepath.Join(w.dataRoot, "macguard")
	w.logFile = filepath.Join(w.logRoot, "macguard.log")
	w.orig = macaddr.String(testutil.MAC(t, w.pod.NS, w.pod.IfName))
	return w
}

// roots are the environment entries of this world's node.
func (w *world) roots() []string {
	return []string{pathpolicy.EnvDataRoots + "=" + w.dataRoot, pathpolicy.EnvLogRoots + "=" + w.logRoot}
}

// conf is a tenant's config for network: dataDir and logFile as given
// ("" leaves them out), assign "always" so that ADD writes a record, more
// fields (JSON object body), and a prevResult for ADD.
func (w *world) conf(network, dataDir, logFile, fields string, withPrev bool) []byte {
	c := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"macguard","assign":"always"`, network)
	if dataDir != "" {
		c += fmt.Sprintf(`,"dataDir":%q`, dataDir)
	}
	if logFile != "" {
		c += fmt.Sprintf(`,"logFile":%q`, logFile)
	}
	if fields != "" {
		c += "," + fields
	}
	if withPrev {
		c += `,"prevResult":` + w.pod.PrevResult("1.0.0", w.orig)
	}
	return []byte(c + "}")
}

// gcConf is GC's config for network with these valid attachments
// (containerID, ifname pairs).
func gcConf(network, dataDir, logFile string, valid ...string) []byte {
	var att []map[string]string
	for i := 0; i+1 < len(valid); i += 2 {
		att = append(att, map[string]string{"containerID": valid[i], "ifname": valid[i+1]})
	}
	c := map[string]any{"cniVersion": "1.1.0", "name": network, "type": "macguard", "cni.dev/valid-attachments": att}
	if dataDir != "" {
		c["dataDir"] = dataDir
	}
	if logFile != "" {
		c["logFile"] = logFile
	}
	b, _ := json.Marshal(c)
	return b
}

// run executes the plugin with this world's roots; a run that hangs or
// does not answer like a CNI plugin fails the test.
func (w *world) run(t *testing.T, cmd, cid, ifName string, conf []byte) testutil.Outcome {
	t.Helper()
	env := w.pod.Env(cmd, cid, "")
	env.IfName = ifName
	env.Roots = w.roots()
	o, err := testutil.Exec(testutil.PluginBinary(t), env, bytes.NewReader(conf), runTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func (w *world) mac(t *testing.T, ifName string) string {
	return macaddr.String(testutil.MAC(t, w.pod.NS, ifName))
}

// wantRefused checks a config error (code 7) naming the field, the path and
// the allowed roots.
func wantRefused(t *testing.T, o testutil.Outcome, field, path, root string) {
	t.Helper()
	if o.Err == nil {
		t.Fatalf("ADD succeeded with %s %s: %s", field, path, o.Stdout)
	}
	if o.Err.Code != types.ErrInvalidNetworkConfig {
		t.Fatalf("ADD with %s %s: code %d %q, want %d", field, path, o.Err.Code, o.Err.Msg, types.ErrInvalidNetworkConfig)
	}
	for _, want := range []string{field, path, root} {
		if !strings.Contains(o.Err.Msg, want) {
			t.Errorf("message lacks %q: %s", want, o.Err.Msg)
		}
	}
}

// teardownChangesNothing runs DEL and GC with a config naming a refused
// dataDir or logFile: both must succeed, say on stderr (where the log goes
// then) why, and leave the test's directories as the snapshot before
// recorded them.
func (w *world) teardownChangesNothing(t *testing.T, dataDir, logFile, why, before string) {
	t.Helper()
	for _, cmd := range []struct {
		name string
		conf []byte
	}{{"DEL", w.conf("net", dataDir, logFile, "", false)}, {"GC", gcConf("net", dataDir, logFile)}} {
		if o := w.run(t, cmd.name, "c1", "eth0", cmd.conf); o.Err != nil {
			t.Errorf("%s failed: %v", cmd.name, o.Err)
		} else if !strings.Contains(o.Stderr, why) {
			t.Errorf("%s did not say %q on stderr: %q", cmd.name, why, o.Stderr)
		}
	}
	if after := testutil.Snapshot(t, filepath.Dir(w.outside)); after != before {
		t.Errorf("the node's files changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestLogFileOnlyBeneathTheLogRoots (item 1): a logFile outside the
// node's log roots, through a symlinked directory or on a FIFO is refused
// on ADD with code 7, and changes nothing; DEL and GC with the same config
// succeed, promptly, and change nothing either.
func TestLogFileOnlyBeneathTheLogRoots(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup prepares the world and returns the logFile.
		setup func(t *testing.T, w *world) string
	}{
		{"new file in an existing directory", func(t *testing.T, w *world) string {
			return filepath.Join(w.outside, "ld.so.preload")
		}},
		{"existing file", func(t *testing.T, w *world) string {
			p := filepath.Join(w.outside, "authorized_keys")
			if err := os.WriteFile(p, []byte("ssh-ed25519 AAAAC3Nza admin\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"symlinked directory inside the root", func(t *testing.T, w *world) string {
			if err := os.Symlink(w.outside, filepath.Join(w.logRoot, "link")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(w.logRoot, "link", "macguard.log")
		}},
		{"dot-dot out of the root", func(t *testing.T, w *world) string {
			return w.logRoot + "/../outside/macguard.log"
		}},
		{"FIFO inside the root", func(t *testing.T, w *world) string {
			p := filepath.Join(w.logRoot, "fifo")
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			logFile := tc.setup(t, w)
			before := testutil.Snapshot(t, filepath.Dir(w.outside))
			wantRefused(t, w.run(t, "ADD", "c1", "eth0", w.conf("net", w.dataDir, logFile, "", true)), "logFile", logFile, w.logRoot)
			if got := w.mac(t, "eth0"); got != w.orig {
				t.Errorf("refused ADD changed the MAC to %s", got)
			}
			w.teardownChangesNothing(t, w.dataDir, logFile, "logFile not used", before)
		})
	}
}

// TestLogFileIntoKernelFiles (item 1): /proc/sys/kernel/hostname as the
// logFile, directly and through a bind mount of /proc/sys/kernel into the
// log root, is refused and the hostname stays. It runs in a private UTS
// and mount namespace (unshare), so the machine's hostname and mounts are
// never at stake, even when the plugin is wrong.
func TestLogFileIntoKernelFiles(t *testing.T) {
	w := newWorld(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("unshare (util-linux) is needed: %v", err)
	}
	kernel := filepath.Join(w.logRoot, "kernel")
	if err := os.Mkdir(kernel, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, logFile := range []string{"/proc/sys/kernel/hostname", filepath.Join(kernel, "hostname")} {
		t.Run(logFile, func(t *testing.T) {
			dir := t.TempDir()
			confPath := filepath.Join(dir, "conf")
			if err := os.WriteFile(confPath, w.conf("net", w.dataDir, logFile, "", true), 0o600); err != nil {
				t.Fatal(err)
			}
			script := `set -e
mount --bind /proc/sys/kernel "$MG_KERNEL"
echo mg-tenant-before >/proc/sys/kernel/hostname
rc=0
"$MG_BIN" <"$MG_DIR/conf" >"$MG_DIR/out" 2>"$MG_DIR/err" || rc=$?
echo "$rc" >"$MG_DIR/rc"
cat /proc/sys/kernel/hostname >"$MG_DIR/hostname"`
			cmd := exec.Command(unshare, "--uts", "--mount", "--propagation", "private", "sh", "-c", script)
			env := w.pod.Env("ADD", "c1", "")
			env.Roots = w.roots()
			cmd.Env = append(env.List(), "MG_KERNEL="+kernel, "MG_BIN="+testutil.PluginBinary(t), "MG_DIR="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("unshare: %v: %s", err, out)
			}
			read := func(name string) string {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				return strings.TrimSpace(string(b))
			}
			if got := read("hostname"); got != "mg-tenant-before" {
				t.Errorf("hostname in the private UTS namespace is %q: the plugin wrote into it", got)
			}
			var e types.Error
			if rc := read("rc"); rc != "1" || json.Unmarshal([]byte(read("out")), &e) != nil || e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, "logFile") {
				t.Errorf("ADD exited %s with %q, want code 7 about logFile", rc, read("out"))
			}
		})
	}
}

// TestDataDirOnlyBeneathTheDataRoots (item 2): a dataDir outside the data
// roots (nested new directories, a CNI conf dir) or through a symlink is
// refused on ADD with code 7 before anything is created; DEL and GC with it
// succeed and create nothing (no directory, no .lock).
func TestDataDirOnlyBeneathTheDataRoots(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, w *world) string
	}{
		{"nested new directories", func(t *testing.T, w *world) string {
			return filepath.Join(w.outside, "a", "b", "c")
		}},
		{"a CNI conf dir", func(t *testing.T, w *world) string {
			d := filepath.Join(w.outside, "net.d")
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "10-net.conflist"), []byte(`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}`), 0o644); err != nil {
				t.Fatal(err)
			}
			return d
		}},
		{"symlink inside the root", func(t *testing.T, w *world) string {
			if err := os.Symlink(w.outside, filepath.Join(w.dataRoot, "link")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(w.dataRoot, "link", "macguard")
		}},
		{"symlink as the last component", func(t *testing.T, w *world) string {
			if err := os.Symlink(w.outside, filepath.Join(w.dataRoot, "link")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(w.dataRoot, "link")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			dataDir := tc.setup(t, w)
			before := testutil.Snapshot(t, filepath.Dir(w.outside))
			wantRefused(t, w.run(t, "ADD", "c1", "eth0", w.conf("net", dataDir, "", "", true)), "dataDir", dataDir, w.dataRoot)
			if got := w.mac(t, "eth0"); got != w.orig {
				t.Errorf("refused ADD changed the MAC to %s", got)
			}
			w.teardownChangesNothing(t, dataDir, "", "dataDir refused", before)
		})
	}
}

// TestDefaultRootsRefuseOtherDirectories: without the node widening them,
// the roots are /run/cni, /var/lib/cni and /var/log, and the message names
// them and how to widen them.
func TestDefaultRootsRefuseOtherDirectories(t *testing.T) {
	w := newWorld(t)
	env := w.pod.Env("ADD", "c1", "")
	env.Roots = []string{}
	o, err := testutil.Exec(testutil.PluginBinary(t), env, bytes.NewReader(w.conf("net", w.dataDir, "", "", true)), runTimeout)
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, o, "dataDir", w.dataDir, "/run/cni, /var/lib/cni")
	if o.Err != nil && !strings.Contains(o.Err.Msg, pathpolicy.EnvDataRoots) {
		t.Errorf("message does not say how a node widens the roots: %s", o.Err.Msg)
	}
}

// TestGCTouchesOnlyItsOwnRecords (item 2): GC leaves every file in dataDir
// that is not one of its network's records: an e-mail-like JSON file,
// another program's temporary file, a record of an earlier build.
func TestGCTouchesOnlyItsOwnRecords(t *testing.T) {
	w := newWorld(t)
	if err := os.MkdirAll(w.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	for _, n := range []string{"alice@example.com.json", ".other.json.tmp123", "eth0@c9.json"} {
		p := filepath.Join(w.dataDir, n)
		if err := os.WriteFile(p, []byte(`{"version":1,"containerID":"c9","ifName":"eth0"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}
	before := withoutLock(testutil.Snapshot(t, w.dataDir))
	if o := w.run(t, "GC", "", "", gcConf("net", w.dataDir, "")); o.Err != nil {
		t.Fatalf("GC: %v", o.Err)
	}
	if after := withoutLock(testutil.Snapshot(t, w.dataDir)); after != before {
		t.Errorf("GC removed or changed files that are not its records:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// withoutLock drops the lock file from a snapshot: GC may create it.
func withoutLock(snapshot string) string {
	var keep []string
	for _, l := range strings.Split(snapshot, "\n") {
		if !strings.HasPrefix(l, ".lock ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestGCIsPerNetwork (item 3): two networks share the default-like
// dataDir; GC of the first, listing only its own attachment, leaves the
// second network's record, and the second network's DEL then restores its
// interface's MAC.
func TestGCIsPerNetwork(t *testing.T) {
	w := newWorld(t)
	testutil.VethPair(t, w.pod.Host, "veth-host2", w.pod.NS, "net1")
	orig1 := w.mac(t, "net1")
	addOn := func(network, ifName, orig string) {
		conf := w.conf(network, w.dataDir, "", "", false)
		prev := fmt.Sprintf(`{"cniVersion":"1.0.0","interfaces":[{"name":%q,"mac":%q,"sandbox":%q}]}`, ifName, orig, w.pod.NS.Path())
		conf = append(conf[:len(conf)-1], []byte(`,"prevResult":`+prev+"}")...)
		if o := w.run(t, "ADD", "pod1", ifName, conf); o.Err != nil {
			t.Fatalf("ADD %s on %s: %v", network, ifName, o.Err)
		}
		if w.mac(t, ifName) == orig {
			t.Fatalf("ADD %s did not change %s's MAC", network, ifName)
		}
	}
	addOn("net-a", "eth0", w.orig)
	addOn("net-b", "net1", orig1)
	if o := w.run(t, "GC", "", "", gcConf("net-a", w.dataDir, "", "pod1", "eth0")); o.Err != nil {
		t.Fatalf("GC of net-a: %v", o.Err)
	}
	if recs := testutil.StateRecords(t, w.dataDir); len(recs) != 2 {
		t.Errorf("records after GC of net-a with both attachments live: %v, want both networks'", recs)
	}
	if o := w.run(t, "DEL", "pod1", "net1", w.conf("net-b", w.dataDir, "", "", false)); o.Err != nil {
		t.Fatalf("DEL of net-b: %v", o.Err)
	}
	if got := w.mac(t, "net1"); got != orig1 {
		t.Errorf("DEL of net-b left %s on net1, want the original %s back", got, orig1)
	}
	// And GC does remove its own stale record.
	if o := w.run(t, "GC", "", "", gcConf("net-a", w.dataDir, "")); o.Err != nil {
		t.Fatalf("GC of net-a: %v", o.Err)
	}
	if recs := testutil.StateRecords(t, w.dataDir); len(recs) != 0 {
		t.Errorf("records left after GC with no valid attachment: %v", recs)
	}
}

// TestDelNeverBlockedByState (items 4 and 6): DEL succeeds, promptly and
// within bounded memory, whatever is in the place of its record or lock,
// and applies no MAC from a record it cannot trust; it logs why.
func TestDelNeverBlockedByState(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, w *world, rec string)
	}{
		{"record is a symlink to /dev/zero", func(t *testing.T, w *world, rec string) {
			replace(t, rec, func() error { return os.Symlink("/dev/zero", rec) })
		}},
		{"record is a 1 GiB sparse file", func(t *testing.T, w *world, rec string) {
			replace(t, rec, func() error {
				f, err := os.Create(rec)
				if err != nil {
					return err
				}
				defer f.Close()
				return f.Truncate(1 << 30)
			})
		}},
		{"record is a FIFO", func(t *testing.T, w *world, rec string) {
			replace(t, rec, func() error { return syscall.Mkfifo(rec, 0o600) })
		}},
		{"record is a directory", func(t *testing.T, w *world, rec string) {
			replace(t, rec, func() error { return os.Mkdir(rec, 0o700) })
		}},
		{"record names a multicast original MAC", func(t *testing.T, w *world, rec string) {
			b, err := os.ReadFile(rec)
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.Replace(b, []byte(`"originalMAC":"`+w.orig+`"`), []byte(`"originalMAC":"01:00:5e:00:00:01"`), 1)
			replace(t, rec, func() error { return os.WriteFile(rec, b, 0o600) })
		}},
		{"lock file is a symlink", func(t *testing.T, w *world, rec string) {
			lock := filepath.Join(w.dataDir, ".lock")
			replace(t, lock, func() error { return os.Symlink(filepath.Join(w.outside, "lock"), lock) })
		}},
		{"dataDir cannot be written", func(t *testing.T, w *world, rec string) { testutil.MakeUnwritable(t, w.dataDir) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			if o := w.run(t, "ADD", "c1", "eth0", w.conf("net", w.dataDir, w.logFile, "", true)); o.Err != nil {
				t.Fatalf("ADD: %v", o.Err)
			}
			applied := w.mac(t, "eth0")
			recs := testutil.StateRecords(t, w.dataDir)
			if len(recs) != 1 {
				t.Fatalf("records after ADD: %v", recs)
			}
			tc.tamper(t, w, filepath.Join(w.dataDir, recs[0]))
			outside := testutil.Snapshot(t, w.outside)
			defer func() {
				if after := testutil.Snapshot(t, w.outside); after != outside {
					t.Errorf("DEL wrote outside dataDir:\n%s", after)
				}
			}()
			o := w.run(t, "DEL", "c1", "eth0", w.conf("net", w.dataDir, w.logFile, "", false))
			if o.Err != nil {
				t.Fatalf("DEL failed: %v", o.Err)
			}
			if o.MaxRSS > 256<<20 {
				t.Errorf("DEL peaked at %d MiB of memory", o.MaxRSS>>20)
			}
			if got := w.mac(t, "eth0"); got != applied && got != w.orig {
				t.Errorf("DEL set %s on the interface, neither what ADD applied (%s) nor the original (%s)", got, applied, w.orig)
			}
			if hw, _ := net.ParseMAC(w.mac(t, "eth0")); macaddr.IsMulticast(hw) {
				t.Errorf("DEL applied a multicast MAC from a tampered record")
			}
			log := readFile(t, w.logFile)
			if !strings.Contains(log, "DEL") {
				t.Errorf("DEL logged nothing:\n%s", log)
			}
			// The kernel refuses a multicast MAC anyway; DEL must not have
			// tried a MAC from a record it cannot trust.
			if strings.Contains(log, "restoring the original MAC failed") {
				t.Errorf("DEL tried to apply the tampered record's MAC:\n%s", log)
			}
			if o := w.run(t, "DEL", "c1", "eth0", w.conf("net", w.dataDir, w.logFile, "", false)); o.Err != nil {
				t.Errorf("a repeated DEL failed: %v", o.Err)
			}
		})
	}
}

// replace puts what make creates in place of path.
func replace(t *testing.T, path string, make func() error) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := make(); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDelThroughCNIToolWithUnwritableDataDir (item 4): ptp + host-local +
// macguard through cnitool; once macguard's dataDir cannot be written, DEL
// still exits 0 and the chain goes on: host-local releases the address and
// ptp removes the host veth.
func TestDelThroughCNIToolWithUnwritableDataDir(t *testing.T) {
	testutil.RequireRoot(t)
	node := testutil.NewNode(t)
	tool := node.CNITool(testutil.CNIToolBinary(t), testutil.CNIPath(t))
	// A name of this run's own: cnitool's cache in /var/lib/cni is the
	// machine's.
	network := fmt.Sprintf("tenant-%d-%d", os.Getpid(), time.Now().UnixNano())
	node.WriteConfList(t, map[string]any{"cniVersion": "1.0.0", "name": network, "plugins": []map[string]any{
		{"type": "ptp", "ipam": node.HostLocal("10.244.7.0/24")},
		node.MacguardEntry(map[string]any{"assign": "always"}),
	}})
	pod := testutil.NewNetns(t)
	t.Cleanup(func() {
		// cnitool caches the attachment in the machine's /var/lib/cni; a
		// DEL that failed would leave it there.
		old, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", network+"-*"))
		for _, f := range old {
			_ = os.Remove(f)
		}
	})
	tool.Must(t, "add", network, pod.Path(), testutil.Call{})
	if recs := node.Records(t); len(recs) != 1 {
		t.Fatalf("records after ADD: %v", recs)
	}
	if l := node.Leases(t, network); len(l) != 1 {
		t.Fatalf("host-local leases after ADD: %v", l)
	}
	testutil.MakeUnwritable(t, node.DataDir)
	if run := tool.Run(t, "del", network, pod.Path(), testutil.Call{}); run.Err != nil {
		t.Fatalf("DEL with an unwritable dataDir failed: %s", run)
	}
	if l := node.Leases(t, network); len(l) != 0 {
		t.Errorf("host-local did not release the address: %v", l)
	}
	if links, err := testutil.LinkNames(node.NS); err != nil || len(links) != 1 {
		t.Errorf("links left on the node: %v %v; want only lo (ptp removes its host veth)", links, err)
	}
	if !strings.Contains(node.ReadLog(t), "state record not removed") {
		t.Errorf("macguard did not log that it could not remove the record:\n%s", node.ReadLog(t))
	}
}

// TestParallelSameAttachmentADDs (item 5): 100 pairs of ADDs, the two of a
// pair for the same container and interface at the same moment, each
// asking for a MAC of its own (CNI_ARGS MAC=, as a retried ADD with a
// changed request would). Both succeed and report their MAC, the
// interface ends with one of them, and the record still says what the
// interface had before, so DEL puts it back: neither ADD undid the other's
// change or record.
func TestParallelSameAttachmentADDs(t *testing.T) {
	testutil.RequireRoot(t)
	const pairs, atOnce = 100, 100
	host := testutil.NewNetns(t)
	bin := testutil.PluginBinary(t)
	root := t.TempDir()
	dataDir := filepath.Join(root, "data", "macguard")
	roots := []string{pathpolicy.EnvDataRoots + "=" + root}
	pods := make([]*testutil.Pod, pairs)
	for i := range pods {
		pods[i] = &testutil.Pod{Host: host, NS: testutil.NewNetns(t), IfName: "eth0", HostIf: fmt.Sprintf("vh%d", i)}
		testutil.VethPair(t, host, pods[i].HostIf, pods[i].NS, "eth0")
	}
	// With its link-local address, as a pod's interface has it: ADD then
	// swaps it too, the longest part of a change.
	for _, pod := range pods {
		testutil.WaitLinkLocal(t, pod.NS, "eth0")
	}
	errs := make(chan error, pairs)
	sem := make(chan struct{}, atOnce)
	var wg sync.WaitGroup
	for i, pod := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			orig, err := testutil.ReadMAC(pod.NS, "eth0")
			if err != nil {
				errs <- err
				return
			}
			conf := testutil.Conf("1.0.0", dataDir, `"assign":"always"`, pod.PrevResult("1.0.0", orig.String()))
			env := pod.Env("ADD", fmt.Sprintf("pair-%d", i), "")
			env.Roots = roots
			// Both processes start, then get their config at the same
			// moment: they race from reading stdin on.
			var outs [2]testutil.Outcome
			var runErrs [2]error
			var both sync.WaitGroup
			open := make(chan struct{})
			var want [2]string
			for j := range outs {
				want[j] = fmt.Sprintf("0a:58:00:00:%02x:%02x", i, j+1)
				env := env
				env.Args = "MAC=" + want[j]
				both.Add(1)
				go func() {
					defer both.Done()
					outs[j], runErrs[j] = testutil.Exec(bin, env, gated{open, bytes.NewReader(conf)}, runTimeout)
				}()
			}
			time.Sleep(20 * time.Millisecond) // both started
			close(open)
			both.Wait()
			now, err := testutil.ReadMAC(pod.NS, "eth0")
			if err != nil {
				errs <- err
				return
			}
			for j, o := range outs {
				if runErrs[j] != nil || o.Err != nil {
					errs <- fmt.Errorf("pair %d, ADD %d: %v %v", i, j, runErrs[j], o.Err)
					return
				}
				if mac, err := testutil.ResultMAC(o.Stdout, "eth0", pod.NS.Path()); err != nil || mac != want[j] {
					errs <- fmt.Errorf("pair %d, ADD %d reports %q (%v), want the MAC it asked for, %s", i, j, mac, err, want[j])
					return
				}
			}
			if now.String() != want[0] && now.String() != want[1] {
				errs <- fmt.Errorf("pair %d: the interface has %s, neither ADD's MAC (%s, %s)", i, now, want[0], want[1])
				return
			}
			env.Command = "DEL"
			o, err := testutil.Exec(bin, env, bytes.NewReader(testutil.Conf("1.0.0", dataDir, "", "")), runTimeout)
			if err != nil || o.Err != nil {
				errs <- fmt.Errorf("pair %d DEL: %v %v", i, err, o.Err)
				return
			}
			if after, err := testutil.ReadMAC(pod.NS, "eth0"); err != nil || !macaddr.Equal(after, orig) {
				errs <- fmt.Errorf("pair %d: DEL left %s, want the original %s back: the record lost it", i, after, orig)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// gated is a reader that gives nothing until open is closed.
type gated struct {
	open <-chan struct{}
	r    *bytes.Reader
}

func (g gated) Read(p []byte) (int, error) {
	<-g.open
	return g.r.Read(p)
}

// TestFailedADDsLogALine (item 7): every ADD logs one line, failures
// included: in the logFile when it can be opened, else on stderr.
func TestFailedADDsLogALine(t *testing.T) {
	for _, tc := range []struct {
		name  string
		conf  func(w *world) []byte
		netns func(w *world) string
	}{
		{"invalid requested MAC", func(w *world) []byte { return w.conf("net", w.dataDir, w.logFile, `"mac":"01:00:5e:00:00:01"`, true) }, nil},
		{"missing netns", func(w *world) []byte { return w.conf("net", w.dataDir, w.logFile, "", true) }, func(w *world) string { return filepath.Join(w.outside, "no-netns") }},
		{"missing prevResult", func(w *world) []byte { return w.conf("net", w.dataDir, w.logFile, "", false) }, nil},
		{"dataDir refused", func(w *world) []byte { return w.conf("net", filepath.Join(w.outside, "state"), w.logFile, "", true) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			env := w.pod.Env("ADD", "c1", "")
			env.Roots = w.roots()
			if tc.netns != nil {
				env.Netns = tc.netns(w)
			}
			o, err := testutil.Exec(testutil.PluginBinary(t), env, bytes.NewReader(tc.conf(w)), runTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if o.Err == nil {
				t.Fatalf("ADD succeeded: %s", o.Stdout)
			}
			lines := strings.Split(strings.TrimSpace(readFile(t, w.logFile)), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "ADD failed") || !strings.Contains(lines[0], "container=c1") {
				t.Errorf("log holds %q, want one ADD failed line naming the container", lines)
			}
		})
	}
	t.Run("logFile refused: stderr", func(t *testing.T) {
		w := newWorld(t)
		o := w.run(t, "ADD", "c1", "eth0", w.conf("net", w.dataDir, filepath.Join(w.outside, "x.log"), "", true))
		if o.Err == nil || !strings.Contains(o.Stderr, "ADD failed") {
			t.Errorf("ADD with a refused logFile: %v, stderr %q; want a failure and an ADD failed line on stderr", o.Err, o.Stderr)
		}
	})
}

// TestLongContainerID (item 8): a 256-character container ID is an
// ordinary attachment: its record's name stays within NAME_MAX.
func TestLongContainerID(t *testing.T) {
	w := newWorld(t)
	cid := strings.Repeat("0123456789abcdef", 16)
	if o := w.run(t, "ADD", cid, "eth0", w.conf("net", w.dataDir, "", "", true)); o.Err != nil {
		t.Fatalf("ADD with a %d-character container ID: %v", len(cid), o.Err)
	}
	if got := w.mac(t, "eth0"); got == w.orig {
		t.Fatal("ADD did not change the MAC")
	}
	if recs := testutil.StateRecords(t, w.dataDir); len(recs) != 1 {
		t.Fatalf("records: %v", recs)
	}
	if o := w.run(t, "DEL", cid, "eth0", w.conf("net", w.dataDir, "", "", false)); o.Err != nil {
		t.Fatalf("DEL: %v", o.Err)
	}
	if got := w.mac(t, "eth0"); got != w.orig {
		t.Errorf("DEL left %s, want %s", got, w.orig)
	}
}
