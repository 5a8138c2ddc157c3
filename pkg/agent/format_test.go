package agent

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// TestServesFormatOneModelsUnchanged: a model file of format 1, written by the build
// before format 2, is served with the answers that build gave (fixtures in
// pkg/artifact/testdata: the same classes, confidences to 1e-5), for a grey frame and a
// colour one.
func TestServesFormatOneModelsUnchanged(t *testing.T) {
	data, err := os.ReadFile("../artifact/testdata/v1-classifier.elm")
	if err != nil {
		t.Fatal(err)
	}
	m, err := loadModel(data, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.retire()
	var want map[string][]vision.Prediction
	b, err := os.ReadFile("../artifact/testdata/v1-predictions.json")
	if err != nil || json.Unmarshal(b, &want) != nil {
		t.Fatalf("expected answers: %v", err)
	}
	a := &Agent{}
	a.cfg.MaxPixels = raster.DefaultMaxPixels
	a.current.Store(m)
	for name, exp := range want {
		frame, err := os.ReadFile("../artifact/testdata/v1-" + name)
		if err != nil {
			t.Fatal(err)
		}
		im, err := a.decode(frame)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := m.predict(context.Background(), []*raster.Image{im})
		if err != nil {
			t.Fatal(err)
		}
		if len(got[0]) != len(exp) {
			t.Fatalf("%s: %d predictions, want %d", name, len(got[0]), len(exp))
		}
		for i := range exp {
			// 1e-5: OpenBLAS (make run's BLAS) sums in another order than the pure-Go BLAS
			// the fixtures were made with (0.0527767 against 0.052776717); a change of the
			// format's preprocessing or weights moves a confidence by far more.
			if got[0][i].ClassName != exp[i].ClassName || math.Abs(float64(got[0][i].Confidence-exp[i].Confidence)) > 1e-5 {
				t.Fatalf("%s: prediction %d is %+v, the format 1 build said %+v", name, i, got[0][i], exp[i])
			}
		}
	}
}
