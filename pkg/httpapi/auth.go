package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
)

// Roles.
const (
	RoleAnnotator = "annotator"
	RoleReviewer  = "reviewer"
	RoleAdmin     = "admin"
	// RoleDevice may download model artifacts.
	RoleDevice = "device"
)

// User is an authenticated caller.
type User struct {
	Name  string   `json:"user"`
	Roles []string `json:"roles"`
}

// Can reports whether the user holds role (admins hold every role).
func (u *User) Can(role string) bool {
	return u != nil && (slices.Contains(u.Roles, role) || slices.Contains(u.Roles, RoleAdmin))
}

// Tokens maps bearer tokens to users.
type Tokens struct {
	Tokens map[string]User `json:"tokens"`
}

// LoadTokens reads a JSON token file: {"tokens": {"TOKEN": {"user": "alice",
// "roles": ["annotator"]}}}.
func LoadTokens(path string) (*Tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	var t Tokens
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("tokens %s: %w", path, err)
	}
	for tok, u := range t.Tokens {
		if len(tok) < 8 {
			return nil, fmt.Errorf("tokens %s: token of user %s is shorter than 8 characters", path, u.Name)
		}
		for _, r := range u.Roles {
			if r != RoleAnnotator && r != RoleReviewer && r != RoleAdmin && r != RoleDevice {
				return nil, fmt.Errorf("tokens %s: user %s: unknown role %q", path, u.Name, r)
			}
		}
	}
	return &t, nil
}

// Lookup finds the user of a token (constant-time comparison).
func (t *Tokens) Lookup(token string) *User {
	for tok, u := range t.Tokens {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(token)) == 1 {
			u := u
			return &u
		}
	}
	return nil
}

type userKey struct{}

// UserOf returns the request's authenticated user.
func UserOf(ctx context.Context) *User {
	u, _ := ctx.Value(userKey{}).(*User)
	return u
}

// authenticate puts the bearer token's user in the request context; requests without a
// valid token are refused with 401.
func (t *Tokens) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		u := t.Lookup(strings.TrimSpace(tok))
		if !ok || u == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="edgeloop"`)
			WriteError(w, http.StatusUnauthorized, "a valid bearer token is required (Authorization: Bearer <token>)")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}
