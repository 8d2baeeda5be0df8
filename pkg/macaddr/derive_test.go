package macaddr

import (
	"fmt"
	"testing"
)

// TestDeriveGolden pins the derivation. These MACs are in users' DHCP
// reservations and firewall rules: if this test fails, the change is wrong,
// not the table. (The first vectors were cross-checked with an independent
// implementation: SHA-256 over big-endian uint32 length-prefixed fields.)
func TestDeriveGolden(t *testing.T) {
	golden := []struct {
		in   Input
		want string
	}{
		{Input{Kind: "pod", Key: "default/web-0", IfName: "eth0"}, "62:9a:9b:ea:d5:cb"},
		{Input{Kind: "pod", Key: "default/web-0", IfName: "net1"}, "7a:ba:2a:17:e6:16"},
		{Input{Kind: "vm", Key: "default/vm1", IfName: "eth0"}, "5e:b6:d0:34:42:ff"},
		{Input{Kind: "vm", Key: "prod/fedora-vm", IfName: "net1", Salt: "cluster-a"}, "52:9f:a2:59:d6:8e"},
		{Input{Kind: "container", Key: "0123456789abcdef", IfName: "eth0"}, "9e:50:1f:c3:27:c9"},
		{Input{Kind: "pod", Key: "default/vm1", IfName: "eth0"}, "8e:ff:54:f9:a2:c8"},
		{Input{Kind: "vm", Key: "default/vm1", IfName: "eth0", Prefix: Prefix{0x0a, 0x58}}, "0a:58:d0:34:42:ff"},
		{Input{Kind: "vm", Key: "default/vm1", IfName: "eth0", Salt: "s", Prefix: Prefix{0x02, 0x00, 0x5e}}, "02:00:5e:dc:87:58"},
		{Input{Kind: "pod"}, "16:66:36:16:ec:36"},
		{Input{Kind: "pod", Key: "ns/ünïcode-name", IfName: "eth0"}, "3e:7e:7e:ab:2c:a8"},
	}
	for _, g := range golden {
		t.Run(fmt.Sprintf("%s/%s/%s/%s/%s", g.in.Kind, g.in.Key, g.in.IfName, g.in.Salt, g.in.Prefix), func(t *testing.T) {
			if got := Derive(g.in).String(); got != g.want {
				t.Fatalf("Derive(%+v) = %s, want %s (the derivation is a contract; do not change it)", g.in, got, g.want)
			}
		})
	}
}

// TestDeriveVMInterfaceGolden pins the VM-interface derivation the
// admission webhook writes into VM specs: the same promise as
// TestDeriveGolden. The vectors were computed by an independent
// implementation (Python's hashlib over the same length-prefixed fields
// with the tag "macguard/kubevirt-interface/v1").
func TestDeriveVMInterfaceGolden(t *testing.T) {
	golden := []struct {
		in   Input
		want string
	}{
		{Input{Kind: "vm", Key: "default/vm1", IfName: "default"}, "be:46:d1:e5:de:19"},
		{Input{Kind: "vm", Key: "default/vm1", IfName: "eth0"}, "36:1c:af:59:ca:ff"},
		{Input{Kind: "vm", Key: "default/vm1", IfName: "net1"}, "7e:9f:67:be:71:67"},
		{Input{Kind: "vm", Key: "prod/fedora-vm", IfName: "default", Salt: "cluster-a"}, "06:b3:ab:49:58:ad"},
		{Input{Kind: "vm", Key: "prod/fedora-vm", IfName: "secondary", Salt: "cluster-a"}, "f6:e9:2f:e3:b7:ca"},
		{Input{Kind: "vm", Key: "default/vm1", IfName: "default", Prefix: Prefix{0x0a, 0x58}}, "0a:58:d1:e5:de:19"},
	}
	for _, g := range golden {
		t.Run(fmt.Sprintf("%s/%s/%s/%s", g.in.Key, g.in.IfName, g.in.Salt, g.in.Prefix), func(t *testing.T) {
			if got := DeriveVMInterface(g.in).String(); got != g.want {
				t.Fatalf("DeriveVMInterface(%+v) = %s, want %s (the derivation is a contract; do not change it)", g.in, got, g.want)
			}
		})
	}
	// The tag separates the two derivations: the same input never gives
	// the plugin's pod-interface MAC (5e:b6:d0:34:42:ff, pinned above).
	in := Input{Kind: "vm", Key: "default/vm1", IfName: "eth0"}
	if DeriveVMInterface(in).String() == Derive(in).String() {
		t.Fatalf("DeriveVMInterface and Derive agree on %+v; the tags must separate them", in)
	}
}

// TestDeriveUnambiguous guards the length-prefixed encoding: moving bytes
// between fields must change the result.
func TestDeriveUnambiguous(t *testing.T) {
	a := Derive(Input{Kind: "pod", Key: "ns/ab", IfName: "ceth0"})
	b := Derive(Input{Kind: "pod", Key: "ns/abc", IfName: "eth0"})
	if a.String() == b.String() {
		t.Fatalf("field boundary shift produced the same MAC %s", a)
	}
}

func TestDeriveAlwaysAssignable(t *testing.T) {
	for i := 0; i < 5000; i++ {
		mac := Derive(Input{Kind: "pod", Key: fmt.Sprintf("ns/pod-%d", i), IfName: "eth0"})
		if err := CheckAssignable(mac); err != nil || !IsLocal(mac) {
			t.Fatalf("derived %s is not a locally administered unicast address: %v", mac, err)
		}
	}
}

func BenchmarkDerive(b *testing.B) {
	in := Input{Kind: "vm", Key: "production/fedora-vm-with-a-long-name", IfName: "eth0", Salt: "cluster-a", Prefix: Prefix{0x0a, 0x58}}
	b.ReportAllocs()
	for b.Loop() {
		Derive(in)
	}
}

// TestAllocs: deriving a MAC and parsing the prefix happen on every ADD, and
// each should allocate only what it returns. Counts do not vary from run to
// run as times do, so a regression fails here.
func TestAllocs(t *testing.T) {
	in := Input{Kind: "vm", Key: "production/fedora-vm-with-a-long-name", IfName: "eth0", Salt: "cluster-a", Prefix: Prefix{0x0a, 0x58}}
	if allocs := testing.AllocsPerRun(100, func() { Derive(in) }); allocs > 1 {
		t.Errorf("Derive allocates %v times, want at most 1 (the MAC)", allocs)
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = ParsePrefix("0a:58:00") }); allocs > 1 {
		t.Errorf("ParsePrefix allocates %v times, want at most 1 (the prefix)", allocs)
	}
}
