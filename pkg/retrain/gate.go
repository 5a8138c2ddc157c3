package retrain

import (
	"fmt"
	"sort"

	"github.com/edgeloop/edgeloop/pkg/registry"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// minClassSupport is the fewest test examples of a class for its figure to count in the
// no-regression check: on a handful of examples one mistake is a swing of 20 %.
const minClassSupport = 5

// Gate decides whether a candidate replaces the current release. Both were evaluated
// on the same frozen test split. The candidate must beat the current model's headline
// metric by more than minGain, and no class with enough test examples may lose more
// than tolerance. Without a current model, the candidate is published (bootstrap);
// without test examples, nothing can be compared and it is not.
func Gate(metric string, candidate train.Evaluation, current *train.Evaluation, testExamples int, minGain, tolerance float64) registry.Decision {
	d := registry.Decision{Metric: metric, Candidate: candidate.Headline(), TestExamples: testExamples, PerClass: map[string][2]float64{}}
	if current == nil {
		d.Published = true
		d.Reasons = append(d.Reasons, "no release yet: the first model is published")
		return d
	}
	d.Current = current.Headline()
	if testExamples == 0 {
		d.Reasons = append(d.Reasons, "the test split is still empty: nothing to compare on")
		return d
	}
	better := d.Candidate > d.Current+minGain
	if better {
		d.Reasons = append(d.Reasons, fmt.Sprintf("%s %.4f beats %.4f (+%.4f > %.4f)", metric, d.Candidate, d.Current, d.Candidate-d.Current, minGain))
	} else {
		d.Reasons = append(d.Reasons, fmt.Sprintf("%s %.4f does not beat %.4f by more than %.4f", metric, d.Candidate, d.Current, minGain))
	}
	cand, cur, support := candidate.PerClass(), current.PerClass(), supportOf(candidate)
	var classes []string
	for c := range cand {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	regressed := false
	for _, c := range classes {
		d.PerClass[c] = [2]float64{cand[c], cur[c]}
		if support[c] < minClassSupport {
			continue
		}
		if cand[c] < cur[c]-tolerance {
			regressed = true
			d.Reasons = append(d.Reasons, fmt.Sprintf("class %s regresses from %.3f to %.3f (tolerance %.3f)", c, cur[c], cand[c], tolerance))
		}
	}
	if !regressed {
		d.Reasons = append(d.Reasons, fmt.Sprintf("no class with %d+ test examples regresses by more than %.3f", minClassSupport, tolerance))
	}
	d.Published = better && !regressed
	return d
}

// supportOf counts test examples (classification) or objects (detection) per class.
func supportOf(ev train.Evaluation) map[string]int {
	out := map[string]int{}
	if c := ev.Classification; c != nil {
		for _, s := range c.PerClass {
			out[s.Class] = s.Support
		}
	}
	if d := ev.Detection; d != nil {
		for _, s := range d.PerClass {
			out[s.Class] = s.GroundTr
		}
	}
	return out
}
