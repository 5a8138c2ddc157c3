package gorgoniaengine

import (
	"sort"
	"testing"
	"time"

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

// BenchmarkFamilyTrainStep measures one training step (batch 16) of MobileNetV2 s on
// 160×160 RGB images.
func BenchmarkFamilyTrainStep(b *testing.B) {
	a, err := nn.Family(nn.MobileNetV2, "s", 160, 160, 3, 10)
	if err != nil {
		b.Fatal(err)
	}
	p, _ := nn.InitParams(a, 1)
	e, err := New(nn.EngineConfig{Arch: a, Params: p, BatchSize: 16})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	batch := batchFor(nil, a, 16, 1)
	if _, err := e.Step(batch); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Step(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(16*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkFamilyInfer measures the latency of one 160×160 RGB image through
// MobileNetV2 s (batch 1, the serving case), with p50 and p99.
func BenchmarkFamilyInfer(b *testing.B) {
	a, err := nn.Family(nn.MobileNetV2, "s", 160, 160, 3, 10)
	if err != nil {
		b.Fatal(err)
	}
	p, _ := nn.InitParams(a, 1)
	e, err := New(nn.EngineConfig{Arch: a, Params: p, BatchSize: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	x := batchFor(nil, a, 1, 1).X
	if _, err := e.Forward(x, 1); err != nil {
		b.Fatal(err)
	}
	lat := make([]float64, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := e.Forward(x, 1); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
	}
	sort.Float64s(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[min(len(lat)-1, len(lat)*99/100)], "p99-ms")
}
