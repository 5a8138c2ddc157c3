//go:build openblas && cgo

package gorgoniaengine

import (
	"gonum.org/v1/netlib/blas/netlib"
	G "gorgonia.org/gorgonia"
)

// #cgo LDFLAGS: -lopenblas
import "C"

const blasName = "OpenBLAS"

func init() {
	// Gorgonia's BLAS is process-wide; choosing it at start-up is the only way in.
	G.Use(netlib.Implementation{})
}
