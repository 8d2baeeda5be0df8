package testutil

// The suites keep dataDir and logFile in t.TempDir(), outside the roots a
// node allows by default (pkg/pathpolicy). They widen the roots the way a
// node does, through the runtime's environment, never by weakening the
// check: every plugin they start gets RootsEnv, every in-process plugin
// Roots.

import (
	"os"
	"testing"

	"github.com/macguard-cni/macguard/pkg/pathpolicy"
)

// TestRoot is the directory the suites add to both allowed roots: the
// one t.TempDir() creates its directories in.
func TestRoot() string { return os.TempDir() }

// RootsEnv are the environment entries that widen the plugin's data and
// log roots to TestRoot.
func RootsEnv() []string {
	return []string{pathpolicy.EnvDataRoots + "=" + TestRoot(), pathpolicy.EnvLogRoots + "=" + TestRoot()}
}

// Roots are the roots of a plugin started with RootsEnv, for an in-process
// plugin.
func Roots() pathpolicy.Roots {
	env := map[string]string{pathpolicy.EnvDataRoots: TestRoot(), pathpolicy.EnvLogRoots: TestRoot()}
	return pathpolicy.FromEnv(func(k string) string { return env[k] })
}

// SetRootsEnv widens the roots in the test process's own environment, for
// the rare test that runs plugins through libcni in-process: libcni hands
// them os.Environ(), as a runtime hands them its own.
func SetRootsEnv(t *testing.T) {
	t.Setenv(pathpolicy.EnvDataRoots, TestRoot())
	t.Setenv(pathpolicy.EnvLogRoots, TestRoot())
}
