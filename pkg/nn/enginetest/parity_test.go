package enginetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
)

// TestSameEngineAgrees: an engine compared with itself passes every check.
func TestSameEngineAgrees(t *testing.T) {
	for _, a := range []nn.Arch{TinyClassifier(), nn.DetectorArch(2)} {
		r, err := Compare(a, gorgoniaengine.Factory, gorgoniaengine.Factory, 4, 2, 1, DefaultTolerance())
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Failed) > 0 {
			t.Fatalf("%s:\n%s", a.Name, r)
		}
	}
}

// skewed is an engine whose gradient of one tensor is off by 1% of its scale.
type skewed struct {
	nn.Engine
	tensor int
}

func (s skewed) Gradients(b *nn.Batch) (float32, [][]float32, error) {
	l, g, err := s.Engine.Gradients(b)
	if err == nil {
		g[s.tensor][0] += 0.01 * float32(slices.Max(g[s.tensor])-slices.Min(g[s.tensor]))
	}
	return l, g, err
}

// TestSkewedGradientFails: Compare catches a gradient that is wrong in one element.
func TestSkewedGradientFails(t *testing.T) {
	a := TinyClassifier()
	bad := func(c nn.EngineConfig) (nn.Engine, error) {
		e, err := gorgoniaengine.Factory(c)
		return skewed{Engine: e, tensor: 2}, err
	}
	r, err := Compare(a, gorgoniaengine.Factory, bad, 4, 1, 1, DefaultTolerance())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", r)
	if len(r.Failed) != 1 || !strings.HasPrefix(r.Failed[0], "grad ") {
		t.Fatalf("want exactly the skewed gradient to fail, got %v:\n%s", r.Failed, r)
	}
}
