package raster

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
	"math"
	"testing"
)

// rgbTestImage is a w×h picture whose red rises left to right, green top to bottom, and
// whose top-left 6×6 corner is pure blue: every flip or turn shows.
func rgbTestImage(w, h int) *image.RGBA {
	src := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			src.Set(x, y, color.RGBA{uint8(255 * x / (w - 1)), uint8(255 * y / (h - 1)), 0, 255})
		}
	}
	for y := 0; y < 6; y++ {
		for x := 0; x < 6; x++ {
			src.Set(x, y, color.RGBA{0, 0, 255, 255})
		}
	}
	return src
}

// withExif inserts an APP1 EXIF block holding one orientation tag after a JPEG's SOI.
func withExif(jpg []byte, orientation uint16, bo binary.ByteOrder) []byte {
	tiff := make([]byte, 8+2+12+4)
	if bo == binary.LittleEndian {
		copy(tiff, "II")
	} else {
		copy(tiff, "MM")
	}
	bo.PutUint16(tiff[2:], 42)
	bo.PutUint32(tiff[4:], 8)
	bo.PutUint16(tiff[8:], 1)
	bo.PutUint16(tiff[10:], 0x0112)
	bo.PutUint16(tiff[12:], 3) // SHORT
	bo.PutUint32(tiff[14:], 1)
	bo.PutUint16(tiff[18:], orientation)
	seg := append([]byte("Exif\x00\x00"), tiff...)
	app1 := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(app1[2:], uint16(len(seg)+2))
	out := append([]byte{}, jpg[:2]...)
	out = append(out, app1...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

// TestDecodeKeepsColourAndHonoursExif: a colour JPEG decodes to three planes, and each
// EXIF orientation turns it upright (orientation 6: the camera was turned 90° clockwise,
// so the stored top-left pixel ends at the top right).
func TestDecodeKeepsColourAndHonoursExif(t *testing.T) {
	src := FromImageRGB(rgbTestImage(40, 20))
	jpg := src.EncodeJPEG(98)
	im, err := DecodeChannels(jpg, 0, 0)
	if err != nil || im.Channels() != 3 || im.W != 40 || im.H != 20 {
		t.Fatalf("decoded %+v, %v", im, err)
	}
	if r, g := im.Plane(0).At(39, 10), im.Plane(1).At(20, 19); r < 0.9 || g < 0.9 {
		t.Fatalf("red at the right %.2f, green at the bottom %.2f: channels lost", r, g)
	}
	blueAt := func(im *Image) (int, int) { // the centre of the blue corner
		var sx, sy, n float64
		for y := 0; y < im.H; y++ {
			for x := 0; x < im.W; x++ {
				if im.Plane(2).At(x, y) > 0.6 && im.Plane(0).At(x, y) < 0.4 && im.Plane(1).At(x, y) < 0.4 {
					sx, sy, n = sx+float64(x), sy+float64(y), n+1
				}
			}
		}
		return int(math.Round(sx / n)), int(math.Round(sy / n))
	}
	for _, tc := range []struct {
		o          uint16
		w, h, x, y int
	}{{1, 40, 20, 0, 0}, {2, 40, 20, 39, 0}, {3, 40, 20, 39, 19}, {4, 40, 20, 0, 19},
		{5, 20, 40, 0, 0}, {6, 20, 40, 19, 0}, {7, 20, 40, 19, 39}, {8, 20, 40, 0, 39}} {
		for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			data := withExif(jpg, tc.o, bo)
			if got := ExifOrientation(data); got != int(tc.o) {
				t.Fatalf("orientation %d read as %d", tc.o, got)
			}
			im, err := DecodeChannels(data, 0, 3)
			if err != nil {
				t.Fatal(err)
			}
			if x, y := blueAt(im); im.W != tc.w || im.H != tc.h || abs(x-tc.x) > 3 || abs(y-tc.y) > 3 {
				t.Errorf("orientation %d: %dx%d with blue at (%d,%d), want %dx%d at (%d,%d)", tc.o, im.W, im.H, x, y, tc.w, tc.h, tc.x, tc.y)
			}
		}
	}
	// Grey decoding of the same file is its luma, also upright.
	g, err := DecodeChannels(withExif(jpg, 6, binary.BigEndian), 0, 1)
	if err != nil || g.Channels() != 1 || g.W != 20 || g.H != 40 {
		t.Fatalf("grey %+v, %v", g, err)
	}
	if ExifOrientation([]byte("not a jpeg")) != 1 || ExifOrientation(jpg) != 1 {
		t.Fatal("a file without EXIF must read as upright")
	}
	if _, err := DecodeChannels(jpg, 0, 2); err == nil {
		t.Fatal("2 channels must be refused")
	}
}

// TestColourPNGRoundTrip: an RGB PNG keeps its colours exactly; a grey PNG stays grey.
func TestColourPNGRoundTrip(t *testing.T) {
	src := FromImageRGB(rgbTestImage(16, 8))
	im, err := DecodeChannels(src.EncodePNG(), 0, 0)
	if err != nil || im.Channels() != 3 {
		t.Fatalf("%v, %d channels", err, im.Channels())
	}
	for i := range src.Pix {
		if math.Abs(float64(src.Pix[i]-im.Pix[i])) > 1.0/255 {
			t.Fatalf("pixel %d: %.3f became %.3f", i, src.Pix[i], im.Pix[i])
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
	if g, err := DecodeChannels(buf.Bytes(), 0, 0); err != nil || g.Channels() != 1 {
		t.Fatalf("grey PNG: %v", err)
	}
}

// TestOpsKeepChannels: resizing, warping and blurring a colour image work per channel
// and agree with the same operation on each plane alone.
func TestOpsKeepChannels(t *testing.T) {
	im := FromImageRGB(rgbTestImage(32, 24))
	for name, f := range map[string]func(*Image) *Image{
		"resize": func(x *Image) *Image { return Resize(x, 13, 9) },
		"warp":   func(x *Image) *Image { return Warp(x, Rotation(16, 12, 30, 0.9), 0.5) },
		"blur":   func(x *Image) *Image { return Blur(x, 1.5) },
		"dilate": func(x *Image) *Image { return Dilate(x, 1) },
	} {
		out := f(im)
		if out.Channels() != 3 {
			t.Fatalf("%s: %d channels", name, out.Channels())
		}
		for c := 0; c < 3; c++ {
			want := f(im.Plane(c).Clone())
			for i, v := range want.Pix {
				if got := out.Plane(c).Pix[i]; got != v {
					t.Fatalf("%s: channel %d pixel %d is %.4f, alone %.4f", name, c, i, got, v)
				}
			}
		}
	}
	if l := im.Luma(); l.Channels() != 1 || math.Abs(float64(l.At(31, 0))-0.299) > 0.01 {
		t.Fatalf("luma of pure red %.3f, want 0.299", l.At(31, 0))
	}
	if g := im.Luma().WithChannels(3); g.Channels() != 3 || g.Plane(2).At(5, 5) != g.Plane(0).At(5, 5) {
		t.Fatal("grey to colour must repeat the plane")
	}
}

// TestLetterbox: a 200×100 picture into 64×64 keeps its aspect (64×32, 16 px bars above
// and below), and points map back to the original's pixels.
func TestLetterbox(t *testing.T) {
	im := FromImageRGB(rgbTestImage(200, 100))
	out, l := LetterboxTo(im, 64, 64, LetterboxFill)
	if out.W != 64 || out.H != 64 || out.Channels() != 3 || l.PadX != 0 || l.PadY != 16 || math.Abs(l.Scale-0.32) > 1e-9 {
		t.Fatalf("letterbox %dx%d %+v", out.W, out.H, l)
	}
	if v := out.Plane(1).At(32, 5); v != LetterboxFill {
		t.Fatalf("bar pixel %.3f, want the fill", v)
	}
	if x, y := l.ToSource(64, 48); math.Abs(x-200) > 1e-9 || math.Abs(y-100) > 1e-9 {
		t.Fatalf("bottom-right of the picture maps to (%.1f,%.1f)", x, y)
	}
	if x, y := l.FromSource(l.ToSource(10, 20)); math.Abs(x-10) > 1e-9 || math.Abs(y-20) > 1e-9 {
		t.Fatal("FromSource must invert ToSource")
	}
	// Red rises to the right in the picture and in its letterboxed copy.
	if out.Plane(0).At(60, 32) < 0.9 || out.Plane(0).At(2, 32) > 0.1 {
		t.Fatal("letterboxed content misplaced")
	}
}

func abs(v int) int { return max(v, -v) }
