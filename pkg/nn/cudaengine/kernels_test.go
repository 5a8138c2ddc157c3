package cudaengine

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// hostShim lets a host C++ compiler parse the kernels: CUDA's qualifiers and built-in
// variables become plain C++, so a typo or a type error in kernelSource fails here, on
// any machine, instead of in NVRTC at start-up on a GPU.
const hostShim = `#include <math.h>
struct edgeloop_dim3 { unsigned x, y, z; };
static edgeloop_dim3 blockIdx, blockDim, threadIdx, gridDim;
#define __global__
#define __shared__ static
static inline void __syncthreads() {}
static inline double atomicAdd(double* a, double v) { double o = *a; *a += v; return o; }
`

// TestKernelsCompile type-checks the CUDA C source with the host C++ compiler.
func TestKernelsCompile(t *testing.T) {
	var cxx string
	for _, c := range []string{"c++", "g++", "clang++"} {
		if p, err := exec.LookPath(c); err == nil {
			cxx = p
			break
		}
	}
	if cxx == "" {
		t.Skip("no host C++ compiler (c++, g++ or clang++) to type-check the CUDA kernels")
	}
	src := filepath.Join(t.TempDir(), "kernels.cpp")
	if err := os.WriteFile(src, []byte(hostShim+kernelSource), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(cxx, "-fsyntax-only", "-Wall", "-Werror", "-Wno-unused-variable", "-x", "c++", src).CombinedOutput()
	if err != nil {
		t.Fatalf("the CUDA kernels do not compile as C++ (%v):\n%s", err, out)
	}
}
