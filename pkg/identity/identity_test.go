package identity

import (
	"strings"
	"testing"
)

func TestVMName(t *testing.T) {
	long := strings.Repeat("a", 50) // VM name long enough that Kubernetes cut the base
	tests := []struct {
		pod, want string
	}{
		{"virt-launcher-vm1-abcde", "vm1"},
		{"virt-launcher-vm1-fghij", "vm1"},
		{"virt-launcher-fedora-vm-x7k2p", "fedora-vm"},
		{"virt-launcher-my-vm-2-bx9qz", "my-vm-2"},
		{"virt-launcher-vm1", ""},        // no random suffix
		{"virt-launcher--abcde", ""},     // empty VM name
		{"virt-launcher-vm1-ABCDE", ""},  // generated suffixes are lowercase
		{"virt-launcher-vm1-abc-d", ""},  // '-' inside the suffix
		{"virt-launcher-vm1abcde", ""},   // no separator before the suffix
		{"virt-launcherx-vm1-abcde", ""}, // not the launcher prefix
		{"web-0", ""},
		{"", ""},
		// 63-character names: the base was cut at 58 characters.
		{("virt-launcher-" + long + "-")[:58] + "b7x2q", long[:44]},
		{"virt-launcher-" + strings.Repeat("b", 43) + "-" + "zz9q2", strings.Repeat("b", 43)},
	}
	for _, tt := range tests {
		t.Run(tt.pod, func(t *testing.T) {
			if got := VMName(tt.pod); got != tt.want {
				t.Fatalf("VMName(%q) = %q, want %q", tt.pod, got, tt.want)
			}
		})
	}
}

func TestVMNameStableAcrossRestarts(t *testing.T) {
	long := strings.Repeat("v", 60)
	first := ("virt-launcher-" + long + "-")[:58] + "abcde"
	second := ("virt-launcher-" + long + "-")[:58] + "fghij"
	if a, b := VMName(first), VMName(second); a == "" || a != b {
		t.Fatalf("truncated launcher names of one VM resolve to %q and %q", a, b)
	}
}

func TestResolve(t *testing.T) {
	pod := Pod{Namespace: "default", Name: "web-0"}
	launcher := Pod{Namespace: "vms", Name: "virt-launcher-vm1-abcde"}
	tests := []struct {
		name    string
		mode    Mode
		pod     Pod
		want    Identity
		wantErr string
	}{
		{"auto pod", ModeAuto, pod, Identity{KindPod, "default/web-0"}, ""},
		{"auto default mode", "", pod, Identity{KindPod, "default/web-0"}, ""},
		{"auto vm", ModeAuto, launcher, Identity{KindVM, "vms/vm1"}, ""},
		{"auto without pod args", ModeAuto, Pod{}, Identity{KindContainer, "cid"}, ""},
		{"auto with namespace only", ModeAuto, Pod{Namespace: "x"}, Identity{KindContainer, "cid"}, ""},
		{"pod keeps launcher name", ModePod, launcher, Identity{KindPod, "vms/virt-launcher-vm1-abcde"}, ""},
		{"pod without args", ModePod, Pod{}, Identity{}, "K8S_POD_NAMESPACE"},
		{"container", ModeContainer, pod, Identity{KindContainer, "cid"}, ""},
		{"unknown", Mode("vm"), pod, Identity{}, "unknown identity mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.mode, tt.pod, "cid")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Resolve = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
