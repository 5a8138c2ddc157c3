package gorgoniaengine

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

func benchStep(b *testing.B, a nn.Arch, n int) {
	p, _ := nn.InitParams(a, 1)
	e, err := New(nn.EngineConfig{Arch: a, Params: p, BatchSize: n})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	batch := batchFor(nil, a, n, 1)
	for i := 0; i < 2; i++ { // the graph is built and every buffer sized
		if _, err := e.Step(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Step(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkTrainStepClassifier measures one training step of the MNIST classifier at
// batches 16, 32 and 64, with the allocations per step.
func BenchmarkTrainStepClassifier(b *testing.B) {
	for _, n := range []int{16, 32, 64} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchStep(b, nn.ClassifierArch(10), n) })
	}
}

// BenchmarkTrainStepDetector measures one training step of the scene detector at
// batches 16, 32 and 64.
func BenchmarkTrainStepDetector(b *testing.B) {
	for _, n := range []int{16, 32, 64} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchStep(b, nn.DetectorArch(10), n) })
	}
}

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

// BenchmarkDetectorTrainStep measures one training step (batch 8) of the multi-scale
// detector mobilenetv2-s-det on 320×256 RGB scenes, with each pyramid (P3: heads at
// strides 8–32; P2: a stride-4 head added for small objects).
func BenchmarkDetectorTrainStep(b *testing.B) {
	for _, pyramid := range nn.Pyramids() {
		b.Run("s-"+pyramid, func(b *testing.B) {
			a, err := nn.DetectorPyramid(nn.MobileNetV2, "s", pyramid, 320, 256, 3, 8)
			if err != nil {
				b.Fatal(err)
			}
			benchStep(b, a, 8)
		})
	}
}
