package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// VirshDefine has libvirt parse a domain (`virsh -c test:///default
// define`, libvirt's test driver: no daemon, nothing defined outside the
// virsh process) and returns what virsh printed and whether it accepted
// the domain. virsh missing fails the test: libvirt's verdict is the
// point.
func VirshDefine(t testing.TB, domXML []byte) (string, bool) {
	t.Helper()
	virsh, err := exec.LookPath("virsh")
	if err != nil {
		t.Fatalf("virsh not found (Debian package libvirt-clients; hack/kubevirt/prepare.sh packages installs it): %v", err)
	}
	f := filepath.Join(t.TempDir(), "domain.xml")
	if err := os.WriteFile(f, domXML, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(virsh, "-q", "-c", "test:///default", "define", f).CombinedOutput()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("running virsh: %v", err)
	}
	return strings.TrimSpace(string(out)), err == nil
}
