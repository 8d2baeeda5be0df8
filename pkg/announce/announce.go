// Package announce tells the segment that an interface's addresses moved to
// a new MAC: gratuitous ARP for IPv4 (RFC 5227 ARP announcements) and
// unsolicited neighbour advertisements with the Override flag for IPv6
// (RFC 4861 section 7.2.6).
//
// Without them, peers and bridges keep forwarding to the old MAC until their
// caches expire, which looks exactly like the silent breakage this project
// exists to prevent. Frames are built by hand: they are short, fixed-layout,
// and not worth a packet library.
package announce

import (
	"encoding/binary"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

const (
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	ethHeaderLen  = 14
)

var (
	broadcastMAC   = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allNodesMAC    = net.HardwareAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}
	allNodesIPv6   = net.ParseIP("ff02::1")
	zeroMAC        = make(net.HardwareAddr, 6)
	naOverrideFlag = byte(0x20)
)

// Send transmits one announcement per address on the interface with index
// ifIndex. It must be called inside the interface's network namespace. It
// stops at the first failure: a partial announcement is still useful, but the
// caller needs to know.
func Send(ifIndex int, mac net.HardwareAddr, ipv4, ipv6 []net.IP) error {
	if len(ipv4) == 0 && len(ipv6) == 0 {
		return nil
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening packet socket: %w", err)
	}
	defer unix.Close(fd)
	for _, ip := range ipv4 {
		if err := send(fd, ifIndex, broadcastMAC, GratuitousARP(mac, ip)); err != nil {
			return fmt.Errorf("gratuitous ARP for %s: %w", ip, err)
		}
	}
	for _, ip := range ipv6 {
		if err := send(fd, ifIndex, allNodesMAC, UnsolicitedNA(mac, ip)); err != nil {
			return fmt.Errorf("unsolicited neighbour advertisement for %s: %w", ip, err)
		}
	}
	return nil
}

func send(fd, ifIndex int, dst net.HardwareAddr, frame []byte) error {
	sa := &unix.SockaddrLinklayer{Ifindex: ifIndex, Halen: 6}
	copy(sa.Addr[:], dst)
	return unix.Sendto(fd, frame, 0, sa)
}

func ethernet(dst, src net.HardwareAddr, etherType uint16, payloadLen int) []byte {
	f := make([]byte, ethHeaderLen, ethHeaderLen+payloadLen)
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], etherType)
	return f
}

// GratuitousARP builds the Ethernet frame of an ARP announcement for ip from
// mac: an ARP request whose sender and target protocol addresses are both ip.
func GratuitousARP(mac net.HardwareAddr, ip net.IP) []byte {
	f := ethernet(broadcastMAC, mac, etherTypeARP, 28)
	f = binary.BigEndian.AppendUint16(f, 1)      // hardware type: Ethernet
	f = binary.BigEndian.AppendUint16(f, 0x0800) // protocol type: IPv4
	f = append(f, 6, 4)                          // address lengths
	f = binary.BigEndian.AppendUint16(f, 1)      // op: request
	f = append(f, mac...)
	f = append(f, ip.To4()...)
	f = append(f, zeroMAC...)
	f = append(f, ip.To4()...)
	return f
}

// UnsolicitedNA builds the Ethernet frame of an unsolicited neighbour
// advertisement for ip from mac, sent to all nodes with the Override flag so
// receivers replace their cached link-layer address.
func UnsolicitedNA(mac net.HardwareAddr, ip net.IP) []byte {
	const icmpLen = 24 + 8 // NA body + target link-layer address option
	f := ethernet(allNodesMAC, mac, etherTypeIPv6, 40+icmpLen)
	f = append(f, 0x60, 0, 0, 0) // version 6, no traffic class / flow label
	f = binary.BigEndian.AppendUint16(f, icmpLen)
	f = append(f, unix.IPPROTO_ICMPV6, 255) // next header, hop limit 255 as RFC 4861 requires
	f = append(f, ip.To16()...)
	f = append(f, allNodesIPv6...)
	icmp := len(f)
	f = append(f, 136, 0, 0, 0) // type NA, code, checksum placeholder
	f = append(f, naOverrideFlag, 0, 0, 0)
	f = append(f, ip.To16()...)
	f = append(f, 2, 1) // option: target link-layer address, 8 octets
	f = append(f, mac...)
	sum := checksumICMPv6(ip.To16(), allNodesIPv6, f[icmp:])
	binary.BigEndian.PutUint16(f[icmp+2:], sum)
	return f
}

func checksumICMPv6(src, dst net.IP, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src)
	add(dst)
	var pseudo [8]byte
	binary.BigEndian.PutUint32(pseudo[0:4], uint32(len(msg)))
	pseudo[7] = unix.IPPROTO_ICMPV6
	add(pseudo[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
