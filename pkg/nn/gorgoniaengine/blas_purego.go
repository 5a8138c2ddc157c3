//go:build !openblas

package gorgoniaengine

// blasName is the BLAS this build links.
const blasName = "pure-Go BLAS"
