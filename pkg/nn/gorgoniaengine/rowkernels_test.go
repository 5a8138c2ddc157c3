package gorgoniaengine

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRowKernelsMatchScalar runs each row kernel as the engine does (the vector one on
// builds with GOEXPERIMENT=simd and an AVX2 CPU) against its scalar version, at every
// length up to 40 so that vector bodies and scalar tails both run, on values that
// include zeros of both signs, NaN, infinities, the ReLU6 and exponential cut-offs and
// numbers near them: the two must give the same bits (NaN for NaN).
func TestRowKernelsMatchScalar(t *testing.T) {
	t.Logf("row kernels: %s", rowKernels())
	r := rand.New(rand.NewPCG(11, 12))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
		6, math.Nextafter32(6, 0), math.Nextafter32(6, 7), -87, 87, -88, 88, 1e-45, -1e-45, 200, -200}
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			switch r.IntN(4) {
			case 0:
				v[i] = special[r.IntN(len(special))]
			case 1:
				v[i] = (r.Float32()*2 - 1) * 100
			default:
				v[i] = r.Float32()*16 - 8
			}
		}
		return v
	}
	same := func(name string, n int, got, want []float32) {
		t.Helper()
		for i := range want {
			g, w := got[i], want[i]
			if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
				t.Fatalf("%s, length %d: [%d] = %v (%#x), want %v (%#x)", name, n, i, g, math.Float32bits(g), w, math.Float32bits(w))
			}
		}
	}
	for n := 0; n <= 40; n++ {
		for rep := 0; rep < 20; rep++ {
			x, dy := fill(n), fill(n)
			got, want := make([]float32, n), make([]float32, n)
			siluForward(got, x)
			siluForwardScalar(want, x)
			same("siluForward", n, got, want)
			siluBackward(got, x, dy)
			siluBackwardScalar(want, x, dy)
			same("siluBackward", n, got, want)
			relu6Forward(got, x)
			relu6ForwardScalar(want, x)
			same("relu6Forward", n, got, want)
			relu6Backward(got, x, dy)
			relu6BackwardScalar(want, x, dy)
			same("relu6Backward", n, got, want)

			bnNormalise(got, x, 0.5, 1.5, -2, 0.25)
			bnNormaliseScalar(want, x, 0.5, 1.5, -2, 0.25)
			same("bnNormalise", n, got, want)
			bnGradX(got, x, dy, 0.75, 0.5, 1.5, 0.125, -0.3)
			bnGradXScalar(want, x, dy, 0.75, 0.5, 1.5, 0.125, -0.3)
			same("bnGradX", n, got, want)
			// The sums go on from what earlier images left, as the engine's do.
			var lg, lw lanes
			for i := range lg {
				lg[i] = float64(i) * 0.37
			}
			lw = lg
			bnSums(&lg, x, dy, 0.5, 1.5)
			bnSumsScalar(&lw, x, dy, 0.5, 1.5)
			sameLanes(t, "bnSums", n, &lg, &lw)
			statsSums(&lg, x, 0.3)
			statsSumsScalar(&lw, x, 0.3)
			sameLanes(t, "statsSums", n, &lg, &lw)

			rows, w := [][]float32{fill(n + 2), fill(n + 2), fill(n + 2)}, fill(9)
			for i := range rows {
				for j := range rows[i] { // finite taps: ∞·0 would be NaN on both sides anyway
					if v := rows[i][j]; v != v || math.IsInf(float64(v), 0) {
						rows[i][j] = 1
					}
				}
			}
			dw3Forward(got, rows[0], rows[1], rows[2], w, 0.25)
			dw3ForwardScalar(want, rows[0], rows[1], rows[2], w, 0.25)
			same("dw3Forward", n, got, want)
			gp, wp := make([]float32, 9), make([]float32, 9)
			for i := range gp {
				gp[i], wp[i] = float32(i)*0.1, float32(i)*0.1
			}
			dw3GradW(gp, x, rows[0], rows[1], rows[2])
			dw3GradWScalar(wp, x, rows[0], rows[1], rows[2])
			same("dw3GradW", n, gp, wp)
			dw3GradX(got, rows[0], rows[1], rows[2], w)
			dw3GradXScalar(want, rows[0], rows[1], rows[2], w)
			same("dw3GradX", n, got, want)
		}
	}
}

// BenchmarkRowKernels times each row kernel as the engine runs it ("engine": the vector
// one on GOEXPERIMENT=simd builds with AVX2) beside its scalar version, on an 80-pixel
// row (a stride-4 map's at 320 px) and a 4,096-value chunk.
func BenchmarkRowKernels(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = r.Float32()*16 - 8
		}
		return v
	}
	o, r0, r1, r2, w, part := make([]float32, 78), fill(80), fill(80), fill(80), fill(9), make([]float32, 9)
	x, dy, out := fill(4096), fill(4096), make([]float32, 4096)
	var l lanes
	for _, k := range []struct {
		name           string
		engine, scalar func()
	}{
		{"dw3Forward", func() { dw3Forward(o, r0, r1, r2, w, 1) }, func() { dw3ForwardScalar(o, r0, r1, r2, w, 1) }},
		{"dw3GradX", func() { dw3GradX(o, r0, r1, r2, w) }, func() { dw3GradXScalar(o, r0, r1, r2, w) }},
		{"dw3GradW", func() { dw3GradW(part, o, r0, r1, r2) }, func() { dw3GradWScalar(part, o, r0, r1, r2) }},
		{"siluForward", func() { siluForward(out, x) }, func() { siluForwardScalar(out, x) }},
		{"siluBackward", func() { siluBackward(out, x, dy) }, func() { siluBackwardScalar(out, x, dy) }},
		{"relu6Forward", func() { relu6Forward(out, x) }, func() { relu6ForwardScalar(out, x) }},
		{"relu6Backward", func() { relu6Backward(out, x, dy) }, func() { relu6BackwardScalar(out, x, dy) }},
		{"bnNormalise", func() { bnNormalise(out, x, 0.5, 1.5, 2, 0.1) }, func() { bnNormaliseScalar(out, x, 0.5, 1.5, 2, 0.1) }},
		{"bnGradX", func() { bnGradX(out, x, dy, 0.7, 0.5, 1.5, 0.1, 0.2) }, func() { bnGradXScalar(out, x, dy, 0.7, 0.5, 1.5, 0.1, 0.2) }},
		{"bnSums", func() { bnSums(&l, x, dy, 0.5, 1.5) }, func() { bnSumsScalar(&l, x, dy, 0.5, 1.5) }},
		{"statsSums", func() { statsSums(&l, x, 0.3) }, func() { statsSumsScalar(&l, x, 0.3) }},
	} {
		b.Run(k.name+"/engine", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				k.engine()
			}
		})
		b.Run(k.name+"/scalar", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				k.scalar()
			}
		})
	}
}

// sameLanes fails unless got and want hold the same bits (NaN for NaN).
func sameLanes(t *testing.T, name string, n int, got, want *lanes) {
	t.Helper()
	for i := range want {
		g, w := got[i], want[i]
		if math.Float64bits(g) != math.Float64bits(w) && !(g != g && w != w) {
			t.Fatalf("%s, length %d: lane [%d] = %v, want %v", name, n, i, g, w)
		}
	}
}
