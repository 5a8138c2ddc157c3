package retrain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
)

// TestFirstModelFromStoreBackbone, on real MinIO: a backbone uploaded through the API
// (POST /api/v1/backbones) is kept in the store, a project's model setting names it
// ("s3:backbones/…") and the curator pins its sha256 at creation; the project's first
// model starts from it, its lineage naming the uploaded file and its sha256. The API
// refuses a file that is not weights, a setting naming a missing object and a wrong
// sha256 (400, naming them); `retrain bootstrap -backbone FILE` uploads the same way; a
// training refuses an object whose bytes changed after
// creation or that is gone, naming it, and the service goes on.
func TestFirstModelFromStoreBackbone(t *testing.T) {
	ctx := context.Background()
	st, err := s3store.Open(ctx, servertest.S3(t))
	if err != nil {
		t.Fatal(err)
	}
	c := curator.New(st, nil, kafkabus.Config{}, curator.NewMetrics(opshttp.NewRegistry()), zap.NewNop())
	mux := httpapi.NewMux(&httpapi.Tokens{Tokens: map[string]httpapi.User{
		"admin-token-00001": {Name: "ada", Roles: []string{httpapi.RoleAdmin}, Projects: []string{httpapi.AllProjects}}}})
	curator.Mount(mux, c)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(method, path string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer admin-token-00001")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	file, err := os.ReadFile(filepath.Join("..", "nn", "weights", "testdata", "mobilenetv2-035.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(file)
	want := hex.EncodeToString(sum[:])
	code, body := call("POST", "/api/v1/backbones?name=mobilenetv2-035.safetensors", file)
	var up struct{ Backbone, SHA256, Size string }
	if code != http.StatusCreated || json.Unmarshal(body, &up) != nil {
		t.Fatalf("upload: %d %s", code, body)
	}
	if up.Backbone != "s3:backbones/"+want+"/mobilenetv2-035.safetensors" || up.SHA256 != want || up.Size != "n" {
		t.Fatalf("upload answered %+v, want the content-addressed key, sha256 %s and size n", up, want)
	}
	if o, err := st.Get(ctx, strings.TrimPrefix(up.Backbone, "s3:")); err != nil || !bytes.Equal(o.Data, file) {
		t.Fatalf("the uploaded object: %v", err)
	}
	// retrain bootstrap's upload (make run's colour demo) gets the same object again.
	fixture, _ := filepath.Abs(filepath.Join("..", "nn", "weights", "testdata", "mobilenetv2-035.safetensors"))
	if ref, err := uploadBackbone(ctx, &BootstrapOptions{API: srv.URL, Token: "admin-token-00001", Backbone: fixture}); err != nil || ref != up.Backbone {
		t.Errorf("bootstrap's upload: %q %v, want %s", ref, err, up.Backbone)
	}
	for q, junk := range map[string][]byte{"name=junk.safetensors": []byte("not weights"), "name=../x.onnx": file, "name=w.pt": file} {
		if code, body := call("POST", "/api/v1/backbones?"+q, junk); code != http.StatusBadRequest {
			t.Errorf("upload %s: %d %s, want 400", q, code, body)
		}
	}

	create := func(id, backbone, sha string) (int, []byte) {
		m := map[string]any{"input": []int{64, 64}, "backbone": backbone}
		if sha != "" {
			m["backbone_sha256"] = sha
		}
		b, _ := json.Marshal(map[string]any{"id": id, "task": "classify", "classes": []string{"a", "b"}, "model": m,
			"retrain": map[string]any{"epochs": 1}})
		return call("POST", "/api/v1/projects", b)
	}
	for _, tc := range []struct{ id, backbone, sha, says string }{
		{"missing", "s3:backbones/none/mobilenetv2-n.safetensors", "", "no such object"},
		{"wrongsum", up.Backbone, strings.Repeat("0", 64), "sha256 " + want},
		{"outside", "s3:projects/x/project.safetensors", "", "an object under backbones/"},
	} {
		if code, body := create(tc.id, tc.backbone, tc.sha); code != http.StatusBadRequest || !strings.Contains(string(body), tc.says) {
			t.Errorf("project %s: %d %s, want 400 saying %q", tc.id, code, body, tc.says)
		}
	}
	for _, id := range []string{"good", "changed", "gone"} {
		code, body := create(id, up.Backbone, "")
		var p project.Project
		if code != http.StatusCreated || json.Unmarshal(body, &p) != nil || p.Model == nil || p.Model.BackboneSHA256 != want {
			t.Fatalf("project %s: %d %s, want 201 with backbone_sha256 %s", id, code, body, want)
		}
		putSmallDataset(t, st, &p)
	}

	s := newCPUService(t, st)
	// The first model is stored, then released; with no Kafka producer here its
	// announcement fails after the store, which this test does not need.
	out, err := s.TrainOnce(ctx, "good", "test", "", registry.Fence{})
	if out == nil {
		t.Fatal(err)
	}
	m, err := s.reg.Model(ctx, "good", out.Version.Version)
	if err != nil {
		t.Fatal(err)
	}
	if l := m.Header.Lineage; l.Backbone != "mobilenetv2-035.safetensors" || l.BackboneSHA256 != want || l.Mode != ModeScratch {
		t.Errorf("lineage %+v, want the uploaded file and its sha256", l)
	}
	if m.Header.Arch.Name != nn.MobileNetV2+"-n" {
		t.Errorf("model %s", m.Header.Arch.Name)
	}

	// The object changes under its key (written around the API) or goes away: the
	// pinned sha256 catches the one, the store the other.
	changed := append([]byte(nil), file...)
	changed[len(changed)-1] ^= 1
	if _, err := st.Put(ctx, strings.TrimPrefix(up.Backbone, "s3:"), changed, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TrainOnce(ctx, "changed", "test", "", registry.Fence{}); err == nil || !strings.Contains(err.Error(), "the project's model setting wants "+want) {
		t.Errorf("a changed backbone: %v, want the sha256 mismatch named", err)
	}
	if err := st.Delete(ctx, strings.TrimPrefix(up.Backbone, "s3:")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TrainOnce(ctx, "gone", "test", "", registry.Fence{}); err == nil || !strings.Contains(err.Error(), "no such object") || !strings.Contains(err.Error(), up.Backbone) {
		t.Errorf("a deleted backbone: %v, want the missing object named", err)
	}
}
