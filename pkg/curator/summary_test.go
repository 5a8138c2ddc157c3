package curator_test

import (
	"testing"

	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// TestSummaryCountsEveryReason: the queue counts each reason of every example, not only
// its first; confidences are over the examples with a prediction, and a batch of
// imported labels has none; review verdicts are counted.
func TestSummaryCountsEveryReason(t *testing.T) {
	b := &project.Batch{ID: "b1", Items: []project.Item{
		{ExampleID: "a", Reason: "close_to_threshold", Reasons: []string{"close_to_threshold", "low_confidence"}, Confidence: .4, Class: "4"},
		{ExampleID: "b", Reason: "low_confidence", Reasons: []string{"low_confidence"}, Confidence: .6, Class: "4",
			Review: &project.ItemReview{Verdict: project.VerdictRejected, Comment: "no"}},
		{ExampleID: "c", Reason: "operator_flagged", Confidence: .8, Class: "7", Status: "done",
			Review: &project.ItemReview{Verdict: project.VerdictAccepted}}, // stored before items had Reasons
	}}
	s := curator.Summarise(b)
	if s.Reasons["low_confidence"] != 2 || s.Reasons["close_to_threshold"] != 1 || s.Reasons["operator_flagged"] != 1 {
		t.Errorf("reasons %v: want low_confidence 2, close_to_threshold 1, operator_flagged 1", s.Reasons)
	}
	if s.Predicted != 3 || s.MinConfidence != .4 || s.MeanConfidence < .59 || s.MeanConfidence > .61 {
		t.Errorf("predicted %d, min %.2f, mean %.2f: want 3, 0.40, 0.60", s.Predicted, s.MinConfidence, s.MeanConfidence)
	}
	if s.Accepted != 1 || s.Rejected != 1 || s.Done != 1 {
		t.Errorf("accepted %d, rejected %d, done %d: want 1, 1, 1", s.Accepted, s.Rejected, s.Done)
	}
	imported := curator.Summarise(&project.Batch{Items: []project.Item{{ExampleID: "x", Reason: "import", Class: "3", Status: "done"}}})
	if imported.Predicted != 0 || imported.MinConfidence != 0 || imported.MeanConfidence != 0 || imported.Reasons["import"] != 1 {
		t.Errorf("import batch %+v: want no prediction and confidences 0", imported)
	}
}
