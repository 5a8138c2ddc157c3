package retrain

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/edgeloop/edgeloop/pkg/evaluate"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// Bootstrap settings of the detection gate: enough resamples for percentile bounds at
// 95 %, and a fixed seed so that the same evaluations always get the same decision.
const (
	gateResamples = 1000
	gateSeed      = 1
)

// Gate decides whether a candidate replaces the current release, on paired evidence:
// both models were evaluated on the same frozen test examples, and the decision rests on
// how their outcomes differ example by example (an exact McNemar test for
// classification, a paired bootstrap of mAP@0.5 over images for detection).
//
// Without a current model the candidate is published (the first model). With fewer
// than pol.MinTest test examples it is held: not enough evidence. Otherwise it is
// published when the lower confidence bound of its gain clears the policy (above
// MinGain for "better", at least −Margin for "not_worse") and no class regresses by
// the per-class policy; refused when it is shown worse, overall or on a class; held
// when the difference cannot be told from chance. The decision records the numbers and
// says them in words.
func Gate(metric string, candidate train.Evaluation, current *train.Evaluation, pol project.RetrainPolicy) registry.Decision {
	withDefaults := project.Project{Retrain: pol}
	withDefaults.Defaults() // unset settings (a policy not read through the store) get the project defaults
	pol = withDefaults.Retrain
	d := registry.Decision{Metric: metric, Candidate: candidate.Headline(), TestExamples: testSize(candidate), PerClass: map[string][2]float64{}}
	if current == nil {
		d.Published, d.Verdict = true, "first"
		d.Reasons = append(d.Reasons, "no release yet: the first model is published without a comparison")
		return d
	}
	d.Current = current.Headline()
	cand, cur := candidate.PerClass(), current.PerClass()
	for c, v := range cand {
		d.PerClass[c] = [2]float64{v, cur[c]}
	}
	d.Verdict = "held"
	if d.TestExamples < pol.MinTest {
		d.Reasons = append(d.Reasons, fmt.Sprintf("not enough evidence: %s %.3f against %.3f on %d test %s, and the gate decides on %d or more (min_test); "+
			"held — the test split grows as approved examples arrive (up to the project's test_cap), and an admin can release it by hand (promote)",
			metric, d.Candidate, d.Current, d.TestExamples, unit(candidate), pol.MinTest))
		return d
	}
	ev, err := evidence(candidate, current, pol)
	if err != nil {
		d.Reasons = append(d.Reasons, fmt.Sprintf("held: candidate and release cannot be compared example by example: %v", err))
		return d
	}
	d.Evidence = ev
	alpha := 1 - pol.Confidence
	var pass, worse bool
	if pol.Require == "not_worse" {
		pass, worse = ev.Lower >= -pol.Margin, ev.Upper < -pol.Margin
	} else {
		pass, worse = ev.Lower > pol.MinGain, ev.Upper < 0
	}
	d.Reasons = append(d.Reasons, overallReason(metric, d, ev, candidate))
	classRefuses := false
	for _, c := range ev.Classes {
		classRefuses = classRefuses || c.Regressed
	}
	switch {
	case pass && pol.Require == "not_worse":
		d.Reasons = append(d.Reasons, fmt.Sprintf("not worse with %s confidence: the difference is at least %s, within the margin of %s",
			pct(pol.Confidence), points(ev.Lower), magnitude(pol.Margin)))
	case pass:
		d.Reasons = append(d.Reasons, fmt.Sprintf("better with %s confidence: the gain is at least %s%s",
			pct(pol.Confidence), points(ev.Lower), gainFloor(pol.MinGain)))
	case worse && pol.Require == "not_worse":
		d.Reasons = append(d.Reasons, fmt.Sprintf("refused: worse by more than the margin of %s with %s confidence (the difference is at most %s)",
			magnitude(pol.Margin), pct(pol.Confidence), points(ev.Upper)))
	case worse:
		d.Reasons = append(d.Reasons, fmt.Sprintf("refused: worse with %s confidence (the difference is at most %s)", pct(pol.Confidence), points(ev.Upper)))
	default:
		want, why := "better", fmt.Sprintf(", which this test split cannot tell from chance (%s ≥ %.3f)", pval(ev.P), alpha)
		switch {
		case pol.Require == "not_worse":
			want, why = "worse by less than "+magnitude(pol.Margin), ""
		case pol.MinGain != 0:
			want, why = "better"+gainFloor(pol.MinGain), ""
		}
		if classRefuses { // a class refuses it: no point in waiting for more evidence overall
			d.Reasons = append(d.Reasons, fmt.Sprintf("not shown %s with %s confidence — the difference lies between %s and %s%s",
				want, pct(pol.Confidence), points(ev.Lower), points(ev.Upper), why))
			break
		}
		d.Reasons = append(d.Reasons, fmt.Sprintf("held: not shown %s with %s confidence — the difference lies between %s and %s%s; "+
			"more test examples would tell (test_cap), or an admin can release it by hand (promote)",
			want, pct(pol.Confidence), points(ev.Lower), points(ev.Upper), why))
	}
	classReasons(&d, ev, pol)
	switch {
	case classRefuses, worse:
		d.Verdict = "refused"
	case pass:
		d.Verdict, d.Published = "published", true
	}
	return d
}

// evidence pairs the two evaluations and applies the per-class policy.
func evidence(candidate train.Evaluation, current *train.Evaluation, pol project.RetrainPolicy) (*registry.Evidence, error) {
	alpha := 1 - pol.Confidence
	ev := &registry.Evidence{Confidence: pol.Confidence, Require: pol.Require, Threshold: pol.MinGain, PerClassPolicy: pol.PerClass}
	if pol.Require == "not_worse" {
		ev.Threshold = -pol.Margin
	}
	var pWorse []float64
	switch {
	case candidate.Classification != nil && current.Classification != nil:
		all, per, err := evaluate.PairClassification(candidate.Classification, current.Classification)
		if err != nil {
			return nil, err
		}
		ev.Method, ev.N, ev.Gained, ev.Lost = "exact McNemar", all.N, all.Gained, all.Lost
		ev.Difference, ev.P = all.Difference(), all.PBetter()
		ev.Lower, ev.Upper = all.Bounds(pol.Confidence)
		for k, pc := range per {
			if pc.N == 0 {
				continue
			}
			ev.Classes = append(ev.Classes, registry.ClassEvidence{Class: candidate.Classification.PerClass[k].Class, N: pc.N,
				Gained: pc.Gained, Lost: pc.Lost, Candidate: frac(pc.CandidateRight, pc.N), Current: frac(pc.ReferenceRight, pc.N), P: pc.PWorse()})
			pWorse = append(pWorse, pc.PWorse())
		}
	case candidate.Detection != nil && current.Detection != nil:
		b, err := evaluate.PairedBootstrap(candidate.Detection, current.Detection, pol.Confidence, gateResamples, gateSeed)
		if err != nil {
			return nil, err
		}
		ev.Method, ev.Resamples, ev.Seed, ev.N = "paired bootstrap", b.Resamples, b.Seed, b.Images
		ev.Difference, ev.Lower, ev.Upper, ev.P = b.Difference, b.Lower, b.Upper, b.PBetter
		for _, c := range b.PerClass {
			if c.Objects == 0 {
				continue
			}
			ev.Classes = append(ev.Classes, registry.ClassEvidence{Class: c.Class, N: c.Objects, Gained: c.Gained, Lost: c.Lost,
				Candidate: c.Candidate, Current: c.Reference, P: c.PWorse})
			pWorse = append(pWorse, c.PWorse)
		}
	default:
		return nil, fmt.Errorf("one evaluation is of classification, the other of detection")
	}
	switch pol.PerClass {
	case "significant":
		for i, sig := range evaluate.Holm(pWorse, alpha) {
			ev.Classes[i].Regressed = sig
		}
		// The level each class was held against: Holm's, by rank of its p-value.
		order := make([]int, len(pWorse))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(i, j int) bool { return pWorse[order[i]] < pWorse[order[j]] })
		for r, i := range order {
			ev.Classes[i].Alpha = alpha / float64(len(order)-r)
		}
	case "count":
		for i, c := range ev.Classes {
			ev.Classes[i].Regressed = c.Lost-c.Gained > pol.ClassMaxLoss
		}
	}
	return ev, nil
}

// overallReason says the paired comparison in words.
func overallReason(metric string, d registry.Decision, ev *registry.Evidence, candidate train.Evaluation) string {
	if ev.Method == "paired bootstrap" {
		return fmt.Sprintf("%s %.3f against %.3f on the same %d test images: a paired bootstrap (%d resamples of the images, seed %d) puts the difference of %s between %s and %s (each bound %s; %s that it is not better)",
			metric, d.Candidate, d.Current, ev.N, ev.Resamples, ev.Seed, points(ev.Difference), points(ev.Lower), points(ev.Upper), pct(ev.Confidence), pval(ev.P))
	}
	return fmt.Sprintf("%s %.3f against %.3f on the same %d test %s: the candidate is right on %d the release got wrong and wrong on %d it got right (exact McNemar test of \"better\": one-sided %s); the difference is %s, between %s and %s (each bound %s)",
		metric, d.Candidate, d.Current, ev.N, unit(candidate), ev.Gained, ev.Lost, pval(ev.P), points(ev.Difference), points(ev.Lower), points(ev.Upper), pct(ev.Confidence))
}

// classReasons adds the per-class findings to d.
func classReasons(d *registry.Decision, ev *registry.Evidence, pol project.RetrainPolicy) {
	what := "examples"
	if ev.Method == "paired bootstrap" {
		what = "objects"
	}
	regressed := false
	for _, c := range ev.Classes {
		if !c.Regressed {
			continue
		}
		regressed = true
		if pol.PerClass == "count" {
			d.Reasons = append(d.Reasons, fmt.Sprintf("refused: class %s lost %d of its %d test %s net (%d lost, %d gained), more than the project's class_max_loss of %d",
				c.Class, c.Lost-c.Gained, c.N, what, c.Lost, c.Gained, pol.ClassMaxLoss))
			continue
		}
		d.Reasons = append(d.Reasons, fmt.Sprintf("refused: class %s regresses from %.3f to %.3f — %d of its %d test %s lost, %d gained (p = %.4f ≤ %.4f: worse with %s confidence, Holm-corrected over %s)",
			c.Class, c.Current, c.Candidate, c.Lost, c.N, what, c.Gained, c.P, c.Alpha, pct(pol.Confidence), classes(len(ev.Classes))))
	}
	if regressed || pol.PerClass == "off" || len(ev.Classes) == 0 {
		return
	}
	// No class refused it: name the largest per-class loss, so that a reviewer sees the
	// noise the gate looked through.
	worst := ev.Classes[0]
	for _, c := range ev.Classes[1:] {
		if c.Lost-c.Gained > worst.Lost-worst.Gained {
			worst = c
		}
	}
	rule := fmt.Sprintf("significantly at %s confidence (Holm-corrected over %s)", pct(pol.Confidence), classes(len(ev.Classes)))
	if pol.PerClass == "count" {
		rule = fmt.Sprintf("by more than %d test %s net (class_max_loss)", pol.ClassMaxLoss, what)
	}
	msg := "no class regresses " + rule
	if worst.Lost > worst.Gained {
		msg += fmt.Sprintf("; the largest move: class %s %.3f → %.3f, %d of its %d test %s lost, %d gained (p = %.2f)",
			worst.Class, worst.Current, worst.Candidate, worst.Lost, worst.N, what, worst.Gained, worst.P)
	}
	d.Reasons = append(d.Reasons, msg)
}

// testSize is the number of test examples (images, for detection) of an evaluation.
func testSize(ev train.Evaluation) int {
	if ev.Classification != nil {
		return ev.Classification.N
	}
	if ev.Detection != nil {
		return ev.Detection.Images
	}
	return 0
}

func unit(ev train.Evaluation) string {
	if ev.Detection != nil {
		return "images"
	}
	return "examples"
}

func frac(a, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(a) / float64(n)
}

func pct(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", 100*v), "0"), ".") + " %"
}

// points writes a difference of rates in percentage points, signed.
func points(v float64) string {
	switch {
	case v == 0:
		return "0 points"
	case math.Abs(v) < 0.01:
		return fmt.Sprintf("%+.2f points", 100*v)
	}
	return fmt.Sprintf("%+.1f points", 100*v)
}

// magnitude writes a margin in percentage points, unsigned.
func magnitude(v float64) string { return strings.TrimPrefix(points(v), "+") }

func pval(p float64) string {
	if p < 0.001 {
		return "p < 0.001"
	}
	return fmt.Sprintf("p = %.3f", p)
}

func classes(n int) string {
	if n == 1 {
		return "1 class"
	}
	return fmt.Sprintf("%d classes", n)
}

func gainFloor(minGain float64) string {
	if minGain == 0 {
		return ""
	}
	return " by more than " + points(minGain) + " (min_gain)"
}
