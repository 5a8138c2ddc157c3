package selection

import (
	"math"
	"math/rand/v2"
	"testing"
)

func vec(r *rand.Rand, centre []float32, spread float64) []float32 {
	out := make([]float32, len(centre))
	for i, c := range centre {
		out[i] = c + float32(r.NormFloat64()*spread)
	}
	return out
}

func basis(d, i int) []float32 {
	v := make([]float32, d)
	v[i] = 1
	return v
}

func count(cs []Candidate, picks []int, f func(Candidate) bool) int {
	n := 0
	for _, i := range picks {
		if f(cs[i]) {
			n++
		}
	}
	return n
}

func unique(t *testing.T, picks []int, n int) {
	t.Helper()
	if len(picks) != n {
		t.Fatalf("%d picks, want %d", len(picks), n)
	}
	seen := map[int]bool{}
	for _, i := range picks {
		if seen[i] {
			t.Fatalf("candidate %d picked twice: %v", i, picks)
		}
		seen[i] = true
	}
}

func TestFlaggedAlwaysGoIn(t *testing.T) {
	cs := make([]Candidate, 20)
	for i := range cs {
		cs[i] = Candidate{Probs: []float32{0.5, 0.5}, Embedding: basis(20, i), Class: "a"}
	}
	cs[17].Must, cs[3].Must = true, true
	for _, m := range []string{Diverse, Typical, ClusterMargin, Oldest} {
		p := Pick(m, cs, 5, 1)
		unique(t, p, 5)
		if p[0] != 3 || p[1] != 17 {
			t.Fatalf("%s: picks %v do not start with the flagged 3 and 17", m, p)
		}
	}
}

// Forty copies of one uncertain frame and ten different ones: diverse selection takes
// the frame once; oldest-first takes ten copies.
func TestDiverseSkipsLookalikes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var cs []Candidate
	for range 40 {
		cs = append(cs, Candidate{Probs: []float32{0.5, 0.5}, Embedding: vec(r, basis(16, 0), 0.001), Class: "a"})
	}
	for i := range 10 {
		cs = append(cs, Candidate{Probs: []float32{0.6, 0.4}, Embedding: basis(16, i+1), Class: "a"})
	}
	p := Pick(Diverse, cs, 10, 7)
	unique(t, p, 10)
	if n := count(cs, p, func(c Candidate) bool { return c.Probs[0] == 0.5 }); n > 1 {
		t.Fatalf("diverse picked %d copies of one frame: %v", n, p)
	}
	if n := count(cs, Pick(Oldest, cs, 10, 7), func(c Candidate) bool { return c.Probs[0] == 0.5 }); n != 10 {
		t.Fatalf("oldest picked %d copies, want 10", n)
	}
}

// Uncertain frames have the larger gradients: with as many confident as uncertain
// candidates, all different, most picks are uncertain.
func TestDiversePrefersUncertain(t *testing.T) {
	var cs []Candidate
	for i := range 60 {
		p := []float32{0.99, 0.005, 0.005}
		if i%2 == 1 {
			p = []float32{0.4, 0.35, 0.25}
		}
		cs = append(cs, Candidate{Probs: p, Embedding: basis(60, i), Class: "a"})
	}
	for seed := uint64(1); seed <= 5; seed++ {
		p := Pick(Diverse, cs, 10, seed)
		if n := count(cs, p, func(c Candidate) bool { return c.Probs[0] < 0.5 }); n < 9 {
			t.Fatalf("seed %d: %d of 10 picks uncertain", seed, n)
		}
	}
}

func TestDiverseBalancesClasses(t *testing.T) {
	var cs []Candidate
	for i := range 40 {
		c := "a"
		if i >= 30 {
			c = "b"
		}
		cs = append(cs, Candidate{Probs: []float32{0.5, 0.5}, Embedding: basis(40, i), Class: c})
	}
	p := Pick(Diverse, cs, 10, 3)
	unique(t, p, 10)
	if n := count(cs, p, func(c Candidate) bool { return c.Class == "b" }); n != 5 {
		t.Fatalf("%d of 10 picks of class b (10 of 40 candidates), want its share 5", n)
	}
	// When a class runs out, the others fill the batch.
	p = Pick(Diverse, cs, 30, 3)
	unique(t, p, 30)
}

// Two dense clusters and scattered outliers: typical-first takes one frame from the
// middle of each cluster, no outlier.
func TestTypicalTakesDenseRegions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var cs []Candidate
	for i := range 60 {
		centre := basis(8, i%2)
		cs = append(cs, Candidate{Embedding: vec(r, centre, 0.05), Class: "x"})
	}
	for i := range 6 {
		cs = append(cs, Candidate{Embedding: vec(r, basis(8, 2+i), 0.3), Class: "y"})
	}
	p := Pick(Typical, cs, 2, 5)
	unique(t, p, 2)
	if p[0] >= 60 || p[1] >= 60 || p[0]%2 == p[1]%2 {
		t.Fatalf("typical picks %v: want one of each dense cluster (even and odd indices below 60)", p)
	}
}

// Reduce keeps the geometry: cosine distances of 1280-float embeddings move by little.
func TestReduceKeepsDistances(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var xs, ys [][]float32
	for range 20 {
		x := make([]float32, 1280)
		for i := range x {
			if r.Float64() < 0.3 { // sparse and non-negative, as ReLU features
				x[i] = float32(r.ExpFloat64())
			}
		}
		xs = append(xs, x)
		ys = append(ys, Reduce(x, 128))
	}
	if len(ys[0]) != 128 {
		t.Fatalf("reduced to %d floats, want 128", len(ys[0]))
	}
	var sum float64
	n := 0
	for i := range xs {
		for j := range i {
			a, b := CosineDistance(xs[i], xs[j]), CosineDistance(ys[i], ys[j])
			sum += math.Abs(a - b)
			n++
		}
	}
	if m := sum / float64(n); m > 0.08 {
		t.Fatalf("cosine distances move by %.3f on average", m)
	}
	if got := Reduce([]float32{3.14159, 0.004, 12.3456}, 64); got[0] != 3.1 || got[1] != 0 || got[2] != 12.3 {
		t.Fatalf("short embedding reduced to %v, want it rounded to three digits of the largest", got)
	}
	a, b := Reduce(xs[0], 128), xs[0]
	if r := math.Sqrt(dot(a, a) / dot(b, b)); r < 0.8 || r > 1.2 {
		t.Fatalf("projection changed the length by a factor %.2f", r)
	}
}

// Forty near-copies of the most uncertain frame, ten different, slightly less
// uncertain ones and forty sure ones: the ten lowest margins are all copies, where
// Cluster-Margin's round-robin over the clusters of the lowest-margin half takes the
// different ones (each a small cluster) first and never a sure frame.
func TestClusterMarginSpreadsOverClusters(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var cs []Candidate
	for range 40 {
		cs = append(cs, Candidate{Probs: []float32{0.5, 0.49, 0.01}, Embedding: vec(r, basis(16, 0), 0.001), Class: "a"})
	}
	for i := range 10 {
		cs = append(cs, Candidate{Probs: []float32{0.6, 0.35, 0.05}, Embedding: basis(16, i+2), Class: "a"})
	}
	for i := range 40 {
		cs = append(cs, Candidate{Probs: []float32{0.98, 0.01, 0.01}, Embedding: vec(r, basis(16, i%4+12), 0.3), Class: "b"})
	}
	first := func(c Candidate) bool { return c.Probs[0] == 0.5 }
	for seed := uint64(1); seed <= 3; seed++ {
		p := Pick(ClusterMargin, cs, 10, seed)
		unique(t, p, 10)
		if n := count(cs, p, first); n > 5 {
			t.Fatalf("seed %d: %d picks are copies of one frame: %v", seed, n, p)
		}
		if n := count(cs, p, func(c Candidate) bool { return c.Probs[0] == 0.6 }); n < 5 {
			t.Fatalf("seed %d: %d of the different uncertain frames picked: %v", seed, n, p)
		}
		if n := count(cs, p, func(c Candidate) bool { return c.Probs[0] > 0.9 }); n > 0 {
			t.Fatalf("seed %d: %d sure frames picked: %v", seed, n, p)
		}
	}
	// Without embeddings it is the lowest margins.
	for i := range cs {
		cs[i].Embedding = nil
	}
	if n := count(cs, Pick(ClusterMargin, cs, 10, 1), first); n != 10 {
		t.Fatalf("without embeddings %d of 10 picks have the lowest margin", n)
	}
}

func TestMargin(t *testing.T) {
	for _, c := range []struct {
		c    Candidate
		want float64
	}{
		{Candidate{Probs: []float32{0.1, 0.6, 0.3}}, 0.3},
		{Candidate{Probs: []float32{0.5, 0.5}}, 0},
		{Candidate{Confidence: 0.8}, 0.6},
	} {
		if got := Margin(c.c); math.Abs(got-c.want) > 1e-6 {
			t.Fatalf("Margin(%v) = %v, want %v", c.c.Probs, got, c.want)
		}
	}
}
