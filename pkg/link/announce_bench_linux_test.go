package link_test

import (
	"os"
	"testing"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/link"
)

// BenchmarkAnnounceOnChange: an enforcing ADD sets arp_notify and
// ndisc_notify (both 0 by default) and puts them back, inside the pod's
// netns, in the one Do the ADD already holds.
func BenchmarkAnnounceOnChange(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to create network namespaces")
	}
	node, pod := testutil.NewNetns(b), testutil.NewNetns(b)
	testutil.VethPair(b, node, "vh0", pod, "eth0")
	n, err := link.Open(pod.Path())
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	b.ReportAllocs()
	err = n.Do(func() error {
		for b.Loop() {
			restore, err := n.AnnounceOnChange("eth0")
			if err != nil {
				return err
			}
			if err := restore(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if got := testutil.Sysctl(b, pod, "net/ipv4/conf/eth0/arp_notify"); got != "0" {
		b.Fatalf("arp_notify is %s after the last restore, want 0", got)
	}
}
