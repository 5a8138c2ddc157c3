package nn_test

import (
	"math"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
)

// The trunk's features through the dense head are the whole network's logits, for the
// digits classifier and a batch-norm family member.
func TestSplitHeadGivesTheSameLogits(t *testing.T) {
	fam, err := nn.Family(nn.MobileNetV2, "n", 32, 32, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []nn.Arch{nn.ClassifierArch(10), fam} {
		p, err := nn.InitParams(a, 3)
		if err != nil {
			t.Fatal(err)
		}
		trunk, tp, head, err := nn.SplitHead(a, p)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		if head.Out != a.Classes || trunk.Classes != head.In {
			t.Fatalf("%s: head %d→%d, trunk out %d", a.Name, head.In, head.Out, trunk.Classes)
		}
		x := make([]float32, 2*a.InputSize())
		for i := range x {
			x[i] = float32(i%29) / 29
		}
		full, err := gorgoniaengine.New(nn.EngineConfig{Arch: a, Params: p, BatchSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		want, err := full.Forward(x, 2)
		full.Close()
		if err != nil {
			t.Fatal(err)
		}
		te, err := gorgoniaengine.New(nn.EngineConfig{Arch: trunk, Params: tp, BatchSize: 2})
		if err != nil {
			t.Fatalf("%s trunk: %v", a.Name, err)
		}
		emb, err := te.Forward(x, 2)
		te.Close()
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < 2; n++ {
			got := head.Logits(emb[n*head.In : (n+1)*head.In])
			for j, g := range got {
				if w := want[n*a.Classes+j]; math.Abs(float64(g-w)) > 1e-3*(1+math.Abs(float64(w))) {
					t.Fatalf("%s image %d logit %d: trunk+head %v, network %v", a.Name, n, j, g, w)
				}
			}
		}
	}
	if _, _, _, err := nn.SplitHead(nn.DetectorArch(3), nil); err == nil {
		t.Fatal("a detector split like a classifier")
	}
}
