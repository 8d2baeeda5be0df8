package testutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Node is what every simulated node of test/e2e and test/vm starts with: a
// network namespace of its own, where plugins run and host-side devices
// live, and macguard's dataDir and logFile in a directory of the test's.
// The suites embed it in their own node types, which add what they drive it
// with (cnitool, or the plugin binaries directly).
type Node struct {
	NS      ns.NetNS
	Dir     string // the test's directory for this node; DataDir and LogFile are in it
	DataDir string // macguard's dataDir, created by the plugin
	LogFile string // macguard's logFile
}

// NewNode creates a node whose namespace and files are removed when the
// test ends. It needs root.
func NewNode(t testing.TB) *Node {
	t.Helper()
	dir := t.TempDir()
	return &Node{
		NS:      NewNetns(t),
		Dir:     dir,
		DataDir: filepath.Join(dir, "state"),
		LogFile: filepath.Join(dir, "macguard.log"),
	}
}

// Records lists macguard's records in the node's dataDir: StateRecords, so
// a temporary file left next to them fails the test too. Call it when every
// plugin run has exited; a writer left such a file behind.
func (n *Node) Records(t testing.TB) []string {
	t.Helper()
	return StateRecords(t, n.DataDir)
}

// ReadLog returns macguard's log file, "" when it was never written.
func (n *Node) ReadLog(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(n.LogFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("reading macguard's logFile: %v", err)
	}
	return string(b)
}
