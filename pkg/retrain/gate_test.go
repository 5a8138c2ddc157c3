package retrain

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/evaluate"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// moves are one class's paired outcomes on its test examples: right by both models,
// gained (candidate right, release wrong), lost (the other way round), wrong by both.
type moves struct{ both, gained, lost, neither int }

// paired builds the two evaluations of the same test examples from each class's moves;
// a wrong prediction names the next class (one more class, without examples, is there
// for it).
func paired(cls ...moves) (cand, cur train.Evaluation) {
	var truth, pc, pr []int
	classes := []string{fmt.Sprintf("c%d", len(cls))}
	wrong := func(k int) int { return k + 1 }
	for k, m := range cls {
		classes = append(classes[:k], fmt.Sprintf("c%d", k), classes[k])
		add := func(n int, candRight, curRight bool) {
			for range n {
				truth = append(truth, k)
				pc, pr = append(pc, k), append(pr, k)
				if !candRight {
					pc[len(pc)-1] = wrong(k)
				}
				if !curRight {
					pr[len(pr)-1] = wrong(k)
				}
			}
		}
		add(m.both, true, true)
		add(m.gained, true, false)
		add(m.lost, false, true)
		add(m.neither, false, false)
	}
	a, b := evaluate.Classification(truth, pc, classes), evaluate.Classification(truth, pr, classes)
	return train.Evaluation{Classification: &a}, train.Evaluation{Classification: &b}
}

func policy(set func(r *project.RetrainPolicy)) project.RetrainPolicy {
	p := project.Project{}
	p.Defaults()
	if set != nil {
		set(&p.Retrain)
	}
	return p.Retrain
}

func decide(t *testing.T, cand, cur train.Evaluation, pol project.RetrainPolicy) registry.Decision {
	t.Helper()
	d := Gate("accuracy", cand, &cur, pol)
	t.Logf("%s: %s", d.Verdict, strings.Join(d.Reasons, " | "))
	return d
}

func expect(t *testing.T, d registry.Decision, verdict string, reasons ...string) {
	t.Helper()
	if d.Verdict != verdict || d.Published != (verdict == "published" || verdict == "first") {
		t.Fatalf("verdict %q (published %v), want %q: %v", d.Verdict, d.Published, verdict, d.Reasons)
	}
	all := strings.Join(d.Reasons, "; ")
	for _, r := range reasons {
		if !strings.Contains(all, r) {
			t.Fatalf("reasons %q do not say %q", all, r)
		}
	}
}

// TestGateProductPhotos is the first story: 0.870 against 0.847 on 300 test
// examples, 10 gained and 3 lost; three classes of 30 lose one example each. The exact
// one-sided p is P(X ≥ 10 | 13, ½) = (C(13,10)+C(13,11)+C(13,12)+C(13,13))/2^13 =
// (286+78+13+1)/8192 = 0.0461 < 0.05: released; losing 1 of 1 discordant pair is
// p = ½ for a class, noise.
func TestGateProductPhotos(t *testing.T) {
	cls := make([]moves, 10)
	for k := range cls {
		cls[k] = moves{both: 25}
	}
	cls[9].both = 26
	for _, k := range []int{0, 1, 2, 4, 5} {
		cls[k].gained = 2
	}
	for _, k := range []int{3, 7, 8} {
		cls[k].lost = 1
	}
	for k := range cls {
		cls[k].neither = 30 - cls[k].both - cls[k].gained - cls[k].lost
	}
	cand, cur := paired(cls...)
	if cand.Headline() != 261.0/300 || cur.Headline() != 254.0/300 {
		t.Fatalf("constructed %.4f against %.4f, want 0.870 against 0.847", cand.Headline(), cur.Headline())
	}
	d := decide(t, cand, cur, policy(nil))
	expect(t, d, "published", "0.870 against 0.847 on the same 300 test examples", "right on 10", "wrong on 3", "p = 0.046",
		"better with 95 % confidence", "no class regresses significantly", "largest move: class c3")
	ev := d.Evidence
	if ev.Gained != 10 || ev.Lost != 3 || math.Abs(ev.P-378.0/8192) > 1e-12 || ev.Lower <= 0 || len(ev.Classes) != 10 {
		t.Fatalf("evidence %+v", ev)
	}
	if c := ev.Classes[3]; c.Lost != 1 || c.Gained != 0 || c.P != 0.5 || c.Regressed {
		t.Fatalf("class c3: %+v", c)
	}
	// With min_test above the split's size it is held instead.
	expect(t, decide(t, cand, cur, policy(func(r *project.RetrainPolicy) { r.MinTest = 301 })), "held", "not enough evidence", "300 test examples")
}

// TestGateNewCamera is the second story: 0.75 against 0.40 on 60 digits, 23 gained and
// 2 lost (p = (C(25,23)+C(25,24)+1)/2^25 = 326/33554432); class 4 goes from 3 of 6 to 2
// of 6 — one example, p = 1: released.
func TestGateNewCamera(t *testing.T) {
	cand, cur := paired(
		moves{2, 3, 0, 1}, moves{2, 3, 0, 1}, moves{2, 3, 0, 1}, moves{2, 3, 0, 1},
		moves{2, 0, 1, 3}, // class 4: 3 of 6 → 2 of 6
		moves{2, 3, 0, 1}, moves{2, 2, 1, 1}, moves{2, 2, 0, 2}, moves{3, 2, 0, 1}, moves{3, 2, 0, 1})
	if cand.Headline() != 0.75 || cur.Headline() != 0.4 {
		t.Fatalf("constructed %.4f against %.4f", cand.Headline(), cur.Headline())
	}
	d := decide(t, cand, cur, policy(nil))
	expect(t, d, "published", "right on 23", "wrong on 2", "no class regresses")
	if math.Abs(d.Evidence.P-326.0/33554432) > 1e-15 {
		t.Fatalf("p %.3g, want %.3g", d.Evidence.P, 326.0/33554432)
	}
	if c := d.Evidence.Classes[4]; c.Current != 0.5 || math.Abs(c.Candidate-1.0/3) > 1e-12 || c.Regressed {
		t.Fatalf("class 4: %+v", c)
	}
}

// TestGateOneTestExample is the third story: 1.0 against 0.0 on one test example is not
// evidence; the candidate is held (min_test 30), and the first model is still released.
func TestGateOneTestExample(t *testing.T) {
	cand, cur := paired(moves{gained: 1})
	expect(t, decide(t, cand, cur, policy(nil)), "held", "not enough evidence", "1 test examples", "30 or more", "promote")
	expect(t, Gate("accuracy", cand, nil, policy(nil)), "first", "first model")
}

// TestGateSignificantlyWorse: 3 gained, 12 lost of 100; the chance of 12 or more of 15
// going against an equally good candidate is 576/32768 = 0.0176 < 0.05: refused.
func TestGateSignificantlyWorse(t *testing.T) {
	cand, cur := paired(moves{both: 40, gained: 3, lost: 12, neither: 45})
	d := decide(t, cand, cur, policy(nil))
	expect(t, d, "refused", "right on 3", "wrong on 12", "worse with 95 % confidence")
	if d.Evidence.Upper >= 0 {
		t.Fatalf("upper bound %.4f", d.Evidence.Upper)
	}
}

// TestGateClassRegression: ten classes of 40; every class but c0 gains 4 (36 in all),
// c0 loses 8 and gains none. Overall significantly better, but c0's p is 1/2^8 =
// 0.0039, below Holm's first threshold 0.05/10 = 0.005: refused. Losing 7 instead
// (p = 1/128 = 0.0078 > 0.005) is not a significant regression: released.
func TestGateClassRegression(t *testing.T) {
	build := func(lost int) (train.Evaluation, train.Evaluation) {
		cls := []moves{{both: 30, lost: lost, neither: 10 - lost}}
		for range 9 {
			cls = append(cls, moves{both: 30, gained: 4, neither: 6})
		}
		return paired(cls...)
	}
	cand, cur := build(8)
	d := decide(t, cand, cur, policy(nil))
	expect(t, d, "refused", "better with 95 % confidence", "refused: class c0 regresses from 0.950 to 0.750", "8 of its 40 test examples lost", "p = 0.0039 ≤ 0.0050")
	if c := d.Evidence.Classes[0]; !c.Regressed || math.Abs(c.P-1.0/256) > 1e-12 || math.Abs(c.Alpha-0.005) > 1e-12 {
		t.Fatalf("class c0: %+v", c)
	}
	cand, cur = build(7)
	expect(t, decide(t, cand, cur, policy(nil)), "published", "no class regresses", "largest move: class c0")
	// With per_class count and class_max_loss 6, losing 7 net refuses it.
	expect(t, decide(t, cand, cur, policy(func(r *project.RetrainPolicy) { r.PerClass, r.ClassMaxLoss = "count", 6 })),
		"refused", "class c0 lost 7 of its 40 test examples net", "class_max_loss of 6")
	expect(t, decide(t, cand, cur, policy(func(r *project.RetrainPolicy) { r.PerClass, r.ClassMaxLoss = "count", 7 })), "published")
	expect(t, decide(t, cand, cur, policy(func(r *project.RetrainPolicy) { r.PerClass = "off" })), "published")
}

// TestGateInconclusive: 4 gained, 2 lost of 100 — p = P(X ≥ 4 | 6, ½) = 22/64 = 0.34:
// held, neither better nor worse as far as this split can tell.
func TestGateInconclusive(t *testing.T) {
	cand, cur := paired(moves{both: 80, gained: 4, lost: 2, neither: 14})
	d := decide(t, cand, cur, policy(nil))
	expect(t, d, "held", "not shown better", "p = 0.344")
	if math.Abs(d.Evidence.P-22.0/64) > 1e-12 {
		t.Fatalf("p %.4f", d.Evidence.P)
	}
	// A min_gain the lower bound must clear: 10 gained, 3 lost is better (lower bound
	// +0.2 points) but not by 1 point.
	cand, cur = paired(moves{both: 250, gained: 10, lost: 3, neither: 37})
	expect(t, decide(t, cand, cur, policy(func(r *project.RetrainPolicy) { r.MinGain = 0.01 })), "held", "not shown better by more than +1.0 points")
}

// TestGateNotWorse: under require not_worse, a candidate that predicts exactly like the
// release (no discordant pair: the difference is 0 for sure) is released; under
// require better it is held.
func TestGateNotWorse(t *testing.T) {
	cand, cur := paired(moves{both: 90, neither: 10})
	notWorse := policy(func(r *project.RetrainPolicy) { r.Require, r.Margin = "not_worse", 0.01 })
	expect(t, decide(t, cand, cur, notWorse), "published", "not worse with 95 % confidence")
	expect(t, decide(t, cand, cur, policy(nil)), "held", "not shown better")
	// 0 gained, 12 lost of 100: the upper bound of the difference is 12 % ×
	// (2·(1 − 0.05^(1/12)) − 1) = −0.096 < −0.01 (Clopper–Pearson with no success
	// in 12: 1 − α^(1/12)): refused.
	cand, cur = paired(moves{both: 78, lost: 12, neither: 10})
	d := decide(t, cand, cur, notWorse)
	expect(t, d, "refused", "worse by more than the margin of 1.0 points")
	want := 0.12 * (2*(1-math.Pow(0.05, 1.0/12)) - 1)
	if math.Abs(d.Evidence.Upper-want) > 1e-6 {
		t.Fatalf("upper bound %.6f, want %.6f", d.Evidence.Upper, want)
	}
}

// detEval builds a detection evaluation of n images with one object each, found on the
// images hit says.
func detEval(n int, hit func(i int) bool) train.Evaluation {
	gt, pred := make([][]nn.Box, n), make([][]nn.Detection, n)
	for i := range n {
		gt[i] = []nn.Box{{X0: 0.1, Y0: 0.1, X1: 0.5, Y1: 0.5}}
		if hit(i) {
			pred[i] = []nn.Detection{{Box: nn.Box{X0: 0.1, Y0: 0.1, X1: 0.5, Y1: 0.5}, Score: 0.9}}
		} else {
			pred[i] = []nn.Detection{{Box: nn.Box{X0: 0.6, Y0: 0.6, X1: 0.9, Y1: 0.9}, Score: 0.8}}
		}
	}
	r := evaluate.Detection(gt, pred, []string{"box"})
	return train.Evaluation{Detection: &r}
}

// TestGateDetection: a detector that finds 54 of 60 objects against one that finds 30
// is released on a paired bootstrap; the other way round it is refused; on 10 images
// it is held.
func TestGateDetection(t *testing.T) {
	good, bad := detEval(60, func(i int) bool { return i%10 != 0 }), detEval(60, func(i int) bool { return i%2 == 0 })
	d := Gate("map50", good, &bad, policy(nil))
	expect(t, d, "published", "on the same 60 test images", "paired bootstrap (1000 resamples")
	if ev := d.Evidence; ev.Method != "paired bootstrap" || ev.Lower <= 0 || ev.Classes[0].Gained != 30 || ev.Classes[0].Lost != 6 {
		t.Fatalf("evidence %+v", ev)
	}
	expect(t, Gate("map50", bad, &good, policy(nil)), "refused", "worse with 95 % confidence")
	small, smallRef := detEval(10, func(int) bool { return true }), detEval(10, func(int) bool { return false })
	expect(t, Gate("map50", small, &smallRef, policy(nil)), "held", "10 test images")
}

// TestGateClassRefusesInconclusive: overall 9 gained and 8 lost (no evidence either way)
// while c0 loses 8 of 40 and gains none (p = 1/256 ≤ 0.005): refused for the class, not
// held for more evidence. A zero policy gets the project defaults.
func TestGateClassRefusesInconclusive(t *testing.T) {
	cls := []moves{{both: 30, lost: 8, neither: 2}}
	for range 9 {
		cls = append(cls, moves{both: 30, gained: 1, neither: 9})
	}
	cand, cur := paired(cls...)
	d := decide(t, cand, cur, project.RetrainPolicy{})
	expect(t, d, "refused", "not shown better with 95 % confidence", "refused: class c0 regresses")
	if strings.Contains(strings.Join(d.Reasons, "; "), "held") {
		t.Fatalf("a refused candidate's reasons say held: %v", d.Reasons)
	}
}
