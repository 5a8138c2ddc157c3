package scenes

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// ShapeClasses are the classes of shape scenes, in class-index order.
func ShapeClasses() []string { return []string{"rectangle", "ellipse", "triangle", "ring"} }

// ShapesConfig lays out shape scenes: multi-scale detection data made without any
// download, for the multi-scale detector's tests and benchmarks.
type ShapesConfig struct {
	// W, H are the canvas's sides in pixels (default 320×240); C its channels (1 grey,
	// 3 colour; default 3).
	W, H, C int
	// MinObjects, MaxObjects per scene (default 1–8 when MaxObjects is 0; MinObjects 0
	// allows empty scenes).
	MinObjects, MaxObjects int
	// MinSize, MaxSize bound a shape's longer side in pixels (default 8 to the canvas's
	// shorter side); sizes are log-uniform between them, so every scale is as likely.
	MinSize, MaxSize int
	// MaxOverlap is the largest IoU of a new shape with one already drawn (default
	// 0.3): shapes may partly hide each other.
	MaxOverlap float32
}

func (c ShapesConfig) withDefaults() ShapesConfig {
	if c.W == 0 {
		c.W, c.H = 320, 240
	}
	if c.C == 0 {
		c.C = 3
	}
	if c.MaxObjects == 0 {
		c.MinObjects, c.MaxObjects = max(c.MinObjects, 1), max(c.MinObjects, 8)
	}
	if c.MinSize == 0 {
		c.MinSize = 8
	}
	if c.MaxSize == 0 {
		c.MaxSize = min(c.W, c.H)
	}
	if c.MaxOverlap == 0 {
		c.MaxOverlap = 0.3
	}
	return c
}

// Shapes makes n scenes of filled rectangles, ellipses and triangles and hollow rings
// (ShapeClasses) of random colours over noisy gradient backgrounds, each with the
// box of its shape and its class, reproducibly from seed (scene i depends on seed and
// i only).
func Shapes(n int, seed uint64, c ShapesConfig) ([]Scene, error) {
	c = c.withDefaults()
	if c.W < 16 || c.H < 16 || (c.C != 1 && c.C != 3) || c.MinObjects < 0 || c.MaxObjects < c.MinObjects ||
		c.MinSize < 4 || c.MaxSize < c.MinSize || c.MaxSize > max(c.W, c.H) {
		return nil, fmt.Errorf("shape scenes: bad layout %+v", c)
	}
	out := make([]Scene, n)
	for i := range out {
		out[i] = shapeScene(rand.New(rand.NewPCG(seed, uint64(i)^0x5ca1ab1e)), c)
	}
	return out, nil
}

func shapeScene(r *rand.Rand, c ShapesConfig) Scene {
	im := raster.NewC(c.W, c.H, c.C)
	plane := c.W * c.H
	// Background: a gradient per channel with a little noise.
	for ch := 0; ch < c.C; ch++ {
		a, b := r.Float32()*0.6, r.Float32()*0.6
		horizontal := r.IntN(2) == 0
		for y := 0; y < c.H; y++ {
			for x := 0; x < c.W; x++ {
				t := float32(x) / float32(c.W-1)
				if !horizontal {
					t = float32(y) / float32(c.H-1)
				}
				im.Pix[ch*plane+y*c.W+x] = a + (b-a)*t + float32(r.NormFloat64()*0.03)
			}
		}
	}
	sc := Scene{Image: im}
	want := c.MinObjects + r.IntN(c.MaxObjects-c.MinObjects+1)
	lo, hi := math.Log(float64(c.MinSize)), math.Log(float64(c.MaxSize))
	for tries := 0; len(sc.Boxes) < want && tries < 40*max(want, 1); tries++ {
		long := math.Exp(lo + r.Float64()*(hi-lo))
		aspect := 0.5 + r.Float64() // short/long side
		w, h := long, long*aspect
		if r.IntN(2) == 0 {
			w, h = h, w
		}
		w, h = min(w, float64(c.W)), min(h, float64(c.H))
		x0 := r.Float64() * (float64(c.W) - w)
		y0 := r.Float64() * (float64(c.H) - h)
		b := nn.Box{X0: float32(x0 / float64(c.W)), Y0: float32(y0 / float64(c.H)),
			X1: float32((x0 + w) / float64(c.W)), Y1: float32((y0 + h) / float64(c.H)), Class: r.IntN(len(ShapeClasses()))}
		clash := false
		for _, p := range sc.Boxes {
			if nn.IoU(b, p) > c.MaxOverlap {
				clash = true
				break
			}
		}
		if clash {
			continue
		}
		ink := contrasting(im, x0, y0, w, h, r)
		drawShape(im, b.Class, x0, y0, w, h, ink)
		sc.Boxes = append(sc.Boxes, b)
	}
	im.Clamp()
	return sc
}

// contrasting picks a colour whose brightness differs from the background's under the
// shape's box by at least 0.35.
func contrasting(im *raster.Image, x0, y0, w, h float64, r *rand.Rand) []float32 {
	c := im.Channels()
	plane := im.W * im.H
	var mean float32
	n := 0
	for y := int(y0); y < int(y0+h) && y < im.H; y++ {
		for x := int(x0); x < int(x0+w) && x < im.W; x++ {
			for ch := 0; ch < c; ch++ {
				mean += im.Pix[ch*plane+y*im.W+x]
			}
			n += c
		}
	}
	mean /= float32(max(n, 1))
	ink := make([]float32, c)
	for {
		var m float32
		for ch := range ink {
			ink[ch] = r.Float32()
			m += ink[ch]
		}
		if d := m/float32(c) - mean; d > 0.35 || d < -0.35 {
			return ink
		}
	}
}

// drawShape fills shape class k inside the box (x0, y0, w, h) with ink, antialiased by
// 2×2 supersampling.
func drawShape(im *raster.Image, k int, x0, y0, w, h float64, ink []float32) {
	plane := im.W * im.H
	inside := func(x, y float64) bool {
		u, v := (x-x0)/w, (y-y0)/h // [0,1] within the box
		switch k {
		case 1: // ellipse
			du, dv := u-0.5, v-0.5
			return du*du+dv*dv <= 0.25
		case 2: // triangle, apex up
			return v >= 0 && v <= 1 && math.Abs(u-0.5) <= v/2
		case 3: // ring: an ellipse less its inner half
			du, dv := u-0.5, v-0.5
			d := du*du + dv*dv
			return d <= 0.25 && d >= 0.09
		}
		return u >= 0 && u <= 1 && v >= 0 && v <= 1
	}
	for y := max(0, int(y0)); y < min(im.H, int(math.Ceil(y0+h))); y++ {
		for x := max(0, int(x0)); x < min(im.W, int(math.Ceil(x0+w))); x++ {
			cover := 0
			for _, s := range [4][2]float64{{0.25, 0.25}, {0.75, 0.25}, {0.25, 0.75}, {0.75, 0.75}} {
				if inside(float64(x)+s[0], float64(y)+s[1]) {
					cover++
				}
			}
			if cover == 0 {
				continue
			}
			a := float32(cover) / 4
			for ch := range ink {
				p := &im.Pix[ch*plane+y*im.W+x]
				*p = *p*(1-a) + ink[ch]*a
			}
		}
	}
}
