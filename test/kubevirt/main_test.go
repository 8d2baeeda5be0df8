// Package kubevirt runs KubeVirt's own network code (kubevirt.io/kubevirt,
// imported as a library at the version hack/mk/kubevirt.mk pins) on pod
// interfaces made the way users make them: a virt-launcher pod's sandbox
// wired by a real main plugin chained with macguard through cnitool
// (libcni), in network namespaces the tests create. What KubeVirt derives
// from that interface is what a VM's NIC gets: the MAC in the libvirt
// domain (masquerade binding, binding plugins on a tap) or the MAC virt-
// handler caches for the domain and the dummy that keeps it (bridge
// binding). libvirt's own parser (`virsh -c test:///default define`)
// judges the domain.
//
// It is its own Go module, so KubeVirt's ~240 packages never enter the main
// module's go.mod; hack/kubevirt/prepare.sh makes KubeVirt's module usable
// as a dependency (see its header).
//
// `make test-kubevirt` runs it on this machine's kernel and again inside
// the VM suite's QEMU guest (Debian's 6.12 kernel: netkit, dummy), where
// MACGUARD_VM=1 turns every skip into a failure.
//
// KUBEVIRT_CHAIN_WITHOUT_MACGUARD=1 leaves macguard out of every chain:
// each test that says what macguard gives a VM must then fail. That is how
// the assertions were seen to fail (docs/kubevirt.md).
package kubevirt

import (
	"fmt"
	"os"
	"testing"

	dutils "kubevirt.io/kubevirt/pkg/ephemeral-disk-utils"

	"github.com/macguard-cni/macguard/internal/testutil"
)

const (
	// envWithoutMacguard leaves macguard out of the chains, to see the
	// tests fail without it.
	envWithoutMacguard = "KUBEVIRT_CHAIN_WITHOUT_MACGUARD"
	// envBinDir names a directory with cnitool and the reference plugins
	// (the VM suite's /opt/cni/bin); unset, testutil finds `make tools`'
	// ones.
	envBinDir = "VMTEST_BIN_DIR"
)

// vmSuite is the command that runs the suite on a kernel with every device
// it needs, for the skip messages.
const vmSuite = "make test-kubevirt-vm"

func withoutMacguard() bool { return os.Getenv(envWithoutMacguard) == "1" }

func TestMain(m *testing.M) {
	where := "host"
	if testutil.InVM() {
		where = "VM (no test may skip)"
	}
	chain := "main plugin + macguard"
	if withoutMacguard() {
		chain = "main plugin only (" + envWithoutMacguard + "=1: the tests that need macguard must fail)"
	}
	// virt-handler hands its cache files to the launcher's qemu user; here
	// they live in the tests' own directories, and the machine (or the VM
	// suite's guest) has no such user. KubeVirt's own tests do the same.
	dutils.MockDefaultOwnershipManager()
	fmt.Printf("kubevirt: kernel %s on the %s; chains: %s\n", testutil.KernelRelease(), where, chain)
	os.Exit(m.Run())
}
