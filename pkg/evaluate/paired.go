package evaluate

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// This file compares two models on the same test examples, example by example: the
// paired evidence a release gate decides on. Classification pairs each example's two
// outcomes (right or wrong) and tests them with an exact McNemar test; detection
// resamples the test images (a paired bootstrap of mAP@0.5).

// ErrNotPaired says two evaluations are not of the same examples.
var ErrNotPaired = errors.New("the two evaluations are not of the same test examples")

// FoundScore is the score from which a matched detection counts as an object found (the
// agent's default decoding threshold); it defines the per-class counts of detection.
const FoundScore = 0.25

func logChoose(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

// BinomialTail is P(X ≥ k) for X ~ Binomial(n, p), summed exactly term by term.
func BinomialTail(n, k int, p float64) float64 {
	switch {
	case k <= 0:
		return 1
	case k > n || p <= 0:
		return 0
	case p >= 1:
		return 1
	}
	lp, lq := math.Log(p), math.Log1p(-p)
	var sum float64
	for i := k; i <= n; i++ {
		sum += math.Exp(logChoose(n, i) + float64(i)*lp + float64(n-i)*lq)
	}
	return min(1, sum)
}

// McNemar is the exact one-sided McNemar p-value that the candidate is better when it
// got b examples right that the reference got wrong and c the other way round: the
// chance of b or more of the b+c discordant pairs going its way if both were equally
// good, P(X ≥ b) for X ~ Binomial(b+c, ½). Without discordant pairs it is 1.
func McNemar(b, c int) float64 {
	if b+c == 0 {
		return 1
	}
	return BinomialTail(b+c, b, 0.5)
}

// binomialLower is the one-sided Clopper–Pearson lower confidence bound of a binomial
// share after k successes in n trials: the p at which P(X ≥ k) = alpha.
func binomialLower(k, n int, alpha float64) float64 {
	if k <= 0 || n == 0 {
		return 0
	}
	lo, hi := 0.0, 1.0
	for range 60 {
		mid := (lo + hi) / 2
		if BinomialTail(n, k, mid) < alpha {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// binomialUpper is the one-sided Clopper–Pearson upper confidence bound.
func binomialUpper(k, n int, alpha float64) float64 {
	if n == 0 || k >= n {
		return 1
	}
	return 1 - binomialLower(n-k, n, alpha)
}

// PairCounts are two models' outcomes on the same classification examples.
type PairCounts struct {
	// N is the number of examples; CandidateRight and ReferenceRight how many each
	// model got right.
	N              int `json:"n"`
	CandidateRight int `json:"candidate_right"`
	ReferenceRight int `json:"reference_right"`
	// Gained counts the examples the candidate got right and the reference wrong;
	// Lost the other way round. Only these discordant pairs tell the models apart.
	Gained int `json:"gained"`
	Lost   int `json:"lost"`
}

// Difference is the candidate's accuracy minus the reference's.
func (p PairCounts) Difference() float64 {
	if p.N == 0 {
		return 0
	}
	return float64(p.Gained-p.Lost) / float64(p.N)
}

// PBetter is the exact one-sided McNemar p-value that the candidate is better.
func (p PairCounts) PBetter() float64 { return McNemar(p.Gained, p.Lost) }

// PWorse is the exact one-sided McNemar p-value that the candidate is worse.
func (p PairCounts) PWorse() float64 { return McNemar(p.Lost, p.Gained) }

// Bounds are one-sided confidence bounds on Difference, each holding with probability
// conf: the Clopper–Pearson bounds of the share of discordant pairs the candidate wins,
// scaled by the share of discordant pairs. The lower bound is above 0 exactly when
// PBetter < 1 − conf, and the upper bound below 0 exactly when PWorse < 1 − conf.
func (p PairCounts) Bounds(conf float64) (lower, upper float64) {
	m := p.Gained + p.Lost
	if p.N == 0 || m == 0 {
		return 0, 0
	}
	alpha, share := 1-conf, float64(m)/float64(p.N)
	return share * (2*binomialLower(p.Gained, m, alpha) - 1), share * (2*binomialUpper(p.Gained, m, alpha) - 1)
}

// PairClassification pairs the outcomes of a candidate and a reference evaluated on the
// same examples: overall, and per true class in the order of the reports' classes.
func PairClassification(cand, ref *ClassificationReport) (PairCounts, []PairCounts, error) {
	if cand == nil || ref == nil || len(cand.truth) != len(ref.truth) || !slices.Equal(cand.truth, ref.truth) ||
		len(cand.PerClass) != len(ref.PerClass) {
		return PairCounts{}, nil, ErrNotPaired
	}
	per := make([]PairCounts, len(cand.PerClass))
	var all PairCounts
	for i, t := range cand.truth {
		a, b := cand.pred[i] == t, ref.pred[i] == t
		add := func(p *PairCounts) {
			p.N++
			if a {
				p.CandidateRight++
			}
			if b {
				p.ReferenceRight++
			}
			if a && !b {
				p.Gained++
			}
			if b && !a {
				p.Lost++
			}
		}
		add(&all)
		if t >= 0 && t < len(per) {
			add(&per[t])
		}
	}
	return all, per, nil
}

// Holm returns which of the p-values are significant at family-wise level alpha by
// Holm's step-down method: the smallest is compared with alpha/m, the next with
// alpha/(m−1), and so on until one fails.
func Holm(p []float64, alpha float64) []bool {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return p[idx[i]] < p[idx[j]] })
	out := make([]bool, len(p))
	for r, i := range idx {
		if p[i] > alpha/float64(len(p)-r) {
			break
		}
		out[i] = true
	}
	return out
}

// imageMatches are one image's ground-truth counts per class and its detections
// matched at IoU 0.5.
type imageMatches struct {
	gt   []int
	dets []match
}

type match struct {
	class int
	score float32
	tp    bool
}

// ClassBootstrap is one class's part of a paired bootstrap.
type ClassBootstrap struct {
	Class string `json:"class"`
	// Objects is the class's ground-truth objects in the test images.
	Objects int `json:"objects"`
	// Candidate and Reference are the class's AP@0.5; Difference their difference.
	Candidate  float64 `json:"candidate"`
	Reference  float64 `json:"reference"`
	Difference float64 `json:"difference"`
	// PWorse is the share of resamples in which the candidate's AP is not below the
	// reference's, (k+1)/(B+1): small when the class regresses in nearly every resample.
	PWorse float64 `json:"p_worse"`
	// FoundCandidate and FoundReference count the objects each model finds (matched at
	// IoU 0.5 by a detection scoring FoundScore or more).
	FoundCandidate int `json:"found_candidate"`
	FoundReference int `json:"found_reference"`
	// Gained and Lost sum, image by image, the objects the candidate finds beyond the
	// reference and those it misses that the reference finds.
	Gained int `json:"gained"`
	Lost   int `json:"lost"`
}

// BootstrapComparison is a paired bootstrap of mAP@0.5 over test images.
type BootstrapComparison struct {
	Images     int     `json:"images"`
	Candidate  float64 `json:"candidate"`
	Reference  float64 `json:"reference"`
	Difference float64 `json:"difference"`
	// Lower and Upper are percentile bounds of the difference, each one-sided at the
	// confidence asked for.
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
	// PBetter is the share of resamples in which the candidate is not better, (k+1)/(B+1).
	PBetter   float64          `json:"p_better"`
	Resamples int              `json:"resamples"`
	Seed      uint64           `json:"seed"`
	PerClass  []ClassBootstrap `json:"per_class"`
}

type ranked struct {
	img int
	tp  bool
}

// rankings lists each class's detections over all images, best score first (ties in
// image order, as Detection ranks them).
func rankings(r *DetectionReport, classes int) [][]ranked {
	type entry struct {
		ranked
		score float32
	}
	all := make([][]entry, classes)
	for i, im := range r.images {
		for _, d := range im.dets {
			if d.class >= 0 && d.class < classes {
				all[d.class] = append(all[d.class], entry{ranked{i, d.tp}, d.score})
			}
		}
	}
	out := make([][]ranked, classes)
	for c, es := range all {
		sort.SliceStable(es, func(i, j int) bool { return es[i].score > es[j].score })
		for _, e := range es {
			out[c] = append(out[c], e.ranked)
		}
	}
	return out
}

// curve is a precision–recall curve's storage, reused from resample to resample.
type curve struct{ prec, rec []float64 }

// weightedMAP is mAP@0.5 over a resample in which image i appears w[i] times, with each
// class's AP in aps (classes without ground truth in the resample: NaN).
func weightedMAP(rank [][]ranked, gt []int, w []int, aps []float64, buf *curve) float64 {
	var sum float64
	n := 0
	for c, list := range rank {
		if gt[c] == 0 {
			aps[c] = math.NaN()
			continue
		}
		prec, rec := buf.prec[:0], buf.rec[:0]
		hits, k := 0, 0
		for _, e := range list {
			for range w[e.img] {
				k++
				if e.tp {
					hits++
				}
				prec = append(prec, float64(hits)/float64(k))
				rec = append(rec, float64(hits)/float64(gt[c]))
			}
		}
		aps[c] = interpolatedAP(prec, rec)
		buf.prec, buf.rec = prec, rec
		sum += aps[c]
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// PairedBootstrap compares a candidate's and a reference's detections on the same test
// images: it draws resamples of the images with replacement (a fixed seed, so the same
// evaluations always give the same answer), computes both models' mAP@0.5 on each, and
// reports the difference with percentile bounds at conf, and each class's AP change.
func PairedBootstrap(cand, ref *DetectionReport, conf float64, resamples int, seed uint64) (*BootstrapComparison, error) {
	if cand == nil || ref == nil || len(cand.images) != len(ref.images) || len(cand.PerClass) != len(ref.PerClass) {
		return nil, ErrNotPaired
	}
	k, n := len(cand.PerClass), len(cand.images)
	for i := range cand.images {
		if !slices.Equal(cand.images[i].gt, ref.images[i].gt) {
			return nil, fmt.Errorf("image %d: %w", i, ErrNotPaired)
		}
	}
	if resamples < 1 {
		return nil, fmt.Errorf("paired bootstrap: %d resamples: want at least 1", resamples)
	}
	out := &BootstrapComparison{Images: n, Candidate: cand.MAP50, Reference: ref.MAP50, Difference: cand.MAP50 - ref.MAP50,
		Resamples: resamples, Seed: seed}
	for c, s := range cand.PerClass {
		cs := ClassBootstrap{Class: s.Class, Objects: s.GroundTr, Candidate: s.AP50, Reference: ref.PerClass[c].AP50,
			Difference: s.AP50 - ref.PerClass[c].AP50}
		for i := range cand.images {
			fc, fr := found(cand.images[i].dets, c), found(ref.images[i].dets, c)
			cs.FoundCandidate += fc
			cs.FoundReference += fr
			cs.Gained += max(0, fc-fr)
			cs.Lost += max(0, fr-fc)
		}
		out.PerClass = append(out.PerClass, cs)
	}
	rc, rr := rankings(cand, k), rankings(ref, k)
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	w, gt := make([]int, n), make([]int, k)
	apc, apr := make([]float64, k), make([]float64, k)
	var buf curve
	diffs := make([]float64, 0, resamples)
	notBetter := 0
	classNotWorse, classPresent := make([]int, k), make([]int, k)
	for range resamples {
		clear(w)
		clear(gt)
		for range n {
			i := rng.IntN(n)
			w[i]++
			for c, g := range cand.images[i].gt {
				gt[c] += g
			}
		}
		d := weightedMAP(rc, gt, w, apc, &buf) - weightedMAP(rr, gt, w, apr, &buf)
		diffs = append(diffs, d)
		if d <= 0 {
			notBetter++
		}
		for c := range k {
			if gt[c] == 0 {
				continue
			}
			classPresent[c]++
			if apc[c] >= apr[c] {
				classNotWorse[c]++
			}
		}
	}
	sort.Float64s(diffs)
	alpha := 1 - conf
	out.Lower = diffs[min(len(diffs)-1, int(math.Floor(alpha*float64(resamples))))]
	out.Upper = diffs[max(0, int(math.Ceil((1-alpha)*float64(resamples)))-1)]
	out.PBetter = float64(notBetter+1) / float64(resamples+1)
	for c := range out.PerClass {
		out.PerClass[c].PWorse = float64(classNotWorse[c]+1) / float64(classPresent[c]+1)
	}
	return out, nil
}

func found(ds []match, c int) int {
	n := 0
	for _, d := range ds {
		if d.class == c && d.tp && d.score >= FoundScore {
			n++
		}
	}
	return n
}

// DetectableDifference is the smallest true accuracy gain that the exact one-sided
// McNemar test at confidence conf detects with probability power on n test examples,
// when the two models disagree on a share disagree of them (NaN when no gain up to
// disagree is detected that often). With power 0.5 it is about the smallest observed
// gain that is significant.
func DetectableDifference(n int, disagree, conf, power float64) float64 {
	alpha := 1 - conf
	mean, sd := float64(n)*disagree, math.Sqrt(float64(n)*disagree*(1-disagree))
	lo, hi := max(0, int(mean-6*sd)), min(n, int(math.Ceil(mean+6*sd)))
	crit := make([]int, hi+1) // crit[m]: fewest wins of m discordant pairs that are significant
	pm := make([]float64, hi+1)
	for m := lo; m <= hi; m++ {
		pm[m] = math.Exp(logChoose(n, m) + float64(m)*math.Log(disagree) + float64(n-m)*math.Log1p(-disagree))
		crit[m] = m + 1
		tail := 0.0
		for b := m; b >= 1; b-- {
			tail += math.Exp(logChoose(m, b) - float64(m)*math.Ln2)
			if tail > alpha {
				break
			}
			crit[m] = b
		}
	}
	powerAt := func(delta float64) float64 {
		pi := (disagree + delta) / (2 * disagree)
		var s float64
		for m := lo; m <= hi; m++ {
			s += pm[m] * BinomialTail(m, crit[m], pi)
		}
		return s
	}
	if powerAt(disagree) < power {
		return math.NaN()
	}
	a, b := 0.0, disagree
	for range 30 {
		mid := (a + b) / 2
		if powerAt(mid) < power {
			a = mid
		} else {
			b = mid
		}
	}
	return b
}
