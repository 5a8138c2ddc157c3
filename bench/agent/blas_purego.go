//go:build !openblas

package main

func blas() string { return "pure-Go BLAS" }
