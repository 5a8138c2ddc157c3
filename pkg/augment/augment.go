// Package augment perturbs training images as they are fed to the network, so that it
// learns the patterns of the objects rather than the few examples it saw
// (training-overview: "Data Augmentation"). Each operation has a probability and a
// magnitude, configured per project; geometric ones move the boxes with the image. The
// defaults suit digits: small rotations, shifts and photometric changes, and no flips (a
// flipped 2 is no digit).
package augment

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// Op is one operation: applied with probability P at most Magnitude strong.
type Op struct {
	P         float64 `json:"p"`
	Magnitude float64 `json:"magnitude"`
}

// Config is a project's augmentation pipeline, applied in field order.
type Config struct {
	// FlipH / FlipV mirror the image (Magnitude unused).
	FlipH Op `json:"flip_h"`
	FlipV Op `json:"flip_v"`
	// Rotate by up to Magnitude degrees either way.
	Rotate Op `json:"rotate"`
	// ScaleTranslate scales by up to ±Magnitude and shifts by up to Magnitude of the side.
	ScaleTranslate Op `json:"scale_translate"`
	// BrightnessContrast shifts brightness and scales contrast by up to ±Magnitude.
	BrightnessContrast Op `json:"brightness_contrast"`
	// Noise adds Gaussian noise of σ up to Magnitude.
	Noise Op `json:"noise"`
	// Blur by σ up to Magnitude pixels.
	Blur Op `json:"blur"`
	// Cutout blanks a square of up to Magnitude of the side.
	Cutout Op `json:"cutout"`
}

// Default is the pipeline for digits.
func Default() Config {
	return Config{
		Rotate:             Op{P: 0.5, Magnitude: 12},
		ScaleTranslate:     Op{P: 0.5, Magnitude: 0.1},
		BrightnessContrast: Op{P: 0.5, Magnitude: 0.25},
		Noise:              Op{P: 0.3, Magnitude: 0.08},
		Blur:               Op{P: 0.2, Magnitude: 1.0},
		Cutout:             Op{P: 0.2, Magnitude: 0.25},
	}
}

// None turns augmentation off.
func None() Config { return Config{} }

// Validate reports an out-of-range setting.
func (c Config) Validate() error {
	for name, op := range map[string]Op{"flip_h": c.FlipH, "flip_v": c.FlipV, "rotate": c.Rotate,
		"scale_translate": c.ScaleTranslate, "brightness_contrast": c.BrightnessContrast,
		"noise": c.Noise, "blur": c.Blur, "cutout": c.Cutout} {
		if op.P < 0 || op.P > 1 || math.IsNaN(op.P) {
			return fmt.Errorf("augment %s: probability %v outside [0,1]", name, op.P)
		}
		if op.Magnitude < 0 || math.IsNaN(op.Magnitude) {
			return fmt.Errorf("augment %s: negative magnitude %v", name, op.Magnitude)
		}
	}
	if c.ScaleTranslate.Magnitude >= 1 || c.Cutout.Magnitude > 1 {
		return fmt.Errorf("augment: scale_translate and cutout magnitudes must stay below 1")
	}
	return nil
}

// Apply returns an augmented copy of im and its boxes (normalised; nil for
// classification). Boxes that leave the image are clipped, and dropped when less than a
// third of them stays inside.
func (c Config) Apply(im *raster.Image, boxes []nn.Box, r *rand.Rand) (*raster.Image, []nn.Box) {
	w, h := float64(im.W), float64(im.H)
	m := raster.Identity()
	geometric := false
	if hit(r, c.FlipH) {
		m, geometric = m.Then(raster.Affine{A: -1, C: w, E: 1}), true
	}
	if hit(r, c.FlipV) {
		m, geometric = m.Then(raster.Affine{A: 1, E: -1, F: h}), true
	}
	if hit(r, c.Rotate) {
		m, geometric = m.Then(raster.Rotation(w/2, h/2, sym(r)*c.Rotate.Magnitude, 1)), true
	}
	if hit(r, c.ScaleTranslate) {
		mg := c.ScaleTranslate.Magnitude
		m = m.Then(raster.Rotation(w/2, h/2, 0, 1+sym(r)*mg)).Then(raster.Translation(sym(r)*mg*w, sym(r)*mg*h))
		geometric = true
	}
	out := im
	if geometric {
		out = raster.Warp(im, m, border(im))
		boxes = moveBoxes(boxes, m, w, h)
	} else {
		out = im.Clone()
	}
	if hit(r, c.BrightnessContrast) {
		mg := float32(c.BrightnessContrast.Magnitude)
		b, k := float32(sym(r))*mg, 1+float32(sym(r))*mg
		for i, v := range out.Pix {
			out.Pix[i] = (v-0.5)*k + 0.5 + b
		}
	}
	if hit(r, c.Noise) {
		s := r.Float64() * c.Noise.Magnitude
		for i := range out.Pix {
			out.Pix[i] += float32(r.NormFloat64() * s)
		}
	}
	if hit(r, c.Blur) {
		out = raster.Blur(out, r.Float64()*c.Blur.Magnitude)
	}
	if hit(r, c.Cutout) {
		side := int(r.Float64() * c.Cutout.Magnitude * math.Min(w, h))
		if side > 0 {
			x0, y0 := r.IntN(im.W-side+1), r.IntN(im.H-side+1)
			fill := float32(r.Float64())
			for y := y0; y < y0+side; y++ {
				for x := x0; x < x0+side; x++ {
					out.Pix[y*im.W+x] = fill
				}
			}
		}
	}
	return out.Clamp(), boxes
}

func hit(r *rand.Rand, op Op) bool { return op.P > 0 && op.Magnitude >= 0 && r.Float64() < op.P }

// sym is uniform in [-1, 1].
func sym(r *rand.Rand) float64 { return 2*r.Float64() - 1 }

// border is the mean of the image's edge pixels: what a warp fills uncovered space with.
func border(im *raster.Image) float32 {
	var s float32
	n := 0
	for x := 0; x < im.W; x++ {
		s += im.Pix[x] + im.Pix[(im.H-1)*im.W+x]
		n += 2
	}
	for y := 0; y < im.H; y++ {
		s += im.Pix[y*im.W] + im.Pix[y*im.W+im.W-1]
		n += 2
	}
	return s / float32(n)
}

// moveBoxes maps each box's corners through m and keeps the enclosing box, clipped.
func moveBoxes(boxes []nn.Box, m raster.Affine, w, h float64) []nn.Box {
	if boxes == nil {
		return nil
	}
	out := make([]nn.Box, 0, len(boxes))
	for _, b := range boxes {
		x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
		for _, p := range [][2]float64{{float64(b.X0), float64(b.Y0)}, {float64(b.X1), float64(b.Y0)}, {float64(b.X0), float64(b.Y1)}, {float64(b.X1), float64(b.Y1)}} {
			x, y := m.Apply(p[0]*w, p[1]*h)
			x0, y0, x1, y1 = math.Min(x0, x), math.Min(y0, y), math.Max(x1, x), math.Max(y1, y)
		}
		full := (x1 - x0) * (y1 - y0)
		cx0, cy0, cx1, cy1 := math.Max(0, x0), math.Max(0, y0), math.Min(w, x1), math.Min(h, y1)
		if cx1 <= cx0 || cy1 <= cy0 || (cx1-cx0)*(cy1-cy0) < full/3 {
			continue
		}
		out = append(out, nn.Box{X0: float32(cx0 / w), Y0: float32(cy0 / h), X1: float32(cx1 / w), Y1: float32(cy1 / h), Class: b.Class})
	}
	return out
}
