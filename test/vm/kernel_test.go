package vm

import (
	"testing"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// requireKernel skips the test (on the host) or fails it (in the VM) when
// the running kernel cannot create one of the device kinds.
func requireKernel(t *testing.T, need ...string) {
	t.Helper()
	testutil.RequireKernel(t, "make test-vm-boot", need...)
}
