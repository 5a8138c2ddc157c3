//go:build openblas && cgo

package gorgoniaengine

/*
#cgo LDFLAGS: -lopenblas
void openblas_set_num_threads(int);

#if defined(__x86_64__)
#include <immintrin.h>
// VZEROUPPER, on CPUs with AVX only.
__attribute__((target("avx"))) static void edgeloop_vzeroupper_avx(void) { _mm256_zeroupper(); }
static void edgeloop_vzeroupper(int avx) { if (avx) edgeloop_vzeroupper_avx(); }
static int edgeloop_has_avx(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx"); }
#else
static void edgeloop_vzeroupper(int avx) { (void)avx; }
static int edgeloop_has_avx(void) { return 0; }
#endif
*/
import "C"

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/netlib/blas/netlib"
	G "gorgonia.org/gorgonia"
)

// blasName is the BLAS this build links.
const blasName = "OpenBLAS"

func init() {
	// Gorgonia's BLAS is process-wide; choosing it at start-up is the only way in.
	G.Use(cleanBLAS{})
	// The conv op already spreads images over the cores; OpenBLAS threads on top of that
	// only contend (measured: 1,244 vs 1,014 classifier images/s on 2 cores).
	C.openblas_set_num_threads(1)
}

// blasClearUpper is VZEROUPPER where the CPU has AVX (one cgo call), for builds
// without GOEXPERIMENT=simd, whose clearUpper has no instruction of its own.
func blasClearUpper() { C.edgeloop_vzeroupper(hasAVXC) }

// hasAVXC is fixed at start-up: whether this CPU has AVX, hence VZEROUPPER.
var hasAVXC = C.edgeloop_has_avx()

// cleanBLAS is OpenBLAS with the vector registers' upper halves cleared after each
// SGEMM (vzeroupper): OpenBLAS's AVX-512 kernels return with them dirty, which made
// the Go code after them, the detector loss's math.Exp first, several times slower.
// Go's scalar float code is SSE, and each SSE instruction after dirty 256- or 512-bit
// state waits on the upper halves.
type cleanBLAS struct{ netlib.Implementation }

// Sgemm is netlib's SGEMM followed by clearUpper (the intrinsic with GOEXPERIMENT=simd,
// blasClearUpper without).
func (c cleanBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, out []float32, ldc int) {
	c.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, out, ldc)
	clearUpper()
}
