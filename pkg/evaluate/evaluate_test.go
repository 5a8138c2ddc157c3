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

// TestDetectionBySize: COCO's per-size figures on 100×100 images — each size counts its
// own objects only; a detection that matches an object of another size is ignored, not
// a false positive; an unmatched detection counts against the size of its own area.
func TestDetectionBySize(t *testing.T) {
	classes := []string{"a"}
	small := box(0, 0, .2, .2, 0)        // 20×20 px = 400 < 32²
	medium := box(.3, .3, .7, .7, 0)     // 40×40 = 1600
	large := box(0, 0, 1, 1, 0)          // 100×100 = 10,000 > 96²
	strayS := box(.85, .85, .95, .95, 0) // 10×10, matches nothing
	gt := [][]nn.Box{{small, medium}, {large}}
	pred := [][]nn.Detection{
		{{Box: small, Score: .9}, {Box: strayS, Score: .8}, {Box: medium, Score: .3}},
		{{Box: large, Score: .5}},
	}
	sizes := [][2]int{{100, 100}, {100, 100}}
	r := DetectionSized(gt, pred, classes, sizes)
	if len(r.BySize) != 3 {
		t.Fatalf("by size: %+v", r.BySize)
	}
	got := map[string]SizeStat{}
	for _, s := range r.BySize {
		got[s.Size] = s
	}
	// small: TP (.9) then the stray FP (.8): AP 1 (the hit comes first).
	if s := got["small"]; s.GroundTr != 1 || !near(s.MAP50, 1) {
		t.Errorf("small %+v", s)
	}
	// medium: the small TP and the large TP are ignored; the stray is small, so it is
	// ignored too: only the medium TP counts.
	if s := got["medium"]; s.GroundTr != 1 || !near(s.MAP50, 1) || !near(s.MAP5095, 1) {
		t.Errorf("medium %+v", s)
	}
	if s := got["large"]; s.GroundTr != 1 || !near(s.MAP50, 1) {
		t.Errorf("large %+v", s)
	}
	// Over all sizes the stray is a false positive ranked second: AP < 1.
	if r.MAP50 >= 1 {
		t.Errorf("all sizes mAP50 %v, want the stray to count", r.MAP50)
	}
	// A medium-sized false positive counts against medium.
	pred[0] = append(pred[0], nn.Detection{Box: box(.05, .5, .45, .9, 0), Score: .95})
	r = DetectionSized(gt, pred, classes, sizes)
	if s := r.BySize[1]; near(s.MAP50, 1) {
		t.Errorf("medium with a medium false positive first: %+v", s)
	}
	if Detection(gt, pred, classes).BySize != nil {
		t.Error("Detection without sizes reports sizes")
	}
	// The same boxes on 1000×1000 images are all large.
	r = DetectionSized(gt, pred, classes, [][2]int{{1000, 1000}, {1000, 1000}})
	if r.BySize[0].GroundTr != 0 || r.BySize[2].GroundTr != 3 {
		t.Errorf("at 1000 px: %+v", r.BySize)
	}
}

// TestDetectionMaxDetections: COCO's maxDets — of an image's detections of one class only
// the best MaxDetections count, for mAP and per-size AP, and another class's detections
// do not take their places. Image 0 holds a hit at .9, 150 false positives of its class
// at .30–.45 and 150 of another class at .5; image 1 a hit at .2, ranked below them all.
func TestDetectionMaxDetections(t *testing.T) {
	classes := []string{"a", "b"}
	gt := [][]nn.Box{{box(0, 0, .4, .4, 0)}, {box(.1, .1, .5, .5, 0)}}
	first := []nn.Detection{{Box: gt[0][0], Score: .9}}
	for k := 0; k < 150; k++ {
		first = append(first,
			nn.Detection{Box: box(.5, .5, .9, .9, 0), Score: .3 + .15*float32(k)/150},
			nn.Detection{Box: box(.5, 0, .9, .4, 1), Score: .5})
	}
	pred := [][]nn.Detection{first, {{Box: gt[1][0], Score: .2}}}
	r := DetectionSized(gt, pred, classes, [][2]int{{100, 100}, {100, 100}})
	// Counted: the hit and the best 99 false positives of image 0, then image 1's hit:
	// precision 1 up to recall .5 (51 points), 2/101 beyond (50 points). Without the cap
	// the second hit would come after 150 false positives: 2/152.
	want := (51 + 50*2.0/101) / 101
	if uncapped := (51 + 50*2.0/152) / 101; near(want, uncapped) {
		t.Fatal("the case does not tell the cap from none")
	}
	if a := r.PerClass[0]; !near(a.AP50, want) || !near(a.AP5095, want) || !near(r.MAP50, want) {
		t.Errorf("class a AP50 %.6f AP50:95 %.6f mAP50 %.6f, want %.6f (the best %d of image 0 counted)",
			a.AP50, a.AP5095, r.MAP50, want, MaxDetections)
	}
	if n := len(r.images[0].dets); n != 100 {
		t.Errorf("image 0: %d detections counted at IoU .5, want 100", n)
	}
	// Every box is 40×40 px: medium, with the same figures.
	if m := r.BySize[1]; m.Size != "medium" || m.GroundTr != 2 || !near(m.MAP50, want) || !near(m.MAP5095, want) {
		t.Errorf("medium %+v, want AP %.6f", m, want)
	}
	// With 100 detections in image 0 (the hit, 50 false positives of class a, 49 of b)
	// nothing is dropped: the second hit comes 52nd.
	r = Detection(gt, [][]nn.Detection{first[:100], pred[1]}, classes)
	if a := r.PerClass[0]; !near(a.AP50, (51+50*2.0/52)/101) {
		t.Errorf("uncapped image: class a AP50 %.6f", a.AP50)
	}
}
