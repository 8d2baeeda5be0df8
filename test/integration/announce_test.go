package integration

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/macguard-cni/macguard/internal/plugintest"
	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/macaddr"
)

// TestKernelAnnouncesTheChange: with announce on, macguard asks the kernel to
// announce the MAC change itself (arp_notify, ndisc_notify) instead of
// sending frames from a packet socket, whose close() waits for an RCU grace
// period. The peer must see a gratuitous ARP and an unsolicited NA with the
// Override flag from the new MAC, and the switches must be back as they were.
func TestKernelAnnouncesTheChange(t *testing.T) {
	const (
		arpNotify   = "net/ipv4/conf/eth0/arp_notify"
		ndiscNotify = "net/ipv6/conf/eth0/ndisc_notify"
	)
	for _, preset := range []string{"0", "1"} {
		t.Run("switches were "+preset, func(t *testing.T) {
			bin := testutil.PluginBinary(t)
			p := testutil.NewVethPod(t, nil, "veth-host")
			testutil.AddAddr(t, p.NS, "eth0", "10.88.0.2/24")
			testutil.AddAddr(t, p.NS, "eth0", "fd00:88::2/64")
			testutil.SetSysctl(t, p.NS, arpNotify, preset)
			testutil.SetSysctl(t, p.NS, ndiscNotify, preset)
			capture := testutil.NewCapture(t, p.Host, "veth-host")

			const newMAC = "0a:58:00:00:00:46"
			conf := testutil.Conf("1.0.0", t.TempDir(), `"mac":"`+newMAC+`"`, p.PrevResult("1.0.0", testutil.MAC(t, p.NS, "eth0").String()))
			_, stderr, cniErr := testutil.Run(t, bin, p.Env("ADD", "c1", ""), conf)
			if cniErr != nil {
				t.Fatalf("ADD: %v", cniErr)
			}
			if !strings.Contains(stderr, "announce=kernel") {
				t.Fatalf("log line does not say the kernel announced: %s", stderr)
			}

			expectAnnouncements(t, capture, newMAC)
			for _, s := range []string{arpNotify, ndiscNotify} {
				if got := testutil.Sysctl(t, p.NS, s); got != preset {
					t.Errorf("%s is %s after ADD, want %s as before", s, got, preset)
				}
			}
		})
	}
}

// noKernelAnnounce is the real link layer on a node where the switches
// cannot be written (a read-only /proc/sys, say).
type noKernelAnnounce struct{ link.Netns }

func (noKernelAnnounce) AnnounceOnChange(string) (func() error, error) {
	return nil, errors.New("injected: /proc/sys is read-only")
}

// TestAnnouncementFallback: when the kernel cannot be asked, macguard sends
// the same frames itself from a packet socket.
func TestAnnouncementFallback(t *testing.T) {
	p := testutil.NewVethPod(t, nil, "veth-host")
	testutil.AddAddr(t, p.NS, "eth0", "10.88.0.2/24")
	testutil.AddAddr(t, p.NS, "eth0", "fd00:88::2/64")
	// Off, so that whatever the peer sees was sent by macguard.
	testutil.SetSysctl(t, p.NS, "net/ipv4/conf/eth0/arp_notify", "0")
	testutil.SetSysctl(t, p.NS, "net/ipv6/conf/eth0/ndisc_notify", "0")
	capture := testutil.NewCapture(t, p.Host, "veth-host")
	pl, _, stderr := plugintest.WrappedPlugin(func(n link.Netns) link.Netns { return noKernelAnnounce{n} })
	const newMAC = "0a:58:00:00:00:47"
	conf := testutil.Conf("1.0.0", t.TempDir(), `"mac":"`+newMAC+`"`, p.PrevResult("1.0.0", testutil.MAC(t, p.NS, "eth0").String()))
	if err := pl.Add(&skel.CmdArgs{ContainerID: "c1", Netns: p.NS.Path(), IfName: "eth0", StdinData: conf}); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if !strings.Contains(stderr.String(), "announce=sent") || !strings.Contains(stderr.String(), "read-only") {
		t.Fatalf("log line should say the frames were sent and why the kernel was not asked: %s", stderr.String())
	}
	expectAnnouncements(t, capture, newMAC)
}

// expectAnnouncements waits for the gratuitous ARP for 10.88.0.2 and the
// unsolicited NA, Override set, for fd00:88::2, both from newMAC.
func expectAnnouncements(t *testing.T, capture *testutil.Capture, newMAC string) {
	t.Helper()
	var arp, na *testutil.Announcement
	want := macaddr.MustParse(newMAC)
	capture.Announcements(5*time.Second, func(seen []testutil.Announcement) bool {
		for i := range seen {
			a := &seen[i]
			if !macaddr.Equal(a.From, want) {
				continue
			}
			switch {
			case a.ARP && a.IP.String() == "10.88.0.2":
				arp = a
			case !a.ARP && a.IP.String() == "fd00:88::2":
				na = a
			}
		}
		return arp != nil && na != nil
	})
	if arp == nil || na == nil {
		t.Fatalf("peer saw gratuitous ARP %v, unsolicited NA %v; want both from %s", arp, na, newMAC)
	}
	if !na.Override {
		t.Fatalf("unsolicited NA for %s lacks the Override flag: peers would keep the old MAC", na.IP)
	}
}
