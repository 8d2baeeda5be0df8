package kubevirt

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	v1 "kubevirt.io/api/core/v1"
	"kubevirt.io/kubevirt/pkg/libvmi"
	"kubevirt.io/kubevirt/pkg/network/domainspec"
	netdriver "kubevirt.io/kubevirt/pkg/network/driver"
	"kubevirt.io/kubevirt/pkg/network/namescheme"
	"kubevirt.io/kubevirt/pkg/virt-launcher/virtwrap/api"
	"kubevirt.io/kubevirt/pkg/virt-launcher/virtwrap/converter"
	archconverter "kubevirt.io/kubevirt/pkg/virt-launcher/virtwrap/converter/arch"
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
// sandbox podNS: KubeVirt's converter builds it from the VMI, then its
// TapLibvirtSpecGenerator (PlugPhase2, what virt-launcher's preStartHook
// runs for masquerade and tap binding plugins) fills each interface's MAC,
// MTU and target from the pod interface, reading it inside podNS.
func launcherDomain(t *testing.T, vmi *v1.VirtualMachineInstance, podNS ns.NetNS) *api.Domain {
	t.Helper()
	return convertedDomain(t, vmi, podNS, false)
}

// convertedDomain is launcherDomain, with the serial console also logged to
// a file when serialLog is set (KubeVirt's serial console log, which
// virt-launcher enables unless the cluster disables it).
func convertedDomain(t *testing.T, vmi *v1.VirtualMachineInstance, podNS ns.NetNS, serialLog bool) *api.Domain {
	t.Helper()
	v1.SetObjectDefaults_VirtualMachineInstance(vmi)
	vmi.Spec.Architecture = runtime.GOARCH
	domain := &api.Domain{}
	c := &converter.ConverterContext{Architecture: archconverter.NewConverter(runtime.GOARCH), AllowEmulation: true,
		// What virt-handler sends virt-launcher for the VMI's interfaces
		// (no binding plugins registered).
		DomainAttachmentByInterfaceName: domainspec.DomainAttachmentByInterfaceName(vmi.Spec.Domain.Devices.Interfaces, nil),
		SerialConsoleLog:                serialLog}
	if err := converter.Convert_v1_VirtualMachineInstance_To_api_Domain(vmi, domain, c); err != nil {
		t.Fatalf("KubeVirt's converter on VMI %s: %v", vmi.Name, err)
	}
	// What virt-launcher's SyncVMI sets next: defaults not coming from
	// the cluster (among them the domain type).
	api.NewDefaulter(c.Architecture.GetArchitecture()).SetObjectDefaults_Domain(domain)
	err := podNS.Do(func(ns.NetNS) error {
		for i := range vmi.Spec.Domain.Devices.Interfaces {
			iface := &vmi.Spec.Domain.Devices.Interfaces[i]
			gen := domainspec.NewTapLibvirtSpecGenerator(iface, vmi.Spec.Networks[i], domain,
				namescheme.PrimaryPodInterfaceName, &netdriver.NetworkUtilsHandler{})
			if err := gen.Generate(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("KubeVirt's TapLibvirtSpecGenerator in %s: %v", podNS.Path(), err)
	}
	return domain
}

// domainMACs lists the MAC of every interface of the domain, as its XML
// carries it ("" for an empty address).
func domainMACs(d *api.Domain) []string {
	var macs []string
	for _, i := range d.Spec.Devices.Interfaces {
		m := ""
		if i.MAC != nil {
			m = i.MAC.MAC
		}
		macs = append(macs, m)
	}
	return macs
}

// domainXML is the domain as virt-launcher hands it to libvirt.
func domainXML(t *testing.T, d *api.Domain) []byte {
	t.Helper()
	b, err := xml.MarshalIndent(d.Spec, "", "  ")
	if err != nil {
		t.Fatalf("encoding the domain: %v", err)
	}
	return b
}

// virshDefine has libvirt parse the domain (`virsh -c test:///default
// define`, no daemon) and returns what virsh printed and whether it
// accepted it. virsh missing fails the test: libvirt's verdict is the point.
func virshDefine(t *testing.T, domXML []byte) (string, bool) {
	t.Helper()
	virsh, err := exec.LookPath("virsh")
	if err != nil {
		t.Fatalf("virsh not found (Debian package libvirt-clients; hack/kubevirt/prepare.sh packages installs it): %v", err)
	}
	f := filepath.Join(t.TempDir(), "domain.xml")
	if err := os.WriteFile(f, domXML, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(virsh, "-q", "-c", "test:///default", "define", f)
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("running virsh: %v", err)
	}
	return strings.TrimSpace(out.String()), err == nil
}
