package gorgoniaengine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The depthwise ops written out tap by tap, as the textbook sums: the reference the
// kernel-row loops must equal.

func refDepthwiseForward(op *convOp, x, w, b []float32) []float32 {
	y := make([]float32, op.n*op.c*op.oh*op.ow)
	for n := 0; n < op.n; n++ {
		for c := 0; c < op.c; c++ {
			for oy := 0; oy < op.oh; oy++ {
				for ox := 0; ox < op.ow; ox++ {
					var sum float64
					if b != nil {
						sum = float64(b[c])
					}
					for ky := 0; ky < op.k; ky++ {
						for kx := 0; kx < op.k; kx++ {
							iy, ix := oy*op.stride+ky-op.pad, ox*op.stride+kx-op.pad
							if iy >= 0 && iy < op.h && ix >= 0 && ix < op.w {
								sum += float64(w[(c*op.k+ky)*op.k+kx]) * float64(x[((n*op.c+c)*op.h+iy)*op.w+ix])
							}
						}
					}
					y[((n*op.c+c)*op.oh+oy)*op.ow+ox] = float32(sum)
				}
			}
		}
	}
	return y
}

// refDepthwiseGrads are dx and dw of the loss Σ y·dy.
func refDepthwiseGrads(op *convOp, x, w, dy []float32) (dx, dw []float32) {
	dx64, dw64 := make([]float64, len(x)), make([]float64, len(w))
	for n := 0; n < op.n; n++ {
		for c := 0; c < op.c; c++ {
			for oy := 0; oy < op.oh; oy++ {
				for ox := 0; ox < op.ow; ox++ {
					g := float64(dy[((n*op.c+c)*op.oh+oy)*op.ow+ox])
					for ky := 0; ky < op.k; ky++ {
						for kx := 0; kx < op.k; kx++ {
							iy, ix := oy*op.stride+ky-op.pad, ox*op.stride+kx-op.pad
							if iy >= 0 && iy < op.h && ix >= 0 && ix < op.w {
								xi, wi := ((n*op.c+c)*op.h+iy)*op.w+ix, (c*op.k+ky)*op.k+kx
								dx64[xi] += float64(w[wi]) * g
								dw64[wi] += float64(x[xi]) * g
							}
						}
					}
				}
			}
		}
	}
	dx, dw = make([]float32, len(x)), make([]float32, len(w))
	for i, v := range dx64 {
		dx[i] = float32(v)
	}
	for i, v := range dw64 {
		dw[i] = float32(v)
	}
	return dx, dw
}

// TestDepthwiseOpsMatchTheSums: forward, input gradient and weight gradient of the
// depthwise conv equal the tap-by-tap sums for kernels 1, 3 and 5, strides 1 and 2,
// padding 0 to 2, and images narrower than the kernel's reach (no interior columns).
func TestDepthwiseOpsMatchTheSums(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct{ n, c, h, w, k, stride, pad int }{
		{2, 3, 9, 11, 3, 1, 1}, {2, 3, 9, 11, 3, 2, 1}, {1, 2, 8, 8, 3, 2, 0}, {2, 2, 7, 10, 5, 1, 2}, {1, 2, 9, 9, 5, 2, 2},
		{2, 2, 5, 6, 1, 1, 0}, {1, 2, 6, 5, 1, 2, 0}, {1, 1, 1, 1, 3, 1, 1}, {1, 1, 2, 2, 3, 2, 1}, {1, 1, 3, 2, 5, 1, 2},
		{2, 4, 40, 33, 3, 1, 1}, {2, 4, 40, 33, 3, 2, 1}, {2, 96, 8, 12, 3, 1, 1}, {2, 96, 8, 12, 3, 2, 1}, {2, 48, 16, 24, 3, 1, 1}, {2, 96, 4, 6, 3, 1, 1}, {2, 96, 2, 3, 3, 1, 1},
	} {
		t.Run(fmt.Sprintf("%dx%d k%d s%d p%d", c.h, c.w, c.k, c.stride, c.pad), func(t *testing.T) {
			op := &convOp{n: c.n, c: c.c, h: c.h, w: c.w, o: c.c, k: c.k, pad: c.pad, stride: c.stride, groups: c.c, bias: true}
			op.oh, op.ow = (op.h+2*op.pad-op.k)/op.stride+1, (op.w+2*op.pad-op.k)/op.stride+1
			fill := func(n int) []float32 {
				v := make([]float32, n)
				for i := range v {
					v[i] = r.Float32()*2 - 1
				}
				return v
			}
			x, w, b := fill(op.n*op.c*op.h*op.w), fill(op.c*op.k*op.k), fill(op.c)
			dy := fill(op.n * op.c * op.hw())
			check := func(what string, got, want []float32) {
				t.Helper()
				for i := range want {
					if math.Abs(float64(got[i]-want[i])) > 1e-5*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
					}
				}
			}
			y := make([]float32, len(dy))
			op.depthwiseForward(x, w, b, y)
			check("y", y, refDepthwiseForward(op, x, w, b))
			wantDx, wantDw := refDepthwiseGrads(op, x, w, dy)
			dx, dw := make([]float32, len(x)), make([]float32, len(w))
			for i := range dx {
				dx[i] = 99 // the op must overwrite, not add to, what it is given
			}
			op.depthwiseGradX(w, dy, dx)
			check("dx", dx, wantDx)
			op.depthwiseGradW(x, dy, dw)
			check("dw", dw, wantDw)
		})
	}
}

// BenchmarkDepthwise times the three depthwise passes on a stride-4 map of the P2
// detector at 320×256 (batch 8, 96 channels, 3×3), and on a stride-2 kernel.
func BenchmarkDepthwise(b *testing.B) {
	for _, s := range []int{1, 2} {
		op := &convOp{n: 8, c: 96, h: 64, w: 80, o: 96, k: 3, pad: 1, stride: s, groups: 96, bias: true}
		op.oh, op.ow = (op.h+2*op.pad-op.k)/op.stride+1, (op.w+2*op.pad-op.k)/op.stride+1
		r := rand.New(rand.NewPCG(1, 2))
		fill := func(n int) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = r.Float32()*2 - 1
			}
			return v
		}
		x, w, bias, dy := fill(op.n*op.c*op.h*op.w), fill(op.c*9), fill(op.c), fill(op.n*op.c*op.hw())
		y, dx, dw := make([]float32, len(dy)), make([]float32, len(x)), make([]float32, len(w))
		b.Run(fmt.Sprintf("s%d/forward", s), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				op.depthwiseForward(x, w, bias, y)
			}
		})
		b.Run(fmt.Sprintf("s%d/gradX", s), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				op.depthwiseGradX(w, dy, dx)
			}
		})
		b.Run(fmt.Sprintf("s%d/gradW", s), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				op.depthwiseGradW(x, dy, dw)
			}
		})
	}
}
