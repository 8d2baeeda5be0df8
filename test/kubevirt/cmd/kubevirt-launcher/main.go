// Command kubevirt-launcher runs KubeVirt's own network code (package
// virtlauncher) for one VMI, so that test/k8s, whose module cannot import
// KubeVirt, can apply it to a virt-launcher pod of the real node:
//
//	kubevirt-launcher [VMI flags] annotations
//	    the pod's network annotations, as virt-controller writes them (JSON)
//	kubevirt-launcher [VMI flags] -netns PATH domain
//	    the libvirt domain virt-launcher builds in that network namespace:
//	    {"interfaces": [{"alias", "mac", "target"}...], "xml": "..."}
//
// The VMI: interface "default" with masquerade binding on the pod network,
// or (-primary NAD) on a Multus network marked default; with -secondary
// NAD also interface "hostdev" on that Multus network, attached through
// KubeVirt's macvtap binding plugin (domainAttachmentType tap, as
// KubeVirt's documentation registers it), its spec macAddress
// -secondary-mac.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/containernetworking/plugins/pkg/ns"

	v1 "kubevirt.io/api/core/v1"
	"kubevirt.io/kubevirt/pkg/libvmi"

	"github.com/macguard-cni/macguard/test/kubevirt/virtlauncher"
)

// secondaryNetwork is the VMI's name for the secondary network (KubeVirt
// names the pod interface after it: pod<hash>).
const secondaryNetwork = "hostdev"

func main() {
	namespace := flag.String("namespace", "", "the VMI's namespace")
	vm := flag.String("vm", "", "the VMI's name")
	primary := flag.String("primary", "", "NAD ([namespace/]name) of a Multus network marked default for interface \"default\"; empty: the pod network")
	secondary := flag.String("secondary", "", "NAD ([namespace/]name) of interface \"hostdev\"; empty: no such interface")
	secondaryMAC := flag.String("secondary-mac", "", "spec macAddress of interface \"hostdev\"")
	netns := flag.String("netns", "", "the virt-launcher pod's network namespace (domain)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: kubevirt-launcher -namespace NS -vm NAME [-primary NAD] [-secondary NAD -secondary-mac MAC] annotations|(-netns PATH domain)")
		flag.PrintDefaults()
	}
	flag.Parse()
	out, err := run(flag.Args(), *namespace, *vm, *primary, *secondary, *secondaryMAC, *netns)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubevirt-launcher:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "kubevirt-launcher:", err)
		os.Exit(1)
	}
}

func run(args []string, namespace, vm, primary, secondary, secondaryMAC, netns string) (any, error) {
	if len(args) != 1 {
		return nil, errors.New("give one command: annotations or domain")
	}
	if namespace == "" || vm == "" {
		return nil, errors.New("give -namespace and -vm")
	}
	vmi := newVMI(namespace, vm, primary, secondary, secondaryMAC)
	switch args[0] {
	case "annotations":
		return virtlauncher.PodAnnotations(vmi)
	case "domain":
		if netns == "" {
			return nil, errors.New("domain needs -netns PATH (the pod's network namespace)")
		}
		podNS, err := ns.GetNS(netns)
		if err != nil {
			return nil, fmt.Errorf("the pod's network namespace: %w", err)
		}
		defer podNS.Close()
		d, err := virtlauncher.Domain(vmi, podNS, virtlauncher.Options{Bindings: map[string]v1.InterfaceBindingPlugin{
			"macvtap": {DomainAttachmentType: v1.Tap},
		}})
		if err != nil {
			return nil, err
		}
		x, err := virtlauncher.XML(d)
		if err != nil {
			return nil, err
		}
		return struct {
			Interfaces []virtlauncher.Interface `json:"interfaces"`
			XML        string                   `json:"xml"`
		}{virtlauncher.Interfaces(d), string(x)}, nil
	default:
		return nil, fmt.Errorf("unknown command %q: annotations or domain", args[0])
	}
}

func newVMI(namespace, vm, primary, secondary, secondaryMAC string) *v1.VirtualMachineInstance {
	opts := []libvmi.Option{libvmi.WithName(vm), libvmi.WithNamespace(namespace), libvmi.WithResourceMemory("64Mi"),
		libvmi.WithInterface(libvmi.InterfaceDeviceWithMasqueradeBinding())}
	if primary == "" {
		opts = append(opts, libvmi.WithNetwork(v1.DefaultPodNetwork()))
	} else {
		n := libvmi.MultusNetwork(v1.DefaultPodNetwork().Name, primary)
		n.Multus.Default = true
		opts = append(opts, libvmi.WithNetwork(n))
	}
	if secondary != "" {
		iface := libvmi.InterfaceWithMac(libvmi.InterfaceWithMacvtapBindingPlugin(secondaryNetwork), secondaryMAC)
		opts = append(opts, libvmi.WithInterface(*iface), libvmi.WithNetwork(libvmi.MultusNetwork(secondaryNetwork, secondary)))
	}
	return libvmi.New(opts...)
}
