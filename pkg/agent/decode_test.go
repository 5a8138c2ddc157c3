package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// fixedDetector is a model file of a two-class multi-scale detector whose output does
// not depend on the frame: every position of the finest level finds class 0 (score
// ≈ 1), every position of the next level class 1 (score ≈ 0.88), the coarsest level
// nothing. boxLog is each box side's log distance in strides: 5 makes every box the
// whole frame (all overlap), -3 a box under a pixel (none do).
func fixedDetector(t *testing.T, boxLog float32, decode *nn.Decoding) []byte {
	t.Helper()
	a, err := nn.DetectorFamily(nn.MobileNetV2, "n", 64, 64, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	p, err := nn.InitParams(a, 1)
	if err != nil {
		t.Fatal(err)
	}
	set := func(layer int, bias ...float32) {
		for i, s := range p.Specs {
			switch s.Name {
			case fmt.Sprintf("conv%d.w", layer):
				clear(p.Values[i])
			case fmt.Sprintf("conv%d.b", layer):
				copy(p.Values[i], bias)
			}
		}
	}
	for k, lv := range a.Levels {
		obj, cls := []float32{12, 2, -12}[k], []float32{12, -12}
		if k == 1 {
			cls = []float32{-12, 12}
		}
		set(lv.Obj, obj)
		set(lv.Box, boxLog, boxLog, boxLog, boxLog)
		set(lv.Cls, cls...)
	}
	data, err := artifact.Encode(&artifact.Model{Header: artifact.Header{Arch: a, Classes: []string{"left", "right"}, Version: 1, Decode: decode}, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// served is what the agent's model answers for a frame.
func served(t *testing.T, data []byte) []vision.Prediction {
	t.Helper()
	m, err := loadModel(data, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.retire()
	got, _, err := m.predict(context.Background(), []*raster.Image{raster.NewC(64, 64, 3)})
	if err != nil {
		t.Fatal(err)
	}
	return got[0]
}

// TestModelDecodesAsItsProjectSays: the agent decodes a detector as its model file's
// header says (the project's decode setting): class-agnostic NMS keeps one of two
// overlapping boxes of different classes, max_detections and min_score bound the boxes;
// a model file without the setting decodes as before (class-wise NMS, IoU 0.45, min
// score 0.25, 300 boxes).
func TestModelDecodesAsItsProjectSays(t *testing.T) {
	old := served(t, fixedDetector(t, 5, nil))
	if len(old) != 2 || old[0].ClassName != "left" || old[1].ClassName != "right" {
		t.Fatalf("without a decode setting: %+v, want one whole-frame box of each class (class-wise NMS)", old)
	}
	agnostic := served(t, fixedDetector(t, 5, &nn.Decoding{ClassAgnostic: true}))
	if len(agnostic) != 1 || agnostic[0].ClassName != "left" {
		t.Fatalf("class-agnostic: %+v, want the best box only", agnostic)
	}
	// 64 tiny boxes of class 0 and 16 of class 1, none overlapping.
	if n := len(served(t, fixedDetector(t, -3, nil))); n != 80 {
		t.Fatalf("without a decode setting: %d tiny boxes, want all 80", n)
	}
	if got := served(t, fixedDetector(t, -3, &nn.Decoding{MaxDetections: 5})); len(got) != 5 {
		t.Fatalf("max_detections 5: %d boxes", len(got))
	}
	if got := served(t, fixedDetector(t, -3, &nn.Decoding{MinScore: 0.95})); len(got) != 64 || got[63].ClassName != "left" {
		t.Fatalf("min_score 0.95: %d boxes, want the 64 of class 0 (scoring ≈ 1, class 1 ≈ 0.88)", len(got))
	}
}

// A model file whose decode setting is out of range is refused as damaged, naming it.
// artifact.Encode writes no such file, so the test writes its header itself.
func TestModelWithBadDecodeIsRefused(t *testing.T) {
	good := fixedDetector(t, 5, nil)
	off := len(artifact.Magic) + 8
	n := int(binary.LittleEndian.Uint32(good[len(artifact.Magic)+4:]))
	var h map[string]any
	if err := json.Unmarshal(good[off:off+n], &h); err != nil {
		t.Fatal(err)
	}
	h["decode"] = map[string]any{"max_detections": -2}
	hj, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	data := append([]byte(nil), good[:off]...)
	binary.LittleEndian.PutUint32(data[len(artifact.Magic)+4:], uint32(len(hj)))
	data = append(append(data, hj...), good[off+n:]...)
	if _, err := loadModel(data, 1); err == nil {
		t.Fatal("a model file with max_detections -2 loaded")
	} else if want := "decode.max_detections -2"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
}
