package sampling

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// crowd is a detector's output on a large frame: n boxes spread over the frame, sure
// ones (0.85–0.99) but for the mid-confidence ones at the indices in mid (0.45–0.55).
func crowd(r *rand.Rand, n int, mid ...int) []vision.Prediction {
	out := make([]vision.Prediction, n)
	for i := range out {
		x, y := r.Float32()*0.9, r.Float32()*0.9
		out[i] = vision.Prediction{Class: i % 4, ClassName: fmt.Sprint("c", i%4), Confidence: 0.85 + 0.14*r.Float32(),
			Box: &nn.Box{X0: x, Y0: y, X1: x + 0.05, Y1: y + 0.08}}
	}
	for _, i := range mid {
		out[i].Confidence = 0.45 + 0.1*r.Float32()
	}
	return out
}

// TestPerBoxUncertaintyAtScale: with 0–100 boxes a frame, the per-box measures name the
// least sure box (the lowest margin, wherever it is among 100), and mid_share takes a
// frame by the share of its unsure boxes, not by one of them: one unsure box in 100 is
// left, 30 in 100 are taken, as is 1 in 2.
func TestPerBoxUncertaintyAtScale(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	decide := func(st StrategyConfig, boxes []vision.Prediction) Decision {
		s, err := New(Config{DedupDistance: -1, Strategies: []StrategyConfig{st}}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s.Decide(Frame{Detect: true, Predictions: boxes})
	}
	margin := StrategyConfig{Kind: LowConfidence, Measure: "margin", Max: 0.2}
	boxes := crowd(r, 100, 73)
	d := decide(margin, boxes)
	if !d.Taken() || !strings.Contains(d.Reasons[0].Detail, "box 74 (c1 at") || !strings.Contains(d.Reasons[0].Detail, "least sure of 100 boxes") {
		t.Fatalf("margin over 100 boxes with box 74 unsure: %+v", d)
	}
	if want := boxMargin(boxes[73].Confidence); d.Reasons[0].Score != float32(want) {
		t.Fatalf("score %v, want box 74's margin %v", d.Reasons[0].Score, want)
	}
	if d := decide(margin, crowd(r, 100)); d.Taken() {
		t.Fatalf("margin over 100 sure boxes: taken (%+v)", d.Reasons)
	}
	entropy := StrategyConfig{Kind: LowConfidence, Measure: "entropy", Min: 0.9}
	if d := decide(entropy, crowd(r, 60, 12)); !d.Taken() || !strings.Contains(d.Reasons[0].Detail, "box 13 ") {
		t.Fatalf("entropy over 60 boxes with box 13 unsure: %+v", d)
	}

	share := StrategyConfig{Kind: LowConfidence, Measure: MidShare, Min: 0.3, Max: 0.7, Share: 0.25}
	var many []int
	for i := 0; i < 30; i++ {
		many = append(many, 3*i)
	}
	for _, c := range []struct {
		name  string
		boxes []vision.Prediction
		take  bool
	}{
		{"1 unsure in 100", crowd(r, 100, 50), false},
		{"30 unsure in 100", crowd(r, 100, many...), true},
		{"1 unsure in 2", crowd(r, 2, 1), true},
		{"none", nil, false},
	} {
		d := decide(share, c.boxes)
		if d.Taken() != c.take {
			t.Errorf("mid_share, %s: taken %v, want %v", c.name, d.Taken(), c.take)
		}
		if c.name == "30 unsure in 100" && d.Taken() && !strings.HasPrefix(d.Reasons[0].Detail, "30 of 100 boxes (30%)") {
			t.Errorf("mid_share reason %q", d.Reasons[0].Detail)
		}
	}
}

// TestAdaptiveBoxCount: detection_count without bounds learns the device's usual count
// — a shelf camera seeing 35–45 boxes a frame — and takes the frames outside its
// 5th–95th percentile by more than half its range (3 boxes, 90 boxes) but not the usual
// ones, and none before it
// has seen MinCountHistory frames; a camera seeing 0–2 boxes learns its own range.
func TestAdaptiveBoxCount(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	c := &clock{t: time.Unix(0, 0)}
	s, err := New(Config{DedupDistance: -1, Strategies: []StrategyConfig{{Kind: DetectionCount}}}, 1, c.now)
	if err != nil {
		t.Fatal(err)
	}
	frame := func(n int) Frame { return Frame{Detect: true, Predictions: crowd(r, n)} }
	if d := s.Decide(frame(90)); d.Taken() {
		t.Fatal("a count taken before any history")
	}
	for i := 0; i < CountWindow; i++ {
		c.t = c.t.Add(time.Second)
		if d := s.Decide(frame(35 + r.IntN(11))); d.Taken() && i >= MinCountHistory {
			t.Fatalf("frame %d, a usual count, taken: %+v", i, d.Reasons)
		}
	}
	for _, n := range []int{3, 90, 0} {
		d := s.Decide(frame(n))
		if !d.Taken() || !strings.Contains(d.Reasons[0].Detail, fmt.Sprintf("%d boxes, usual is 35–45 (5th–95th percentile of the last %d frames) ± 5", n, CountWindow)) {
			t.Fatalf("%d boxes: %+v", n, d)
		}
	}
	if d := s.Decide(frame(40)); d.Taken() {
		t.Fatalf("40 boxes taken: %+v", d.Reasons)
	}

	few, err := New(Config{DedupDistance: -1, Strategies: []StrategyConfig{{Kind: DetectionCount}}}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		few.Decide(frame(i % 3))
	}
	if d := few.Decide(frame(12)); !d.Taken() || !strings.Contains(d.Reasons[0].Detail, "usual is 0–2 (5th–95th percentile of the last 100 frames) ± 1") {
		t.Fatalf("12 boxes where 0–2 are usual: %+v", d)
	}
	if d := few.Decide(frame(2)); d.Taken() {
		t.Fatalf("2 boxes where 0–2 are usual: taken")
	}
}
