// Package faults injects failures into real network namespaces while
// macguard works on them: the interface vanishing mid-change, the state
// directory failing, the plugin killed with SIGKILL at each step of an ADD,
// repeated and late DELs, and a MAC changed behind the plugin's back.
//
// The plugin package runs in-process where a fault must strike between two
// steps (link.Open is wrapped, nothing in production has a knob for it), and
// in a child copy of this test binary where the fault is the process dying:
// the child pauses at a named step and tells the parent through a pipe, and
// the parent kills it there. Cleanup after a fault always goes through the
// real binary, as a runtime would do it.
package faults

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/macguard-cni/macguard/internal/plugintest"
	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/macaddr"
	"github.com/macguard-cni/macguard/pkg/pathpolicy"
	"github.com/macguard-cni/macguard/pkg/plugin"
	"github.com/macguard-cni/macguard/pkg/state"
)

const (
	cid        = "c1"
	runTimeout = 30 * time.Second
)

// world is one pod and its dataDir, with what the interface looked like
// before macguard ran.
type world struct {
	pod     *testutil.Pod
	dataDir string
	orig    string
	addrs   string
}

// newWorld creates a veth pod with an IPv4 address and waits for the
// kernel's EUI-64 link-local address, so every ADD also swaps it and every
// fault can strike after the swap.
func newWorld(t *testing.T) *world {
	t.Helper()
	pod := testutil.NewVethPod(t, nil, "veth-host")
	testutil.AddAddr(t, pod.NS, pod.IfName, "10.88.0.2/24")
	w := &world{pod: pod, dataDir: filepath.Join(t.TempDir(), "state")}
	w.orig = macaddr.String(testutil.WaitLinkLocal(t, pod.NS, pod.IfName))
	w.addrs = strings.Join(addrs(t, pod), " ")
	return w
}

func addrs(t *testing.T, pod *testutil.Pod) []string {
	var out []string
	for _, ip := range testutil.Addrs(t, pod.NS, pod.IfName) {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

func (w *world) conf(fields string) []byte {
	if fields == "" {
		fields = `"assign":"always"`
	}
	return testutil.Conf("1.0.0", w.dataDir, fields, w.pod.PrevResult("1.0.0", w.orig))
}

func (w *world) delConf() []byte { return testutil.Conf("1.0.0", w.dataDir, `"assign":"always"`, "") }

func (w *world) mac(t *testing.T) string {
	return macaddr.String(testutil.MAC(t, w.pod.NS, w.pod.IfName))
}

// derived is what assign "always" gives this pod (no pod CNI_ARGS, so the
// container ID is the identity).
func (w *world) derived() string {
	return macaddr.Derive(macaddr.Input{Kind: "container", Key: cid, IfName: w.pod.IfName}).String()
}

// run executes the real binary.
func (w *world) run(t *testing.T, cmd string, conf []byte) testutil.Outcome {
	t.Helper()
	o, err := testutil.Exec(testutil.PluginBinary(t), w.pod.Env(cmd, cid, ""), bytes.NewReader(conf), runTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// requireClean asserts the pod is as it was before macguard ever ran: the
// original MAC, the original addresses (link-local included), no records
// and no stray files in dataDir.
func (w *world) requireClean(t *testing.T) {
	t.Helper()
	if got := w.mac(t); got != w.orig {
		t.Errorf("MAC %s, want the original %s", got, w.orig)
	}
	if got := strings.Join(addrs(t, w.pod), " "); got != w.addrs {
		t.Errorf("addresses %s, want the original %s", got, w.addrs)
	}
	records, other, err := testutil.StateFiles(w.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(records)+len(other) != 0 {
		t.Errorf("dataDir not clean: records %v, other %v", records, other)
	}
}

// inProcess returns the real plugin with its link layer wrapped, and what
// it prints.
func inProcess(wrap func(link.Netns) link.Netns) (*plugin.Plugin, *bytes.Buffer) {
	p, out, _ := plugintest.WrappedPlugin(wrap)
	return p, out
}

func (w *world) args(conf []byte) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: cid, Netns: w.pod.NS.Path(), IfName: w.pod.IfName, StdinData: conf}
}

// hooked is a real namespace with code run around the steps of an ADD.
type hooked struct {
	link.Netns
	beforeSet, afterSet func() error
	swapErr             error
}

func (h *hooked) SetMAC(ifName string, mac net.HardwareAddr) error {
	if h.beforeSet != nil {
		before := h.beforeSet
		h.beforeSet = nil // rollback calls SetMAC again
		if err := before(); err != nil {
			return err
		}
	}
	err := h.Netns.SetMAC(ifName, mac)
	if h.afterSet != nil {
		after := h.afterSet
		h.afterSet = nil
		if err := after(); err != nil {
			return err
		}
	}
	return err
}

func (h *hooked) SwapLinkLocal(ifName string, from, to net.HardwareAddr) (bool, error) {
	if h.swapErr != nil {
		return false, h.swapErr
	}
	return h.Netns.SwapLinkLocal(ifName, from, to)
}

// TestInterfaceVanishes deletes the pod interface between the plugin
// reading it and changing it, and between the change and its read-back.
// ADD must fail with 100 (interface not found), print no result and leave
// no state behind, so nothing waits for a DEL that may never come.
func TestInterfaceVanishes(t *testing.T) {
	tests := []struct {
		name string
		hook func(w *world) *hooked
		want string
	}{
		{"between lookup and change", func(w *world) *hooked {
			return &hooked{beforeSet: func() error { return testutil.DeleteLink(w.pod.NS, w.pod.IfName) }}
		}, "setting MAC"},
		{"between change and read-back", func(w *world) *hooked {
			return &hooked{afterSet: func() error { return testutil.DeleteLink(w.pod.NS, w.pod.IfName) }}
		}, "reading back"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			h := tt.hook(w)
			p, out := inProcess(func(n link.Netns) link.Netns { h.Netns = n; return h })
			e := testutil.CNIError(t, p.Add(w.args(w.conf(""))))
			if e.Code != plugin.ErrCodeInterfaceNotFound || !strings.Contains(e.Msg, `"eth0"`) || !strings.Contains(e.Msg, tt.want) {
				t.Fatalf("got code %d %q, want %d naming eth0 and %q", e.Code, e.Msg, plugin.ErrCodeInterfaceNotFound, tt.want)
			}
			if out.Len() != 0 {
				t.Fatalf("failed ADD printed a result: %s", out)
			}
			if records, other, err := testutil.StateFiles(w.dataDir); err != nil || len(records)+len(other) != 0 {
				t.Fatalf("state left after a failed ADD: %v %v %v", records, other, err)
			}
			if names, err := testutil.LinkNames(w.pod.NS); err != nil || !slices.Equal(names, []string{"lo"}) {
				t.Fatalf("links in the pod: %v %v; want only lo", names, err)
			}
		})
	}
}

// TestStateWriteFails: the record is written before the MAC changes (so a
// crash at any later point leaves something DEL can undo), a dataDir that
// refuses the write stops ADD before the link is touched, and one that
// starts refusing after the change still ends with the original MAC.
func TestStateWriteFails(t *testing.T) {
	t.Run("record is on disk before the MAC changes", func(t *testing.T) {
		w := newWorld(t)
		var seen state.Record
		var found bool
		h := &hooked{beforeSet: func() error {
			var err error
			seen, found, err = state.New(w.dataDir).Load(state.Key{Network: "reliability", ContainerID: cid, IfName: w.pod.IfName})
			return err
		}}
		p, _ := inProcess(func(n link.Netns) link.Netns { h.Netns = n; return h })
		if err := p.Add(w.args(w.conf(""))); err != nil {
			t.Fatal(err)
		}
		if !found || seen.OriginalMAC != w.orig || seen.AppliedMAC != w.derived() {
			t.Fatalf("record at the moment of the change: found=%v %+v; want original %s, applied %s", found, seen, w.orig, w.derived())
		}
	})

	t.Run("dataDir read-only before ADD", func(t *testing.T) {
		w := newWorld(t)
		// The lock file exists, so the lock is taken and the failure is
		// the record write itself.
		testutil.HoldLock(t, w.dataDir, false)()
		testutil.MakeUnwritable(t, w.dataDir)
		before := testutil.Snapshot(t, w.dataDir)
		o := w.run(t, "ADD", w.conf(""))
		if o.Err == nil || o.Err.Code != plugin.ErrCodeState || !strings.Contains(o.Err.Msg, "writing state") || !strings.Contains(o.Err.Msg, "check dataDir") {
			t.Fatalf("got %v, want code %d about writing state", o.Err, plugin.ErrCodeState)
		}
		if w.mac(t) != w.orig {
			t.Fatalf("MAC changed to %s although the record could not be written", w.mac(t))
		}
		if after := testutil.Snapshot(t, w.dataDir); after != before {
			t.Fatalf("dataDir changed:\n%s\n%s", before, after)
		}
	})

	t.Run("dataDir read-only after the MAC change", func(t *testing.T) {
		w := newWorld(t)
		var restore func()
		h := &hooked{
			afterSet: func() error { restore = testutil.MakeUnwritable(t, w.dataDir); return nil },
			swapErr:  errors.New("injected failure after the MAC change"),
		}
		p, out := inProcess(func(n link.Netns) link.Netns { h.Netns = n; return h })
		e := testutil.CNIError(t, p.Add(w.args(w.conf(""))))
		if !strings.Contains(e.Msg, "injected failure") || !strings.Contains(e.Msg, "removing state") {
			t.Fatalf("error %q should carry the cause and the failed state removal", e.Msg)
		}
		if out.Len() != 0 {
			t.Fatalf("failed ADD printed a result: %s", out)
		}
		// The MAC was rolled back although the record could not be removed.
		if got := w.mac(t); got != w.orig {
			t.Fatalf("MAC %s after rollback, want %s", got, w.orig)
		}
		restore()
		// The leftover record names a MAC the interface no longer has, so
		// DEL must drop it without touching the interface.
		if o := w.run(t, "DEL", w.delConf()); o.Err != nil {
			t.Fatalf("DEL: %v", o.Err)
		}
		w.requireClean(t)
	})
}

// TestDelIdempotent: DEL must succeed however often and however early it
// comes, and must not create a dataDir it has nothing to put into.
func TestDelIdempotent(t *testing.T) {
	t.Run("twice after ADD", func(t *testing.T) {
		w := newWorld(t)
		if o := w.run(t, "ADD", w.conf("")); o.Err != nil || w.mac(t) != w.derived() {
			t.Fatalf("ADD: %v, MAC %s want %s", o.Err, w.mac(t), w.derived())
		}
		for i := 1; i <= 2; i++ {
			if o := w.run(t, "DEL", w.delConf()); o.Err != nil {
				t.Fatalf("DEL #%d: %v", i, o.Err)
			}
			w.requireClean(t)
		}
	})
	t.Run("without ADD", func(t *testing.T) {
		w := newWorld(t)
		if o := w.run(t, "DEL", w.delConf()); o.Err != nil {
			t.Fatalf("DEL: %v", o.Err)
		}
		if _, err := os.Stat(w.dataDir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("DEL created dataDir (%v)", err)
		}
		w.requireClean(t)
	})
	t.Run("after a failed ADD", func(t *testing.T) {
		w := newWorld(t)
		if o := w.run(t, "ADD", w.conf(`"mac":"01:00:5e:00:00:01"`)); o.Err == nil {
			t.Fatal("ADD with a multicast MAC succeeded")
		}
		if o := w.run(t, "DEL", w.delConf()); o.Err != nil {
			t.Fatalf("DEL: %v", o.Err)
		}
		w.requireClean(t)
	})
}

// TestDelAfterSandboxGone: the runtime tears the sandbox down first and
// calls DEL afterwards, or not with a netns at all. DEL must succeed and
// forget the attachment.
func TestDelAfterSandboxGone(t *testing.T) {
	tests := []struct {
		name string
		// gone removes part of the sandbox and returns CNI_NETNS for DEL.
		gone func(t *testing.T, w *world) string
	}{
		{"netns deleted", func(t *testing.T, w *world) string {
			path := w.pod.NS.Path()
			if err := w.pod.NS.Close(); err != nil { // an open handle keeps the mount busy
				t.Fatal(err)
			}
			if err := testutils.UnmountNS(w.pod.NS); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"interface deleted", func(t *testing.T, w *world) string {
			if err := testutil.DeleteLink(w.pod.NS, w.pod.IfName); err != nil {
				t.Fatal(err)
			}
			return w.pod.NS.Path()
		}},
		{"CNI_NETNS empty", func(t *testing.T, w *world) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A namespace of our own: the one NewVethPod makes is removed by
			// its cleanup, which would complain about this test removing it.
			host, pod := testutil.NewNetns(t), mustNS(t)
			w := &world{pod: &testutil.Pod{Host: host, NS: pod, IfName: "eth0", HostIf: "veth-host"}, dataDir: filepath.Join(t.TempDir(), "state")}
			testutil.VethPair(t, host, "veth-host", pod, "eth0")
			w.orig = w.mac(t)
			if o := w.run(t, "ADD", w.conf("")); o.Err != nil {
				t.Fatalf("ADD: %v", o.Err)
			}
			env := w.pod.Env("DEL", cid, "")
			env.Netns = tt.gone(t, w)
			o, err := testutil.Exec(testutil.PluginBinary(t), env, bytes.NewReader(w.delConf()), runTimeout)
			if err != nil || o.Err != nil {
				t.Fatalf("DEL: %v %v", err, o.Err)
			}
			if records, other, err := testutil.StateFiles(w.dataDir); err != nil || len(records)+len(other) != 0 {
				t.Fatalf("state left: %v %v %v", records, other, err)
			}
		})
	}
}

func mustNS(t *testing.T) ns.NetNS {
	t.Helper()
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Both closed and gone already in the "netns deleted" case.
		_ = n.Close()
		_ = testutils.UnmountNS(n)
	})
	return n
}

// TestCheckAfterManualChange: someone sets another MAC after ADD. CHECK
// must say so, naming what the interface has and what it should have; DEL
// must then leave that MAC alone, since macguard did not set it.
func TestCheckAfterManualChange(t *testing.T) {
	w := newWorld(t)
	o := w.run(t, "ADD", w.conf(""))
	if o.Err != nil {
		t.Fatalf("ADD: %v", o.Err)
	}
	check := testutil.Conf("1.0.0", w.dataDir, `"assign":"always"`, string(o.Stdout))
	if o := w.run(t, "CHECK", check); o.Err != nil {
		t.Fatalf("CHECK before the change: %v", o.Err)
	}
	const manual = "0a:58:00:00:00:99"
	testutil.SetMAC(t, w.pod.NS, w.pod.IfName, macaddr.MustParse(manual))
	o = w.run(t, "CHECK", check)
	if o.Err == nil || o.Err.Code != plugin.ErrCodeCheckMismatch {
		t.Fatalf("CHECK after the change: %v, want code %d", o.Err, plugin.ErrCodeCheckMismatch)
	}
	for _, want := range []string{`"eth0"`, w.pod.NS.Path(), manual, w.derived(), "changed after ADD"} {
		if !strings.Contains(o.Err.Msg, want) {
			t.Errorf("CHECK message lacks %q: %s", want, o.Err.Msg)
		}
	}
	if o := w.run(t, "DEL", w.delConf()); o.Err != nil {
		t.Fatalf("DEL: %v", o.Err)
	}
	if got := w.mac(t); got != manual {
		t.Fatalf("DEL replaced a MAC macguard did not set: %s, want %s", got, manual)
	}
	if records, _, _ := testutil.StateFiles(w.dataDir); len(records) != 0 {
		t.Fatalf("records left: %v", records)
	}
}

// TestBusyStateDir: while GC holds the state lock longer than the plugin
// waits, ADD answers 11 (try again later) without touching anything. The
// binary waits 10s; the in-process plugin is given 200ms to keep this fast.
func TestBusyStateDir(t *testing.T) {
	w := newWorld(t)
	testutil.HoldLock(t, w.dataDir, true)
	before := testutil.Snapshot(t, w.dataDir)
	p, out := inProcess(func(n link.Netns) link.Netns { return n })
	p.NewStore = func(dataDir pathpolicy.Place) plugin.Store {
		s := state.Beneath(dataDir)
		s.LockTimeout = 200 * time.Millisecond
		return s
	}
	start := time.Now()
	e := testutil.CNIError(t, p.Add(w.args(w.conf(""))))
	if e.Code != types.ErrTryAgainLater || !strings.Contains(e.Msg, "still locked after 200ms") {
		t.Fatalf("got code %d %q, want %d saying how long it waited", e.Code, e.Msg, types.ErrTryAgainLater)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Fatalf("gave up after %s, before its timeout", waited)
	}
	if out.Len() != 0 || w.mac(t) != w.orig || testutil.Snapshot(t, w.dataDir) != before {
		t.Fatalf("busy ADD changed something: result %q, MAC %s (was %s)", out, w.mac(t), w.orig)
	}
}

func TestMain(m *testing.M) {
	if point := os.Getenv(childEnv); point != "" {
		runChild(point)
		os.Exit(0)
	}
	os.Exit(m.Run())
}
