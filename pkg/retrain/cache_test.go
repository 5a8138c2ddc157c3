package retrain

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/internal/fixture"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// TestImageCacheRepairsTruncatedFiles: a cache file cut short (a trainer killed while
// writing it) is detected by its content hash and fetched again, instead of skipping
// its example in every later training; cache writes leave no partial file behind.
func TestImageCacheRepairsTruncatedFiles(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	data := fixture.PNG(28, 28)
	key, _, err := objstore.PutContent(ctx, st, "projects/p/images/", data, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{cfg: ServiceConfig{CacheDir: t.TempDir()}, cur: &project.Store{S: st}, log: zap.NewNop()}
	cache := filepath.Join(s.cfg.CacheDir, "images", filepath.Base(key))
	if err := os.MkdirAll(filepath.Dir(cache), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cache, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	im, err := s.image(ctx, key)
	if err != nil || im.W != 28 || im.H != 28 {
		t.Fatalf("image with a truncated cache file: %v", err)
	}
	if got, _ := os.ReadFile(cache); len(got) != len(data) {
		t.Fatalf("cache file holds %d bytes after the refetch, want %d", len(got), len(data))
	}
	entries, _ := os.ReadDir(filepath.Dir(cache))
	if len(entries) != 1 {
		t.Fatalf("cache dir holds %d files, want only the image", len(entries))
	}
}
