package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/dashboard"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
)

// apiOn mounts the curator's, the registry's and the dashboard's endpoints on a memory
// store holding the projects digits and other (a batch, an example and its image each),
// with the tokens of deploy/tokens.example.json plus extra ones.
func apiOn(t *testing.T, extra string) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	st := memstore.New()
	ps := &project.Store{S: st}
	for _, pid := range []string{"digits", "other"} {
		if err := ps.CreateProject(ctx, &project.Project{ID: pid, Task: "classify", Classes: []string{"0", "1"}}); err != nil {
			t.Fatal(err)
		}
		img, _, err := objstore.PutContent(ctx, st, project.ImagePrefix(pid), []byte("\x89PNG not really"), "image/png")
		if err != nil {
			t.Fatal(err)
		}
		rec := &project.ExampleRecord{ID: "ex-1", Project: pid, Device: "cam-" + pid, Image: img, ContentType: "image/png"}
		if _, err := objstore.PutJSON(ctx, st, project.ExampleKey(pid, "ex-1"), rec, objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		b := &project.Batch{ID: "b000001", Project: pid, State: project.StateReady, Items: []project.Item{{ExampleID: "ex-1", Class: "1"}}}
		if _, err := objstore.PutJSON(ctx, st, project.BatchKey(pid, b.ID), b, objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.ReadFile(filepath.Join("..", "..", "deploy", "tokens.example.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]map[string]json.RawMessage
	if err := json.Unmarshal(src, &file); err != nil {
		t.Fatal(err)
	}
	if extra != "" {
		var more map[string]json.RawMessage
		if err := json.Unmarshal([]byte(extra), &more); err != nil {
			t.Fatal(err)
		}
		for k, v := range more {
			file["tokens"][k] = v
		}
	}
	path := filepath.Join(t.TempDir(), "tokens.json")
	data, _ := json.Marshal(file)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := httpapi.LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	cur := curator.New(st, nil, kafkabus.Config{}, curator.NewMetrics(opshttp.NewRegistry()), zap.NewNop())
	reg := registry.New(st, nil, kafkabus.Config{}, "http://127.0.0.1")
	api := httpapi.NewMux(tokens)
	curator.Mount(api, cur)
	registry.Mount(api, reg)
	dashboard.Mount(api, cur, reg, dashboard.NewTracker(time.Second, zap.NewNop()))
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, base, token, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// TestTokensAreScopedToProjectsAndRoles: a device token reads its own project's release
// and artifacts and nothing else; a person's token reaches only the projects it is a
// member of; an admin token of "*" reaches every project.
func TestTokensAreScopedToProjectsAndRoles(t *testing.T) {
	srv := apiOn(t, `{"annotator-of-other": {"user": "otto", "roles": ["annotator"], "projects": ["other"]}}`)
	const device = "device-dev-token" // a device of project digits
	for _, path := range []string{
		"/api/v1/projects",
		"/api/v1/projects/digits",
		"/api/v1/projects/digits/batches",
		"/api/v1/projects/digits/batches/b000001",
		"/api/v1/projects/digits/examples/ex-1",
		"/api/v1/projects/digits/examples/ex-1/image",
		"/api/v1/projects/digits/dataset",
		"/api/v1/projects/digits/dataset/export",
		"/api/v1/projects/digits/dashboard",
		"/api/v1/projects/digits/models",
		"/api/v1/projects/other/batches",
		"/api/v1/projects/other/examples/ex-1/image",
		"/api/v1/projects/other/release",
		"/api/v1/projects/other/models/1/artifact",
	} {
		if code, body := get(t, srv.URL, device, path); code != http.StatusForbidden {
			t.Errorf("device token: GET %s: %d %s, want 403", path, code, body)
		}
	}
	// Its own project's release and artifacts: allowed (none exists yet: 404, not 403).
	for _, path := range []string{"/api/v1/projects/digits/release", "/api/v1/projects/digits/models/1/artifact"} {
		if code, body := get(t, srv.URL, device, path); code != http.StatusNotFound {
			t.Errorf("device token: GET %s: %d %s, want 404 (allowed, nothing released)", path, code, body)
		}
	}
	// A person scoped to project other.
	const otto = "annotator-of-other"
	for _, path := range []string{"/api/v1/projects/digits", "/api/v1/projects/digits/batches", "/api/v1/projects/digits/examples/ex-1/image",
		"/api/v1/projects/digits/dataset/export", "/api/v1/projects/digits/dashboard", "/api/v1/projects/digits/release"} {
		if code, body := get(t, srv.URL, otto, path); code != http.StatusForbidden {
			t.Errorf("annotator of other: GET %s: %d %s, want 403", path, code, body)
		}
	}
	for _, path := range []string{"/api/v1/projects/other/batches", "/api/v1/projects/other/examples/ex-1/image", "/api/v1/projects/other/dashboard"} {
		if code, body := get(t, srv.URL, otto, path); code != http.StatusOK {
			t.Errorf("annotator of other: GET %s: %d %s, want 200", path, code, body)
		}
	}
	code, body := get(t, srv.URL, otto, "/api/v1/projects")
	var ps []project.Project
	if err := json.Unmarshal(body, &ps); code != http.StatusOK || err != nil || len(ps) != 1 || ps[0].ID != "other" {
		t.Errorf("annotator of other: GET /projects: %d %s, want only project other", code, body)
	}
	// The dev tokens of people are scoped to every project.
	for _, tok := range []string{"annotator-dev-token", "reviewer-dev-token", "admin-dev-token"} {
		for _, path := range []string{"/api/v1/projects/digits/batches", "/api/v1/projects/other/batches"} {
			if code, body := get(t, srv.URL, tok, path); code != http.StatusOK {
				t.Errorf("%s: GET %s: %d %s, want 200", tok, path, code, body)
			}
		}
	}
	if code, body := get(t, srv.URL, "admin-dev-token", "/api/v1/me"); code != http.StatusOK || !strings.Contains(string(body), `"projects":["*"]`) {
		t.Errorf("GET /me: %d %s, want the projects of the token", code, body)
	}
}

// TestTokenFilesNeedDeviceProjects: a device token must name its projects.
func TestTokenFilesNeedDeviceProjects(t *testing.T) {
	for name, src := range map[string]string{
		"no projects": `{"tokens": {"device-token-1": {"user": "cam", "roles": ["device"]}}}`,
		"every one":   `{"tokens": {"device-token-1": {"user": "cam", "roles": ["device"], "projects": ["*"]}}}`,
		"bad id":      `{"tokens": {"annotator-token": {"user": "a", "roles": ["annotator"], "projects": ["Not An Id"]}}}`,
	} {
		path := filepath.Join(t.TempDir(), "tokens.json")
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := httpapi.LoadTokens(path); err == nil {
			t.Errorf("%s: loaded, want an error", name)
		}
	}
}
