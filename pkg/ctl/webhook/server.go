package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
)

// MaxBody bounds a request body. The API server sends the object and, on
// UPDATE, the old object: a VM is a few KiB, and etcd refuses objects over
// 1.5 MiB, so 3 MiB holds any real review while a flood cannot make the
// webhook buffer without limit.
const MaxBody = 3 << 20

// Handler serves AdmissionReviews at any path. Bad input gets an HTTP error
// that says what was wrong; it never panics.
type Handler struct {
	Mutator *Mutator
	Log     *slog.Logger
	// MaxBody overrides the package's MaxBody when > 0 (tests).
	MaxBody int64
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		h.Log.Warn("bad admission request", "remote", r.RemoteAddr, "status", code, "reason", msg)
		http.Error(w, "macguard webhook: "+msg, code)
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "method %s: send an AdmissionReview with POST", r.Method)
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		fail(http.StatusUnsupportedMediaType, "Content-Type %q: the webhook reads application/json AdmissionReviews", r.Header.Get("Content-Type"))
		return
	}
	limit := h.MaxBody
	if limit <= 0 {
		limit = MaxBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(http.StatusRequestEntityTooLarge, "body over %d bytes; no VM is that large", limit)
			return
		}
		fail(http.StatusBadRequest, "reading the body: %v", err)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		fail(http.StatusBadRequest, "body is not an AdmissionReview: %v", err)
		return
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" {
		fail(http.StatusBadRequest, "apiVersion %q kind %q: want admission.k8s.io/v1 AdmissionReview (admissionReviewVersions: [v1])", review.APIVersion, review.Kind)
		return
	}
	if review.Request == nil {
		fail(http.StatusBadRequest, "AdmissionReview has no request")
		return
	}
	req := review.Request
	resp, decisions := h.Mutator.Review(req)
	for _, d := range decisions {
		h.Log.Info("admission", "uid", req.UID, "operation", req.Operation, "kind", req.Kind.Kind,
			"namespace", req.Namespace, "vm", req.Name, "interface", d.Interface, "mac", d.MAC,
			"action", d.Action, "reason", d.Reason)
	}
	out, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
	if err != nil {
		fail(http.StatusInternalServerError, "encoding the response: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}
