package testutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Node is the one simulated node of the suites that run plugins the way a
// runtime on a node does (test/e2e, test/vm, test/tenant): a network
// namespace of its own, where plugins run and host-side devices live; a
// NETCONFPATH for the conflists cnitool runs there; host-local's dataDir;
// and macguard's dataDir and logFile, all in a directory of the test's.
// A suite embeds it in its own node type only to add what is the suite's
// alone (the cnitool it drives, a *testing.T, the devices it builds).
type Node struct {
	NS      ns.NetNS
	Dir     string // the test's directory for this node; everything below is in it
	ConfDir string // NETCONFPATH: the conflists cnitool runs on this node
	IPAMDir string // host-local's dataDir, shared by the node's networks
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
		ConfDir: filepath.Join(dir, "net.d"),
		IPAMDir: filepath.Join(dir, "ipam"),
		DataDir: filepath.Join(dir, "state"),
		LogFile: filepath.Join(dir, "macguard.log"),
	}
}

// CNITool is cnitool at bin, with the plugins of cniPath, running this
// node's conflists inside its namespace.
func (n *Node) CNITool(bin, cniPath string) *CNITool {
	return &CNITool{Bin: bin, CNIPath: cniPath, NetConfPath: n.ConfDir, Node: n.NS}
}

// WriteConfList writes list, a conflist, into the node's NETCONFPATH
// (created on first use) as <its name>.conflist, where the node's CNITool
// finds it by that name.
func (n *Node) WriteConfList(t testing.TB, list map[string]any) {
	t.Helper()
	name, _ := list["name"].(string)
	if name == "" {
		t.Fatalf("conflist without a name: %v", list)
	}
	if err := os.MkdirAll(n.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.ConfDir, name+".conflist"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// MacguardEntry is macguard's entry in a conflist of this node: its
// dataDir and logFile, then fields (which may override them).
func (n *Node) MacguardEntry(fields map[string]any) map[string]any {
	e := map[string]any{"type": "macguard", "dataDir": n.DataDir, "logFile": n.LogFile}
	maps.Copy(e, fields)
	return e
}

// HostLocal is the IPAM section of a main plugin: host-local handing out
// subnet, keeping its leases in the node's IPAMDir.
func (n *Node) HostLocal(subnet string) map[string]any {
	return map[string]any{"type": "host-local", "dataDir": n.IPAMDir,
		"ranges": [][]map[string]string{{{"subnet": subnet}}}}
}

// Leases lists the addresses host-local holds on the node for network.
func (n *Node) Leases(t testing.TB, network string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.IPAMDir, network))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, e := range entries {
		if net.ParseIP(e.Name()) != nil {
			ips = append(ips, e.Name())
		}
	}
	return ips
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

// LogLine is one line of macguard's logFile, as key/value pairs.
type LogLine map[string]string

// LogLines parses macguard's logFile, one LogLine a line; a line that is
// not logfmt fails the test.
func (n *Node) LogLines(t testing.TB) []LogLine {
	t.Helper()
	var lines []LogLine
	for _, s := range strings.Split(n.ReadLog(t), "\n") {
		if s == "" {
			continue
		}
		l, err := ParseLogfmt(s)
		if err != nil {
			t.Fatalf("macguard log line %q: %v", s, err)
		}
		lines = append(lines, l)
	}
	return lines
}

// ParseLogfmt splits `k=v k="quoted \"v\""` (what log/slog's text handler
// writes).
func ParseLogfmt(s string) (LogLine, error) {
	l := LogLine{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \"") {
			return nil, fmt.Errorf("no key=value at %q", s)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, fmt.Errorf("value of %s: %w", k, err)
			}
			v, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		l[k] = v
		s = rest
	}
	return l, nil
}
