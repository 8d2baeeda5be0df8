package link

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
)

// TestTranslate pins what each kernel refusal of RTM_SETLINK becomes: the
// sentinel the plugin maps to a CNI code, and words that tell the user what
// to do. The kernel suites reach only the errnos their devices produce.
func TestTranslate(t *testing.T) {
	mac, _ := net.ParseMAC("0a:58:0a:00:00:01")
	netkitL3 := Observed{Name: "eth0", Kind: KindNetkit, NetkitMode: NetkitL3}
	macvlan := Observed{Name: "net1", Kind: "macvlan", Driver: "macvlan"}
	vf := Observed{Name: "net1", Kind: "device", Driver: "mlx5_core"}
	tests := []struct {
		name string
		o    Observed
		err  error
		want error
		says []string
	}{
		{"netkit L3", netkitL3, syscall.EOPNOTSUPP, ErrNotSupported, []string{"netkit device in L3 mode", "bpf.datapathMode=netkit-l2", "macAddress", `onUnsupported: "skip"`}},
		{"driver without set-MAC", vf, syscall.EOPNOTSUPP, ErrNotSupported, []string{"driver mlx5_core", "does not support changing the MAC"}},
		{"sibling has it", macvlan, syscall.EADDRINUSE, ErrAddrInUse, []string{"same parent device already uses it"}},
		{"address rejected", macvlan, syscall.EADDRNOTAVAIL, ErrRefused, []string{"rejects this address"}},
		{"only while down", vf, syscall.EBUSY, ErrRefused, []string{"only accepts a new MAC while it is down"}},
		{"gone", macvlan, syscall.ENODEV, ErrNotFound, []string{"disappeared"}},
		{"anything else", macvlan, syscall.EPERM, ErrRefused, []string{"operation not permitted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := translate(tt.o, "/run/netns/pod", mac, tt.err)
			if !errors.Is(err, tt.want) {
				t.Fatalf("%v: not %v", err, tt.want)
			}
			for _, s := range append([]string{`"` + tt.o.Name + `"`, "/run/netns/pod", mac.String()}, tt.says...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message lacks %q: %v", s, err)
				}
			}
		})
	}
}
