package cudaengine

// buf is a device allocation of n 4-byte elements.
type buf struct {
	p uintptr
	n int
}

// device is what the engine needs of a GPU: memory, kernel launches by name, GEMMs
// and a thread to run them on. *Device implements it with CUDA; the tests implement it
// on the host to check the engine's wiring without a GPU.
type device interface {
	// Do runs f where the device's calls may be made, and waits for it.
	Do(f func() error) error
	String() string

	// The methods below run inside Do.
	alloc(n int) (buf, error)
	free(b buf)
	upload(b buf, host []float32) error
	uploadInts(b buf, host []int32) error
	download(host []float32, b buf) error
	zero(b buf) error
	// launch runs kernel name over n elements; launchGrid on blocks blocks of 256
	// threads. Arguments are bufs, ints, int64s or float32s.
	launch(name string, n int, args ...any) error
	launchGrid(name string, blocks int, args ...any) error
	// gemm computes C = alpha·op(A)·op(B) + beta·C for row-major operands.
	gemm(tA, tB bool, m, n, k int, alpha float32, a, b buf, beta float32, c buf) error
	// readLoss reads the double at the start of b.
	readLoss(b buf) (float64, error)
}
