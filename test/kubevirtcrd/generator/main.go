//go:build macguard_kubevirt_crdgen

// The generator proper: built by ../main.go inside KubeVirt's own module
// (where kubevirt.io/kubevirt is the main module, so its go.mod's pins
// apply), never by this repository's module (the build tag keeps it out).
// It prints the CustomResourceDefinitions that KubeVirt's virt-operator
// installs for VirtualMachines and VirtualMachineInstances, made by the
// operator's own code (pkg/virt-operator/resource/generate/components),
// with their generated OpenAPI validation.
package main

import (
	"fmt"
	"os"

	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
	"sigs.k8s.io/yaml"
)

func main() {
	for _, make := range []func() (*extv1.CustomResourceDefinition, error){
		components.NewVirtualMachineCrd, components.NewVirtualMachineInstanceCrd,
	} {
		crd, err := make()
		if err != nil {
			fmt.Fprintln(os.Stderr, "generating a CRD:", err)
			os.Exit(1)
		}
		crd.TypeMeta.APIVersion, crd.TypeMeta.Kind = "apiextensions.k8s.io/v1", "CustomResourceDefinition"
		b, err := yaml.Marshal(crd)
		if err != nil {
			fmt.Fprintln(os.Stderr, "encoding", crd.Name, err)
			os.Exit(1)
		}
		fmt.Printf("---\n%s", b)
	}
}
