// Package macaddr parses, validates and derives Ethernet MAC addresses.
//
// Everything here is pure: no kernel, no I/O. The derivation in derive.go is a
// public contract (users put derived MACs into DHCP reservations and firewall
// rules) and is pinned by golden tests.
package macaddr

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Len is the length of the only hardware address kind macguard manages.
const Len = 6

var (
	// ErrInvalid is wrapped by every parse and validation failure.
	ErrInvalid = errors.New("invalid MAC address")

	broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// Parse accepts a 6-byte MAC in any case with ':' or '-' separators (or the
// dotted Cisco form net.ParseMAC knows) and returns it. It rejects 8- and
// 20-byte forms, which net.ParseMAC would accept, because no pod interface
// macguard manages carries them.
func Parse(s string) (net.HardwareAddr, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, fmt.Errorf("%w: empty string", ErrInvalid)
	}
	mac, err := net.ParseMAC(t)
	if err != nil {
		return nil, fmt.Errorf("%w %q: expected six hex octets such as 0a:58:0a:f4:00:01", ErrInvalid, s)
	}
	if len(mac) != Len {
		return nil, fmt.Errorf("%w %q: has %d octets, only 6-octet Ethernet addresses are supported", ErrInvalid, s, len(mac))
	}
	return mac, nil
}

// ParseUnicast parses s and checks it can be assigned to an interface: a
// unicast address that is neither all zeros nor broadcast.
func ParseUnicast(s string) (net.HardwareAddr, error) {
	mac, err := Parse(s)
	if err != nil {
		return nil, err
	}
	if err := CheckAssignable(mac); err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return mac, nil
}

// CheckAssignable reports why mac cannot be given to an interface, or nil.
func CheckAssignable(mac net.HardwareAddr) error {
	switch {
	case len(mac) != Len:
		return fmt.Errorf("%w: has %d octets, want 6", ErrInvalid, len(mac))
	case IsZero(mac):
		return fmt.Errorf("%w: all zeros is not an address", ErrInvalid)
	case bytes.Equal(mac, broadcast):
		return fmt.Errorf("%w: broadcast address ff:ff:ff:ff:ff:ff cannot be assigned", ErrInvalid)
	case IsMulticast(mac):
		return fmt.Errorf("%w: multicast (lowest bit of the first octet set); use a unicast address", ErrInvalid)
	}
	return nil
}

// IsZero is true for an absent address (what netlink reports for an L3 netkit
// device) as well as for 00:00:00:00:00:00 (what `ip link` prints for it).
func IsZero(mac net.HardwareAddr) bool {
	for _, b := range mac {
		if b != 0 {
			return false
		}
	}
	return true
}

// IsMulticast reports the I/G bit of the first octet.
func IsMulticast(mac net.HardwareAddr) bool { return len(mac) > 0 && mac[0]&0x01 != 0 }

// IsLocal reports the U/L (locally administered) bit of the first octet.
func IsLocal(mac net.HardwareAddr) bool { return len(mac) > 0 && mac[0]&0x02 != 0 }

// Equal compares two addresses as addresses, so "AA:..." and "aa-..." agree
// once parsed and an absent address equals all zeros.
func Equal(a, b net.HardwareAddr) bool {
	if IsZero(a) && IsZero(b) {
		return true
	}
	return bytes.Equal(a, b)
}

// String renders mac in the canonical lowercase colon form, and "" for an
// absent address so results never carry "00:00:00:00:00:00" by accident.
func String(mac net.HardwareAddr) string {
	if len(mac) == 0 {
		return ""
	}
	return mac.String()
}

// LinkLocal returns the modified-EUI-64 IPv6 link-local address the kernel
// generates for mac (RFC 4291 appendix A), which macguard replaces after a
// MAC change because the kernel keeps the old one on a live change.
func LinkLocal(mac net.HardwareAddr) net.IP {
	if len(mac) != Len {
		return nil
	}
	ip := make(net.IP, net.IPv6len)
	ip[0], ip[1] = 0xfe, 0x80
	ip[8] = mac[0] ^ 0x02
	ip[9], ip[10] = mac[1], mac[2]
	ip[11], ip[12] = 0xff, 0xfe
	ip[13], ip[14], ip[15] = mac[3], mac[4], mac[5]
	return ip
}

// MustParse is Parse for constants in code and tests; it panics on a bad
// literal, never on user input (which always goes through Parse).
func MustParse(s string) net.HardwareAddr {
	mac, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return mac
}
