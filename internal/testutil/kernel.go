package testutil

// Which device kinds the running kernel can create: the real-kernel suites
// (test/vm, test/kubevirt) run on this machine's kernel, where a test that
// needs a device the kernel lacks skips and says which, and inside the VM
// suite's guest (MACGUARD_VM=1), where nothing may skip.

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// EnvVM is set to 1 by the VM suite's /init (hack/vmtest/init): inside the
// guest every device kind exists and no test may skip.
const EnvVM = "MACGUARD_VM"

// InVM reports whether the suite runs inside the VM suite's guest.
func InVM() bool { return os.Getenv(EnvVM) == "1" }

// KernelRelease is the running kernel's release, "unknown" if uname fails.
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// A device kind the tests need, how to create one for the probe, and the
// kernel option that provides it (for the skip message).
type deviceKind struct {
	name, config string
	create       func() error
}

var kinds = map[string]deviceKind{
	"veth": {"veth", "CONFIG_VETH", addProbeVeth},
	"dummy": {"dummy", "CONFIG_DUMMY", func() error {
		return netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}})
	}},
	"bridge": {"bridge", "CONFIG_BRIDGE", func() error {
		return netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}})
	}},
	"netkit": {"netkit", "CONFIG_NETKIT, Linux >= 6.7", func() error {
		nk := &netlink.Netkit{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}, Mode: netlink.NETKIT_MODE_L3}
		nk.SetPeerAttrs(&netlink.LinkAttrs{Name: "probe1"})
		return netlink.LinkAdd(nk)
	}},
	"macvlan": {"macvlan", "CONFIG_MACVLAN", func() error {
		return withParent(func(parent int) error {
			return netlink.LinkAdd(&netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "probe2", ParentIndex: parent}, Mode: netlink.MACVLAN_MODE_BRIDGE})
		})
	}},
	"ipvlan": {"ipvlan", "CONFIG_IPVLAN", func() error {
		return withParent(func(parent int) error {
			return netlink.LinkAdd(&netlink.IPVlan{LinkAttrs: netlink.LinkAttrs{Name: "probe2", ParentIndex: parent}, Mode: netlink.IPVLAN_MODE_L2})
		})
	}},
}

func addProbeVeth() error {
	return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}, PeerName: "probe1"})
}

// withParent gives a probe a veth to stack on; macvlan and ipvlan need a
// parent with a link layer.
func withParent(f func(parent int) error) error {
	if err := addProbeVeth(); err != nil {
		return fmt.Errorf("creating the veth parent: %w", err)
	}
	p, err := netlinksafe.LinkByName("probe0")
	if err != nil {
		return err
	}
	return f(p.Attrs().Index)
}

var (
	probeMu   sync.Mutex
	probed    = map[string]error{} // nil: supported; errAbsent-wrapped: absent
	errAbsent = errors.New("device kind not available in this kernel")
)

// probe creates one device of the kind in a scratch namespace. The kernel
// answers EOPNOTSUPP when no driver registers the kind (after trying to
// load its module); any other error is a real failure, not a missing
// feature.
func probe(kind string) error {
	probeMu.Lock()
	defer probeMu.Unlock()
	if err, ok := probed[kind]; ok {
		return err
	}
	k, ok := kinds[kind]
	if !ok {
		return fmt.Errorf("no probe for device kind %q", kind)
	}
	scratch, err := testutils.NewNS()
	if err != nil {
		return fmt.Errorf("creating a scratch netns to probe %s: %w", kind, err)
	}
	defer func() {
		// A probe's leftover: nothing to report about removing it.
		_ = scratch.Close()
		_ = testutils.UnmountNS(scratch)
	}()
	err = scratch.Do(func(ns.NetNS) error { return k.create() })
	switch {
	case err == nil:
	case errors.Is(err, unix.EOPNOTSUPP):
		err = fmt.Errorf("%w: creating a %s device: %v", errAbsent, kind, err)
	default:
		// Not cached: a transient failure should not decide other tests.
		return fmt.Errorf("probing %s: %w", kind, err)
	}
	probed[kind] = err
	return err
}

// RequireKernel skips the test (on the host) or fails it (in the VM, InVM)
// when the running kernel cannot create one of the device kinds (veth,
// dummy, bridge, netkit, macvlan, ipvlan). where names the command that
// runs the test on a kernel that has them, for the skip message.
func RequireKernel(t testing.TB, where string, need ...string) {
	t.Helper()
	for _, kind := range need {
		err := probe(kind)
		if err == nil {
			continue
		}
		if !errors.Is(err, errAbsent) {
			t.Fatal(err)
		}
		if InVM() {
			t.Fatalf("kernel %s has no %s device (%s) inside the VM, where nothing may skip: %v",
				KernelRelease(), kind, kinds[kind].config, err)
		}
		t.Skipf("kernel %s has no %s device (needs %s); `%s` runs this test on a kernel that has it",
			KernelRelease(), kind, kinds[kind].config, where)
	}
}
