package agent

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	msgs "github.com/edgeloop/edgeloop/internal/fixture"
)

// TestDecompressionBombRefused: a 16,000×16,000 PNG of a few hundred KB is refused by
// /v1/infer and by the watched directory from its header, without decoding it; a
// watched file over /v1/infer's size limit is refused without reading it whole.
func TestDecompressionBombRefused(t *testing.T) {
	f := newFixture(t)
	a := newAgent(t, f, nil)
	if err := a.Apply(context.Background(), f.release(1, modelFile(t, 1, 1))); err != nil {
		t.Fatal(err)
	}
	bomb := msgs.PNGBomb(16000, 16000)
	h := a.Handler()
	rec := httptest.NewRecorder()
	n := msgs.Allocated(func() { h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/infer", bytes.NewReader(bomb))) })
	if rec.Code != 413 {
		t.Fatalf("bomb: %d %s, want 413", rec.Code, rec.Body)
	}
	if n > 32<<20 {
		t.Fatalf("refusing the bomb allocated %d MB", n>>20)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "rejected"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bomb.png"), bomb, 0o644); err != nil {
		t.Fatal(err)
	}
	n = msgs.Allocated(func() { a.inferFile(context.Background(), filepath.Join(dir, "bomb.png")) })
	if _, err := os.Stat(filepath.Join(dir, "rejected", "bomb.png")); err != nil || n > 32<<20 {
		t.Fatalf("watched bomb: rejected %v, allocated %d MB", err, n>>20)
	}
	// A file over /v1/infer's limit (a video under an image's name) is refused unread.
	if err := os.WriteFile(filepath.Join(dir, "video.jpg"), make([]byte, maxUpload+1), 0o644); err != nil {
		t.Fatal(err)
	}
	a.inferFile(context.Background(), filepath.Join(dir, "video.jpg"))
	if reason, err := os.ReadFile(filepath.Join(dir, "rejected", "video.jpg.reason")); err != nil || !bytes.Contains(reason, []byte("over the")) {
		t.Fatalf("oversized watched file: reason %q, %v", reason, err)
	}
}
