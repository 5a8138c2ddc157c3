package nn_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/enginetest"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
)

// forward runs n random 8×8 images through a network on the CPU engine.
func forward(t *testing.T, a nn.Arch, p *nn.Params, x []float32, n int) []float32 {
	t.Helper()
	e, err := gorgoniaengine.New(nn.EngineConfig{Arch: a, Params: p, BatchSize: n})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	out, err := e.Forward(x, n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func images(n int) []float32 {
	r := rand.New(rand.NewPCG(7, 7))
	x := make([]float32, n*64)
	for i := range x {
		x[i] = r.Float32()
	}
	return x
}

// TestRemapClassesKeepsOldUnits: appending a class to a classifier keeps every old
// logit exactly, adds one for the new class, and dropping a class removes its logit
// while the others keep theirs.
func TestRemapClassesKeepsOldUnits(t *testing.T) {
	a := enginetest.TinyClassifier()
	p, err := nn.InitParams(a, 3)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	x := images(n)
	before := forward(t, a, p, x, n)
	from := []string{"a", "b", "c"}
	ga, gp, err := nn.RemapClasses(a, p, from, []string{"a", "b", "c", "d"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ga.Classes != 4 || ga.Layers[len(ga.Layers)-1].Out != 4 || a.Classes != 3 {
		t.Fatalf("grown arch has %d classes (head %d), the original %d", ga.Classes, ga.Layers[len(ga.Layers)-1].Out, a.Classes)
	}
	after := forward(t, ga, gp, x, n)
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			if d := math.Abs(float64(after[i*4+c] - before[i*3+c])); d > 1e-5 {
				t.Fatalf("image %d class %d: logit %v became %v", i, c, before[i*3+c], after[i*4+c])
			}
		}
	}
	// Remove "b": a and c keep their logits, in their new places.
	sa, sp, err := nn.RemapClasses(a, p, from, []string{"a", "c"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	shrunk := forward(t, sa, sp, x, n)
	for i := 0; i < n; i++ {
		if shrunk[i*2] != before[i*3] || shrunk[i*2+1] != before[i*3+2] {
			t.Fatalf("image %d: a, c logits %v, want %v", i, shrunk[i*2:i*2+2], []float32{before[i*3], before[i*3+2]})
		}
	}
	if _, _, err := nn.RemapClasses(a, p, []string{"a"}, []string{"a", "b"}, 1); err == nil {
		t.Fatal("a class list that does not fit the network was accepted")
	}
}

// TestRemapClassesDetector: a detector's objectness, box and old class channels stay;
// the new class gets a channel of its own.
func TestRemapClassesDetector(t *testing.T) {
	a := enginetest.TinyDetector()
	p, err := nn.InitParams(a, 5)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2
	x := images(n)
	before := forward(t, a, p, x, n)
	ga, gp, err := nn.RemapClasses(a, p, []string{"x", "y"}, []string{"x", "y", "z"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	after := forward(t, ga, gp, x, n)
	cells := a.Grid() * a.Grid()
	oldCh, newCh := nn.DetectOut(2), nn.DetectOut(3)
	if len(after) != n*newCh*cells {
		t.Fatalf("%d outputs, want %d", len(after), n*newCh*cells)
	}
	for i := 0; i < n; i++ {
		for c := 0; c < oldCh; c++ {
			for k := 0; k < cells; k++ {
				b, g := before[(i*oldCh+c)*cells+k], after[(i*newCh+c)*cells+k]
				if math.Abs(float64(b-g)) > 1e-5 {
					t.Fatalf("image %d channel %d cell %d: %v became %v", i, c, k, b, g)
				}
			}
		}
	}
}
