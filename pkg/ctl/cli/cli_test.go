package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestMac(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantOut  string
		wantCode int
		wantErr  string
	}{
		// Values pinned by pkg/macaddr's golden table.
		{"vm", []string{"--namespace", "default", "--vm", "vm1", "--ifname", "eth0"}, "5e:b6:d0:34:42:ff\n", 0, ""},
		{"launcher pod resolves to its vm", []string{"--namespace", "default", "--pod", "virt-launcher-vm1-x7k2p", "--ifname", "eth0"}, "5e:b6:d0:34:42:ff\n", 0, ""},
		{"pod", []string{"--namespace", "default", "--pod", "web-0", "--ifname", "eth0"}, "62:9a:9b:ea:d5:cb\n", 0, ""},
		{"salt", []string{"--namespace", "prod", "--vm", "fedora-vm", "--ifname", "net1", "--salt", "cluster-a"}, "52:9f:a2:59:d6:8e\n", 0, ""},
		{"prefix", []string{"--namespace", "default", "--vm", "vm1", "--ifname", "eth0", "--prefix", "0a:58"}, "0a:58:d0:34:42:ff\n", 0, ""},
		{"container", []string{"--container-id", "0123456789abcdef", "--ifname", "eth0"}, "9e:50:1f:c3:27:c9\n", 0, ""},
		// The webhook's VM-interface MACs, pinned by TestDeriveVMInterfaceGolden.
		{"vm interface", []string{"--namespace", "default", "--vm", "vm1", "--vm-interface", "default"}, "be:46:d1:e5:de:19\n", 0, ""},
		{"vm interface salt prefix", []string{"--namespace", "prod", "--vm", "fedora-vm", "--vm-interface", "default", "--salt", "cluster-a"}, "06:b3:ab:49:58:ad\n", 0, ""},
		{"vm interface with prefix", []string{"--namespace", "default", "--vm", "vm1", "--vm-interface", "default", "--prefix", "0a:58"}, "0a:58:d1:e5:de:19\n", 0, ""},
		{"vm interface and ifname", []string{"--namespace", "default", "--vm", "vm1", "--vm-interface", "default", "--ifname", "eth0"}, "", 2, "excludes --ifname"},
		{"vm interface without vm", []string{"--namespace", "default", "--pod", "virt-launcher-vm1-x7k2p", "--vm-interface", "default"}, "", 2, "needs --namespace and --vm"},
		{"vm interface bad prefix", []string{"--namespace", "default", "--vm", "vm1", "--vm-interface", "default", "--prefix", "01"}, "", 2, "multicast"},
		{"no ifname", []string{"--namespace", "default", "--pod", "web-0"}, "", 2, "--ifname"},
		{"pod and vm", []string{"--namespace", "d", "--pod", "a", "--vm", "b", "--ifname", "eth0"}, "", 2, "exactly one"},
		{"bad prefix", []string{"--namespace", "d", "--pod", "a", "--ifname", "eth0", "--prefix", "01"}, "", 2, "multicast"},
		{"container with pod", []string{"--container-id", "x", "--pod", "a", "--ifname", "eth0"}, "", 2, "cannot be combined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(append([]string{"mac"}, tt.args...), &out, &errb)
			if code != tt.wantCode || out.String() != tt.wantOut || !strings.Contains(errb.String(), tt.wantErr) {
				t.Fatalf("code %d out %q err %q; want %d %q containing %q", code, out.String(), errb.String(), tt.wantCode, tt.wantOut, tt.wantErr)
			}
		})
	}
}

func TestVersionAndUnknown(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "macguard ") || !strings.Contains(out.String(), "commit") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := Main([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errb.String())
	}
}
