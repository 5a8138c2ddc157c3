//go:build edgeloop_cuda

package cudaengine

import (
	"fmt"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/enginetest"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
)

// TestParityWithCPU takes the same steps on the CPU engine and on the GPU from the same
// weights, for both product models, a tiny net with odd sizes, a net using every graph
// layer and a small feature-pyramid detector, and compares the outputs, the loss, every
// gradient and three Adam updates (enginetest.DefaultTolerance).
func TestParityWithCPU(t *testing.T) {
	dev, err := Open(0)
	if err != nil {
		t.Fatalf("opening GPU 0: %v", err)
	}
	defer dev.Close()
	t.Logf("device: %s", dev)
	for _, c := range []struct {
		arch nn.Arch
		bs   int
		seed uint64
	}{{nn.ClassifierArch(10), 32, 42}, {nn.DetectorArch(10), 16, 42}, {oddArch(), 5, 42}, {enginetest.AllLayers(), 8, 42},
		{graphDetector(), 6, 42}, {graphDetector(), 6, 7}, {graphDetector(), 6, 1234}, {enginetest.TinyMultiScale(), 6, 42}} {
		t.Run(fmt.Sprintf("%s/seed%d", c.arch.Name, c.seed), func(t *testing.T) {
			r, err := enginetest.Compare(c.arch, gorgoniaengine.Factory, dev.Factory, c.bs, 3, c.seed, enginetest.DefaultTolerance())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s, batch %d, seed %d, CPU vs GPU:\n%s", c.arch.Name, c.bs, c.seed, r)
			if len(r.Failed) > 0 {
				t.Errorf("outside tolerance: %v", r.Failed)
			}
		})
	}
}

// TestMobileNetParityWithCPU compares the whole smallest MobileNetV2 classifier and
// multi-scale detector on the GPU with the CPU: outputs, loss and every gradient,
// frozen batch norm, no Adam steps (see TestEngineWiringOnHost for why).
func TestMobileNetParityWithCPU(t *testing.T) {
	dev, err := Open(0)
	if err != nil {
		t.Fatalf("opening GPU 0: %v", err)
	}
	defer dev.Close()
	frozen := func(f enginetest.Factory) enginetest.Factory {
		return func(cfg nn.EngineConfig) (nn.Engine, error) { cfg.FreezeBN = true; return f(cfg) }
	}
	for _, a := range []nn.Arch{mobileNet(t), detectorFamily(t)} {
		r, err := enginetest.Compare(a, frozen(gorgoniaengine.Factory), frozen(dev.Factory), 5, 0, 42, enginetest.DefaultTolerance())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s, batch 5, CPU vs GPU:\n%s", a.Name, r)
		if len(r.Failed) > 0 {
			t.Errorf("%s outside tolerance: %v", a.Name, r.Failed)
		}
	}
}

// TestFrozenBackboneStaysOnGPU: with the backbone frozen, Step moves only the head.
func TestFrozenBackboneStaysOnGPU(t *testing.T) {
	dev, err := Open(0)
	if err != nil {
		t.Fatalf("opening GPU 0: %v", err)
	}
	defer dev.Close()
	a := nn.ClassifierArch(10)
	p, err := nn.InitParams(a, 3)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(dev, nn.EngineConfig{Arch: a, Params: p, BatchSize: 8, Trainable: nn.Trainable(a, p, true)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Step(enginetest.Batch(a, 8, 1)); err != nil {
		t.Fatal(err)
	}
	q := p.Clone()
	if err := e.ReadParams(q); err != nil {
		t.Fatal(err)
	}
	for i, s := range p.Specs {
		moved := enginetest.TensorDiff(p.Values[i], q.Values[i]) > 0
		if head := s.Layer >= a.HeadFrom; moved != head {
			t.Errorf("%s (head=%v) moved=%v", s.Name, head, moved)
		}
	}
}

// TestBadBatchIsAnError: a batch that does not fit the engine is refused with a reason.
func TestBadBatchIsAnError(t *testing.T) {
	dev, err := Open(0)
	if err != nil {
		t.Fatalf("opening GPU 0: %v", err)
	}
	defer dev.Close()
	a := nn.ClassifierArch(10)
	p, _ := nn.InitParams(a, 3)
	e, err := New(dev, nn.EngineConfig{Arch: a, Params: p, BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	b := enginetest.Batch(a, 4, 1)
	b.Labels[2] = 10
	if _, err := e.Step(b); err == nil {
		t.Fatal("label 10 of a 10-class model accepted")
	}
	if _, err := e.Step(enginetest.Batch(a, 5, 1)); err == nil {
		t.Fatal("5 images accepted by an engine of batch size 4")
	}
}
