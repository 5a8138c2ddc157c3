//go:build !(goexperiment.simd && amd64)

package gorgoniaengine

// Without GOEXPERIMENT=simd on amd64 the row kernels are the scalar ones.

// rowKernels names what runs the row kernels, for the engine's name.
func rowKernels() string { return "scalar" }

func siluForward(out, x []float32)                     { siluForwardScalar(out, x) }
func siluBackward(out, x, dy []float32)                { siluBackwardScalar(out, x, dy) }
func relu6Forward(out, x []float32)                    { relu6ForwardScalar(out, x) }
func relu6Backward(out, y, dy []float32)               { relu6BackwardScalar(out, y, dy) }
func dw3Forward(o, r0, r1, r2, w []float32, b float32) { dw3ForwardScalar(o, r0, r1, r2, w, b) }
func dw3GradX(o, g0, g1, g2, w []float32)              { dw3GradXScalar(o, g0, g1, g2, w) }
func bnNormalise(o, x []float32, m, iv, g, b float32)  { bnNormaliseScalar(o, x, m, iv, g, b) }
func bnGradX(o, x, dy []float32, k, m, iv float32, a, bc float64) {
	bnGradXScalar(o, x, dy, k, m, iv, a, bc)
}
func bnSums(l *lanes, x, dy []float32, m, iv float32) { bnSumsScalar(l, x, dy, m, iv) }
func statsSums(l *lanes, x []float32, k float64)      { statsSumsScalar(l, x, k) }
func dw3GradW(part, g, r0, r1, r2 []float32)          { dw3GradWScalar(part, g, r0, r1, r2) }

// clearUpper is blasClearUpper: this build has no VZEROUPPER of its own.
func clearUpper() { blasClearUpper() }
