// Package httpapi is edgeloop's HTTP API kit: bearer-token authentication with roles,
// endpoints whose errors become JSON error bodies with the matching status, and strict
// JSON decoding. The curator, the model registry and the dashboard mount their routes
// on one Mux.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// HandlerFunc is an endpoint; a returned error becomes a JSON error response whose
// status follows the error's kind (see Status).
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Mux routes /api/v1/ requests to endpoints that check the caller's token and role.
type Mux struct {
	tokens *Tokens
	mux    *http.ServeMux
}

// NewMux returns an empty API whose endpoints authenticate callers with tokens.
func NewMux(tokens *Tokens) *Mux {
	m := &Mux{tokens: tokens, mux: http.NewServeMux()}
	m.Handle("GET /api/v1/me", RoleDevice, func(w http.ResponseWriter, r *http.Request) error {
		return WriteJSON(w, http.StatusOK, UserOf(r.Context()))
	})
	return m
}

// Handle adds an endpoint that requires role: "" for any person (annotator, reviewer or
// admin), RoleDevice for devices and any person, or that role (admins hold every
// role). When the pattern has a {p} segment (a project id), the caller must also be a
// member of that project; endpoints without one filter what they return themselves.
func (m *Mux) Handle(pattern, role string, f HandlerFunc) {
	scoped := strings.Contains(pattern, "{p}")
	m.mux.Handle(pattern, m.tokens.authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := UserOf(r.Context())
		if !u.allowed(role) {
			need := "a person's role (annotator, reviewer or admin)"
			if role != "" {
				need = fmt.Sprintf("role %q", role)
			}
			WriteError(w, http.StatusForbidden, "user %s: %s is required for %s %s", u.Name, need, r.Method, r.URL.Path)
			return
		}
		if scoped && !u.Member(r.PathValue("p")) {
			WriteError(w, http.StatusForbidden, "user %s is not a member of project %q (the token's projects: %v)", u.Name, r.PathValue("p"), u.Projects)
			return
		}
		if err := f(w, r); err != nil {
			WriteError(w, Status(err), "%v", err)
		}
	})))
}

// ServeHTTP implements http.Handler.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.mux.ServeHTTP(w, r) }

// Status maps an error's kind to an HTTP status: invalid 400, forbidden 403, not found
// 404, conflict or exists 409, anything else 500.
func Status(err error) int {
	switch {
	case errors.Is(err, project.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, project.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, objstore.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, project.ErrConflict), errors.Is(err, project.ErrExists):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// WriteJSON writes v as a JSON response with the status code.
func WriteJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

// WriteError writes {"error": message} with the status code.
func WriteError(w http.ResponseWriter, code int, format string, args ...any) {
	_ = WriteJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// maxBody bounds a JSON request body.
const maxBody = 4 << 20

// Decode reads a JSON request body strictly (unknown fields refused, at most 4 MiB).
func Decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", project.ErrInvalid, err)
	}
	return nil
}
