//go:build !openblas

package gorgoniaengine

const blasName = "pure-Go BLAS"
