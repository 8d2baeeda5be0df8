package kubevirt

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/macguard-cni/macguard/internal/testutil"
)

const (
	vmNamespace = "vms"
	cniVersion  = "1.1.0"
)

// node is one simulated node (testutil's Node: its own netns, dataDir and
// log) with one conflist, run by the real cnitool inside the node's netns
// as a runtime on that node would.
type node struct {
	*testutil.Node
	chain string
	tool  *testutil.CNITool
}

// newNode writes a conflist named chain: main (the main plugin's entry,
// its IPAM host-local in the node's directory) chained with macguard
// configured by fields, or main alone under KUBEVIRT_CHAIN_WITHOUT_MACGUARD=1.
func newNode(t *testing.T, chain string, main map[string]any, macguard map[string]any) *node {
	t.Helper()
	n := &node{Node: testutil.NewNode(t), chain: chain}
	if _, ok := main["ipam"]; !ok {
		main["ipam"] = n.HostLocal("10.99.0.0/24")
	}
	plugins := []map[string]any{main}
	if !withoutMacguard() {
		plugins = append(plugins, n.MacguardEntry(macguard))
	}
	n.WriteConfList(t, map[string]any{"cniVersion": cniVersion, "name": chain, "plugins": plugins})
	n.tool = n.CNITool(cnitool(t), pluginDir(t))
	return n
}

// cnitool is the pinned cnitool: the VM suite's in $VMTEST_BIN_DIR, else
// the one `make tools` installs (testutil.CNIToolBinary).
func cnitool(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv(envBinDir); dir != "" {
		return mustExist(t, filepath.Join(dir, "cnitool"))
	}
	return testutil.CNIToolBinary(t)
}

// pluginDir is a CNI_PATH holding the chain's plugins under the names a
// conflist uses, wherever the binaries were built: the reference plugins
// (bridge, host-local), the netkit-cni fixture in the VM, and macguard.
func pluginDir(t *testing.T) string {
	t.Helper()
	src := os.Getenv(envBinDir)
	if src == "" {
		src = testutil.ReferencePluginDir(t)
	}
	dir := t.TempDir()
	links := map[string]string{"macguard": testutil.PluginBinary(t)}
	for _, p := range []string{"bridge", "host-local", "netkit-cni"} {
		if _, err := os.Stat(filepath.Join(src, p)); err == nil {
			links[p] = filepath.Join(src, p)
		}
	}
	for name, path := range links {
		if err := os.Symlink(path, filepath.Join(dir, name)); err != nil {
			t.Fatalf("linking %s into CNI_PATH: %v", name, err)
		}
	}
	return dir
}

func mustExist(t *testing.T, p string) string {
	t.Helper()
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%v: the harness (make test-kubevirt) builds it", err)
	}
	return p
}

// launcher is one virt-launcher pod of a VM: its own sandbox netns (a new
// one per pod, so a new container ID, as a runtime gives a new sandbox)
// and what the chain's ADD printed.
type launcher struct {
	vm, pod string
	ns      ns.NetNS
	result  []byte
}

// startLauncher runs the chain's ADD for pod virt-launcher-<vm>-<suffix>
// in a new sandbox, with the CNI_ARGS a kubelet passes, and fails the test
// when it fails. The sandbox is deleted (DEL first) when the test ends.
func (n *node) startLauncher(t *testing.T, vm, suffix string) *launcher {
	t.Helper()
	l := &launcher{vm: vm, pod: "virt-launcher-" + vm + "-" + suffix, ns: testutil.NewNetns(t)}
	call := n.call(l)
	l.result = n.tool.Must(t, "add", n.chain, l.ns.Path(), call)
	t.Cleanup(func() {
		if run, err := n.tool.Exec("del", n.chain, l.ns.Path(), call); err != nil || run.Err != nil {
			t.Errorf("DEL of %s at cleanup: %v %v", l.pod, err, run)
		}
	})
	return l
}

func (n *node) call(l *launcher) testutil.Call {
	cid := testutil.CNIToolContainerID(l.ns.Path())
	return testutil.Call{IfName: "eth0", CNIArgs: testutil.PodArgs(vmNamespace, l.pod, cid, "uid-"+l.pod)}
}

// vmMAC is the MAC macguardctl promises the VM's pod interface: the
// operator's pre-registration command, `macguardctl mac --vm`.
func vmMAC(t *testing.T, vm string) string {
	t.Helper()
	return testutil.DerivedMAC(t, "--namespace", vmNamespace, "--vm", vm, "--ifname", "eth0")
}
