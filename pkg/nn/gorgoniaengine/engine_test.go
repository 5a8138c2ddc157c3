package gorgoniaengine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/enginetest"
)

func batchFor(_ testing.TB, a nn.Arch, n int, seed uint64) *nn.Batch {
	r := rand.New(rand.NewPCG(seed, 1))
	b := &nn.Batch{N: n, X: make([]float32, n*a.InputSize())}
	for i := range b.X {
		b.X[i] = r.Float32()
	}
	if a.Task == nn.Classify {
		for i := 0; i < n; i++ {
			b.Labels = append(b.Labels, r.IntN(a.Classes))
		}
		return b
	}
	boxes := make([][]nn.Box, n)
	for i := range boxes {
		boxes[i] = []nn.Box{{X0: 0.1, Y0: 0.2, X1: 0.45, Y1: 0.6, Class: i % a.Classes}, {X0: 0.55, Y0: 0.5, X1: 0.9, Y1: 0.95, Class: 1}}
	}
	b.Det = nn.EncodeTargets(a, boxes)
	return b
}

// TestGradientsMatchFiniteDifferences checks every parameter tensor's analytic gradient
// against central differences of the loss, on both losses.
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	for _, a := range []nn.Arch{enginetest.TinyClassifier(), enginetest.TinyDetector()} {
		t.Run(a.Name, func(t *testing.T) {
			p, err := nn.InitParams(a, 7)
			if err != nil {
				t.Fatal(err)
			}
			e, err := New(nn.EngineConfig{Arch: a, Params: p, BatchSize: 4})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			b := batchFor(t, a, 3, 1) // a partial batch: padding must not count
			_, grads, err := e.Gradients(b)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(3, 3))
			const h = 1e-2
			for ti, spec := range p.Specs {
				for k := 0; k < 4; k++ {
					j := r.IntN(len(p.Values[ti]))
					q := p.Clone()
					q.Values[ti][j] += h
					lp := lossWith(t, e, q, b)
					q.Values[ti][j] -= 2 * h
					lm := lossWith(t, e, q, b)
					num := (lp - lm) / (2 * h)
					got := float64(grads[ti][j])
					if math.Abs(num-got) > 2e-2*math.Max(1, math.Abs(num)) {
						t.Errorf("%s[%d]: analytic %.5f, numeric %.5f", spec.Name, j, got, num)
					}
				}
			}
			if err := e.WriteParams(p); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func lossWith(t *testing.T, e *Engine, p *nn.Params, b *nn.Batch) float64 {
	t.Helper()
	if err := e.WriteParams(p); err != nil {
		t.Fatal(err)
	}
	l, err := e.Loss(b)
	if err != nil {
		t.Fatal(err)
	}
	return float64(l)
}

// TestStepUpdatesSharedWeights: an Adam step changes what every graph computes, and a
// few steps on one batch lower its loss.
func TestStepUpdatesSharedWeights(t *testing.T) {
	a := enginetest.TinyClassifier()
	p, _ := nn.InitParams(a, 1)
	e, err := New(nn.EngineConfig{Arch: a, Params: p, BatchSize: 4, Adam: nn.AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	b := batchFor(t, a, 4, 2)
	before, _ := e.Forward(b.X[:a.InputSize()], 1)
	first, err := e.Step(b)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := e.Forward(b.X[:a.InputSize()], 1)
	if before[0] == after[0] && before[1] == after[1] {
		t.Fatal("forward output unchanged after a step: weights not shared")
	}
	var last float32
	for i := 0; i < 30; i++ {
		if last, err = e.Step(b); err != nil {
			t.Fatal(err)
		}
	}
	if last >= first/2 {
		t.Fatalf("loss %v -> %v: not learning one batch", first, last)
	}
	var q nn.Params
	q = *p.Clone()
	if err := e.ReadParams(&q); err != nil {
		t.Fatal(err)
	}
	if q.Values[0][0] == p.Values[0][0] {
		t.Fatal("ReadParams returned the initial weights")
	}
}

// TestFrozenBackboneDoesNotMove: with the backbone frozen only the head changes.
func TestFrozenBackboneDoesNotMove(t *testing.T) {
	a := enginetest.TinyClassifier()
	p, _ := nn.InitParams(a, 1)
	e, _ := New(nn.EngineConfig{Arch: a, Params: p, BatchSize: 4, Trainable: nn.Trainable(a, p, true)})
	defer e.Close()
	if _, err := e.Step(batchFor(t, a, 4, 5)); err != nil {
		t.Fatal(err)
	}
	q := p.Clone()
	_ = e.ReadParams(q)
	for i, s := range p.Specs {
		changed := q.Values[i][0] != p.Values[i][0] || q.Values[i][len(q.Values[i])-1] != p.Values[i][len(p.Values[i])-1]
		if head := s.Layer >= a.HeadFrom; changed != head && !s.Bias {
			t.Errorf("%s (head=%v) changed=%v", s.Name, head, changed)
		}
	}
}

// TestGradientsDoNotAccumulate: two gradient computations on the same batch agree
// (Gorgonia adds into its gradient buffers unless they are zeroed).
func TestGradientsDoNotAccumulate(t *testing.T) {
	a := enginetest.TinyClassifier()
	p, _ := nn.InitParams(a, 1)
	e, _ := New(nn.EngineConfig{Arch: a, Params: p, BatchSize: 4})
	defer e.Close()
	b := batchFor(t, a, 4, 9)
	_, g1, _ := e.Gradients(b)
	_, g2, _ := e.Gradients(b)
	for i := range g1 {
		for j := range g1[i] {
			if g1[i][j] != g2[i][j] {
				t.Fatalf("%s[%d]: %v then %v", p.Specs[i].Name, j, g1[i][j], g2[i][j])
			}
		}
	}
}
