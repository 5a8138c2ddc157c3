package sampling

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/vision"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// cls builds classification predictions from probabilities, best first.
func cls(p ...float32) []vision.Prediction {
	out := make([]vision.Prediction, len(p))
	for i, v := range p {
		out[i] = vision.Prediction{Class: i, ClassName: string(rune('0' + i)), Confidence: v}
	}
	return out
}

func det(conf ...float32) []vision.Prediction {
	out := make([]vision.Prediction, len(conf))
	for i, v := range conf {
		out[i] = vision.Prediction{ClassName: "3", Confidence: v, Box: &nn.Box{X0: 0, Y0: 0, X1: .5, Y1: .5}}
	}
	return out
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestStrategies(t *testing.T) {
	cases := []struct {
		name  string
		s     StrategyConfig
		frame Frame
		take  bool
	}{
		{"flagged taken", StrategyConfig{Kind: OperatorFlagged}, Frame{Predictions: cls(.99, .01), Flagged: true}, true},
		{"unflagged not", StrategyConfig{Kind: OperatorFlagged}, Frame{Predictions: cls(.3, .2)}, false},
		{"near threshold", StrategyConfig{Kind: CloseToThreshold, Threshold: .25, Epsilon: .1}, Frame{Predictions: cls(.3, .2)}, true},
		{"far from threshold", StrategyConfig{Kind: CloseToThreshold, Threshold: .25, Epsilon: .1}, Frame{Predictions: cls(.9, .1)}, false},
		{"threshold on any box", StrategyConfig{Kind: CloseToThreshold, Threshold: .5, Epsilon: .1}, Frame{Detect: true, Predictions: det(.95, .55)}, true},
		{"top1 low", StrategyConfig{Kind: LowConfidence, Measure: "top1", Max: .6}, Frame{Predictions: cls(.5, .3, .2)}, true},
		{"top1 high", StrategyConfig{Kind: LowConfidence, Measure: "top1", Max: .6}, Frame{Predictions: cls(.7, .3)}, false},
		{"margin small", StrategyConfig{Kind: LowConfidence, Measure: "margin", Max: .2}, Frame{Predictions: cls(.45, .4, .15)}, true},
		{"margin large", StrategyConfig{Kind: LowConfidence, Measure: "margin", Max: .2}, Frame{Predictions: cls(.8, .1, .1)}, false},
		{"entropy high", StrategyConfig{Kind: LowConfidence, Measure: "entropy", Min: .8}, Frame{Predictions: cls(.34, .33, .33)}, true},
		{"entropy low", StrategyConfig{Kind: LowConfidence, Measure: "entropy", Min: .8}, Frame{Predictions: cls(.98, .01, .01)}, false},
		{"top1 on the least sure box", StrategyConfig{Kind: LowConfidence, Measure: "top1", Max: .6}, Frame{Detect: true, Predictions: det(.95, .3, .9)}, true},
		{"top1 every box sure", StrategyConfig{Kind: LowConfidence, Measure: "top1", Max: .6}, Frame{Detect: true, Predictions: det(.95, .7, .9)}, false},
		{"no box is no uncertain box", StrategyConfig{Kind: LowConfidence, Measure: "margin", Max: .5}, Frame{Detect: true}, false},
		{"mid share is for detectors", StrategyConfig{Kind: LowConfidence, Measure: MidShare, Min: .3, Max: .7, Share: .1}, Frame{Predictions: cls(.5, .5)}, false},
		{"random always", StrategyConfig{Kind: Random, Probability: 1}, Frame{Predictions: cls(.99)}, true},
		{"too many boxes", StrategyConfig{Kind: DetectionCount, MinBoxes: 1, MaxBoxes: 3}, Frame{Detect: true, Predictions: det(.9, .9, .9, .9)}, true},
		{"no box", StrategyConfig{Kind: DetectionCount, MinBoxes: 1, MaxBoxes: 3}, Frame{Detect: true}, true},
		{"usual count", StrategyConfig{Kind: DetectionCount, MinBoxes: 1, MaxBoxes: 3}, Frame{Detect: true, Predictions: det(.9, .8)}, false},
		{"class under quota", StrategyConfig{Kind: ClassQuota, MinPerHour: map[string]int{"0": 2}}, Frame{Predictions: cls(.99, .01)}, true},
		{"class without quota", StrategyConfig{Kind: ClassQuota, MinPerHour: map[string]int{"5": 2}}, Frame{Predictions: cls(.99, .01)}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := New(Config{Strategies: []StrategyConfig{c.s}}, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			d := s.Decide(c.frame)
			if d.Taken() != c.take {
				t.Fatalf("taken %v, want %v (%+v)", d.Taken(), c.take, d)
			}
			if d.Taken() && (d.Reasons[0].Detail == "" || d.Reasons[0].Kind != KindProto(c.s.Kind)) {
				t.Fatalf("reason %+v", d.Reasons[0])
			}
		})
	}
}

// TestOrderAndQuota: the first matching strategy with quota takes the frame and the
// decision names it (Kind, Strategy); once its per-minute quota is spent the next one takes over; the
// quota comes back after a minute.
func TestOrderAndQuota(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	s, _ := New(Config{DedupDistance: -1, Strategies: []StrategyConfig{
		{Name: "near", Kind: CloseToThreshold, Threshold: .5, Epsilon: .2, Limits: Limits{PerMinute: 2}},
		{Name: "margin", Kind: LowConfidence, Measure: "margin", Max: .3, Limits: Limits{PerMinute: 1, PerHour: 2}},
	}}, 1, c.now)
	f := Frame{Predictions: cls(.5, .4, .1)}
	var got []string
	for i := 0; i < 4; i++ {
		d := s.Decide(f)
		if d.Taken() {
			got = append(got, d.Strategy)
		} else {
			got = append(got, "-")
		}
	}
	if want := "[near near margin -]"; fmtSlice(got) != want {
		t.Fatalf("takers %v, want %s", got, want)
	}
	c.t = c.t.Add(61 * time.Second)
	if d := s.Decide(f); !d.Taken() || d.Strategy != "near" || d.Kind != CloseToThreshold || d.TakenBy() != edgeloopv1.SamplingKind_SAMPLING_KIND_CLOSE_TO_THRESHOLD || len(d.Reasons) != 2 {
		t.Fatalf("after a minute: %+v", d)
	}
	// margin: 1 per minute but 2 per hour.
	s.Decide(f)
	if d := s.Decide(f); !d.Taken() || d.Strategy != "margin" || d.Kind != LowConfidence {
		t.Fatalf("margin second of the hour: %+v", d)
	}
	c.t = c.t.Add(61 * time.Second)
	s.Decide(f)
	s.Decide(f)
	if d := s.Decide(f); d.Taken() {
		t.Fatalf("margin over its hourly quota: %+v", d)
	}
}

func fmtSlice(s []string) string {
	out := "["
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out + "]"
}

// TestDedup: a look-alike frame is skipped within the window, taken again after it;
// operator flags are never deduplicated.
func TestDedup(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	s, _ := New(Config{DedupWindow: config.Duration(time.Minute), Strategies: []StrategyConfig{
		{Kind: OperatorFlagged}, {Kind: Random, Probability: 1},
	}}, 1, c.now)
	noise := func(seed uint64) *raster.Image {
		r := rand.New(rand.NewPCG(seed, seed))
		im := raster.New(28, 28)
		for i := range im.Pix {
			im.Pix[i] = r.Float32()
		}
		return raster.Blur(im, 1.5)
	}
	im, other := noise(1), noise(2)
	similar := im.Clone()
	for i := range similar.Pix {
		similar.Pix[i] = similar.Pix[i]*0.9 + 0.05 // dimmer, same picture
	}
	near, far := raster.ThumbDistance(raster.Thumbnail(im), raster.Thumbnail(similar)), raster.ThumbDistance(raster.Thumbnail(im), raster.Thumbnail(other))
	if near > 0.02 || far <= 0.02 {
		t.Fatalf("thumbnail distances: similar %.3f, other %.3f", near, far)
	}
	if !s.Decide(Frame{Predictions: cls(.9), Thumb: raster.Thumbnail(im)}).Taken() {
		t.Fatal("first frame not taken")
	}
	if d := s.Decide(Frame{Predictions: cls(.9), Thumb: raster.Thumbnail(similar)}); d.Taken() || !d.Duplicate {
		t.Fatalf("look-alike taken: %+v", d)
	}
	if !s.Decide(Frame{Predictions: cls(.9), Thumb: raster.Thumbnail(other)}).Taken() {
		t.Fatal("a different frame was not taken")
	}
	if !s.Decide(Frame{Predictions: cls(.9), Thumb: raster.Thumbnail(similar), Flagged: true}).Taken() {
		t.Fatal("an operator-flagged look-alike was skipped")
	}
	c.t = c.t.Add(2 * time.Minute)
	if !s.Decide(Frame{Predictions: cls(.9), Thumb: raster.Thumbnail(similar)}).Taken() {
		t.Fatal("look-alike still skipped after the window")
	}
}

func TestValidate(t *testing.T) {
	bad := []StrategyConfig{
		{Kind: "psychic"},
		{Kind: CloseToThreshold, Threshold: 2, Epsilon: .1},
		{Kind: LowConfidence, Measure: "vibes"},
		{Kind: Random, Probability: 0},
		{Kind: ClassQuota},
		{Kind: DetectionCount, MinBoxes: 3, MaxBoxes: 1},
		{Kind: LowConfidence, Measure: MidShare, Min: .7, Max: .3, Share: .5},
		{Kind: LowConfidence, Measure: MidShare, Min: .3, Max: .7},
		{Kind: LowConfidence, Measure: MidShare, Min: .3, Max: 1.2, Share: .5},
	}
	for _, s := range bad {
		if err := (Config{Strategies: []StrategyConfig{s}}).Validate(); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestKindsAreTheEnumsNames(t *testing.T) {
	for _, k := range []string{OperatorFlagged, CloseToThreshold, LowConfidence, Random, ClassQuota, DetectionCount, Confident} {
		if KindProto(k) == edgeloopv1.SamplingKind_SAMPLING_KIND_UNSPECIFIED {
			t.Errorf("strategy kind %q is no name of edgeloopv1.SamplingKind", k)
		}
	}
}

// An uncertain frame whose embedding is within the distance of a recent pick's is
// skipped as similar; a different one, one without an embedding and an operator's
// flag are taken; the window forgets old picks.
func TestEmbeddingDiversity(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	s, err := New(Config{Strategies: []StrategyConfig{{Kind: OperatorFlagged}, {Kind: LowConfidence, Measure: "margin", Max: .5}},
		DedupDistance: -1, MinEmbeddingDistance: 0.05, EmbeddingWindow: 2}, 1, c.now)
	if err != nil {
		t.Fatal(err)
	}
	u := cls(.5, .4, .1)
	a, b, d := []float32{1, 0, 0}, []float32{0, 1, 0}, []float32{0, 0, 1}
	if !s.Decide(Frame{Predictions: u, Embedding: a}).Taken() {
		t.Fatal("first uncertain frame not taken")
	}
	if dd := s.Decide(Frame{Predictions: u, Embedding: []float32{1, 0.02, 0}}); dd.Taken() || !dd.Similar {
		t.Fatalf("a near-identical embedding: %+v, want skipped as similar", dd)
	}
	if !s.Decide(Frame{Predictions: u, Embedding: b}).Taken() || !s.Decide(Frame{Predictions: u}).Taken() {
		t.Fatal("a different embedding, or none, was not taken")
	}
	if !s.Decide(Frame{Predictions: u, Embedding: a, Flagged: true}).Taken() {
		t.Fatal("an operator's flag was skipped as similar")
	}
	// The window holds the last two picks with an embedding (b, then a again): d is
	// new, and after it a is still recent but b has left.
	if !s.Decide(Frame{Predictions: u, Embedding: d}).Taken() || !s.Decide(Frame{Predictions: u, Embedding: b}).Taken() {
		t.Fatal("window: a pick older than the window still suppressed a frame")
	}
	// And picks older than the dedup window (1 h) leave it.
	c.t = c.t.Add(2 * time.Hour)
	if !s.Decide(Frame{Predictions: u, Embedding: b}).Taken() {
		t.Fatal("a pick two hours old still suppressed a frame")
	}
	if _, err := New(Config{Strategies: []StrategyConfig{{Kind: OperatorFlagged}}, MinEmbeddingDistance: 3}, 1, nil); err == nil {
		t.Fatal("a cosine distance of 3 accepted")
	}
}

// A relative filter skips about its share of the candidates and never starves, even
// when every embedding is within a fixed distance of the others (where a fixed
// distance takes one frame).
func TestSkipSimilarShare(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	u := cls(.5, .4, .1)
	for _, spread := range []float64{1, 0.001} {
		taken := map[string]int{}
		for _, cfg := range []Config{{SkipSimilarShare: 0.5}, {MinEmbeddingDistance: 0.05}} {
			cfg.Strategies, cfg.DedupDistance = []StrategyConfig{{Kind: LowConfidence, Measure: "margin", Max: .5}}, -1
			s, err := New(cfg, 1, func() time.Time { return time.Unix(0, 0) })
			if err != nil {
				t.Fatal(err)
			}
			name := "share"
			if cfg.MinEmbeddingDistance > 0 {
				name = "fixed"
			}
			for range 400 {
				e := make([]float32, 8)
				for i := range e {
					e[i] = 1 + float32(r.NormFloat64()*spread)
				}
				if s.Decide(Frame{Predictions: u, Embedding: e}).Taken() {
					taken[name]++
				}
			}
		}
		if n := taken["share"]; n < 150 || n > 260 {
			t.Errorf("spread %v: a share of 0.5 took %d of 400", spread, n)
		}
		if spread < 0.01 && taken["fixed"] > 1 {
			t.Errorf("look-alikes: a fixed distance took %d, want 1", taken["fixed"])
		}
	}
}

// TestConfidentPseudoLabels: the confident strategy takes only frames at or above its
// top-1 confidence, about its share of them, never more than its limit a minute, never
// detections, and its picks keep no labelling candidate out (an uncertain look-alike
// of a pseudo-label is still taken). WithConfident replaces it, or removes it at 0.
func TestConfidentPseudoLabels(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	conf := StrategyConfig{Kind: Confident, Min: 0.9, Probability: 0.1, Limits: Limits{PerMinute: 3}}
	cfg := WithConfident(Config{Strategies: []StrategyConfig{{Kind: OperatorFlagged}, {Kind: LowConfidence, Measure: "margin", Max: .3}}}, conf)
	s, err := New(cfg, 1, c.now)
	if err != nil {
		t.Fatal(err)
	}
	var thumb raster.Thumb
	taken := 0
	for i := 0; i < 2000; i++ {
		c.t = c.t.Add(time.Second) // 2,000 frames over 33 minutes: ≤ 3 a minute
		if d := s.Decide(Frame{Predictions: cls(.95, .05), Thumb: thumb}); d.Taken() {
			if d.Kind != Confident || d.TakenBy() != edgeloopv1.SamplingKind_SAMPLING_KIND_CONFIDENT {
				t.Fatalf("a sure frame taken by %q", d.Kind)
			}
			taken++
		}
		if d := s.Decide(Frame{Predictions: cls(.85, .15)}); d.Taken() {
			t.Fatalf("a frame below the confidence taken by %q", d.Kind)
		}
		if d := s.Decide(Frame{Detect: true, Predictions: det(.99)}); d.Taken() {
			t.Fatalf("a detection taken by %q", d.Kind)
		}
	}
	// 10 % of 2,000 is 200, capped at 3 a minute over 33 minutes.
	if taken < 60 || taken > 102 {
		t.Fatalf("%d sure frames taken, want about 3 a minute over 33 minutes", taken)
	}
	if d := s.Decide(Frame{Predictions: cls(.5, .45), Thumb: thumb}); d.Kind != LowConfidence {
		t.Fatalf("an uncertain look-alike of the pseudo-labels: %+v", d)
	}
	if got := WithConfident(Default(), StrategyConfig{}); slices.ContainsFunc(got.Strategies, func(s StrategyConfig) bool { return s.Kind == Confident }) {
		t.Fatal("WithConfident at probability 0 kept a confident strategy")
	}
	if got := WithConfident(Default(), conf); got.Strategies[len(got.Strategies)-1].Probability != conf.Probability || len(got.Strategies) != len(Default().Strategies) {
		t.Fatalf("WithConfident did not replace Default's confident strategy: %+v", got.Strategies)
	}
	if err := (Config{Strategies: []StrategyConfig{{Kind: Confident, Probability: 0.1}}}).Validate(); err == nil {
		t.Fatal("a confident strategy without min validated")
	}
}
