//go:build !edgeloop_cuda

package cudaengine

import "testing"

// TestParityWithCPU stands in for the GPU parity tests in builds without the tag.
func TestParityWithCPU(t *testing.T) {
	t.Skip("CUDA parity tests need a build with -tags edgeloop_cuda and an NVIDIA GPU: run bench/gpu/run.sh on a GPU machine (docs/cuda.md)")
}
