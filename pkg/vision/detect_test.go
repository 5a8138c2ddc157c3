package vision_test

import (
	"context"
	"math"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// confident is the output of a model sure of the targets' boxes for one image, except,
// with duplicate, that one point of a box of class 1 calls it class 2: a duplicate of
// another class.
func confident(a nn.Arch, boxes []nn.Box, duplicate bool) []float32 {
	flipped := !duplicate
	tg := nn.EncodeTargets(a, [][]nn.Box{boxes})
	out := make([]float32, a.OutputSize())
	for _, m := range a.LevelMaps() {
		hw := m.H * m.W
		for p := 0; p < hw; p++ {
			o := m.Offset + p
			for c := 0; c < nn.DetectOut(a.Classes); c++ {
				out[o+c*hw] = -12
			}
			if tg.T[o] != 1 {
				continue
			}
			out[o] = 12
			for c := 0; c < a.Classes; c++ {
				if tg.T[o+(5+c)*hw] == 1 {
					if c == 1 && !flipped { // and less sure
						c, flipped, out[o] = 2, true, 4
					}
					out[o+(5+c)*hw] = 12
				}
			}
			for k := 1; k <= 4; k++ {
				out[o+k*hw] = float32(math.Log(max(1e-3, float64(tg.B[o+k*hw]))))
			}
		}
	}
	return out
}

// TestDecodeMultiScale: a multi-scale detector's output decodes into its boxes from
// 13 px to the whole frame; class-wise NMS keeps a duplicate of another class,
// class-agnostic NMS does not; MaxDetections caps the count.
func TestDecodeMultiScale(t *testing.T) {
	a, err := nn.DetectorFamily(nn.MobileNetV2, "n", 320, 256, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	boxes := []nn.Box{
		{X0: .1, Y0: .1, X1: .14, Y1: .15, Class: 0}, // 13×13 px
		{X0: .3, Y0: .2, X1: .7, Y1: .8, Class: 1},   // 128×154
		{X0: 0, Y0: 0, X1: 1, Y1: 1, Class: 2},       // the whole frame
	}
	out := confident(a, boxes, true)
	classes := []string{"a", "b", "c"}
	preds := vision.DecodeDetect(a, out, classes, vision.Options{MinScore: 0.5})
	if len(preds) != 4 {
		t.Fatalf("class-wise: %d predictions, want one per object and the duplicate of another class", len(preds))
	}
	agn := vision.DecodeDetect(a, out, classes, vision.Options{MinScore: 0.5, ClassAgnostic: true})
	if len(agn) != 3 {
		t.Fatalf("class-agnostic: %d predictions, want 3", len(agn))
	}
	for _, b := range boxes {
		found := false
		for _, p := range agn {
			if p.Class == b.Class && p.ClassName == classes[b.Class] && nn.IoU(*p.Box, b) > 0.95 && p.Confidence > 0.99 {
				found = true
			}
		}
		if !found {
			t.Errorf("box %+v not decoded: %+v", b, agn)
		}
	}
	if got := vision.DecodeDetect(a, out, classes, vision.Options{MinScore: 0.5, MaxDetections: 2}); len(got) != 2 {
		t.Errorf("max 2: %d predictions", len(got))
	}
}

// TestPredictorServesModelFiles: a multi-scale detector and today's grid detector, each
// through the model file, serve predictions from the predictor the agent uses.
func TestPredictorServesModelFiles(t *testing.T) {
	ms, err := nn.DetectorFamily(nn.MobileNetV2, "n", 96, 64, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []nn.Arch{ms, nn.DetectorArch(4)} {
		t.Run(a.Name, func(t *testing.T) {
			p, err := nn.InitParams(a, 1)
			if err != nil {
				t.Fatal(err)
			}
			classes, _ := colourscenes.ClassNames(4)
			data, err := artifact.Encode(&artifact.Model{Header: artifact.Header{Arch: a, Classes: classes}, Params: p})
			if err != nil {
				t.Fatal(err)
			}
			m, err := artifact.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			pr, err := vision.NewPredictor(m.Header.Arch, m.Params, m.Header.Classes, gorgoniaengine.Factory, 1,
				vision.Options{MinScore: 0.001, MaxDetections: 20})
			if err != nil {
				t.Fatal(err)
			}
			defer pr.Close()
			g, err := colourscenes.New(nil)
			if err != nil {
				t.Fatal(err)
			}
			none, _ := drift.Get(drift.None)
			sc, err := g.Scenes(colourscenes.SceneConfig{W: 200, H: 150}, 2, 1, none)
			if err != nil {
				t.Fatal(err)
			}
			res, err := pr.Predict(context.Background(), []*raster.Image{sc[0].Image, sc[1].Image.Luma()})
			if err != nil {
				t.Fatal(err)
			}
			for i, ps := range res {
				if len(ps) == 0 || len(ps) > 20 {
					t.Fatalf("image %d: %d predictions", i, len(ps))
				}
				for _, p := range ps {
					if b := p.Box; b == nil || b.X0 < 0 || b.X1 > 1 || b.X0 > b.X1 || b.Y0 > b.Y1 || p.Confidence <= 0 || p.Confidence > 1 {
						t.Fatalf("prediction %+v", p)
					}
				}
			}
		})
	}
}

// TestDenseSceneEncodesAndDecodes: the 100 objects (8–40 px) of a generated 640×480
// scene each get assigned points in the multi-scale detector's targets (nn's rescue of
// boxes that smaller ones took all the points of), and a model sure of those targets
// decodes back to all 100 through NMS at DecodeDetect's defaults and MaxDetections 100.
func TestDenseSceneEncodesAndDecodes(t *testing.T) {
	g, err := colourscenes.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	none, _ := drift.Get(drift.None)
	sc, err := g.Scenes(colourscenes.SceneConfig{W: 640, H: 480, MinObjects: 100, MaxObjects: 100, MinSize: 8, MaxSize: 40}, 1, 7, none)
	if err != nil {
		t.Fatal(err)
	}
	boxes := sc[0].Boxes
	if len(boxes) != 100 {
		t.Fatalf("scene has %d objects, want 100", len(boxes))
	}
	// Greedy NMS at 0.45 would rightly merge two objects of a class overlapping more.
	for i, b := range boxes {
		for _, o := range boxes[i+1:] {
			if o.Class == b.Class && nn.IoU(o, b) > 0.45 {
				t.Fatalf("objects %+v and %+v overlap by %.2f: pick a scene without", b, o, nn.IoU(o, b))
			}
		}
	}
	a, err := nn.DetectorFamily(nn.MobileNetV2, "n", 640, 480, 3, 8)
	if err != nil {
		t.Fatal(err)
	}
	// Each assigned point's target box (the point ± stride × distances) is its object's.
	tg := nn.EncodeTargets(a, [][]nn.Box{boxes})
	points := make([]int, len(boxes))
	for _, m := range a.LevelMaps() {
		hw, s := m.H*m.W, float32(m.Stride)
		for p := 0; p < hw; p++ {
			o := m.Offset + p
			if tg.T[o] != 1 {
				continue
			}
			px, py := (float32(p%m.W)+0.5)*s, (float32(p/m.W)+0.5)*s
			b := nn.Box{X0: (px - s*tg.B[o+hw]) / 640, Y0: (py - s*tg.B[o+2*hw]) / 480,
				X1: (px + s*tg.B[o+3*hw]) / 640, Y1: (py + s*tg.B[o+4*hw]) / 480}
			for k, gt := range boxes {
				if tg.T[o+(5+gt.Class)*hw] == 1 && nn.IoU(b, gt) > 0.999 {
					points[k]++
					break
				}
			}
		}
	}
	for k, n := range points {
		if n == 0 {
			t.Errorf("object %d %+v: no assigned point", k, boxes[k])
		}
	}
	preds := vision.DecodeDetect(a, confident(a, boxes, false), colourscenes.Catalogue()[:8], vision.Options{MinScore: 0.5, MaxDetections: 100})
	if len(preds) != 100 {
		t.Errorf("decoded %d boxes from 100 objects", len(preds))
	}
	for k, b := range boxes {
		best := float32(0)
		for _, p := range preds {
			if p.Class == b.Class {
				best = max(best, nn.IoU(*p.Box, b))
			}
		}
		if best < 0.8 { // a box of 4–6 px whose point lies just outside it comes back at 0.83
			t.Errorf("object %d %+v: best decoded IoU %.2f", k, b, best)
		}
	}
}
