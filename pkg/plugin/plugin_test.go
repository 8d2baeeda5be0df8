package plugin

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/macguard-cni/macguard/internal/linktest"
	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/macaddr"
	"github.com/macguard-cni/macguard/pkg/pathpolicy"
	"github.com/macguard-cni/macguard/pkg/state"
)

const nsPath = "/var/run/netns/fake-pod"

// harness runs the plugin's commands against a fake namespace and a real
// state directory in t.TempDir().
type harness struct {
	t       *testing.T
	fake    *linktest.Fake
	p       *Plugin
	dataDir string
	stdout  bytes.Buffer
	log     bytes.Buffer
	store   Store // nil: the real one
}

func newHarness(t *testing.T, links ...link.Observed) *harness {
	h := &harness{t: t, fake: linktest.New(nsPath, links...), dataDir: filepath.Join(t.TempDir(), "state")}
	h.p = &Plugin{
		Open: h.fake.Opener(),
		NewStore: func(dataDir pathpolicy.Place) Store {
			if h.store != nil {
				return h.store
			}
			return state.Beneath(dataDir)
		},
		Stdout: &h.stdout,
		Stderr: &h.log,
		Now:    func() time.Time { return time.Unix(0, 0) },
		Roots:  testutil.Roots(),
	}
	return h
}

// conf is macguard's config for this harness's dataDir, with extra fields
// (a JSON object body) and prevResult.
func (h *harness) conf(fields string, prevResult string) []byte {
	return testutil.Conf("1.0.0", h.dataDir, fields, prevResult)
}

func prevResult(mac string) string {
	return `{"cniVersion":"1.0.0","interfaces":[{"name":"lxc123","mac":"aa:aa:aa:aa:aa:aa"},{"name":"eth0","mac":"` + mac +
		`","sandbox":"` + nsPath + `"}],"ips":[{"address":"10.0.0.5/24","interface":1}]}`
}

const vmArgs = "K8S_POD_NAMESPACE=vms;K8S_POD_NAME=virt-launcher-vm1-abcde;K8S_POD_UID=u1"

func (h *harness) run(cmd func(*skel.CmdArgs) error, containerID string, stdin []byte, cniArgs string) error {
	h.stdout.Reset()
	return cmd(&skel.CmdArgs{ContainerID: containerID, Netns: nsPath, IfName: "eth0", Args: cniArgs, StdinData: stdin})
}

func cniCode(t *testing.T, err error) (uint, string) {
	t.Helper()
	e := testutil.CNIError(t, err)
	return e.Code, e.Msg
}

// resultMAC is the MAC the last command's result reports for the pod's
// eth0.
func (h *harness) resultMAC() string {
	h.t.Helper()
	mac, err := testutil.ResultMAC(h.stdout.Bytes(), "eth0", nsPath)
	if err != nil {
		h.t.Fatal(err)
	}
	return mac
}

// stateFiles lists the records in the dataDir; a temporary file a writer
// left next to them fails the test.
func (h *harness) stateFiles() []string {
	h.t.Helper()
	return testutil.StateRecords(h.t, h.dataDir)
}

func netkit(mode, mac string) link.Observed {
	o := link.Observed{Name: "eth0", Kind: link.KindNetkit, NetkitMode: mode, EncapType: "ether", Up: true}
	if mac != "" {
		o.MAC = macaddr.MustParse(mac)
	}
	return o
}

func veth(mac string) link.Observed {
	o := netkit("", mac)
	o.Kind = "veth"
	return o
}

func TestAddNetkitL3FailsWithRemedy(t *testing.T) {
	h := newHarness(t, netkit(link.NetkitL3, ""))
	err := h.run(h.p.Add, "c1", h.conf("", prevResult("")), vmArgs)
	code, msg := cniCode(t, err)
	if code != ErrCodeUnsupported {
		t.Fatalf("code %d, want %d: %s", code, ErrCodeUnsupported, msg)
	}
	for _, want := range []string{"eth0", nsPath, "netkit", "bpf.datapathMode=netkit-l2", "macAddress", "nothing was changed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if h.fake.MAC("eth0") != "" || len(h.fake.Calls) != 0 {
		t.Fatalf("device touched: MAC %q, calls %v", h.fake.MAC("eth0"), h.fake.Calls)
	}
	if _, err := os.Stat(h.dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dataDir created although nothing changed: %v", err)
	}
}

func TestAddNetkitL3SkipPassesThrough(t *testing.T) {
	h := newHarness(t, netkit(link.NetkitL3, ""))
	prev := prevResult("")
	if err := h.run(h.p.Add, "c1", h.conf(`"onUnsupported":"skip"`, prev), vmArgs); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(h.stdout.String()) != prev {
		t.Fatalf("result not passed through byte for byte:\n got %s\nwant %s", h.stdout.String(), prev)
	}
	if !strings.Contains(h.log.String(), "level=WARN") || !strings.Contains(h.log.String(), "netkit-l2") {
		t.Fatalf("no warning logged: %s", h.log.String())
	}
}

func TestAddSetsDerivedMACAndKeepsItAcrossVMRestart(t *testing.T) {
	h := newHarness(t, netkit(link.NetkitL2, "52:54:00:12:34:56"))
	want := macaddr.Derive(macaddr.Input{Kind: "vm", Key: "vms/vm1", IfName: "eth0"}).String()
	if err := h.run(h.p.Add, "c1", h.conf(`"assign":"always"`, prevResult("52:54:00:12:34:56")), vmArgs); err != nil {
		t.Fatal(err)
	}
	if got := h.fake.MAC("eth0"); got != want {
		t.Fatalf("MAC %s, want derived %s", got, want)
	}
	if got := h.resultMAC(); got != want {
		t.Fatalf("result MAC %s, want %s", got, want)
	}
	if ll := h.fake.LinkLocal("eth0"); len(ll) != 1 || !macaddr.LinkLocal(macaddr.MustParse(want)).Equal(ll[0]) {
		t.Fatalf("link-local not swapped: %v", ll)
	}
	wantCalls := []string{
		"AnnounceOnChange eth0",
		"SetMAC eth0 " + want,
		"KernelAnnounce eth0 " + want,
		"SwapLinkLocal eth0 52:54:00:12:34:56 " + want,
		"RestoreAnnounce eth0",
	}
	if !slices.Equal(h.fake.Calls, wantCalls) {
		t.Fatalf("calls %v, want the kernel asked to announce the change:\n%v", h.fake.Calls, wantCalls)
	}
	if err := h.run(h.p.Check, "c1", h.conf(`"assign":"always"`, h.stdout.String()), vmArgs); err != nil {
		t.Fatalf("CHECK after ADD: %v", err)
	}
	if err := h.run(h.p.Del, "c1", h.conf(`"assign":"always"`, ""), vmArgs); err != nil {
		t.Fatal(err)
	}
	if got := h.fake.MAC("eth0"); got != "52:54:00:12:34:56" {
		t.Fatalf("DEL did not restore: %s", got)
	}
	// The restarted VM runs in a new launcher pod with a new container.
	restarted := strings.Replace(vmArgs, "abcde", "fghij", 1)
	if err := h.run(h.p.Add, "c2", h.conf(`"assign":"always"`, prevResult("52:54:00:12:34:56")), restarted); err != nil {
		t.Fatal(err)
	}
	if got := h.fake.MAC("eth0"); got != want {
		t.Fatalf("restarted VM got %s, want the same %s", got, want)
	}
}

func TestAddRequestedMAC(t *testing.T) {
	h := newHarness(t, veth("52:54:00:12:34:56"))
	if err := h.run(h.p.Add, "c1", h.conf(`"runtimeConfig":{"mac":"0A:58:0A:00:00:07"}`, prevResult("52:54:00:12:34:56")), ""); err != nil {
		t.Fatal(err)
	}
	if h.fake.MAC("eth0") != "0a:58:0a:00:00:07" || h.resultMAC() != "0a:58:0a:00:00:07" {
		t.Fatalf("requested MAC not applied/normalized: link %s result %s", h.fake.MAC("eth0"), h.resultMAC())
	}
	if !strings.Contains(h.log.String(), "runtimeConfig.mac") {
		t.Fatalf("log line does not say why: %s", h.log.String())
	}
}

func TestAddPassThroughIsVerbatim(t *testing.T) {
	h := newHarness(t, veth("52:54:00:12:34:56"))
	prev := prevResult("52:54:00:12:34:56")
	if err := h.run(h.p.Add, "c1", h.conf("", prev), ""); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(h.stdout.String()) != prev || len(h.fake.Calls) != 0 {
		t.Fatalf("pass-through changed something: calls %v, out %s", h.fake.Calls, h.stdout.String())
	}
}

func TestAddCorrectsResultThatLies(t *testing.T) {
	// The main plugin reported a MAC the interface does not have; the result
	// must tell the truth even though nothing needed changing.
	h := newHarness(t, veth("52:54:00:12:34:56"))
	if err := h.run(h.p.Add, "c1", h.conf("", prevResult("")), ""); err != nil {
		t.Fatal(err)
	}
	if got := h.resultMAC(); got != "52:54:00:12:34:56" {
		t.Fatalf("result MAC %q, want the interface's", got)
	}
	if len(h.fake.Calls) != 0 {
		t.Fatalf("link changed: %v", h.fake.Calls)
	}
}

func TestAddUnsupportedDevices(t *testing.T) {
	ipvlan := veth("52:54:00:12:34:56")
	ipvlan.Kind = link.KindIPVlan
	tun := link.Observed{Name: "eth0", Kind: "tun", EncapType: "none"}
	tests := []struct {
		name   string
		link   link.Observed
		fields string
		want   string
	}{
		{"ipvlan requested", ipvlan, `"mac":"02:00:00:00:00:01"`, "use a macvlan"},
		{"tun requested", tun, `"mac":"02:00:00:00:00:01"`, "no Ethernet address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.link)
			code, msg := cniCode(t, h.run(h.p.Add, "c1", h.conf(tt.fields, prevResult("")), ""))
			if code != ErrCodeUnsupported || !strings.Contains(msg, tt.want) {
				t.Fatalf("code %d msg %q; want %d containing %q", code, msg, ErrCodeUnsupported, tt.want)
			}
			if len(h.fake.Calls) != 0 {
				t.Fatalf("device touched: %v", h.fake.Calls)
			}
		})
	}
	t.Run("tun with assign always is left alone", func(t *testing.T) {
		h := newHarness(t, tun)
		prev := `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"` + nsPath + `"}]}`
		if err := h.run(h.p.Add, "c1", h.conf(`"assign":"always"`, prev), ""); err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(h.stdout.String()) != prev || len(h.fake.Calls) != 0 {
			t.Fatalf("tun touched or result changed: %v %s", h.fake.Calls, h.stdout.String())
		}
	})
}

func TestAddKernelRefusalWithSkip(t *testing.T) {
	// A device that looks ordinary but whose driver refuses MAC changes.
	h := newHarness(t, veth("52:54:00:12:34:56"))
	h.fake.SetErr = link.ErrNotSupported
	prev := prevResult("52:54:00:12:34:56")
	if err := h.run(h.p.Add, "c1", h.conf(`"assign":"always","onUnsupported":"skip"`, prev), ""); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(h.stdout.String()) != prev || len(h.stateFiles()) != 0 {
		t.Fatalf("skip must pass through and leave no state: %s %v", h.stdout.String(), h.stateFiles())
	}
}

func TestAddRollback(t *testing.T) {
	const orig = "52:54:00:12:34:56"
	tests := []struct {
		name     string
		break_   func(h *harness)
		wantCode uint
	}{
		{"link-local swap fails after the change", func(h *harness) { h.fake.SwapErr = errors.New("injected: address add failed") }, types.ErrInternal},
		{"driver keeps its address", func(h *harness) { h.fake.IgnoreSet = true }, ErrCodeRefused},
		{"MAC in use", func(h *harness) { h.fake.SetErr = link.ErrAddrInUse }, ErrCodeAddrInUse},
		{"state cannot be written", func(h *harness) { h.store = failingStore{Store: state.New(h.dataDir)} }, ErrCodeState},
		// A runtime that never read the result sends no DEL for it.
		{"result cannot be printed", func(h *harness) { h.p.Stdout = failingWriter{} }, types.ErrInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, veth(orig))
			tt.break_(h)
			code, msg := cniCode(t, h.run(h.p.Add, "c1", h.conf(`"assign":"always"`, prevResult(orig)), ""))
			if code != tt.wantCode {
				t.Fatalf("code %d, want %d: %s", code, tt.wantCode, msg)
			}
			if got := h.fake.MAC("eth0"); got != orig {
				t.Fatalf("MAC left at %s after failure, want %s restored", got, orig)
			}
			if ll := h.fake.LinkLocal("eth0"); len(ll) != 1 || !ll[0].Equal(macaddr.LinkLocal(macaddr.MustParse(orig))) {
				t.Fatalf("link-local not restored: %v", ll)
			}
			if files := h.stateFiles(); len(files) != 0 {
				t.Fatalf("state left behind: %v", files)
			}
			if h.stdout.Len() != 0 {
				t.Fatalf("a failed ADD printed a result: %s", h.stdout.String())
			}
		})
	}
}

type failingStore struct{ Store }

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("injected: broken pipe") }

func (failingStore) Save(state.Record) error { return errors.New("injected: disk full") }

func TestAddRepeatedKeepsOriginal(t *testing.T) {
	h := newHarness(t, veth("52:54:00:12:34:56"))
	conf := h.conf(`"mac":"02:00:00:00:00:01"`, prevResult("52:54:00:12:34:56"))
	for i := 0; i < 2; i++ {
		if err := h.run(h.p.Add, "c1", conf, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.run(h.p.Add, "c1", h.conf(`"mac":"02:00:00:00:00:02"`, prevResult("52:54:00:12:34:56")), ""); err != nil {
		t.Fatal(err)
	}
	if err := h.run(h.p.Del, "c1", h.conf("", ""), ""); err != nil {
		t.Fatal(err)
	}
	if got := h.fake.MAC("eth0"); got != "52:54:00:12:34:56" {
		t.Fatalf("after repeated ADDs DEL restored %s, want the first original", got)
	}
}

func TestCheck(t *testing.T) {
	const orig = "52:54:00:12:34:56"
	conf := `"mac":"0a:58:0a:bc:de:f1"`
	tests := []struct {
		name     string
		mutate   func(h *harness)
		result   string
		wantCode uint
	}{
		{"passes", nil, "0a:58:0a:bc:de:f1", 0},
		{"upper-case result compares as address", nil, "0A:58:0A:BC:DE:F1", 0},
		{"dash-separated result compares as address", nil, "0a-58-0a-bc-de-f1", 0},
		{"result disagrees", nil, "0a:58:0a:bc:de:f9", ErrCodeCheckMismatch},
		{"drift after ADD", func(h *harness) { h.fake.Links["eth0"].MAC = macaddr.MustParse("02:00:00:00:00:05") }, "", ErrCodeCheckMismatch},
		{"interface gone", func(h *harness) { delete(h.fake.Links, "eth0") }, "0a:58:0a:bc:de:f1", ErrCodeInterfaceNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, veth(orig))
			if err := h.run(h.p.Add, "c1", h.conf(conf, prevResult(orig)), ""); err != nil {
				t.Fatal(err)
			}
			if tt.mutate != nil {
				tt.mutate(h)
			}
			err := h.run(h.p.Check, "c1", h.conf(conf, prevResult(tt.result)), "")
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("CHECK: %v", err)
				}
				return
			}
			if code, msg := cniCode(t, err); code != tt.wantCode {
				t.Fatalf("code %d, want %d: %s", code, tt.wantCode, msg)
			}
		})
	}
}

func TestDel(t *testing.T) {
	const orig = "52:54:00:12:34:56"
	tests := []struct {
		name     string
		mutate   func(h *harness)
		netns    string
		wantMAC  string
		wantCall bool
	}{
		{"restores", nil, nsPath, orig, true},
		{"someone else changed it since", func(h *harness) { h.fake.Links["eth0"].MAC = macaddr.MustParse("02:00:00:00:00:77") }, nsPath, "02:00:00:00:00:77", false},
		{"interface gone", func(h *harness) { delete(h.fake.Links, "eth0") }, nsPath, "", false},
		{"netns gone", nil, "/var/run/netns/gone", "02:00:00:00:00:01", false},
		{"no netns given", nil, "", "02:00:00:00:00:01", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, veth(orig))
			if err := h.run(h.p.Add, "c1", h.conf(`"mac":"02:00:00:00:00:01"`, prevResult(orig)), ""); err != nil {
				t.Fatal(err)
			}
			if tt.mutate != nil {
				tt.mutate(h)
			}
			h.fake.Calls = nil
			for i := 0; i < 2; i++ { // DEL is idempotent
				err := h.p.Del(&skel.CmdArgs{ContainerID: "c1", Netns: tt.netns, IfName: "eth0", StdinData: h.conf("", "")})
				if err != nil {
					t.Fatalf("DEL #%d: %v", i+1, err)
				}
			}
			if l, ok := h.fake.Links["eth0"]; ok && macaddr.String(l.MAC) != tt.wantMAC {
				t.Fatalf("MAC %s after DEL, want %s", macaddr.String(l.MAC), tt.wantMAC)
			}
			if called := len(h.fake.Calls) > 0; called != tt.wantCall {
				t.Fatalf("link calls %v, want calls=%v", h.fake.Calls, tt.wantCall)
			}
			if files := h.stateFiles(); len(files) != 0 {
				t.Fatalf("state left behind: %v", files)
			}
		})
	}
}

func TestDelWithoutStateTouchesNothing(t *testing.T) {
	h := newHarness(t, veth("52:54:00:12:34:56"))
	if err := h.run(h.p.Del, "c1", h.conf("", ""), "MAC=garbage"); err != nil {
		t.Fatalf("DEL with no state (and a bad MAC in CNI_ARGS) must succeed: %v", err)
	}
	if _, err := os.Stat(h.dataDir); !errors.Is(err, os.ErrNotExist) || len(h.fake.Calls) != 0 {
		t.Fatalf("DEL without state created dataDir or touched the link: %v %v", err, h.fake.Calls)
	}
}

func TestGC(t *testing.T) {
	h := newHarness(t, veth("52:54:00:12:34:56"))
	for _, cid := range []string{"live", "stale"} {
		if err := h.run(h.p.Add, cid, h.conf(`"assign":"always"`, prevResult("52:54:00:12:34:56")), ""); err != nil {
			t.Fatal(err)
		}
	}
	gc := h.conf(`"cniVersion":"1.1.0","cni.dev/valid-attachments":[{"containerID":"live","ifname":"eth0"}]`, "")
	gc = bytes.Replace(gc, []byte(`"cniVersion":"1.0.0",`), nil, 1)
	if err := h.p.GC(&skel.CmdArgs{StdinData: gc}); err != nil {
		t.Fatal(err)
	}
	if files := h.stateFiles(); len(files) != 1 || files[0] != testutil.RecordName("reliability", "live", "eth0") {
		t.Fatalf("after GC: %v, want only the live attachment", files)
	}
}

// TestGCWithoutItsLockDoesNothing: GC that cannot take its exclusive lock
// (the lock file replaced by a symlink) removes nothing, since an ADD may
// be writing, and still succeeds: it has nothing to finish.
func TestGCWithoutItsLockDoesNothing(t *testing.T) {
	h := newHarness(t, veth("52:54:00:12:34:56"))
	if err := h.run(h.p.Add, "stale", h.conf(`"assign":"always"`, prevResult("52:54:00:12:34:56")), ""); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(h.dataDir, ".lock")
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent", lock); err != nil {
		t.Fatal(err)
	}
	gc := h.conf(`"cniVersion":"1.1.0","cni.dev/valid-attachments":[]`, "")
	gc = bytes.Replace(gc, []byte(`"cniVersion":"1.0.0",`), nil, 1)
	if err := h.p.GC(&skel.CmdArgs{StdinData: gc}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if files := h.stateFiles(); len(files) != 1 {
		t.Fatalf("GC without its lock removed records: %v", files)
	}
	if !strings.Contains(h.log.String(), "GC: dataDir cannot be locked; nothing done") {
		t.Errorf("GC did not log why it did nothing: %s", h.log.String())
	}
}

func TestErrorsAreCNIErrors(t *testing.T) {
	h := newHarness(t, veth("52:54:00:12:34:56"))
	tests := []struct {
		name  string
		stdin []byte
		netns string
		ifn   string
		code  uint
		want  string
	}{
		{"no prevResult", h.conf("", ""), nsPath, "eth0", types.ErrInvalidNetworkConfig, "prevResult"},
		{"bad prevResult", h.conf("", `{"cniVersion":"1.0.0","interfaces":[],"ips":[{"address":"10.0.0.1/24","interface":2}]}`), nsPath, "eth0", types.ErrInvalidNetworkConfig, "ips[0].interface"},
		{"netns missing", h.conf("", prevResult("")), "/var/run/netns/none", "eth0", types.ErrInvalidEnvironmentVariables, "CNI_NETNS"},
		{"interface missing", h.conf("", prevResult("")), nsPath, "net9", ErrCodeInterfaceNotFound, "it has: eth0"},
		{"logFile dir missing", h.conf(`"logFile":"/nonexistent/dir/mg.log"`, prevResult("")), nsPath, "eth0", types.ErrInvalidNetworkConfig, "logFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.p.Add(&skel.CmdArgs{ContainerID: "c1", Netns: tt.netns, IfName: tt.ifn, StdinData: tt.stdin})
			code, msg := cniCode(t, err)
			if code != tt.code || !strings.Contains(msg, tt.want) {
				t.Fatalf("code %d msg %q; want %d containing %q", code, msg, tt.code, tt.want)
			}
		})
	}
}

type removeFailingStore struct{ Store }

func (removeFailingStore) Remove(state.Key) error {
	return errors.New("injected: read-only file system")
}

// TestRollbackFailureNamesWhatIsLeft: when undoing fails, the message says
// which step, and only that step, could not be undone.
func TestRollbackFailureNamesWhatIsLeft(t *testing.T) {
	const orig = "52:54:00:12:34:56"
	h := newHarness(t, veth(orig))
	h.store = removeFailingStore{Store: state.New(h.dataDir)}
	h.fake.SwapErr = errors.New("injected: address add failed")
	_, msg := cniCode(t, h.run(h.p.Add, "c1", h.conf(`"assign":"always"`, prevResult(orig)), ""))
	if !strings.Contains(msg, "removing the state record") || strings.Contains(msg, "may still have") {
		t.Fatalf("message must name the failed state removal and not claim a MAC is left: %s", msg)
	}
	if got := h.fake.MAC("eth0"); got != orig {
		t.Fatalf("MAC %s, want %s restored", got, orig)
	}
}

// TestAddCanonicalizesReportedMAC: tuning echoes a requested MAC as the user
// wrote it; the result must carry the kernel's lowercase form, or string
// comparing CHECKs further down the chain fail.
func TestAddCanonicalizesReportedMAC(t *testing.T) {
	h := newHarness(t, veth("0a:58:0a:00:05:01"))
	if err := h.run(h.p.Add, "c1", h.conf(`"assign":"never","runtimeConfig":{"mac":"0A:58:0A:00:05:01"}`, prevResult("0A:58:0A:00:05:01")), ""); err != nil {
		t.Fatal(err)
	}
	if got := h.resultMAC(); got != "0a:58:0a:00:05:01" {
		t.Fatalf("result MAC %q, want canonical lowercase", got)
	}
	if len(h.fake.Calls) != 0 {
		t.Fatalf("link changed although it already had the MAC: %v", h.fake.Calls)
	}
}

func TestRequestedMACErrorNamesInterface(t *testing.T) {
	h := newHarness(t, veth("52:54:00:12:34:56"))
	code, msg := cniCode(t, h.run(h.p.Add, "c1", h.conf(`"runtimeConfig":{"mac":"01:00:5e:00:00:01"}`, prevResult("")), ""))
	for _, want := range []string{"runtimeConfig.mac", "01:00:5e:00:00:01", "multicast", `"eth0"`, nsPath} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if code != types.ErrInvalidNetworkConfig || strings.Count(msg, "01:00:5e:00:00:01") != 1 {
		t.Fatalf("code %d, message should name the value once: %s", code, msg)
	}
}

// TestAddAnnouncement: the kernel announces the change when it can be asked
// to (no packet socket, whose close waits for an RCU grace period); when it
// cannot, macguard sends the frames itself; with announce off, neither.
func TestAddAnnouncement(t *testing.T) {
	const orig, want = "52:54:00:12:34:56", "0a:58:0a:00:00:07"
	tests := []struct {
		name      string
		conf      string
		notifyErr error
		want      []string
		logged    string
	}{
		{"kernel announces", "", nil, []string{
			"AnnounceOnChange eth0", "SetMAC eth0 " + want, "KernelAnnounce eth0 " + want,
			"SwapLinkLocal eth0 " + orig + " " + want, "RestoreAnnounce eth0",
		}, `announce=kernel`},
		{"sysctl unavailable: frames sent", "", errors.New("injected: read-only /proc/sys"), []string{
			"AnnounceOnChange eth0", "SetMAC eth0 " + want,
			"SwapLinkLocal eth0 " + orig + " " + want, "Announce eth0 " + want,
		}, `announce=sent`},
		{"announce off", `"announce":false,`, nil, []string{
			"SetMAC eth0 " + want, "SwapLinkLocal eth0 " + orig + " " + want,
		}, `announce=off`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, veth(orig))
			h.fake.NotifyErr = tt.notifyErr
			if err := h.run(h.p.Add, "c1", h.conf(tt.conf+`"mac":"`+want+`"`, prevResult(orig)), ""); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(h.fake.Calls, tt.want) {
				t.Fatalf("calls\n%v\nwant\n%v", h.fake.Calls, tt.want)
			}
			if !strings.Contains(h.log.String(), tt.logged) {
				t.Fatalf("log line lacks %q: %s", tt.logged, h.log.String())
			}
		})
	}
}

// TestAddLogsOneLine: every ADD leaves exactly one line, failures included,
// naming the device (driver from ethtool) and the outcome.
func TestAddLogsOneLine(t *testing.T) {
	const orig = "52:54:00:12:34:56"
	tests := []struct {
		name  string
		links link.Observed
		conf  string
		want  []string
	}{
		{"change", veth(orig), `"mac":"0a:58:0a:00:00:08"`, []string{"level=INFO", `msg=ADD`, "driver mlx5_core", "permMAC=b8:59:9f:00:00:01", "new=0a:58:0a:00:00:08", "announce=kernel"}},
		{"nothing to do", veth(orig), "", []string{"level=INFO", `msg=ADD`, "action=keep", "device=veth "}},
		{"refused", netkit(link.NetkitL3, ""), `"mac":"0a:58:0a:00:00:08"`, []string{"level=ERROR", `msg="ADD failed"`, "netkit (l3 mode)", "error=", "netkit-l2"}},
		{"in use", veth(orig), `"mac":"0a:58:0a:00:00:09"`, []string{"level=ERROR", `msg="ADD failed"`, "in use"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// What ethtool would say of a VF: only Identify reports it.
			l := tt.links
			l.Driver, l.PermMAC = "mlx5_core", macaddr.MustParse("b8:59:9f:00:00:01")
			h := newHarness(t, l)
			if tt.name == "in use" {
				h.fake.SetErr = fmt.Errorf("cannot set MAC: %w", link.ErrAddrInUse)
			}
			_ = h.run(h.p.Add, "c1", h.conf(tt.conf, prevResult(orig)), "")
			lines := strings.Split(strings.TrimSpace(h.log.String()), "\n")
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1:\n%s", len(lines), h.log.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("log line lacks %q: %s", w, lines[0])
				}
			}
		})
	}
}

// TestOneEntryIntoTheNamespace: every command does its link work in one
// entry into the pod's namespace, whatever it does there.
func TestOneEntryIntoTheNamespace(t *testing.T) {
	const orig = "52:54:00:12:34:56"
	tests := []struct {
		name   string
		fields string
		prev   string
		// DEL has nothing to restore, and so no reason to enter, without
		// a record.
		delEntries int
	}{
		{"pass-through", "", prevResult(orig), 0},
		{"change", `"assign":"always"`, prevResult(orig), 1},
		{"change with announce off", `"assign":"always","announce":false`, prevResult(orig), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, veth(orig))
			if err := h.run(h.p.Add, "c1", h.conf(tt.fields, tt.prev), ""); err != nil {
				t.Fatal(err)
			}
			if h.fake.Entered != 1 || h.fake.Outside != 0 {
				t.Errorf("ADD entered the namespace %d times and made %d link calls outside it, want 1 and 0 (calls %v)", h.fake.Entered, h.fake.Outside, h.fake.Calls)
			}
			result := strings.TrimSpace(h.stdout.String())
			h.fake.Entered = 0
			if err := h.run(h.p.Check, "c1", h.conf(tt.fields, result), ""); err != nil {
				t.Fatal(err)
			}
			if h.fake.Entered != 1 || h.fake.Outside != 0 {
				t.Errorf("CHECK entered the namespace %d times and made %d link calls outside it, want 1 and 0", h.fake.Entered, h.fake.Outside)
			}
			h.fake.Entered = 0
			if err := h.run(h.p.Del, "c1", h.conf(tt.fields, result), ""); err != nil {
				t.Fatal(err)
			}
			if h.fake.Entered != tt.delEntries || h.fake.Outside != 0 {
				t.Errorf("DEL entered the namespace %d times and made %d link calls outside it, want %d and 0", h.fake.Entered, h.fake.Outside, tt.delEntries)
			}
			if got := h.fake.MAC("eth0"); got != orig {
				t.Errorf("MAC %s after DEL, want %s back", got, orig)
			}
		})
	}
}

// TestRestoringTheAnnounceSwitchesIsReported: putting arp_notify and
// ndisc_notify back can fail too. When the change itself failed, that
// error must reach the caller with the change's; when the change worked,
// the log line says the switches were left on.
func TestRestoringTheAnnounceSwitchesIsReported(t *testing.T) {
	const orig = "52:54:00:12:34:56"
	t.Run("change failed", func(t *testing.T) {
		h := newHarness(t, veth(orig))
		h.fake.SetErr = fmt.Errorf("cannot set MAC: %w", link.ErrAddrInUse)
		h.fake.RestoreErr = errors.New("injected: /proc/sys is read-only now")
		code, msg := cniCode(t, h.run(h.p.Add, "c1", h.conf(`"assign":"always"`, prevResult(orig)), ""))
		if code != ErrCodeAddrInUse {
			t.Fatalf("code %d, want %d (the change's own error): %s", code, ErrCodeAddrInUse, msg)
		}
		for _, want := range []string{"in use", "putting back arp_notify/ndisc_notify", "/proc/sys is read-only now"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message lacks %q: %s", want, msg)
			}
		}
		if files := h.stateFiles(); len(files) != 0 {
			t.Fatalf("state left behind: %v", files)
		}
	})
	t.Run("change made", func(t *testing.T) {
		h := newHarness(t, veth(orig))
		h.fake.RestoreErr = errors.New("injected: /proc/sys is read-only now")
		if err := h.run(h.p.Add, "c1", h.conf(`"assign":"always"`, prevResult(orig)), ""); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(h.log.String(), "announceRestoreError=") || !strings.Contains(h.log.String(), "read-only now") {
			t.Fatalf("log line does not report the switches left on: %s", h.log.String())
		}
		if got := h.fake.MAC("eth0"); got == orig {
			t.Fatal("a failed restore of the switches undid a change that worked")
		}
	})
}

// TestAddOverCorruptRecord: records are written without fsync (a record dies
// with its netns, and no netns survives a crash), so what a crash can leave
// in a dataDir on disk, an empty or cut-short file, must be as harmless as
// no file: ADD writes its own record over it, DEL then restores from that.
func TestAddOverCorruptRecord(t *testing.T) {
	const orig = "52:54:00:12:34:56"
	for name, content := range map[string]string{
		"empty":     "",
		"cut short": `{"version":2,"network":"reliability","containerID":"c1","ifName":"eth0","originalMAC":"52:54:`,
		"zeros":     "\x00\x00\x00\x00",
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, veth(orig))
			if err := os.MkdirAll(h.dataDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(h.dataDir, testutil.RecordName("reliability", "c1", "eth0")), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := h.run(h.p.Add, "c1", h.conf(`"assign":"always"`, prevResult(orig)), ""); err != nil {
				t.Fatalf("ADD over a corrupt record: %v", err)
			}
			if !strings.Contains(h.log.String(), "replacedCorruptRecord=") {
				t.Errorf("the log line does not say a corrupt record was replaced: %s", h.log.String())
			}
			if got := h.fake.MAC("eth0"); got == orig {
				t.Fatal("ADD did not change the MAC")
			}
			if err := h.run(h.p.Del, "c1", h.conf("", ""), ""); err != nil {
				t.Fatal(err)
			}
			if got := h.fake.MAC("eth0"); got != orig {
				t.Fatalf("DEL restored %s, want %s from the record ADD wrote", got, orig)
			}
			if files := h.stateFiles(); len(files) != 0 {
				t.Fatalf("state left behind: %v", files)
			}
		})
	}
}

// secondSetFails is a link layer whose SetMAC works once and then reports
// that the device refuses MAC changes, the way a rollback can meet it.
type secondSetFails struct {
	link.Netns
	sets int
}

func (s *secondSetFails) SetMAC(ifName string, mac net.HardwareAddr) error {
	if s.sets++; s.sets > 1 {
		return fmt.Errorf("injected: %w", link.ErrNotSupported)
	}
	return s.Netns.SetMAC(ifName, mac)
}

// TestSkipOnlyForTheChangeItself: onUnsupported=skip passes the result
// through when the device refused the MAC and nothing is left to undo. An
// ErrNotSupported met while undoing a later failure is not that: the MAC is
// still changed, so ADD must fail and say so rather than report success.
func TestSkipOnlyForTheChangeItself(t *testing.T) {
	const orig = "52:54:00:12:34:56"
	h := newHarness(t, veth(orig))
	h.fake.SwapErr = errors.New("injected: address add failed")
	open := h.p.Open
	h.p.Open = func(path string) (link.Netns, error) {
		n, err := open(path)
		if err != nil {
			return nil, err
		}
		return &secondSetFails{Netns: n}, nil
	}
	err := h.run(h.p.Add, "c1", h.conf(`"assign":"always","onUnsupported":"skip"`, prevResult(orig)), "")
	if err == nil {
		t.Fatalf("ADD succeeded with the MAC left at %s and result %s", h.fake.MAC("eth0"), h.stdout.String())
	}
	_, msg := cniCode(t, err)
	for _, want := range []string{"address add failed", "rolling back", "restoring MAC " + orig} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if h.stdout.Len() != 0 {
		t.Fatalf("a failed ADD printed a result: %s", h.stdout.String())
	}
}
