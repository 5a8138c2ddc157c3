package weights

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
)

// TestTorchvisionEquivalence: PyTorch's MobileNetV2 0.35 (torchvision's names, random
// weights and running statistics, eval mode; testdata/make_fixture.py) imported from
// its safetensors file, and from its ONNX export, into nn.Family's size n gives, on the
// Gorgonia engine, PyTorch's logits on the same images within 1e-4.
func TestTorchvisionEquivalence(t *testing.T) {
	for _, file := range []string{"mobilenetv2-035.safetensors", "mobilenetv2-035.onnx"} {
		t.Run(file, func(t *testing.T) { checkEquivalence(t, filepath.Join("testdata", file)) })
	}
}

func checkEquivalence(t *testing.T, path string) {
	ts, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	io, err := ReadSafetensors(filepath.Join("testdata", "io.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	images, logits := io["images"], io["logits"]
	n, classes := images.Shape[0], logits.Shape[1]
	size, err := FamilySize(ts)
	if err != nil || size != "n" {
		t.Fatalf("family size %q, %v; want n", size, err)
	}
	a, err := nn.Family(nn.MobileNetV2, size, images.Shape[3], images.Shape[2], images.Shape[1], classes)
	if err != nil {
		t.Fatal(err)
	}
	p, err := nn.InitParams(a, 1)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	a, err = Import(a, p, ts, Options{Head: true}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if got := logs.FilterMessage("transferred pretrained tensors").All(); len(got) != 1 || got[0].ContextMap()["transferred"] != "262/262" {
		t.Fatalf("transfer log %v", got)
	}
	for _, l := range a.Layers {
		if l.Kind == nn.BatchNorm && l.BNEps() != TorchBNEps {
			t.Fatalf("batch norm ε %v after a torch import, want %v", l.BNEps(), TorchBNEps)
		}
	}
	diff := func(a nn.Arch) (float64, []float32) {
		e, err := gorgoniaengine.New(nn.EngineConfig{Arch: a, Params: p, BatchSize: n})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		out, err := e.Forward(images.Data, n)
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for i := range out {
			worst = math.Max(worst, math.Abs(float64(out[i]-logits.Data[i])))
		}
		return worst, out
	}
	worst, out := diff(a)
	t.Logf("ours %v\ntorch %v\nlargest difference %.2e", out, logits.Data, worst)
	if worst > 1e-4 {
		t.Fatalf("logits differ from PyTorch's by %.2e (> 1e-4)", worst)
	}
	// The bound is tight enough to see a wrong ε: Keras's 1e-3 instead of torch's.
	keras := a
	keras.Layers = slices.Clone(a.Layers)
	for i := range keras.Layers {
		if keras.Layers[i].Kind == nn.BatchNorm {
			keras.Layers[i].Eps = 1e-3
		}
	}
	if d, _ := diff(keras); d < 1e-3 {
		t.Fatalf("with Keras's ε the logits differ by only %.2e: the fixture cannot tell ε apart", d)
	} else {
		t.Logf("with Keras's ε 1e-3 instead: largest difference %.2e", d)
	}
}
