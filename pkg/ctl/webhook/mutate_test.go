package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/macguard-cni/macguard/pkg/logging"
)

// The MACs below are pinned by pkg/macaddr's TestDeriveVMInterfaceGolden
// (default/vm1 "default" and "net1"; prod/fedora-vm with salt cluster-a).
const (
	macVM1Default = "be:46:d1:e5:de:19"
	macVM1Net1    = "7e:9f:67:be:71:67"
	macFedoraSalt = "06:b3:ab:49:58:ad"
)

var vmGVK = metav1.GroupVersionKind{Group: "kubevirt.io", Version: "v1", Kind: "VirtualMachine"}
var vmiGVK = metav1.GroupVersionKind{Group: "kubevirt.io", Version: "v1", Kind: "VirtualMachineInstance"}

// vmJSON is a VirtualMachine in namespace ns named name whose template has
// interfaces with the given name=mac pairs (mac may be empty), plus a field
// from a KubeVirt version newer than the types, which must survive.
func vmJSON(name string, ifaces ...string) string {
	var list []string
	for _, s := range ifaces {
		n, mac, _ := strings.Cut(s, "=")
		e := `{"name":"` + n + `","masquerade":{},"futureField":{"x":1}`
		if mac != "" {
			e += `,"macAddress":"` + mac + `"`
		}
		list = append(list, e+"}")
	}
	return `{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachine","metadata":{"name":"` + name + `"},` +
		`"spec":{"runStrategy":"Always","template":{"spec":{"domain":{"devices":{"interfaces":[` + strings.Join(list, ",") + `]}},` +
		`"networks":[{"name":"default","pod":{}}]}}}}`
}

func vmiJSON(name string, ifaces ...string) string {
	var list []string
	for _, s := range ifaces {
		n, mac, _ := strings.Cut(s, "=")
		e := `{"name":"` + n + `","bridge":{}`
		if mac != "" {
			e += `,"macAddress":"` + mac + `"`
		}
		list = append(list, e+"}")
	}
	return `{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachineInstance","metadata":{"name":"` + name + `"},` +
		`"spec":{"domain":{"devices":{"interfaces":[` + strings.Join(list, ",") + `]}}}}`
}

// macsOf applies the response's patch to obj and returns each interface's
// name=mac, so a test sees the object the API server would store.
func macsOf(t *testing.T, kind, obj string, resp *admissionv1.AdmissionResponse) []string {
	t.Helper()
	out := []byte(obj)
	if resp.Patch != nil {
		if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
			t.Fatalf("patch type %v, want JSONPatch", resp.PatchType)
		}
		p, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("patch %s: %v", resp.Patch, err)
		}
		if out, err = p.Apply(out); err != nil {
			t.Fatalf("applying %s: %v", resp.Patch, err)
		}
		if !strings.Contains(string(out), `"futureField"`) && strings.Contains(obj, `"futureField"`) {
			t.Fatalf("the patch lost a field the types do not know: %s", out)
		}
	}
	_, ifaces, _, err := interfaces(kind, out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range ifaces {
		got = append(got, i.Name+"="+i.MacAddress)
	}
	return got
}

func TestReview(t *testing.T) {
	m := &Mutator{Exclude: map[string]bool{"kube-system": true}, Log: logging.Discard()}
	salted := &Mutator{Salt: "cluster-a", Log: logging.Discard()}
	tests := []struct {
		name    string
		m       *Mutator
		op      admissionv1.Operation
		gvk     metav1.GroupVersionKind
		ns      string
		obj     string
		old     string
		want    []string // interfaces after the patch
		wantOps int
		warn    string // a warning containing this, or none
	}{
		{name: "vm create fills every interface", op: admissionv1.Create, gvk: vmGVK, ns: "default",
			obj: vmJSON("vm1", "default", "net1"), want: []string{"default=" + macVM1Default, "net1=" + macVM1Net1}, wantOps: 2},
		{name: "salt", m: salted, op: admissionv1.Create, gvk: vmGVK, ns: "prod",
			obj: vmJSON("fedora-vm", "default"), want: []string{"default=" + macFedoraSalt}, wantOps: 1},
		{name: "user MAC kept", op: admissionv1.Create, gvk: vmGVK, ns: "default",
			obj: vmJSON("vm1", "default=02:00:00:00:00:aa", "net1"), want: []string{"default=02:00:00:00:00:aa", "net1=" + macVM1Net1}, wantOps: 1},
		{name: "update fills only the new interface", op: admissionv1.Update, gvk: vmGVK, ns: "default",
			old: vmJSON("vm1", "default="+macVM1Default), obj: vmJSON("vm1", "default="+macVM1Default, "net1"),
			want: []string{"default=" + macVM1Default, "net1=" + macVM1Net1}, wantOps: 1},
		{name: "update keeps the old MAC when the field was dropped", op: admissionv1.Update, gvk: vmGVK, ns: "default",
			old: vmJSON("vm1", "default=02:00:00:00:00:bb"), obj: vmJSON("vm1", "default"),
			want: []string{"default=02:00:00:00:00:bb"}, wantOps: 1},
		{name: "vmi create from a template gets the VM's MACs", op: admissionv1.Create, gvk: vmiGVK, ns: "default",
			obj: vmiJSON("vm1", "default", "net1"), want: []string{"default=" + macVM1Default, "net1=" + macVM1Net1}, wantOps: 2},
		{name: "vmi update not mutated", op: admissionv1.Update, gvk: vmiGVK, ns: "default",
			obj: vmiJSON("vm1", "default"), want: []string{"default="}},
		{name: "vm delete not mutated", op: admissionv1.Delete, gvk: vmGVK, ns: "default",
			obj: vmJSON("vm1", "default"), want: []string{"default="}},
		{name: "excluded namespace", op: admissionv1.Create, gvk: vmGVK, ns: "kube-system",
			obj: vmJSON("vm1", "default"), want: []string{"default="}},
		{name: "no template", op: admissionv1.Create, gvk: vmGVK, ns: "default",
			obj: `{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachine","metadata":{"name":"vm1"},"spec":{}}`},
		{name: "generateName", op: admissionv1.Create, gvk: vmGVK, ns: "default",
			obj: vmJSON("", "default"), want: []string{"default="}, warn: "no name yet"},
		{name: "wrong kind", op: admissionv1.Create, gvk: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, ns: "default",
			obj: vmJSON("vm1", "default"), warn: "not a kubevirt.io VirtualMachine"},
		{name: "malformed vm", op: admissionv1.Create, gvk: vmGVK, ns: "default",
			obj: `{"kind":"VirtualMachine","spec":{"template":{"spec":{"domain":{"devices":{"interfaces":"nope"}}}}}}`, warn: "not a valid VirtualMachine"},
		{name: "invalid user MAC: nothing filled", op: admissionv1.Create, gvk: vmGVK, ns: "default",
			obj: vmJSON("vm1", "default=zz", "net1"), want: nil, warn: `macAddress "zz"`},
		{name: "no object", op: admissionv1.Create, gvk: vmGVK, ns: "default", warn: "has no object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu := tt.m
			if mu == nil {
				mu = m
			}
			req := &admissionv1.AdmissionRequest{UID: "u1", Kind: tt.gvk, Namespace: tt.ns, Operation: tt.op,
				Object: runtime.RawExtension{Raw: []byte(tt.obj)}, OldObject: runtime.RawExtension{Raw: []byte(tt.old)}}
			resp, ds := mu.Review(req)
			if !resp.Allowed || resp.UID != "u1" {
				t.Fatalf("response %+v: every request is allowed and answered with its UID", resp)
			}
			if len(ds) == 0 {
				t.Fatal("no decision to log")
			}
			var ops []patchOp
			if resp.Patch != nil {
				if err := json.Unmarshal(resp.Patch, &ops); err != nil {
					t.Fatal(err)
				}
			}
			if len(ops) != tt.wantOps {
				t.Fatalf("%d patch operations %s, want %d", len(ops), resp.Patch, tt.wantOps)
			}
			for _, op := range ops {
				if op.Op != "add" || !strings.HasSuffix(op.Path, "/macAddress") {
					t.Fatalf("patch operation %+v touches something other than a macAddress", op)
				}
			}
			joined := strings.Join(resp.Warnings, "\n")
			if (tt.warn == "") != (joined == "") || !strings.Contains(joined, tt.warn) {
				t.Fatalf("warnings %q, want one containing %q", resp.Warnings, tt.warn)
			}
			if tt.want != nil {
				if got := macsOf(t, tt.gvk.Kind, tt.obj, resp); strings.Join(got, " ") != strings.Join(tt.want, " ") {
					t.Fatalf("interfaces after the patch %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// TestVMIFromTemplate: virt-controller makes the VMI from the VM's template
// on every start; the VMI's interfaces then carry the MACs the VM got, and
// the webhook's VMI pass leaves them alone.
func TestVMIFromTemplate(t *testing.T) {
	m := &Mutator{Log: logging.Discard()}
	vm := vmJSON("vm1", "default", "net1")
	resp, _ := m.Review(&admissionv1.AdmissionRequest{Kind: vmGVK, Namespace: "default", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(vm)}})
	p, _ := jsonpatch.DecodePatch(resp.Patch)
	patched, err := p.Apply([]byte(vm))
	if err != nil {
		t.Fatal(err)
	}
	var v kubevirtv1.VirtualMachine
	if err := json.Unmarshal(patched, &v); err != nil {
		t.Fatal(err)
	}
	vmi := kubevirtv1.VirtualMachineInstance{TypeMeta: metav1.TypeMeta{APIVersion: "kubevirt.io/v1", Kind: "VirtualMachineInstance"},
		ObjectMeta: metav1.ObjectMeta{Name: "vm1", Namespace: "default"}, Spec: v.Spec.Template.Spec}
	raw, _ := json.Marshal(vmi)
	resp, ds := m.Review(&admissionv1.AdmissionRequest{Kind: vmiGVK, Namespace: "default", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}})
	if resp.Patch != nil {
		t.Fatalf("the VMI made from a mutated template was patched again: %s", resp.Patch)
	}
	for _, d := range ds {
		if d.Action != "keep" {
			t.Fatalf("decision %+v, want keep", d)
		}
	}
	if got := macsOf(t, kindVMI, string(raw), resp); strings.Join(got, " ") != "default="+macVM1Default+" net1="+macVM1Net1 {
		t.Fatalf("VMI interfaces %v", got)
	}
}
