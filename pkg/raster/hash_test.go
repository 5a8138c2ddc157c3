package raster

import (
	"math/rand/v2"
	"testing"
)

// TestThumbnailSeesColour: the same colour picture with sensor noise is the same
// picture; the same shapes in other colours (equal luma) are not; a grey picture and
// its colour copy are the same picture.
func TestThumbnailSeesColour(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	paint := func(ink [3]float32, noise float32) *Image {
		im := NewC(64, 48, 3)
		n := im.W * im.H
		for c := range 3 {
			for y := range im.H {
				for x := range im.W {
					v := float32(0.4) + 0.2*float32(x)/float32(im.W)
					if x >= 16 && x < 48 && y >= 8 && y < 40 {
						v = ink[c]
					}
					im.Pix[c*n+y*im.W+x] = v + noise*float32(r.NormFloat64())
				}
			}
		}
		return im.Clamp()
	}
	// Red and a green of (nearly) the same luma: 0.299·0.8 + 0.587·0.1 + 0.114·0.1 ≈ 0.31.
	red, green := [3]float32{0.8, 0.1, 0.1}, [3]float32{0.1, 0.42, 0.1}
	a, noisy, other := Thumbnail(paint(red, 0)), Thumbnail(paint(red, 0.01)), Thumbnail(paint(green, 0))
	if d := ThumbDistance(a, noisy); d > SameSceneDistance {
		t.Fatalf("the same picture with noise is %.4f apart, over %v", d, SameSceneDistance)
	}
	if d := ThumbDistance(a, other); d <= SameSceneDistance {
		t.Fatalf("red and green shapes are %.4f apart, within %v: taken for the same picture", d, SameSceneDistance)
	}
	grey := paint([3]float32{0.3, 0.3, 0.3}, 0).Luma()
	g := Thumbnail(grey)
	for _, v := range g.Chroma {
		if v != 128 {
			t.Fatalf("a grey picture's chroma %d, want 128", v)
		}
	}
	if d := ThumbDistance(g, Thumbnail(grey.WithChannels(3))); d != 0 {
		t.Fatalf("a grey picture and its colour copy are %.4f apart", d)
	}
}

// TestThumbsWithinAgreesWithThumbDistance: the early-stopping check answers as the full
// distance does, for pairs far apart, near the threshold and equal.
func TestThumbsWithinAgreesWithThumbDistance(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 5000; n++ {
		var a Thumb
		for i := range a.Luma {
			a.Luma[i] = uint8(r.IntN(256))
		}
		for i := range a.Chroma {
			a.Chroma[i] = uint8(96 + r.IntN(64))
		}
		b := a
		// Perturb a few cells of either by various amounts: from equal to far apart.
		for k := r.IntN(40); k > 0; k-- {
			plane := b.Luma[:]
			if r.IntN(3) == 0 {
				plane = b.Chroma[:]
			}
			i := r.IntN(len(plane))
			plane[i] = uint8(max(0, min(255, int(plane[i])+r.IntN(121)-60)))
		}
		if n%10 == 0 {
			for i := range b.Luma {
				b.Luma[i] = uint8(r.IntN(256))
			}
		}
		for _, d := range []float64{0, 0.005, SameSceneDistance, 0.05} {
			if got, want := ThumbsWithin(&a, &b, d), ThumbDistance(a, b) <= d; got != want {
				t.Fatalf("pair %d, d %v: ThumbsWithin %v, ThumbDistance %v", n, d, got, ThumbDistance(a, b))
			}
		}
	}
}
