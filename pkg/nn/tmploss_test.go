package nn

import (
	"math/rand/v2"
	"testing"
)

func BenchmarkTmpLoss(b *testing.B) {
	a, err := DetectorPyramid(MobileNetV2, "s", "p2", 320, 256, 3, 8)
	if err != nil {
		b.Fatal(err)
	}
	n := 8
	r := rand.New(rand.NewPCG(1, 2))
	z := make([]float32, n*a.OutputSize())
	for i := range z {
		z[i] = r.Float32()*4 - 2
	}
	boxes := make([][]Box, n)
	for i := range boxes {
		boxes[i] = []Box{{X0: 0.1, Y0: 0.2, X1: 0.45, Y1: 0.6, Class: 1}, {X0: 0.55, Y0: 0.5, X1: 0.9, Y1: 0.95, Class: 2}}
	}
	t := EncodeTargets(a, boxes)
	dz := make([]float32, len(z))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := MultiScaleLoss(a, z, t, n, dz); err != nil {
			b.Fatal(err)
		}
	}
}
