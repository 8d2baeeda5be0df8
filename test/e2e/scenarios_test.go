package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/macguard-cni/macguard/internal/testutil"
)

var webPod = pod{"default", "web-1"}

// Scenario 1: ptp + macguard with the default config. ptp's veth already
// has a MAC, so macguard must change nothing: the result cnitool prints is
// the one ptp alone returns (as JSON values), and the link is untouched.
func TestPtpPassThrough(t *testing.T) {
	// ptp alone on one node gives the reference result; the chain runs on a
	// second node, so both get the first address of the same subnet.
	// Everything that is random per attachment (veth name, MACs, netns
	// path) is mapped from the reference onto the chain's values; all other
	// bytes must be equal.
	ref := newNode(t)
	refNet := ref.writeList("ptp-only", "1.0.0", ptp(ref.hostLocal("10.201.0.0/24")))
	refPod := ref.attach(refNet, testutil.NewNetns(t), webPod, "")
	want, wantRaw := refPod.add()

	n := newNode(t)
	network := n.writeList("ptp-mg", "1.0.0", ptp(n.hostLocal("10.201.0.0/24")), n.macguard(nil))
	a := n.attach(network, testutil.NewNetns(t), webPod, "")
	got, gotRaw := a.add()

	if len(got.Interfaces) != len(want.Interfaces) {
		t.Fatalf("chain result has %d interfaces, ptp alone %d:\n%s\nvs\n%s", len(got.Interfaces), len(want.Interfaces), gotRaw, wantRaw)
	}
	mapped := string(wantRaw)
	for i, w := range want.Interfaces {
		g := got.Interfaces[i]
		mapped = strings.ReplaceAll(mapped, `"`+w.Name+`"`, `"`+g.Name+`"`)
		mapped = strings.ReplaceAll(mapped, `"`+w.Mac+`"`, `"`+g.Mac+`"`)
	}
	mapped = strings.ReplaceAll(mapped, `"`+refPod.pod.Path()+`"`, `"`+a.pod.Path()+`"`)
	var wantV, gotV any
	if err := json.Unmarshal([]byte(mapped), &wantV); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(gotRaw, &gotV); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotV, wantV) {
		t.Errorf("macguard changed ptp's result:\n got %s\nwant %s", gotRaw, mapped)
	}

	mac := a.podMACInResult(got)
	if link := a.linkMAC(); link != mac {
		t.Errorf("pod interface has %s, the result says %s", link, mac)
	}
	// The link is untouched: macguard decided to keep the MAC it found and
	// recorded nothing to restore.
	l := a.addLog()
	if l["action"] != "keep" || l["old"] != mac || l["new"] != mac {
		t.Errorf("macguard logged action=%s old=%s new=%s, want keep %s -> %s", l["action"], l["old"], l["new"], mac, mac)
	}
	if recs := n.records(); len(recs) != 0 {
		t.Errorf("a pass-through left state records %v", recs)
	}
	a.check()
	a.del()
	a.assertClean()
	refPod.del()
	refPod.assertClean()
}

// Scenario 2: bridge + macguard assign "always". The MAC is a function of
// the workload, not of the sandbox: a new sandbox (new container ID) for
// the same pod, and a new virt-launcher pod for the same VM, get the same
// MAC; another workload gets another one.
func TestBridgeStableMAC(t *testing.T) {
	n := newNode(t)
	network := n.writeList("bridge-always", "1.1.0",
		bridge("mgbr0", n.hostLocal("10.202.0.0/24")), n.macguard(obj{"assign": "always"}))

	vm1 := testutil.DerivedMAC(t, "--namespace", "vms", "--vm", "vm1", "--ifname", podIf)
	vm2 := testutil.DerivedMAC(t, "--namespace", "vms", "--vm", "vm2", "--ifname", podIf)
	web := testutil.DerivedMAC(t, "--namespace", "vms", "--pod", "web-1", "--ifname", podIf)
	if vm1 == vm2 || vm1 == web || vm2 == web {
		t.Fatalf("the CLI derives colliding MACs for different workloads: %s %s %s", vm1, vm2, web)
	}

	// Run in order on one node: each ADD is deleted before the next, as a
	// VM restart deletes the old launcher pod.
	steps := []struct {
		what string
		pod  pod
		want string
	}{
		{"first launcher pod of vm1", pod{"vms", "virt-launcher-vm1-abcde"}, vm1},
		{"same pod, new sandbox (new container ID)", pod{"vms", "virt-launcher-vm1-abcde"}, vm1},
		{"vm1 restarted: new launcher pod suffix", pod{"vms", "virt-launcher-vm1-x7k2q"}, vm1},
		{"another VM", pod{"vms", "virt-launcher-vm2-abcde"}, vm2},
		{"a plain pod", pod{"vms", "web-1"}, web},
	}
	seenIDs := map[string]bool{}
	for _, s := range steps {
		t.Run(s.what, func(t *testing.T) {
			n := n.in(t)
			a := n.attach(network, testutil.NewNetns(t), s.pod, "")
			if seenIDs[a.containerID()] {
				t.Fatalf("container ID %s reused: the step would not prove anything", a.containerID())
			}
			seenIDs[a.containerID()] = true
			r, raw := a.add()
			if got := a.linkMAC(); got != s.want {
				t.Errorf("pod interface has %s, want the derived %s", got, s.want)
			}
			if got := a.podMACInResult(r); got != s.want {
				t.Errorf("result reports %s, want %s: %s", got, s.want, raw)
			}
			l := a.addLog()
			if l["action"] != "set" || l["new"] != s.want || l["old"] == s.want {
				t.Errorf("log line %v: want a set from bridge's random MAC to %s", l, s.want)
			}
			if !strings.Contains(l["reason"], "always") {
				t.Errorf("log reason %q does not say why (assign always)", l["reason"])
			}
			orig, applied := a.stateRecord()
			if orig != l["old"] || applied != s.want {
				t.Errorf("state record original=%s applied=%s, want %s -> %s", orig, applied, l["old"], s.want)
			}
			a.check()
			a.del()
			// bridge keeps its bridge device on DEL, by design.
			a.assertClean("mgbr0")
		})
	}
}

// Scenario 3: macvlan with the "mac" capability + macguard, the requested
// MAC coming the ways Multus passes it: runtimeConfig (CAP_ARGS, from a
// network selection element's "mac") and CNI_ARGS MAC=. macvlan applies it
// itself; macguard verifies, changes nothing, and CHECK passes.
func TestMacvlanRequestedMAC(t *testing.T) {
	tests := []struct {
		name    string
		capArgs string
		args    []string
		want    string
	}{
		{"runtimeConfig.mac", `{"mac":"0a:58:0a:00:03:01"}`, nil, "0a:58:0a:00:03:01"},
		{"runtimeConfig.mac upper case", `{"mac":"0A:58:0A:00:03:02"}`, nil, "0a:58:0a:00:03:02"},
		{"CNI_ARGS MAC", "", []string{"MAC=0a:58:0a:00:03:03"}, "0a:58:0a:00:03:03"},
		{"CNI_ARGS MAC upper case with dashes", "", []string{"MAC=0A-58-0A-00-03-04"}, "0a:58:0a:00:03:04"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t).withParent()
			network := n.writeList("macvlan-cap", "1.0.0",
				macvlan(true, n.hostLocal("10.203.0.0/24"), nil), n.macguard(obj{"assign": "never"}))
			a := n.attach(network, testutil.NewNetns(t), webPod, tc.capArgs, tc.args...)
			r, raw := a.add()
			if got := a.linkMAC(); got != tc.want {
				t.Errorf("pod interface has %s, want %s", got, tc.want)
			}
			if got := a.podMACInResult(r); got != tc.want {
				t.Errorf("result reports %q, want %q: %s", got, tc.want, raw)
			}
			l := a.addLog()
			if l["old"] != tc.want || l["new"] != tc.want || l["action"] != "keep" {
				t.Errorf("log line %v: want macguard to find %s already applied and keep it", l, tc.want)
			}
			a.check()
			a.del()
			a.assertClean(parentIf, parentPeer)
		})
	}
}

// Scenario 4: macvlan WITHOUT the "mac" capability ignores runtimeConfig
// (the Kube-OVN / Multus case where the secondary comes up with a random
// MAC): only macguard gets the request and must enforce it, and correct
// the result so that macvlan's own CHECK (which compares the result's MAC
// with the link's) passes.
func TestMacvlanRequestEnforced(t *testing.T) {
	tests := []struct {
		name    string
		capArgs string
		want    string
	}{
		{"lower case", `{"mac":"0a:58:0a:00:04:01"}`, "0a:58:0a:00:04:01"},
		{"upper case with dashes is normalized", `{"mac":"0A-58-0A-00-04-02"}`, "0a:58:0a:00:04:02"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t).withParent()
			network := n.writeList("macvlan-nocap", "1.0.0",
				macvlan(false, n.hostLocal("10.204.0.0/24"), nil), n.macguard(obj{"assign": "never"}))
			a := n.attach(network, testutil.NewNetns(t), webPod, tc.capArgs)
			r, raw := a.add()
			if got := a.linkMAC(); got != tc.want {
				t.Errorf("pod interface has %s, want %s", got, tc.want)
			}
			if got := a.podMACInResult(r); got != tc.want {
				t.Errorf("result reports %q, want %q: %s", got, tc.want, raw)
			}
			l := a.addLog()
			if l["action"] != "set" || l["new"] != tc.want || l["old"] == tc.want {
				t.Errorf("log line %v: want a set from macvlan's random MAC to %s", l, tc.want)
			}
			if !strings.Contains(l["reason"], "runtimeConfig.mac") {
				t.Errorf("log reason %q does not name the source runtimeConfig.mac", l["reason"])
			}
			if orig, _ := a.stateRecord(); orig != l["old"] {
				t.Errorf("state record keeps %s as the original, the log says %s", orig, l["old"])
			}
			a.check()
			a.del()
			a.assertClean(parentIf, parentPeer)
		})
	}
}

// Scenario 5: macvlan + tuning + macguard, tuning and macguard both holding
// the "mac" capability. tuning applies the MAC, macguard agrees and keeps
// it: no fight, no second change, tuning's own CHECK and DEL still work.
func TestMacvlanTuningMacguard(t *testing.T) {
	const want = "0a:58:0a:00:05:01"
	n := newNode(t).withParent()
	network := n.writeList("macvlan-tuning", "1.0.0",
		macvlan(false, n.hostLocal("10.205.0.0/24"), nil),
		n.tuning(obj{"capabilities": obj{"mac": true}}),
		n.macguard(obj{"assign": "never"}))
	a := n.attach(network, testutil.NewNetns(t), webPod, `{"mac":"`+want+`"}`)
	r, raw := a.add()
	if got := a.linkMAC(); got != want {
		t.Errorf("pod interface has %s, want %s", got, want)
	}
	if got := a.podMACInResult(r); got != want {
		t.Errorf("result reports %q, want %q: %s", got, want, raw)
	}
	l := a.addLog()
	if l["action"] != "keep" || l["old"] != want || l["new"] != want {
		t.Errorf("log line %v: macguard should find tuning's %s and keep it", l, want)
	}
	if recs := n.records(); len(recs) != 0 {
		t.Errorf("macguard recorded state %v although tuning made the change", recs)
	}
	// tuning did make it: it keeps a backup of the original MAC until DEL.
	if backups, err := os.ReadDir(n.tuningDir); err != nil || len(backups) != 1 {
		t.Errorf("tuning's dataDir holds %v (%v), want its one backup: did tuning run?", backups, err)
	}
	a.check()
	a.del()
	a.assertClean(parentIf, parentPeer)
	// tuning keeps the original MAC in a file per attachment until DEL.
	if left, err := os.ReadDir(n.tuningDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Error(err)
	} else if len(left) != 0 {
		t.Errorf("tuning left state behind in its dataDir: %v", left)
	}
}

// Scenario 6: ipvlan shares its parent's MAC, so a requested MAC cannot be
// honoured; macguard must say so (and suggest macvlan) instead of failing
// obscurely. Needs a kernel with ipvlan; this machine's usually has none,
// and the VM suite (test/vm, `make test-vm`) runs this same chain (reference
// ipvlan plugin, macguard, a MAC via CAP_ARGS, through cnitool) on a kernel
// that has it.
func TestIpvlanRequestedMAC(t *testing.T) {
	n := newNode(t).withParent()
	has, err := testutil.KernelHasLinkKind(n.NS, parentIf, "ipvlan")
	if err != nil {
		t.Fatal(err)
	}
	if !has {
		t.Skip("the host kernel has no ipvlan (CONFIG_IPVLAN off); the VM suite runs this scenario on a kernel with it (test/vm TestCnitoolChainIPvlanRequestedMACIsRefused, make test-vm)")
	}
	const req = "0a:58:0a:00:06:01"
	network := n.writeList("ipvlan", "1.0.0",
		obj{"type": "ipvlan", "master": parentIf, "mode": "l2", "ipam": n.hostLocal("10.206.0.0/24")},
		n.macguard(obj{"assign": "never"}))
	a := n.attach(network, testutil.NewNetns(t), webPod, `{"mac":"`+req+`"}`)
	run := a.run("add")
	if run.Err == nil {
		t.Fatalf("ADD on ipvlan with a requested MAC succeeded: %v", run)
	}
	for _, frag := range []string{"macguard", podIf, "ipvlan", "macvlan"} {
		if !strings.Contains(run.Stderr, frag) {
			t.Errorf("cnitool's error does not mention %q: %s", frag, run.Stderr)
		}
	}
	parent := testutil.MAC(t, n.NS, parentIf).String()
	if got := a.linkMAC(); got != parent {
		t.Errorf("ipvlan interface has %s, want its parent's %s", got, parent)
	}
	if recs := n.records(); len(recs) != 0 {
		t.Errorf("the failed ADD left state %v", recs)
	}
	a.del()
	a.assertClean(parentIf, parentPeer)
}

// Scenario 7: a requested MAC that is multicast, broadcast, zero or not a
// MAC at all. cnitool reports macguard's error naming the value and where it
// came from; the interface keeps the MAC the main plugin gave it; nothing is
// recorded; DEL afterwards (what a runtime does after a failed ADD) cleans
// up fully.
func TestBadRequestedMAC(t *testing.T) {
	// macvlan creates the interface with this MAC from its own config, so
	// "unchanged" can be checked against a known value. It has no "mac"
	// capability, so runtimeConfig reaches only macguard.
	const fixed = "0a:58:0a:00:07:01"
	tests := []struct {
		name     string
		main     string // "macvlan" or "ptp"
		macguard obj
		capArgs  string
		args     []string
		// wantErr are fragments of cnitool's error: the value and its source.
		wantErr []string
	}{
		{name: "multicast in runtimeConfig.mac", main: "macvlan", capArgs: `{"mac":"01:00:5e:00:00:01"}`,
			wantErr: []string{"01:00:5e:00:00:01", "runtimeConfig.mac", "multicast"}},
		{name: "malformed runtimeConfig.mac", main: "macvlan", capArgs: `{"mac":"0a:58:zz:00:00:01"}`,
			wantErr: []string{"0a:58:zz:00:00:01", "runtimeConfig.mac"}},
		{name: "broadcast in config mac", main: "macvlan", macguard: obj{"mac": "ff:ff:ff:ff:ff:ff"},
			wantErr: []string{"ff:ff:ff:ff:ff:ff", "config mac"}},
		{name: "all zeros in args.cni.mac", main: "macvlan", macguard: obj{"args": obj{"cni": obj{"mac": "00:00:00:00:00:00"}}},
			wantErr: []string{"00:00:00:00:00:00", "args.cni.mac"}},
		// ptp ignores CNI_ARGS MAC= (macvlan, bridge and tuning would try
		// to apply it themselves and fail first). Its MAC is random, so
		// only "no change recorded" can be checked there.
		{name: "malformed CNI_ARGS MAC", main: "ptp", args: []string{"MAC=not-a-mac"},
			wantErr: []string{"not-a-mac", "CNI_ARGS MAC"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			var main obj
			var nodeLinks []string
			if tc.main == "macvlan" {
				n.withParent()
				main = macvlan(false, n.hostLocal("10.207.0.0/24"), obj{"mac": fixed})
				nodeLinks = []string{parentIf, parentPeer}
			} else {
				main = ptp(n.hostLocal("10.207.0.0/24"))
			}
			network := n.writeList("bad-mac", "1.0.0", main, n.macguard(tc.macguard))
			a := n.attach(network, testutil.NewNetns(t), webPod, tc.capArgs, tc.args...)
			run := a.run("add")
			if run.Err == nil {
				t.Fatalf("ADD succeeded with a bad requested MAC: %v", run)
			}
			for _, frag := range append([]string{`type="macguard"`}, tc.wantErr...) {
				if !strings.Contains(run.Stderr, frag) {
					t.Errorf("cnitool's error does not mention %q: %s", frag, run.Stderr)
				}
			}
			got := a.linkMAC()
			if tc.main == "macvlan" && got != fixed {
				t.Errorf("pod interface has %s after the rejected ADD, want macvlan's %s", got, fixed)
			}
			if recs := n.records(); len(recs) != 0 {
				t.Errorf("the rejected ADD left state %v", recs)
			}
			for _, l := range n.logLines() {
				if l["action"] == "set" {
					t.Errorf("macguard logged a MAC change for a rejected request: %v", l)
				}
			}
			a.del()
			a.assertClean(nodeLinks...)
		})
	}
}

// Scenario 8: GC. A runtime calls GC with the attachments it still knows
// (cni.dev/valid-attachments); macguard must drop the state of every other
// attachment and keep the live one's. cnitool cannot pass that list (its
// gc sends none, meaning "everything is stale"), so the runtime's call is
// made through libcni, the library cnitool, containerd and CRI-O share;
// `cnitool gc` is exercised afterwards with its documented meaning.
func TestGC(t *testing.T) {
	n := newNode(t)
	// static IPAM with the address in CNI_ARGS IP=: host-local implements
	// no GC (v1.9.1), so its lease of the forgotten attachment would leak
	// whatever macguard does.
	network := n.writeList("gc", "1.1.0",
		bridge("mgbr0", obj{"type": "static"}), n.macguard(obj{"assign": "always"}))
	live := n.attach(network, testutil.NewNetns(t), pod{"gc", "live"}, "", "IP=10.208.0.2/24")
	// crashed: the sandbox vanished without a DEL; libcni's cache still
	// lists it, so libcni's GC sends DEL for it first.
	crashedNS, removeCrashed := testutil.RemovableNetns(t)
	crashed := n.attach(network, crashedNS, pod{"gc", "crashed"}, "", "IP=10.208.0.3/24")
	// forgotten: the runtime lost track of it entirely (no cache entry), so
	// only macguard's own GC can find its state.
	forgottenNS, removeForgotten := testutil.RemovableNetns(t)
	forgotten := n.attach(network, forgottenNS, pod{"gc", "forgotten"}, "", "IP=10.208.0.4/24")
	for _, a := range []*attachment{live, crashed, forgotten} {
		a.add()
	}
	liveMAC := live.linkMAC()
	if recs := n.records(); len(recs) != 3 {
		t.Fatalf("want 3 state records after 3 ADDs with assign always, have %v", recs)
	}
	for _, remove := range []func() error{removeCrashed, removeForgotten} {
		if err := remove(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(forgotten.cacheFile()); err != nil {
		t.Fatalf("dropping the runtime's cache entry: %v", err)
	}
	crashed.deleted, forgotten.deleted = true, true // nothing left for cleanup to DEL

	list, err := libcni.ConfListFromFile(filepath.Join(n.ConfDir, network+".conflist"))
	if err != nil {
		t.Fatal(err)
	}
	testutil.SetRootsEnv(t) // libcni runs the plugins with this process's environment
	cni := libcni.NewCNIConfig(filepath.SplitList(n.tool.CNIPath), nil)
	valid := []types.GCAttachment{{ContainerID: live.containerID(), IfName: podIf}}
	err = n.NS.Do(func(ns.NetNS) error {
		return cni.GCNetworkList(context.Background(), list, &libcni.GCArgs{ValidAttachments: valid})
	})
	if err != nil {
		t.Fatalf("GC with valid-attachments [live]: %v", err)
	}
	if recs := n.records(); !slices.Equal(recs, []string{live.recordName()}) {
		t.Errorf("after GC the records are %v, want only the live one %s", recs, live.recordName())
	}
	var gcLogged bool
	for _, l := range n.logLines() {
		gcLogged = gcLogged || strings.HasPrefix(l["msg"], "GC") && l["container"] == forgotten.containerID()
	}
	if !gcLogged {
		t.Errorf("macguard's log does not show GC removing the forgotten attachment:\n%s", n.readLog())
	}
	if got := live.linkMAC(); got != liveMAC {
		t.Errorf("GC changed the live pod's MAC from %s to %s", liveMAC, got)
	}
	live.check()

	// `cnitool gc` passes no valid attachments: every cached attachment of
	// the network is DELeted and every plugin told that nothing is valid.
	n.tool.Must(t, "gc", network, live.pod.Path(), live.call)
	live.deleted = true
	if recs := n.records(); len(recs) != 0 {
		t.Errorf("records %v survived cnitool gc", recs)
	}
	live.assertClean("mgbr0")
}

// Scenario 9: one chain in every cniVersion macguard supports. The result
// must be a valid result of the list's version (libcni converts nothing on
// the way out), carry the corrected MAC, and CHECK/STATUS behave as that
// version defines.
func TestCNIVersions(t *testing.T) {
	vm := testutil.DerivedMAC(t, "--namespace", "vms", "--vm", "vm9", "--ifname", podIf)
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			n := newNode(t)
			network := n.writeList("v"+strings.ReplaceAll(v, ".", ""), v,
				bridge("mgbr0", n.hostLocal("10.209.0.0/24")), n.macguard(obj{"assign": "always"}))
			a := n.attach(network, testutil.NewNetns(t), pod{"vms", "virt-launcher-vm9-abcde"}, "")
			r, raw := a.add()
			if r.CNIVersion != v {
				t.Errorf("result cniVersion %q, want %q", r.CNIVersion, v)
			}
			res, err := create.Create(v, raw)
			if err != nil {
				t.Errorf("the result is not a valid %s result: %v: %s", v, err, raw)
			} else if res.Version() != v {
				t.Errorf("result decodes as version %s, want %s", res.Version(), v)
			}
			if got := a.podMACInResult(r); got != vm {
				t.Errorf("result reports %s, want %s", got, vm)
			}
			if got := a.linkMAC(); got != vm {
				t.Errorf("pod interface has %s, want %s", got, vm)
			}
			if hasCheck, err := version.GreaterThanOrEqualTo(v, "0.4.0"); err != nil {
				t.Fatal(err)
			} else if !hasCheck {
				// CHECK arrived with 0.4.0: libcni refuses it for older
				// lists before any plugin runs.
				run := a.run("check")
				if run.Err == nil || !strings.Contains(run.Stderr, libcni.ErrorCheckNotSupp.Error()) {
					t.Errorf("cnitool check on a %s list: want libcni's %q, got %v", v, libcni.ErrorCheckNotSupp, run)
				}
			} else {
				a.check()
			}
			// STATUS is a 1.1.0 verb; libcni answers success for older lists.
			if run := a.run("status"); run.Err != nil {
				t.Errorf("cnitool status: %v", run)
			}
			a.del()
			a.assertClean("mgbr0")
		})
	}
}

// STATUS reaches macguard: a valid list is ready, and the same list with a
// broken macguard entry is not, with the field named. (Without the second
// half a STATUS that never called macguard would pass.)
func TestStatus(t *testing.T) {
	n := newNode(t)
	good := n.writeList("status", "1.1.0", ptp(n.hostLocal("10.210.0.0/24")), n.macguard(nil))
	bad := n.writeList("status-bad", "1.1.0", ptp(n.hostLocal("10.210.0.0/24")), n.macguard(obj{"assign": "sometimes"}))
	netns := testutil.NewNetns(t).Path()
	if run := n.tool.Run(t, "status", good, netns, testutil.Call{}); run.Err != nil {
		t.Errorf("status of a valid list: %v", run)
	}
	run := n.tool.Run(t, "status", bad, netns, testutil.Call{})
	if run.Err == nil || !strings.Contains(run.Stderr, `"assign"`) || !strings.Contains(run.Stderr, "sometimes") {
		t.Errorf("status with assign \"sometimes\": want an error naming the field and value, got %v", run)
	}
}

// tuning echoes a requested MAC into the result exactly as written; macguard
// must hand on the kernel's canonical form, or every string-comparing CHECK
// after it (macvlan's) fails against the link.
func TestMacvlanTuningUpperCaseRequestIsCanonicalized(t *testing.T) {
	const want = "0a:58:0a:00:05:02"
	n := newNode(t).withParent()
	network := n.writeList("macvlan-tuning-upper", "1.0.0",
		macvlan(false, n.hostLocal("10.207.0.0/24"), nil),
		n.tuning(obj{"capabilities": obj{"mac": true}}),
		n.macguard(obj{"assign": "never"}))
	a := n.attach(network, testutil.NewNetns(t), webPod, `{"mac":"`+strings.ToUpper(want)+`"}`)
	r, raw := a.add()
	if got := a.linkMAC(); got != want {
		t.Errorf("pod interface has %s, want %s", got, want)
	}
	if got := a.podMACInResult(r); got != want {
		t.Errorf("result reports %q, want canonical %q: %s", got, want, raw)
	}
	// No CHECK here: tuning's own CHECK compares its upper-case config string
	// with the link and fails whatever macguard reports (see cni-conf/README.md).
	a.del()
	a.assertClean(parentIf, parentPeer)
}
