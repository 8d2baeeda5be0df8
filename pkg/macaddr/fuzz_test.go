package macaddr

import (
	"bytes"
	"errors"
	"regexp"
	"testing"
)

var canonical = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)

// FuzzParse: Parse and ParseUnicast never panic; failures wrap ErrInvalid;
// what Parse accepts is six octets whose canonical form (lowercase, colons)
// parses back to the same address; and ParseUnicast accepts exactly the
// parsed addresses CheckAssignable allows, none of which is zero,
// broadcast or multicast.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0a:58:0a:f4:00:01", "0A-58-0A-F4-00-01", "0a58.0af4.0001", " 02:00:00:00:00:01 ",
		"ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "01:00:5e:00:00:01", "0a:58:00:00:00:00:00:01",
		"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", "not-a-mac", "", "0a:58:0a:f4:00", "0a:58:0a:f4:00:01:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mac, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error does not wrap ErrInvalid: %v", s, err)
			}
		} else {
			if len(mac) != Len {
				t.Fatalf("Parse(%q) = %d octets", s, len(mac))
			}
			str := String(mac)
			if !canonical.MatchString(str) {
				t.Fatalf("String(Parse(%q)) = %q, not canonical", s, str)
			}
			again, err := Parse(str)
			if err != nil || !bytes.Equal(again, mac) || !Equal(again, mac) {
				t.Fatalf("canonical %q of %q parses to %v, %v", str, s, again, err)
			}
		}

		uni, uerr := ParseUnicast(s)
		if uerr != nil {
			if !errors.Is(uerr, ErrInvalid) {
				t.Fatalf("ParseUnicast(%q) error does not wrap ErrInvalid: %v", s, uerr)
			}
			if err == nil && CheckAssignable(mac) == nil {
				t.Fatalf("ParseUnicast(%q) refused an assignable address: %v", s, uerr)
			}
			return
		}
		if err != nil || !bytes.Equal(uni, mac) {
			t.Fatalf("ParseUnicast(%q) = %v but Parse = %v, %v", s, uni, mac, err)
		}
		if IsZero(uni) || IsMulticast(uni) || bytes.Equal(uni, broadcast) || CheckAssignable(uni) != nil {
			t.Fatalf("ParseUnicast(%q) accepted %s, which cannot be assigned", s, uni)
		}
	})
}

// FuzzDerive: every prefix ParsePrefix accepts renders and parses back the
// same, and every MAC derived with it - for any identity, interface name
// and salt - starts with the prefix, is locally administered and can be
// assigned; derivation is deterministic.
func FuzzDerive(f *testing.F) {
	f.Add("", "pod", "default/web-0", "eth0", "")
	f.Add("0a:58", "vm", "ns/vm", "net1", "cluster-a")
	f.Add("02-00-00-00-01", "container", "3f2a9c", "eth0", "s")
	f.Add("0b", "pod", "a/b", "eth0", "")
	f.Add("00:50:56", "pod", "a/b", "eth0", "")
	f.Add("0a:58:00:00:00:01", "pod", "a/b", "eth0", "")
	f.Add("0a::58", "pod", "a/b", "eth0", "")
	f.Fuzz(func(t *testing.T, prefix, kind, key, ifName, salt string) {
		p, err := ParsePrefix(prefix)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParsePrefix(%q) error does not wrap ErrInvalid: %v", prefix, err)
			}
			return
		}
		if len(p) > Len-1 {
			t.Fatalf("ParsePrefix(%q) accepted %d octets", prefix, len(p))
		}
		if again, err := ParsePrefix(p.String()); err != nil || !bytes.Equal(again, p) {
			t.Fatalf("prefix %q renders as %q which parses to %v, %v", prefix, p.String(), again, err)
		}
		in := Input{Kind: kind, Key: key, IfName: ifName, Salt: salt, Prefix: p}
		mac := Derive(in)
		if !bytes.HasPrefix(mac, p) {
			t.Fatalf("Derive with prefix %s gave %s", p, mac)
		}
		if !IsLocal(mac) || CheckAssignable(mac) != nil {
			t.Fatalf("Derive(%+v) = %s: not a locally administered assignable address", in, mac)
		}
		if again := Derive(in); !bytes.Equal(again, mac) {
			t.Fatalf("Derive is not deterministic: %s then %s", mac, again)
		}
	})
}
