package nn

import (
	"strings"
	"testing"
)

// TestSpecBackbone: a backbone setting is a .safetensors or .onnx file, either an object
// under backbones/ in the store ("s3:backbones/…") or an absolute path, and its sha256 is
// hex.
func TestSpecBackbone(t *testing.T) {
	const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for b, want := range map[[2]string]string{
		{"", ""}:                                  "",
		{"/data/mobilenetv2-n.onnx", ""}:          "",
		{"/a/mobilenetv2.safetensors", sum}:       "",
		{"s3:backbones/n.safetensors", ""}:        "",
		{"s3:backbones/" + sum + ".onnx", sum}:    "",
		{"rel/mobilenetv2.safetensors", ""}:       "absolute path",
		{"/a/weights.pt", ""}:                     ".safetensors or .onnx",
		{"s3:backbones/n.pt", ""}:                 ".safetensors or .onnx",
		{"s3:projects/p/project.safetensors", ""}: "an object under backbones/",
		{"s3:backbones/../x.safetensors", ""}:     "an object under backbones/",
		{"s3:backbones/", ""}:                     "an object under backbones/",
		{"s3:backbones/n.safetensors", "ABC"}:     "64 lower-case hex digits",
		{"", sum}:                                 "names no backbone",
	} {
		s := Spec{Backbone: b[0], BackboneSHA256: b[1]}
		s.Defaults(Classify)
		err := s.Validate()
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("backbone %q sha256 %q: %v, want %q", b[0], b[1], err, want)
		}
	}
}

// TestSpecPyramid: a detection setting's pyramid picks the network's levels, an
// unknown one is refused naming it, and a classifier takes none.
func TestSpecPyramid(t *testing.T) {
	s := Spec{Pyramid: PyramidP2}
	s.Defaults(Detect)
	a, err := s.Build(Detect, 3)
	if err != nil || len(a.Levels) != 4 || a.Levels[0].Stride != 4 {
		t.Fatalf("p2: %d levels, %v", len(a.Levels), err)
	}
	if _, err := s.Build(Classify, 3); err == nil || !strings.Contains(err.Error(), "only a detector") {
		t.Errorf("classifier with p2: %v", err)
	}
	// "p3" is the default: the same setting as none, so a project given it keeps its model.
	a3, none := Spec{Pyramid: PyramidP3}, Spec{}
	a3.Defaults(Detect)
	none.Defaults(Detect)
	if !a3.Equal(&none) || a3.Pyramid != "" {
		t.Errorf("p3 %+v and no pyramid %+v differ", a3, none)
	}
	s.Pyramid = "p6"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), `model pyramid "p6" unknown`) {
		t.Errorf("p6: %v", err)
	}
}
