package artifact

import (
	"encoding/binary"
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// TestReadsFormatOne: a model file written by the last build of format 1 (committed in
// testdata) still reads, with neither spec nor preprocessing, and writing it again
// gives a format 2 file with the same network and weights.
func TestReadsFormatOne(t *testing.T) {
	b, err := os.ReadFile("testdata/v1-classifier.elm")
	if err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(b[len(Magic):]); v != 1 {
		t.Fatalf("the fixture is format %d, want 1", v)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	h := m.Header
	if h.Model != nil || h.Arch.Preprocess != nil || h.Arch.Name != "tiny-v1" || h.Arch.InC != 1 || h.Arch.InW != 28 ||
		h.Project != "legacy" || h.Version != 3 || !reflect.DeepEqual(h.Classes, []string{"a", "b", "c"}) {
		t.Fatalf("format 1 header read as %+v", h)
	}
	again, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(again[len(Magic):]); v != FormatVersion {
		t.Fatalf("written as format %d, want %d", v, FormatVersion)
	}
	back, err := Decode(again)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Header.Arch, h.Arch) || !reflect.DeepEqual(back.Params.Values, m.Params.Values) {
		t.Fatal("the network or its weights changed on rewriting")
	}
}

// TestSpecAndPreprocessRoundTrip: a family network's spec and preprocessing (letterbox,
// ImageNet normalisation) are in the header; a format 1 file claiming either, or a
// format this build does not know, is refused.
func TestSpecAndPreprocessRoundTrip(t *testing.T) {
	spec := nn.Spec{Family: nn.MobileNetV2, Size: "n", Input: [2]int{96, 64}, Channels: 3, Resize: nn.Letterbox, Normalize: nn.NormImageNet}
	a, err := spec.Build(nn.Classify, 2)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := nn.InitParams(a, 1)
	b, err := Encode(&Model{Header: Header{Arch: a, Model: &spec, Classes: []string{"red", "blue"}}, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	pre := got.Header.Arch.Preprocess
	if !got.Header.Model.Equal(&spec) || pre == nil || pre.Resize != nn.Letterbox || pre.Fill != nn.DefaultFill ||
		!reflect.DeepEqual(pre.Mean, nn.ImageNetMean()) || !reflect.DeepEqual(pre.Std, nn.ImageNetStd()) {
		t.Fatalf("spec %+v, preprocessing %+v", got.Header.Model, pre)
	}
	old := append([]byte(nil), b...)
	binary.LittleEndian.PutUint32(old[len(Magic):], 1)
	if _, err := Decode(old); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a format 1 file with a spec: %v, want ErrInvalid", err)
	}
	binary.LittleEndian.PutUint32(old[len(Magic):], FormatVersion+1)
	if _, err := Decode(old); !errors.Is(err, ErrInvalid) {
		t.Fatalf("format %d: %v, want ErrInvalid", FormatVersion+1, err)
	}
	bad := *got.Header.Arch.Preprocess
	bad.Std = []float32{1, 0, 1}
	a.Preprocess = &bad
	if _, err := Encode(&Model{Header: Header{Arch: a, Classes: []string{"red", "blue"}}, Params: p}); err == nil {
		t.Fatal("a zero standard deviation encoded")
	}
}
