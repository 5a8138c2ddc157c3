package weights

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// TestFromSpec: a spec's backbone's bytes land on the trunk of the classifier and the
// detector (a file tensor's values survive into the initial parameters, the head stays
// the seed's), the source names the file and its sha256, and a file of another width
// or not a weights file is refused naming the tensor or the file.
func TestFromSpec(t *testing.T) {
	abs, err := filepath.Abs(filepath.Join("testdata", "mobilenetv2-035.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	const probe = "features.3.conv.1.0.weight" // a depthwise conv inside the trunk
	for _, task := range []nn.Task{nn.Classify, nn.Detect} {
		spec := nn.Spec{Backbone: abs}
		spec.Defaults(task)
		a, p, src, err := FromSpec(spec, file, task, 4, 7, zap.NewNop())
		if err != nil {
			t.Fatalf("%s: %v", task, err)
		}
		if src.File != "mobilenetv2-035.safetensors" || src.SHA256 != fmt.Sprintf("%x", sha256.Sum256(file)) {
			t.Errorf("%s: source %+v", task, src)
		}
		if a.Preprocess == nil || a.Preprocess.Resize != nn.Letterbox {
			t.Errorf("%s: preprocessing %+v, want the spec's", task, a.Preprocess)
		}
		cls, _ := nn.Family(nn.MobileNetV2, "n", a.InW, a.InH, a.InC, 1)
		names, _ := TorchvisionNames(cls)
		k := slices.Index(names, probe)
		if k < 0 {
			t.Fatalf("no %s", probe)
		}
		if !slices.Equal(p.Values[k], ts[probe].Data) {
			t.Errorf("%s: %s did not come from the file", task, probe)
		}
		fresh, _ := nn.InitParams(a, 7)
		last := len(p.Values) - 1 // the head: the seed's
		if !slices.Equal(p.Values[last], fresh.Values[last]) {
			t.Errorf("%s: the head is not the seed's", task)
		}
	}

	// Size s wants wider tensors than the n file holds: the first one is named.
	spec := nn.Spec{Size: "s", Backbone: abs}
	spec.Defaults(nn.Classify)
	if _, _, _, err := FromSpec(spec, file, nn.Classify, 4, 1, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "features.2.conv.2.weight: shape [8 48 1 1] in the file") {
		t.Errorf("an n backbone for size s: %v, want the first mismatching tensor named", err)
	}
	for _, bad := range []string{"/w/junk.safetensors", "s3:backbones/junk.onnx"} {
		spec = nn.Spec{Backbone: bad}
		spec.Defaults(nn.Classify)
		if _, _, _, err := FromSpec(spec, []byte("not weights"), nn.Classify, 4, 1, zap.NewNop()); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("a junk file: %v, want an error naming %s", err, bad)
		}
	}
}
