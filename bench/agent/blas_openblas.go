//go:build openblas

package main

func blas() string { return "OpenBLAS" }
