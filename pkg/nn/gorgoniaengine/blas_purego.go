//go:build !openblas

package gorgoniaengine

// blasName is the BLAS this build links.
const blasName = "pure-Go BLAS"

// blasClearUpper does nothing: the pure-Go BLAS leaves no AVX state (see
// blas_openblas.go).
func blasClearUpper() {}
