package scenes

import (
	"reflect"
	"testing"
)

// TestShapes: scenes are reproducible, colour or grey as asked, their boxes inside the
// canvas and of known classes, objects from the smallest size to near the whole frame,
// and shapes change the pixels under their boxes.
func TestShapes(t *testing.T) {
	c := ShapesConfig{W: 160, H: 120, C: 3, MinObjects: 0, MaxObjects: 6}
	a, err := Shapes(40, 7, c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Shapes(40, 7, c)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different scenes")
	}
	minSide, maxSide, empty := 1e9, 0.0, 0
	for _, s := range a {
		if s.Image.W != 160 || s.Image.H != 120 || s.Image.Channels() != 3 || len(s.Image.Pix) != 160*120*3 {
			t.Fatalf("image %dx%dx%d", s.Image.W, s.Image.H, s.Image.Channels())
		}
		if len(s.Boxes) == 0 {
			empty++
		}
		for _, bx := range s.Boxes {
			if bx.X0 < 0 || bx.Y0 < 0 || bx.X1 > 1 || bx.Y1 > 1 || bx.X0 >= bx.X1 || bx.Y0 >= bx.Y1 || bx.Class < 0 || bx.Class >= len(ShapeClasses()) {
				t.Fatalf("box %+v", bx)
			}
			side := max(float64(bx.X1-bx.X0)*160, float64(bx.Y1-bx.Y0)*120)
			minSide, maxSide = min(minSide, side), max(maxSide, side)
		}
		for _, v := range s.Image.Pix {
			if v < 0 || v > 1 {
				t.Fatalf("pixel %v outside [0,1]", v)
			}
		}
	}
	if minSide > 12 || maxSide < 80 || empty == 0 {
		t.Errorf("object sides %.0f–%.0f px, %d empty scenes: want 8 px up to most of the frame and some empty", minSide, maxSide, empty)
	}
	g, err := Shapes(1, 1, ShapesConfig{W: 64, H: 64, C: 1})
	if err != nil || g[0].Image.Channels() != 1 {
		t.Fatalf("grey scenes: %v", err)
	}
	if _, err := Shapes(1, 1, ShapesConfig{W: 64, H: 64, C: 2}); err == nil {
		t.Error("two channels accepted")
	}
}
