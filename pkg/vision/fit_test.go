package vision

import (
	"math"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

func near(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-4 }

// TestLetterboxBoxesRoundTrip: a 128×96 colour frame letterboxed into a 96×64 input
// keeps its aspect ratio (padding left and right), a box moves into the input with its
// pixels and maps back to where it was in the frame; a stretched network moves nothing.
func TestLetterboxBoxesRoundTrip(t *testing.T) {
	a := nn.Arch{InC: 3, InW: 96, InH: 64, Preprocess: &nn.Preprocess{Resize: nn.Letterbox, Fill: nn.DefaultFill}}
	im := raster.NewC(128, 96, 3)
	// A white square at pixels 64–96 × 24–48 of the frame.
	for c := range 3 {
		for y := 24; y < 48; y++ {
			for x := 64; x < 96; x++ {
				im.Pix[c*128*96+y*128+x] = 1
			}
		}
	}
	box := nn.Box{X0: 64.0 / 128, Y0: 24.0 / 96, X1: 96.0 / 128, Y1: 48.0 / 96, Class: 2}
	fit, boxes, l := Fit(a, im, []nn.Box{box})
	if fit.W != 96 || fit.H != 64 || fit.Channels() != 3 {
		t.Fatalf("fitted to %dx%dx%d", fit.W, fit.H, fit.Channels())
	}
	// Scale 64/96: the frame becomes 85×64, padded 5 px left.
	if l.PadX != 5 || l.PadY != 0 || !near(float32(l.Scale), 64.0/96) {
		t.Fatalf("letterbox %+v", l)
	}
	if fit.Pix[0] != nn.DefaultFill || fit.Pix[95] != nn.DefaultFill {
		t.Fatalf("the padding is %v and %v, want the fill %v", fit.Pix[0], fit.Pix[95], nn.DefaultFill)
	}
	b := boxes[0]
	// The box's centre pixel is white in the fitted image.
	cx, cy := int((b.X0+b.X1)/2*96), int((b.Y0+b.Y1)/2*64)
	if fit.Pix[cy*96+cx] < 0.99 || b.Class != 2 {
		t.Fatalf("box %+v: its centre (%d, %d) is %v in the fitted image", b, cx, cy, fit.Pix[cy*96+cx])
	}
	back := Unfit(a, l, b)
	if !near(back.X0, box.X0) || !near(back.Y0, box.Y0) || !near(back.X1, box.X1) || !near(back.Y1, box.Y1) {
		t.Fatalf("box %+v came back as %+v", box, back)
	}
	// A prediction in the padding is kept inside the frame.
	if p := Unfit(a, l, nn.Box{X0: 0, Y0: 0, X1: 0.02, Y1: 0.5}); p.X0 != 0 || p.X1 != 0 {
		t.Fatalf("a box in the padding maps to %+v", p)
	}
	a.Preprocess = nil
	fit, boxes, _ = Fit(a, im, []nn.Box{box})
	if fit.W != 96 || fit.H != 64 || boxes[0] != box {
		t.Fatalf("stretched: %dx%d, box %+v", fit.W, fit.H, boxes[0])
	}
}

// TestNormalise: each channel's plane is normalised with its own mean and deviation;
// a network without normalisation gets the pixels themselves.
func TestNormalise(t *testing.T) {
	a := nn.Arch{InC: 3, InW: 2, InH: 1, Preprocess: &nn.Preprocess{Mean: nn.ImageNetMean(), Std: nn.ImageNetStd()}}
	x := []float32{0.485, 1, 0.456, 0, 0.406, 0.5}
	got := Normalise(a, x)
	want := []float32{0, (1 - 0.485) / 0.229, 0, -0.456 / 0.224, 0, (0.5 - 0.406) / 0.225}
	for i := range want {
		if !near(got[i], want[i]) {
			t.Fatalf("value %d: %v, want %v", i, got[i], want[i])
		}
	}
	if x[1] != 1 {
		t.Fatal("Normalise changed its input")
	}
	a.Preprocess = nil
	if y := Normalise(a, x); &y[0] != &x[0] {
		t.Fatal("without normalisation the pixels were copied")
	}
}
