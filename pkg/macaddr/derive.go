package macaddr

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
)

// derivationTag versions the encoding below. Changing anything that feeds the
// hash moves every derived MAC in every cluster; that needs a new tag, a new
// option to select it, and new golden vectors, never an edit of v1.
const derivationTag = "macguard/mac/v1"

// vmInterfaceTag separates the MACs the admission webhook writes into a
// KubeVirt VM's spec (one per spec interface, keyed by the interface's name
// in the VM) from the plugin's MACs for pod interfaces: a different tag
// makes a different hash input, so the two can never coincide or move each
// other, even for the same namespace, VM and name. Like derivationTag it
// never changes; a new encoding gets a new tag.
const vmInterfaceTag = "macguard/kubevirt-interface/v1"

// Prefix is a validated run of leading octets (0 to 5 of them) that replaces
// the start of a derived MAC.
type Prefix []byte

// ParsePrefix parses "0a:58" style prefixes. The first octet must be unicast
// and locally administered because derived MACs are never allowed to collide
// with vendor (universally administered) or multicast space, and at most five
// octets may be fixed so at least one octet comes from the hash.
func ParsePrefix(s string) (Prefix, error) {
	if s == "" {
		return nil, nil
	}
	// Walked twice rather than split into a slice: every config has a
	// prefix to parse, and the result should be its only allocation.
	isSep := func(r rune) bool { return r == ':' || r == '-' }
	n := 0
	for range strings.FieldsFuncSeq(s, isSep) {
		n++
	}
	if n > Len-1 {
		return nil, fmt.Errorf("%w prefix %q: at most 5 octets, so at least one comes from the hash", ErrInvalid, s)
	}
	if strings.Count(s, ":")+strings.Count(s, "-") != n-1 {
		return nil, fmt.Errorf("%w prefix %q: octets are two hex digits separated by ':' or '-'", ErrInvalid, s)
	}
	p := make(Prefix, 0, n)
	for f := range strings.FieldsFuncSeq(s, isSep) {
		b, ok := hexOctet(f)
		if !ok {
			return nil, fmt.Errorf("%w prefix %q: %q is not a two-digit hex octet", ErrInvalid, s, f)
		}
		p = append(p, b)
	}
	if p[0]&0x01 != 0 {
		return nil, fmt.Errorf("%w prefix %q: first octet is multicast (lowest bit set); use e.g. 0a or 02", ErrInvalid, s)
	}
	if p[0]&0x02 == 0 {
		return nil, fmt.Errorf("%w prefix %q: first octet is universally administered (vendor space); set the locally administered bit, e.g. 0a or 02", ErrInvalid, s)
	}
	return p, nil
}

// hexOctet reads exactly two hex digits, either case, as one byte.
// encoding/hex judges the digits; the length is checked here because
// hex.Decode would take "0a58" as two bytes. Measured against the
// hand-written digit switch it replaced (BenchmarkParsePrefix, interleaved,
// 10 runs each): 48 vs 41 ns median per prefix, once per ADD of ~2 ms.
func hexOctet(f string) (byte, bool) {
	if len(f) != 2 {
		return 0, false
	}
	var b [1]byte
	_, err := hex.Decode(b[:], []byte(f))
	return b[0], err == nil
}

// String renders the prefix the way ParsePrefix accepts it.
func (p Prefix) String() string {
	if len(p) == 0 {
		return ""
	}
	return net.HardwareAddr(p).String()
}

// Input is everything a derived MAC depends on. Kind and Key come from the
// workload identity (see package identity); IfName separates the interfaces of
// one workload; Salt separates clusters that share an L2 domain.
type Input struct {
	Kind   string
	Key    string
	IfName string
	Salt   string
	Prefix Prefix
}

// Derive returns the stable MAC for in: SHA-256 over a length-prefixed
// encoding of the tag and fields (so no two distinct inputs encode alike),
// first six bytes, locally administered bit set, multicast bit cleared, and
// then the prefix octets laid over the start.
func Derive(in Input) net.HardwareAddr {
	return derive(derivationTag, in)
}

// DeriveVMInterface returns the stable MAC of a KubeVirt VM's interface as
// the admission webhook writes it into spec...interfaces[].macAddress: the
// same construction as Derive under its own tag, with Kind "vm", Key
// "<namespace>/<VM name>" and IfName the interface's name in the VM spec
// (e.g. "default"), not the pod interface's name.
func DeriveVMInterface(in Input) net.HardwareAddr {
	return derive(vmInterfaceTag, in)
}

func derive(tag string, in Input) net.HardwareAddr {
	// A stack buffer keeps the common case free of allocations besides the
	// result; unusually long names simply make append grow it.
	var buf [256]byte
	enc := buf[:0]
	for _, f := range [...]string{tag, in.Kind, in.Key, in.IfName, in.Salt} {
		enc = binary.BigEndian.AppendUint32(enc, uint32(len(f)))
		enc = append(enc, f...)
	}
	sum := sha256.Sum256(enc)
	mac := make(net.HardwareAddr, Len)
	copy(mac, sum[:Len])
	mac[0] = (mac[0] | 0x02) &^ 0x01
	copy(mac, in.Prefix)
	return mac
}
