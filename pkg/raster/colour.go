package raster

import (
	"encoding/binary"
	"fmt"
	"image"
	"math"
)

// FromImageRGB converts any image to a 3-channel RGB image (a grey picture gets three
// equal planes).
func FromImageRGB(src image.Image) *Image {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	im := NewC(w, h, 3)
	n := w * h
	r, g, bl := im.Pix[:n], im.Pix[n:2*n], im.Pix[2*n:]
	if s, ok := src.(*image.RGBA); ok {
		for y := 0; y < h; y++ {
			row := s.Pix[y*s.Stride : y*s.Stride+4*w]
			for x := 0; x < w; x++ {
				i := y*w + x
				r[i], g[i], bl[i] = float32(row[4*x])/255, float32(row[4*x+1])/255, float32(row[4*x+2])/255
			}
		}
		return im
	}
	if s, ok := src.(*image.YCbCr); ok {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi, ci := s.YOffset(b.Min.X+x, b.Min.Y+y), s.COffset(b.Min.X+x, b.Min.Y+y)
				cr, cg, cb := ycbcrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
				i := y*w + x
				r[i], g[i], bl[i] = cr, cg, cb
			}
		}
		return im
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			cr, cg, cb, _ := src.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := y*w + x
			r[i], g[i], bl[i] = float32(cr)/65535, float32(cg)/65535, float32(cb)/65535
		}
	}
	return im
}

// ycbcrToRGB is JFIF's conversion, in floats (the standard library rounds to 8 bits).
func ycbcrToRGB(y, cb, cr uint8) (float32, float32, float32) {
	fy, fb, fr := float32(y), float32(cb)-128, float32(cr)-128
	clamp := func(v float32) float32 { return min(1, max(0, v/255)) }
	return clamp(fy + 1.402*fr), clamp(fy - 0.344136*fb - 0.714136*fr), clamp(fy + 1.772*fb)
}

// Luma returns the grey image of a colour one (ITU-R 601 weights, as the standard
// library's grey model uses); a grey image is returned as it is.
func (im *Image) Luma() *Image {
	if im.Channels() == 1 {
		return im
	}
	n := im.W * im.H
	out := New(im.W, im.H)
	for i := 0; i < n; i++ {
		out.Pix[i] = 0.299*im.Pix[i] + 0.587*im.Pix[n+i] + 0.114*im.Pix[2*n+i]
	}
	return out
}

// WithChannels returns the image with c channels: colour to grey by luma, grey to colour
// by repeating the plane; the image itself when it already has c.
func (im *Image) WithChannels(c int) *Image {
	switch {
	case im.Channels() == c:
		return im
	case c == 1:
		return im.Luma()
	}
	out := NewC(im.W, im.H, c)
	n := im.W * im.H
	for k := 0; k < c; k++ {
		copy(out.Pix[k*n:(k+1)*n], im.Pix[:n])
	}
	return out
}

// planes applies f to each channel's plane and stacks the results (f returns images of
// one size).
func planes(im *Image, f func(*Image) *Image) *Image {
	c := im.Channels()
	if c == 1 {
		out := f(im)
		out.C = 1
		return out
	}
	var out *Image
	for k := 0; k < c; k++ {
		p := f(im.Plane(k))
		if out == nil {
			out = NewC(p.W, p.H, c)
		}
		copy(out.Plane(k).Pix, p.Pix)
	}
	return out
}

// LetterboxFill is the grey (114/255) Ultralytics pads letterboxed inputs with.
const LetterboxFill = float32(114) / 255

// Letterbox maps between an original image and its letterboxed copy: scaled by Scale,
// then shifted by (PadX, PadY).
type Letterbox struct {
	Scale      float64
	PadX, PadY float64
	// SrcW and SrcH are the original image's size.
	SrcW, SrcH int
}

// ToSource maps a point of the letterboxed image back to the original's pixels.
func (l Letterbox) ToSource(x, y float64) (float64, float64) {
	return (x - l.PadX) / l.Scale, (y - l.PadY) / l.Scale
}

// FromSource maps a point of the original image into the letterboxed one.
func (l Letterbox) FromSource(x, y float64) (float64, float64) {
	return x*l.Scale + l.PadX, y*l.Scale + l.PadY
}

// LetterboxTo resizes im to fit w×h with its aspect ratio kept, centred and padded with
// fill, and returns the mapping back to im's pixels.
func LetterboxTo(im *Image, w, h int, fill float32) (*Image, Letterbox) {
	s := math.Min(float64(w)/float64(im.W), float64(h)/float64(im.H))
	rw, rh := max(1, int(math.Round(float64(im.W)*s))), max(1, int(math.Round(float64(im.H)*s)))
	rw, rh = min(rw, w), min(rh, h)
	px, py := (w-rw)/2, (h-rh)/2
	l := Letterbox{Scale: s, PadX: float64(px), PadY: float64(py), SrcW: im.W, SrcH: im.H}
	if rw == w && rh == h {
		return Resize(im, w, h), Letterbox{Scale: s, SrcW: im.W, SrcH: im.H}
	}
	r := Resize(im, rw, rh)
	out := NewC(w, h, im.Channels())
	for i := range out.Pix {
		out.Pix[i] = fill
	}
	for k := 0; k < im.Channels(); k++ {
		src, dst := r.Plane(k), out.Plane(k)
		for y := 0; y < rh; y++ {
			copy(dst.Pix[(py+y)*w+px:(py+y)*w+px+rw], src.Pix[y*rw:(y+1)*rw])
		}
	}
	return out, l
}

// Orient turns an image upright from its EXIF orientation (1–8; anything else is taken
// as 1, already upright).
func Orient(im *Image, orientation int) *Image {
	if orientation < 2 || orientation > 8 {
		return im
	}
	w, h := im.W, im.H
	ow, oh := w, h
	if orientation >= 5 {
		ow, oh = h, w
	}
	out := NewC(ow, oh, im.Channels())
	for k := 0; k < im.Channels(); k++ {
		src, dst := im.Plane(k).Pix, out.Plane(k).Pix
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				var dx, dy int
				switch orientation {
				case 2: // mirrored
					dx, dy = w-1-x, y
				case 3: // rotated 180°
					dx, dy = w-1-x, h-1-y
				case 4: // mirrored vertically
					dx, dy = x, h-1-y
				case 5: // transposed
					dx, dy = y, x
				case 6: // rotated 90° clockwise to be upright
					dx, dy = h-1-y, x
				case 7: // transversed
					dx, dy = h-1-y, w-1-x
				case 8: // rotated 90° counter-clockwise to be upright
					dx, dy = y, w-1-x
				}
				dst[dy*ow+dx] = src[y*w+x]
			}
		}
	}
	return out
}

// ExifOrientation reads the orientation tag (0x0112) from a JPEG's EXIF block: 1–8, or 1
// when the file has none or it cannot be read.
func ExifOrientation(jpg []byte) int {
	o, err := exifOrientation(jpg)
	if err != nil || o < 1 || o > 8 {
		return 1
	}
	return o
}

func exifOrientation(b []byte) (int, error) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return 0, fmt.Errorf("not a JPEG")
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return 0, fmt.Errorf("marker expected at %d", i)
		}
		marker := b[i+1]
		if marker == 0xD9 || marker == 0xDA { // end of image, start of scan: no EXIF before
			return 0, fmt.Errorf("no EXIF block")
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return 0, fmt.Errorf("segment at %d runs past the file", i)
		}
		seg := b[i+4 : i+2+n]
		if marker == 0xE1 && len(seg) > 14 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		i += 2 + n
	}
	return 0, fmt.Errorf("no EXIF block")
}

func tiffOrientation(t []byte) (int, error) {
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0, fmt.Errorf("bad TIFF byte order")
	}
	off := int(bo.Uint32(t[4:]))
	if off+2 > len(t) {
		return 0, fmt.Errorf("IFD0 past the block")
	}
	entries := int(bo.Uint16(t[off:]))
	for e := 0; e < entries; e++ {
		p := off + 2 + 12*e
		if p+12 > len(t) {
			break
		}
		if bo.Uint16(t[p:]) == 0x0112 {
			return int(bo.Uint16(t[p+8:])), nil
		}
	}
	return 0, fmt.Errorf("no orientation tag")
}
