package gorgoniaengine

import (
	"math"

	G "gorgonia.org/gorgonia"
)

// siluOp is y = x·σ(x) with gradient dy·σ(x)·(1 + x·(1 − σ(x))), in row kernels spread
// over the cores. The detector's neck and heads apply it to every map, the stride-4 ones
// included, so σ uses expf32 rather than float64 math.Exp: a third of the step's
// element-wise time went to the exponential before.
func siluOp(name string, x *G.Node) (*G.Node, error) {
	back := func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		dx, err := apply(name+".dx", in[0].Shape(), func(out []float32, in [][]float32) {
			x, dy := in[0], in[1]
			chunks(len(out), func(lo, hi int) { siluBackward(out[lo:hi], x[lo:hi], dy[lo:hi]) })
		}, nil, in[0], dy)
		return G.Nodes{dx}, err
	}
	return apply(name, x.Shape(), func(out []float32, in [][]float32) {
		x := in[0]
		chunks(len(out), func(lo, hi int) { siluForward(out[lo:hi], x[lo:hi]) })
	}, back, x)
}

// The constants of expf32 and expf32x8: log₂e; ln 2 in two parts, the first with few
// enough bits that n·expLn2Hi is exact; and 1.5·2²³, which rounds to an integer when
// added and taken away.
const (
	expLog2e = 1.44269504088896341
	expLn2Hi = 0.693359375
	expLn2Lo = -2.12194440e-4
	expRound = 1 << 23 * 1.5
)

// sigmoid32 is 1/(1 + e^−v): 0 and 1 at the far ends, NaN for NaN.
func sigmoid32(v float32) float32 { return 1 / (1 + expf32(-v)) }

// expf32 is e^x in float32 arithmetic, within 2 units in the last place of math.Exp's
// result rounded to float32 (TestExpf32). x is split as n·ln 2 + r with |r| ≤ ln 2 / 2
// (ln 2 in two parts, so that r is exact), e^r is its Taylor polynomial of degree 7
// (remainder under 5e-9), and 2^n goes straight into the exponent bits. Inputs past
// ±87 are clamped there, which saturates a sigmoid exactly as the exact function's
// float32 result does; NaN stays NaN.
func expf32(x float32) float32 {
	if x != x {
		return x
	}
	if x < -87 {
		x = -87
	} else if x > 87 {
		x = 87
	}
	// Adding and taking away 1.5·2²³ rounds x·log₂e to the nearest integer without a branch
	// on its sign, which the inputs' random signs would mispredict half the time.
	fn := x*expLog2e + expRound - expRound // |fn| ≤ 126
	n := int32(fn)
	r := x - fn*expLn2Hi - fn*expLn2Lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	return p * math.Float32frombits(uint32(n+127)<<23)
}
