// Package scenes makes "digit scenes", the detection data: canvases with 1–4 MNIST
// digits at random scales and positions on varied backgrounds, each with the box of its
// ink and its class. Train scenes use MNIST's train digits, test scenes its test digits;
// the same seed gives the same scenes.
package scenes

import (
	"fmt"
	"math/rand/v2"

	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// Config lays scenes out.
type Config struct {
	// Side of the square canvas in pixels (default 64).
	Side int
	// MinDigits and MaxDigits per scene (default 1–4).
	MinDigits, MaxDigits int
	// MinScale and MaxScale bound a digit's height in pixels (default 14–32).
	MinScale, MaxScale int
	// Backgrounds to draw from: flat, gradient, texture, bright (default: the first
	// three).
	Backgrounds []string
	// Grid is the detector's grid: no two digit centres share a cell (default 8).
	Grid int
}

func (c Config) withDefaults() Config {
	if c.Side == 0 {
		c.Side = 64
	}
	if c.MinDigits == 0 {
		c.MinDigits, c.MaxDigits = 1, 4
	}
	if c.MinScale == 0 {
		c.MinScale, c.MaxScale = 14, 32
	}
	if len(c.Backgrounds) == 0 {
		c.Backgrounds = []string{"flat", "gradient", "texture"}
	}
	if c.Grid == 0 {
		c.Grid = 8
	}
	return c
}

// Scene is one canvas and its ground truth (normalised boxes).
type Scene struct {
	Image *raster.Image
	Boxes []nn.Box
	// Digits are the MNIST indices used, for provenance.
	Digits []int
}

// Generate makes n scenes from set under the drift preset, reproducibly from seed.
func Generate(set *mnist.Set, n int, seed uint64, c Config, d drift.Preset) ([]Scene, error) {
	c = c.withDefaults()
	if d.ScaleRange[1] > 0 {
		c.MinScale, c.MaxScale = d.ScaleRange[0], d.ScaleRange[1]
	}
	if len(d.Backgrounds) > 0 {
		c.Backgrounds = d.Backgrounds
	}
	for _, b := range c.Backgrounds {
		if !knownBackground(b) {
			return nil, fmt.Errorf("scenes: unknown background %q (have flat, gradient, texture, bright)", b)
		}
	}
	if c.MinDigits < 1 || c.MaxDigits < c.MinDigits || c.MinScale < 4 || c.MaxScale < c.MinScale || c.MaxScale >= c.Side {
		return nil, fmt.Errorf("scenes: bad layout %+v", c)
	}
	out := make([]Scene, n)
	for i := range out {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		out[i] = one(set, r, c, d)
	}
	return out, nil
}

func knownBackground(b string) bool {
	return b == "flat" || b == "gradient" || b == "texture" || b == "bright"
}

func one(set *mnist.Set, r *rand.Rand, c Config, d drift.Preset) Scene {
	bg := Background(c.Backgrounds[r.IntN(len(c.Backgrounds))], c.Side, r)
	sc := Scene{Image: bg}
	want := c.MinDigits + r.IntN(c.MaxDigits-c.MinDigits+1)
	used := map[[2]int]bool{}
	for tries := 0; len(sc.Boxes) < want && tries < 60; tries++ {
		idx := r.IntN(set.Len())
		digit := d.ApplyDigit(raster.FromBytes(mnist.Side, mnist.Side, set.Images[idx]), r)
		x0, y0, x1, y1, ok := raster.InkBounds(digit, 0.2)
		if !ok {
			continue
		}
		// Scale so that the ink is h pixels tall.
		h := c.MinScale + r.IntN(c.MaxScale-c.MinScale+1)
		s := float64(h) / float64(y1-y0)
		size := int(float64(mnist.Side)*s + 0.5)
		scaled := raster.Resize(digit, size, size)
		ix0, iy0 := int(float64(x0)*s), int(float64(y0)*s)
		ix1, iy1 := int(float64(x1)*s+0.999), int(float64(y1)*s+0.999)
		iw, ih := ix1-ix0, iy1-iy0
		if iw >= c.Side || ih >= c.Side {
			continue
		}
		px := r.IntN(c.Side-iw) - ix0
		py := r.IntN(c.Side-ih) - iy0
		box := nn.Box{
			X0: float32(px+ix0) / float32(c.Side), Y0: float32(py+iy0) / float32(c.Side),
			X1: float32(px+ix1) / float32(c.Side), Y1: float32(py+iy1) / float32(c.Side),
			Class: int(set.Labels[idx]),
		}
		cell := [2]int{int((box.X0 + box.X1) / 2 * float32(c.Grid)), int((box.Y0 + box.Y1) / 2 * float32(c.Grid))}
		if used[cell] || overlaps(box, sc.Boxes) {
			continue
		}
		used[cell] = true
		ink := inkFor(bg, r)
		raster.Composite(sc.Image, scaled, px, py, ink)
		sc.Boxes = append(sc.Boxes, box)
		sc.Digits = append(sc.Digits, idx)
	}
	sc.Image = d.ApplyFrame(sc.Image, r)
	return sc
}

// overlaps reports whether b covers much of a placed box (digits may touch, not hide).
func overlaps(b nn.Box, placed []nn.Box) bool {
	for _, p := range placed {
		if nn.IoU(b, p) > 0.15 {
			return true
		}
	}
	return false
}

// inkFor picks a digit brightness that stands out from the background.
func inkFor(bg *raster.Image, r *rand.Rand) float32 {
	var mean float32
	for _, v := range bg.Pix {
		mean += v
	}
	mean /= float32(len(bg.Pix))
	if mean > 0.55 {
		return 0.05 + r.Float32()*0.15 // dark ink on a bright background
	}
	return 0.8 + r.Float32()*0.2
}

// Background draws a named background (flat, gradient, texture or bright; anything else
// is flat).
func Background(kind string, side int, r *rand.Rand) *raster.Image {
	switch kind {
	case "gradient":
		im := raster.New(side, side)
		a, b := r.Float32()*0.35, r.Float32()*0.35
		horizontal := r.IntN(2) == 0
		for y := 0; y < side; y++ {
			for x := 0; x < side; x++ {
				t := float32(x) / float32(side-1)
				if !horizontal {
					t = float32(y) / float32(side-1)
				}
				im.Pix[y*side+x] = a + (b-a)*t
			}
		}
		return im
	case "texture":
		im := drift.Texture(side, side, r)
		for i := range im.Pix {
			im.Pix[i] *= 0.6
		}
		return im
	case "bright":
		im := drift.Texture(side, side, r)
		for i := range im.Pix {
			im.Pix[i] = 0.55 + im.Pix[i]*0.6
		}
		return im.Clamp()
	default:
		return raster.Filled(side, side, r.Float32()*0.3)
	}
}
