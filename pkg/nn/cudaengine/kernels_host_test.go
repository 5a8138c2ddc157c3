package cudaengine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/enginetest"
)

// hostRun compiles the kernels with the host C++ compiler together with body (C++
// statements that declare arrays, launch kernels through LAUNCH and print results with
// OUT), runs the program and returns the printed arrays by name. LAUNCH emulates a grid
// of one-thread blocks, run one after another: every kernel here is written for any
// block and grid size, so this computes what the GPU computes, up to rounding order.
func hostRun(t *testing.T, body string) map[string][]float64 {
	t.Helper()
	cxx := hostCXX(t)
	prog := hostShim + kernelSource + `
#include <stdio.h>
#define LAUNCH(grid, call) do { gridDim.x = (grid); blockDim.x = 1; threadIdx.x = 0; \
	for (unsigned b_ = 0; b_ < gridDim.x; b_++) { blockIdx.x = b_; call; } } while (0)
template <typename T> static void OUT(const char* name, const T* v, long n) {
	printf("%s", name);
	for (long i = 0; i < n; i++) printf(" %.9g", (double)v[i]);
	printf("\n");
}
int main() {
` + body + `
	return 0;
}
`
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "k.cpp"), filepath.Join(dir, "k")
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cxx, "-O1", "-o", bin, "-x", "c++", src, "-lm").CombinedOutput(); err != nil {
		t.Fatalf("compiling the kernels for the host: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("running the kernels on the host: %v", err)
	}
	res := map[string][]float64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, s := range f[1:] {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("output %q: %v", line, err)
			}
			res[f[0]] = append(res[f[0]], v)
		}
	}
	return res
}

// cArray declares a C array with Go's values.
func cArray(typ, name string, v []float32) string {
	var b strings.Builder
	fmt.Fprintf(&b, "static %s %s[%d] = {", typ, name, max(len(v), 1))
	for i, x := range v {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(strconv.FormatFloat(float64(x), 'g', 9, 32))
	}
	b.WriteString("};\n")
	return b.String()
}

func randoms(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = r.Float32()*2 - 1
	}
	return v
}

func near(t *testing.T, what string, got []float64, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > tol*math.Max(1, math.Abs(want[i])) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

// TestConvKernelsOnHost: im2col against its definition, col2im as its adjoint
// (⟨im2col x, c⟩ = ⟨x, col2im c⟩), at strides 1 and 2, and the layout permutations as
// each other's inverse with the bias added.
func TestConvKernelsOnHost(t *testing.T) {
	for _, stride := range []int{1, 2} {
		t.Run(fmt.Sprintf("stride%d", stride), func(t *testing.T) { testConvKernels(t, stride) })
	}
}

func testConvKernels(t *testing.T, stride int) {
	const N, C, H, W, K, pad = 2, 3, 5, 4, 3, 1
	Ho, Wo := (H+2*pad-K)/stride+1, (W+2*pad-K)/stride+1
	rows, cols := C*K*K, N*Ho*Wo
	r := rand.New(rand.NewPCG(1, 2))
	x, c := randoms(r, N*C*H*W), randoms(r, rows*cols)
	const O = 2
	tm, bias := randoms(r, O*N*Ho*Wo), randoms(r, O)
	res := hostRun(t, cArray("float", "x", x)+cArray("float", "c", c)+cArray("float", "tm", tm)+cArray("float", "bias", bias)+fmt.Sprintf(`
	static float col[%[1]d], dx[%[2]d], nchw[%[3]d], back[%[3]d];
	LAUNCH(7, im2col(x, col, %[4]d, %[5]d, %[6]d, %[7]d, %[8]d, %[9]d, %[14]d, %[10]d, %[11]d));
	LAUNCH(5, col2im(c, dx, %[4]d, %[5]d, %[6]d, %[7]d, %[8]d, %[9]d, %[14]d, %[10]d, %[11]d));
	LAUNCH(3, bias_nchw(tm, bias, nchw, %[4]d, %[12]d, %[13]d));
	OUT("col", col, %[1]d); OUT("dx", dx, %[2]d); OUT("nchw", nchw, %[3]d);
	for (int i = 0; i < %[3]d; i++) nchw[i] -= bias[(i / %[13]d) %% %[12]d];
	LAUNCH(4, nchw_to_cnhw(nchw, back, %[4]d, %[12]d, %[13]d));
	OUT("back", back, %[3]d);
`, rows*cols, N*C*H*W, O*N*Ho*Wo, N, C, H, W, K, pad, Ho, Wo, O, Ho*Wo, stride))

	want := make([]float64, rows*cols)
	for ch := 0; ch < C; ch++ {
		for ki := 0; ki < K; ki++ {
			for kj := 0; kj < K; kj++ {
				for n := 0; n < N; n++ {
					for oy := 0; oy < Ho; oy++ {
						for ox := 0; ox < Wo; ox++ {
							y, xx := oy*stride+ki-pad, ox*stride+kj-pad
							v := 0.0
							if y >= 0 && y < H && xx >= 0 && xx < W {
								v = float64(x[((n*C+ch)*H+y)*W+xx])
							}
							want[((ch*K+ki)*K+kj)*cols+(n*Ho+oy)*Wo+ox] = v
						}
					}
				}
			}
		}
	}
	near(t, "im2col", res["col"], want, 1e-6)

	var lhs, rhs float64
	for i := range want {
		lhs += want[i] * float64(c[i])
	}
	for i := range x {
		rhs += float64(x[i]) * res["dx"][i]
	}
	if math.Abs(lhs-rhs) > 1e-4*math.Max(1, math.Abs(lhs)) {
		t.Fatalf("col2im is not im2col's adjoint: %v vs %v", lhs, rhs)
	}

	wantNCHW := make([]float64, len(tm))
	for n := 0; n < N; n++ {
		for o := 0; o < O; o++ {
			for p := 0; p < Ho*Wo; p++ {
				wantNCHW[(n*O+o)*Ho*Wo+p] = float64(tm[o*N*Ho*Wo+n*Ho*Wo+p] + bias[o])
			}
		}
	}
	near(t, "bias_nchw", res["nchw"], wantNCHW, 1e-6)
	tm64 := make([]float64, len(tm))
	for i, v := range tm {
		tm64[i] = float64(v)
	}
	near(t, "nchw_to_cnhw", res["back"], tm64, 1e-5)
}

// TestPoolReluSumsOnHost: max-pool forward and backward, ReLU, row and column sums and
// the dense bias against direct Go loops.
func TestPoolReluSumsOnHost(t *testing.T) {
	const NC, H, W = 3, 5, 6
	Ho, Wo := H/2, W/2
	r := rand.New(rand.NewPCG(3, 4))
	x, dy := randoms(r, NC*H*W), randoms(r, NC*Ho*Wo)
	const rows, cols = 3, 300
	m := randoms(r, rows*cols)
	// Exact zeros: ReLU passes the gradient at +0, as the CPU engine does (the GPU once
	// did not, and a bias gradient differed by 13 % on an H200).
	x[1], x[7] = 0, 0
	res := hostRun(t, cArray("float", "x", x)+cArray("float", "dy", dy)+cArray("float", "m", m)+fmt.Sprintf(`
	static float y[%[1]d], dx[%[2]d], rl[%[2]d], rb[%[2]d], rs[%[4]d], cs[%[5]d], mb[%[6]d];
	static int idx[%[1]d];
	LAUNCH(4, maxpool_fwd(x, y, idx, %[7]d, %[8]d, %[9]d));
	LAUNCH(2, maxpool_bwd(dy, idx, dx, %[1]d));
	LAUNCH(3, relu_fwd(x, rl, %[2]d));
	LAUNCH(3, relu_bwd(rl, m, rb, %[2]d));
	LAUNCH(%[4]d, row_sum(m, rs, %[4]d, %[5]d));
	LAUNCH(5, col_sum(m, cs, %[4]d, %[5]d));
	for (int i = 0; i < %[6]d; i++) mb[i] = m[i];
	LAUNCH(2, add_bias_rows(mb, cs, %[4]d, %[5]d));
	OUT("y", y, %[1]d); OUT("dx", dx, %[2]d); OUT("rl", rl, %[2]d); OUT("rb", rb, %[2]d);
	OUT("rs", rs, %[4]d); OUT("cs", cs, %[5]d); OUT("mb", mb, %[6]d);
`, NC*Ho*Wo, NC*H*W, 0, rows, cols, rows*cols, NC, H, W))

	wantY, wantDx := make([]float64, NC*Ho*Wo), make([]float64, NC*H*W)
	for c := 0; c < NC; c++ {
		for oy := 0; oy < Ho; oy++ {
			for ox := 0; ox < Wo; ox++ {
				bi := (c*H+2*oy)*W + 2*ox
				for _, at := range []int{bi + 1, bi + W, bi + W + 1} {
					if x[at] > x[bi] {
						bi = at
					}
				}
				o := (c*Ho+oy)*Wo + ox
				wantY[o], wantDx[bi] = float64(x[bi]), float64(dy[o])
			}
		}
	}
	near(t, "maxpool_fwd", res["y"], wantY, 1e-7)
	near(t, "maxpool_bwd", res["dx"], wantDx, 1e-7)
	wantRl, wantRb := make([]float64, len(x)), make([]float64, len(x))
	for i, v := range x {
		if v >= 0 {
			wantRl[i], wantRb[i] = float64(v), float64(m[i])
		}
	}
	near(t, "relu_fwd", res["rl"], wantRl, 1e-7)
	near(t, "relu_bwd", res["rb"], wantRb, 1e-7)
	wantRs, wantCs, wantMb := make([]float64, rows), make([]float64, cols), make([]float64, rows*cols)
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			wantRs[i] += float64(m[i*cols+j])
			wantCs[j] += float64(m[i*cols+j])
		}
	}
	for i := range wantMb {
		wantMb[i] = float64(m[i]) + wantCs[i%cols]
	}
	near(t, "row_sum", res["rs"], wantRs, 1e-5)
	near(t, "col_sum", res["cs"], wantCs, 1e-5)
	near(t, "add_bias_rows", res["mb"], wantMb, 1e-5)
}

// TestLossesAndAdamOnHost: softmax cross-entropy (padded rows get nothing), the
// detection loss of nn.DetTargets, and one Adam step against nn.Adam.
func TestLossesAndAdamOnHost(t *testing.T) {
	const N, Nb, K = 3, 4, 5
	r := rand.New(rand.NewPCG(5, 6))
	z := randoms(r, Nb*K)
	for i := range z {
		z[i] *= 4
	}
	const n = 50
	dz := randoms(r, n)
	wt, tt, mt, bt := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for i := 0; i < n; i++ {
		wt[i], tt[i], mt[i], bt[i] = float32(r.IntN(2)), float32(r.IntN(2)), float32(r.IntN(2)), r.Float32()
	}
	w, g, g2 := randoms(r, 20), randoms(r, 20), randoms(r, 20)
	cfg := nn.AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	ad := nn.NewAdam(cfg, &nn.Params{})
	ad.Tick()
	step1, rbc1 := ad.Factors()
	ad.Tick()
	step2, rbc2 := ad.Factors()
	res := hostRun(t, cArray("float", "z", z)+cArray("float", "dzin", dz)+cArray("float", "W", wt)+cArray("float", "T", tt)+
		cArray("float", "M", mt)+cArray("float", "B", bt)+cArray("float", "w", w)+cArray("float", "g", g)+cArray("float", "g2", g2)+
		fmt.Sprintf(`
	static int labels[4] = {1, 4, 0, 0};
	static float d[%[1]d], ddet[%[2]d];
	static double loss[2] = {0, 0}, dloss[2] = {0, 0};
	static float m[20], v[20];
	LAUNCH(2, softmax_xent(z, labels, d, loss, %[3]d, %[4]d, %[5]d, 1.0f / %[3]d));
	LAUNCH(3, detect_loss(dzin, W, T, M, B, ddet, dloss, %[2]d, 0.5f, 5.0f));
	LAUNCH(2, adam(w, g, m, v, 20, 0.9f, 0.999f, %.9[6]gf, %.9[7]gf, 1e-8f));
	LAUNCH(3, adam(w, g2, m, v, 20, 0.9f, 0.999f, %.9[8]gf, %.9[9]gf, 1e-8f));
	OUT("loss", loss, 1); OUT("d", d, %[1]d); OUT("dloss", dloss, 1); OUT("ddet", ddet, %[2]d);
	OUT("w", w, 20);
`, Nb*K, n, N, Nb, K, step1, rbc1, step2, rbc2))

	// Softmax cross-entropy, mean over the N real rows.
	var loss float64
	wantD := make([]float64, Nb*K)
	for row, y := range []int{1, 4, 0} {
		mx := math.Inf(-1)
		for k := 0; k < K; k++ {
			mx = math.Max(mx, float64(z[row*K+k]))
		}
		s := 0.0
		for k := 0; k < K; k++ {
			s += math.Exp(float64(z[row*K+k]) - mx)
		}
		loss += (mx + math.Log(s) - float64(z[row*K+y])) / N
		for k := 0; k < K; k++ {
			p := math.Exp(float64(z[row*K+k])-mx) / s
			if k == y {
				p--
			}
			wantD[row*K+k] = p / N
		}
	}
	near(t, "softmax_xent loss", res["loss"], []float64{loss}, 1e-6)
	near(t, "softmax_xent dz", res["d"], wantD, 1e-6)

	// Detection: scale · Σ W⊙(softplus(z) − T⊙z) + λ·M⊙(σ(z) − B)².
	var dl float64
	wantDdet := make([]float64, n)
	for i := 0; i < n; i++ {
		x := float64(dz[i])
		sp := math.Log1p(math.Exp(x))
		sg := 1 / (1 + math.Exp(-x))
		d := sg - float64(bt[i])
		dl += 0.5 * (float64(wt[i])*(sp-float64(tt[i])*x) + 5*float64(mt[i])*d*d)
		wantDdet[i] = 0.5 * (float64(wt[i])*(sg-float64(tt[i])) + 5*float64(mt[i])*2*d*sg*(1-sg))
	}
	near(t, "detect_loss", res["dloss"], []float64{dl}, 1e-5)
	near(t, "detect_loss dz", res["ddet"], wantDdet, 1e-5)

	// Adam: two steps, as nn.Adam takes them.
	p := &nn.Params{Values: [][]float32{append([]float32(nil), w...)}}
	ref := nn.NewAdam(cfg, p)
	ref.Step(p, [][]float32{g}, []bool{true})
	ref.Step(p, [][]float32{g2}, []bool{true})
	want := make([]float64, 20)
	for i, x := range p.Values[0] {
		want[i] = float64(x)
	}
	near(t, "adam weights", res["w"], want, 1e-5)
}

// TestMultiScaleLossOnHost: the msdet_loss kernel's CUDA C, run on the host level by
// level as the engine launches it, against nn.MultiScaleLoss (the definition): loss
// and every gradient, on real targets of a two-level detector with random outputs.
func TestMultiScaleLossOnHost(t *testing.T) {
	a := enginetest.TinyMultiScale()
	b := enginetest.Batch(a, 2, 3)
	const N = 3 // one padded image: zero targets, zero loss and gradient
	per := a.OutputSize()
	r := rand.New(rand.NewPCG(7, 8))
	z := make([]float32, N*per)
	for i := range z {
		z[i] = float32(r.NormFloat64() * 2)
	}
	pad := func(v []float32) []float32 { return append(append([]float32(nil), v...), make([]float32, per)...) }
	tg := &nn.DetTargets{W: pad(b.Det.W), T: pad(b.Det.T), M: pad(b.Det.M), B: pad(b.Det.B)}
	want := make([]float32, N*per)
	loss, err := nn.MultiScaleLoss(a, z, tg, N, want)
	if err != nil {
		t.Fatal(err)
	}
	const scale = 0.5
	var launches strings.Builder
	for _, m := range a.LevelMaps() {
		fmt.Fprintf(&launches, "\tLAUNCH(3, msdet_loss(z, W, T, M, B, dz, loss, %d, %d, %d, %d, %d, %#gf, %#gf));\n",
			N, per, m.Offset, m.H*m.W, a.Classes, scale, float64(nn.BoxLogMax))
	}
	res := hostRun(t, cArray("float", "z", z)+cArray("float", "W", tg.W)+cArray("float", "T", tg.T)+cArray("float", "M", tg.M)+
		cArray("float", "B", tg.B)+fmt.Sprintf("\tstatic float dz[%d];\n\tstatic double loss[2] = {0, 0};\n", N*per)+
		launches.String()+fmt.Sprintf("\tOUT(\"loss\", loss, 1); OUT(\"dz\", dz, %d);\n", N*per))
	wantDz := make([]float64, len(want))
	boxes := 0
	for i, v := range want {
		wantDz[i] = scale * float64(v)
		if tg.M[i] != 0 {
			boxes++
		}
	}
	if boxes == 0 {
		t.Fatal("no assigned points: the box term is not checked")
	}
	near(t, "msdet_loss", res["loss"], []float64{scale * loss}, 1e-5)
	near(t, "msdet_loss dz", res["dz"], wantDz, 1e-4)
}
