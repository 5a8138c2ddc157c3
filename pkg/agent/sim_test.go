package agent

import (
	"slices"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/colourscenes"
)

// The simulated fleet draws colour frames with their truth, under a colour drift.
func TestSimulatorDrawsColourFrames(t *testing.T) {
	t.Setenv("EDGELOOP_PHOTOS_DIR", t.TempDir()) // procedural backgrounds: fast, and always there
	names := colourscenes.Catalogue()
	for _, c := range []SimConfig{
		{Dataset: "colour-objects:size=64x64,classes=5", Drift: "white-balance", Seed: 1},
		{Dataset: "colour-scenes:drift=far", Drift: "low-light", Seed: 2},
	} {
		sim, err := NewSimulator(c, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.Dataset, err)
		}
		seen := map[string]bool{}
		for i := 0; i < 12; i++ {
			im, truth, err := sim.Next()
			if err != nil {
				t.Fatal(err)
			}
			if im.Channels() != 3 || len(truth.Labels) == 0 {
				t.Fatalf("%s: frame %dx%dx%d with %d labels", c.Dataset, im.W, im.H, im.Channels(), len(truth.Labels))
			}
			for _, l := range truth.Labels {
				if !slices.Contains(names, l.ClassName) {
					t.Fatalf("%s: label %q is no colour class", c.Dataset, l.ClassName)
				}
				seen[l.ClassName] = true
			}
		}
		if len(seen) < 3 {
			t.Fatalf("%s: 12 frames of only %d classes", c.Dataset, len(seen))
		}
	}
	if _, err := NewSimulator(SimConfig{Dataset: "colour-scenes", Drift: "rotation"}, nil); err == nil {
		t.Fatal("a digit drift on colour frames was accepted")
	}
}
