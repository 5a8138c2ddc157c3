package evaluate

import (
	"math"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// TestAveragePrecisionKnownCurves checks COCO's 101-point AP on curves computed by hand.
func TestAveragePrecisionKnownCurves(t *testing.T) {
	cases := []struct {
		name string
		tp   []bool
		nGT  int
		want float64
	}{
		{"perfect", []bool{true, true}, 2, 1},
		// precision 1, .5, .667 at recall .5, .5, 1 -> interpolated 1 up to recall .5
		// (51 points), .667 beyond (50 points).
		{"one false positive in the middle", []bool{true, false, true}, 2, (51*1 + 50*2.0/3) / 101},
		// the only hit comes second: precision .5 everywhere.
		{"false positive first", []bool{false, true}, 1, 0.5},
		// half the objects never found: precision 1 up to recall .5, 0 beyond.
		{"missed objects", []bool{true}, 2, 51.0 / 101},
		{"nothing detected", nil, 3, 0},
		{"only false positives", []bool{false, false}, 1, 0},
	}
	for _, c := range cases {
		if got := AveragePrecision(c.tp, c.nGT); !near(got, c.want) {
			t.Errorf("%s: AP %.6f, want %.6f", c.name, got, c.want)
		}
	}
}

func box(x0, y0, x1, y1 float32, c int) nn.Box {
	return nn.Box{X0: x0, Y0: y0, X1: x1, Y1: y1, Class: c}
}

func TestDetectionMAP(t *testing.T) {
	classes := []string{"a", "b", "c"}
	gt := [][]nn.Box{
		{box(0, 0, .5, .5, 0), box(.5, .5, 1, 1, 1)},
		{box(.1, .1, .3, .3, 0)},
	}
	pred := [][]nn.Detection{
		{{Box: box(0, 0, .5, .5, 0), Score: .9}, {Box: box(.5, .5, 1, 1, 1), Score: .8},
			// a duplicate of the first: a false positive once the first matched
			{Box: box(0, 0, .5, .5, 0), Score: .7}},
		{{Box: box(.1, .1, .3, .3, 0), Score: .6}},
	}
	r := Detection(gt, pred, classes)
	// class a: ranked TP, FP, TP over 2 GT -> (51 + 50·2/3)/101 at every IoU (exact boxes).
	wantA := (51 + 50*2.0/3) / 101
	if !near(r.PerClass[0].AP50, wantA) || !near(r.PerClass[0].AP5095, wantA) {
		t.Errorf("class a AP50 %.4f AP50:95 %.4f, want %.4f", r.PerClass[0].AP50, r.PerClass[0].AP5095, wantA)
	}
	if !near(r.PerClass[1].AP50, 1) {
		t.Errorf("class b AP50 %.4f, want 1", r.PerClass[1].AP50)
	}
	if r.PerClass[2].GroundTr != 0 {
		t.Errorf("class c has ground truth")
	}
	// class c has no ground truth: left out of the mean.
	if !near(r.MAP50, (wantA+1)/2) {
		t.Errorf("mAP50 %.4f, want %.4f", r.MAP50, (wantA+1)/2)
	}
}

// TestDetectionLooseBox: a box with IoU 0.68 counts at 0.5..0.65 and not above, so its
// AP50:95 is 4/10 of its AP50.
func TestDetectionLooseBox(t *testing.T) {
	gt := [][]nn.Box{{box(0, 0, 1, 1, 0)}}
	// IoU = 0.8·0.85 = 0.68
	pred := [][]nn.Detection{{{Box: box(0, 0, .8, .85, 0), Score: .9}}}
	r := Detection(gt, pred, []string{"a"})
	if !near(r.MAP50, 1) || !near(r.MAP5095, 0.4) {
		t.Fatalf("mAP50 %.3f mAP50:95 %.3f, want 1 and 0.4", r.MAP50, r.MAP5095)
	}
}

func TestClassification(t *testing.T) {
	truth := []int{0, 0, 1, 1, 2, 2}
	pred := []int{0, 1, 1, 1, 2, 0}
	r := Classification(truth, pred, []string{"x", "y", "z"})
	if !near(r.Accuracy, 4.0/6) {
		t.Errorf("accuracy %v", r.Accuracy)
	}
	if r.Confusion[0][1] != 1 || r.Confusion[2][0] != 1 || r.Confusion[1][1] != 2 {
		t.Errorf("confusion %v", r.Confusion)
	}
	y := r.PerClass[1] // predicted 3 times, right twice; 2 true
	if !near(y.Precision, 2.0/3) || !near(y.Recall, 1) || !near(y.F1, 0.8) {
		t.Errorf("class y %+v", y)
	}
}
