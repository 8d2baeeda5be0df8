package macaddr

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "0a:58:0a:f4:00:01", want: "0a:58:0a:f4:00:01"},
		{in: "0A:58:0A:F4:00:01", want: "0a:58:0a:f4:00:01"},
		{in: "0a-58-0a-f4-00-01", want: "0a:58:0a:f4:00:01"},
		{in: " 02:00:00:00:00:01 ", want: "02:00:00:00:00:01"},
		{in: "0a58.0af4.0001", want: "0a:58:0a:f4:00:01"},
		{in: "", wantErr: "empty"},
		{in: "garbage", wantErr: "six hex octets"},
		{in: "0a:58:0a:f4:00", wantErr: "six hex octets"},
		{in: "0a:58:0a:f4:00:01:02:03", wantErr: "has 8 octets"},
		{in: "0a:58:0a:f4:00:zz", wantErr: "six hex octets"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("Parse(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("Parse(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseUnicast(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{in: "02:00:00:00:00:01"},
		{in: "00:50:56:00:00:01"}, // universally administered is fine when requested
		{in: "00:00:00:00:00:00", wantErr: "all zeros"},
		{in: "ff:ff:ff:ff:ff:ff", wantErr: "broadcast"},
		{in: "01:00:5e:00:00:01", wantErr: "multicast"},
		{in: "33:33:00:00:00:01", wantErr: "multicast"},
		{in: "0a:58:0a:f4:00:01:02:03", wantErr: "8 octets"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseUnicast(tt.in)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("ParseUnicast(%q): %v", tt.in, err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("ParseUnicast(%q) = %v; want error containing %q", tt.in, err, tt.wantErr)
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.in) {
				t.Fatalf("error %q does not name the value %q", err, tt.in)
			}
		})
	}
}

func TestZeroAndEqual(t *testing.T) {
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	a := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	if !IsZero(nil) || !IsZero(zero) || IsZero(a) {
		t.Fatal("IsZero must treat nil and all-zero alike and nothing else")
	}
	if !Equal(nil, zero) || Equal(nil, a) || !Equal(a, net.HardwareAddr{2, 0, 0, 0, 0, 1}) {
		t.Fatal("Equal must compare as addresses, empty equal to zero")
	}
	if String(nil) != "" || String(a) != "02:00:00:00:00:01" {
		t.Fatalf("String: got %q / %q", String(nil), String(a))
	}
}

func TestLinkLocal(t *testing.T) {
	// RFC 4291 appendix A: flip the U/L bit, insert ff:fe.
	mac, _ := Parse("42:aa:6a:22:3c:bc")
	if got, want := LinkLocal(mac).String(), "fe80::40aa:6aff:fe22:3cbc"; got != want {
		t.Fatalf("LinkLocal(%s) = %s, want %s", mac, got, want)
	}
	mac, _ = Parse("00:50:56:aa:bb:cc")
	if got, want := LinkLocal(mac).String(), "fe80::250:56ff:feaa:bbcc"; got != want {
		t.Fatalf("LinkLocal(%s) = %s, want %s", mac, got, want)
	}
	if LinkLocal(nil) != nil {
		t.Fatal("LinkLocal(nil) must be nil")
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "", want: ""},
		{in: "0a:58", want: "0a:58"},
		{in: "0A-58", want: "0a:58"},
		{in: "02", want: "02"},
		{in: "02:00:5e:10:20", want: "02:00:5e:10:20"},
		{in: "02:00:5e:10:20:30", wantErr: "at most 5"},
		{in: "01:00", wantErr: "multicast"},
		{in: "03", wantErr: "multicast"},
		{in: "00:50:56", wantErr: "universally administered"},
		{in: "0a:", wantErr: "separated"},
		{in: "0a::58", wantErr: "separated"},
		{in: "0a:5", wantErr: "two-digit hex"},
		{in: "0a:xy", wantErr: "two-digit hex"},
		{in: "0a58", wantErr: "two-digit hex"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePrefix(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePrefix(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("ParsePrefix(%q) = %q, %v; want %q", tt.in, got.String(), err, tt.want)
			}
		})
	}
}
