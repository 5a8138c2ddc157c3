package train_test

import (
	"context"
	"slices"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// colourScenes are small colour detection scenes over procedural backgrounds.
func colourScenes(t *testing.T, n int) (nn.Arch, []train.Sample) {
	t.Helper()
	g, err := colourscenes.New(colourscenes.LoadPhotos(t.TempDir(), nil))
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := datasets.Parse("colour-scenes:size=64x64,classes=4")
	sp, err := datasets.LoadColour(g, spec, datasets.Sizes{Train: n, Val: 1, Test: 1}, 1, none())
	if err != nil {
		t.Fatal(err)
	}
	a := spec.Arch()
	return a, sp.Train
}

func TestAugmentedShowsWhatTheNetworkSees(t *testing.T) {
	a, samples := colourScenes(t, 12)
	plain := train.Augmented(a, samples, augment.None(), 6, 3)
	for _, s := range plain {
		i := slices.IndexFunc(samples, func(o train.Sample) bool { return o.ID == s.ID })
		if !slices.Equal(s.Image.Pix, samples[i].Image.Pix) || !slices.Equal(s.Boxes, samples[i].Boxes) {
			t.Fatalf("augmentation off: sample %s changed", s.ID)
		}
	}
	aug := train.Augmented(a, samples, augment.Colour(nn.Detect), 12, 3)
	changed := 0
	for _, s := range aug {
		if s.Image.W != a.InW || s.Image.H != a.InH || s.Image.Channels() != 3 {
			t.Fatalf("augmented sample %dx%dx%d, want the network's %dx%dx3", s.Image.W, s.Image.H, s.Image.Channels(), a.InW, a.InH)
		}
		for _, b := range s.Boxes {
			if b.X0 < 0 || b.Y0 < 0 || b.X1 > 1 || b.Y1 > 1 || b.X1 <= b.X0 || b.Y1 <= b.Y0 {
				t.Fatalf("augmented box outside the frame: %+v", b)
			}
		}
		i := slices.IndexFunc(samples, func(o train.Sample) bool { return o.ID == s.ID })
		if !slices.Equal(s.Image.Pix, samples[i].Image.Pix) {
			changed++
		}
		// A mosaic leaves letterbox grey where no tile reaches, or shows parts of four
		// scenes; either way every value stays in [0, 1].
		for _, v := range s.Image.Pix {
			if v < 0 || v > 1 {
				t.Fatalf("augmented value %v outside [0,1]", v)
			}
		}
	}
	if changed < 10 {
		t.Fatalf("colour augmentation changed only %d of 12 samples", changed)
	}
}

// A colour detector trains with mosaic on (closed for the last epoch) and HSV jitter.
func TestColourDetectionTrainsWithMosaic(t *testing.T) {
	a, samples := colourScenes(t, 24)
	p, err := nn.InitParams(a, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := train.Config{Epochs: 2, BatchSize: 8, Seed: 1, Augment: augment.Colour(nn.Detect), Patience: -1}
	res, err := train.Run(context.Background(), a, p, datasets.Spec{Name: datasets.ColourScenes, Classes: 4}.ClassNames(),
		train.Split{Train: samples[:20], Val: samples[20:]}, cfg, gorgoniaengine.Factory)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.History) != 2 {
		t.Fatalf("%d epochs run, want 2", len(res.History))
	}
}
