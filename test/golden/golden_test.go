// Package golden holds the derived MACs of pkg/macaddr/derive_test.go to an
// independent implementation: derive.py, Python's hashlib over the
// derivation as the README describes it. The Go tests pin the code to the
// table; this pins the table to the description, so a change to the code
// and its table together still fails here.
package golden

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const table = "../../pkg/macaddr/derive_test.go"

// runScript runs derive.py on the file of golden tables at path and
// returns its output and exit code.
func runScript(t *testing.T, path string) (string, int) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is not in PATH; `make test-golden` installs it")
	}
	out, err := exec.Command(py, "derive.py", path).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("running derive.py: %v", err)
	}
	return string(out), 0
}

// TestGoldenTablesAgree: every vector of both golden tables, Derive's and
// DeriveVMInterface's, is what the independent implementation computes,
// and it read as many vectors as the file holds.
func TestGoldenTablesAgree(t *testing.T) {
	src, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	out, code := runScript(t, table)
	if code != 0 {
		t.Fatalf("derive.py exited %d:\n%s", code, out)
	}
	want := len(regexp.MustCompile(`(?m)^\t\t\{Input\{`).FindAll(src, -1))
	m := regexp.MustCompile(`^(\d+) golden vectors agree .*TestDeriveGolden (\d+), TestDeriveVMInterfaceGolden (\d+)\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("derive.py's summary is not understood:\n%s", out)
	}
	if n, _ := strconv.Atoi(m[1]); n != want || m[2] == "0" || m[3] == "0" {
		t.Fatalf("derive.py checked %s vectors (Derive %s, DeriveVMInterface %s); %s holds %d", m[1], m[2], m[3], table, want)
	}
	t.Log(strings.TrimSpace(out))
}

// TestChangedEntryFails: the check can fail. A copy of the table with one
// entry changed (a MAC, an input, a prefix, in either table) must be
// refused naming that line, and a table it cannot read must be an error,
// not a pass.
func TestChangedEntryFails(t *testing.T) {
	src, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, old, new string
		code           int
		says           string
	}{
		{"Derive MAC", `"62:9a:9b:ea:d5:cb"`, `"62:9a:9b:ea:d5:ca"`, 1, "the table says 62:9a:9b:ea:d5:ca, the derivation gives 62:9a:9b:ea:d5:cb"},
		{"Derive input", `Key: "0123456789abcdef"`, `Key: "0123456789abcdeF"`, 1, "TestDeriveGolden"},
		{"Derive salt", `Salt: "s"`, `Salt: "t"`, 1, "the table says 02:00:5e:dc:87:58"},
		{"Derive prefix", `Prefix{0x02, 0x00, 0x5e}}, "02:00:5e`, `Prefix{0x02, 0x00, 0x5f}}, "02:00:5e`, 1, "the table says 02:00:5e:dc:87:58, the derivation gives 02:00:5f:dc:87:58"},
		{"DeriveVMInterface MAC", `"be:46:d1:e5:de:19"`, `"be:46:d1:e5:de:18"`, 1, "TestDeriveVMInterfaceGolden"},
		{"DeriveVMInterface interface", `IfName: "secondary"`, `IfName: "Secondary"`, 1, "the table says f6:e9:2f:e3:b7:ca"},
		{"an unreadable vector", `{Input{Kind: "pod"}, "16:66:36:16:ec:36"},`, `{Input{Kind: "pod"}, mac("16:66:36:16:ec:36")},`, 2, "not a golden vector"},
		{"a golden table it has no tag for", `func TestDeriveVMInterfaceGolden(`, `func TestDeriveOtherGolden(`, 2, "has no tag in derive.py"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(string(src), c.old) {
				t.Fatalf("%s no longer holds %s; choose another entry to change", table, c.old)
			}
			path := filepath.Join(t.TempDir(), "derive_test.go")
			if err := os.WriteFile(path, []byte(strings.Replace(string(src), c.old, c.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := runScript(t, path)
			if code != c.code || !strings.Contains(out, c.says) {
				t.Fatalf("derive.py exited %d, want %d saying %q:\n%s", code, c.code, c.says, out)
			}
		})
	}
}
