package kubevirt

import (
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	v1 "kubevirt.io/api/core/v1"
	"kubevirt.io/kubevirt/pkg/libvmi"
	"kubevirt.io/kubevirt/pkg/virt-launcher/virtwrap/api"

	"github.com/macguard-cni/macguard/test/kubevirt/virtlauncher"
)

// masqueradeVMI is a VMI with one masquerade interface on the pod network,
// as `kubectl create` of the smallest VM gives it; specMAC, when set, is
// the interface's spec.domain.devices.interfaces[].macAddress.
func masqueradeVMI(vm, specMAC string) *v1.VirtualMachineInstance {
	iface := libvmi.InterfaceDeviceWithMasqueradeBinding()
	iface.MacAddress = specMAC
	return libvmi.New(libvmi.WithName(vm), libvmi.WithNamespace(vmNamespace),
		libvmi.WithInterface(iface), libvmi.WithNetwork(v1.DefaultPodNetwork()),
		libvmi.WithResourceMemory("64Mi"))
}

// launcherDomain is the libvirt domain virt-launcher defines for vmi in the
// sandbox podNS (virtlauncher.Domain: KubeVirt's converter, then its
// TapLibvirtSpecGenerator on every tap-attached interface, reading the pod
// interface inside podNS).
func launcherDomain(t *testing.T, vmi *v1.VirtualMachineInstance, podNS ns.NetNS) *api.Domain {
	t.Helper()
	return convertedDomain(t, vmi, podNS, false)
}

// convertedDomain is launcherDomain, with the serial console also logged to
// a file when serialLog is set (KubeVirt's serial console log, which
// virt-launcher enables unless the cluster disables it).
func convertedDomain(t *testing.T, vmi *v1.VirtualMachineInstance, podNS ns.NetNS, serialLog bool) *api.Domain {
	t.Helper()
	d, err := virtlauncher.Domain(vmi, podNS, virtlauncher.Options{SerialConsoleLog: serialLog})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// domainMACs lists the MAC of every interface of the domain, as its XML
// carries it ("" for an empty address).
func domainMACs(d *api.Domain) []string {
	var macs []string
	for _, i := range virtlauncher.Interfaces(d) {
		macs = append(macs, i.MAC)
	}
	return macs
}

// domainXML is the domain as virt-launcher hands it to libvirt.
func domainXML(t *testing.T, d *api.Domain) []byte {
	t.Helper()
	b, err := virtlauncher.XML(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
