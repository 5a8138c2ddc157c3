package gorgoniaengine

import (
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

func benchStep(b *testing.B, a nn.Arch) {
	p, _ := nn.InitParams(a, 1)
	e, err := New(nn.EngineConfig{Arch: a, Params: p, BatchSize: 64})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	batch := batchFor(nil, a, 64, 1)
	if _, err := e.Step(batch); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Step(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkTrainStepClassifier measures one batch of 64 of the MNIST classifier.
func BenchmarkTrainStepClassifier(b *testing.B) { benchStep(b, nn.ClassifierArch(10)) }

// BenchmarkTrainStepDetector measures one batch of 64 of the scene detector.
func BenchmarkTrainStepDetector(b *testing.B) { benchStep(b, nn.DetectorArch(10)) }
