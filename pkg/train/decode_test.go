package train

import (
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// twoBoxes is a grid detector's output for one image with two whole-frame boxes: one of
// class 0 (score ≈ 1) and one of class 1 (score ≈ 0.88); every other cell finds nothing.
func twoBoxes(t *testing.T) (nn.Arch, []float32) {
	t.Helper()
	a := nn.DetectorArch(2)
	s := a.Grid()
	out := make([]float32, a.OutputSize())
	at := func(c, row, col int) *float32 { return &out[(c*s+row)*s+col] }
	for row := 0; row < s; row++ {
		for col := 0; col < s; col++ {
			*at(0, row, col) = -20
		}
	}
	for k, obj := range []float32{12, 2} {
		row, col := s/2, s/2-1+k
		*at(0, row, col) = obj
		*at(3, row, col), *at(4, row, col) = 12, 12 // the whole frame
		*at(5, row, col), *at(6, row, col) = []float32{12, -12}[k], []float32{-12, 12}[k]
	}
	return a, out
}

// Evaluation decodes with the NMS of the project's decode setting — its IoU and
// class_agnostic, as the agents do — and keeps its own min score (0.01) and box cap.
func TestEvaluationDecodesWithTheProjectsNMS(t *testing.T) {
	a, out := twoBoxes(t)
	classes := []string{"left", "right"}
	if got := Decode(a, classes, out); len(got) != 2 {
		t.Fatalf("default decoding: %d boxes, want both overlapping boxes of different classes (class-wise NMS)", len(got))
	}
	if got := DecodeWith(a, classes, out, nil); len(got) != 2 {
		t.Fatalf("no decode setting: %d boxes, want both", len(got))
	}
	agnostic := &nn.Decoding{ClassAgnostic: true}
	if got := DecodeWith(a, classes, out, agnostic); len(got) != 1 || got[0].Class != 0 {
		t.Fatalf("class_agnostic: %+v, want the best box only", got)
	}
	// Its min score and max detections are the agents' and not the evaluation's: the
	// 0.88 box stays above min_score 0.95, and max_detections 1 caps nothing.
	if got := DecodeWith(a, classes, out, &nn.Decoding{MinScore: 0.95, MaxDetections: 1}); len(got) != 2 {
		t.Fatalf("min_score 0.95, max_detections 1: %d boxes, want both (evaluation keeps 0.01 and its cap)", len(got))
	}
	// Two identical boxes of one class: IoU 0.45 keeps one, IoU 1 both.
	n := a.Grid() * a.Grid()
	for i := 0; i < n; i++ {
		out[5*n+i], out[6*n+i] = 12, -12
	}
	if got := Decode(a, classes, out); len(got) != 1 {
		t.Fatalf("two identical boxes of one class at IoU 0.45: %d kept, want 1", len(got))
	}
	if got := DecodeWith(a, classes, out, &nn.Decoding{IoU: 1}); len(got) != 2 {
		t.Fatalf("two identical boxes of one class at the setting's IoU 1: %d kept, want 2", len(got))
	}
}
