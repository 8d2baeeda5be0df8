package vm

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// pluginDir gathers the chain's plugins under the names a conflist uses,
// wherever the binaries were built.
func pluginDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, path := range map[string]string{
		"macguard":   testutil.PluginBinary(t),
		"netkit-cni": tool(t, "netkit-cni"),
		"host-local": tool(t, "host-local"),
	} {
		if err := os.Symlink(path, filepath.Join(dir, name)); err != nil {
			t.Fatalf("linking %s into CNI_PATH: %v", name, err)
		}
	}
	return dir
}

// The whole chain as a runtime runs it: cnitool (libcni, what Multus uses
// to call delegates) executes netkit-cni with host-local IPAM and then the
// macguard binary on the real netkit device, and CHECK and DEL through the
// same list.
func TestCnitoolChainOnNetkit(t *testing.T) {
	requireKernel(t, "netkit")
	cnitool := tool(t, "cnitool")
	cniPath := pluginDir(t)
	const requested = "0a:58:0a:63:01:0a"
	launcher := "virt-launcher-vm2-abcde"

	tests := []struct {
		name     string
		mode     string
		macguard map[string]any
		capArgs  string
		// want is the pod MAC after ADD ("" for none); wantErr lists
		// fragments of the failure cnitool must report instead.
		want    func(t *testing.T) string
		wantErr []string
		// wantLog is the level of macguard's log line for this ADD: proof
		// that the binary ran, even where its result is a pass-through.
		wantLog string
	}{
		{
			name: "netkit-l2 requested MAC via CAP_ARGS", mode: "l2",
			macguard: map[string]any{"capabilities": map[string]any{"mac": true}},
			capArgs:  `{"mac":"` + requested + `"}`,
			want:     func(*testing.T) string { return requested },
			wantLog:  "INFO",
		},
		{
			name: "netkit-l2 assign always", mode: "l2",
			macguard: map[string]any{"assign": "always"},
			want:     func(t *testing.T) string { return derivedMAC(t, "vms", launcher) },
			wantLog:  "INFO",
		},
		{
			name: "netkit-l3 onUnsupported skip", mode: "l3",
			macguard: map[string]any{"onUnsupported": "skip"},
			want:     func(*testing.T) string { return "" },
			wantLog:  "WARN",
		},
		{
			name: "netkit-l3 default config fails", mode: "l3",
			macguard: map[string]any{},
			wantErr:  []string{"netkit-l2", "macAddress"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			pod := testutil.NewNetns(t)
			dir := t.TempDir()
			ipamDir := filepath.Join(dir, "ipam")
			mg := map[string]any{"type": "macguard", "dataDir": n.dataDir, "logFile": n.logFile}
			for k, v := range tc.macguard {
				mg[k] = v
			}
			conflist := map[string]any{
				"cniVersion": "1.1.0", "name": "vmchain",
				"plugins": []any{
					map[string]any{"type": "netkit-cni", "mode": tc.mode, "ipam": map[string]any{
						"type": "host-local", "dataDir": ipamDir,
						"ranges": [][]map[string]string{{{"subnet": "10.99.1.0/24"}}},
					}},
					mg,
				},
			}
			b, err := json.Marshal(conflist)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "vmchain.conflist"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			env := []string{"NETCONFPATH=" + dir, "CNI_PATH=" + cniPath, "CNI_IFNAME=" + podIf,
				"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=vms;K8S_POD_NAME=" + launcher,
				"CAP_ARGS=" + tc.capArgs}
			cni := func(cmd string) ([]byte, string, error) {
				return n.run(cnitool, env, nil, cmd, "vmchain", pod.Path())
			}
			// Whatever happens below, tear the chain down, as a runtime
			// would: DEL must succeed and remove the pod interface.
			t.Cleanup(func() {
				if _, stderr, err := cni("del"); err != nil {
					t.Errorf("cnitool del: %v: %s", err, stderr)
				}
				if _, err := podLink(t, pod); err == nil {
					t.Errorf("%s still exists after cnitool del", podIf)
				}
			})

			out, stderr, err := cni("add")
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("cnitool add succeeded on netkit L3 (result %s)", out)
				}
				requireContains(t, "cnitool's error", stderr, tc.wantErr...)
				s := readLinkState(t, pod, podIf)
				if s.Kind != "netkit" || s.MAC != "" {
					t.Errorf("after the failed ADD the pod interface is %+v, want the untouched netkit L3 device", s)
				}
				if files := n.stateFiles(t); len(files) != 0 {
					t.Errorf("the failed ADD left state in dataDir: %v", files)
				}
				return
			}
			if err != nil {
				t.Fatalf("cnitool add: %v: %s", err, stderr)
			}
			want := tc.want(t)
			s := readLinkState(t, pod, podIf)
			if s.Kind != "netkit" || s.NetkitMode != tc.mode {
				t.Fatalf("pod interface is %s mode %q, want netkit %s: the chain did not run on netkit", s.Kind, s.NetkitMode, tc.mode)
			}
			if s.MAC != want {
				t.Errorf("interface MAC %q, want %q", s.MAC, want)
			}
			if _, resMAC := sandboxEntry(t, out, pod.Path()); resMAC != want {
				t.Errorf("result reports MAC %q, want %q: %s", resMAC, want, out)
			}
			r := parseResult(t, out)
			if len(r.IPs) != 1 {
				t.Fatalf("result has %d IPs, want the one host-local leased: %s", len(r.IPs), out)
			}
			ip, _, err := net.ParseCIDR(r.IPs[0].Address)
			if err != nil || !strings.HasPrefix(ip.String(), "10.99.1.") {
				t.Fatalf("result IP %q is not from host-local's 10.99.1.0/24: %v", r.IPs[0].Address, err)
			}
			if !containsAddr(s.Addrs, ip) {
				t.Errorf("pod interface addresses %v lack the leased %s", s.Addrs, ip)
			}
			var logged bool
			for _, line := range strings.Split(n.readLog(t), "\n") {
				logged = logged || strings.Contains(line, "level="+tc.wantLog) && strings.Contains(line, "ifname="+podIf)
			}
			if !logged {
				t.Errorf("macguard's logFile has no %s line for %s:\n%s", tc.wantLog, podIf, n.readLog(t))
			}
			if _, stderr, err := cni("check"); err != nil {
				t.Errorf("cnitool check: %v: %s", err, stderr)
			}
			if _, stderr, err := cni("del"); err != nil {
				t.Fatalf("cnitool del: %v: %s", err, stderr)
			}
			if _, err := os.Stat(filepath.Join(ipamDir, "vmchain", ip.String())); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("host-local still holds the lease for %s after DEL (%v)", ip, err)
			}
			if files := n.stateFiles(t); len(files) != 0 {
				t.Errorf("DEL left macguard state: %v", files)
			}
		})
	}
}

func containsAddr(addrs []string, ip net.IP) bool {
	for _, a := range addrs {
		if got, _, err := net.ParseCIDR(a); err == nil && got.Equal(ip) {
			return true
		}
	}
	return false
}

// podLink looks the pod interface up without failing the test: used to
// assert that it is gone.
func podLink(t *testing.T, pod ns.NetNS) (netlink.Link, error) {
	t.Helper()
	var l netlink.Link
	err := pod.Do(func(ns.NetNS) (err error) {
		l, err = netlinksafe.LinkByName(podIf)
		return err
	})
	return l, err
}
