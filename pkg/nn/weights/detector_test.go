package weights

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// TestImportDetector: the fixture's torchvision MobileNetV2 (width 0.35) lands on the
// multi-scale detector's trunk exactly as on the family classifier, the pyramid and
// heads keep their initialisation, the trunk's batch norms take PyTorch's ε; a file of
// another width is refused naming the first tensor that does not fit.
func TestImportDetector(t *testing.T) {
	path := filepath.Join("testdata", "mobilenetv2-035.safetensors")
	a, p, err := BackboneDetector(path, "", 128, 96, 3, 5, 1, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	cls, cp, err := Backbone(path, 128, 96, 3, 5, 1, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	init, _ := nn.InitParams(a, 1)
	trunk := 0
	for k, s := range p.Specs {
		if s.Layer < a.HeadFrom {
			trunk++
			if !slices.Equal(p.Values[k], cp.Values[k]) {
				t.Fatalf("trunk tensor %s differs from the classifier's import", s.Name)
			}
			continue
		}
		if !slices.Equal(p.Values[k], init.Values[k]) {
			t.Fatalf("%s (pyramid or head) changed", s.Name)
		}
	}
	if trunk < 100 {
		t.Fatalf("%d trunk tensors", trunk)
	}
	for i, l := range a.Layers {
		if l.Kind == nn.BatchNorm && (i < a.HeadFrom) != (l.Eps == TorchBNEps) {
			t.Fatalf("layer %d: ε %v", i, l.Eps)
		}
	}
	if cls.Layers[1].Eps != a.Layers[1].Eps {
		t.Fatal("stem batch norm ε differs from the classifier's import")
	}
	// The P2 pyramid takes the same trunk.
	if p2, _, err := BackboneDetector(path, nn.PyramidP2, 128, 96, 3, 5, 1, zap.NewNop()); err != nil || p2.Name != a.Name+"-p2" {
		t.Fatalf("p2: %s, %v", p2.Name, err)
	}
	// Grey input: the stem sums the colours.
	if _, _, err := BackboneDetector(path, "", 64, 64, 1, 2, 1, zap.NewNop()); err != nil {
		t.Fatalf("grey: %v", err)
	}
	ts, _ := ReadFile(path)
	s, _ := nn.DetectorFamily(nn.MobileNetV2, "s", 64, 64, 3, 2)
	sp, _ := nn.InitParams(s, 1)
	if _, err := ImportDetector(s, sp, ts, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Fatalf("a width-0.35 file on the s detector: %v", err)
	}
	if _, err := ImportDetector(cls, cp, ts, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "not a") {
		t.Fatalf("a classifier: %v", err)
	}
	// A file that does not fit the trunk is refused, naming the tensor.
	dp, _ := nn.InitParams(a, 1)
	for name, c := range map[string]struct {
		edit func(map[string]Tensor)
		want string
	}{
		"extra":   {func(m map[string]Tensor) { m["features.19.0.weight"] = Tensor{Shape: []int{1}, Data: []float32{0}} }, "features.19.0.weight [1] maps to nothing"},
		"missing": {func(m map[string]Tensor) { delete(m, "features.1.conv.0.0.weight") }, "features.1.conv.0.0.weight"},
		"folded": {func(m map[string]Tensor) {
			m["features.0.0.bias"] = Tensor{Shape: []int{16}, Data: make([]float32, 16)}
		}, "optimize=False"},
	} {
		edited := maps.Clone(ts)
		c.edit(edited)
		if _, err := ImportDetector(a, dp, edited, zap.NewNop()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", name, err, c.want)
		}
	}
}

// TestDetectorSize: the size is read off the names nn.DetectorPyramid gives, and other
// names are not taken for a detector's.
func TestDetectorSize(t *testing.T) {
	lv := []nn.Level{{Stride: 8}}
	for name, want := range map[string]string{
		"mobilenetv2-n-det": "n", "mobilenetv2-s-det-p2": "s",
		"mobilenetv2-n-detector": "", "mobilenetv2-n-det-p3": "", "mobilenetv2-n-det-": "", "mobilenetv2-n-det-p7": "", "resnet-n-det": "", "mobilenetv2-n": "",
	} {
		size, ok := detectorSize(nn.Arch{Name: name, Levels: lv})
		if size != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", name, size, ok, want)
		}
	}
	if _, ok := detectorSize(nn.Arch{Name: "mobilenetv2-n-det"}); ok {
		t.Error("a network without levels was taken for a detector")
	}
}
