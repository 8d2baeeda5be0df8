package announce

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
)

var testMAC = net.HardwareAddr{0x0a, 0x58, 0x01, 0x02, 0x03, 0x04}

func TestGratuitousARP(t *testing.T) {
	ip := net.ParseIP("10.1.2.3")
	f := GratuitousARP(testMAC, ip)
	if len(f) != 42 {
		t.Fatalf("frame length %d, want 42", len(f))
	}
	checks := []struct {
		name      string
		got, want []byte
	}{
		{"eth dst", f[0:6], broadcastMAC},
		{"eth src", f[6:12], testMAC},
		{"ethertype", f[12:14], []byte{0x08, 0x06}},
		{"htype/ptype/lens/op", f[14:22], []byte{0, 1, 0x08, 0, 6, 4, 0, 1}},
		{"sender MAC", f[22:28], testMAC},
		{"sender IP", f[28:32], ip.To4()},
		{"target MAC", f[32:38], make([]byte, 6)},
		{"target IP", f[38:42], ip.To4()},
	}
	for _, c := range checks {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s = % x, want % x", c.name, c.got, c.want)
		}
	}
}

// verifyChecksum recomputes the ICMPv6 sum independently: a correct packet
// sums, with its checksum field, to 0xffff.
func verifyChecksum(t *testing.T, ipv6 []byte) {
	t.Helper()
	var sum uint32
	add16 := func(b []byte) {
		for i := 0; i < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	payloadLen := binary.BigEndian.Uint16(ipv6[4:6])
	add16(ipv6[8:40]) // source and destination
	sum += uint32(payloadLen)
	sum += 58
	add16(ipv6[40 : 40+int(payloadLen)])
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	if sum != 0xffff {
		t.Fatalf("ICMPv6 checksum does not verify (sum %#x)", sum)
	}
}

func TestUnsolicitedNA(t *testing.T) {
	ip := net.ParseIP("fd00::5")
	f := UnsolicitedNA(testMAC, ip)
	if len(f) != 14+40+32 {
		t.Fatalf("frame length %d", len(f))
	}
	if !bytes.Equal(f[0:6], allNodesMAC) || !bytes.Equal(f[6:12], testMAC) || !bytes.Equal(f[12:14], []byte{0x86, 0xdd}) {
		t.Fatalf("bad Ethernet header % x", f[:14])
	}
	v6 := f[14:]
	if v6[0]>>4 != 6 || v6[6] != 58 || v6[7] != 255 {
		t.Fatalf("bad IPv6 header: version %d next %d hop limit %d", v6[0]>>4, v6[6], v6[7])
	}
	if !net.IP(v6[8:24]).Equal(ip) || !net.IP(v6[24:40]).Equal(net.ParseIP("ff02::1")) {
		t.Fatalf("addresses %v -> %v", net.IP(v6[8:24]), net.IP(v6[24:40]))
	}
	icmp := v6[40:]
	if icmp[0] != 136 || icmp[1] != 0 {
		t.Fatalf("type/code %d/%d, want 136/0", icmp[0], icmp[1])
	}
	if icmp[4] != 0x20 {
		t.Fatalf("flags %#x: want Override only (not Solicited, not Router)", icmp[4])
	}
	if !net.IP(icmp[8:24]).Equal(ip) {
		t.Fatalf("target %v", net.IP(icmp[8:24]))
	}
	if icmp[24] != 2 || icmp[25] != 1 || !bytes.Equal(icmp[26:32], testMAC) {
		t.Fatalf("target link-layer option % x", icmp[24:32])
	}
	verifyChecksum(t, v6)
}
