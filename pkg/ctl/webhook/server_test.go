package webhook

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

func review(obj string) string {
	return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u7",` +
		`"kind":{"group":"kubevirt.io","version":"v1","kind":"VirtualMachine"},"namespace":"default","name":"vm1","operation":"CREATE","object":` + obj + `}}`
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		ctype    string
		body     string
		wantCode int
		wantText string
	}{
		{"ok", "POST", "application/json", review(vmJSON("vm1", "default")), 200, `"patchType":"JSONPatch"`},
		{"charset", "POST", "application/json; charset=utf-8", review(vmJSON("vm1", "default")), 200, `"patchType":"JSONPatch"`},
		{"get", "GET", "application/json", "", 405, "send an AdmissionReview with POST"},
		{"content type", "POST", "text/plain", review(vmJSON("vm1", "default")), 415, "application/json"},
		{"not json", "POST", "application/json", "{nope", 400, "not an AdmissionReview"},
		{"wrong version", "POST", "application/json", `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}`, 400, "admissionReviewVersions"},
		{"no request", "POST", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, 400, "no request"},
		{"too big", "POST", "application/json", review(vmJSON("vm1", "default")) + strings.Repeat(" ", 4096), 413, "body over 2048 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			h := &Handler{Mutator: &Mutator{Log: log}, Log: log, MaxBody: 2048}
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tt.method, "/mutate", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ctype)
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode || !strings.Contains(rec.Body.String(), tt.wantText) {
				t.Fatalf("status %d body %q; want %d containing %q", rec.Code, rec.Body.String(), tt.wantCode, tt.wantText)
			}
			if tt.wantCode != 200 {
				if !strings.Contains(logs.String(), "bad admission request") {
					t.Fatalf("refusal not logged: %q", logs.String())
				}
				return
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil || out.Response.UID != "u7" || out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" {
				t.Fatalf("response %s: %v", rec.Body.String(), err)
			}
			if !strings.Contains(string(out.Response.Patch), macVM1Default) {
				t.Fatalf("patch %s lacks %s", out.Response.Patch, macVM1Default)
			}
			// Every decision is logged with namespace, VM, interface, MAC and why.
			for _, want := range []string{"namespace=default", "vm=vm1", "interface=default", "mac=" + macVM1Default, "action=assign", "reason="} {
				if !strings.Contains(logs.String(), want) {
					t.Fatalf("log %q lacks %q", logs.String(), want)
				}
			}
		})
	}
}
