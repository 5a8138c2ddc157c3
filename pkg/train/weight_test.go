package train

import (
	"math"
	"slices"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// TestWeightedSamplesJoinEpochsByTheirWeight: over 400 epochs a labelled example is in
// every one, a pseudo-label of weight 0.25 in about a quarter, and the orders are the
// same for the same seed; a weight outside [0, 1] makes the example unusable.
func TestWeightedSamplesJoinEpochsByTheirWeight(t *testing.T) {
	samples := []Sample{{ID: "labelled"}, {ID: "pseudo", Weight: 0.25}, {ID: "full", Weight: 1}}
	in := map[string]int{}
	for epoch := 1; epoch <= 400; epoch++ {
		o := epochOrder(samples, 7, epoch)
		if !slices.Equal(o, epochOrder(samples, 7, epoch)) {
			t.Fatal("the same seed and epoch gave two orders")
		}
		for _, i := range o {
			in[samples[i].ID]++
		}
	}
	if in["labelled"] != 400 || in["full"] != 400 || in["pseudo"] < 70 || in["pseudo"] > 130 {
		t.Fatalf("epochs joined: %v; want 400, 400 and about 100 for the pseudo-label", in)
	}
	a := nn.ClassifierArch(2)
	for _, w := range []float32{-0.5, 1.5, float32(math.NaN())} {
		if unusable(a, Sample{Image: raster.New(28, 28), Weight: w}) == "" {
			t.Errorf("weight %v accepted", w)
		}
	}
}
