// Package webhook is macguardctl's mutating admission webhook for KubeVirt:
// every interface of a VirtualMachine's template (CREATE, UPDATE) and of a
// VirtualMachineInstance (CREATE) that has no macAddress gets the stable MAC
// derived from the VM's identity (macaddr.DeriveVMInterface), so the guest's
// MAC lives in the spec and does not depend on the pod interface, which on
// Cilium's netkit L3 datapath cannot carry any MAC.
//
// It keeps no state: the MAC is a function of namespace, VM name, interface
// name and salt, the same on every replica, every restart and every cluster
// with the same salt. It is operator tooling and is linked into macguardctl
// only, never into the plugin.
package webhook

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/macguard-cni/macguard/pkg/identity"
	"github.com/macguard-cni/macguard/pkg/macaddr"
)

// The kinds the webhook mutates.
const (
	kindVM  = "VirtualMachine"
	kindVMI = "VirtualMachineInstance"
)

// Mutator decides the patch for one admission request. Its fields are the
// derivation's inputs that come from the cluster's configuration.
type Mutator struct {
	Salt   string
	Prefix macaddr.Prefix
	// Exclude names namespaces the webhook leaves alone even when the
	// MutatingWebhookConfiguration's namespaceSelector sends them (a second
	// line behind the selector; kube-system by default).
	Exclude map[string]bool
	Log     *slog.Logger
}

// Decision is what happened to one interface (or, with Interface empty, to
// the whole object), as logged.
type Decision struct {
	Interface string
	MAC       string
	// Action is "assign" (the patch writes MAC), "keep" (left as it is) or
	// "skip" (the object is not mutated at all).
	Action string
	Reason string
}

// patchOp is one RFC 6902 operation; the webhook only ever adds a
// macAddress field.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}

// Review answers one request. It never fails the request: an object it
// cannot read is admitted unchanged with a warning, because a VM without a
// derived MAC is better than no VM (the same reasoning as failurePolicy
// Ignore). The decisions are returned for the caller's log and for tests.
func (m *Mutator) Review(req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, []Decision) {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	skip := func(reason string) (*admissionv1.AdmissionResponse, []Decision) {
		return resp, []Decision{{Action: "skip", Reason: reason}}
	}
	warn := func(reason string) (*admissionv1.AdmissionResponse, []Decision) {
		resp.Warnings = append(resp.Warnings, "macguard webhook: "+reason)
		resp.Result = &metav1.Status{Message: reason}
		return skip(reason)
	}
	if req.Kind.Group != kubevirtv1.SchemeGroupVersion.Group || (req.Kind.Kind != kindVM && req.Kind.Kind != kindVMI) {
		return warn(fmt.Sprintf("kind %s is not a kubevirt.io VirtualMachine or VirtualMachineInstance; left unchanged (check the rules of the MutatingWebhookConfiguration)", req.Kind.String()))
	}
	if m.Exclude[req.Namespace] {
		return skip(fmt.Sprintf("namespace %s is excluded (--exclude-namespaces)", req.Namespace))
	}
	switch {
	case req.Operation == admissionv1.Create:
	case req.Operation == admissionv1.Update && req.Kind.Kind == kindVM:
	default:
		return skip(fmt.Sprintf("operation %s on %s is not mutated (only VirtualMachine CREATE/UPDATE and VirtualMachineInstance CREATE)", req.Operation, req.Kind.Kind))
	}
	name, ifaces, base, err := interfaces(req.Kind.Kind, req.Object.Raw)
	if err != nil {
		return warn(fmt.Sprintf("%s %s/%s left unchanged: %v", req.Kind.Kind, req.Namespace, req.Name, err))
	}
	if name == "" {
		name = req.Name
	}
	if name == "" {
		return warn(fmt.Sprintf("%s in namespace %s has no name yet (generateName), so its MACs cannot be derived; left unchanged: give the VM a name", req.Kind.Kind, req.Namespace))
	}
	if ifaces == nil {
		return skip("no interfaces in the spec (when KubeVirt's own webhook adds the default one, reinvocationPolicy IfNeeded calls this webhook again)")
	}
	// On UPDATE a MAC the object had before is kept: the derivation gives
	// the same value unless the salt or prefix changed since, and then the
	// guest must not see its MAC move.
	old := map[string]string{}
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		if _, oldIfaces, _, err := interfaces(req.Kind.Kind, req.OldObject.Raw); err == nil {
			for _, o := range oldIfaces {
				if o.MacAddress != "" {
					old[o.Name] = o.MacAddress
				}
			}
		}
	}
	var ops []patchOp
	var ds []Decision
	for i, ifc := range ifaces {
		switch {
		case ifc.MacAddress != "":
			ds = append(ds, Decision{Interface: ifc.Name, MAC: ifc.MacAddress, Action: "keep", Reason: "macAddress set in the spec (by the user or earlier by this webhook); never changed"})
			continue
		case ifc.Name == "":
			ds = append(ds, Decision{Action: "keep", Reason: fmt.Sprintf("interface %d has no name, so no MAC can be derived for it (KubeVirt's validation refuses it)", i)})
			continue
		}
		mac, reason := old[ifc.Name], "kept the MAC this interface had before the update"
		if mac == "" {
			id := identity.VM(req.Namespace, name)
			mac = macaddr.DeriveVMInterface(macaddr.Input{Kind: id.Kind, Key: id.Key, IfName: ifc.Name, Salt: m.Salt, Prefix: m.Prefix}).String()
			reason = "no macAddress in the spec: stable MAC of " + id.String()
		}
		ops = append(ops, patchOp{Op: "add", Path: fmt.Sprintf("%s/%d/macAddress", base, i), Value: mac})
		ds = append(ds, Decision{Interface: ifc.Name, MAC: mac, Action: "assign", Reason: reason})
	}
	if len(ops) > 0 {
		patch, err := json.Marshal(ops)
		if err != nil {
			return warn(fmt.Sprintf("encoding the patch: %v", err))
		}
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
	}
	return resp, ds
}

// interfaces reads the object's name and the interface list the webhook
// fills, with the JSON pointer of that list; a nil list means there is none.
// Decoding into KubeVirt's own types checks the object's shape; the patch
// then touches only the macAddress fields it names, so fields this version
// of the types does not know are never lost.
func interfaces(kind string, raw []byte) (string, []kubevirtv1.Interface, string, error) {
	if len(raw) == 0 {
		return "", nil, "", fmt.Errorf("the request has no object")
	}
	switch kind {
	case kindVM:
		var vm kubevirtv1.VirtualMachine
		if err := json.Unmarshal(raw, &vm); err != nil {
			return "", nil, "", fmt.Errorf("not a valid VirtualMachine: %w", err)
		}
		if vm.Spec.Template == nil {
			return vm.Name, nil, "", nil
		}
		return vm.Name, vm.Spec.Template.Spec.Domain.Devices.Interfaces, "/spec/template/spec/domain/devices/interfaces", checkMACs(vm.Spec.Template.Spec.Domain.Devices.Interfaces)
	default:
		var vmi kubevirtv1.VirtualMachineInstance
		if err := json.Unmarshal(raw, &vmi); err != nil {
			return "", nil, "", fmt.Errorf("not a valid VirtualMachineInstance: %w", err)
		}
		return vmi.Name, vmi.Spec.Domain.Devices.Interfaces, "/spec/domain/devices/interfaces", checkMACs(vmi.Spec.Domain.Devices.Interfaces)
	}
}

// checkMACs refuses to work on a spec with an unparsable MAC: KubeVirt's
// own validating webhook rejects it, and the user should see that error,
// not a partially filled spec.
func checkMACs(ifaces []kubevirtv1.Interface) error {
	for _, ifc := range ifaces {
		if ifc.MacAddress == "" {
			continue
		}
		if _, err := net.ParseMAC(ifc.MacAddress); err != nil {
			return fmt.Errorf("interface %q: macAddress %q: %w", ifc.Name, ifc.MacAddress, err)
		}
	}
	return nil
}
