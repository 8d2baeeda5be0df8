// Package concurrency runs many plugin invocations at once, as a node does
// when a deployment scales up: ADD+CHECK+DEL cycles of the real binary in
// parallel across distinct namespaces (a quarter of them macvlans on one
// shared parent), with GC running against the same dataDir throughout.
//
// The only thing the invocations share is dataDir. Each attachment has its
// own record file, written by rename, so ADDs and DELs of different pods do
// not interfere; GC, which deletes files it did not write, takes the
// directory's flock exclusively while the others take it shared.
// TestLockSerialisesGC shows that lock at work through the binary.
package concurrency

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/macaddr"
)

const (
	cycles       = 120
	workers      = 8
	macvlanEvery = 4 // every 4th cycle is a macvlan on the shared parent
	staleRecords = 20
	runTimeout   = 60 * time.Second
)

var versions = []string{"0.4.0", "1.0.0", "1.1.0"} // CHECK needs 0.4.0 or later

// cycle is one pod's ADD+CHECK+DEL.
type cycle struct {
	i       int
	pod     *testutil.Pod
	orig    string
	links   []string
	version string
}

func (c *cycle) id() string      { return fmt.Sprintf("pod-%d", c.i) }
func (c *cycle) cniArgs() string { return "K8S_POD_NAMESPACE=conc;K8S_POD_NAME=" + c.id() }
func (c *cycle) derived() string {
	return macaddr.Derive(macaddr.Input{Kind: "pod", Key: "conc/" + c.id(), IfName: c.pod.IfName}).String()
}
func (c *cycle) record() string { return testutil.RecordName("reliability", c.id(), c.pod.IfName) }

// run is one cycle; it reports through the returned error because it runs
// on a worker goroutine.
func (c *cycle) run(bin, dataDir string) error {
	conf := func(prev string) []byte { return testutil.Conf(c.version, dataDir, `"assign":"always"`, prev) }
	exec := func(cmd string, stdin []byte) (testutil.Outcome, error) {
		o, err := testutil.Exec(bin, c.pod.Env(cmd, c.id(), c.cniArgs()), bytes.NewReader(stdin), runTimeout)
		if err == nil && o.Err != nil {
			err = fmt.Errorf("%s: %w", cmd, o.Err)
		}
		return o, err
	}
	recordExists := func(when string) error {
		if _, err := os.Stat(filepath.Join(dataDir, c.record())); err != nil {
			return fmt.Errorf("record %s %s: %w", c.record(), when, err)
		}
		return nil
	}
	macIs := func(want, when string) error {
		mac, err := testutil.ReadMAC(c.pod.NS, c.pod.IfName)
		if err != nil {
			return err
		}
		if got := macaddr.String(mac); got != want {
			return fmt.Errorf("MAC %s %s, want %s", got, when, want)
		}
		return nil
	}

	prev := c.pod.PrevResult(c.version, c.orig)
	add, err := exec("ADD", conf(prev))
	if err != nil {
		return err
	}
	if err := macIs(c.derived(), "after ADD"); err != nil {
		return err
	}
	if err := resultCorrect([]byte(prev), add.Stdout, c.pod, c.derived()); err != nil {
		return err
	}
	if err := recordExists("after ADD"); err != nil {
		return err
	}
	if _, err := exec("CHECK", conf(string(add.Stdout))); err != nil {
		return err
	}
	// GC has had the time of a CHECK to delete the live record.
	if err := recordExists("after CHECK"); err != nil {
		return err
	}
	if _, err := exec("DEL", conf("")); err != nil {
		return err
	}
	if err := macIs(c.orig, "after DEL"); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dataDir, c.record())); !os.IsNotExist(err) {
		return fmt.Errorf("record %s still there after DEL (%v)", c.record(), err)
	}
	return nil
}

// resultCorrect: the ADD result is the prevResult with exactly one change,
// the pod interface's MAC.
func resultCorrect(prev, out []byte, pod *testutil.Pod, mac string) error {
	var want, got map[string]any
	if err := json.Unmarshal(prev, &want); err != nil {
		return err
	}
	if err := json.Unmarshal(out, &got); err != nil {
		return fmt.Errorf("result is not JSON: %w: %s", err, out)
	}
	for _, ifc := range want["interfaces"].([]any) {
		if e := ifc.(map[string]any); e["name"] == pod.IfName && e["sandbox"] == pod.NS.Path() {
			e["mac"] = mac
		}
	}
	if !reflect.DeepEqual(want, got) {
		return fmt.Errorf("result differs from prevResult by more than the MAC %s:\nprev %s\n got %s", mac, prev, out)
	}
	return nil
}

// TestParallelCycles runs the cycles on workers goroutines with GC looping
// against the same dataDir. Every cycle must succeed with the right MAC in
// the link and the result, GC must never remove a live record (the runtime
// lists every pod of the test as valid, as it lists every sandbox it
// knows), the stale records seeded beforehand must be gone, and nothing may
// be left: no records, no temporary files, no links added or removed.
func TestParallelCycles(t *testing.T) {
	bin := testutil.PluginBinary(t)
	host := testutil.NewNetns(t)
	// The macvlan parent is one end of a veth pair, so no real NIC is used.
	testutil.VethPair(t, host, "parent0", testutil.NewNetns(t), "uplink")
	dataDir := filepath.Join(t.TempDir(), "state")

	var cs []*cycle
	for i := range cycles {
		c := &cycle{i: i, version: versions[i%len(versions)]}
		if i%macvlanEvery == 0 {
			c.pod = &testutil.Pod{Host: host, NS: testutil.NewNetns(t), IfName: "net1", HostIf: "parent0"}
			testutil.Macvlan(t, host, "parent0", c.pod.NS, "net1", netlink.MACVLAN_MODE_BRIDGE)
		} else {
			c.pod = testutil.NewVethPod(t, host, fmt.Sprintf("vh%d", i))
		}
		c.orig = macaddr.String(testutil.MAC(t, c.pod.NS, c.pod.IfName))
		var err error
		if c.links, err = testutil.LinkNames(c.pod.NS); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	hostLinks, err := testutil.LinkNames(host)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range staleRecords {
		rec := fmt.Sprintf(`{"version":2,"network":"reliability","containerID":"stale-%d","ifName":"eth0","originalMAC":"","appliedMAC":"0a:58:00:00:01:%02x"}`, i, i)
		if err := os.WriteFile(filepath.Join(dataDir, testutil.RecordName("reliability", fmt.Sprintf("stale-%d", i), "eth0")), []byte(rec), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	var valid []map[string]string
	for _, c := range cs {
		valid = append(valid, map[string]string{"containerID": c.id(), "ifname": c.pod.IfName})
	}
	validJSON, _ := json.Marshal(valid)
	gcConf := testutil.Conf("1.1.0", dataDir, `"cni.dev/valid-attachments":`+string(validJSON), "")
	gc := func() (testutil.Outcome, error) {
		return testutil.Exec(bin, testutil.Env{Command: "GC"}, bytes.NewReader(gcConf), runTimeout)
	}

	start := time.Now()
	var gcRuns, gcBusy atomic.Int64
	var gcMax atomic.Int64 // longest GC, in ns
	stopGC := make(chan struct{})
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stopGC:
				return
			default:
			}
			o, err := gc()
			if d := int64(o.Elapsed); d > gcMax.Load() {
				gcMax.Store(d) // only this goroutine writes
			}
			switch {
			case err != nil:
				t.Errorf("GC: %v", err)
			case o.Err != nil && o.Err.Code == 11:
				gcBusy.Add(1) // try again later is a legal answer under load
			case o.Err != nil:
				t.Errorf("GC: %v", o.Err)
			default:
				gcRuns.Add(1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	work := make(chan *cycle)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range workers {
		wg.Go(func() {
			for c := range work {
				if err := c.run(bin, dataDir); err != nil {
					failed.Add(1)
					t.Errorf("cycle %d (%s, cniVersion %s): %v", c.i, c.pod.IfName, c.version, err)
				}
			}
		})
	}
	for _, c := range cs {
		work <- c
	}
	close(work)
	wg.Wait()
	close(stopGC)
	<-gcDone
	elapsed := time.Since(start)

	if gcRuns.Load() == 0 {
		t.Errorf("no GC completed while the cycles ran (%d answered busy): the test did not test GC against ADD", gcBusy.Load())
	}
	// One last GC, after all cycles, for stale records GC had no turn for.
	if o, err := gc(); err != nil || o.Err != nil {
		t.Fatalf("final GC: %v %v", err, o.Err)
	}
	records, other, err := testutil.StateFiles(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(records)+len(other) != 0 {
		t.Errorf("dataDir not empty after every DEL and GC: records %v, other %v", records, other)
	}
	for _, c := range cs {
		if links, err := testutil.LinkNames(c.pod.NS); err != nil || !slices.Equal(links, c.links) {
			t.Errorf("cycle %d: links %v (%v), want %v", c.i, links, err, c.links)
		}
	}
	if links, err := testutil.LinkNames(host); err != nil || !slices.Equal(links, hostLinks) {
		t.Errorf("node links %v (%v), want %v", links, err, hostLinks)
	}
	t.Logf("%d ADD+CHECK+DEL cycles (%d macvlan on one parent) on %d workers in %s, %d failed; %d GC runs concurrently (%d answered try-again-later, longest %s)",
		cycles, (cycles+macvlanEvery-1)/macvlanEvery, workers, elapsed.Round(time.Millisecond), failed.Load(), gcRuns.Load(), gcBusy.Load(), time.Duration(gcMax.Load()).Round(time.Millisecond))
}

// TestLockSerialisesGC shows the dataDir lock through the binary, with the
// test holding the lock the way the other side would: GC does not delete
// anything while an ADD/CHECK/DEL holds the directory, and an ADD does not
// write (or change the link) while GC holds it. Each side proceeds as soon
// as the lock is released.
func TestLockSerialisesGC(t *testing.T) {
	const held = 400 * time.Millisecond
	bin := testutil.PluginBinary(t)

	t.Run("GC waits for a shared holder", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "state")
		release := testutil.HoldLock(t, dataDir, false)
		rec := filepath.Join(dataDir, testutil.RecordName("reliability", "gone", "eth0"))
		if err := os.WriteFile(rec, []byte(`{"version":2,"network":"reliability","containerID":"gone","ifName":"eth0"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		done := start(bin, testutil.Env{Command: "GC"}, testutil.Conf("1.1.0", dataDir, "", ""))
		time.Sleep(held)
		if _, err := os.Stat(rec); err != nil {
			t.Fatalf("GC removed a record while the directory was held shared: %v", err)
		}
		release()
		waitOK(t, done, "GC")
		if _, err := os.Stat(rec); !os.IsNotExist(err) {
			t.Fatalf("GC did not remove the stale record once it had the lock (%v)", err)
		}
	})

	t.Run("ADD waits for GC", func(t *testing.T) {
		pod := testutil.NewVethPod(t, nil, "veth-host")
		dataDir := filepath.Join(t.TempDir(), "state")
		orig := macaddr.String(testutil.MAC(t, pod.NS, pod.IfName))
		release := testutil.HoldLock(t, dataDir, true)
		done := start(bin, pod.Env("ADD", "c1", ""), testutil.Conf("1.0.0", dataDir, `"assign":"always"`, pod.PrevResult("1.0.0", orig)))
		time.Sleep(held)
		if got := macaddr.String(testutil.MAC(t, pod.NS, pod.IfName)); got != orig {
			t.Fatalf("ADD changed the MAC to %s while GC held the directory", got)
		}
		if records, _, _ := testutil.StateFiles(dataDir); len(records) != 0 {
			t.Fatalf("ADD wrote %v while GC held the directory", records)
		}
		release()
		waitOK(t, done, "ADD")
		if got := macaddr.String(testutil.MAC(t, pod.NS, pod.IfName)); got == orig {
			t.Fatal("ADD did not change the MAC once it had the lock")
		}
	})
}

type outcome struct {
	o   testutil.Outcome
	err error
}

func start(bin string, env testutil.Env, conf []byte) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		o, err := testutil.Exec(bin, env, bytes.NewReader(conf), runTimeout)
		ch <- outcome{o, err}
	}()
	return ch
}

// waitOK waits for a run started before the lock was released. It must not
// have finished before (it was waiting), and must succeed promptly after.
func waitOK(t *testing.T, done <-chan outcome, what string) {
	t.Helper()
	select {
	case r := <-done:
		if r.err != nil || r.o.Err != nil {
			t.Fatalf("%s: %v %v", what, r.err, r.o.Err)
		}
		if r.o.Elapsed < 300*time.Millisecond {
			t.Fatalf("%s finished in %s, before the lock was released", what, r.o.Elapsed)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s still waiting 5s after the lock was released", what)
	}
}
