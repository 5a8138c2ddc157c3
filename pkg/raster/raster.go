// Package raster holds the single-channel float images edgeloop's models see (values in
// [0,1], row-major) and the pixel operations that data generation, drift and
// augmentation are made of: conversion, resizing, affine warps, blur, morphology and
// compositing.
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

// Image is a grey image with values in [0,1].
type Image struct {
	W, H int
	Pix  []float32
}

// New returns a black w×h image.
func New(w, h int) *Image { return &Image{W: w, H: h, Pix: make([]float32, w*h)} }

// Filled returns a w×h image of value v.
func Filled(w, h int, v float32) *Image {
	im := New(w, h)
	for i := range im.Pix {
		im.Pix[i] = v
	}
	return im
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
	return &Image{W: im.W, H: im.H, Pix: append([]float32(nil), im.Pix...)}
}

// At returns the pixel at (x, y), or 0 outside.
func (im *Image) At(x, y int) float32 {
	if x < 0 || y < 0 || x >= im.W || y >= im.H {
		return 0
	}
	return im.Pix[y*im.W+x]
}

// Sample returns the bilinear interpolation at (x, y) in pixel-centre coordinates, or
// fill outside the image.
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

// Gray returns the image as 8-bit grey.
func (im *Image) Gray() *image.Gray {
	g := image.NewGray(image.Rect(0, 0, im.W, im.H))
	for i, v := range im.Pix {
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
	return FromImage(src), nil
}

// EncodePNG encodes the image as 8-bit grey PNG.
func (im *Image) EncodePNG() []byte {
	var buf bytes.Buffer
	_ = png.Encode(&buf, im.Gray()) // writing to a buffer cannot fail
	return buf.Bytes()
}

// EncodeJPEG encodes the image as grey JPEG at quality q.
func (im *Image) EncodeJPEG(q int) []byte {
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, im.Gray(), &jpeg.Options{Quality: q})
	return buf.Bytes()
}

// ToRGBA renders the image for drawing overlays.
func (im *Image) ToRGBA() *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, im.W, im.H))
	draw.Draw(out, out.Bounds(), im.Gray(), image.Point{}, draw.Src)
	return out
}
