// Package drift names reproducible shifts of the image distribution: what a simulated
// edge fleet meets in production and the base model has not seen. Each preset changes a
// digit image (or a whole scene) the same way for the same random source, and some also
// change how digit scenes are laid out. Colour presets (Colour set) shift colour data
// (package colourscenes): a new site, white balance, low light with noise, motion blur,
// JPEG artefacts and a farther camera; they work on grey images too.
package drift

import (
	"fmt"
	"math"
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
	// Colour marks a preset for colour data (datasets colour-objects and colour-scenes);
	// the others are for digits.
	Colour bool
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
	ps = append(ps, colourPresets()...)
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

// Names lists every preset, "none" first.
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

// NamesFor lists the presets for colour data (colour) or for digits, "none" first.
func NamesFor(colour bool) []string {
	all := presets()
	var out []string
	for _, n := range Names() {
		if n == None || all[n].Colour == colour {
			out = append(out, n)
		}
	}
	return out
}

// colourPresets are the shifts of colour data: what a camera moved, re-tuned or
// degraded does to its pictures.
func colourPresets() []Preset {
	return []Preset{
		{Name: "new-site", Colour: true, Site: "new",
			Description: "a new site: other backgrounds (photographs the home site never shows)"},
		{Name: "white-balance", Colour: true,
			Description: "a mistuned white balance: red and blue gains 0.65–1.35, warm or cool",
			Frame: func(im *raster.Image, r *rand.Rand) *raster.Image {
				if im.Channels() < 3 {
					return Gain(im, []float32{0.75 + 0.1*r.Float32()})
				}
				warm := 1.2 + 0.15*r.Float32()
				cool := 0.65 + 0.15*r.Float32()
				green := 0.95 + 0.1*r.Float32()
				if r.IntN(2) == 0 {
					return Gain(im, []float32{warm, green, cool})
				}
				return Gain(im, []float32{cool, green, warm})
			}},
		{Name: "low-light", Colour: true,
			Description: "low light: 20–35 % of the exposure with sensor noise (σ 0.03–0.05 plus shot noise)",
			Frame: func(im *raster.Image, r *rand.Rand) *raster.Image {
				k := 0.2 + 0.15*r.Float32()
				sigma := 0.03 + 0.02*r.Float64()
				out := im.Clone()
				for i, v := range out.Pix {
					v *= k
					out.Pix[i] = v + float32(r.NormFloat64()*(sigma+0.05*math.Sqrt(float64(v))))
				}
				return out
			}},
		{Name: "motion-blur", Colour: true,
			Description: "motion blur: a streak 7–15 px long at a random angle",
			Frame: func(im *raster.Image, r *rand.Rand) *raster.Image {
				return MotionBlur(im, 7+r.IntN(9), r.Float64()*180)
			}},
		{Name: "jpeg", Colour: true,
			Description: "heavy JPEG compression: quality 8–20",
			Frame: func(im *raster.Image, r *rand.Rand) *raster.Image {
				out, err := raster.DecodeChannels(im.EncodeJPEG(8+r.IntN(13)), 0, im.Channels())
				if err != nil {
					return im // our own encoding decodes
				}
				return out
			}},
		{Name: "far", Colour: true, ObjectScale: [2]float64{0.3, 0.5},
			Description: "a farther camera: objects at 30–50 % of their size"},
	}
}

// Gain multiplies each channel by its gain (the last gain serves the channels past it).
func Gain(im *raster.Image, gains []float32) *raster.Image {
	out := im.Clone()
	for c := 0; c < out.Channels(); c++ {
		g := gains[min(c, len(gains)-1)]
		pl := out.Plane(c)
		for i, v := range pl.Pix {
			pl.Pix[i] = v * g
		}
	}
	return out
}

// MotionBlur averages length samples along a line at angle degrees through each pixel,
// as a camera or object moving during the exposure smears it.
func MotionBlur(im *raster.Image, length int, angle float64) *raster.Image {
	if length < 2 {
		return im.Clone()
	}
	dx, dy := math.Cos(angle*math.Pi/180), math.Sin(angle*math.Pi/180)
	out := raster.NewC(im.W, im.H, im.Channels())
	w := 1 / float32(length)
	for c := 0; c < im.Channels(); c++ {
		src, dst := im.Plane(c), out.Plane(c)
		for k := 0; k < length; k++ {
			t := float64(k) - float64(length-1)/2
			ox, oy := t*dx, t*dy
			for y := 0; y < im.H; y++ {
				sy := min(float64(im.H)-0.5, max(0.5, float64(y)+0.5+oy))
				for x := 0; x < im.W; x++ {
					sx := min(float64(im.W)-0.5, max(0.5, float64(x)+0.5+ox))
					dst.Pix[y*im.W+x] += w * src.Sample(sx, sy, 0)
				}
			}
		}
	}
	return out
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
