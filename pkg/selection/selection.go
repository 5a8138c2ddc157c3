// Package selection chooses which of the candidate frames go to the annotators when
// there are more candidates than labels to spend: operator-flagged errors always, then
// the most informative and mutually different ones (BADGE, Ash et al. ICLR 2020:
// k-means++ seeding over gradient embeddings, which weighs uncertainty and diversity
// at once), balanced over the predicted classes; or, at cold start, the most typical
// ones of the densest regions of the embedding space (TypiClust, Hacohen et al. ICML
// 2022). The curator forms its batches with it and bench/loop measures it.
package selection

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// Methods of selection.
const (
	// Diverse is BADGE-like selection (uncertain and diverse, class-balanced).
	Diverse = "diverse"
	// Typical is TypiClust-like selection (typical-first, for a cold start).
	Typical = "typical"
	// Oldest takes candidates in arrival order (the selection before pools).
	Oldest = "oldest"
	// ClusterMargin is Cluster-Margin (Citovsky et al. NeurIPS 2021, for large
	// batches): the pool clustered once over the embeddings, the lowest-margin half
	// taken round-robin across their clusters, smallest cluster first.
	ClusterMargin = "cluster-margin"
)

// Candidate is one frame that could be labelled.
type Candidate struct {
	// Probs are the model's class probabilities (any fixed class order; nil when
	// unknown: then Confidence stands for the top class and the rest is spread evenly).
	Probs []float32
	// Confidence is the top class's probability, used when Probs is nil.
	Confidence float32
	// Embedding is the model's penultimate features of the frame (nil when unknown:
	// then only uncertainty counts).
	Embedding []float32
	// Class is the predicted class, the key of class balance.
	Class string
	// Must marks a candidate that goes in whatever the others are (an operator
	// flagged the prediction wrong).
	Must bool
}

// Pick returns the indices of the n candidates method selects, in the order picked
// (every Must candidate first). seed makes the random draws of Diverse reproducible.
// An unknown method is Oldest.
func Pick(method string, cs []Candidate, n int, seed uint64) []int {
	n = min(n, len(cs))
	if n <= 0 {
		return nil
	}
	var must, rest []int
	for i, c := range cs {
		if c.Must {
			must = append(must, i)
		} else {
			rest = append(rest, i)
		}
	}
	if len(must) >= n {
		return must[:n]
	}
	switch method {
	case Diverse:
		return badge(cs, must, rest, n, seed)
	case Typical:
		return typical(cs, must, rest, n, seed)
	case ClusterMargin:
		return clusterMargin(cs, must, rest, n, seed)
	default:
		return append(must, rest[:n-len(must)]...)
	}
}

// grad is a candidate's gradient embedding g = (p − e_ŷ) ⊗ h, kept factored: the
// gradient of the cross-entropy with the predicted class as label with respect to the
// last layer's weights. ⟨g_i, g_j⟩ = ⟨u_i, u_j⟩·⟨h_i, h_j⟩, so distances need no
// outer product.
type grad struct {
	u, h []float32
	sq   float64 // ‖g‖²
}

func gradOf(c Candidate) grad {
	var p []float32
	if c.Probs != nil {
		p = slices.Clone(c.Probs)
	} else {
		p = []float32{c.Confidence, 1 - c.Confidence} // the top class and the rest
	}
	top := 0
	for i, v := range p {
		if v > p[top] {
			top = i
		}
	}
	p[top]--
	h := c.Embedding
	if len(h) == 0 {
		h = []float32{1}
	}
	g := grad{u: p, h: h}
	g.sq = dot(p, p) * dot(h, h)
	return g
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range min(len(a), len(b)) {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func (g grad) dist2(o grad) float64 {
	d := g.sq + o.sq - 2*dot(g.u, o.u)*dot(g.h, o.h)
	return max(d, 0)
}

// badge picks by k-means++ seeding over gradient embeddings: the candidate with the
// largest gradient first (unless operator flags are there to start from), then each
// next one with a probability proportional to its squared distance to the nearest one
// picked, so that an uncertain frame unlike the ones picked is likeliest. No predicted
// class gets more than its share (n over the number of classes predicted among the
// candidates, rounded up) while another class has candidates left.
func badge(cs []Candidate, must, rest []int, n int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 0xbad6e))
	gs := make([]grad, len(cs))
	for i, c := range cs {
		gs[i] = gradOf(c)
	}
	classes := map[string]int{}
	for _, c := range cs {
		classes[c.Class] = 0
	}
	share := (n + len(classes) - 1) / len(classes)
	picked := slices.Clone(must)
	for _, i := range must {
		classes[cs[i].Class]++
	}
	near := make([]float64, len(cs)) // squared distance to the nearest pick
	for _, i := range rest {
		near[i] = math.Inf(1)
		for _, j := range picked {
			near[i] = min(near[i], gs[i].dist2(gs[j]))
		}
	}
	left := slices.Clone(rest)
	for len(picked) < n && len(left) > 0 {
		open := func(i int) bool { return classes[cs[i].Class] < share }
		if !slices.ContainsFunc(left, open) {
			open = func(int) bool { return true }
		}
		k := -1
		if len(picked) == 0 {
			for _, i := range left {
				if open(i) && (k < 0 || gs[i].sq > gs[k].sq) {
					k = i
				}
			}
		} else {
			var total float64
			for _, i := range left {
				if open(i) {
					total += near[i]
				}
			}
			if total > 0 {
				x := r.Float64() * total
				for _, i := range left {
					if !open(i) {
						continue
					}
					k = i
					if x -= near[i]; x < 0 {
						break
					}
				}
			} else { // all left are picked ones' twins: take in order
				k = left[slices.IndexFunc(left, open)]
			}
		}
		picked = append(picked, k)
		classes[cs[k].Class]++
		left = slices.DeleteFunc(left, func(i int) bool { return i == k })
		for _, i := range left {
			near[i] = min(near[i], gs[i].dist2(gs[k]))
		}
	}
	return picked
}

// typical picks the most typical candidate of each of the largest clusters: k-means
// over the normalised embeddings with as many clusters as picks, typicality the inverse
// of the mean distance to the nearest neighbours. Candidates without an embedding are
// taken last, in order.
func typical(cs []Candidate, must, rest []int, n int, seed uint64) []int {
	var with, without []int
	for _, i := range rest {
		if len(cs[i].Embedding) > 0 {
			with = append(with, i)
		} else {
			without = append(without, i)
		}
	}
	k := n - len(must)
	picked := slices.Clone(must)
	if len(with) <= k {
		picked = append(picked, with...)
		return append(picked, without[:min(len(without), n-len(picked))]...)
	}
	xs := make([][]float32, len(with))
	for j, i := range with {
		xs[j] = Normalise(cs[i].Embedding)
	}
	typ := Typicality(xs, 20)
	assign := KMeans(xs, k, 10, seed)
	clusters := make([][]int, k)
	for j, c := range assign {
		clusters[c] = append(clusters[c], j)
	}
	sort.SliceStable(clusters, func(a, b int) bool { return len(clusters[a]) > len(clusters[b]) })
	taken := make([]bool, len(with))
	for _, cl := range clusters {
		// A cluster of one is an outlier, not a region: the fill below decides on it.
		if len(cl) < 2 || len(picked) == n {
			continue
		}
		best := cl[0]
		for _, j := range cl {
			if typ[j] > typ[best] {
				best = j
			}
		}
		taken[best] = true
		picked = append(picked, with[best])
	}
	// Clusters too small leave picks over: the most typical of the rest.
	order := make([]int, len(with))
	for j := range order {
		order[j] = j
	}
	sort.SliceStable(order, func(a, b int) bool { return typ[order[a]] > typ[order[b]] })
	for _, j := range order {
		if len(picked) == n {
			break
		}
		if !taken[j] {
			picked = append(picked, with[j])
		}
	}
	return picked
}

// Normalise returns x scaled to unit length (x itself when it is zero).
func Normalise(x []float32) []float32 {
	s := math.Sqrt(dot(x, x))
	if s == 0 {
		return x
	}
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(float64(v) / s)
	}
	return out
}

// CosineDistance is 1 − cos(a, b), in [0, 2]; 1 when either is zero.
func CosineDistance(a, b []float32) float64 {
	na, nb := dot(a, a), dot(b, b)
	if na == 0 || nb == 0 {
		return 1
	}
	return 1 - dot(a, b)/math.Sqrt(na*nb)
}

func dist2(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return s
}

// Margin is a candidate's top-1 − top-2 probability (Confidence − the rest spread over
// one other class when Probs is nil): low is uncertain.
func Margin(c Candidate) float64 {
	if c.Probs == nil {
		return float64(c.Confidence) - float64(1-c.Confidence)
	}
	var a, b float32 // the largest and second largest
	for _, v := range c.Probs {
		switch {
		case v > a:
			a, b = v, a
		case v > b:
			b = v
		}
	}
	return float64(a - b)
}

// clusterMargin is Cluster-Margin: every candidate is clustered once (k-means over the
// normalised embeddings, n clusters), the lowest-margin half of them (at least n) are
// grouped by cluster, and the clusters are visited round-robin from the smallest, each
// giving its lowest-margin candidate left, until n are picked. Without embeddings it is
// the n lowest margins.
func clusterMargin(cs []Candidate, must, rest []int, n int, seed uint64) []int {
	out := slices.Clone(must)
	want := n - len(must)
	xs := make([][]float32, len(rest))
	for k, i := range rest {
		xs[k] = Normalise(cs[i].Embedding)
	}
	assign := KMeans(xs, n, 10, seed)
	order := make([]int, len(rest)) // positions in rest, lowest margin first
	for k := range order {
		order[k] = k
	}
	sort.SliceStable(order, func(a, b int) bool { return Margin(cs[rest[order[a]]]) < Margin(cs[rest[order[b]]]) })
	order = order[:min(len(order), max(want, len(order)/2))]
	var clusters [][]int // positions in rest per cluster, lowest margin first
	at := map[int]int{}
	for _, k := range order {
		c, ok := at[assign[k]]
		if !ok {
			c = len(clusters)
			at[assign[k]] = c
			clusters = append(clusters, nil)
		}
		clusters[c] = append(clusters[c], k)
	}
	sort.SliceStable(clusters, func(a, b int) bool { return len(clusters[a]) < len(clusters[b]) })
	for round := 0; want > 0; round++ {
		took := false
		for _, c := range clusters {
			if round < len(c) && want > 0 {
				out, want, took = append(out, rest[c[round]]), want-1, true
			}
		}
		if !took {
			break
		}
	}
	return out
}

// Typicality of each point: the inverse of its mean Euclidean distance to its k
// nearest other points (TypiClust's density).
func Typicality(xs [][]float32, k int) []float64 {
	k = min(k, len(xs)-1)
	out := make([]float64, len(xs))
	if k < 1 {
		for i := range out {
			out[i] = 1
		}
		return out
	}
	d := make([]float64, 0, len(xs))
	for i, x := range xs {
		d = d[:0]
		for j, y := range xs {
			if i != j {
				d = append(d, math.Sqrt(dist2(x, y)))
			}
		}
		sort.Float64s(d)
		var m float64
		for _, v := range d[:k] {
			m += v
		}
		out[i] = 1 / (m/float64(k) + 1e-9)
	}
	return out
}

// KMeans clusters xs into k clusters (k-means++ start, then iters Lloyd steps) and
// returns each point's cluster.
func KMeans(xs [][]float32, k, iters int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 0x7c1))
	k = min(k, len(xs))
	assign := make([]int, len(xs))
	if k <= 1 {
		return assign
	}
	centres := [][]float32{slices.Clone(xs[r.IntN(len(xs))])}
	near := make([]float64, len(xs))
	for i, x := range xs {
		near[i] = dist2(x, centres[0])
	}
	for len(centres) < k {
		var total float64
		for _, v := range near {
			total += v
		}
		c := r.IntN(len(xs))
		if total > 0 {
			x := r.Float64() * total
			for i, v := range near {
				c = i
				if x -= v; x < 0 {
					break
				}
			}
		}
		centres = append(centres, slices.Clone(xs[c]))
		for i, x := range xs {
			near[i] = min(near[i], dist2(x, xs[c]))
		}
	}
	for it := 0; it <= iters; it++ {
		for i, x := range xs {
			best, bd := 0, math.Inf(1)
			for c, ce := range centres {
				if d := dist2(x, ce); d < bd {
					best, bd = c, d
				}
			}
			assign[i] = best
		}
		if it == iters {
			break
		}
		counts := make([]int, k)
		for c := range centres {
			clear(centres[c])
		}
		for i, x := range xs {
			c := assign[i]
			counts[c]++
			for j, v := range x {
				centres[c][j] += v
			}
		}
		for c := range centres {
			if counts[c] == 0 {
				copy(centres[c], xs[r.IntN(len(xs))]) // an empty cluster restarts on a point
				continue
			}
			for j := range centres[c] {
				centres[c][j] /= float32(counts[c])
			}
		}
	}
	return assign
}

// Reduce is what a candidate keeps of an embedding: projected to at most dims floats
// when longer (a fixed random ±1 projection scaled by 1/√dims, which keeps lengths and
// distances within a few per cent: Johnson–Lindenstrauss), each rounded to three
// significant digits of the largest, so that hundreds of waiting candidates fit in a
// small ledger. Lengths are kept: Diverse weighs them.
func Reduce(x []float32, dims int) []float32 {
	if len(x) == 0 {
		return nil
	}
	if len(x) > dims {
		out := make([]float32, dims)
		for i, v := range x {
			if v == 0 {
				continue
			}
			for j := range out {
				if projSign(i, j) {
					out[j] += v
				} else {
					out[j] -= v
				}
			}
		}
		for j := range out {
			out[j] /= float32(math.Sqrt(float64(dims)))
		}
		x = out
	}
	var top float64
	for _, v := range x {
		top = max(top, math.Abs(float64(v)))
	}
	out := make([]float32, len(x))
	if top == 0 {
		return out
	}
	unit := math.Pow(10, math.Floor(math.Log10(top))-2)
	for i, v := range x {
		out[i] = float32(math.Round(float64(v)/unit) * unit)
	}
	return out
}

// projSign is the sign of the projection's entry (i, j): a hash, the same everywhere.
func projSign(i, j int) bool {
	h := uint64(i)*0x9e3779b97f4a7c15 ^ uint64(j)*0xc2b2ae3d27d4eb4f
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return h&1 == 0
}
