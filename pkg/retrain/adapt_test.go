package retrain

import (
	"fmt"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/project"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Batch norm adaptation reads the most recently approved train examples, at most
// AdaptFrames, and a manual request names its mode.
func TestAdaptPlanAndMode(t *testing.T) {
	var es []project.DatasetEntry
	for i := range 600 { // 50 per snapshot 0–11
		es = append(es, project.DatasetEntry{ID: fmt.Sprint(i), Split: "train", Seq: i / 50})
	}
	for i := range 20 {
		es = append(es, project.DatasetEntry{ID: fmt.Sprint("t", i), Split: "test", Seq: 11})
	}
	pl := adaptPlan(es)
	if len(pl.Train) != AdaptFrames || pl.Mode != ModeAdaptBN {
		t.Fatalf("plan of %d %s, want %d adapt-bn", len(pl.Train), pl.Mode, AdaptFrames)
	}
	for _, e := range pl.Train {
		if e.Split != "train" || e.Seq < 1 {
			t.Fatalf("plan holds %s (%s, snapshot %d): want recent train examples only", e.ID, e.Split, e.Seq)
		}
	}
	if err := CheckMode(ModeAdaptBN); err != nil {
		t.Fatal(err)
	}
	if m := ManualMode(&edgeloopv1.BatchApproved{BatchId: "manual-adapt-bn-17"}); m != ModeAdaptBN {
		t.Fatalf("manual mode %q", m)
	}
}
