package augment

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// colourImage is a w×h RGB image with a distinct value at every pixel and channel.
func colourImage(w, h int) *raster.Image {
	im := raster.NewC(w, h, 3)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range im.Pix {
		im.Pix[i] = 0.1 + 0.8*r.Float32()
	}
	return im
}

func rng() *rand.Rand { return rand.New(rand.NewPCG(7, 7)) }

func near(a, b, eps float32) bool { return math.Abs(float64(a-b)) <= float64(eps) }

func TestOffIsIdentity(t *testing.T) {
	im := colourImage(20, 12)
	boxes := []nn.Box{{X0: 0.1, Y0: 0.2, X1: 0.5, Y1: 0.6, Class: 2}}
	// None, and magnitudes without probabilities.
	for _, c := range []Config{None(), {HSV: HSV{H: 0.5, S: 1, V: 1}, ScaleTranslate: Op{Magnitude: 0.5}, Noise: Op{Magnitude: 0.3}}} {
		out, ob := c.Apply(im, boxes, rng())
		if !slices.Equal(out.Pix, im.Pix) || !slices.Equal(ob, boxes) || out.Channels() != 3 {
			t.Fatalf("augmentation off changed the image or its boxes: %+v", ob)
		}
		if &out.Pix[0] == &im.Pix[0] {
			t.Fatal("augmentation off returned the input itself, not a copy")
		}
	}
}

// A flipped image's pixels and boxes land mirrored.
func TestFlipMirrorsPixelsAndBoxes(t *testing.T) {
	im := colourImage(16, 10)
	boxes := []nn.Box{{X0: 0.125, Y0: 0.2, X1: 0.5, Y1: 0.7, Class: 1}}
	out, ob := Config{FlipH: Op{P: 1}}.Apply(im, boxes, rng())
	for c := 0; c < 3; c++ {
		for y := 0; y < 10; y++ {
			for x := 0; x < 16; x++ {
				if !near(out.Plane(c).Pix[y*16+x], im.Plane(c).Pix[y*16+15-x], 1e-5) {
					t.Fatalf("pixel (%d,%d) channel %d is not the mirror of (%d,%d)", x, y, c, 15-x, y)
				}
			}
		}
	}
	want := nn.Box{X0: 0.5, Y0: 0.2, X1: 0.875, Y1: 0.7, Class: 1}
	if len(ob) != 1 || !near(ob[0].X0, want.X0, 1e-5) || !near(ob[0].X1, want.X1, 1e-5) || !near(ob[0].Y0, want.Y0, 1e-5) ||
		!near(ob[0].Y1, want.Y1, 1e-5) || ob[0].Class != 1 {
		t.Fatalf("flipped box %+v, want %+v", ob, want)
	}
}

func TestFlipIsOffByDefault(t *testing.T) {
	for _, c := range []Config{Default(), Colour(nn.Classify), Colour(nn.Detect)} {
		if c.FlipH.P != 0 || c.FlipV.P != 0 {
			t.Fatalf("a default pipeline flips: %+v", c)
		}
	}
}

// Boxes moved out of the frame are dropped, moved partly out are clipped, and thin
// remnants are dropped.
func TestGeometryMovesClipsAndDropsBoxes(t *testing.T) {
	w, h := 100.0, 80.0
	boxes := []nn.Box{
		{X0: 0.05, Y0: 0.1, X1: 0.25, Y1: 0.3, Class: 0}, // leaves the frame
		{X0: 0.5, Y0: 0.5, X1: 0.9, Y1: 0.9, Class: 1},   // stays, shifted left
		{X0: 0.7, Y0: 0.1, X1: 0.9, Y1: 0.2, Class: 2},   // stays
	}
	got := moveBoxes(boxes, raster.Translation(-40, 0), w, h)
	if len(got) != 2 || got[0].Class != 1 || got[1].Class != 2 {
		t.Fatalf("after a shift of -40 px: %+v, want boxes 1 and 2", got)
	}
	if !near(got[0].X0, 0.1, 1e-5) || !near(got[0].X1, 0.5, 1e-5) {
		t.Fatalf("box 1 moved to %+v, want x 0.1–0.5", got[0])
	}
	// Half of box 1 leaves: it is clipped at the edge.
	got = moveBoxes(boxes[1:2], raster.Translation(30, 0), w, h)
	if len(got) != 1 || !near(got[0].X0, 0.8, 1e-5) || !near(got[0].X1, 1, 1e-5) {
		t.Fatalf("box half out of the frame: %+v, want clipped to x 0.8–1", got)
	}
	// A remnant under MinBoxPixels wide is dropped even when it is most of a thin box.
	thin := []nn.Box{{X0: 0.5, Y0: 0.1, X1: 0.515, Y1: 0.9}}
	if got := moveBoxes(thin, raster.Identity(), w, h); len(got) != 0 {
		t.Fatalf("a 1.5 px wide box was kept: %+v", got)
	}
	// Scaled far up about the centre, a corner box leaves the frame.
	if got := moveBoxes(boxes[:1], raster.Rotation(w/2, h/2, 0, 3), w, h); len(got) != 0 {
		t.Fatalf("a corner box scaled out of the frame was kept: %+v", got)
	}
}

// Scaling down a colour image fills the uncovered border with the letterbox grey, and its
// boxes shrink towards the centre with it.
func TestScaleFillsWithLetterboxGrey(t *testing.T) {
	im := colourImage(64, 48)
	c := Config{ScaleTranslate: Op{P: 1, Magnitude: 0.4}, Translate: 0.0001}
	for s := uint64(0); s < 20; s++ {
		r := rand.New(rand.NewPCG(s, 1))
		out, ob := c.Apply(im, []nn.Box{{X0: 0.25, Y0: 0.25, X1: 0.75, Y1: 0.75}}, r)
		w := ob[0].X1 - ob[0].X0
		if w > 0.5 || out.Channels() != 3 {
			continue // scaled up this time
		}
		for ch := 0; ch < 3; ch++ {
			if v := out.Plane(ch).Pix[0]; !near(v, raster.LetterboxFill, 1e-4) {
				t.Fatalf("corner after scaling down: %v, want the letterbox grey %v", v, raster.LetterboxFill)
			}
		}
		if !near((ob[0].X0+ob[0].X1)/2, 0.5, 0.01) || !near((ob[0].Y0+ob[0].Y1)/2, 0.5, 0.01) {
			t.Fatalf("a centred box left the centre when scaled: %+v", ob[0])
		}
		return
	}
	t.Fatal("no scale-down in 20 draws")
}

// HSV jitter keeps grey pixels grey and changes colour ones; boxes stay.
func TestHSVJitterKeepsGreyGrey(t *testing.T) {
	im := raster.NewC(8, 8, 3)
	n := 64
	for i := 0; i < n; i++ {
		v := float32(i) / 64
		im.Pix[i], im.Pix[n+i], im.Pix[2*n+i] = v, v, v
	}
	c := Config{HSV: HSV{P: 1, H: 0.5, S: 1, V: 0.5}}
	boxes := []nn.Box{{X0: 0.1, Y0: 0.1, X1: 0.4, Y1: 0.4}}
	for s := uint64(0); s < 10; s++ {
		out, ob := c.Apply(im, boxes, rand.New(rand.NewPCG(s, 3)))
		for i := 0; i < n; i++ {
			if !near(out.Pix[i], out.Pix[n+i], 1e-5) || !near(out.Pix[i], out.Pix[2*n+i], 1e-5) {
				t.Fatalf("seed %d: grey pixel %d became (%v, %v, %v)", s, i, out.Pix[i], out.Pix[n+i], out.Pix[2*n+i])
			}
		}
		if !slices.Equal(ob, boxes) {
			t.Fatal("HSV jitter moved the boxes")
		}
	}
	// A pure red turned by a third of a turn becomes green.
	red := raster.NewC(1, 1, 3)
	red.Pix[0] = 1
	jitterHSV(red, 1.0/3, 1, 1)
	if !near(red.Pix[0], 0, 1e-5) || !near(red.Pix[1], 1, 1e-5) || !near(red.Pix[2], 0, 1e-5) {
		t.Fatalf("red turned by 120° is %v, want green", red.Pix)
	}
	// Saturation 0 makes any colour grey; value scales the brightest channel.
	col := raster.NewC(1, 1, 3)
	copy(col.Pix, []float32{0.8, 0.4, 0.2})
	jitterHSV(col, 0, 0, 0.5)
	if !near(col.Pix[0], 0.4, 1e-5) || !near(col.Pix[1], 0.4, 1e-5) || !near(col.Pix[2], 0.4, 1e-5) {
		t.Fatalf("desaturated, halved (0.8,0.4,0.2) is %v, want 0.4 grey", col.Pix)
	}
}

func TestBrightnessContrastBlurNoise(t *testing.T) {
	im := raster.NewC(16, 16, 3)
	for c := 0; c < 3; c++ {
		for y := 0; y < 16; y++ {
			for x := 0; x < 16; x++ {
				if (x+y)%2 == 0 {
					im.Plane(c).Pix[y*16+x] = 0.8
				} else {
					im.Plane(c).Pix[y*16+x] = 0.2
				}
			}
		}
	}
	boxes := []nn.Box{{X0: 0.2, Y0: 0.2, X1: 0.6, Y1: 0.6}}
	spread := func(p *raster.Image) float64 {
		var m, v float64
		for _, x := range p.Pix {
			m += float64(x)
		}
		m /= float64(len(p.Pix))
		for _, x := range p.Pix {
			v += (float64(x) - m) * (float64(x) - m)
		}
		return math.Sqrt(v / float64(len(p.Pix)))
	}
	blurred, ob := Config{Blur: Op{P: 1, Magnitude: 2}}.Apply(im, boxes, rand.New(rand.NewPCG(1, 9)))
	if spread(blurred) > 0.8*spread(im) || !slices.Equal(ob, boxes) {
		t.Fatalf("blur: spread %.3f from %.3f (want less), boxes %+v", spread(blurred), spread(im), ob)
	}
	flat := raster.NewC(16, 16, 3)
	for i := range flat.Pix {
		flat.Pix[i] = 0.5
	}
	noisy, _ := Config{Noise: Op{P: 1, Magnitude: 0.1}}.Apply(flat, boxes, rand.New(rand.NewPCG(1, 1)))
	if spread(noisy) < 0.005 {
		t.Fatalf("noise left a flat image flat (spread %.4f)", spread(noisy))
	}
	bc, _ := Config{BrightnessContrast: Op{P: 1, Magnitude: 0.3}}.Apply(flat, boxes, rand.New(rand.NewPCG(2, 2)))
	for c := 1; c < 3; c++ {
		if !near(bc.Plane(c).Pix[5], bc.Plane(0).Pix[5], 1e-6) {
			t.Fatal("brightness/contrast treated the channels differently")
		}
	}
	// Cutout blanks a square in every channel alike.
	cut, _ := Config{Cutout: Op{P: 1, Magnitude: 0.5}}.Apply(colourImage(16, 16), nil, rand.New(rand.NewPCG(3, 3)))
	same := 0
	for i := 0; i < 256; i++ {
		if cut.Pix[i] == cut.Pix[256+i] && cut.Pix[i] == cut.Pix[512+i] {
			same++
		}
	}
	if same == 0 {
		t.Fatal("cutout left no pixel equal across channels")
	}
}

// Mosaic puts each image's objects in its quadrant around the centre, inside the frame.
func TestMosaicTilesFourImages(t *testing.T) {
	var ims [4]*raster.Image
	var boxes [4][]nn.Box
	colours := [4][3]float32{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 0}}
	for k := range ims {
		ims[k] = raster.NewC(64, 48, 3)
		for c := 0; c < 3; c++ {
			pl := ims[k].Plane(c)
			for i := range pl.Pix {
				pl.Pix[i] = colours[k][c]
			}
		}
		// An object covering the middle of each image, of the image's own class.
		boxes[k] = []nn.Box{{X0: 0.3, Y0: 0.3, X1: 0.7, Y1: 0.7, Class: k}}
	}
	seen := map[int]bool{}
	for s := uint64(0); s < 10; s++ {
		out, ob := Mosaic(ims, boxes, rand.New(rand.NewPCG(s, 5)))
		if out.W != 64 || out.H != 48 || out.Channels() != 3 {
			t.Fatalf("mosaic %dx%dx%d", out.W, out.H, out.Channels())
		}
		for _, b := range ob {
			if b.X0 < 0 || b.Y0 < 0 || b.X1 > 1 || b.Y1 > 1 || b.X1 <= b.X0 || b.Y1 <= b.Y0 {
				t.Fatalf("mosaic box outside the frame: %+v", b)
			}
			x, y := int((b.X0+b.X1)/2*64), int((b.Y0+b.Y1)/2*48)
			for c := 0; c < 3; c++ {
				if v := out.Plane(c).Pix[y*64+x]; !near(v, colours[b.Class][c], 1e-4) {
					t.Fatalf("seed %d: box of image %d centred on a pixel of another colour (%v)", s, b.Class, v)
				}
			}
			seen[b.Class] = true
		}
	}
	if len(seen) != 4 {
		t.Fatalf("objects of only %d of the 4 images survived 10 mosaics", len(seen))
	}
}

func TestMosaicClosesForTheLastEpochs(t *testing.T) {
	c := Colour(nn.Detect)
	if c.Mosaic.P != 1 || Colour(nn.Classify).Mosaic.P != 0 {
		t.Fatal("mosaic should be on for colour detection only")
	}
	if c.ForEpoch(90, 100).Mosaic.P != 1 || c.ForEpoch(91, 100).Mosaic.P != 0 {
		t.Fatal("mosaic should close for the last 10 of 100 epochs")
	}
	if c.ForEpoch(5, 10).Mosaic.P != 1 || c.ForEpoch(6, 10).Mosaic.P != 0 {
		t.Fatal("mosaic should close for the last half of 10 epochs")
	}
}

func TestValidateRefusesBadColourSettings(t *testing.T) {
	for _, c := range []Config{{HSV: HSV{P: 1, H: 0.7}}, {HSV: HSV{P: 1, S: -0.1}}, {Translate: 1.2},
		{CloseMosaic: -1}, {Mosaic: Op{P: 2}}} {
		if c.Validate() == nil {
			t.Errorf("accepted %+v", c)
		}
	}
	for _, c := range []Config{Default(), Colour(nn.Detect), Colour(nn.Classify), None()} {
		if err := c.Validate(); err != nil {
			t.Errorf("refused a default: %v", err)
		}
	}
}

// The strong view moves an image further than the pipeline it comes from, on grey
// digits and colour alike, stays valid, and keeps what the pipeline leaves off off.
func TestStrongIsStronger(t *testing.T) {
	for _, c := range []Config{Default(), Colour(nn.Classify)} {
		s := c.Strong()
		if err := s.Validate(); err != nil {
			t.Fatalf("strong view of %+v: %v", c, err)
		}
		if s.FlipH != c.FlipH || s.Mosaic != c.Mosaic || (c.Rotate.P == 0) != (s.Rotate.P == 0) {
			t.Fatalf("strong view turned on what the pipeline has off: %+v", s)
		}
		if s.Cutout.P != 1 || s.Rotate.Magnitude > 30 || s.ScaleTranslate.Magnitude > 0.3 {
			t.Fatalf("strong view out of RandAugment's ranges: %+v", s)
		}
		im := colourImage(28, 28)
		moved := func(c Config) float64 {
			r := rng()
			var d float64
			for range 200 {
				out, _ := c.Apply(im, nil, r)
				for i, v := range out.Pix {
					d += math.Abs(float64(v - im.Pix[i]))
				}
			}
			return d
		}
		if weak, strong := moved(c), moved(s); strong < 1.3*weak {
			t.Fatalf("strong view moved the pixels %.0f, the pipeline %.0f", strong, weak)
		}
	}
}
