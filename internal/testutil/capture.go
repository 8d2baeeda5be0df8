package testutil

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// Announcement is one gratuitous ARP or unsolicited neighbour
// advertisement seen on the wire.
type Announcement struct {
	// From is the frame's Ethernet source.
	From net.HardwareAddr
	// IP is the address announced: the ARP sender (and target) address or
	// the NA target.
	IP net.IP
	// Override is the NA's O flag (always false for ARP).
	Override bool
	ARP      bool
}

// Capture listens on ifName in n for every frame, from before the change
// under test until Announcements reads them; a packet socket bound to the
// peer sees exactly what left the pod.
type Capture struct {
	fd int
}

// NewCapture opens the capture; it is closed when the test ends.
func NewCapture(t testing.TB, n ns.NetNS, ifName string) *Capture {
	t.Helper()
	c := &Capture{fd: -1}
	InNetns(t, n, func() error {
		l, err := netlinksafe.LinkByName(ifName)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		c.fd = fd
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: l.Attrs().Index})
	})
	t.Cleanup(func() {
		if err := unix.Close(c.fd); err != nil {
			t.Errorf("closing the capture socket on %s: %v", ifName, err)
		}
	})
	tv := unix.Timeval{Usec: 200000}
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return c
}

// Announcements reads frames until done says it has what it waits for or
// the timeout passes, and returns the announcements among them.
func (c *Capture) Announcements(timeout time.Duration, done func([]Announcement) bool) []Announcement {
	var seen []Announcement
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline) && !done(seen); {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			continue
		}
		if a, ok := parseAnnouncement(buf[:n]); ok {
			seen = append(seen, a)
		}
	}
	return seen
}

func parseAnnouncement(f []byte) (Announcement, bool) {
	if len(f) < 14 {
		return Announcement{}, false
	}
	from := net.HardwareAddr(bytes.Clone(f[6:12]))
	switch binary.BigEndian.Uint16(f[12:14]) {
	case unix.ETH_P_ARP:
		// An announcement: sender IP == target IP.
		if len(f) >= 42 && bytes.Equal(f[28:32], f[38:42]) {
			return Announcement{From: from, IP: net.IP(bytes.Clone(f[28:32])), ARP: true}, true
		}
	case unix.ETH_P_IPV6:
		const ip6, icmp = 14, 14 + 40
		// ICMPv6 (next header 58), type 136: neighbour advertisement.
		if len(f) >= icmp+24 && f[ip6+6] == 58 && f[icmp] == 136 {
			return Announcement{From: from, IP: net.IP(bytes.Clone(f[icmp+8 : icmp+24])), Override: f[icmp+4]&0x20 != 0}, true
		}
	}
	return Announcement{}, false
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Sysctl reads a /proc/sys file (path relative to /proc/sys, with "/"
// separators) inside n.
func Sysctl(t testing.TB, n ns.NetNS, path string) string {
	t.Helper()
	var v string
	InNetns(t, n, func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", path))
		v = strings.TrimSpace(string(b))
		return err
	})
	return v
}

// SetSysctl writes a /proc/sys file inside n.
func SetSysctl(t testing.TB, n ns.NetNS, path, value string) {
	t.Helper()
	InNetns(t, n, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", path), []byte(value), 0)
	})
}
