package train_test

import (
	"context"
	"math"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// Brighter pictures than the model's statistics know: re-estimating batch norm on
// them moves the first layer's running mean up, and no weight.
func TestAdaptBNMovesOnlyTheStatistics(t *testing.T) {
	a, err := nn.Family(nn.MobileNetV2, "n", 32, 32, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	p, err := nn.InitParams(a, 1)
	if err != nil {
		t.Fatal(err)
	}
	var ims []*raster.Image
	for i := range 40 {
		im := raster.New(32, 32)
		for j := range im.Pix {
			im.Pix[j] = 0.7 + 0.3*float32((i+j)%7)/7
		}
		ims = append(ims, im)
	}
	q, err := train.AdaptBN(context.Background(), a, p, ims, 16, gorgoniaengine.Factory)
	if err != nil {
		t.Fatal(err)
	}
	moved := false
	for i, s := range p.Specs {
		for j := range p.Values[i] {
			d := math.Abs(float64(q.Values[i][j] - p.Values[i][j]))
			if !s.Buffer && d > 0 {
				t.Fatalf("weight %s[%d] moved by %v", s.Name, j, d)
			}
			if s.Buffer && d > 1e-3 {
				moved = true
			}
		}
	}
	if !moved {
		t.Fatal("no running statistic moved")
	}
	if _, err := train.AdaptBN(context.Background(), nn.ClassifierArch(3), p, ims, 16, gorgoniaengine.Factory); err == nil {
		t.Fatal("adapted a network without batch norm")
	}
	if _, err := train.AdaptBN(context.Background(), a, p, ims[:3], 16, gorgoniaengine.Factory); err == nil {
		t.Fatal("adapted on fewer images than a batch")
	}
}
