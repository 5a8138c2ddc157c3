package drift

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/raster"
)

func mean(p *raster.Image) float64 {
	var s float64
	for _, v := range p.Pix {
		s += float64(v)
	}
	return s / float64(len(p.Pix))
}

// grey returns a w×h colour image of value v on every channel, with a little texture.
func grey(w, h int, v float32) *raster.Image {
	im := raster.NewC(w, h, 3)
	for c := 0; c < 3; c++ {
		pl := im.Plane(c)
		for i := range pl.Pix {
			pl.Pix[i] = v + 0.1*float32((i/7)%3-1)
		}
	}
	return im
}

func TestColourPresetsAreNamedAndSeparate(t *testing.T) {
	colour := NamesFor(true)
	for _, want := range []string{None, "new-site", "white-balance", "low-light", "motion-blur", "jpeg", "far"} {
		if !slices.Contains(colour, want) {
			t.Fatalf("colour presets %v lack %s", colour, want)
		}
	}
	digits := NamesFor(false)
	if slices.Contains(digits, "low-light") || !slices.Contains(digits, "rotation") || digits[0] != None {
		t.Fatalf("digit presets %v", digits)
	}
	if len(colour)+len(digits)-1 != len(Names()) {
		t.Fatalf("%d colour + %d digit presets (none in both) != %d in all", len(colour), len(digits), len(Names()))
	}
	p, _ := Get("new-site")
	if p.Site != "new" || !p.Colour {
		t.Fatalf("new-site: %+v", p)
	}
	if f, _ := Get("far"); f.ObjectScale[1] >= 1 || f.ObjectScale[0] <= 0 {
		t.Fatalf("far scales objects by %v", f.ObjectScale)
	}
}

func TestWhiteBalanceTintsGrey(t *testing.T) {
	p, _ := Get("white-balance")
	for s := uint64(0); s < 6; s++ {
		out := p.ApplyFrame(grey(16, 16, 0.5), rand.New(rand.NewPCG(s, 0)))
		r, b := mean(out.Plane(0)), mean(out.Plane(2))
		if math.Abs(r-b) < 0.15 {
			t.Fatalf("seed %d: red %.2f and blue %.2f still alike after the white balance shift", s, r, b)
		}
	}
}

func TestLowLightDarkensAndAddsNoise(t *testing.T) {
	p, _ := Get("low-light")
	flat := raster.NewC(32, 32, 3)
	for i := range flat.Pix {
		flat.Pix[i] = 0.8
	}
	out := p.ApplyFrame(flat, rand.New(rand.NewPCG(1, 1)))
	m := mean(out)
	var varSum float64
	for _, v := range out.Pix {
		varSum += (float64(v) - m) * (float64(v) - m)
	}
	sd := math.Sqrt(varSum / float64(len(out.Pix)))
	if m > 0.35 || m < 0.1 || sd < 0.02 {
		t.Fatalf("low light: mean %.3f (want 0.1–0.35 from 0.8), noise σ %.3f (want ≥ 0.02)", m, sd)
	}
}

// A single bright pixel becomes a streak along the blur's angle, and the light is kept.
func TestMotionBlurStreaksAlongItsAngle(t *testing.T) {
	im := raster.NewC(41, 41, 3)
	for c := 0; c < 3; c++ {
		im.Plane(c).Pix[20*41+20] = 1
	}
	out := MotionBlur(im, 9, 0)
	for x := 16; x <= 24; x++ {
		if v := out.Plane(1).Pix[20*41+x]; math.Abs(float64(v)-1.0/9) > 0.02 {
			t.Fatalf("horizontal blur: pixel (%d,20) = %.3f, want 1/9", x, v)
		}
	}
	if out.Plane(1).Pix[17*41+20] != 0 || out.Plane(1).Pix[20*41+26] != 0 {
		t.Fatal("horizontal blur spread vertically or past its length")
	}
	vert := MotionBlur(im, 9, 90)
	if v := vert.Plane(0).Pix[17*41+20]; math.Abs(float64(v)-1.0/9) > 0.02 {
		t.Fatalf("vertical blur: pixel (20,17) = %.3f, want 1/9", v)
	}
	if s := mean(out) * 41 * 41 * 3; math.Abs(s-3) > 0.01 {
		t.Fatalf("blur changed the total light: %.3f, want 3", s)
	}
}

func TestJPEGKeepsShapeAndChangesPixels(t *testing.T) {
	p, _ := Get("jpeg")
	im := raster.NewC(40, 24, 3)
	r := rand.New(rand.NewPCG(2, 2))
	for i := range im.Pix {
		im.Pix[i] = r.Float32()
	}
	out := p.ApplyFrame(im, rand.New(rand.NewPCG(1, 1)))
	if out.W != 40 || out.H != 24 || out.Channels() != 3 {
		t.Fatalf("jpeg: %dx%dx%d", out.W, out.H, out.Channels())
	}
	var diff float64
	for i := range out.Pix {
		diff += math.Abs(float64(out.Pix[i] - im.Pix[i]))
	}
	if diff/float64(len(out.Pix)) < 0.05 {
		t.Fatalf("jpeg at low quality changed pixels by only %.3f on average", diff/float64(len(out.Pix)))
	}
	g := p.ApplyFrame(im.Luma(), rand.New(rand.NewPCG(1, 1)))
	if g.Channels() != 1 {
		t.Fatalf("jpeg of a grey frame has %d channels", g.Channels())
	}
}
