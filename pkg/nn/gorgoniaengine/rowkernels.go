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

// bnNormaliseScalar is a batch norm's output over one image's channel:
// o[p] = (x[p] − m)·iv·g + b.
func bnNormaliseScalar(o, x []float32, m, iv, g, b float32) {
	o = o[:len(x)]
	for p, v := range x {
		o[p] = (v-m)*iv*g + b
	}
}

// bnGradXScalar is a batch norm's input gradient over one image's channel:
// o[p] = k·(dy[p] − a − x̂·bc) with x̂ = (x[p] − m)·iv, the bracket in float64.
func bnGradXScalar(o, x, dy []float32, k, m, iv float32, a, bc float64) {
	o, dy = o[:len(x)], dy[:len(x)]
	for p, v := range x {
		o[p] = k * float32(float64(dy[p])-a-float64((v-m)*iv)*bc)
	}
}

// The float64 sums below keep eight partial sums, lane p mod 8 taking value p (the
// vector kernels' lanes), which laneSum adds up in lane order: so the scalar and
// vector kernels add the same numbers in the same order.

// lanes are eight partial sums of two quantities: [0:8] the first, [8:16] the second.
type lanes [16]float64

// laneSum adds up the eight partial sums of quantity q (0 or 1) in lane order.
func (l *lanes) laneSum(q int) float64 {
	s := l[8*q]
	for _, v := range l[8*q+1 : 8*q+8] {
		s += v
	}
	return s
}

// bnSumsScalar adds Σdy (quantity 0) and Σdy·x̂ (quantity 1), x̂ = (x[p] − m)·iv, over
// one image's channel into l.
func bnSumsScalar(l *lanes, x, dy []float32, m, iv float32) {
	dy = dy[:len(x)]
	for p, v := range x {
		g := float64(dy[p])
		l[p%8] += g
		l[8+p%8] += g * float64((v-m)*iv)
	}
}

// statsSumsScalar adds Σd (quantity 0) and Σd² (quantity 1), d = x[p] − k in float64,
// over one image's channel into l.
func statsSumsScalar(l *lanes, x []float32, k float64) {
	for p, v := range x {
		d := float64(v) - k
		l[p%8] += d
		l[8+p%8] += d * d
	}
}

// dw3GradWScalar adds one output-gradient row's share of a 3×3 stride-1 depthwise
// filter gradient, away from the borders, to part: part[3·ky + kx] += Σ g[i]·r_ky[i + kx].
// Each tap's products go to eight float32 partial sums, value i in lane i mod 8, which
// are added up in lane order before part: the order of the vector kernel. The rows
// hold len(g) + 2 values.
func dw3GradWScalar(part, g, r0, r1, r2 []float32) {
	n := len(g)
	r0, r1, r2, part = r0[:n+2], r1[:n+2], r2[:n+2], part[:9]
	var p [9][8]float32
	for i, v := range g[:min(n, 8)] { // the first products start the lanes, as in the vector kernel
		p[0][i] = v * r0[i]
		p[1][i] = v * r0[i+1]
		p[2][i] = v * r0[i+2]
		p[3][i] = v * r1[i]
		p[4][i] = v * r1[i+1]
		p[5][i] = v * r1[i+2]
		p[6][i] = v * r2[i]
		p[7][i] = v * r2[i+1]
		p[8][i] = v * r2[i+2]
	}
	dw3GradWLanes(&p, g, r0, r1, r2, min(n, 8))
	addTaps(part, &p)
}

// dw3GradWLanes adds the products of values from..len(g)−1 to their lanes of p.
func dw3GradWLanes(p *[9][8]float32, g, r0, r1, r2 []float32, from int) {
	n := len(g)
	r0, r1, r2 = r0[:n+2], r1[:n+2], r2[:n+2]
	for i := from; i < n; i++ {
		v, l := g[i], i%8
		p[0][l] += v * r0[i]
		p[1][l] += v * r0[i+1]
		p[2][l] += v * r0[i+2]
		p[3][l] += v * r1[i]
		p[4][l] += v * r1[i+1]
		p[5][l] += v * r1[i+2]
		p[6][l] += v * r2[i]
		p[7][l] += v * r2[i+1]
		p[8][l] += v * r2[i+2]
	}
}

// addTaps adds each tap's eight partial sums, in lane order, to part.
func addTaps(part []float32, p *[9][8]float32) {
	for t := range p {
		s := p[t][0]
		for _, v := range p[t][1:] {
			s += v
		}
		part[t] += s
	}
}
