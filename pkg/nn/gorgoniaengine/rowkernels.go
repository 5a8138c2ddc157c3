package gorgoniaengine

import "math"

// The engine's innermost loops, one row or chunk at a time. Each has a scalar version
// here, which every build has; builds with GOEXPERIMENT=simd on amd64 run them eight
// lanes at a time (rowkernels_simd.go) with the same operations in the same order, so
// that both give the same bits (TestRowKernelsMatchScalar).

// siluForwardScalar is out[i] = x[i]·σ(x[i]).
func siluForwardScalar(out, x []float32) {
	out = out[:len(x)]
	for i, v := range x {
		out[i] = v * sigmoid32(v)
	}
}

// siluBackwardScalar is out[i] = dy[i]·σ(x)·(1 + x·(1 − σ(x))), x = x[i].
func siluBackwardScalar(out, x, dy []float32) {
	out, dy = out[:len(x)], dy[:len(x)]
	for i, v := range x {
		s := sigmoid32(v)
		out[i] = dy[i] * s * (1 + v*(1-s))
	}
}

// relu6ForwardScalar is out[i] = min(max(x[i], 0), 6).
func relu6ForwardScalar(out, x []float32) {
	out = out[:len(x)]
	for i, v := range x {
		out[i] = min(max(v, 0), 6)
	}
}

// relu6BackwardScalar is out[i] = dy[i] where 0 < y[i] < 6, else 0.
func relu6BackwardScalar(out, y, dy []float32) {
	out, dy = out[:len(y)], dy[:len(y)]
	for i, v := range y {
		out[i] = math.Float32frombits(math.Float32bits(dy[i]) & relu6Pass(v))
	}
}

// dw3ForwardScalar is one output row of a 3×3 stride-1 depthwise convolution away from
// the borders: o[i] = bias + Σ w[3·ky + kx]·r_ky[i + kx], added in the order of ky, then
// kx. The rows hold len(o) + 2 values.
func dw3ForwardScalar(o, r0, r1, r2, w []float32, bias float32) {
	n := len(o)
	r0, r1, r2, w = r0[:n+2], r1[:n+2], r2[:n+2], w[:9]
	for i := range o {
		v := bias
		v += w[0] * r0[i]
		v += w[1] * r0[i+1]
		v += w[2] * r0[i+2]
		v += w[3] * r1[i]
		v += w[4] * r1[i+1]
		v += w[5] * r1[i+2]
		v += w[6] * r2[i]
		v += w[7] * r2[i+1]
		v += w[8] * r2[i+2]
		o[i] = v
	}
}

// dw3GradXScalar is one input-gradient row of a 3×3 stride-1 depthwise convolution
// away from the borders: o[i] = Σ w[3·ky + kx]·g_ky[i + 2 − kx], in the order of ky,
// then kx. The rows hold len(o) + 2 values.
func dw3GradXScalar(o, g0, g1, g2, w []float32) {
	n := len(o)
	g0, g1, g2, w = g0[:n+2], g1[:n+2], g2[:n+2], w[:9]
	for i := range o {
		v := w[0] * g0[i+2]
		v += w[1] * g0[i+1]
		v += w[2] * g0[i]
		v += w[3] * g1[i+2]
		v += w[4] * g1[i+1]
		v += w[5] * g1[i]
		v += w[6] * g2[i+2]
		v += w[7] * g2[i+1]
		v += w[8] * g2[i]
		o[i] = v
	}
}
