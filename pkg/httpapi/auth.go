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

	"github.com/edgeloop/edgeloop/pkg/contract"
)

// Roles.
const (
	RoleAnnotator = "annotator"
	RoleReviewer  = "reviewer"
	RoleAdmin     = "admin"
	// RoleDevice reads its projects' release and model artifacts, and nothing else.
	RoleDevice = "device"
)

// AllProjects in a token's projects makes it a member of every project.
const AllProjects = "*"

// User is an authenticated caller.
type User struct {
	Name  string   `json:"user"`
	Roles []string `json:"roles"`
	// Projects are the projects the user is a member of (AllProjects: every one). A
	// user reaches no endpoint of a project it is not a member of.
	Projects []string `json:"projects"`
}

// Can reports whether the user holds role (admins hold every role).
func (u *User) Can(role string) bool {
	return u != nil && (slices.Contains(u.Roles, role) || slices.Contains(u.Roles, RoleAdmin))
}

// Person reports whether the user is a person (annotator, reviewer or admin) rather
// than only a device.
func (u *User) Person() bool {
	return u != nil && (u.Can(RoleAnnotator) || u.Can(RoleReviewer))
}

// Member reports whether the user may reach project pid.
func (u *User) Member(pid string) bool {
	return u != nil && (slices.Contains(u.Projects, AllProjects) || slices.Contains(u.Projects, pid))
}

// allowed reports whether the user may call an endpoint that requires role: "" is any
// person, RoleDevice is devices and any person, any other role is that role (or admin).
func (u *User) allowed(role string) bool {
	switch role {
	case "":
		return u.Person()
	case RoleDevice:
		return u.Person() || u.Can(RoleDevice)
	}
	return u.Can(role)
}

// Tokens maps bearer tokens to users.
type Tokens struct {
	Tokens map[string]User `json:"tokens"`
}

// LoadTokens reads a JSON token file: {"tokens": {"TOKEN": {"user": "alice",
// "roles": ["annotator"], "projects": ["digits"]}}}. A person's token without
// "projects" is a member of every project (["*"], as token files written before
// projects existed meant); a device token must name its projects, and not "*".
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
		if !u.Person() {
			if len(u.Projects) == 0 || slices.Contains(u.Projects, AllProjects) {
				return nil, fmt.Errorf(`tokens %s: device user %s: name the projects it belongs to ("projects": ["<project>"]), not none or "*"`, path, u.Name)
			}
		} else if len(u.Projects) == 0 {
			u.Projects = []string{AllProjects}
			t.Tokens[tok] = u
		}
		for _, p := range u.Projects {
			if p != AllProjects && !contract.ValidID(p) {
				return nil, fmt.Errorf("tokens %s: user %s: project %q is not a project id", path, u.Name, p)
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
