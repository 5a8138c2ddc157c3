package nn

import (
	"strings"
	"testing"
)

// TestSpecBackbone: a backbone setting is an absolute .safetensors or .onnx path.
func TestSpecBackbone(t *testing.T) {
	for b, want := range map[string]string{
		"":                            "",
		"/data/mobilenetv2-n.onnx":    "",
		"/a/mobilenetv2.safetensors":  "",
		"rel/mobilenetv2.safetensors": "absolute path",
		"/a/weights.pt":               ".safetensors or .onnx",
	} {
		s := Spec{Backbone: b}
		s.Defaults(Classify)
		err := s.Validate()
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("backbone %q: %v, want %q", b, err, want)
		}
	}
}
