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

// TestKilledAtRandomTimes kills the real binary's ADD after random delays
// spread over the time an ADD takes, so kills also land inside steps the
// named pauses cannot reach (inside the record write, between adding the
// new link-local address and removing the old one). DEL must always clean
// up; a temporary file from a write cut short is the one thing DEL leaves,
// and GC removes it once it is a minute old.
func TestKilledAtRandomTimes(t *testing.T) {
	const kills = 30
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

	outcomes := map[string]int{}
	for i := range kills {
		w := newWorld(t)
		delay := time.Duration(rng.Int64N(int64(span)))
		cmd := exec.Command(bin)
		cmd.Env = w.pod.Env("ADD", cid, "").List()
		cmd.Stdin = bytes.NewReader(w.conf(""))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGKILL) // it may have finished first: the switch below tells
		err := cmd.Wait()
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		records, temps, _ := testutil.StateFiles(w.dataDir)
		switch {
		case !ws.Signaled():
			outcomes["finished before the kill"]++
			if err != nil {
				t.Fatalf("kill %d: ADD failed on its own: %v", i, err)
			}
		case w.mac(t) != w.orig:
			outcomes["killed after the MAC change"]++
		case len(records) > 0:
			outcomes["killed after the record write"]++
		case len(temps) > 0:
			outcomes["killed inside the record write"]++
		default:
			outcomes["killed before any change"]++
		}
		if o := w.run(t, "DEL", w.delConf()); o.Err != nil {
			t.Fatalf("kill %d after %s: DEL: %v", i, delay, o.Err)
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
			t.Fatalf("kill %d after %s of a %s ADD left the pod unclean (see above)", i, delay, span)
		}
	}
	t.Logf("%d kills over 0-%s: %v", kills, span, outcomes)
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
