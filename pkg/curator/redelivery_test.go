package curator

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// TestRedeliveryKnownByIDBeforeLookalikes: an example received again is recognised by
// its id — not counted as a near-duplicate of itself — and is not queued twice even
// when the ledger's window of recent ids no longer holds it.
func TestRedeliveryKnownByIDBeforeLookalikes(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	m := NewMetrics(opshttp.NewRegistry())
	c := New(s, nil, kafkabus.Config{}, m, zap.NewNop())
	p := &project.Project{ID: "redo", Task: "classify", Classes: []string{"a", "b"}}
	p.Defaults()
	p.Batch.Min, p.Batch.Max = 1000, 1000
	if err := c.st.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	exs := make([]*edgeloopv1.Example, 5)
	for i := range exs {
		im := raster.New(28, 28)
		for j := range im.Pix {
			im.Pix[j] = float32((j*(i+3))%17) / 17
		}
		exs[i] = &edgeloopv1.Example{Id: fmt.Sprintf("ex-%d", i), Project: p.ID, Device: "cam", CapturedAt: timestamppb.Now(),
			Task: edgeloopv1.Task_TASK_CLASSIFY, Image: &edgeloopv1.Image{Data: im.EncodePNG(), ContentType: "image/png", Width: 28, Height: 28},
			Predictions: []*edgeloopv1.Prediction{{ClassName: "a", Confidence: 0.5}}}
	}
	ingestAll := func() {
		for _, ex := range exs {
			if err := c.Ingest(ctx, ex); err != nil {
				t.Fatal(err)
			}
		}
	}
	ingestAll()
	queued := func() int {
		var l project.Ledger
		if _, err := objstore.GetJSON(ctx, s, project.LedgerKey(p.ID), &l); err != nil {
			t.Fatal(err)
		}
		return len(l.Pending)
	}
	base := queued()
	dups := value(t, m.duplicates.WithLabelValues(p.ID))
	ingestAll() // redelivered while the ledger remembers them
	// Redelivered after the ledger forgot them (older than its window).
	if _, err := objstore.Update(ctx, s, project.LedgerKey(p.ID), func(l *project.Ledger, _ bool) error { l.Recent = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	ingestAll()
	if got := queued(); got != base {
		t.Fatalf("queued %d after redeliveries, want %d", got, base)
	}
	if got := value(t, m.duplicates.WithLabelValues(p.ID)); got != dups {
		t.Fatalf("near-duplicates %v after redeliveries, want %v", got, dups)
	}
	if got := value(t, m.redelivered.WithLabelValues(p.ID)); got != 10 {
		t.Fatalf("redeliveries %v, want 10", got)
	}
}

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}
