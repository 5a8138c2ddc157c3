// Package augment perturbs training images as they are fed to the network, so that it
// learns the patterns of the objects rather than the few examples it saw
// (training-overview: "Data Augmentation"). Each operation has a probability and a
// magnitude, configured per project; geometric ones move the boxes with the image,
// clip them to the frame and drop the remnants too small to learn from. Default suits
// digits: small rotations, shifts and photometric changes. Colour adds what colour
// cameras need (Ultralytics' recipe): HSV jitter, scale and translate over the letterbox
// grey, and for detection mosaic, turned off for the last epochs. Flips are off in both:
// "no flips that never happen in the real scene" (a mirrored 2 or K is no 2 or K); a
// project whose scenes do mirror turns flip_h on, and says which of its classes must
// never be mirrored and which mirror into each other (Mirroring).
package augment

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// HSV jitters colour in HSV space, as Ultralytics' hsv_h/hsv_s/hsv_v do: hue turned by
// up to ±H of a full turn, saturation and value scaled by up to ±S and ±V. A grey
// pixel stays grey (its saturation is 0); on a grey image only V acts.
type HSV struct {
	P float64 `json:"p"`
	H float64 `json:"h"`
	S float64 `json:"s"`
	V float64 `json:"v"`
}

// Op is one operation: applied with probability P at most Magnitude strong.
type Op struct {
	P         float64 `json:"p"`
	Magnitude float64 `json:"magnitude"`
}

// Config is a project's augmentation pipeline, applied in field order.
type Config struct {
	// FlipH mirrors the image left to right and FlipV turns it upside down (Magnitude
	// unused), where Mirror allows; keep FlipV off for classes whose meaning changes
	// upside down (triangles, stars, letters).
	FlipH Op `json:"flip_h"`
	FlipV Op `json:"flip_v"`
	// Mirror is what a flip does to the classes: the project's mirror setting
	// (Mirroring.Resolve), which whoever trains sets; it is no augmentation setting and
	// is never saved with them.
	Mirror Mirror `json:"-"`
	// Rotate by up to Magnitude degrees either way.
	Rotate Op `json:"rotate"`
	// ScaleTranslate scales by up to ±Magnitude and shifts by up to Translate of the
	// side (Translate 0: Magnitude). Uncovered space takes the letterbox grey on colour
	// images (what padding looks like to the network), the border's mean on grey ones.
	ScaleTranslate Op `json:"scale_translate"`
	// Translate bounds ScaleTranslate's shift separately from its scale.
	Translate float64 `json:"translate,omitempty"`
	// HSV jitters hue, saturation and value.
	HSV HSV `json:"hsv"`
	// BrightnessContrast shifts brightness and scales contrast by up to ±Magnitude.
	BrightnessContrast Op `json:"brightness_contrast"`
	// Noise adds Gaussian noise of σ up to Magnitude.
	Noise Op `json:"noise"`
	// Blur by σ up to Magnitude pixels.
	Blur Op `json:"blur"`
	// Cutout blanks a square of up to Magnitude of the side.
	Cutout Op `json:"cutout"`
	// Mosaic (detection) tiles four training images around a random centre (Mosaic,
	// below) before the other operations; Magnitude unused.
	Mosaic Op `json:"mosaic"`
	// CloseMosaic turns mosaic off for the last CloseMosaic epochs (at most half of
	// them), so the network ends on whole images, as Ultralytics' close_mosaic does.
	CloseMosaic int `json:"close_mosaic,omitempty"`
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

// Colour is the pipeline for colour cameras, after Ultralytics' defaults (hsv 0.015/0.7/
// 0.4, scale 0.5, translate 0.1, mosaic 1.0 closed for the last 10 epochs) with milder
// blur and noise; mosaic is for detection only (task "detect"). No flips: a project
// allows them.
func Colour(task nn.Task) Config {
	c := Config{
		ScaleTranslate:     Op{P: 0.5, Magnitude: 0.5},
		Translate:          0.1,
		HSV:                HSV{P: 1, H: 0.015, S: 0.7, V: 0.4},
		BrightnessContrast: Op{P: 0.3, Magnitude: 0.2},
		Noise:              Op{P: 0.2, Magnitude: 0.04},
		Blur:               Op{P: 0.1, Magnitude: 1.0},
	}
	if task == nn.Detect {
		c.Mosaic, c.CloseMosaic = Op{P: 1}, 10
	}
	return c
}

// DefaultFor is the pipeline for a network: Colour for one that takes 3 channels,
// Default (digits) otherwise.
func DefaultFor(a nn.Arch) Config {
	if a.InC == 3 {
		return Colour(a.Task)
	}
	return Default()
}

// Strong is the pipeline's strong view, FixMatch's (Sohn et al. NeurIPS 2020: a weak
// view decides a pseudo-label, the network learns it from a strong one; RandAugment's
// ranges with Cutout on every image): each operation the pipeline has, twice as often
// (at most always) and twice as strong, rotation capped at 30°, scale at 0.3, shifts at
// 0.2, brightness/contrast at 0.5, noise σ at 0.15 and blur σ at 1.5 px, and a cutout
// of up to half the side on every image. Flips and mosaic stay as they are.
func (c Config) Strong() Config {
	up := func(op Op, capMag float64) Op {
		if op.P == 0 {
			return op
		}
		return Op{P: min(1, 2*op.P), Magnitude: min(capMag, 2*op.Magnitude)}
	}
	c.Rotate = up(c.Rotate, 30)
	c.ScaleTranslate = up(c.ScaleTranslate, 0.3)
	c.Translate = min(0.2, 2*c.Translate)
	if c.HSV.P > 0 {
		c.HSV = HSV{P: 1, H: min(0.05, 2*c.HSV.H), S: min(1, 2*c.HSV.S), V: min(1, 2*c.HSV.V)}
	}
	c.BrightnessContrast = up(c.BrightnessContrast, 0.5)
	c.Noise = up(c.Noise, 0.15)
	c.Blur = up(c.Blur, 1.5)
	c.Cutout = Op{P: 1, Magnitude: 0.5}
	return c
}

// None turns augmentation off.
func None() Config { return Config{} }

// ForEpoch is the pipeline of an epoch (1-based) of a training of epochs: mosaic off
// for the last min(CloseMosaic, epochs/2) of them.
func (c Config) ForEpoch(epoch, epochs int) Config {
	if c.CloseMosaic > 0 && epoch > epochs-min(c.CloseMosaic, epochs/2) {
		c.Mosaic = Op{}
	}
	return c
}

// MosaicHit draws whether this image is made a mosaic.
func (c Config) MosaicHit(r *rand.Rand) bool {
	return r != nil && c.Mosaic.P > 0 && r.Float64() < c.Mosaic.P
}

// Validate reports an out-of-range setting.
func (c Config) Validate() error {
	for name, op := range map[string]Op{"flip_h": c.FlipH, "flip_v": c.FlipV, "rotate": c.Rotate,
		"scale_translate": c.ScaleTranslate, "brightness_contrast": c.BrightnessContrast,
		"noise": c.Noise, "blur": c.Blur, "cutout": c.Cutout, "mosaic": c.Mosaic,
		"hsv": {P: c.HSV.P, Magnitude: min(c.HSV.H, c.HSV.S, c.HSV.V)}} {
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
	if c.Translate < 0 || c.Translate >= 1 || math.IsNaN(c.Translate) {
		return fmt.Errorf("augment translate: %v outside [0, 1)", c.Translate)
	}
	if c.HSV.H > 0.5 || c.HSV.S > 1 || c.HSV.V > 1 || math.IsNaN(c.HSV.H+c.HSV.S+c.HSV.V) {
		return fmt.Errorf("augment hsv: h %v (at most 0.5 of a turn), s %v and v %v (at most 1)", c.HSV.H, c.HSV.S, c.HSV.V)
	}
	if c.CloseMosaic < 0 {
		return fmt.Errorf("augment close_mosaic: %d epochs", c.CloseMosaic)
	}
	return nil
}

// MinBoxPixels is the smallest width and height, in pixels, of a box that a geometric
// operation keeps after clipping it to the frame (Ultralytics' box_candidates uses 2).
const MinBoxPixels = 2

// Apply returns an augmented copy of im and its boxes (normalised; nil for
// classification). Boxes that leave the image are clipped, and dropped when less than a
// third of them stays inside or the remnant is under MinBoxPixels wide or high.
func (c Config) Apply(im *raster.Image, boxes []nn.Box, r *rand.Rand) (*raster.Image, []nn.Box) {
	out, _, boxes := c.ApplyLabelled(im, -1, boxes, r)
	return out, boxes
}

// ApplyLabelled is Apply for an image of class label (classification; -1 for none),
// returned as the augmented image shows it: a flip, horizontal or vertical, leaves alone
// an image whose label or boxes c.Mirror never mirrors, and a horizontal one swaps
// paired classes (a vertical one keeps them: a left-arrow upside down still points left). The random
// draws do not depend on c.Mirror.
func (c Config) ApplyLabelled(im *raster.Image, label int, boxes []nn.Box, r *rand.Rand) (*raster.Image, int, []nn.Box) {
	w, h := float64(im.W), float64(im.H)
	m := raster.Identity()
	geometric := false
	if hit(r, c.FlipH) && c.Mirror.allowsAll(label, boxes) {
		m, geometric = m.Then(raster.Affine{A: -1, C: w, E: 1}), true
		label, boxes = c.Mirror.swapped(label, boxes)
	}
	if hit(r, c.FlipV) && c.Mirror.allowsAll(label, boxes) {
		m, geometric = m.Then(raster.Affine{A: 1, E: -1, F: h}), true
	}
	if hit(r, c.Rotate) {
		m, geometric = m.Then(raster.Rotation(w/2, h/2, sym(r)*c.Rotate.Magnitude, 1)), true
	}
	if hit(r, c.ScaleTranslate) {
		mg, tr := c.ScaleTranslate.Magnitude, c.Translate
		if tr == 0 {
			tr = mg
		}
		m = m.Then(raster.Rotation(w/2, h/2, 0, 1+sym(r)*mg)).Then(raster.Translation(sym(r)*tr*w, sym(r)*tr*h))
		geometric = true
	}
	out := im
	if geometric {
		out = raster.Warp(im, m, Fill(im))
		boxes = moveBoxes(boxes, m, w, h)
	} else {
		out = im.Clone()
	}
	if c.HSV.P > 0 && r.Float64() < c.HSV.P {
		jitterHSV(out, sym(r)*c.HSV.H, 1+sym(r)*c.HSV.S, 1+sym(r)*c.HSV.V)
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
			for ch := 0; ch < out.Channels(); ch++ {
				pl := out.Plane(ch)
				for y := y0; y < y0+side; y++ {
					for x := x0; x < x0+side; x++ {
						pl.Pix[y*im.W+x] = fill
					}
				}
			}
		}
	}
	return out.Clamp(), label, boxes
}

func hit(r *rand.Rand, op Op) bool { return op.P > 0 && op.Magnitude >= 0 && r.Float64() < op.P }

// sym is uniform in [-1, 1].
func sym(r *rand.Rand) float64 { return 2*r.Float64() - 1 }

// Fill is what geometric operations fill uncovered space with: the letterbox grey on a
// colour image (the network sees padding alike wherever it comes from), the mean of the
// edge pixels on a grey one.
func Fill(im *raster.Image) float32 {
	if im.Channels() == 3 {
		return raster.LetterboxFill
	}
	return border(im)
}

// jitterHSV turns hue by dh turns and scales saturation by ks and value by kv, in place.
func jitterHSV(im *raster.Image, dh, ks, kv float64) {
	if im.Channels() != 3 {
		for i, v := range im.Pix {
			im.Pix[i] = v * float32(kv)
		}
		return
	}
	n := im.W * im.H
	rp, gp, bp := im.Pix[:n], im.Pix[n:2*n], im.Pix[2*n:]
	for i := 0; i < n; i++ {
		r, g, b := float64(rp[i]), float64(gp[i]), float64(bp[i])
		mx, mn := max(r, g, b), min(r, g, b)
		v := mx
		var h, s float64
		if mx > 0 {
			s = (mx - mn) / mx
		}
		if d := mx - mn; d > 0 {
			switch mx {
			case r:
				h = (g - b) / d / 6
			case g:
				h = (2 + (b-r)/d) / 6
			default:
				h = (4 + (r-g)/d) / 6
			}
		}
		h += dh
		h -= math.Floor(h)
		s, v = min(1, s*ks), min(1, v*kv)
		h6 := h * 6
		k := int(h6) % 6
		f := h6 - math.Floor(h6)
		p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
		switch k {
		case 0:
			r, g, b = v, t, p
		case 1:
			r, g, b = q, v, p
		case 2:
			r, g, b = p, v, t
		case 3:
			r, g, b = p, q, v
		case 4:
			r, g, b = t, p, v
		default:
			r, g, b = v, p, q
		}
		rp[i], gp[i], bp[i] = float32(r), float32(g), float32(b)
	}
}

// border is the mean of the image's edge pixels.
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
		if nb, ok := clip(x0, y0, x1, y1, 0, 0, w, h, w, h); ok {
			nb.Class = b.Class
			out = append(out, nb)
		}
	}
	return out
}

// clip cuts the pixel box (x0, y0)–(x1, y1) to the region (rx0, ry0)–(rx1, ry1) and
// normalises it by w×h; false when less than a third stays or the remnant is under
// MinBoxPixels wide or high.
func clip(x0, y0, x1, y1, rx0, ry0, rx1, ry1, w, h float64) (nn.Box, bool) {
	full := (x1 - x0) * (y1 - y0)
	cx0, cy0, cx1, cy1 := math.Max(rx0, x0), math.Max(ry0, y0), math.Min(rx1, x1), math.Min(ry1, y1)
	if cx1-cx0 < MinBoxPixels || cy1-cy0 < MinBoxPixels || (cx1-cx0)*(cy1-cy0) < full/3 {
		return nn.Box{}, false
	}
	return nn.Box{X0: float32(cx0 / w), Y0: float32(cy0 / h), X1: float32(cx1 / w), Y1: float32(cy1 / h)}, true
}

// Mosaic tiles four images and their boxes (normalised) into one image of the first's
// size, as Ultralytics' mosaic does: a centre drawn in the middle half of the frame, each
// image scaled by 0.4–1 with a corner at the centre (top-left, top-right, bottom-left,
// bottom-right), the rest letterbox grey (colour) or mid-grey. Boxes are moved, clipped
// to their tile and the frame, and remnants dropped as Apply drops them.
func Mosaic(ims [4]*raster.Image, boxes [4][]nn.Box, r *rand.Rand) (*raster.Image, []nn.Box) {
	w, h, ch := ims[0].W, ims[0].H, ims[0].Channels()
	out := raster.NewC(w, h, ch)
	fill := float32(0.5)
	if ch == 3 {
		fill = raster.LetterboxFill
	}
	for i := range out.Pix {
		out.Pix[i] = fill
	}
	cx := int(float64(w) * (0.25 + 0.5*r.Float64()))
	cy := int(float64(h) * (0.25 + 0.5*r.Float64()))
	var all []nn.Box
	for k, im := range ims {
		s := 0.4 + 0.6*r.Float64()
		tw, th := max(1, int(float64(w)*s+0.5)), max(1, int(float64(h)*s+0.5))
		tile := raster.Resize(im.WithChannels(ch), tw, th)
		x0, y0 := cx-tw, cy-th
		if k%2 == 1 {
			x0 = cx
		}
		if k >= 2 {
			y0 = cy
		}
		// The tile's part inside the frame.
		rx0, ry0, rx1, ry1 := max(0, x0), max(0, y0), min(w, x0+tw), min(h, y0+th)
		for c := 0; c < ch; c++ {
			src, dst := tile.Plane(c), out.Plane(c)
			for y := ry0; y < ry1; y++ {
				copy(dst.Pix[y*w+rx0:y*w+rx1], src.Pix[(y-y0)*tw+rx0-x0:(y-y0)*tw+rx1-x0])
			}
		}
		for _, b := range boxes[k] {
			bx0, by0 := float64(x0)+float64(b.X0)*float64(tw), float64(y0)+float64(b.Y0)*float64(th)
			bx1, by1 := float64(x0)+float64(b.X1)*float64(tw), float64(y0)+float64(b.Y1)*float64(th)
			if nb, ok := clip(bx0, by0, bx1, by1, float64(rx0), float64(ry0), float64(rx1), float64(ry1), float64(w), float64(h)); ok {
				nb.Class = b.Class
				all = append(all, nb)
			}
		}
	}
	return out, all
}
