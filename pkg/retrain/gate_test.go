package retrain

import (
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/evaluate"
	"github.com/edgeloop/edgeloop/pkg/train"
)

func cls(acc float64, perClass map[string][2]float64) train.Evaluation {
	r := &evaluate.ClassificationReport{Accuracy: acc}
	for c, v := range perClass {
		r.PerClass = append(r.PerClass, evaluate.ClassStat{Class: c, Accuracy: v[0], Recall: v[0], Support: int(v[1])})
	}
	return train.Evaluation{Classification: r}
}

func TestGate(t *testing.T) {
	cases := []struct {
		name      string
		cand, cur train.Evaluation
		noCurrent bool
		test      int
		publish   bool
		reason    string
	}{
		{"bootstrap", cls(.5, nil), train.Evaluation{}, true, 0, true, "no release yet"},
		{"better", cls(.9, map[string][2]float64{"a": {.9, 10}}), cls(.8, map[string][2]float64{"a": {.8, 10}}), false, 20, true, "beats"},
		{"tie is not better", cls(.8, nil), cls(.8, nil), false, 20, false, "does not beat"},
		{"worse", cls(.7, nil), cls(.8, nil), false, 20, false, "does not beat"},
		{"class regresses", cls(.9, map[string][2]float64{"a": {.99, 10}, "b": {.5, 10}}), cls(.8, map[string][2]float64{"a": {.8, 10}, "b": {.8, 10}}), false, 20, false, "class b regresses"},
		{"regression within tolerance", cls(.9, map[string][2]float64{"b": {.79, 10}}), cls(.8, map[string][2]float64{"b": {.8, 10}}), false, 20, true, "no class"},
		{"tiny class ignored", cls(.9, map[string][2]float64{"b": {0, 2}}), cls(.8, map[string][2]float64{"b": {1, 2}}), false, 20, true, "no class"},
		{"empty test split", cls(.9, nil), cls(.8, nil), false, 0, false, "still empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cur *train.Evaluation
			if !c.noCurrent {
				cur = &c.cur
			}
			d := Gate("accuracy", c.cand, cur, c.test, 0, 0.02)
			if d.Published != c.publish || !strings.Contains(strings.Join(d.Reasons, "; "), c.reason) {
				t.Fatalf("published %v (%v), want %v with %q", d.Published, d.Reasons, c.publish, c.reason)
			}
		})
	}
}
