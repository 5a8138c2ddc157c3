package retrain

import (
	"bytes"
	"image/png"
	"os"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// The training report shows a grid of augmented samples under the charts, in colour.
func TestTrainingReportShowsAugmentedSamples(t *testing.T) {
	g, err := colourscenes.New(colourscenes.LoadPhotos(t.TempDir(), nil))
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := datasets.Parse("colour-scenes")
	none, _ := drift.Get(drift.None)
	sp, err := datasets.LoadColour(g, spec, datasets.Sizes{Train: 8, Val: 1, Test: 1}, 1, none)
	if err != nil {
		t.Fatal(err)
	}
	a := spec.Arch()
	m := &Metrics{Task: nn.Detect, TrainLoss: []float64{1, 0.5}, ValLoss: []float64{1.1, 0.7}, ValMetricName: "val_map50", ValMetric: []float64{0.2, 0.4}}
	plain, err := png.Decode(bytes.NewReader(TrainingReport(m, spec.ClassNames(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	aug := train.Augmented(a, sp.Train, augment.Colour(nn.Detect), reportSamples, 1)
	data := TrainingReport(m, spec.ClassNames(), aug)
	with, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if with.Bounds().Dy() <= plain.Bounds().Dy()+100 {
		t.Fatalf("report with samples is %d px high, without %d: no sample grid", with.Bounds().Dy(), plain.Bounds().Dy())
	}
	coloured := 0
	for y := plain.Bounds().Dy(); y < with.Bounds().Dy(); y++ {
		for x := 0; x < with.Bounds().Dx(); x++ {
			r, g, b, _ := with.At(x, y).RGBA()
			if max(r, g, b)-min(r, g, b) > 0x4000 {
				coloured++
			}
		}
	}
	if coloured < 5000 {
		t.Fatalf("only %d coloured pixels in the sample grid", coloured)
	}
	if out := os.Getenv("EDGELOOP_PREVIEW"); out != "" {
		_ = os.WriteFile(out, data, 0o644)
	}
}
