// Package vm is the real-kernel matrix: macguard chained after real netkit
// (L3 and L2), ipvlan, dummy, macvlan and veth devices, driven as a runtime
// drives it (the plugin binary with CNI_* variables and a config with
// prevResult on stdin, or cnitool through libcni), with every MAC read back
// from the kernel inside the pod's network namespace.
//
// hack/vmtest/run.sh runs it twice: on this machine's kernel, where a test
// that needs a device the kernel lacks skips and says which, and inside a
// QEMU VM on a kernel that has them all, where MACGUARD_VM=1 turns every
// such skip into a failure.
//
// Everything happens in network namespaces the tests create: a "node"
// namespace where plugins run and host-side devices live, and one "pod"
// namespace per sandbox. No device is created in the namespace the test
// binary starts in.
package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// envBinDir names the directory with netkit-cni, cnitool and the reference
// plugins (host-local, ipvlan, macvlan).
const envBinDir = "VMTEST_BIN_DIR"

func TestMain(m *testing.M) {
	where := "host"
	if testutil.InVM() {
		where = "VM (no test may skip)"
	}
	fmt.Printf("vmtest: kernel %s, running on the %s\n", testutil.KernelRelease(), where)
	os.Exit(m.Run())
}

// tool returns the path of a helper binary built by hack/vmtest/run.sh. A
// missing binary is a broken harness, never a reason to skip.
func tool(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv(envBinDir)
	if dir == "" {
		root, err := testutil.RepoRoot()
		if err != nil {
			t.Fatalf("%s is unset and the repository root is unknown: %v", envBinDir, err)
		}
		dir = filepath.Join(root, ".cache", "vmtest", "bin")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s missing (%v): run the suite through `make test-vm-host` / hack/vmtest/run.sh, which builds it, or set %s", name, err, envBinDir)
	}
	return p
}
