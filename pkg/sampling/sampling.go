// Package sampling decides which frames an edge agent uploads for correction: the ones
// its model is unsure of or gets wrong. Strategies come from a config file and are
// checked in order; the first that matches and has quota left takes the frame, each with
// its own limits per minute, hour and day (as Roboflow Inference's active learning). A
// frame that looks like one already taken from the same device is skipped (thumbnail
// distance), so that a camera staring at the same scene does not fill the queue.
// Detectors are sampled per box, for frames of 0–100 boxes: the least sure box or the
// share of unsure boxes (low_confidence), and a box count unusual for the device
// (detection_count, learnt from its own recent frames unless bounds are given).
package sampling

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/selection"
	"github.com/edgeloop/edgeloop/pkg/vision"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Strategy kinds: the names of the wire enum edgeloopv1.SamplingKind
// (contract.SamplingKindName; TestKindsAreTheEnumsNames keeps them equal).
const (
	OperatorFlagged  = "operator_flagged"
	CloseToThreshold = "close_to_threshold"
	LowConfidence    = "low_confidence"
	Random           = "random"
	ClassQuota       = "class_quota"
	DetectionCount   = "detection_count"
	// Confident takes a share of the frames a classifier is sure of, as pseudo-labels
	// (contract.Pseudo): never annotated, trained on weighted (docs/api.md).
	Confident = "confident"
)

// Limits cap how many frames a strategy takes per window; 0 means no cap.
type Limits struct {
	PerMinute int `json:"per_minute,omitempty"`
	PerHour   int `json:"per_hour,omitempty"`
	PerDay    int `json:"per_day,omitempty"`
}

// StrategyConfig is one strategy.
type StrategyConfig struct {
	// Name identifies the strategy in reasons and metrics (default: its kind).
	Name string `json:"name,omitempty"`
	Kind string `json:"kind"`
	// close_to_threshold: a confidence within Epsilon of Threshold.
	Threshold float64 `json:"threshold,omitempty"`
	Epsilon   float64 `json:"epsilon,omitempty"`
	// low_confidence: Measure is "top1" (take when top-1 < Max), "margin" (take when
	// top-1 − top-2 < Max) or "entropy" (take when the normalised entropy > Min). For a
	// detector they look at each box and the least sure one decides: "top1" the lowest
	// box confidence, "margin" the lowest box margin |2·confidence − 1| (how far the box
	// is from the 0.5 decision, 0 at 0.5), "entropy" the highest binary entropy of a
	// box's confidence. "mid_share" is for detectors only: take when at least Share of
	// the boxes have a mid confidence, in [Min, Max] — with 0–100 boxes a frame, one
	// unsure box is the rule, a crowd of them is the frame to label.
	Measure string  `json:"measure,omitempty"`
	Max     float64 `json:"max,omitempty"`
	Min     float64 `json:"min,omitempty"`
	Share   float64 `json:"share,omitempty"`
	// random: Probability of taking any frame. confident: Probability of taking a
	// frame whose top-1 confidence is at least Min (classification only).
	Probability float64 `json:"probability,omitempty"`
	// class_quota: at least MinPerHour frames of each predicted class per hour.
	MinPerHour map[string]int `json:"min_per_hour,omitempty"`
	// detection_count: take when the number of boxes is < MinBoxes or > MaxBoxes; with
	// both 0 the usual count is learnt from the device's own frames: take when it falls
	// outside the 5th–95th percentile of the last CountWindow frames' counts by more than
	// half that range (at least 1 box; none taken before MinCountHistory frames were
	// seen), so that a camera seeing 40 boxes a frame and one seeing 2 both sample their
	// odd frames.
	MinBoxes int    `json:"min_boxes,omitempty"`
	MaxBoxes int    `json:"max_boxes,omitempty"`
	Limits   Limits `json:"limits,omitempty"`
}

// Config is an agent's sampling configuration.
type Config struct {
	Strategies []StrategyConfig `json:"strategies"`
	// DedupDistance is the largest thumbnail distance (raster.ThumbDistance, in [0,1])
	// that counts as the same picture (default 0.02; negative turns dedup off).
	DedupDistance float64 `json:"dedup_distance,omitempty"`
	// DedupWindow is how long a taken frame suppresses look-alikes (default 1h, as the
	// Learning Loop node).
	DedupWindow config.Duration `json:"dedup_window,omitempty"`
	// MinEmbeddingDistance, when above 0, skips a candidate whose embedding (the
	// model's penultimate features, Frame.Embedding) is within this cosine distance of
	// one of the last EmbeddingWindow frames taken: near-identical picks within the
	// window are avoided (an online k-centre cover of the candidates that pass the
	// uncertainty rules). Operator flags are never skipped.
	MinEmbeddingDistance float64 `json:"min_embedding_distance,omitempty"`
	// SkipSimilarShare, when above 0, skips that share of the candidates (those passing
	// a strategy other than operator_flagged) whose embeddings are nearest to a recent
	// pick's: a candidate is skipped when its cosine distance to the nearest of the last
	// EmbeddingWindow picks is below that quantile of the last EmbeddingWindow
	// candidates' distances. Relative to what the camera sees, it never starves the
	// uploads as a fixed MinEmbeddingDistance can (bench/loop: on digits at half size
	// every embedding is within 0.05 of another and a fixed 0.05 took 37 frames in
	// 20,000).
	SkipSimilarShare float64 `json:"skip_similar_share,omitempty"`
	// EmbeddingWindow is how many recent picks a candidate's embedding is compared
	// with (default 200); picks older than DedupWindow leave it too, so that a camera
	// whose every view was picked once samples again.
	EmbeddingWindow int `json:"embedding_window,omitempty"`
}

// Default is a sensible start: operator flags always, uncertain frames, a little random;
// of the frames they take, the half whose embeddings are nearest to a recent pick's are
// skipped (DefaultSkipSimilarShare: in bench/loop the best mean accuracy over 50–400
// labels on three drifts, 0.848 against 0.842 without and 0.820 for random sampling).
func Default() Config {
	return Config{SkipSimilarShare: DefaultSkipSimilarShare, Strategies: []StrategyConfig{
		{Kind: OperatorFlagged},
		{Name: "uncertain", Kind: CloseToThreshold, Threshold: 0.5, Epsilon: 0.25, Limits: Limits{PerMinute: 30, PerHour: 600}},
		{Name: "low-margin", Kind: LowConfidence, Measure: "margin", Max: 0.3, Limits: Limits{PerMinute: 20, PerHour: 400}},
		{Name: "uncertain-boxes", Kind: LowConfidence, Measure: MidShare, Min: 0.3, Max: 0.7, Share: 0.25, Limits: Limits{PerMinute: 20, PerHour: 400}},
		{Name: "odd-count", Kind: DetectionCount, Limits: Limits{PerMinute: 10, PerHour: 100}},
		{Name: "random", Kind: Random, Probability: 0.02, Limits: Limits{PerMinute: 5, PerHour: 60}},
		DefaultConfident(),
	}}
}

// DefaultConfident is Default's pseudo-label strategy: 2 % of the frames a classifier
// gives at least 0.9, at most 6 a minute (the agent's -pseudo-* flags change it).
func DefaultConfident() StrategyConfig {
	return StrategyConfig{Name: Confident, Kind: Confident, Min: 0.9, Probability: 0.02, Limits: Limits{PerMinute: 6, PerHour: 120}}
}

// WithConfident is c with its confident strategies replaced by st, last (after every
// labelling strategy, so that a frame one of them wants is labelled); st.Probability 0
// leaves c without one.
func WithConfident(c Config, st StrategyConfig) Config {
	c.Strategies = slices.DeleteFunc(slices.Clone(c.Strategies), func(s StrategyConfig) bool { return s.Kind == Confident })
	if st.Probability > 0 {
		c.Strategies = append(c.Strategies, st)
	}
	return c
}

// DefaultSkipSimilarShare is Default's share of candidates skipped as too like a
// recent pick.
const DefaultSkipSimilarShare = 0.5

// MidShare is low_confidence's per-box measure for detectors: the share of boxes with
// a mid confidence.
const MidShare = "mid_share"

// CountWindow is how many recent frames' box counts an adaptive detection_count
// strategy learns the usual count from; MinCountHistory is how many it needs first.
const (
	CountWindow     = 200
	MinCountHistory = 20
)

// Load reads a JSON config file.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("sampling config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("sampling config %s: %w", path, err)
	}
	return c, c.Validate()
}

// Validate checks every strategy.
func (c Config) Validate() error {
	if len(c.Strategies) == 0 {
		return fmt.Errorf("sampling: no strategies")
	}
	if c.MinEmbeddingDistance < 0 || c.MinEmbeddingDistance > 2 {
		return fmt.Errorf("sampling: min_embedding_distance %v outside [0, 2] (a cosine distance)", c.MinEmbeddingDistance)
	}
	if c.SkipSimilarShare < 0 || c.SkipSimilarShare >= 1 {
		return fmt.Errorf("sampling: skip_similar_share %v outside [0, 1)", c.SkipSimilarShare)
	}
	names := map[string]bool{}
	for i, s := range c.Strategies {
		where := fmt.Sprintf("sampling strategy %d (%s)", i, s.Kind)
		name := s.name()
		if names[name] {
			return fmt.Errorf("%s: duplicate name %q", where, name)
		}
		names[name] = true
		switch s.Kind {
		case OperatorFlagged:
		case CloseToThreshold:
			if s.Epsilon <= 0 || s.Threshold < 0 || s.Threshold > 1 {
				return fmt.Errorf("%s: want 0 ≤ threshold ≤ 1 and epsilon > 0", where)
			}
		case LowConfidence:
			switch s.Measure {
			case "top1", "margin":
				if s.Max <= 0 || s.Max > 1 {
					return fmt.Errorf("%s: %s wants 0 < max ≤ 1", where, s.Measure)
				}
			case "entropy":
				if s.Min <= 0 || s.Min >= 1 {
					return fmt.Errorf("%s: entropy wants 0 < min < 1", where)
				}
			case MidShare:
				if s.Min < 0 || s.Max > 1 || s.Min >= s.Max || s.Share <= 0 || s.Share > 1 {
					return fmt.Errorf("%s: mid_share wants 0 ≤ min < max ≤ 1 and 0 < share ≤ 1", where)
				}
			default:
				return fmt.Errorf("%s: measure %q: want top1, margin, entropy or mid_share", where, s.Measure)
			}
		case Random:
			if s.Probability <= 0 || s.Probability > 1 {
				return fmt.Errorf("%s: probability %v outside (0,1]", where, s.Probability)
			}
		case Confident:
			if s.Probability <= 0 || s.Probability > 1 || s.Min <= 0 || s.Min > 1 {
				return fmt.Errorf("%s: want probability in (0,1] and min (the top-1 confidence) in (0,1]", where)
			}
		case ClassQuota:
			if len(s.MinPerHour) == 0 {
				return fmt.Errorf("%s: min_per_hour is empty", where)
			}
		case DetectionCount:
			if s.MinBoxes < 0 || (s.MaxBoxes > 0 && s.MaxBoxes < s.MinBoxes) {
				return fmt.Errorf("%s: want 0 ≤ min_boxes ≤ max_boxes", where)
			}
		default:
			return fmt.Errorf("%s: unknown kind", where)
		}
	}
	return nil
}

func (s StrategyConfig) name() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Kind
}

// KindProto maps a strategy kind to the wire enum (UNSPECIFIED for an unknown name).
func KindProto(kind string) edgeloopv1.SamplingKind {
	k, _ := contract.SamplingKindOf(kind)
	return k
}

// Priority of an upload in the outbox: operator flags first, then uncertainty, then
// random and quota samples (contract.UploadPriority).
func Priority(kind string) int { return contract.UploadPriority(KindProto(kind)) }

// Frame is what a sampler sees of one inference.
type Frame struct {
	Predictions []vision.Prediction
	// Detect is set for a detection model (boxes), clear for classification.
	Detect bool
	// Flagged is set when an operator marked the prediction wrong.
	Flagged bool
	// Thumb is the frame's thumbnail (raster.Thumbnail), for near-duplicates.
	Thumb raster.Thumb
	// Embedding is the model's penultimate features of the frame (vision.Options.Embed;
	// nil when the model gives none), for diversity among picks.
	Embedding []float32
}

// Decision is whether a frame is taken and why.
type Decision struct {
	// Reasons are the reasons of every strategy that matched and counted: the one that
	// took the frame and the later ones in the config (an earlier match out of quota is
	// left out). Read Kind and Strategy, not their order, for the one that took it.
	Reasons []*edgeloopv1.SamplingReason
	// Kind and Strategy (its name) are those of the strategy that took the frame; empty
	// when none did.
	Kind, Strategy string
	// Duplicate is set when the frame was skipped as a look-alike of a recent one.
	Duplicate bool
	// Similar is set when the frame was skipped because its embedding is within
	// Config.MinEmbeddingDistance of a recent pick's.
	Similar bool
}

// Taken reports whether the frame is to be uploaded.
func (d Decision) Taken() bool { return d.Kind != "" }

// TakenBy is the wire kind of the strategy that took the frame (UNSPECIFIED: none).
func (d Decision) TakenBy() edgeloopv1.SamplingKind { return KindProto(d.Kind) }

// Sampler applies a Config. It is safe for concurrent use.
type Sampler struct {
	cfg    Config
	mu     sync.Mutex
	rng    *rand.Rand
	counts []*window
	class  map[string]*window
	recent []seen
	// picks are the embeddings of the last Config.EmbeddingWindow frames taken; near
	// the distances of the last candidates to their nearest pick (SkipSimilarShare).
	picks []pick
	near  []float64
	// boxCounts are the box counts of the last CountWindow detection frames seen.
	boxCounts []int
	now       func() time.Time
}

type seen struct {
	thumb raster.Thumb
	at    time.Time
}

type pick struct {
	emb []float32
	at  time.Time
}

// New returns a Sampler; seed makes the random strategy reproducible.
func New(c Config, seed uint64, now func() time.Time) (*Sampler, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.DedupDistance == 0 {
		c.DedupDistance = raster.SameSceneDistance
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = config.Duration(time.Hour)
	}
	if c.EmbeddingWindow <= 0 {
		c.EmbeddingWindow = 200
	}
	if now == nil {
		now = time.Now
	}
	s := &Sampler{cfg: c, rng: rand.New(rand.NewPCG(seed, 7)), class: map[string]*window{}, now: now}
	for range c.Strategies {
		s.counts = append(s.counts, &window{})
	}
	return s, nil
}

// Decide says whether to upload a frame and why.
func (s *Sampler) Decide(f Frame) Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var d Decision
	taker := -1
	usual := s.usualCount()
	if f.Detect && !f.Flagged {
		s.boxCounts = append(s.boxCounts, len(f.Predictions))
		if len(s.boxCounts) > CountWindow {
			s.boxCounts = s.boxCounts[len(s.boxCounts)-CountWindow:]
		}
	}
	for i, st := range s.cfg.Strategies {
		r := s.match(st, f, now, usual)
		if r == nil {
			continue
		}
		if taker < 0 {
			if !s.counts[i].allow(st.Limits, now) {
				continue // this one is out of quota; a later strategy may still take it
			}
			taker = i
			d.Kind, d.Strategy = st.Kind, st.name()
		}
		d.Reasons = append(d.Reasons, r)
	}
	if taker < 0 {
		return Decision{}
	}
	if d.Kind != OperatorFlagged && s.duplicate(f.Thumb, now) {
		return Decision{Duplicate: true}
	}
	if d.Kind == Confident {
		// A pseudo-label neither is a pick nor keeps a labelling candidate out.
		s.counts[taker].commit(now)
		return d
	}
	if d.Kind != OperatorFlagged && s.similar(f.Embedding, now) {
		return Decision{Similar: true}
	}
	s.counts[taker].commit(now)
	s.recent = append(s.recent, seen{thumb: f.Thumb, at: now})
	if len(f.Embedding) > 0 {
		s.picks = append(s.picks, pick{emb: f.Embedding, at: now})
		if len(s.picks) > s.cfg.EmbeddingWindow {
			s.picks = s.picks[len(s.picks)-s.cfg.EmbeddingWindow:]
		}
	}
	if len(f.Predictions) > 0 {
		s.classWindow(f.Predictions[0].ClassName).commit(now)
	}
	return d
}

func (s *Sampler) match(st StrategyConfig, f Frame, now time.Time, usual *countRange) *edgeloopv1.SamplingReason {
	reason := func(score float64, detail string, args ...any) *edgeloopv1.SamplingReason {
		return &edgeloopv1.SamplingReason{Kind: KindProto(st.Kind), Strategy: st.name(), Score: float32(score), Detail: fmt.Sprintf(detail, args...)}
	}
	switch st.Kind {
	case OperatorFlagged:
		if f.Flagged {
			return reason(1, "an operator flagged the prediction wrong")
		}
	case CloseToThreshold:
		for _, p := range relevant(f) {
			if d := math.Abs(float64(p.Confidence) - st.Threshold); d < st.Epsilon {
				return reason(d, "confidence %.3f of %q within %.3f of %.2f", p.Confidence, p.ClassName, st.Epsilon, st.Threshold)
			}
		}
	case LowConfidence:
		if f.Detect {
			return boxUncertainty(st, f.Predictions, reason)
		}
		if len(f.Predictions) == 0 || st.Measure == MidShare {
			return nil
		}
		probs := make([]float64, len(f.Predictions))
		for i, p := range f.Predictions {
			probs[i] = float64(p.Confidence)
		}
		sort.Sort(sort.Reverse(sort.Float64Slice(probs)))
		switch st.Measure {
		case "top1":
			if probs[0] < st.Max {
				return reason(probs[0], "top-1 confidence %.3f < %.2f", probs[0], st.Max)
			}
		case "margin":
			m := probs[0]
			if len(probs) > 1 {
				m -= probs[1]
			}
			if m < st.Max {
				return reason(m, "margin %.3f between the two best classes < %.2f", m, st.Max)
			}
		case "entropy":
			if e := entropy(probs); e > st.Min {
				return reason(e, "normalised entropy %.3f > %.2f", e, st.Min)
			}
		}
	case Random:
		if s.rng.Float64() < st.Probability {
			return reason(st.Probability, "random sample (p=%.3f)", st.Probability)
		}
	case Confident:
		if f.Detect || f.Flagged || len(f.Predictions) == 0 {
			return nil
		}
		if c := float64(f.Predictions[0].Confidence); c >= st.Min && s.rng.Float64() < st.Probability {
			return reason(c, "confident: top-1 %.3f ≥ %.2f, a pseudo-label (p=%.3f)", c, st.Min, st.Probability)
		}
	case ClassQuota:
		if len(f.Predictions) == 0 {
			return nil
		}
		c := f.Predictions[0].ClassName
		if min, ok := st.MinPerHour[c]; ok && s.classWindow(c).inLast(now, time.Hour) < min {
			return reason(float64(min), "class %q has fewer than %d uploads this hour", c, min)
		}
	case DetectionCount:
		if !f.Detect {
			return nil
		}
		n := len(f.Predictions)
		if st.MinBoxes == 0 && st.MaxBoxes == 0 {
			if usual != nil && (n < usual.lo-usual.slack || n > usual.hi+usual.slack) {
				return reason(float64(n), "%d boxes, usual is %d–%d (5th–95th percentile of the last %d frames) ± %d", n, usual.lo, usual.hi, usual.of, usual.slack)
			}
			return nil
		}
		if n < st.MinBoxes || (st.MaxBoxes > 0 && n > st.MaxBoxes) {
			return reason(float64(n), "%d boxes, usual is %d–%d", n, st.MinBoxes, st.MaxBoxes)
		}
	}
	return nil
}

// countRange is the usual number of boxes a frame: the 5th to 95th percentile of the
// last of frames, and the slack beyond it that is still usual.
type countRange struct{ lo, hi, of, slack int }

// usualCount is the usual box count of the detection frames seen so far (nil before
// MinCountHistory of them).
func (s *Sampler) usualCount() *countRange {
	if len(s.boxCounts) < MinCountHistory {
		return nil
	}
	c := slices.Clone(s.boxCounts)
	slices.Sort(c)
	at := func(q float64) int { return c[int(math.Round(q*float64(len(c)-1)))] }
	lo, hi := at(0.05), at(0.95)
	return &countRange{lo: lo, hi: hi, of: len(c), slack: max(1, (hi-lo)/2)}
}

// boxUncertainty is low_confidence for a detector: the least sure box decides (top1,
// margin, entropy), or the share of mid-confidence boxes (mid_share). A frame without
// boxes has no uncertain box (detection_count looks after empty frames).
func boxUncertainty(st StrategyConfig, boxes []vision.Prediction, reason func(float64, string, ...any) *edgeloopv1.SamplingReason) *edgeloopv1.SamplingReason {
	if len(boxes) == 0 {
		return nil
	}
	worst, mid := 0, 0
	for i, b := range boxes {
		less := boxMargin(b.Confidence) < boxMargin(boxes[worst].Confidence)
		if st.Measure == "top1" {
			less = b.Confidence < boxes[worst].Confidence
		}
		if less {
			worst = i
		}
		if c := float64(b.Confidence); c >= st.Min && c <= st.Max {
			mid++
		}
	}
	w := boxes[worst]
	where := func() string {
		if w.Box == nil {
			return fmt.Sprintf("box %d (%s)", worst+1, w.ClassName)
		}
		return fmt.Sprintf("box %d (%s at %.2f,%.2f–%.2f,%.2f)", worst+1, w.ClassName, w.Box.X0, w.Box.Y0, w.Box.X1, w.Box.Y1)
	}
	c := float64(w.Confidence)
	switch st.Measure {
	case "top1":
		if c < st.Max {
			return reason(c, "confidence %.3f of %s < %.2f, the least sure of %d boxes", c, where(), st.Max, len(boxes))
		}
	case "margin":
		if m := boxMargin(w.Confidence); m < st.Max {
			return reason(m, "margin %.3f of %s (confidence %.3f) < %.2f, the least sure of %d boxes", m, where(), c, st.Max, len(boxes))
		}
	case "entropy":
		if e := entropy([]float64{c, 1 - c}); e > st.Min {
			return reason(e, "entropy %.3f of %s (confidence %.3f) > %.2f, the least sure of %d boxes", e, where(), c, st.Min, len(boxes))
		}
	case MidShare:
		if share := float64(mid) / float64(len(boxes)); share >= st.Share {
			return reason(share, "%d of %d boxes (%.0f%%) at a confidence in [%.2f, %.2f], at least %.0f%% wanted", mid, len(boxes), 100*share, st.Min, st.Max, 100*st.Share)
		}
	}
	return nil
}

// boxMargin is how far a box's confidence is from the 0.5 decision, in [0, 1].
func boxMargin(c float32) float64 { return math.Abs(2*float64(c) - 1) }

// relevant are the confidences a threshold strategy looks at: the top class
// (classification) or every box (detection).
func relevant(f Frame) []vision.Prediction {
	if !f.Detect && len(f.Predictions) > 0 {
		return f.Predictions[:1]
	}
	return f.Predictions
}

func entropy(p []float64) float64 {
	if len(p) < 2 {
		return 0
	}
	var h float64
	for _, v := range p {
		if v > 0 {
			h -= v * math.Log(v)
		}
	}
	return h / math.Log(float64(len(p)))
}

func (s *Sampler) classWindow(c string) *window {
	w := s.class[c]
	if w == nil {
		w = &window{}
		s.class[c] = w
	}
	return w
}

// duplicate reports whether t is near a thumbnail taken within the dedup window.
func (s *Sampler) duplicate(t raster.Thumb, now time.Time) bool {
	if s.cfg.DedupDistance < 0 {
		return false
	}
	cut := now.Add(-time.Duration(s.cfg.DedupWindow))
	keep := s.recent[:0]
	dup := false
	for _, r := range s.recent {
		if r.at.Before(cut) {
			continue
		}
		keep = append(keep, r)
		if raster.ThumbDistance(r.thumb, t) <= s.cfg.DedupDistance {
			dup = true
		}
	}
	s.recent = keep
	return dup
}

// similar reports whether embedding e is too like a recent pick's: within
// MinEmbeddingDistance, or among the SkipSimilarShare of candidates nearest to one.
func (s *Sampler) similar(e []float32, now time.Time) bool {
	cut := now.Add(-time.Duration(s.cfg.DedupWindow))
	s.picks = slices.DeleteFunc(s.picks, func(p pick) bool { return p.at.Before(cut) })
	if (s.cfg.MinEmbeddingDistance <= 0 && s.cfg.SkipSimilarShare <= 0) || len(e) == 0 {
		return false
	}
	d := math.Inf(1)
	for _, p := range s.picks {
		if len(p.emb) == len(e) {
			d = min(d, selection.CosineDistance(p.emb, e))
		}
	}
	if d < s.cfg.MinEmbeddingDistance {
		return true
	}
	if s.cfg.SkipSimilarShare <= 0 || math.IsInf(d, 1) {
		return false
	}
	// The quantile of the distances before this one; the first candidates pass.
	skip := false
	if len(s.near) >= 20 {
		sorted := slices.Sorted(slices.Values(s.near))
		skip = d < sorted[int(s.cfg.SkipSimilarShare*float64(len(sorted)))]
	}
	s.near = append(s.near, d)
	if len(s.near) > s.cfg.EmbeddingWindow {
		s.near = s.near[len(s.near)-s.cfg.EmbeddingWindow:]
	}
	return skip
}

// window counts events for per-minute/hour/day limits.
type window struct {
	times []time.Time
}

func (w *window) prune(now time.Time) {
	cut := now.Add(-24 * time.Hour)
	i := 0
	for i < len(w.times) && w.times[i].Before(cut) {
		i++
	}
	w.times = w.times[i:]
}

func (w *window) inLast(now time.Time, d time.Duration) int {
	w.prune(now)
	n := 0
	for i := len(w.times) - 1; i >= 0 && w.times[i].After(now.Add(-d)); i-- {
		n++
	}
	return n
}

// allow reports whether one more event fits the limits; commit records one.
func (w *window) allow(l Limits, now time.Time) bool {
	for _, c := range []struct {
		limit int
		d     time.Duration
	}{{l.PerMinute, time.Minute}, {l.PerHour, time.Hour}, {l.PerDay, 24 * time.Hour}} {
		if c.limit > 0 && w.inLast(now, c.d) >= c.limit {
			return false
		}
	}
	return true
}

func (w *window) commit(now time.Time) { w.times = append(w.times, now) }

// Stats reports, per strategy name, how many frames it took in the last hour.
func (s *Sampler) Stats() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := map[string]int{}
	for i, st := range s.cfg.Strategies {
		out[st.name()] = s.counts[i].inLast(now, time.Hour)
	}
	return out
}
