package gorgoniaengine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/enginetest"
)

// cls is a 3-class classifier of 2×6×6 images made of layers then flatten and dense.
func cls(name string, layers ...nn.Layer) nn.Arch {
	if k := layers[len(layers)-1].Kind; k != nn.GlobalAvgPool {
		layers = append(layers, nn.Layer{Kind: nn.Flatten})
	}
	layers = append(layers, nn.Layer{Kind: nn.Dense, Out: 3})
	return nn.Arch{Name: name, Task: nn.Classify, InC: 2, InH: 6, InW: 6, Classes: 3, Layers: layers, HeadFrom: len(layers) - 1}
}

// layerNets has one small net per new layer; each puts a conv before the layer under
// test, so that the conv's weight gradient checks the layer's input gradient.
func layerNets() []nn.Arch {
	conv := func(out, k, pad int) nn.Layer { return nn.Layer{Kind: nn.Conv, Out: out, K: k, Pad: pad} }
	silu := nn.Layer{Kind: nn.SiLU}
	return []nn.Arch{
		cls("conv-stride2", conv(3, 3, 1), silu, nn.Layer{Kind: nn.Conv, Out: 4, K: 3, Pad: 1, Stride: 2}, silu),
		cls("conv-stride2-k1", conv(3, 3, 1), silu, nn.Layer{Kind: nn.Conv, Out: 4, K: 1, Stride: 2}, silu),
		cls("conv-groups", conv(4, 1, 0), silu, nn.Layer{Kind: nn.Conv, Out: 6, K: 3, Pad: 1, Groups: 2}, silu),
		cls("conv-depthwise", conv(4, 1, 0), silu, nn.Layer{Kind: nn.Conv, Out: 4, K: 3, Pad: 1, Groups: 4, Stride: 2, NoBias: true}, silu),
		cls("conv-depthwise-s1", conv(4, 1, 0), silu, nn.Layer{Kind: nn.Conv, Out: 4, K: 3, Pad: 1, Groups: 4, NoBias: true}, nn.Layer{Kind: nn.ReLU6}),
		cls("batchnorm", conv(4, 3, 1), nn.Layer{Kind: nn.BatchNorm}, silu),
		cls("relu6", conv(4, 3, 1), nn.Layer{Kind: nn.ReLU6}),
		cls("silu", conv(4, 3, 1), silu),
		cls("add", conv(4, 3, 1), silu, conv(4, 3, 1), nn.Layer{Kind: nn.Add, From: []int{2, 1}}),
		cls("concat", conv(3, 3, 1), silu, conv(2, 1, 0), nn.Layer{Kind: nn.Concat, From: []int{2, 1, 0}}),
		cls("gap", conv(4, 3, 1), silu, nn.Layer{Kind: nn.GlobalAvgPool}),
		cls("upsample", conv(3, 3, 1), silu, nn.Layer{Kind: nn.Upsample}, nn.Layer{Kind: nn.Conv, Out: 2, K: 3, Pad: 1, Stride: 3}),
		cls("maxpool3s2", conv(4, 3, 1), nn.Layer{Kind: nn.MaxPool, K: 3, Stride: 2, Pad: 1}),
		enginetest.AllLayers(),
	}
}

// checkGradients compares every element of every trainable tensor's gradient with a
// central difference of the training loss (the loss Gradients reports: batch norm
// with batch statistics, or running ones when frozen), on a partial batch.
func checkGradients(t *testing.T, cfg nn.EngineConfig, h float64) {
	t.Helper()
	a := cfg.Arch
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	b := enginetest.Batch(a, cfg.BatchSize-1, 11)
	if len(a.Levels) > 0 {
		// The multi-scale loss holds its IoU-aware class targets constant: differences
		// of the loss are of literal targets (nn.QualityTargets), here the quality of
		// the eval-mode outputs.
		z, err := e.Forward(b.X, b.N)
		if err != nil {
			t.Fatal(err)
		}
		b.Det = nn.QualityTargets(a, z, b.Det, b.N)
	}
	_, grads, err := e.Gradients(b)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Params
	lossAt := func(q *nn.Params) float64 {
		if err := e.WriteParams(q); err != nil {
			t.Fatal(err)
		}
		l, _, err := e.Gradients(b)
		if err != nil {
			t.Fatal(err)
		}
		return float64(l)
	}
	r := rand.New(rand.NewPCG(5, 5))
	for ti, spec := range p.Specs {
		if spec.Buffer {
			for _, g := range grads[ti] {
				if g != 0 {
					t.Fatalf("buffer %s has gradient %v", spec.Name, g)
				}
			}
			continue
		}
		var scale float64
		for _, g := range grads[ti] {
			scale = math.Max(scale, math.Abs(float64(g)))
		}
		if scale == 0 {
			t.Errorf("%s: gradient is all zero", spec.Name)
			continue
		}
		idx := r.Perm(len(p.Values[ti]))
		if len(idx) > 24 {
			idx = idx[:24]
		}
		for _, j := range idx {
			q := p.Clone()
			q.Values[ti][j] += float32(h)
			lp := lossAt(q)
			q.Values[ti][j] -= float32(2 * h)
			lm := lossAt(q)
			num := (lp - lm) / (2 * h)
			got := float64(grads[ti][j])
			if math.Abs(num-got) > 2e-2*scale+3e-4 {
				t.Errorf("%s[%d]: analytic %.6f, numeric %.6f (tensor scale %.4f)", spec.Name, j, got, num, scale)
			}
		}
	}
}

// TestLayerGradientsFiniteDifferences: a finite-difference check of every new layer,
// each in its own small net, and of a net using all of them.
func TestLayerGradientsFiniteDifferences(t *testing.T) {
	for _, a := range layerNets() {
		t.Run(a.Name, func(t *testing.T) {
			p, err := nn.InitParams(a, 3)
			if err != nil {
				t.Fatal(err)
			}
			checkGradients(t, nn.EngineConfig{Arch: a, Params: p, BatchSize: 4}, 1e-3)
		})
	}
}

// TestFrozenBatchNormGradients: with FreezeBN, training uses the running statistics,
// and the gradients are those of that loss.
func TestFrozenBatchNormGradients(t *testing.T) {
	a := enginetest.AllLayers()
	p, _ := nn.InitParams(a, 4)
	randomRunningStats(p, 1)
	checkGradients(t, nn.EngineConfig{Arch: a, Params: p, BatchSize: 3, FreezeBN: true}, 1e-3)
}

func randomRunningStats(p *nn.Params, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 9))
	for i, s := range p.Specs {
		if s.Buffer {
			for j := range p.Values[i] {
				if s.Ones {
					p.Values[i][j] = 0.5 + r.Float32()
				} else {
					p.Values[i][j] = r.Float32() - 0.5
				}
			}
		}
	}
}

// bnNet normalises the input itself: input → bn → gap, so the statistics can be
// computed from the batch directly.
func bnNet() nn.Arch {
	return nn.Arch{Name: "bn-input", Task: nn.Classify, InC: 3, InH: 4, InW: 5, Classes: 3, HeadFrom: 0,
		Layers: []nn.Layer{{Kind: nn.BatchNorm, Eps: 1e-3}, {Kind: nn.GlobalAvgPool}}}
}

// TestBatchNormStatistics: Step moves the running statistics by the momentum towards
// the real images' mean and unbiased variance (padding excluded); Gradients and Loss
// leave them; inference and Loss use them; FreezeBN keeps them.
func TestBatchNormStatistics(t *testing.T) {
	a := bnNet()
	p, _ := nn.InitParams(a, 1)
	randomRunningStats(p, 2)
	const hw, c = 20, 3
	e, err := New(nn.EngineConfig{Arch: a, Params: p, BatchSize: 5, BNMomentum: 0.25, Adam: nn.AdamConfig{LR: 1e-9, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	b := enginetest.Batch(a, 3, 4) // 3 real images of 5
	// Inference: γ(x−μ)/√(σ²+ε)+β averaged over the image is γ(mean(x)−μ)/√(σ²+ε)+β.
	out, err := e.Forward(b.X, b.N)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		for ch := 0; ch < c; ch++ {
			var m float64
			for _, v := range b.X[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				m += float64(v) / hw
			}
			want := (m - float64(p.Values[2][ch])) / math.Sqrt(float64(p.Values[3][ch])+1e-3)
			if got := float64(out[i*c+ch]); math.Abs(got-want) > 1e-5 {
				t.Fatalf("inference output [%d,%d] = %v, want %v", i, ch, got, want)
			}
		}
	}
	q := p.Clone()
	if _, _, err := e.Gradients(b); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Loss(b); err != nil {
		t.Fatal(err)
	}
	_ = e.ReadParams(q)
	if enginetest.TensorDiff(p.Values[2], q.Values[2]) != 0 || enginetest.TensorDiff(p.Values[3], q.Values[3]) != 0 {
		t.Fatal("Gradients or Loss moved the running statistics")
	}
	if _, err := e.Step(b); err != nil {
		t.Fatal(err)
	}
	_ = e.ReadParams(q)
	for ch := 0; ch < c; ch++ {
		var s, ss float64
		for i := 0; i < b.N; i++ {
			for _, v := range b.X[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				s += float64(v)
			}
		}
		m := s / (3 * hw)
		for i := 0; i < b.N; i++ {
			for _, v := range b.X[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				ss += (float64(v) - m) * (float64(v) - m)
			}
		}
		wantM := 0.75*float64(p.Values[2][ch]) + 0.25*m
		wantV := 0.75*float64(p.Values[3][ch]) + 0.25*ss/(3*hw-1)
		if math.Abs(float64(q.Values[2][ch])-wantM) > 1e-5 || math.Abs(float64(q.Values[3][ch])-wantV) > 1e-5 {
			t.Fatalf("channel %d: running mean %v var %v, want %v %v", ch, q.Values[2][ch], q.Values[3][ch], wantM, wantV)
		}
	}

	f, _ := New(nn.EngineConfig{Arch: a, Params: p, BatchSize: 5, FreezeBN: true})
	defer f.Close()
	if _, err := f.Step(b); err != nil {
		t.Fatal(err)
	}
	_ = f.ReadParams(q)
	if enginetest.TensorDiff(p.Values[2], q.Values[2]) != 0 || enginetest.TensorDiff(p.Values[3], q.Values[3]) != 0 {
		t.Fatal("frozen batch norm moved its running statistics")
	}
}

// TestPoolingUpsampleValues pins the semantics the CUDA kernels copy: 3×3/2 pooling
// with padding 1 where padding never wins, and nearest upsampling.
func TestPoolingUpsampleValues(t *testing.T) {
	a := nn.Arch{Name: "pool", Task: nn.Detect, InC: 1, InH: 4, InW: 4, Classes: 1, HeadFrom: 2, Layers: []nn.Layer{
		{Kind: nn.MaxPool, K: 3, Stride: 2, Pad: 1}, {Kind: nn.Upsample}, {Kind: nn.Conv, Out: 6, K: 1}}}
	p, _ := nn.InitParams(a, 1)
	for i := range p.Values[0] {
		p.Values[0][i] = 0
	}
	p.Values[0][0] = 1 // channel 0 of the output is the upsampled pooling
	e, err := New(nn.EngineConfig{Arch: a, Params: p, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	x := []float32{-1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -14, -15, -16}
	out, err := e.Forward(x, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Windows rows/cols {-1..1}, {1..3}: maxima -1, -2; -5, -6.
	want := []float32{-1, -1, -2, -2, -1, -1, -2, -2, -5, -5, -6, -6, -5, -5, -6, -6}
	if fmt.Sprint(out[:16]) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", out[:16], want)
	}
}

// TestFamilyLearnsABatch: the smallest MobileNetV2 trains on the CPU engine — a few
// Adam steps lower one batch's loss and move the running statistics.
func TestFamilyLearnsABatch(t *testing.T) {
	a, err := nn.Family(nn.MobileNetV2, "n", 32, 32, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := nn.InitParams(a, 1)
	e, err := New(nn.EngineConfig{Arch: a, Params: p, BatchSize: 8, Adam: nn.AdamConfig{LR: 3e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	b := enginetest.Batch(a, 8, 3)
	first, err := e.Step(b)
	if err != nil {
		t.Fatal(err)
	}
	var last float32
	for i := 0; i < 15; i++ {
		if last, err = e.Step(b); err != nil {
			t.Fatal(err)
		}
	}
	if last >= first/2 {
		t.Fatalf("loss %v -> %v after 16 steps on one batch", first, last)
	}
	q := p.Clone()
	_ = e.ReadParams(q)
	for i, s := range p.Specs {
		if s.Buffer && enginetest.TensorDiff(p.Values[i], q.Values[i]) == 0 {
			t.Fatalf("%s did not move", s.Name)
		}
	}
}

// TestMultiScaleLossGradients: a finite-difference check of the multi-scale detector's
// loss (objectness, classes and GIoU at both levels) through a small net, with the
// class targets frozen (nn.QualityTargets). The loss is
// about 10 (objectness over 1,280 points), so its float32 rounding over a step of 1e-3
// is 5e-4 of a gradient: the step is 1e-2.
func TestMultiScaleLossGradients(t *testing.T) {
	a := enginetest.TinyMultiScale()
	p, err := nn.InitParams(a, 3)
	if err != nil {
		t.Fatal(err)
	}
	checkGradients(t, nn.EngineConfig{Arch: a, Params: p, BatchSize: 4}, 1e-2)
}
