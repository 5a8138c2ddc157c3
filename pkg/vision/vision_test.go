package vision_test

import (
	"context"
	"math"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// With embeddings the predictor answers as without, and gives each image its 128
// penultimate features.
func TestPredictEmbed(t *testing.T) {
	a := nn.ClassifierArch(3)
	p, err := nn.InitParams(a, 2)
	if err != nil {
		t.Fatal(err)
	}
	classes := []string{"a", "b", "c"}
	plain, err := vision.NewPredictor(a, p, classes, gorgoniaengine.Factory, 1, vision.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	emb, err := vision.NewPredictor(a, p, classes, gorgoniaengine.Factory, 1, vision.Options{Embed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	var ims []*raster.Image
	for i := range 3 {
		im := raster.New(28, 28)
		for j := range im.Pix {
			im.Pix[j] = float32((i*7+j)%13) / 13
		}
		ims = append(ims, im)
	}
	want, es, err := plain.PredictEmbed(context.Background(), ims)
	if err != nil || es != nil {
		t.Fatalf("plain: %v, embeddings %v", err, es)
	}
	got, es, err := emb.PredictEmbed(context.Background(), ims)
	if err != nil {
		t.Fatal(err)
	}
	if !emb.Embeds() || len(es) != 3 || len(es[0]) != 128 {
		t.Fatalf("embeddings: %d of %d floats", len(es), len(es[0]))
	}
	for i := range want {
		for k := range want[i] {
			if got[i][k].Class != want[i][k].Class || math.Abs(float64(got[i][k].Confidence-want[i][k].Confidence)) > 1e-4 {
				t.Fatalf("image %d rank %d: %+v with embeddings, %+v without", i, k, got[i][k], want[i][k])
			}
		}
	}
}
