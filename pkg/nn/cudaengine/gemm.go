package cudaengine

// colMajorCall is a column-major GEMM call (cuBLAS's convention): C = op(First)·op(Second)
// with First m×k and Second k×n after op, and leading dimensions as cuBLAS takes them.
type colMajorCall struct {
	transFirst, transSecond bool
	m, n, k                 int
	ldFirst, ldSecond, ldc  int
}

// colMajorGemm maps the row-major C (m×n) = op(A)·op(B), with A m×k and B k×n after op,
// onto cuBLAS: a row-major matrix is its transpose in column-major memory, so it
// computes Cᵀ (n×m) = op(B)ᵀ·op(A)ᵀ, B first, with no data moved.
func colMajorGemm(tA, tB bool, m, n, k int) colMajorCall {
	c := colMajorCall{transFirst: tB, transSecond: tA, m: n, n: m, k: k, ldFirst: n, ldSecond: k, ldc: n}
	if tB { // B is stored n×k row-major
		c.ldFirst = k
	}
	if tA { // A is stored k×m row-major
		c.ldSecond = m
	}
	return c
}
