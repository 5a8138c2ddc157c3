package raster

// Thumb is a 16×16 grey thumbnail stretched to the full 0–255 range: what near-duplicate
// detection compares. It ignores brightness and contrast, unlike the picture itself.
type Thumb [256]uint8

// Thumbnail makes the Thumb of an image (of its luma, for a colour one).
func Thumbnail(im *Image) Thumb {
	s := Resize(im.Luma(), 16, 16)
	lo, hi := float32(1), float32(0)
	for _, v := range s.Pix {
		lo, hi = min(lo, v), max(hi, v)
	}
	var t Thumb
	if hi-lo < 1e-3 {
		return t
	}
	for i, v := range s.Pix {
		t[i] = uint8((v-lo)/(hi-lo)*255 + 0.5)
	}
	return t
}

// SameSceneDistance is the largest ThumbDistance that counts as the same picture: the
// agent's sampler and the curator's near-duplicate check both use it.
const SameSceneDistance = 0.02

// ThumbDistance is the mean absolute difference of two thumbnails, in [0, 1]. On MNIST
// digits, frames that differ only by sensor noise and exposure are within 0.03; distinct
// handwriting is mostly above it (thin 1s excepted).
func ThumbDistance(a, b Thumb) float64 {
	s := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		s += d
	}
	return float64(s) / (255 * 256)
}
