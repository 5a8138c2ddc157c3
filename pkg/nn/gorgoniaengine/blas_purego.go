//go:build !openblas

package gorgoniaengine

// Name says what computes on this build: the CPU through Gorgonia and its BLAS.
const Name = "cpu (gorgonia, pure-Go BLAS)"
