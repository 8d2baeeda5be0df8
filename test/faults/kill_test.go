package faults

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/macaddr"
	"github.com/macguard-cni/macguard/pkg/plugin"
)

// childEnv names the step at which a child copy of this test binary, run
// as the plugin, stops and reports on fd 3 (see runChild).
const childEnv = "MACGUARD_FAULTS_PAUSE_AT"

// The steps of an ADD a child can be stopped at.
const (
	atRecordWritten = "record-written" // state saved, MAC not yet changed
	atMACChanged    = "mac-changed"    // MAC changed, link-local not yet swapped
	atSwapped       = "swapped"        // link-local swapped, not yet announced
)

// runChild is the plugin as the binary runs it (skel, env and stdin),
// with its link layer wrapped so that it pauses at step: it writes the step
// name to fd 3 and sleeps until the parent kills it. It never pauses
// elsewhere, so a run that ends instead of pausing shows up as EOF on fd 3.
func runChild(step string) {
	p := plugin.New()
	p.Open = func(path string) (link.Netns, error) {
		n, err := link.Open(path)
		if err != nil {
			return nil, err
		}
		return &pausing{Netns: n, step: step}, nil
	}
	skel.PluginMainFuncs(p.Funcs(), plugin.SupportedVersions, "")
}

type pausing struct {
	link.Netns
	step string
}

func (p *pausing) pause(at string) {
	if p.step != at {
		return
	}
	f := os.NewFile(3, "pause")
	// Should the line not get through, the parent reports a child that
	// never paused.
	fmt.Fprintln(f, at)
	_ = f.Close()
	// Sleep rather than block on a channel: the runtime would call a
	// goroutine-less wait a deadlock and exit.
	time.Sleep(time.Hour)
}

func (p *pausing) SetMAC(ifName string, mac net.HardwareAddr) error {
	p.pause(atRecordWritten)
	if err := p.Netns.SetMAC(ifName, mac); err != nil {
		return err
	}
	p.pause(atMACChanged)
	return nil
}

func (p *pausing) SwapLinkLocal(ifName string, from, to net.HardwareAddr) (bool, error) {
	ok, err := p.Netns.SwapLinkLocal(ifName, from, to)
	p.pause(atSwapped)
	return ok, err
}

// paused is a child plugin process stopped at a step.
type paused struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// startPaused runs ADD in a child and returns once it reports being at
// step. It fails the test when the child ends without getting there.
func startPaused(t *testing.T, env testutil.Env, conf []byte, step string) *paused {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := &paused{cmd: exec.Command(os.Args[0])}
	p.cmd.Env = append(env.List(), childEnv+"="+step)
	p.cmd.Stdin = bytes.NewReader(conf)
	p.cmd.Stdout = &p.out
	p.cmd.ExtraFiles = []*os.File{w}
	if err := p.cmd.Start(); err != nil {
		_ = w.Close() // the start's error is the one to report
		t.Fatal(err)
	}
	// The child holds the only write end now: its exit means EOF.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Gone already, and waited for, when the test has ended it.
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	})
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		got <- strings.TrimSpace(line)
	}()
	select {
	case line := <-got:
		if line != step {
			_ = p.cmd.Wait() // how it ended is in ProcessState, reported next
			t.Fatalf("child ended without reaching %q (exit %v, stdout %s)", step, p.cmd.ProcessState, p.out.String())
		}
	case <-time.After(runTimeout):
		t.Fatalf("child did not reach %q within %s", step, runTimeout)
	}
	return p
}

func (p *paused) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := p.cmd.Wait()
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL: %v", err)
	}
}

// TestKilledADDThenDEL kills ADD with SIGKILL at each step. Whatever it had
// done, the runtime's DEL must put the pod back exactly as it was (MAC,
// link-local and other addresses) and leave dataDir empty; the kernel drops
// the dead process's lock, so nothing has to wait for it.
func TestKilledADDThenDEL(t *testing.T) {
	for _, step := range []string{atRecordWritten, atMACChanged, atSwapped} {
		t.Run(step, func(t *testing.T) {
			w := newWorld(t)
			p := startPaused(t, w.pod.Env("ADD", cid, ""), w.conf(""), step)
			macAtKill := w.mac(t)
			if want := map[string]string{atRecordWritten: w.orig, atMACChanged: w.derived(), atSwapped: w.derived()}[step]; macAtKill != want {
				t.Fatalf("MAC at %s is %s, want %s: the child did not stop where it said", step, macAtKill, want)
			}
			p.kill(t)
			if records, _, _ := testutil.StateFiles(w.dataDir); !slices.Equal(records, []string{testutil.RecordName("reliability", cid, "eth0")}) {
				t.Fatalf("after the kill dataDir holds %v, want the write-ahead record", records)
			}
			o := w.run(t, "DEL", w.delConf())
			if o.Err != nil {
				t.Fatalf("DEL after the kill: %v", o.Err)
			}
			if o.Elapsed > 5*time.Second {
				t.Errorf("DEL took %s: did it wait for the dead process's lock?", o.Elapsed)
			}
			w.requireClean(t)
			// And the attachment is usable again.
			if o := w.run(t, "ADD", w.conf("")); o.Err != nil || w.mac(t) != w.derived() {
				t.Fatalf("ADD after recovery: %v, MAC %s", o.Err, w.mac(t))
			}
		})
	}
}

// The phases of an ADD a random kill can land in, in the order the ADD
// passes them, each told apart afterwards by what the pod and dataDir show
// (see phaseOf). The named pauses of TestKilledADDThenDEL stop only between
// steps; these include the inside of two steps.
const (
	phaseBeforeChange = "before any change"          // nothing written, nothing changed
	phaseInWrite      = "inside the record write"    // a temporary file, no record yet
	phaseRecorded     = "after the record write"     // the record, the original MAC
	phaseMACChanged   = "after the MAC change"       // the new MAC, only the old link-local
	phaseInSwap       = "inside the link-local swap" // both link-local addresses
	phaseSwapped      = "after the link-local swap"  // only the new link-local, not finished
)

// killPhases are the phases TestKilledAtRandomTimes must land a kill in.
var killPhases = []string{phaseBeforeChange, phaseInWrite, phaseRecorded, phaseMACChanged, phaseInSwap, phaseSwapped}

// phaseFinished is an ADD that ended before the kill reached it.
const phaseFinished = "finished before the kill"

// phaseOf tells where the killed ADD of w was, from what it left behind.
func (w *world) phaseOf(t *testing.T) string {
	t.Helper()
	records, temps, err := testutil.StateFiles(w.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	mac := w.mac(t)
	if mac == w.orig {
		switch {
		case len(records) > 0:
			return phaseRecorded
		case len(temps) > 0:
			return phaseInWrite
		}
		return phaseBeforeChange
	}
	oldLL, newLL := false, false
	for _, ip := range testutil.Addrs(t, w.pod.NS, w.pod.IfName) {
		oldLL = oldLL || ip.Equal(macaddr.LinkLocal(macaddr.MustParse(w.orig)))
		newLL = newLL || ip.Equal(macaddr.LinkLocal(macaddr.MustParse(mac)))
	}
	switch {
	case oldLL && newLL:
		return phaseInSwap
	case newLL:
		return phaseSwapped
	}
	return phaseMACChanged
}

// TestKilledAtRandomTimes kills the real binary's ADD after random delays,
// so kills also land inside steps the named pauses cannot reach (inside
// the record write, between adding the new link-local address and
// removing the old one). DEL must always clean up; a temporary file from a
// write cut short is the one thing DEL leaves, and GC removes it once it is
// a minute old.
//
// The first kills are spread over the time an ADD takes. Some phases last
// microseconds, so the kills after that are aimed (see aim) where kills
// have landed mid-change, until every phase of killPhases has had a kill
// or maxKills is spent. A phase with no kill fails the test, by name.
func TestKilledAtRandomTimes(t *testing.T) {
	const (
		spreadKills = 30
		maxKills    = 1000
	)
	bin := testutil.PluginBinary(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	// Calibrate: how long does an uninterrupted ADD take on this machine?
	w := newWorld(t)
	var took []time.Duration
	for range 5 {
		o := w.run(t, "ADD", w.conf(""))
		if o.Err != nil {
			t.Fatalf("ADD: %v", o.Err)
		}
		took = append(took, o.Elapsed)
		w.run(t, "DEL", w.delConf())
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	span := took[len(took)/2] * 12 / 10

	// delays holds, by phase, the delays whose kill landed there.
	delays := map[string][]time.Duration{}
	missing := func() []string {
		var m []string
		for _, p := range killPhases {
			if len(delays[p]) == 0 {
				m = append(m, p)
			}
		}
		return m
	}
	kills := 0
	for ; kills < maxKills && (kills < spreadKills || len(missing()) > 0); kills++ {
		delay := time.Duration(rng.Int64N(int64(span)))
		if kills >= spreadKills {
			delay = aim(rng, delays, missing()[0], span)
		}
		w := newWorld(t)
		cmd := exec.Command(bin)
		cmd.Env = w.pod.Env("ADD", cid, "").List()
		cmd.Stdin = bytes.NewReader(w.conf(""))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGKILL) // it may have finished first: the phase below tells
		err := cmd.Wait()
		phase := phaseFinished
		if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() {
			phase = w.phaseOf(t)
		} else if err != nil {
			t.Fatalf("kill %d: ADD failed on its own: %v", kills, err)
		}
		delays[phase] = append(delays[phase], delay)
		if o := w.run(t, "DEL", w.delConf()); o.Err != nil {
			t.Fatalf("kill %d %s (after %s): DEL: %v", kills, phase, delay, o.Err)
		}
		if _, temps, _ := testutil.StateFiles(w.dataDir); len(temps) > 0 {
			agePast(t, w.dataDir, temps, 2*time.Minute)
			gc := testutil.Conf("1.1.0", w.dataDir, "", "")
			if o, err := testutil.Exec(bin, testutil.Env{Command: "GC"}, bytes.NewReader(gc), runTimeout); err != nil || o.Err != nil {
				t.Fatalf("GC: %v %v", err, o.Err)
			}
		}
		w.requireClean(t)
		if t.Failed() {
			t.Fatalf("kill %d %s (after %s of a %s ADD) left the pod unclean (see above)", kills, phase, delay, span)
		}
	}
	t.Logf("%d kills, the first %d over 0-%s", kills, spreadKills, span)
	for _, p := range append(slices.Clone(killPhases), phaseFinished) {
		if d := delays[p]; len(d) > 0 {
			t.Logf("%s: %d kills, after %s-%s (median %s)", p, len(d), slices.Min(d), slices.Max(d), median(d))
		}
	}
	for _, p := range missing() {
		t.Errorf("no kill landed %s in %d kills (seed %d): that phase's cleanup went untested", p, kills, seed)
	}
}

// aim draws the delay of a kill meant to land in phase, where none has
// yet. The steps of an ADD last microseconds, but when the ADD reaches
// them varies by far more from run to run (starting the process), so the
// delays that landed kills in the phases either side of it (of those after
// the start of the record write) are where the next kill is likeliest to
// land in it: aim takes one of those (or, while they have none, of any
// such phase), moved by up to span/40 either way. Before any kill has
// landed mid-change, it draws from where kills have both landed before any
// change and got further (finished): the zone where the change happens.
func aim(rng *rand.Rand, delays map[string][]time.Duration, phase string, span time.Duration) time.Duration {
	i := slices.Index(killPhases, phase)
	var near, mid []time.Duration
	for j, p := range killPhases[1:] {
		mid = append(mid, delays[p]...)
		if j+1 == i-1 || j+1 == i+1 {
			near = append(near, delays[p]...)
		}
	}
	if len(near) == 0 {
		near = mid
	}
	if len(near) > 0 {
		d := near[rng.IntN(len(near))] + time.Duration(rng.Int64N(int64(span/20)+1)) - span/40
		return max(d, 0)
	}
	before, later := delays[phaseBeforeChange], delays[phaseFinished]
	if len(before) == 0 || len(later) == 0 {
		return time.Duration(rng.Int64N(int64(span)))
	}
	lo, hi := slices.Min(later), slices.Max(before)
	if hi < lo {
		lo, hi = hi, lo
	}
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// agePast backdates files so that GC treats them as abandoned.
func agePast(t *testing.T, dir string, names []string, age time.Duration) {
	t.Helper()
	old := time.Now().Add(-age)
	for _, n := range names {
		if err := os.Chtimes(filepath.Join(dir, n), old, old); err != nil {
			t.Fatal(err)
		}
	}
}
