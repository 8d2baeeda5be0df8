package install

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// watching runs an install (or uninstall) with Watch on a goroutine and
// returns its log and a stop function that cancels it and checks that it
// returned nil promptly.
func watching(t *testing.T, o Options, uninstall bool) (*logBuf, func()) {
	t.Helper()
	o.Watch = true
	if o.debounce == 0 {
		o.debounce = 20 * time.Millisecond
	}
	if o.Resync == 0 {
		o.Resync = time.Hour // events only, unless the test asks for a resync
	}
	var l logBuf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o, uninstall, l.logger()) }()
	stopped := false
	stop := func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("watch returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("watch did not return within 5s of cancellation")
		}
	}
	t.Cleanup(stop)
	return &l, stop
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// chained reports whether the file at p parses and holds exactly one
// macguard entry, with every other part of want intact.
func chained(p string, want []byte) bool {
	b, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	d, err := parseList(b)
	if err != nil || countMacguard(d.plugins) != 1 {
		return false
	}
	back, _, err := unchainList(b)
	return err == nil && sameJSONFile(back, want)
}

// sameJSONFile compares two conflists as JSON values.
func sameJSONFile(a, b []byte) bool { return sameJSON(a, b) }

// rewriteLikeCilium replaces p atomically (temporary file + rename), as
// cilium-agent does with renameio.
func rewriteLikeCilium(t *testing.T, p string, data []byte) {
	t.Helper()
	tmp := p + ".cilium-tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Error(err)
		return
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Error(err)
	}
}

// rewriteLikeCalico truncates and rewrites p in place, as calico-node's
// install-cni does with os.WriteFile.
func rewriteLikeCalico(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Error(err)
	}
}

func TestWatchReappliesWhenTheOwnerRewrites(t *testing.T) {
	for _, c := range []struct {
		file    string
		rewrite func(*testing.T, string, []byte)
	}{
		{"05-cilium.conflist", rewriteLikeCilium},
		{"10-calico.conflist", rewriteLikeCalico},
		{"10-calico-operator.conflist", rewriteLikeCalico},
	} {
		t.Run(c.file, func(t *testing.T) {
			n := newNode(t)
			orig := fixture(t, c.file)
			p := n.place(t, c.file, orig, 0o644)
			l, stop := watching(t, n.opts(p), false)
			eventually(t, 5*time.Second, "initial chain", func() bool { return chained(p, orig) })

			for i := 0; i < 3; i++ {
				c.rewrite(t, p, orig)
				eventually(t, 5*time.Second, fmt.Sprintf("re-chain after rewrite %d", i+1), func() bool { return chained(p, orig) })
			}
			// The owner deletes the file and writes it again later.
			if err := os.Remove(p); err != nil {
				t.Fatalf("deleting %s like its owner: %v", p, err)
			}
			time.Sleep(100 * time.Millisecond)
			c.rewrite(t, p, orig)
			eventually(t, 5*time.Second, "re-chain after delete + create", func() bool { return chained(p, orig) })
			stop()

			if got := l.count("chained macguard into the conflist"); got != 5 {
				t.Errorf("%d 'chained' lines, want 5 (initial, three rewrites, re-creation); log:\n%s", got, l)
			}
			if !strings.Contains(l.String(), "msg=stopped") {
				t.Errorf("no stop line; log:\n%s", l)
			}
			noTemps(t, n.conf)
		})
	}
}

func TestWatchWaitsForTheConflist(t *testing.T) {
	n := newNode(t)
	p := filepath.Join(n.conf, "05-cilium.conflist")
	l, _ := watching(t, n.opts(p), false)
	eventually(t, 5*time.Second, "binary installed", func() bool {
		_, err := os.Stat(filepath.Join(n.bin, "macguard"))
		return err == nil
	})
	eventually(t, 5*time.Second, "waiting line", func() bool { return l.count("waiting for the CNI agent") == 1 })
	orig := fixture(t, "05-cilium.conflist")
	rewriteLikeCilium(t, p, orig)
	eventually(t, 5*time.Second, "chain once the agent wrote the file", func() bool { return chained(p, orig) })
	if l.count("level=ERROR") != 0 {
		t.Errorf("a missing conflist in watch mode is not an error; log:\n%s", l)
	}
}

func TestWatchNeverOverwritesATruncatedFile(t *testing.T) {
	n := newNode(t)
	orig := fixture(t, "10-calico.conflist")
	p := n.place(t, "10-calico.conflist", orig, 0o644)
	l, _ := watching(t, n.opts(p), false)
	eventually(t, 5*time.Second, "initial chain", func() bool { return chained(p, orig) })

	// The owner dies half-way through an in-place rewrite.
	half := orig[:len(orig)/2]
	rewriteLikeCalico(t, p, half)
	eventually(t, 5*time.Second, "the parse error is logged", func() bool { return l.count("left as it is") == 1 })
	time.Sleep(300 * time.Millisecond) // many debounce periods
	if got := read(t, p); !bytes.Equal(got, half) {
		t.Fatalf("the truncated file was replaced by:\n%s", got)
	}
	// Touching it again with the same broken content logs nothing new.
	rewriteLikeCalico(t, p, half)
	time.Sleep(200 * time.Millisecond)
	if c := l.count("left as it is"); c != 1 {
		t.Errorf("the same error was logged %d times", c)
	}
	// The owner recovers: chained again.
	rewriteLikeCalico(t, p, orig)
	eventually(t, 5*time.Second, "re-chain after the owner's full rewrite", func() bool { return chained(p, orig) })
	noTemps(t, n.conf)
}

func TestWatchResyncCatchesMissedChanges(t *testing.T) {
	n := newNode(t)
	orig := fixture(t, "10-calico.conflist")
	p := n.place(t, "10-calico.conflist", orig, 0o644)
	// A hard link in another directory: writes through it change the
	// file without an event in the watched directory.
	other := filepath.Join(t.TempDir(), "link")
	if err := os.Link(p, other); err != nil {
		t.Fatal(err)
	}
	o := n.opts(p)
	o.Resync = 2 * time.Second
	_, _ = watching(t, o, false)
	eventually(t, 5*time.Second, "initial chain", func() bool { return chained(p, orig) })
	// Let the events of the initial write settle.
	time.Sleep(300 * time.Millisecond)
	// The chained file is a new inode; link it again.
	if err := os.Remove(other); err != nil {
		t.Fatalf("removing the old link %s: %v", other, err)
	}
	if err := os.Link(p, other); err != nil {
		t.Fatal(err)
	}
	rewriteLikeCalico(t, other, orig)
	// No event reaches the watcher: the change must still be there a
	// while later (the first resync is due 2s after the start).
	time.Sleep(150 * time.Millisecond)
	if chained(p, orig) {
		t.Fatal("the write through the link was noticed at once; this test cannot tell the resync works")
	}
	eventually(t, 5*time.Second, "re-chain by the periodic resync", func() bool { return chained(p, orig) })
}

func TestWatchRestoresTheBinary(t *testing.T) {
	n := newNode(t)
	dst := filepath.Join(n.bin, "macguard")
	_, _ = watching(t, n.opts(), false)
	eventually(t, 5*time.Second, "installed", func() bool { return bytes.Equal(read2(dst), read(t, n.src)) })
	if err := os.Remove(dst); err != nil {
		t.Fatalf("removing the installed binary: %v", err)
	}
	eventually(t, 5*time.Second, "re-installed after removal", func() bool { return bytes.Equal(read2(dst), read(t, n.src)) })
	if err := os.WriteFile(dst, []byte("overwritten by someone"), 0o755); err != nil {
		t.Fatalf("overwriting the installed binary: %v", err)
	}
	eventually(t, 5*time.Second, "re-installed after overwrite", func() bool { return bytes.Equal(read2(dst), read(t, n.src)) })
}

func read2(p string) []byte { b, _ := os.ReadFile(p); return b }

func TestWatchConcurrentRewrites(t *testing.T) {
	n := newNode(t)
	orig := fixture(t, "10-calico.conflist")
	p := n.place(t, "10-calico.conflist", orig, 0o644)
	o := n.opts(p)
	// The storm below must not trip the back-off; that has its own test.
	o.flapWrites = 1 << 20
	l, stop := watching(t, o, false)
	eventually(t, 5*time.Second, "initial chain", func() bool { return chained(p, orig) })

	// Two owners rewrite the file as fast as they can, one atomically and
	// one in place, while a reader checks every complete version it sees.
	var wg sync.WaitGroup
	end := time.Now().Add(time.Second)
	for i, rewrite := range []func(*testing.T, string, []byte){rewriteLikeCilium, rewriteLikeCalico} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				rewrite(t, p, orig)
				time.Sleep(time.Duration(1+i) * time.Millisecond)
			}
		}()
	}
	var dupes, seen int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for time.Now().Before(end) {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			if d, err := parseList(b); err == nil {
				seen++
				if countMacguard(d.plugins) > 1 {
					dupes++
				}
			}
		}
	}()
	wg.Wait()
	if dupes > 0 {
		t.Errorf("%d of %d versions of the file had more than one macguard entry", dupes, seen)
	}
	// The owners are done: macguard converges on their last content.
	rewriteLikeCalico(t, p, orig)
	eventually(t, 5*time.Second, "chained after the storm", func() bool { return chained(p, orig) })
	stop()
	noTemps(t, n.conf)
	if l.count("chained macguard into the conflist") < 2 {
		t.Errorf("macguard never re-chained during the storm; log:\n%s", l)
	}
}

// fight drives the watch-mode write path (applyTarget, and retryHeld when a
// hold ends, as the watch loop does) against an owner of the conflist, on
// an injected clock: the schedule of writes and holds is exact, whatever
// the machine's load.
type fight struct {
	t     *testing.T
	p     string
	orig  []byte
	log   *logBuf
	r     *runner
	start time.Time
	clock time.Time
	// writes are the times of macguard's writes, since start.
	writes []time.Duration
}

// react is how long the owner takes to rewrite the file after macguard
// wrote, and macguard (its debounce) to try after the owner wrote.
const react = 100 * time.Millisecond

// newFight chains into a Cilium conflist with the default back-off.
func newFight(t *testing.T) *fight {
	n := newNode(t)
	orig := fixture(t, "05-cilium.conflist")
	p := n.place(t, "05-cilium.conflist", orig, 0o644)
	f := &fight{t: t, p: p, orig: orig, log: &logBuf{}}
	r, err := newRunner(Options{ChainInto: []string{p}, Watch: true}, f.log.logger(), false)
	if err != nil {
		t.Fatal(err)
	}
	f.start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f.clock = f.start
	r.now = func() time.Time { return f.clock }
	f.r = r
	return f
}

// try runs one reconcile and reports whether it wrote the entry.
func (f *fight) try(reconcile func()) bool {
	f.t.Helper()
	before := f.log.count("chained macguard into the conflist")
	reconcile()
	if f.log.count("chained macguard into the conflist") == before {
		return false
	}
	if !chained(f.p, f.orig) {
		f.t.Fatalf("logged a write at %v, but the file does not hold the entry", f.clock.Sub(f.start))
	}
	f.writes = append(f.writes, f.clock.Sub(f.start))
	return true
}

// until lets macguard bring the entry back, waiting out holds, as long as
// that happens before end; it reports whether it did.
func (f *fight) until(end time.Time) bool {
	f.t.Helper()
	f.clock = f.clock.Add(react)
	if !f.clock.Before(end) {
		f.clock = end
		return false
	}
	// The outcome is read from the log and the file, as the watch loop
	// relies on applyTarget's own logging.
	if f.try(func() { _ = f.r.applyTarget(f.r.targets[0]) }) {
		return true
	}
	for {
		// Held: nothing happens in the directory (the owner has no
		// entry to remove) until the retry when the hold ends.
		next := f.r.nextRetry()
		if next.IsZero() {
			f.t.Fatalf("at %v: not written and not held; log:\n%s", f.clock.Sub(f.start), f.log)
		}
		if !next.Before(end) {
			f.clock = end
			return false
		}
		f.clock = next
		if f.try(f.r.retryHeld) {
			return true
		}
	}
}

// fightFor runs the owner for d: it removes the entry react after every
// write, like cilium-agent with cni.exclusive=true.
func (f *fight) fightFor(d time.Duration) {
	f.t.Helper()
	end := f.clock.Add(d)
	for f.until(end) {
		f.clock = f.clock.Add(react)
		if !f.clock.Before(end) {
			f.clock = end
			return
		}
		rewriteLikeCilium(f.t, f.p, f.orig)
	}
}

// holds returns the back-offs logged, in order.
func (f *fight) holds() []time.Duration {
	f.t.Helper()
	var out []time.Duration
	for _, line := range strings.Split(f.log.String(), "\n") {
		if !strings.Contains(line, "backing off") {
			continue
		}
		_, v, _ := strings.Cut(line, "retry_in=")
		v, _, _ = strings.Cut(v, " ")
		d, err := time.ParseDuration(v)
		if err != nil {
			f.t.Fatalf("no retry_in in %q", line)
		}
		out = append(out, d)
	}
	return out
}

func ms(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

func TestBackOffSchedule(t *testing.T) {
	f := newFight(t)
	f.fightFor(15 * time.Minute)
	// The defaults: 5 writes pass within a minute (0.1 s to 0.9 s); the
	// 6th try (1.1 s) holds 10 s. Each hold ends with one write, which
	// the owner removes at once, so the hold doubles: 20 s, 40 s, 80 s,
	// 160 s, then 300 s, the maximum, for good.
	wantWrites := ms(100, 300, 500, 700, 900, 11_100, 31_300, 71_500, 151_700, 311_900, 612_100)
	wantHolds := ms(10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000)
	if !slices.Equal(f.writes, wantWrites) {
		t.Errorf("writes at %v, want %v", f.writes, wantWrites)
	}
	if got := f.holds(); !slices.Equal(got, wantHolds) {
		t.Errorf("holds %v, want %v; log:\n%s", got, wantHolds, f.log)
	}
	if !strings.Contains(f.log.String(), "cni.exclusive") {
		t.Errorf("the back-off warning does not name cni.exclusive; log:\n%s", f.log)
	}

	// The owner gives up. The last hold (from 612.3 s) ends with a write
	// that stays.
	f.writes = nil
	f.until(f.clock.Add(time.Hour))
	if want := ms(912_300); !slices.Equal(f.writes, want) {
		t.Fatalf("after the last hold: writes at %v, want %v", f.writes, want)
	}
	// Two minutes later the owner rewrites its file once (an agent
	// restart): after a whole quiet window the entry comes back at once,
	// and the back-off starts over: 5 writes pass again, then 10 s.
	f.clock = f.clock.Add(2 * time.Minute)
	rewriteLikeCilium(t, f.p, f.orig)
	f.writes = nil
	f.fightFor(20 * time.Second)
	if want := ms(1_032_400, 1_032_600, 1_032_800, 1_033_000, 1_033_200, 1_043_400); !slices.Equal(f.writes, want) {
		t.Errorf("after a quiet window: writes at %v, want %v", f.writes, want)
	}
	if got := f.holds()[len(wantHolds):]; !slices.Equal(got, ms(10_000, 20_000)) {
		t.Errorf("after a quiet window: holds %v, want [10s 20s]", got)
	}
	if f.log.count("back-off over") != 1 {
		t.Errorf("want one line saying the back-off is over; log:\n%s", f.log)
	}
}

func TestBackOffEndsAfterAQuietWindow(t *testing.T) {
	for _, c := range []struct {
		quiet time.Duration // how long the write after the first hold stays
		held  bool          // whether the next removal holds (20 s) or is undone at once
	}{
		{react, true},
		{59 * time.Second, true},
		{time.Minute - react, true},
		{time.Minute, false},
		{10 * time.Minute, false},
	} {
		t.Run(c.quiet.String(), func(t *testing.T) {
			f := newFight(t)
			// 5 writes, a 10 s hold, the write after it (11.1 s); the
			// fight stops before the owner removes that one.
			f.fightFor(11_200 * time.Millisecond)
			if len(f.writes) != 6 || len(f.holds()) != 1 {
				t.Fatalf("writes at %v, holds %v; want 6 writes and 1 hold", f.writes, f.holds())
			}
			// The owner removes that write after quiet; macguard
			// tries react later.
			f.clock = f.start.Add(f.writes[5] + c.quiet - react)
			rewriteLikeCilium(t, f.p, f.orig)
			f.writes = nil
			f.clock = f.clock.Add(react)
			wrote := f.try(func() { _ = f.r.applyTarget(f.r.targets[0]) }) // judged by log and file, as in until
			holds := f.holds()
			if c.held {
				if wrote || len(holds) != 2 || holds[1] != 20*time.Second {
					t.Errorf("wrote %v, holds %v; want no write and a second hold of 20s", wrote, holds)
				}
				return
			}
			if !wrote || len(holds) != 1 {
				t.Errorf("wrote %v, holds %v; want the entry back at once and no new hold", wrote, holds)
			}
		})
	}
}

func TestWatchBacksOffFromAFight(t *testing.T) {
	n := newNode(t)
	orig := fixture(t, "05-cilium.conflist")
	p := n.place(t, "05-cilium.conflist", orig, 0o644)
	o := n.opts(p)
	o.flapWrites, o.flapWindow = 3, 10*time.Second
	o.holdMin, o.holdMax = 300*time.Millisecond, 600*time.Millisecond
	l, stop := watching(t, o, false)

	// Like cilium-agent with cni.exclusive=true: whenever the file holds
	// anything but its own content, write its own content again.
	ctx, cancel := context.WithCancel(context.Background())
	fighterDone := make(chan struct{})
	go func() {
		defer close(fighterDone)
		for ctx.Err() == nil {
			if b, _ := os.ReadFile(p); !bytes.Equal(b, orig) {
				rewriteLikeCilium(t, p, orig)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(2 * time.Second)
	cancel()
	<-fighterDone
	stop()

	// The exact schedule is TestBackOffSchedule's, on an injected clock;
	// this is the real loop, with inotify and timers. Without the
	// back-off it would write once per debounce period (20ms), dozens of
	// times in 2s. With it, 3 writes pass; after that every write is the
	// first try after a hold (300ms, then 600ms), so there is at least
	// one, and never more than one per back-off warning.
	writes, holds := l.count("chained macguard into the conflist"), l.count("backing off")
	if holds == 0 || !strings.Contains(l.String(), "cni.exclusive") {
		t.Errorf("no back-off warning naming cni.exclusive; log:\n%s", l)
	}
	if writes <= o.flapWrites || writes > o.flapWrites+holds {
		t.Errorf("%d writes and %d holds in 2s of fighting; want more than %d writes (a write when a hold ends) and at most one per hold after them; log:\n%s",
			writes, holds, o.flapWrites, l)
	}
}

func TestWatchUninstallKeepsTheEntryOut(t *testing.T) {
	n := newNode(t)
	orig := fixture(t, "05-cilium.conflist")
	p := n.place(t, "05-cilium.conflist", orig, 0o644)
	if _, err := run(t, n.opts(p), false); err != nil {
		t.Fatal(err)
	}
	_, _ = watching(t, Options{ChainInto: []string{p}}, true)
	noEntry := func() bool {
		b, err := os.ReadFile(p)
		return err == nil && sameJSON(b, orig)
	}
	eventually(t, 5*time.Second, "entry removed", noEntry)
	chainedBytes, _, err := chainList(orig, mustEntry(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	rewriteLikeCilium(t, p, chainedBytes)
	eventually(t, 5*time.Second, "entry removed again", noEntry)
}

// TestMain doubles as the binary for TestInstallMainSIGTERM: with
// MACGUARD_TEST_HELPER set, the test binary is `macguardctl install`.
func TestMain(m *testing.M) {
	if os.Getenv("MACGUARD_TEST_HELPER") == "install" {
		os.Exit(InstallMain(strings.Fields(os.Getenv("MACGUARD_TEST_ARGS")), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestInstallMainSIGTERM(t *testing.T) {
	n := newNode(t)
	orig := fixture(t, "05-cilium.conflist")
	p := n.place(t, "05-cilium.conflist", orig, 0o644)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	var stderr logBuf
	cmd.Stderr = &stderr
	// Configuration through the environment, as the DaemonSet does.
	cmd.Env = append(os.Environ(),
		"MACGUARD_TEST_HELPER=install",
		"MACGUARD_TEST_ARGS=--watch --resync=1h",
		"MACGUARD_CNI_BIN_DIR="+n.bin,
		"MACGUARD_PLUGIN_BINARY="+n.src,
		"MACGUARD_CHAIN_INTO="+p,
		`MACGUARD_PLUGIN_CONFIG={"onUnsupported":"skip"}`,
	)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	eventually(t, 10*time.Second, "chained by the subprocess", func() bool { return chained(p, orig) })
	// The binary installed is the plugin, not the running program.
	if !bytes.Equal(read(t, filepath.Join(n.bin, "macguard")), read(t, n.src)) {
		t.Error("the installed binary is not MACGUARD_PLUGIN_BINARY")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v; stderr:\n%s", err, &stderr)
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill() // only fails if it exited meanwhile; the test fails either way
		t.Fatalf("no exit within 5s of SIGTERM; stderr:\n%s", &stderr)
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Errorf("no stop line; stderr:\n%s", &stderr)
	}
	// Stopping leaves the installation in place: pods keep working while
	// the DaemonSet is updated.
	if !chained(p, orig) {
		t.Error("the entry was removed on SIGTERM")
	}
	var entry map[string]any
	ps := pluginsOf(t, read(t, p))
	if err := json.Unmarshal(ps[len(ps)-1], &entry); err != nil || entry["onUnsupported"] != "skip" {
		t.Errorf("entry %s does not carry MACGUARD_PLUGIN_CONFIG", ps[len(ps)-1])
	}
}
