package curator

import (
	"archive/zip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/internal/fixture"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// TestImportStreamsTheUpload: an import's archive is spooled to a file and read from
// there, not held in memory: a 96 MiB upload costs the server a few MiB of heap, and
// the answer (this archive holds no annotations) is a clear 400.
func TestImportStreamsTheUpload(t *testing.T) {
	st := memstore.New()
	if err := (&project.Store{S: st}).CreateProject(context.Background(), &project.Project{ID: "digits", Task: "classify", Classes: []string{"0", "1"}}); err != nil {
		t.Fatal(err)
	}
	c := New(st, nil, kafkabus.Config{}, NewMetrics(opshttp.NewRegistry()), zap.NewNop())
	api := httpapi.NewMux(&httpapi.Tokens{Tokens: map[string]httpapi.User{
		"admin-token-00001": {Name: "ada", Roles: []string{httpapi.RoleAdmin}, Projects: []string{httpapi.AllProjects}}}})
	Mount(api, c)
	srv := httptest.NewServer(api)
	defer srv.Close()

	// A zip with one large stored entry that is not a dataset.
	const size = 96 << 20
	path := filepath.Join(t.TempDir(), "big.zip")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "junk.bin", Method: zip.Store})
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := 0; i < size/len(chunk); i++ {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	upload := func(q string) (int, string, uint64) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		runtime.GC()
		var code int
		var body string
		alloc := fixture.Allocated(func() { code, body = postImport(t, srv.URL, q, f) })
		return code, body, alloc
	}
	code, body, alloc := upload("")
	if code != http.StatusBadRequest || !strings.Contains(body, "annotations.json") {
		t.Fatalf("import of a zip without annotations: %d %s, want 400 naming annotations.json", code, body)
	}
	// Client and server share this process: the client's copy buffers count too.
	if alloc > 16<<20 {
		t.Fatalf("importing a %d MiB upload allocated %d MiB: the upload is held in memory", size>>20, alloc>>20)
	}
	t.Logf("a %d MiB upload allocated %.1f MiB", size>>20, float64(alloc)/(1<<20))
}

// TestImportRefusesOversizedUploads: an archive larger than the limit is refused with
// 413 and the spool file is gone.
func TestImportRefusesOversizedUploads(t *testing.T) {
	st := memstore.New()
	if err := (&project.Store{S: st}).CreateProject(context.Background(), &project.Project{ID: "digits", Task: "classify", Classes: []string{"0", "1"}}); err != nil {
		t.Fatal(err)
	}
	c := New(st, nil, kafkabus.Config{}, NewMetrics(opshttp.NewRegistry()), zap.NewNop())
	c.maxImport = 1 << 20
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	api := httpapi.NewMux(&httpapi.Tokens{Tokens: map[string]httpapi.User{
		"admin-token-00001": {Name: "ada", Roles: []string{httpapi.RoleAdmin}, Projects: []string{httpapi.AllProjects}}}})
	Mount(api, c)
	srv := httptest.NewServer(api)
	defer srv.Close()
	code, body := postImport(t, srv.URL, "", strings.NewReader(strings.Repeat("x", 2<<20)))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "1 MiB") {
		t.Fatalf("a 2 MiB upload with a 1 MiB limit: %d %s, want 413 naming the limit", code, body)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("spool files left behind: %v", left)
	}
}

// postImport uploads body as a COCO import of project digits (query q appended) with
// the admin's token, and returns the status and the response body.
func postImport(t *testing.T, base, q string, body io.Reader) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/api/v1/projects/digits/dataset/import?format=coco"+q, body)
	req.Header.Set("Authorization", "Bearer admin-token-00001")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
