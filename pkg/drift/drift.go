// Package drift names reproducible shifts of the image distribution: what a simulated
// edge fleet meets in production and the base model has not seen. Each preset changes a
// digit image (or a whole scene) the same way for the same random source, and some also
// change how digit scenes are laid out.
package drift

import (
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/edgeloop/edgeloop/pkg/raster"
)

// Preset is one named shift.
type Preset struct {
	Name        string
	Description string
	// Digit changes one white-on-black digit image (classification frames, and each
	// digit of a scene before it is placed). Nil: unchanged.
	Digit func(im *raster.Image, r *rand.Rand) *raster.Image
	// Frame changes a whole frame (a classification frame or a composed scene). Nil:
	// unchanged.
	Frame func(im *raster.Image, r *rand.Rand) *raster.Image
	// ClassifyFrame changes classification frames only (scenes use Backgrounds).
	ClassifyFrame func(im *raster.Image, r *rand.Rand) *raster.Image
	// ScaleRange, when set, replaces the digit height range of scenes, in pixels.
	ScaleRange [2]int
	// Backgrounds, when set, replaces the backgrounds of scenes (see package scenes).
	Backgrounds []string
	// Site, when set, moves colour data to another site's backgrounds (see package
	// colourscenes: "home" is the training site, "new" another one).
	Site string
	// ObjectScale, when set, multiplies the size of colour objects by a factor drawn from
	// the range.
	ObjectScale [2]float64
}

// None is the training distribution.
const None = "none"

// presets builds the catalogue (a function, so that nothing is shared mutable state).
func presets() map[string]Preset {
	ps := []Preset{
		{Name: None, Description: "the training distribution"},
		{Name: "rotation", Description: "digits rotated 25–45° either way",
			Digit: func(im *raster.Image, r *rand.Rand) *raster.Image {
				deg := 25 + r.Float64()*20
				if r.IntN(2) == 0 {
					deg = -deg
				}
				return raster.Warp(im, raster.Rotation(float64(im.W)/2, float64(im.H)/2, deg, 1), 0)
			}},
		{Name: "blur", Description: "out-of-focus camera: Gaussian blur σ 1.3–1.8 px",
			Frame: func(im *raster.Image, r *rand.Rand) *raster.Image { return raster.Blur(im, 1.3+r.Float64()*0.5) }},
		{Name: "contrast", Description: "washed-out light: pixel range squeezed to 30% around mid-grey",
			Frame: func(im *raster.Image, r *rand.Rand) *raster.Image {
				out := im.Clone()
				lo := float32(0.35 + r.Float64()*0.1)
				for i, v := range out.Pix {
					out.Pix[i] = lo + v*0.3
				}
				return out
			}},
		{Name: "noise", Description: "sensor noise: Gaussian σ 0.2 per pixel",
			Frame: func(im *raster.Image, r *rand.Rand) *raster.Image {
				out := im.Clone()
				for i := range out.Pix {
					out.Pix[i] += float32(r.NormFloat64() * 0.2)
				}
				return out.Clamp()
			}},
		{Name: "stroke", Description: "a thicker pen: strokes dilated by 1 px",
			Digit: func(im *raster.Image, _ *rand.Rand) *raster.Image { return raster.Dilate(im, 1) }},
		{Name: "thin", Description: "a finer pen: strokes eroded by 1 px (faint, broken digits)",
			Digit: func(im *raster.Image, _ *rand.Rand) *raster.Image {
				out := raster.Erode(raster.Resize(im, im.W*2, im.H*2), 1)
				return raster.Resize(out, im.W, im.H)
			}},
		{Name: "scale", Description: "a farther camera: digits at 45–60% size (classify), 8–13 px tall (detect)",
			Digit: func(im *raster.Image, r *rand.Rand) *raster.Image {
				s := 0.45 + r.Float64()*0.15
				return raster.Warp(im, raster.Rotation(float64(im.W)/2, float64(im.H)/2, 0, s), 0)
			},
			ScaleRange: [2]int{8, 13}},
		{Name: "background", Description: "a new site: textured, brighter backgrounds behind the digits",
			ClassifyFrame: func(im *raster.Image, r *rand.Rand) *raster.Image {
				bg := Texture(im.W, im.H, r)
				out := bg.Clone()
				for i, v := range im.Pix {
					out.Pix[i] = bg.Pix[i]*(1-v) + v
				}
				return out
			},
			Backgrounds: []string{"texture", "bright"}},
		{Name: "invert", Description: "dark digits on a light background",
			Frame: func(im *raster.Image, _ *rand.Rand) *raster.Image {
				out := im.Clone()
				for i, v := range out.Pix {
					out.Pix[i] = 1 - v
				}
				return out
			}},
	}
	m := make(map[string]Preset, len(ps))
	for _, p := range ps {
		m[p.Name] = p
	}
	return m
}

// Get returns the preset called name.
func Get(name string) (Preset, error) {
	if name == "" {
		name = None
	}
	p, ok := presets()[name]
	if !ok {
		return Preset{}, fmt.Errorf("unknown drift preset %q (have: %v)", name, Names())
	}
	return p, nil
}

// Names lists the presets, "none" first.
func Names() []string {
	var out []string
	for n := range presets() {
		if n != None {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return append([]string{None}, out...)
}

// ApplyDigit runs the preset's digit change, if any.
func (p Preset) ApplyDigit(im *raster.Image, r *rand.Rand) *raster.Image {
	if p.Digit == nil {
		return im
	}
	return p.Digit(im, r).Clamp()
}

// ApplyFrame runs the preset's frame change, if any.
func (p Preset) ApplyFrame(im *raster.Image, r *rand.Rand) *raster.Image {
	if p.Frame == nil {
		return im
	}
	return p.Frame(im, r).Clamp()
}

// Classification turns one MNIST digit into a classification frame under the preset:
// digit change, classification-frame change, frame change.
func (p Preset) Classification(digit *raster.Image, r *rand.Rand) *raster.Image {
	im := p.ApplyDigit(digit, r)
	if p.ClassifyFrame != nil {
		im = p.ClassifyFrame(im, r).Clamp()
	}
	return p.ApplyFrame(im, r)
}

// Texture is a smooth random texture in [0.25, 0.65]: value noise at two scales.
func Texture(w, h int, r *rand.Rand) *raster.Image {
	out := raster.New(w, h)
	for _, cell := range []int{8, 3} {
		gw, gh := w/cell+2, h/cell+2
		grid := raster.New(gw, gh)
		for i := range grid.Pix {
			grid.Pix[i] = r.Float32()
		}
		up := raster.Resize(grid, gw*cell, gh*cell)
		amp := float32(0.25)
		if cell == 3 {
			amp = 0.15
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				out.Pix[y*w+x] += amp * up.Pix[y*up.W+x]
			}
		}
	}
	for i := range out.Pix {
		out.Pix[i] += 0.25
	}
	return out.Clamp()
}
