package gorgoniaengine

import (
	"fmt"
	"math"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/enginetest"
)

// pair is an engine and its reference (every graph on the tape machine with one buffer
// per op, as before passes and arenas), built from the same config.
func pair(t *testing.T, cfg nn.EngineConfig) (e, ref *Engine) {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ref, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ref.reference = true
	t.Cleanup(func() {
		_ = e.Close()
		_ = ref.Close()
	})
	return e, ref
}

// sameBits fails unless got and want are equal bit for bit.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, reference %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d]: %v, reference %v", what, i, got[i], want[i])
		}
	}
}

// TestInferenceHoldsFewActivations: a forward-only engine for the detector n at
// 160×128 RGB (the predictor's batch of 16, and single frames) keeps a fraction of the
// ~300 MB one buffer per op kept, because its pass shares buffers by liveness, and its
// outputs equal the tape machine's bit for bit; a training step's arena keeps about
// half of what one buffer per op kept, with the same loss and weights after it.
func TestInferenceHoldsFewActivations(t *testing.T) {
	a, err := nn.DetectorFamily(nn.MobileNetV2, "n", 160, 128, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	p, err := nn.InitParams(a, 1)
	if err != nil {
		t.Fatal(err)
	}
	e, ref := pair(t, nn.EngineConfig{Arch: a, Params: p, BatchSize: 16})
	b := batchFor(t, a, 16, 1)
	for _, n := range []int{16, 1} {
		got, err := e.Forward(b.X[:n*a.InputSize()], n)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.Forward(b.X[:n*a.InputSize()], n)
		if err != nil {
			t.Fatal(err)
		}
		sameBits(t, "forward", got, want)
	}
	held, refHeld := e.HeldBytes(), ref.HeldBytes()
	t.Logf("inference (batches of 16 and 1): %.1f MB held, %.1f MB with one buffer per op", float64(held)/1e6, float64(refHeld)/1e6)
	if held > 64<<20 || held*4 > refHeld {
		t.Errorf("inference holds %d bytes (one buffer per op: %d); want at most 64 MiB and a quarter", held, refHeld)
	}

	fwd := held
	l, err := e.Step(b)
	if err != nil {
		t.Fatal(err)
	}
	refFwd := ref.HeldBytes()
	rl, err := ref.Step(b)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "step loss", []float32{l}, []float32{rl})
	step, refStep := e.HeldBytes()-fwd, ref.HeldBytes()-refFwd
	t.Logf("a training step: %.1f MB held, %.1f MB with one buffer per op", float64(step)/1e6, float64(refStep)/1e6)
	if step*10 > refStep*6 {
		t.Errorf("a step holds %d bytes (one buffer per op: %d); want at most 60%%", step, refStep)
	}
	q, rq := p.Clone(), p.Clone()
	if err := e.ReadParams(q); err != nil {
		t.Fatal(err)
	}
	if err := ref.ReadParams(rq); err != nil {
		t.Fatal(err)
	}
	for i := range q.Values {
		sameBits(t, q.Specs[i].Name, q.Values[i], rq.Values[i])
	}
}

// TestPassAndArenaMatchTheTape: on every kind of layer, in both batch norm modes, the
// forward pass, the validation loss, the gradients and Adam steps of an engine equal
// its reference's bit for bit, on a partial batch.
func TestPassAndArenaMatchTheTape(t *testing.T) {
	det, err := nn.DetectorFamily(nn.MobileNetV2, "n", 64, 64, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	cls, err := nn.Family(nn.MobileNetV2, "n", 64, 64, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []nn.Arch{enginetest.AllLayers(), enginetest.TinyClassifier(), enginetest.TinyDetector(), enginetest.TinyMultiScale(), det, cls} {
		for _, frozen := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/frozen=%v", a.Name, frozen), func(t *testing.T) {
				p, err := nn.InitParams(a, 3)
				if err != nil {
					t.Fatal(err)
				}
				e, ref := pair(t, nn.EngineConfig{Arch: a, Params: p, BatchSize: 4, FreezeBN: frozen})
				b := enginetest.Batch(a, 3, 5)
				check := func(what string, f func(*Engine) []float32) {
					t.Helper()
					sameBits(t, what, f(e), f(ref))
				}
				must := func(v []float32, err error) []float32 {
					t.Helper()
					if err != nil {
						t.Fatal(err)
					}
					return v
				}
				for step := 0; step < 2; step++ {
					check("forward", func(e *Engine) []float32 { return must(e.Forward(b.X, b.N)) })
					check("forward of one", func(e *Engine) []float32 { return must(e.Forward(b.X[:a.InputSize()], 1)) })
					check("loss", func(e *Engine) []float32 {
						l, err := e.Loss(b)
						return must([]float32{l}, err)
					})
					check("gradients", func(e *Engine) []float32 {
						l, gs, err := e.Gradients(b)
						out := []float32{l}
						for _, g := range gs {
							out = append(out, g...)
						}
						return must(out, err)
					})
					check("step", func(e *Engine) []float32 {
						l, err := e.Step(b)
						return must([]float32{l}, err)
					})
				}
				check("weights", func(e *Engine) []float32 {
					q := p.Clone()
					if err := e.ReadParams(q); err != nil {
						t.Fatal(err)
					}
					var out []float32
					for _, v := range q.Values {
						out = append(out, v...)
					}
					return out
				})
			})
		}
	}
}
