package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/atomicfile"
)

// logBuf collects log lines from a run (which may be on another goroutine).
type logBuf struct{ testutil.LockedBuffer }

// count returns how many log lines contain s.
func (l *logBuf) count(s string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// actions returns the log lines other than the start line.
func (l *logBuf) actions() []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line != "" && !strings.Contains(line, "msg=starting") {
			out = append(out, line)
		}
	}
	return out
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// node is a fake node: a CNI bin directory, a conf directory and a
// "running binary" to install.
type node struct {
	bin, conf, src string
}

func newNode(t *testing.T) node {
	t.Helper()
	d := t.TempDir()
	n := node{bin: filepath.Join(d, "opt/cni/bin"), conf: filepath.Join(d, "etc/cni/net.d"), src: filepath.Join(d, "image/macguard")}
	for _, dir := range []string{n.bin, n.conf, filepath.Dir(n.src)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(n.src, []byte("#!/bin/false\nmacguard binary v1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return n
}

// place writes a fixture (or other content) into the conf directory with
// the given mode.
func (n node) place(t *testing.T, name string, data []byte, mode fs.FileMode) string {
	t.Helper()
	p := filepath.Join(n.conf, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is masked by the umask
		t.Fatal(err)
	}
	return p
}

func (n node) opts(chain ...string) Options {
	return Options{CNIBinDir: n.bin, Source: n.src, ChainInto: chain}
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// noTemps fails if a temporary file of this package is left in dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if atomicfile.IsTemp(e.Name()) {
			t.Errorf("temporary file left behind: %s", filepath.Join(dir, e.Name()))
		}
	}
}

func run(t *testing.T, o Options, uninstall bool) (*logBuf, error) {
	t.Helper()
	var l logBuf
	err := Run(context.Background(), o, uninstall, l.logger())
	return &l, err
}

func TestInstallBinary(t *testing.T) {
	n := newNode(t)
	dst := filepath.Join(n.bin, "macguard")
	l, err := run(t, n.opts(), false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(t, dst), read(t, n.src)) {
		t.Fatal("installed binary differs from the source")
	}
	fi, _ := os.Stat(dst)
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %o, want 755", fi.Mode().Perm())
	}
	if l.count("installed binary") != 1 {
		t.Errorf("want one 'installed binary' line, log:\n%s", l)
	}
	noTemps(t, n.bin)

	// Same checksum: nothing written, nothing logged.
	ino := inode(t, dst)
	l, err = run(t, n.opts(), false)
	if err != nil {
		t.Fatal(err)
	}
	if inode(t, dst) != ino || l.count("installed binary") != 0 {
		t.Errorf("second install rewrote the binary (inode %d -> %d), log:\n%s", ino, inode(t, dst), l)
	}

	// Changed on the node, or a wrong mode: replaced.
	for name, spoil := range map[string]func() error{
		"content": func() error { return os.WriteFile(dst, []byte("tampered"), 0o755) },
		"mode":    func() error { return os.Chmod(dst, 0o700) },
		"missing": func() error { return os.Remove(dst) },
	} {
		if err := spoil(); err != nil {
			t.Fatalf("%s: spoiling %s: %v", name, dst, err)
		}
		l, err = run(t, n.opts(), false)
		if err != nil {
			t.Fatal(name, err)
		}
		fi, _ := os.Stat(dst)
		if !bytes.Equal(read(t, dst), read(t, n.src)) || fi.Mode().Perm() != 0o755 || l.count("installed binary") != 1 {
			t.Errorf("%s: binary not restored (mode %o), log:\n%s", name, fi.Mode().Perm(), l)
		}
	}
}

func TestInstallChainIntoRealConflists(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			n := newNode(t)
			orig := fixture(t, name)
			// An unusual mode, to see that it is kept.
			p := n.place(t, name, orig, 0o640)
			o := n.opts(p)
			o.PluginConfig = `{"assign":"always"}`
			l, err := run(t, o, false)
			if err != nil {
				t.Fatalf("%v\n%s", err, l)
			}
			got := read(t, p)
			assertSameExceptMacguard(t, orig, got)
			if ps := pluginsOf(t, got); countMacguard(ps) != 1 || !sameJSON(ps[len(ps)-1], mustEntry(t, o.PluginConfig)) {
				t.Errorf("entry not appended:\n%s", got)
			}
			if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
				t.Errorf("mode %o, want the original 640", fi.Mode().Perm())
			}
			if c := l.count("chained macguard into the conflist"); c != 1 {
				t.Errorf("%d 'chained' lines, want 1; log:\n%s", c, l)
			}
			noTemps(t, n.conf)

			// Idempotent: the second run writes nothing and says nothing.
			ino := inode(t, p)
			l, err = run(t, o, false)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(read(t, p), got) || inode(t, p) != ino {
				t.Error("second install rewrote the file")
			}
			if a := l.actions(); len(a) != 0 {
				t.Errorf("second install logged %q", a)
			}

			// New options: the entry is updated, not duplicated.
			o.PluginConfig = `{"assign":"zero","onUnsupported":"skip"}`
			l, err = run(t, o, false)
			if err != nil {
				t.Fatal(err)
			}
			got = read(t, p)
			if ps := pluginsOf(t, got); countMacguard(ps) != 1 || !sameJSON(ps[len(ps)-1], mustEntry(t, o.PluginConfig)) {
				t.Errorf("entry not updated:\n%s", got)
			}
			if l.count("updated the macguard entry") != 1 {
				t.Errorf("log:\n%s", l)
			}
			assertSameExceptMacguard(t, orig, got)

			// Uninstall gives back the agent's configuration.
			l, err = run(t, Options{CNIBinDir: n.bin, ChainInto: []string{p}}, true)
			if err != nil {
				t.Fatal(err)
			}
			back := read(t, p)
			assertSameExceptMacguard(t, orig, back)
			if countMacguard(pluginsOf(t, back)) != 0 {
				t.Errorf("entry still there:\n%s", back)
			}
			if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
				t.Errorf("uninstall changed the mode to %o", fi.Mode().Perm())
			}
			if _, err := os.Stat(filepath.Join(n.bin, "macguard")); err != nil {
				t.Errorf("uninstall without --remove-binary removed the binary: %v", err)
			}
			if l.count("removed macguard from the conflist") != 1 {
				t.Errorf("log:\n%s", l)
			}
		})
	}
}

func TestInstallNeverWritesWhatItCannotParse(t *testing.T) {
	calico := fixture(t, "10-calico.conflist")
	for name, content := range map[string][]byte{
		"truncated": calico[:len(calico)/3],
		"empty":     {},
		"garbage":   []byte("\x00\x01not json"),
	} {
		t.Run(name, func(t *testing.T) {
			n := newNode(t)
			p := n.place(t, "10-calico.conflist", content, 0o644)
			ino := inode(t, p)
			l, err := run(t, n.opts(p), false)
			if err == nil {
				t.Fatal("install succeeded on an unparsable conflist")
			}
			if !bytes.Equal(read(t, p), content) || inode(t, p) != ino {
				t.Error("the unparsable file was modified")
			}
			if !strings.Contains(l.String(), p) || !strings.Contains(l.String(), "left as it is") {
				t.Errorf("the error does not name the file; log:\n%s", l)
			}
			noTemps(t, n.conf)
			if _, err := run(t, Options{ChainInto: []string{p}}, true); err == nil {
				t.Error("uninstall succeeded on an unparsable conflist")
			}
			if !bytes.Equal(read(t, p), content) {
				t.Error("uninstall modified the unparsable file")
			}
		})
	}
}

func TestInstallOneShotErrors(t *testing.T) {
	n := newNode(t)
	missing := filepath.Join(n.conf, "05-cilium.conflist")
	l, err := run(t, n.opts(missing), false)
	if err == nil || !strings.Contains(l.String(), missing) {
		t.Errorf("missing conflist: err %v, log:\n%s", err, l)
	}

	// The binary cannot be installed: the conflist must not name it.
	p := n.place(t, "05-cilium.conflist", fixture(t, "05-cilium.conflist"), 0o644)
	o := n.opts(p)
	o.CNIBinDir = filepath.Join(n.bin, "does-not-exist")
	if _, err := run(t, o, false); err == nil {
		t.Error("install succeeded without a bin directory")
	}
	if countMacguard(pluginsOf(t, read(t, p))) != 0 {
		t.Error("chained into the conflist although the binary is not installed")
	}

	for name, o := range map[string]Options{
		"nothing to do":     {},
		"bad plugin config": {ChainInto: []string{p}, PluginConfig: `{"assign":"maybe"}`},
		"remove w/o dir":    {ChainInto: []string{p}, RemoveBinary: true},
	} {
		uninstall := name == "remove w/o dir"
		if _, err := run(t, o, uninstall); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestInstallRefusesSymlink(t *testing.T) {
	n := newNode(t)
	real := n.place(t, "real.conflist", fixture(t, "05-cilium.conflist"), 0o644)
	link := filepath.Join(n.conf, "05-cilium.conflist")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	l, err := run(t, n.opts(link), false)
	if err == nil || !strings.Contains(l.String(), "symlink") {
		t.Fatalf("err %v, log:\n%s", err, l)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&fs.ModeSymlink == 0 {
		t.Error("the symlink was replaced")
	}
}

func TestInstallConvertConf(t *testing.T) {
	n := newNode(t)
	conf := []byte(`{"cniVersion":"1.0.0","name":"mynet","type":"bridge","bridge":"cni0","ipam":{"type":"host-local","subnet":"10.22.0.0/16"}}`)
	p := n.place(t, "10-mynet.conf", conf, 0o600)
	list := filepath.Join(n.conf, "10-mynet.conflist")

	l, err := run(t, n.opts(p), false)
	if err == nil || !strings.Contains(l.String(), "--convert-conf") {
		t.Fatalf("without --convert-conf: err %v, log:\n%s", err, l)
	}
	if !bytes.Equal(read(t, p), conf) {
		t.Fatal(".conf modified without --convert-conf")
	}
	if _, err := os.Stat(list); err == nil {
		t.Fatal(".conflist created without --convert-conf")
	}

	o := n.opts(p)
	o.ConvertConf = true
	if l, err = run(t, o, false); err != nil {
		t.Fatalf("%v\n%s", err, l)
	}
	if _, err := os.Stat(p); err == nil {
		t.Error("the .conf is still there; the runtime would keep using it")
	}
	got := read(t, list)
	ps := pluginsOf(t, got)
	if len(ps) != 2 || !sameJSON(ps[0], conf) || pluginType(ps[1]) != PluginType {
		t.Errorf("converted list:\n%s", got)
	}
	if fi, _ := os.Stat(list); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %o, want the .conf's 600", fi.Mode().Perm())
	}
	if l.count("converted") != 1 {
		t.Errorf("log:\n%s", l)
	}

	// Rerun with the same --chain-into (the .conf name): nothing to do.
	ino := inode(t, list)
	if l, err = run(t, o, false); err != nil || inode(t, list) != ino || len(l.actions()) != 0 {
		t.Errorf("rerun: err %v, rewritten %v, log:\n%s", err, inode(t, list) != ino, l)
	}
	// The owner writes its .conf again: converted again.
	n.place(t, "10-mynet.conf", conf, 0o600)
	if l, err = run(t, o, false); err != nil || l.count("converted") != 1 {
		t.Errorf("re-conversion: err %v, log:\n%s", err, l)
	}
}

func TestUninstall(t *testing.T) {
	n := newNode(t)
	cilium := n.place(t, "05-cilium.conflist", fixture(t, "05-cilium.conflist"), 0o644)
	calico := n.place(t, "10-calico.conflist", fixture(t, "10-calico.conflist"), 0o644)
	if _, err := run(t, n.opts(cilium, calico), false); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(n.conf, "99-none.conflist")
	o := Options{CNIBinDir: n.bin, ChainInto: []string{cilium, calico, missing}, RemoveBinary: true}
	l, err := run(t, o, true)
	if err != nil {
		t.Fatalf("%v\n%s", err, l)
	}
	for _, p := range []string{cilium, calico} {
		if countMacguard(pluginsOf(t, read(t, p))) != 0 {
			t.Errorf("%s still has macguard", p)
		}
	}
	if _, err := os.Stat(filepath.Join(n.bin, "macguard")); err == nil {
		t.Error("binary not removed")
	}
	if l.count("removed macguard from the conflist") != 2 || l.count("removed binary") != 1 {
		t.Errorf("log:\n%s", l)
	}
	// Idempotent.
	if l, err = run(t, o, true); err != nil || len(l.actions()) != 0 {
		t.Errorf("second uninstall: err %v, log:\n%s", err, l)
	}

	// An entry that cannot be removed keeps the binary.
	if _, err := run(t, n.opts(cilium), false); err != nil {
		t.Fatal(err)
	}
	only := n.place(t, "50-only.conflist", []byte(`{"name":"x","plugins":[{"type":"macguard"}]}`), 0o644)
	o.ChainInto = []string{cilium, only}
	l, err = run(t, o, true)
	if err == nil {
		t.Error("uninstall reported success although an entry stayed")
	}
	if _, err := os.Stat(filepath.Join(n.bin, "macguard")); err != nil {
		t.Errorf("binary removed while a conflist still names it: %v\n%s", err, l)
	}
	if countMacguard(pluginsOf(t, read(t, cilium))) != 0 {
		t.Error("the removable entry was not removed")
	}
}

func TestCheck(t *testing.T) {
	n := newNode(t)
	p := n.place(t, "05-cilium.conflist", fixture(t, "05-cilium.conflist"), 0o644)
	o := n.opts(p)
	var out bytes.Buffer
	ok, err := Check(o, false, &out)
	if err != nil || ok {
		t.Fatalf("before install: ok %v err %v\n%s", ok, err, out.String())
	}
	if !strings.Contains(out.String(), "not ok   "+filepath.Join(n.bin, "macguard")+": missing") ||
		!strings.Contains(out.String(), "not ok   "+p+": no macguard entry") {
		t.Errorf("report:\n%s", out.String())
	}
	before := read(t, p)
	if !bytes.Equal(before, fixture(t, "05-cilium.conflist")) {
		t.Error("--check modified the conflist")
	}
	if _, err := os.Stat(filepath.Join(n.bin, "macguard")); err == nil {
		t.Error("--check installed the binary")
	}

	if _, err := run(t, o, false); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if ok, err := Check(o, false, &out); err != nil || !ok {
		t.Errorf("after install: ok %v err %v\n%s", ok, err, out.String())
	}
	// Another --plugin-config than the one installed: not ready.
	o2 := o
	o2.PluginConfig = `{"assign":"always"}`
	out.Reset()
	if ok, _ := Check(o2, false, &out); ok || !strings.Contains(out.String(), "differs") {
		t.Errorf("different entry: ok %v\n%s", ok, out.String())
	}
	// Uninstall check.
	u := Options{CNIBinDir: n.bin, ChainInto: []string{p}, RemoveBinary: true}
	out.Reset()
	if ok, _ := Check(u, true, &out); ok || strings.Count(out.String(), "not ok") != 2 {
		t.Errorf("uninstall check before uninstall: ok %v\n%s", ok, out.String())
	}
	if _, err := run(t, u, true); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if ok, _ := Check(u, true, &out); !ok {
		t.Errorf("uninstall check after uninstall:\n%s", out.String())
	}
}

func TestRemoveStaleTmp(t *testing.T) {
	n := newNode(t)
	files := []struct {
		name  string
		stale bool // old enough
		gone  bool
	}{
		{".macguard" + atomicfile.Marker + "123", true, true},
		{".macguard" + atomicfile.Marker + "456", false, false},
		{".other-tmp", true, false}, // not ours
	}
	old := timeNowMinus(2 * staleTmpAge)
	for _, f := range files {
		p := filepath.Join(n.bin, f.name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatalf("creating %s: %v", p, err)
		}
		if f.stale {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatalf("ageing %s: %v", p, err)
			}
		}
	}
	if _, err := run(t, n.opts(), false); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		_, err := os.Stat(filepath.Join(n.bin, f.name))
		if gone := errors.Is(err, fs.ErrNotExist); gone != f.gone {
			t.Errorf("%s: removed %v, want %v", f.name, gone, f.gone)
		}
	}
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestInstallBinaryRefusesChangedSource(t *testing.T) {
	n := newNode(t)
	// The checksum taken at start no longer matches the file: refuse.
	_, err := installBinary(n.src, sha([]byte("something else")), filepath.Join(n.bin, "macguard"))
	if err == nil || !strings.Contains(err.Error(), "changed while it was copied") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(n.bin, "macguard")); err == nil {
		t.Error("a binary with an unexpected checksum was installed")
	}
	noTemps(t, n.bin)
}

func timeNowMinus(d time.Duration) time.Time { return time.Now().Add(-d) }

func TestWriteCancelledWhenTheFileChanged(t *testing.T) {
	// The owner rewrites the file between macguard's read and its rename:
	// the owner's version must survive, and the write is retried later.
	for name, rewrite := range map[string]func(*testing.T, string, []byte){
		"in place": rewriteLikeCalico, "replaced": rewriteLikeCilium,
	} {
		t.Run(name, func(t *testing.T) {
			n := newNode(t)
			orig := fixture(t, "10-calico.conflist")
			p := n.place(t, "10-calico.conflist", orig, 0o644)
			r, err := newRunner(n.opts(p), slog.New(slog.DiscardHandler), false)
			if err != nil {
				t.Fatal(err)
			}
			data, fi, err := readRegular(p)
			if err != nil {
				t.Fatal(err)
			}
			out, _, err := chainList(data, r.entry)
			if err != nil {
				t.Fatal(err)
			}
			newer := bytes.Replace(orig, []byte(`"worker-1"`), []byte(`"worker-2"`), 1)
			rewrite(t, p, newer)
			err = r.write(r.targets[0], p, out, fi, data)
			if !errors.Is(err, errBusy) {
				t.Fatalf("write = %v, want errBusy", err)
			}
			if !bytes.Equal(read(t, p), newer) {
				t.Error("the owner's newer version was replaced")
			}
			noTemps(t, n.conf)
		})
	}
}
