package cudaengine

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// hostShim lets a host C++ compiler parse the kernels: CUDA's qualifiers and built-in
// variables become plain C++, so a typo or a type error in kernelSource fails here, on
// any machine, instead of in NVRTC at start-up on a GPU.
const hostShim = `#include <math.h>
struct edgeloop_dim3 { unsigned x, y, z; };
static edgeloop_dim3 blockIdx, blockDim, threadIdx, gridDim;
#define __global__
#define __device__
#define __shared__ static
static inline void __syncthreads() {}
static inline double atomicAdd(double* a, double v) { double o = *a; *a += v; return o; }
`

// hostCXX is the host C++ compiler (make test installs g++ where there is none).
func hostCXX(t *testing.T) string {
	t.Helper()
	for _, c := range []string{"c++", "g++", "clang++"} {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	t.Skip("no host C++ compiler (c++, g++ or clang++) for the CUDA kernels; make test installs g++")
	return ""
}

// oddArch is a small classifier with odd sizes (3 channels, a 5×5 convolution, a 3×3
// one without padding, a 14×10 input) for the parity checks.
func oddArch() nn.Arch {
	return nn.Arch{Name: "odd-sizes", Task: nn.Classify, InC: 3, InH: 14, InW: 10, Classes: 5,
		Layers: []nn.Layer{{Kind: nn.Conv, Out: 7, K: 5, Pad: 2}, {Kind: nn.ReLU}, {Kind: nn.MaxPool},
			{Kind: nn.Conv, Out: 6, K: 3}, {Kind: nn.ReLU}, {Kind: nn.Flatten}, {Kind: nn.Dense, Out: 5}}, HeadFrom: 5}
}

// TestKernelsCompile type-checks the CUDA C source with the host C++ compiler.
func TestKernelsCompile(t *testing.T) {
	cxx := hostCXX(t)
	src := filepath.Join(t.TempDir(), "kernels.cpp")
	if err := os.WriteFile(src, []byte(hostShim+kernelSource), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(cxx, "-fsyntax-only", "-Wall", "-Werror", "-Wno-unused-variable", "-x", "c++", src).CombinedOutput()
	if err != nil {
		t.Fatalf("the CUDA kernels do not compile as C++ (%v):\n%s", err, out)
	}
}
