package kubevirt

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	vishnetlink "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	k8stypes "k8s.io/apimachinery/pkg/types"
	v1 "kubevirt.io/api/core/v1"
	"kubevirt.io/kubevirt/pkg/libvmi"
	"kubevirt.io/kubevirt/pkg/network/cache"
	netdriver "kubevirt.io/kubevirt/pkg/network/driver"
	"kubevirt.io/kubevirt/pkg/network/driver/ethtool"
	kvnetlink "kubevirt.io/kubevirt/pkg/network/driver/netlink"
	"kubevirt.io/kubevirt/pkg/network/driver/nmstate"
	"kubevirt.io/kubevirt/pkg/network/driver/procsys"
	"kubevirt.io/kubevirt/pkg/network/link"
	netsetup "kubevirt.io/kubevirt/pkg/network/setup"
	"kubevirt.io/kubevirt/pkg/network/setup/netpod"
	kfs "kubevirt.io/kubevirt/pkg/os/fs"
	"kubevirt.io/kubevirt/pkg/virt-launcher/virtwrap/converter"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// tempCache roots KubeVirt's network caches (virt-handler's pod interface
// state, the domain interface data it leaves for virt-launcher) in a test
// directory instead of /var/run/kubevirt*, as KubeVirt's own tests do.
type tempCache struct{ dir string }

func (c tempCache) New(p string) *cache.Cache {
	return cache.NewCustomCache(filepath.Join(c.dir, p), kfs.New())
}

// podNS runs KubeVirt's pod network code inside the sandbox: virt-handler
// enters the launcher's netns by PID (netns.New(pid)); the test has the
// netns itself.
type podNS struct{ ns.NetNS }

func (p podNS) Do(f func() error) error { return p.NetNS.Do(func(ns.NetNS) error { return f() }) }

// handlerDriver is virt-handler's own nmstate driver (KubeVirt's netlink,
// ethtool and procsys drivers) except for creating the tap: virt-handler
// runs the virt-chroot binary of its image for that (`virt-chroot
// create-tap`, which also applies the launcher's SELinux label), so here
// the tap is created directly, with the flags virt-chroot uses.
type handlerDriver struct {
	kvnetlink.NetLink
	ethtool.Ethtool
	procsys.ProcSys
}

func (handlerDriver) AddTapDeviceWithSELinuxLabel(name string, mtu, queues, ownerID, _ int) error {
	tap := &vishnetlink.Tuntap{LinkAttrs: vishnetlink.LinkAttrs{Name: name, MTU: mtu}, Mode: unix.IFF_TAP,
		Owner: uint32(ownerID), Group: uint32(ownerID), Flags: vishnetlink.TUNTAP_DEFAULTS}
	if queues > 1 {
		tap.Flags = vishnetlink.TUNTAP_MULTI_QUEUE_DEFAULTS
	}
	return vishnetlink.LinkAdd(tap)
}

// bridgeVMI is a VMI with one bridge-binding interface on the pod network.
func bridgeVMI(vm string) *v1.VirtualMachineInstance {
	vmi := libvmi.New(libvmi.WithName(vm), libvmi.WithNamespace(vmNamespace),
		libvmi.WithInterface(libvmi.InterfaceDeviceWithBridgeBinding(v1.DefaultPodNetwork().Name)),
		libvmi.WithNetwork(v1.DefaultPodNetwork()), libvmi.WithResourceMemory("64Mi"))
	vmi.UID = k8stypes.UID("uid-" + vm)
	return vmi
}

// virtHandlerSetup is what virt-handler does for a VMI before virt-launcher
// starts the domain: KubeVirt's NetPod (the entry point of its network
// setup, netpod.NewNetPod(...).Setup()) discovers the pod interface and
// builds the binding's layout; for bridge binding it resolves the VM's MAC
// and caches it for the domain. It returns the cache.
func virtHandlerSetup(t *testing.T, vmi *v1.VirtualMachineInstance, l *launcher) tempCache {
	t.Helper()
	c := tempCache{dir: t.TempDir()}
	stateCache := netsetup.NewConfigStateCache(string(vmi.UID), c)
	ownerID, _ := strconv.Atoi(netdriver.LibvirtUserAndGroupId)
	np := netpod.NewNetPod(vmi.Spec.Networks, vmi.Spec.Domain.Devices.Interfaces, string(vmi.UID),
		os.Getpid(), ownerID, int(converter.NetworkQueuesCapacity(vmi)),
		netpod.NewState(&stateCache, podNS{l.ns}),
		netpod.WithCacheCreator(c),
		netpod.WithNMStateAdapter(nmstate.New(nmstate.WithAdapter(handlerDriver{}))))
	if err := np.Setup(); err != nil {
		t.Fatalf("%s: KubeVirt's NetPod.Setup: %v", l.pod, err)
	}
	return c
}

type podLink struct {
	kind, mac, master string
}

func readPodLinks(t *testing.T, l *launcher) map[string]podLink {
	t.Helper()
	links := map[string]podLink{}
	testutil.InNetns(t, l.ns, func() error {
		all, err := netlinksafe.LinkList()
		if err != nil {
			return err
		}
		byIndex := map[int]string{}
		for _, k := range all {
			byIndex[k.Attrs().Index] = k.Attrs().Name
		}
		for _, k := range all {
			a := k.Attrs()
			links[a.Name] = podLink{kind: k.Type(), mac: macOf(a.HardwareAddr), master: byIndex[a.MasterIndex]}
		}
		return nil
	})
	return links
}

func macOf(hw net.HardwareAddr) string {
	if len(hw) == 0 {
		return ""
	}
	return hw.String()
}

// A VM on bridge binding, primary network, veth from the bridge plugin
// chained with macguard (assign: always). KubeVirt's own setup resolves the
// MAC macguard gave the pod interface as the VM's MAC and lays the pod out
// its surprising way: the veth renamed eth0-nic, enslaved to the bridge
// k6t-eth0 and given the bridge's MAC (so no longer macguard's); a tap for QEMU; a dummy named eth0
// keeping macguard's MAC and the pod's addresses. virt-launcher's domain
// then carries macguard's MAC (read from that dummy) and libvirt accepts it.
func TestBridgeBindingKeepsTheDerivedMAC(t *testing.T) {
	testutil.RequireKernel(t, vmSuite, "veth", "bridge", "dummy")
	const vm = "vm4"
	n := newNode(t, "pods", bridgeMain(), map[string]any{"assign": "always"})
	want := vmMAC(t, vm)
	l := n.startLauncher(t, vm, "abcde")
	vmi := bridgeVMI(vm)
	c := virtHandlerSetup(t, vmi, l)

	iface, err := cache.ReadDomainInterfaceCache(c, strconv.Itoa(os.Getpid()), vmi.Spec.Domain.Devices.Interfaces[0].Name)
	if err != nil {
		t.Fatalf("reading the domain interface data KubeVirt cached: %v", err)
	}
	if iface.MAC == nil || iface.MAC.MAC != want {
		t.Errorf("KubeVirt resolved the VM's MAC as %+v, want %s (macguardctl mac --vm %s)", iface.MAC, want, vm)
	}

	bridge, nic, tap := link.GenerateBridgeName("eth0"), link.GenerateNewBridgedVmiInterfaceName("eth0"),
		link.GenerateTapDeviceName("eth0", vmi.Spec.Networks[0])
	links := readPodLinks(t, l)
	if got := links["eth0"]; got.kind != "dummy" || got.mac != want {
		t.Errorf("eth0 after KubeVirt's setup is %+v, want a dummy with %s", got, want)
	}
	// KubeVirt copies the bridge's MAC onto the veth when it enslaves it;
	// the bridge's own MAC may move afterwards (a bridge without a set
	// address follows its lowest port), so only "not macguard's" is stable.
	if got := links[nic]; got.kind != "veth" || got.master != bridge || got.mac == want {
		t.Errorf("%s is %+v, want the veth enslaved to %s, with a MAC other than the VM's %s", nic, got, bridge, want)
	}
	if got := links[tap]; got.kind != "tuntap" || got.master != bridge {
		t.Errorf("%s is %+v, want a tap on %s", tap, got, bridge)
	}

	d := launcherDomain(t, vmi, l.ns)
	if macs := domainMACs(d); len(macs) != 1 || macs[0] != want {
		t.Errorf("KubeVirt's domain has interface MACs %q, want [%s]", macs, want)
	}
	if out, ok := testutil.VirshDefine(t, domainXML(t, d)); !ok {
		t.Errorf("libvirt refused the domain: %s", out)
	}
}

// macguard's CHECK and DEL on KubeVirt's bridge-binding layout, where the
// name the runtime gave (eth0) is now KubeVirt's dummy holding the VM's MAC
// and the veth macguard configured is eth0-nic. Decided (README, "KubeVirt"):
// CHECK passes, because what it asserts (eth0 carries the MAC the result
// reports, the one the policy wants) is exactly the VM's MAC, which the
// dummy keeps; DEL succeeds and forgets the attachment, putting the
// original MAC on the dummy that still has macguard's (harmless: the sandbox
// is being torn down and the main plugin's DEL removes eth0 next), and
// never touches eth0-nic, which no longer has macguard's MAC.
func TestBridgeBindingLayoutCheckAndDel(t *testing.T) {
	testutil.RequireKernel(t, vmSuite, "veth", "bridge", "dummy")
	if withoutMacguard() {
		t.Fatalf("%s=1: this test runs macguard's CHECK and DEL itself; there is no chain without macguard to test", envWithoutMacguard)
	}
	const vm = "vm5"
	n := newNode(t, "pods", bridgeMain(), map[string]any{"assign": "always"})
	want := vmMAC(t, vm)
	l := n.startLauncher(t, vm, "abcde")
	virtHandlerSetup(t, bridgeVMI(vm), l)
	nicBefore := readPodLinks(t, l)[link.GenerateNewBridgedVmiInterfaceName("eth0")]

	call := n.call(l)
	env := func(cmd string) testutil.Env {
		return testutil.Env{Command: cmd, ContainerID: testutil.CNIToolContainerID(l.ns.Path()),
			Netns: l.ns.Path(), IfName: "eth0", Args: call.CNIArgs}
	}
	// The runtime's CHECK and DEL carry the network's name: macguard's
	// records belong to a network (the one cnitool's ADD ran as).
	conf, err := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": n.chain, "type": "macguard",
		"dataDir": n.DataDir, "assign": "always", "logFile": n.LogFile, "prevResult": json.RawMessage(l.result)})
	if err != nil {
		t.Fatal(err)
	}

	if _, stderr, cniErr := testutil.Run(t, testutil.PluginBinary(t), env("CHECK"), conf); cniErr != nil {
		t.Errorf("macguard CHECK on KubeVirt's layout: %v (stderr %s)", cniErr, stderr)
	}
	if recs := n.Records(t); len(recs) != 1 {
		t.Fatalf("before DEL macguard holds records %q, want the attachment's one", recs)
	}
	if _, stderr, cniErr := testutil.Run(t, testutil.PluginBinary(t), env("DEL"), conf); cniErr != nil {
		t.Errorf("macguard DEL on KubeVirt's layout: %v (stderr %s)", cniErr, stderr)
	}
	if recs := n.Records(t); len(recs) != 0 {
		t.Errorf("after DEL macguard still holds records %q", recs)
	}
	links := readPodLinks(t, l)
	if got := links["eth0"]; got.kind != "dummy" || got.mac == want {
		t.Errorf("after DEL eth0 is %+v; want KubeVirt's dummy with the original MAC back, not %s", got, want)
	}
	if got := links[link.GenerateNewBridgedVmiInterfaceName("eth0")]; got != nicBefore {
		t.Errorf("DEL changed eth0-nic: %+v, was %+v", got, nicBefore)
	}
	if _, _, cniErr := testutil.Run(t, testutil.PluginBinary(t), env("DEL"), conf); cniErr != nil {
		t.Errorf("a second DEL: %v", cniErr)
	}
}
