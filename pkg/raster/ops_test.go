package raster

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// areaReference is the area average written out pixel by pixel: each output pixel is
// the mean of the source pixels under its footprint, weighted by their overlap.
func areaReference(im *Image, w, h int) *Image {
	out := New(w, h)
	sx, sy := float64(im.W)/float64(w), float64(im.H)/float64(h)
	for y := 0; y < h; y++ {
		y0, y1 := float64(y)*sy, float64(y+1)*sy
		for x := 0; x < w; x++ {
			x0, x1 := float64(x)*sx, float64(x+1)*sx
			var sum, area float64
			for py := int(y0); py < int(math.Ceil(y1)) && py < im.H; py++ {
				hy := math.Min(y1, float64(py+1)) - math.Max(y0, float64(py))
				for px := int(x0); px < int(math.Ceil(x1)) && px < im.W; px++ {
					hx := math.Min(x1, float64(px+1)) - math.Max(x0, float64(px))
					sum += float64(im.Pix[py*im.W+px]) * hx * hy
					area += hx * hy
				}
			}
			out.Pix[y*w+x] = float32(sum / area)
		}
	}
	return out
}

// TestShrinkAveragesTheFootprint: the separable area resize gives every output pixel
// the overlap-weighted mean of the source pixels under it, for every plane, on both
// axes shrinking, on one axis only, and at scales that are not whole numbers.
func TestShrinkAveragesTheFootprint(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ inW, inH, w, h, ch int }{
		{640, 480, 320, 240, 3}, {97, 61, 13, 9, 1}, {50, 20, 17, 40, 3}, {20, 50, 40, 17, 1}, {33, 33, 32, 31, 3}, {8, 8, 1, 1, 1},
	} {
		t.Run(fmt.Sprintf("%dx%d to %dx%d", c.inW, c.inH, c.w, c.h), func(t *testing.T) {
			im := NewC(c.inW, c.inH, c.ch)
			for i := range im.Pix {
				im.Pix[i] = r.Float32()
			}
			got := Resize(im, c.w, c.h)
			if got.W != c.w || got.H != c.h || got.Channels() != c.ch {
				t.Fatalf("got %dx%d×%d", got.W, got.H, got.Channels())
			}
			for k := 0; k < c.ch; k++ {
				want := areaReference(im.Plane(k), c.w, c.h)
				for i, v := range want.Pix {
					if d := math.Abs(float64(v - got.Plane(k).Pix[i])); d > 1e-6 {
						t.Fatalf("plane %d pixel (%d, %d): %v, want %v", k, i%c.w, i/c.w, got.Plane(k).Pix[i], v)
					}
				}
			}
		})
	}
}

// BenchmarkShrink is mosaic's resize: a 640×480 colour photo to a quarter.
func BenchmarkShrink(b *testing.B) {
	im := NewC(640, 480, 3)
	for i := range im.Pix {
		im.Pix[i] = float32(i%255) / 255
	}
	b.Run("separable", func(b *testing.B) {
		for range b.N {
			Resize(im, 213, 160)
		}
	})
	b.Run("per pixel (before)", func(b *testing.B) {
		for range b.N {
			for k := 0; k < 3; k++ {
				areaReference(im.Plane(k), 213, 160)
			}
		}
	})
}
