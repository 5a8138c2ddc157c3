package cudaengine

import (
	"fmt"
	"math"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/enginetest"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
)

// hostDevice runs the engine on the CPU: memory is Go slices (ints and the double loss
// kept as their bit patterns, as on the device), GEMMs go through the same column-major
// mapping as cuBLAS calls (colMajorGemm, sgemmColMajor), and each kernel is a
// sequential Go transcription of its CUDA C, which the *OnHost tests check against the
// CUDA C itself. With it the engine's wiring — shapes, buffers, the order of the
// backward pass — is checked against the Gorgonia engine without a GPU.
type hostDevice struct {
	mem  map[uintptr][]float32
	next uintptr
}

var _ device = (*hostDevice)(nil)

func newHostDevice() *hostDevice { return &hostDevice{mem: map[uintptr][]float32{}} }

func (h *hostDevice) Do(f func() error) error { return f() }
func (h *hostDevice) String() string          { return "host emulation" }

func (h *hostDevice) alloc(n int) (buf, error) {
	h.next++
	h.mem[h.next] = make([]float32, max(n, 1))
	return buf{p: h.next, n: n}, nil
}

func (h *hostDevice) free(b buf) { delete(h.mem, b.p) }

func (h *hostDevice) upload(b buf, host []float32) error {
	copy(h.mem[b.p], host)
	return nil
}

func (h *hostDevice) uploadInts(b buf, host []int32) error {
	for i, v := range host {
		h.mem[b.p][i] = math.Float32frombits(uint32(v))
	}
	return nil
}

func (h *hostDevice) download(host []float32, b buf) error {
	copy(host, h.mem[b.p][:len(host)])
	return nil
}

func (h *hostDevice) zero(b buf) error {
	clear(h.mem[b.p])
	return nil
}

func (h *hostDevice) readLoss(b buf) (float64, error) { return loadDouble(h.mem[b.p]), nil }

func loadDouble(w []float32) float64 {
	return math.Float64frombits(uint64(math.Float32bits(w[0])) | uint64(math.Float32bits(w[1]))<<32)
}

func addDouble(w []float32, v float64) {
	bits := math.Float64bits(loadDouble(w) + v)
	w[0], w[1] = math.Float32frombits(uint32(bits)), math.Float32frombits(uint32(bits>>32))
}

func (h *hostDevice) gemm(tA, tB bool, m, n, k int, alpha float32, a, b buf, beta float32, c buf) error {
	g := colMajorGemm(tA, tB, m, n, k)
	sgemmColMajor(g.transFirst, g.transSecond, g.m, g.n, g.k, alpha, h.mem[b.p], g.ldFirst, h.mem[a.p], g.ldSecond, beta, h.mem[c.p], g.ldc)
	return nil
}

func (h *hostDevice) launchGrid(name string, _ int, args ...any) error {
	return h.launch(name, 0, args...)
}

func (h *hostDevice) launch(name string, _ int, args ...any) error {
	f := func(i int) []float32 { return h.mem[args[i].(buf).p] }
	n := func(i int) int {
		switch v := args[i].(type) {
		case int:
			return v
		case int64:
			return int(v)
		}
		panic(fmt.Sprintf("%s: argument %d is %T", name, i, args[i]))
	}
	x := func(i int) float64 { return float64(args[i].(float32)) }
	idx := func(v float32) int { return int(int32(math.Float32bits(v))) }
	switch name {
	case "im2col", "col2im":
		in, out := f(0), f(1)
		N, C, H, W, K, pad, stride, Ho, Wo := n(2), n(3), n(4), n(5), n(6), n(7), n(8), n(9), n(10)
		cols := N * Ho * Wo
		if name == "col2im" {
			clear(out)
		}
		for r := 0; r < C*K*K; r++ {
			kj, ki, ch := r%K, (r/K)%K, r/(K*K)
			for c := 0; c < cols; c++ {
				ox, oy, nn := c%Wo, (c/Wo)%Ho, c/(Wo*Ho)
				y, xx := oy*stride+ki-pad, ox*stride+kj-pad
				if y < 0 || y >= H || xx < 0 || xx >= W {
					if name == "im2col" {
						out[r*cols+c] = 0
					}
					continue
				}
				if name == "im2col" {
					out[r*cols+c] = in[((nn*C+ch)*H+y)*W+xx]
				} else {
					out[((nn*C+ch)*H+y)*W+xx] += in[r*cols+c]
				}
			}
		}
	case "bias_nchw", "nchw_to_cnhw":
		at := 3 // bias_nchw(t, b, out, N, O, HW); nchw_to_cnhw(d, t, N, O, HW)
		if name == "nchw_to_cnhw" {
			at = 2
		}
		N, O, HW := n(at), n(at+1), n(at+2)
		for i := 0; i < N*O*HW; i++ {
			p, o, nn := i%HW, (i/HW)%O, i/(HW*O)
			if name == "bias_nchw" {
				f(2)[i] = f(0)[o*N*HW+nn*HW+p] + f(1)[o]
			} else {
				f(1)[o*N*HW+nn*HW+p] = f(0)[i]
			}
		}
	case "row_sum":
		rows, cols := n(2), n(3)
		for r := 0; r < rows; r++ {
			var s float64
			for c := 0; c < cols; c++ {
				s += float64(f(0)[r*cols+c])
			}
			f(1)[r] = float32(s)
		}
	case "col_sum":
		rows, cols := n(2), n(3)
		for c := 0; c < cols; c++ {
			var s float64
			for r := 0; r < rows; r++ {
				s += float64(f(0)[r*cols+c])
			}
			f(1)[c] = float32(s)
		}
	case "add_bias_rows":
		rows, cols := n(2), n(3)
		for i := 0; i < rows*cols; i++ {
			f(0)[i] += f(1)[i%cols]
		}
	case "relu_fwd": // negative → −0, as the kernel
		for i := 0; i < n(2); i++ {
			v := f(0)[i]
			if v < 0 {
				v *= 0
			}
			f(1)[i] = v
		}
	case "relu_bwd": // through where the output's sign bit is clear, as the kernel
		for i := 0; i < n(3); i++ {
			f(2)[i] = 0
			if !math.Signbit(float64(f(0)[i])) {
				f(2)[i] = f(1)[i]
			}
		}
	case "maxpool_fwd":
		NC, H, W := n(3), n(4), n(5)
		Ho, Wo := H/2, W/2
		for i := 0; i < NC*Ho*Wo; i++ {
			ox, oy, nc := i%Wo, (i/Wo)%Ho, i/(Wo*Ho)
			base := (nc*H+2*oy)*W + 2*ox
			bi := base
			for _, at := range []int{base + 1, base + W, base + W + 1} {
				if f(0)[at] > f(0)[bi] {
					bi = at
				}
			}
			f(1)[i], f(2)[i] = f(0)[bi], math.Float32frombits(uint32(int32(bi)))
		}
	case "maxpool_bwd":
		for i := 0; i < n(3); i++ {
			f(2)[idx(f(1)[i])] = f(0)[i]
		}
	case "softmax_xent":
		z, dz, loss := f(0), f(2), f(3)
		N, Nb, K, scale := n(4), n(5), n(6), x(7)
		for r := 0; r < Nb; r++ {
			if r >= N {
				clear(dz[r*K : (r+1)*K])
				continue
			}
			m := float64(z[r*K])
			for k := 1; k < K; k++ {
				m = math.Max(m, float64(z[r*K+k]))
			}
			var s float64
			for k := 0; k < K; k++ {
				s += math.Exp(float64(z[r*K+k]) - m)
			}
			y := idx(f(1)[r])
			addDouble(loss, (m+math.Log(s)-float64(z[r*K+y]))*scale)
			for k := 0; k < K; k++ {
				t := 0.0
				if k == y {
					t = 1
				}
				dz[r*K+k] = float32((math.Exp(float64(z[r*K+k])-m)/s - t) * scale)
			}
		}
	case "detect_loss":
		z, wt, t, m, b, dz, loss := f(0), f(1), f(2), f(3), f(4), f(5), f(6)
		cnt, scale, lambda := n(7), x(8), x(9)
		var acc float64
		for i := 0; i < cnt; i++ {
			v := float64(z[i])
			sp := math.Max(v, 0) + math.Log1p(math.Exp(-math.Abs(v)))
			sg := 1 / (1 + math.Exp(-v))
			d := sg - float64(b[i])
			acc += float64(wt[i])*(sp-float64(t[i])*v) + lambda*float64(m[i])*d*d
			dz[i] = float32(scale * (float64(wt[i])*(sg-float64(t[i])) + lambda*float64(m[i])*2*d*sg*(1-sg)))
		}
		addDouble(loss, acc*scale)
	case "msdet_loss":
		z, loss := f(0), f(6)
		N, per, off, hw, C, scale := n(7), n(8), n(9), n(10), n(11), x(12)
		dz := f(5)
		var acc float64
		for q := 0; q < N*hw; q++ {
			o := (q/hw)*per + off + q%hw
			acc += nn.PointLoss(z, f(1), f(2), f(3), f(4), dz, o, hw, C)
			for c := 0; c < 5+C; c++ {
				dz[o+c*hw] *= float32(scale)
			}
		}
		addDouble(loss, acc*scale)
	case "adam":
		w, g, m, v := f(0), f(1), f(2), f(3)
		b1, b2, step, rbc2, eps := float32(x(5)), float32(x(6)), float32(x(7)), float32(x(8)), float32(x(9))
		for i := 0; i < n(4); i++ {
			m[i] = b1*m[i] + (1-b1)*g[i]
			v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
			w[i] -= step * m[i] / (float32(math.Sqrt(float64(v[i])))*rbc2 + eps)
		}
	default:
		return hostLayerKernel(name, f, n, x)
	}
	return nil
}

// TestEngineWiringOnHost: the CUDA engine's forward, loss, backward and Adam, run on
// the host device, match the Gorgonia engine for both product models, a net with odd
// sizes, a net using every graph layer, a small feature-pyramid detector and the
// smallest MobileNetV2 — everything but the CUDA calls themselves.
func TestEngineWiringOnHost(t *testing.T) {
	h := newHostDevice()
	host := func(cfg nn.EngineConfig) (nn.Engine, error) { return New(h, cfg) }
	for _, c := range []struct {
		arch nn.Arch
		bs   int
	}{{nn.ClassifierArch(10), 4}, {nn.DetectorArch(10), 3}, {oddArch(), 5}, {enginetest.AllLayers(), 4}, {graphDetector(), 6},
		{enginetest.TinyMultiScale(), 3}} {
		t.Run(c.arch.Name, func(t *testing.T) {
			r, err := enginetest.Compare(c.arch, gorgoniaengine.Factory, host, c.bs, 3, 42, enginetest.DefaultTolerance())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s, batch %d, Gorgonia vs the CUDA engine on the host:\n%s", c.arch.Name, c.bs, r)
			if len(r.Failed) > 0 {
				t.Errorf("outside tolerance: %v", r.Failed)
			}
		})
	}
	t.Run("all-layers, frozen batch norm", func(t *testing.T) {
		frozen := func(f enginetest.Factory) enginetest.Factory {
			return func(cfg nn.EngineConfig) (nn.Engine, error) { cfg.FreezeBN = true; return f(cfg) }
		}
		r, err := enginetest.Compare(enginetest.AllLayers(), frozen(gorgoniaengine.Factory), frozen(host), 3, 3, 7, enginetest.DefaultTolerance())
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Failed) > 0 {
			t.Errorf("outside tolerance: %v\n%s", r.Failed, r)
		}
	})
	// The whole smallest MobileNetV2 (151 layers): outputs, loss and every gradient, with
	// frozen batch norm and no Adam steps. In training mode its 52 batch norms subtract
	// batch means in the backward pass and the float32 rounding of two summation orders
	// grows to ~1e-2 (gradients whose true value is 0, such as β before another batch
	// norm, are pure rounding); and Adam's first steps are lr·g/|g|, so they compare the
	// signs of gradients ~1e-6 of the largest, which rounding flips. Training mode and
	// Adam are compared on the small nets above; the full depth here.
	t.Run("mobilenetv2-n, frozen batch norm", func(t *testing.T) {
		frozen := func(f enginetest.Factory) enginetest.Factory {
			return func(cfg nn.EngineConfig) (nn.Engine, error) { cfg.FreezeBN = true; return f(cfg) }
		}
		r, err := enginetest.Compare(mobileNet(t), frozen(gorgoniaengine.Factory), frozen(host), 5, 0, 42, enginetest.DefaultTolerance())
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Failed) > 0 {
			t.Errorf("outside tolerance: %v\n%s", r.Failed, r)
		}
	})
	// The multi-scale detector of the smallest size (237 layers: trunk, pyramid, heads,
	// the loss at three levels), frozen batch norm and no Adam steps, as above.
	t.Run("mobilenetv2-n-det, frozen batch norm", func(t *testing.T) {
		frozen := func(f enginetest.Factory) enginetest.Factory {
			return func(cfg nn.EngineConfig) (nn.Engine, error) { cfg.FreezeBN = true; return f(cfg) }
		}
		r, err := enginetest.Compare(detectorFamily(t), frozen(gorgoniaengine.Factory), frozen(host), 3, 0, 42, enginetest.DefaultTolerance())
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Failed) > 0 {
			t.Errorf("outside tolerance: %v\n%s", r.Failed, r)
		}
	})
	if len(h.mem) != 0 {
		t.Errorf("%d buffers still allocated after every engine closed", len(h.mem))
	}
}

// graphDetector is a tiny two-scale detector: a strided backbone with a residual block,
// its coarse map upsampled and concatenated with the fine one (a feature pyramid's
// top-down path), SiLU and batch norm, a grid head.
func graphDetector() nn.Arch {
	return nn.Arch{Name: "pyramid-det", Task: nn.Detect, InC: 3, InH: 16, InW: 16, Classes: 2, HeadFrom: 12, Layers: []nn.Layer{
		{Kind: nn.Conv, Out: 8, K: 3, Pad: 1, Stride: 2, NoBias: true}, // 0: 8×8×8
		{Kind: nn.BatchNorm}, // 1
		{Kind: nn.SiLU},      // 2
		{Kind: nn.Conv, Out: 8, K: 3, Pad: 1, Groups: 8}, // 3: depthwise
		{Kind: nn.Add, From: []int{3, 2}},                // 4
		{Kind: nn.MaxPool, K: 3, Stride: 2, Pad: 1},      // 5: 8×4×4
		{Kind: nn.Conv, Out: 12, K: 3, Pad: 1},           // 6
		{Kind: nn.ReLU6},                                 // 7
		{Kind: nn.Upsample},                              // 8: 12×8×8
		{Kind: nn.Concat, From: []int{8, 4}},             // 9: 20×8×8
		{Kind: nn.Conv, Out: 8, K: 1, Groups: 4},         // 10
		{Kind: nn.ReLU},                                  // 11
		{Kind: nn.Conv, Out: nn.DetectOut(2), K: 1},      // 12
	}}
}

// mobileNet is the family's smallest size on 32×32 RGB images: all 151 layers, small
// enough for the host device.
func mobileNet(t testing.TB) nn.Arch {
	a, err := nn.Family(nn.MobileNetV2, "n", 64, 64, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// detectorFamily is the smallest multi-scale detector at 64×96 RGB with three classes.
func detectorFamily(t testing.TB) nn.Arch {
	a, err := nn.DetectorFamily(nn.MobileNetV2, "n", 64, 96, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
