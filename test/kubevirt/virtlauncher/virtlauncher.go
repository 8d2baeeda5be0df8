// Package virtlauncher is what KubeVirt (kubevirt.io/kubevirt, imported as a
// library) does with a VMI's networks around a virt-launcher pod, through
// KubeVirt's own entry points: the pod annotations virt-controller writes
// (its annotation generator: Multus' network selection elements, a
// requested MAC among them, and the default-network override), and the
// libvirt domain virt-launcher builds inside the pod's network namespace
// (its converter, then for every interface attached through a tap the pod
// interface found as virt-launcher finds it and TapLibvirtSpecGenerator,
// which takes each MAC from the VMI spec or else from that interface).
//
// The tests of this module and cmd/kubevirt-launcher (which test/k8s runs
// against pods of the real node) share it.
package virtlauncher

import (
	"encoding/xml"
	"fmt"
	"runtime"

	"github.com/containernetworking/plugins/pkg/ns"

	v1 "kubevirt.io/api/core/v1"
	"kubevirt.io/kubevirt/pkg/network/domainspec"
	netdriver "kubevirt.io/kubevirt/pkg/network/driver"
	"kubevirt.io/kubevirt/pkg/network/link"
	"kubevirt.io/kubevirt/pkg/network/pod/annotations"
	"kubevirt.io/kubevirt/pkg/network/vmispec"
	"kubevirt.io/kubevirt/pkg/virt-launcher/virtwrap/api"
	"kubevirt.io/kubevirt/pkg/virt-launcher/virtwrap/converter"
	archconverter "kubevirt.io/kubevirt/pkg/virt-launcher/virtwrap/converter/arch"
)

// Options are what the cluster, not the VMI, decides.
type Options struct {
	// Bindings are the network binding plugins the KubeVirt CR registers
	// (spec.configuration.network.binding), by name.
	Bindings map[string]v1.InterfaceBindingPlugin
	// SerialConsoleLog logs the serial console to a file too, which
	// virt-launcher enables unless the cluster disables it.
	SerialConsoleLog bool
}

// PodAnnotations are the network annotations virt-controller puts on the
// VMI's virt-launcher pod (KubeVirt's annotation generator, no cluster
// configuration): the Multus networks with each interface's spec MAC as
// the element's "mac", and the default-network override for a Multus
// network marked default.
func PodAnnotations(vmi *v1.VirtualMachineInstance) (map[string]string, error) {
	a, err := annotations.NewGenerator(nil).Generate(vmi)
	if err != nil {
		return nil, fmt.Errorf("KubeVirt's pod annotation generator on VMI %s/%s: %w", vmi.Namespace, vmi.Name, err)
	}
	return a, nil
}

// Domain is the libvirt domain virt-launcher defines for vmi in the
// sandbox podNS: KubeVirt's converter builds it from the VMI (defaults
// set as the API server would), then for every interface attached through
// a tap, KubeVirt finds the pod interface by the network's name (hashed or
// ordinal, link.DiscoverByNetwork, as PlugPhase2 does) and its
// TapLibvirtSpecGenerator fills the interface's MAC, MTU and target,
// reading that interface inside podNS.
func Domain(vmi *v1.VirtualMachineInstance, podNS ns.NetNS, opts Options) (*api.Domain, error) {
	v1.SetObjectDefaults_VirtualMachineInstance(vmi)
	vmi.Spec.Architecture = runtime.GOARCH
	domain := &api.Domain{}
	attachments := domainspec.DomainAttachmentByInterfaceName(vmi.Spec.Domain.Devices.Interfaces, opts.Bindings)
	c := &converter.ConverterContext{Architecture: archconverter.NewConverter(runtime.GOARCH), AllowEmulation: true,
		// What virt-handler sends virt-launcher for the VMI's interfaces.
		DomainAttachmentByInterfaceName: attachments,
		SerialConsoleLog:                opts.SerialConsoleLog}
	if err := converter.Convert_v1_VirtualMachineInstance_To_api_Domain(vmi, domain, c); err != nil {
		return nil, fmt.Errorf("KubeVirt's converter on VMI %s/%s: %w", vmi.Namespace, vmi.Name, err)
	}
	// What virt-launcher's SyncVMI sets next: defaults not coming from
	// the cluster (among them the domain type).
	api.NewDefaulter(c.Architecture.GetArchitecture()).SetObjectDefaults_Domain(domain)
	err := podNS.Do(func(ns.NetNS) error {
		handler := &netdriver.NetworkUtilsHandler{}
		for i := range vmi.Spec.Domain.Devices.Interfaces {
			iface := &vmi.Spec.Domain.Devices.Interfaces[i]
			if attachments[iface.Name] != string(v1.Tap) {
				continue
			}
			network := vmispec.LookupNetworkByName(vmi.Spec.Networks, iface.Name)
			if network == nil {
				return fmt.Errorf("interface %s has no network of that name", iface.Name)
			}
			podIface, err := link.DiscoverByNetwork(handler, vmi.Spec.Networks, *network, vmi.Status.Interfaces)
			if err != nil {
				return fmt.Errorf("finding the pod interface of network %s: %w", network.Name, err)
			}
			if podIface == nil {
				return fmt.Errorf("no pod interface for network %s", network.Name)
			}
			gen := domainspec.NewTapLibvirtSpecGenerator(iface, *network, domain, podIface.Attrs().Name, handler)
			if err := gen.Generate(); err != nil {
				return fmt.Errorf("TapLibvirtSpecGenerator on %s (network %s): %w", podIface.Attrs().Name, network.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("KubeVirt's domain interfaces in %s: %w", podNS.Path(), err)
	}
	return domain, nil
}

// Interface is one interface of a domain as the guest gets it.
type Interface struct {
	// Alias is the VMI interface's name (KubeVirt's ua-<name> alias
	// without the prefix).
	Alias string `json:"alias"`
	// MAC is the address in the domain XML ("" for an empty one).
	MAC string `json:"mac"`
	// Target is the device in the pod the domain attaches it to.
	Target string `json:"target"`
}

// Interfaces lists the domain's interfaces in order.
func Interfaces(d *api.Domain) []Interface {
	var out []Interface
	for _, i := range d.Spec.Devices.Interfaces {
		var e Interface
		if i.Alias != nil {
			e.Alias = i.Alias.GetName()
		}
		if i.MAC != nil {
			e.MAC = i.MAC.MAC
		}
		if i.Target != nil {
			e.Target = i.Target.Device
		}
		out = append(out, e)
	}
	return out
}

// XML is the domain as virt-launcher hands it to libvirt.
func XML(d *api.Domain) ([]byte, error) {
	b, err := xml.MarshalIndent(d.Spec, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the domain: %w", err)
	}
	return b, nil
}
