// Package raster holds the float images edgeloop's models see — grey or colour, values in
// [0,1], channels stored as planes (C×H×W, as the networks take them) — and the pixel
// operations that data generation, drift and augmentation are made of: decoding with EXIF
// orientation, conversion, resizing and letterboxing, affine warps, blur, morphology and
// compositing. Every operation works on each channel's plane alike.
package raster

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"
)

// Image is a grey (C = 1) or colour (C = 3, RGB) image with values in [0,1]. Pix holds the
// channels one plane after another: channel c's pixel (x, y) is Pix[c*W*H + y*W + x].
// C = 0, as in literals written before colour, means grey.
type Image struct {
	W, H, C int
	Pix     []float32
}

// New returns a black w×h grey image.
func New(w, h int) *Image { return NewC(w, h, 1) }

// NewC returns a black w×h image of c channels.
func NewC(w, h, c int) *Image {
	c = max(c, 1)
	return &Image{W: w, H: h, C: c, Pix: make([]float32, w*h*c)}
}

// Filled returns a w×h image of value v.
func Filled(w, h int, v float32) *Image {
	im := New(w, h)
	for i := range im.Pix {
		im.Pix[i] = v
	}
	return im
}

// Channels is the number of channels: 1 (grey) or 3 (RGB).
func (im *Image) Channels() int { return max(im.C, 1) }

// Plane returns channel c as a grey image sharing im's pixels.
func (im *Image) Plane(c int) *Image {
	n := im.W * im.H
	return &Image{W: im.W, H: im.H, C: 1, Pix: im.Pix[c*n : (c+1)*n : (c+1)*n]}
}

// FromBytes wraps 8-bit grey pixels.
func FromBytes(w, h int, b []byte) *Image {
	im := New(w, h)
	for i, v := range b {
		im.Pix[i] = float32(v) / 255
	}
	return im
}

// Clone returns a copy.
func (im *Image) Clone() *Image {
	return &Image{W: im.W, H: im.H, C: im.Channels(), Pix: append([]float32(nil), im.Pix...)}
}

// At returns the first channel's pixel at (x, y), or 0 outside.
func (im *Image) At(x, y int) float32 {
	if x < 0 || y < 0 || x >= im.W || y >= im.H {
		return 0
	}
	return im.Pix[y*im.W+x]
}

// Sample returns the first channel's bilinear interpolation at (x, y) in pixel-centre
// coordinates, or fill outside the image (per channel: im.Plane(c).Sample).
func (im *Image) Sample(x, y float64, fill float32) float32 {
	x -= 0.5
	y -= 0.5
	x0, y0 := math.Floor(x), math.Floor(y)
	fx, fy := float32(x-x0), float32(y-y0)
	ix, iy := int(x0), int(y0)
	get := func(px, py int) float32 {
		if px < 0 || py < 0 || px >= im.W || py >= im.H {
			return fill
		}
		return im.Pix[py*im.W+px]
	}
	top := get(ix, iy)*(1-fx) + get(ix+1, iy)*fx
	bot := get(ix, iy+1)*(1-fx) + get(ix+1, iy+1)*fx
	return top*(1-fy) + bot*fy
}

// Clamp limits every pixel to [0,1].
func (im *Image) Clamp() *Image {
	for i, v := range im.Pix {
		im.Pix[i] = min(1, max(0, v))
	}
	return im
}

// FromImage converts any image to grey (ITU-R 601 luma).
func FromImage(src image.Image) *Image {
	b := src.Bounds()
	im := New(b.Dx(), b.Dy())
	if g, ok := src.(*image.Gray); ok {
		for y := 0; y < im.H; y++ {
			row := g.Pix[(y)*g.Stride : y*g.Stride+im.W]
			for x, v := range row {
				im.Pix[y*im.W+x] = float32(v) / 255
			}
		}
		return im
	}
	for y := 0; y < im.H; y++ {
		for x := 0; x < im.W; x++ {
			c := color.GrayModel.Convert(src.At(b.Min.X+x, b.Min.Y+y)).(color.Gray)
			im.Pix[y*im.W+x] = float32(c.Y) / 255
		}
	}
	return im
}

// Gray returns the image as 8-bit grey (the luma of a colour image).
func (im *Image) Gray() *image.Gray {
	g := image.NewGray(image.Rect(0, 0, im.W, im.H))
	for i, v := range im.Luma().Pix {
		g.Pix[i] = uint8(min(1, max(0, v))*255 + 0.5)
	}
	return g
}

// DefaultMaxPixels is the pixel budget of Decode: 4096×4096 (16.8 megapixels, a 12 MP
// camera frame fits). Decoding costs about 8 bytes a pixel (the decoded picture and the
// grey float image), so at most ~135 MB.
const DefaultMaxPixels = 4096 * 4096

// ErrTooLarge says an image's header declares more pixels than the budget.
var ErrTooLarge = errors.New("image has too many pixels")

// DecodeConfig reads a JPEG's or PNG's header only and checks its size against maxPixels
// (<= 0: DefaultMaxPixels). It returns the dimensions and the format ("jpeg" or "png").
func DecodeConfig(data []byte, maxPixels int) (image.Config, string, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return cfg, format, fmt.Errorf("decode image header (%d bytes): %w", len(data), err)
	}
	if format != "jpeg" && format != "png" {
		return cfg, format, fmt.Errorf("decode image: format %s, want jpeg or png", format)
	}
	if cfg.Width < 1 || cfg.Height < 1 || int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return cfg, format, fmt.Errorf("%w: %s of %dx%d declared in a %d-byte file, budget %d pixels", ErrTooLarge, format, cfg.Width, cfg.Height, len(data), maxPixels)
	}
	return cfg, format, nil
}

// Decode reads a JPEG or PNG into a grey image, within DefaultMaxPixels.
func Decode(data []byte) (*Image, error) { return DecodeLimited(data, DefaultMaxPixels) }

// DecodeLimited reads a JPEG or PNG into a grey image. Its size is checked from the
// header first: an image of more than maxPixels (<= 0: DefaultMaxPixels) is refused with
// ErrTooLarge before anything of its size is allocated (a decompression bomb).
func DecodeLimited(data []byte, maxPixels int) (*Image, error) {
	return DecodeChannels(data, maxPixels, 1)
}

// DecodeChannels reads a JPEG or PNG into an image of the given channels (1: grey, 3:
// RGB; 0: the file's own, grey for a grey file and RGB otherwise), turned upright by the
// JPEG's EXIF orientation. The size is checked from the header first, as DecodeLimited
// does.
func DecodeChannels(data []byte, maxPixels, channels int) (*Image, error) {
	if channels != 0 && channels != 1 && channels != 3 {
		return nil, fmt.Errorf("decode image: %d channels, want 1 or 3", channels)
	}
	if _, _, err := DecodeConfig(data, maxPixels); err != nil {
		return nil, err
	}
	src, format, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode image (%d bytes): %w", len(data), err)
	}
	if format != "jpeg" && format != "png" {
		return nil, fmt.Errorf("decode image: format %s, want jpeg or png", format)
	}
	if channels == 0 {
		channels = 3
		switch src.(type) {
		case *image.Gray, *image.Gray16:
			channels = 1
		}
	}
	var im *Image
	if channels == 1 {
		im = FromImage(src)
	} else {
		im = FromImageRGB(src)
	}
	if format == "jpeg" {
		im = Orient(im, ExifOrientation(data))
	}
	return im, nil
}

// EncodePNG encodes the image as an 8-bit PNG, grey or RGB as the image is.
func (im *Image) EncodePNG() []byte {
	var buf bytes.Buffer
	_ = png.Encode(&buf, im.Std()) // writing to a buffer cannot fail
	return buf.Bytes()
}

// EncodeJPEG encodes the image as a JPEG at quality q, grey or colour as the image is.
func (im *Image) EncodeJPEG(q int) []byte {
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, im.Std(), &jpeg.Options{Quality: q})
	return buf.Bytes()
}

// Std returns the image as a standard library image: *image.Gray for grey, *image.RGBA
// for colour.
func (im *Image) Std() image.Image {
	if im.Channels() == 1 {
		return im.Gray()
	}
	return im.ToRGBA()
}

// ToRGBA renders the image for drawing overlays.
func (im *Image) ToRGBA() *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, im.W, im.H))
	if im.Channels() == 1 {
		draw.Draw(out, out.Bounds(), im.Gray(), image.Point{}, draw.Src)
		return out
	}
	n := im.W * im.H
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			out.Pix[4*i+c] = uint8(min(1, max(0, im.Pix[c*n+i]))*255 + 0.5)
		}
		out.Pix[4*i+3] = 255
	}
	return out
}
