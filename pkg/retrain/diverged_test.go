package retrain

import (
	"context"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
)

// TestDivergedCandidateIsRefused, on the memory store: a fine-tune whose loss blows up
// is stored as a refused candidate that says it diverged, even under a gate that would
// pass anything (not worse by a margin of 1), and the release stays the first model. A
// learning rate of 3e38 makes Adam's first step move every weight to the edge of
// float32, so the next forward pass overflows whatever the seed (at 1e9 batch norm
// absorbed the scale in some runs and the loss stayed finite).
func TestDivergedCandidateIsRefused(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	s := newCPUService(t, mem)
	p := &project.Project{ID: "diverges", Task: "classify", Classes: []string{"a", "b"}, Model: &nn.Spec{Family: nn.MobileNetV2, Size: "n", Input: [2]int{64, 64}},
		Retrain: project.RetrainPolicy{Epochs: 1, LR: 3e38, MinTest: 1, Require: "not_worse", Margin: 1}}
	if err := s.cur.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	putSmallDataset(t, mem, p)
	// The first model trains at the network's own rate (its announcement fails without
	// Kafka, after the release is stored).
	if out, err := s.TrainOnce(ctx, p.ID, "test", "", registry.Fence{}); out == nil || !out.Version.Decision.Published {
		t.Fatalf("first model: %+v %v", out, err)
	}
	out, err := s.TrainOnce(ctx, p.ID, "test", ModeFull, registry.Fence{})
	if out == nil {
		t.Fatalf("fine-tune at lr 3e38: %v", err)
	}
	d2 := out.Version.Decision
	if d2.Published || d2.Verdict != "refused" || !strings.Contains(strings.Join(d2.Reasons, "; "), "diverged") {
		t.Fatalf("fine-tune at lr 3e38: %s, published %v, reasons %q; want refused because it diverged", d2.Verdict, d2.Published, d2.Reasons)
	}
	if rel, err := s.reg.Current(ctx, p.ID); err != nil || rel.Version != 1 {
		t.Fatalf("release after a diverged fine-tune: %+v %v; want v1", rel, err)
	}
}
