package curator

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/internal/fixture"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/dataformat"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// TestImportRefusesDecompressionBombs: an archive holding a small PNG that declares
// 16,000×16,000 pixels is refused from the image's header, and nothing is stored.
func TestImportRefusesDecompressionBombs(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	c := New(s, nil, kafkabus.Config{}, NewMetrics(opshttp.NewRegistry()), zap.NewNop())
	p := &project.Project{ID: "bomb", Task: "classify", Classes: []string{"a", "b"}}
	p.Defaults()
	if err := c.st.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range map[string][]byte{"train/a/ok.png": fixture.PNG(28, 28), "train/b/bomb.png": fixture.PNGBomb(16000, 16000)} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Import(ctx, p.ID, dataformat.FormatYOLO, bytes.NewReader(buf.Bytes()), int64(buf.Len()), "ada")
	if !errors.Is(err, project.ErrInvalid) || !strings.Contains(err.Error(), "bomb.png") {
		t.Fatalf("import of a bomb: %v, want ErrInvalid naming bomb.png", err)
	}
	var stored []string
	_ = s.List(ctx, "projects/bomb/images/", func(i objstore.Info) error { stored = append(stored, i.Key); return nil })
	if len(stored) > 0 {
		t.Fatalf("a refused import stored %v", stored)
	}
}

// TestIngestRefusesPathLikeIDs: an example whose id is "." or ".." could never be saved
// through the API (the router cleans such paths), so its batch could never be
// submitted: it is dead-lettered as bad_id.
func TestIngestRefusesPathLikeIDs(t *testing.T) {
	ctx := context.Background()
	c := New(memstore.New(), nil, kafkabus.Config{}, NewMetrics(opshttp.NewRegistry()), zap.NewNop())
	p := &project.Project{ID: "ids", Task: "classify", Classes: []string{"a", "b"}}
	p.Defaults()
	if err := c.st.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{".", ".."} {
		ex := fixture.Example("ids", "d1", id)
		ex.Predictions[0].ClassName = "a"
		var rej *message.Reject
		if err := c.Ingest(ctx, ex); !errors.As(err, &rej) || rej.Reason != contract.ReasonBadID {
			t.Fatalf("id %q: %v, want a bad_id reject", id, err)
		}
	}
}
