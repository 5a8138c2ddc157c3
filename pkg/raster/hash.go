package raster

// Thumb is what near-duplicate detection compares: a 16×16 grey thumbnail of the
// picture's luma stretched to the full 0–255 range (so it ignores brightness and
// contrast, unlike the picture itself), and, for a colour picture, its colour: the 8×8
// chroma planes (Cb, Cr; 128 is no colour, as in every grey picture's thumb). Two
// pictures that differ only in their colours, a red can and a green one, are not the
// same picture.
type Thumb struct {
	Luma   [256]uint8
	Chroma [2 * 64]uint8
}

// Thumbnail makes the Thumb of an image.
func Thumbnail(im *Image) Thumb {
	var t Thumb
	for i := range t.Chroma {
		t.Chroma[i] = 128
	}
	if im.Channels() == 3 {
		s := Resize(im, 8, 8)
		r, g, b := s.Plane(0).Pix, s.Plane(1).Pix, s.Plane(2).Pix
		for i := range 64 {
			// Rec. 601 chroma, as JPEG's: each in [-0.5, 0.5].
			cb := -0.168736*r[i] - 0.331264*g[i] + 0.5*b[i]
			cr := 0.5*r[i] - 0.418688*g[i] - 0.081312*b[i]
			t.Chroma[i] = uint8(min(255, max(0, 128+cb*255+0.5)))
			t.Chroma[64+i] = uint8(min(255, max(0, 128+cr*255+0.5)))
		}
	}
	s := Resize(im.Luma(), 16, 16)
	lo, hi := float32(1), float32(0)
	for _, v := range s.Pix {
		lo, hi = min(lo, v), max(hi, v)
	}
	if hi-lo < 1e-3 {
		return t
	}
	for i, v := range s.Pix {
		t.Luma[i] = uint8((v-lo)/(hi-lo)*255 + 0.5)
	}
	return t
}

// SameSceneDistance is the largest ThumbDistance that counts as the same picture: the
// agent's sampler and the curator's near-duplicate check both use it.
const SameSceneDistance = 0.02

// ThumbDistance is the larger of two thumbnails' mean absolute differences, of their
// luma and of their colour, in [0, 1]. On MNIST digits, frames that differ only by
// sensor noise and exposure are within 0.03; distinct handwriting is mostly above it
// (thin 1s excepted). Grey pictures have no colour, so their distance is their luma's.
func ThumbDistance(a, b Thumb) float64 {
	return max(meanAbsDiff(a.Luma[:], b.Luma[:]), meanAbsDiff(a.Chroma[:], b.Chroma[:]))
}

func meanAbsDiff(a, b []uint8) float64 {
	s := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		s += d
	}
	return float64(s) / float64(255*len(a))
}

// ThumbsWithin reports whether ThumbDistance(a, b) <= d, and stops reading as soon as
// the sum so far rules it out: what a look-alike check over thousands of thumbnails
// needs, since most pairs differ from their first rows.
func ThumbsWithin(a, b *Thumb, d float64) bool {
	return absDiffWithin(a.Luma[:], b.Luma[:], d) && absDiffWithin(a.Chroma[:], b.Chroma[:], d)
}

// absDiffWithin reports whether meanAbsDiff(a, b) <= d, 32 values at a time.
func absDiffWithin(a, b []uint8, d float64) bool {
	s, n := 0, float64(255*len(a))
	for i := 0; i < len(a); i += 32 {
		for j := i; j < min(i+32, len(a)); j++ {
			x := int(a[j]) - int(b[j])
			if x < 0 {
				x = -x
			}
			s += x
		}
		if float64(s)/n > d {
			return false
		}
	}
	return true
}
