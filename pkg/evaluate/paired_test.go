package evaluate

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// TestMcNemarByHand checks the exact one-sided p-values against sums done by hand.
func TestMcNemarByHand(t *testing.T) {
	cases := []struct {
		b, c int
		want float64
	}{
		// C(15,12)+C(15,13)+C(15,14)+C(15,15) = 455+105+15+1 = 576 of 2^15.
		{12, 3, 576.0 / 32768},
		// all 5 discordant pairs won: 1/32.
		{5, 0, 1.0 / 32},
		// one of one: 1/2; none of one: 1.
		{1, 0, 0.5},
		{0, 1, 1},
		// 10 of 13: (286+78+13+1)/8192.
		{10, 3, 378.0 / 8192},
		{0, 0, 1},
	}
	for _, c := range cases {
		if got := McNemar(c.b, c.c); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("McNemar(%d, %d) = %.6f, want %.6f", c.b, c.c, got, c.want)
		}
	}
	if got := BinomialTail(4, 2, 0.25); math.Abs(got-(6*0.0625*0.5625+4*0.015625*0.75+0.00390625)) > 1e-12 {
		t.Errorf("BinomialTail(4, 2, .25) = %v", got)
	}
}

// TestBoundsAgreeWithTheTest: the lower bound is above 0 exactly when the exact p-value
// is below 1 − confidence, and the bounds hold the observed difference.
func TestBoundsAgreeWithTheTest(t *testing.T) {
	for b := 0; b <= 20; b++ {
		for c := 0; c <= 20; c++ {
			p := PairCounts{N: 100, Gained: b, Lost: c}
			lo, hi := p.Bounds(0.95)
			if (lo > 0) != (p.PBetter() < 0.05) {
				t.Errorf("b=%d c=%d: lower %.4f but p %.4f", b, c, lo, p.PBetter())
			}
			if (hi < 0) != (p.PWorse() < 0.05) {
				t.Errorf("b=%d c=%d: upper %.4f but p(worse) %.4f", b, c, hi, p.PWorse())
			}
			if d := p.Difference(); b+c > 0 && (d < lo-1e-9 || d > hi+1e-9) {
				t.Errorf("b=%d c=%d: difference %.4f outside [%.4f, %.4f]", b, c, d, lo, hi)
			}
		}
	}
}

func TestPairClassification(t *testing.T) {
	classes := []string{"a", "b"}
	truth := []int{0, 0, 0, 1, 1, 1}
	cand := Classification(truth, []int{0, 0, 1, 1, 1, 0}, classes)
	ref := Classification(truth, []int{0, 1, 0, 0, 1, 0}, classes)
	all, per, err := PairClassification(&cand, &ref)
	if err != nil {
		t.Fatal(err)
	}
	// a: ex0 both right, ex1 gained, ex2 lost; b: ex3 gained, ex4 both, ex5 both wrong.
	want := PairCounts{N: 6, CandidateRight: 4, ReferenceRight: 3, Gained: 2, Lost: 1}
	if all != want || per[0] != (PairCounts{N: 3, CandidateRight: 2, ReferenceRight: 2, Gained: 1, Lost: 1}) ||
		per[1] != (PairCounts{N: 3, CandidateRight: 2, ReferenceRight: 1, Gained: 1}) {
		t.Fatalf("pairs %+v per class %+v", all, per)
	}
	other := Classification([]int{0, 0, 0, 1, 1, 0}, []int{0, 0, 0, 1, 1, 0}, classes)
	if _, _, err := PairClassification(&cand, &other); err == nil {
		t.Fatal("paired evaluations of different examples")
	}
}

func TestHolm(t *testing.T) {
	// alpha .05 over 4: .01 ≤ .0125 yes, .015 ≤ .0167 yes, .03 > .025 stop.
	got := Holm([]float64{0.03, 0.01, 0.9, 0.015}, 0.05)
	if fmt.Sprint(got) != "[false true false true]" {
		t.Fatalf("Holm: %v", got)
	}
}

// detections builds a test set of n images with one object of class 0 each; the model
// finds it on the images hit says.
func detections(n int, hit func(i int) bool) ([][]nn.Box, [][]nn.Detection) {
	gt, pred := make([][]nn.Box, n), make([][]nn.Detection, n)
	for i := range n {
		gt[i] = []nn.Box{box(0.1, 0.1, 0.5, 0.5, 0)}
		if hit(i) {
			pred[i] = []nn.Detection{{Box: box(0.1, 0.1, 0.5, 0.5, 0), Score: 0.9}}
		} else {
			pred[i] = []nn.Detection{{Box: box(0.6, 0.6, 0.9, 0.9, 0), Score: 0.8}}
		}
	}
	return gt, pred
}

func TestPairedBootstrap(t *testing.T) {
	classes := []string{"a"}
	gt, good := detections(60, func(i int) bool { return i%10 != 0 })
	_, bad := detections(60, func(i int) bool { return i%2 == 0 })
	cand, ref := Detection(gt, good, classes), Detection(gt, bad, classes)
	// Every resample's point estimate is computed like Detection's: with each image once
	// the weighted mAP is the report's.
	w := make([]int, 60)
	for i := range w {
		w[i] = 1
	}
	aps := make([]float64, 1)
	if got := weightedMAP(rankings(&cand, 1), []int{60}, w, aps, &curve{}); !near(got, cand.MAP50) {
		t.Fatalf("weighted mAP %.6f, Detection %.6f", got, cand.MAP50)
	}
	cmp, err := PairedBootstrap(&cand, &ref, 0.95, 500, 1)
	if err != nil {
		t.Fatal(err)
	}
	if cmp.Lower <= 0 || cmp.PBetter > 0.05 || !near(cmp.Difference, cand.MAP50-ref.MAP50) {
		t.Fatalf("a clearly better detector: %+v", cmp)
	}
	// good misses images 0, 10, …, 50 (6); bad finds the even ones (30). Gained: odd
	// images not a multiple of 10 (30 − 0 = 30, all odd ones are found by good: 30);
	// lost: multiples of 10, all even, found by bad (6).
	if c := cmp.PerClass[0]; c.FoundCandidate != 54 || c.FoundReference != 30 || c.Gained != 30 || c.Lost != 6 {
		t.Fatalf("found %d and %d objects, gained %d, lost %d: want 54, 30, 30, 6", c.FoundCandidate, c.FoundReference, c.Gained, c.Lost)
	}
	again, _ := PairedBootstrap(&cand, &ref, 0.95, 500, 1)
	if again.Lower != cmp.Lower || again.Upper != cmp.Upper {
		t.Fatal("the same seed gave another interval")
	}
	same, err := PairedBootstrap(&cand, &cand, 0.95, 200, 1)
	if err != nil || same.Lower != 0 || same.Upper != 0 || same.PBetter != 1 {
		t.Fatalf("a model against itself: %+v, %v", same, err)
	}
	other := Detection(gt[:59], good[:59], classes)
	if _, err := PairedBootstrap(&cand, &other, 0.95, 10, 1); err == nil {
		t.Fatal("paired evaluations of different images")
	}
}

// TestDetectableDifference prints the docs' table (go test -run TestDetectableDifference
// -v ./pkg/evaluate) and checks that more test examples tell apart smaller differences.
func TestDetectableDifference(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("| test examples | models disagree on 10 %: gain found 1 time in 2 | 4 times in 5 | disagree on 20 %: 1 time in 2 | 4 times in 5 |\n|---|---|---|---|---|\n")
	cell := func(v float64) string {
		if math.IsNaN(v) {
			return "—"
		}
		return fmt.Sprintf("%.1f points", 100*v)
	}
	prev := math.Inf(1)
	for _, n := range []int{30, 50, 100, 200, 300, 500, 1000, 2000, 5000} {
		row := []float64{DetectableDifference(n, 0.1, 0.95, 0.5), DetectableDifference(n, 0.1, 0.95, 0.8),
			DetectableDifference(n, 0.2, 0.95, 0.5), DetectableDifference(n, 0.2, 0.95, 0.8)}
		fmt.Fprintf(&sb, "| %d | %s | %s | %s | %s |\n", n, cell(row[0]), cell(row[1]), cell(row[2]), cell(row[3]))
		if !math.IsNaN(row[1]) {
			if row[1] >= prev {
				t.Errorf("n=%d: %.4f, not below %.4f", n, row[1], prev)
			}
			prev = row[1]
		}
		if !math.IsNaN(row[0]) && !math.IsNaN(row[1]) && row[0] > row[1] {
			t.Errorf("n=%d: 50 %% power needs %.4f, more than 80 %% (%.4f)", n, row[0], row[1])
		}
	}
	if v := DetectableDifference(1000, 0.1, 0.95, 0.8); v < 0.02 || v > 0.035 {
		// Normal approximation: (1.645+0.842)·√0.1/√1000 ≈ 0.0249.
		t.Errorf("1000 examples, 10 %% disagreement: %.4f, want about 0.025", v)
	}
	t.Log("\n" + sb.String())
}
