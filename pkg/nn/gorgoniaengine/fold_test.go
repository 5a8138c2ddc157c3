package gorgoniaengine

import (
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/enginetest"
)

// TestFoldedNetworkInfersTheSame: MobileNetV2 (classifier and multi-scale detector)
// with trained-looking running statistics and its batch-norm-folded form give the same
// inference outputs, with 52 fewer layers
// and no buffers; a batch norm that cannot fold (after a non-conv) stays.
func TestFoldedNetworkInfersTheSame(t *testing.T) {
	for _, a := range []nn.Arch{must(nn.Family(nn.MobileNetV2, "n", 32, 32, 3, 4)), must(nn.DetectorFamily(nn.MobileNetV2, "n", 64, 64, 3, 2)),
		must(nn.DetectorPyramid(nn.MobileNetV2, "n", nn.PyramidP2, 64, 64, 3, 2)),
		enginetest.AllLayers(), bnNet()} {
		t.Run(a.Name, func(t *testing.T) {
			p, _ := nn.InitParams(a, 5)
			randomRunningStats(p, 6)
			for i, s := range p.Specs { // non-trivial γ and β
				if !s.Buffer && (s.Ones || s.Bias) {
					for j := range p.Values[i] {
						p.Values[i][j] += 0.1 * float32(j%5-2)
					}
				}
			}
			fa, fp, err := nn.FoldBatchNorm(a, p)
			if err != nil {
				t.Fatal(err)
			}
			bns := func(a nn.Arch) (n int) {
				for _, l := range a.Layers {
					if l.Kind == nn.BatchNorm {
						n++
					}
				}
				return n
			}
			t.Logf("%s: %d layers, %d batch norms → %d layers, %d batch norms", a.Name, len(a.Layers), bns(a), len(fa.Layers), bns(fa))
			if a.Name == "bn-input" && bns(fa) != 1 || a.Name != "bn-input" && bns(fa) != 0 {
				t.Fatalf("%d batch norms left", bns(fa))
			}
			b := enginetest.Batch(a, 3, 2)
			out := func(a nn.Arch, p *nn.Params) []float32 {
				e, err := New(nn.EngineConfig{Arch: a, Params: p, BatchSize: 3})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				o, err := e.Forward(b.X, b.N)
				if err != nil {
					t.Fatal(err)
				}
				return o
			}
			if d := enginetest.TensorDiff(out(a, p), out(fa, fp)); d > 1e-4 {
				t.Fatalf("folded outputs differ by %.2e", d)
			}
		})
	}
}

func must(a nn.Arch, err error) nn.Arch {
	if err != nil {
		panic(err)
	}
	return a
}
