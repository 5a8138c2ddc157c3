package cudaengine

import (
	"math"
	"math/rand/v2"
	"testing"
)

// sgemmColMajor is the BLAS reference semantics of Sgemm on column-major memory:
// C = alpha·op(A)·op(B) + beta·C, element (i, j) of an ld-strided matrix at i + j·ld.
func sgemmColMajor(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	at := func(i, p int) float32 { // op(A)[i][p]
		if tA {
			return a[p+i*lda]
		}
		return a[i+p*lda]
	}
	bt := func(p, j int) float32 {
		if tB {
			return b[j+p*ldb]
		}
		return b[p+j*ldb]
	}
	for j := 0; j < n; j++ {
		for i := 0; i < m; i++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(at(i, p)) * float64(bt(p, j))
			}
			c[i+j*ldc] = alpha*float32(s) + beta*c[i+j*ldc]
		}
	}
}

// TestColMajorGemmMapping: the call gemm makes, run with column-major BLAS semantics,
// gives the row-major product for every combination of transposes the engine uses.
func TestColMajorGemmMapping(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const m, n, k = 3, 5, 4
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			a, b, c := randoms(r, m*k), randoms(r, k*n), randoms(r, m*n)
			// Row-major reference: A is m×k (or k×m when tA), B k×n (or n×k when tB).
			want := make([]float64, m*n)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					var s float64
					for p := 0; p < k; p++ {
						av, bv := a[i*k+p], b[p*n+j]
						if tA {
							av = a[p*m+i]
						}
						if tB {
							bv = b[j*k+p]
						}
						s += float64(av) * float64(bv)
					}
					want[i*n+j] = 2*s + 0.5*float64(c[i*n+j])
				}
			}
			g := colMajorGemm(tA, tB, m, n, k)
			sgemmColMajor(g.transFirst, g.transSecond, g.m, g.n, g.k, 2, b, g.ldFirst, a, g.ldSecond, 0.5, c, g.ldc)
			for i := range want {
				if math.Abs(float64(c[i])-want[i]) > 1e-5 {
					t.Fatalf("tA=%v tB=%v: C[%d] = %v, want %v", tA, tB, i, c[i], want[i])
				}
			}
		}
	}
}
