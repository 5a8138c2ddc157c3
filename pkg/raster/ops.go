package raster

import "math"

// Resize scales the image to w×h: area averaging when shrinking, bilinear otherwise.
func Resize(im *Image, w, h int) *Image {
	if w == im.W && h == im.H {
		return im.Clone()
	}
	c := im.Channels()
	out := NewC(w, h, c)
	var ws *areaWeights
	if im.W > w || im.H > h { // shrinking on either axis: the area average
		ws = newAreaWeights(im.W, im.H, w, h)
	}
	for k := 0; k < c; k++ {
		src, dst := im, out
		if c > 1 {
			src, dst = im.Plane(k), out.Plane(k)
		}
		if ws != nil {
			ws.resize(dst, src)
		} else {
			upscale(dst, src)
		}
	}
	return out
}

// upscale fills dst, at least as large as src on both axes, with src's bilinear samples.
func upscale(dst, src *Image) {
	w, h := dst.W, dst.H
	sx, sy := float64(src.W)/float64(w), float64(src.H)/float64(h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			dst.Pix[y*w+x] = src.Sample((float64(x)+0.5)*sx, (float64(y)+0.5)*sy, edge(src, x, y, sx, sy))
		}
	}
}

// span is the source pixels lo..lo+len(w)-1 an output pixel averages, with the share of
// each (the overlap of the pixel with the output pixel's footprint, normalised).
type span struct {
	lo int
	w  []float64
}

// spans are the footprints of out output pixels over in source pixels, on one axis.
func spans(in, out int) []span {
	s := float64(in) / float64(out)
	sp := make([]span, out)
	for d := range sp {
		lo, hi := float64(d)*s, float64(d+1)*s
		first := int(lo)
		var total float64
		for p := first; p < int(math.Ceil(hi)) && p < in; p++ {
			v := math.Min(hi, float64(p+1)) - math.Max(lo, float64(p))
			sp[d].w = append(sp[d].w, v)
			total += v
		}
		for i := range sp[d].w {
			sp[d].w[i] /= total
		}
		sp[d].lo = first
	}
	return sp
}

// areaWeights are an area-averaging resize's footprints on both axes: the same for
// every row, column and plane, so they are worked out once.
type areaWeights struct {
	cols, rows []span
	tmp        []float64 // one pass's result: source rows × output columns
}

func newAreaWeights(inW, inH, w, h int) *areaWeights {
	return &areaWeights{cols: spans(inW, w), rows: spans(inH, h), tmp: make([]float64, inH*w)}
}

// resize averages src's pixels over each dst pixel's footprint, one axis at a time
// (the box filter is separable).
func (a *areaWeights) resize(dst, src *Image) {
	w := dst.W
	for y := 0; y < src.H; y++ {
		row, t := src.Pix[y*src.W:(y+1)*src.W], a.tmp[y*w:(y+1)*w]
		for x, c := range a.cols {
			var sum float64
			for i, v := range c.w {
				sum += float64(row[c.lo+i]) * v
			}
			t[x] = sum
		}
	}
	for y, r := range a.rows {
		o := dst.Pix[y*w : (y+1)*w]
		for x := range o {
			var sum float64
			for i, v := range r.w {
				sum += a.tmp[(r.lo+i)*w+x] * v
			}
			o[x] = float32(sum)
		}
	}
}

// edge is the value used past the border when upscaling: the nearest pixel.
func edge(im *Image, x, y int, sx, sy float64) float32 {
	px := min(im.W-1, max(0, int((float64(x)+0.5)*sx)))
	py := min(im.H-1, max(0, int((float64(y)+0.5)*sy)))
	return im.Pix[py*im.W+px]
}

// Affine is a 2-D affine map: (x', y') = (A·x + B·y + C, D·x + E·y + F).
type Affine struct{ A, B, C, D, E, F float64 }

// Identity is the identity map.
func Identity() Affine { return Affine{A: 1, E: 1} }

// Then returns the map that applies m, then n.
func (m Affine) Then(n Affine) Affine {
	return Affine{
		A: n.A*m.A + n.B*m.D, B: n.A*m.B + n.B*m.E, C: n.A*m.C + n.B*m.F + n.C,
		D: n.D*m.A + n.E*m.D, E: n.D*m.B + n.E*m.E, F: n.D*m.C + n.E*m.F + n.F,
	}
}

// Apply maps a point.
func (m Affine) Apply(x, y float64) (float64, float64) {
	return m.A*x + m.B*y + m.C, m.D*x + m.E*y + m.F
}

// Inverse returns the inverse map (m must be invertible).
func (m Affine) Inverse() Affine {
	det := m.A*m.E - m.B*m.D
	a, b, d, e := m.E/det, -m.B/det, -m.D/det, m.A/det
	return Affine{A: a, B: b, C: -(a*m.C + b*m.F), D: d, E: e, F: -(d*m.C + e*m.F)}
}

// Rotation about (cx, cy) by deg degrees, with scale s.
func Rotation(cx, cy, deg, s float64) Affine {
	r := deg * math.Pi / 180
	c, sn := math.Cos(r)*s, math.Sin(r)*s
	return Affine{A: c, B: -sn, C: cx - c*cx + sn*cy, D: sn, E: c, F: cy - sn*cx - c*cy}
}

// Translation by (dx, dy).
func Translation(dx, dy float64) Affine { return Affine{A: 1, E: 1, C: dx, F: dy} }

// Warp maps the image through m (output pixel p takes the input at m⁻¹(p)), filling
// uncovered pixels with fill.
func Warp(im *Image, m Affine, fill float32) *Image {
	return planes(im, func(p *Image) *Image { return warp(p, m, fill) })
}

func warp(im *Image, m Affine, fill float32) *Image {
	inv := m.Inverse()
	out := New(im.W, im.H)
	for y := 0; y < im.H; y++ {
		for x := 0; x < im.W; x++ {
			sx, sy := inv.Apply(float64(x)+0.5, float64(y)+0.5)
			out.Pix[y*im.W+x] = im.Sample(sx, sy, fill)
		}
	}
	return out
}

// Blur is a separable Gaussian blur of standard deviation sigma pixels.
func Blur(im *Image, sigma float64) *Image {
	if sigma <= 0 {
		return im.Clone()
	}
	r := int(math.Ceil(3 * sigma))
	k := make([]float32, 2*r+1)
	var sum float32
	for i := -r; i <= r; i++ {
		k[i+r] = float32(math.Exp(-float64(i*i) / (2 * sigma * sigma)))
		sum += k[i+r]
	}
	for i := range k {
		k[i] /= sum
	}
	return planes(im, func(p *Image) *Image { return convolve1D(convolve1D(p, k, 1, 0), k, 0, 1) })
}

// Dilate is a grey dilation (max) over a (2r+1)² square: thicker bright strokes.
func Dilate(im *Image, r int) *Image { return morph(im, r, true) }

// Erode is a grey erosion (min) over a (2r+1)² square: thinner bright strokes.
func Erode(im *Image, r int) *Image { return morph(im, r, false) }

func morph(im *Image, r int, dilate bool) *Image {
	return planes(im, func(p *Image) *Image { return morphPlane(p, r, dilate) })
}

func morphPlane(im *Image, r int, dilate bool) *Image {
	out := New(im.W, im.H)
	for y := 0; y < im.H; y++ {
		for x := 0; x < im.W; x++ {
			v := im.Pix[y*im.W+x]
			for dy := -r; dy <= r; dy++ {
				for dx := -r; dx <= r; dx++ {
					px, py := x+dx, y+dy
					if px < 0 || py < 0 || px >= im.W || py >= im.H {
						continue
					}
					if p := im.Pix[py*im.W+px]; dilate == (p > v) {
						v = p
					}
				}
			}
			out.Pix[y*im.W+x] = v
		}
	}
	return out
}

// Composite paints src onto dst at (x, y) as ink of brightness ink, using src's values
// as coverage: dst = dst·(1−a) + ink·a, on every channel of dst.
func Composite(dst, src *Image, x, y int, ink float32) {
	for c := 0; c < dst.Channels(); c++ {
		composite(dst.Plane(c), src, x, y, ink)
	}
}

// CompositeColour paints src onto the colour image dst at (x, y) in the colour ink (one
// value per channel of dst), using src's first channel as coverage.
func CompositeColour(dst, src *Image, x, y int, ink []float32) {
	for c := 0; c < dst.Channels() && c < len(ink); c++ {
		composite(dst.Plane(c), src.Plane(0), x, y, ink[c])
	}
}

func composite(dst, src *Image, x, y int, ink float32) {
	for sy := 0; sy < src.H; sy++ {
		for sx := 0; sx < src.W; sx++ {
			dx, dy := x+sx, y+sy
			if dx < 0 || dy < 0 || dx >= dst.W || dy >= dst.H {
				continue
			}
			a := src.Pix[sy*src.W+sx]
			i := dy*dst.W + dx
			dst.Pix[i] = dst.Pix[i]*(1-a) + ink*a
		}
	}
}

// InkBounds returns the bounding box [x0,x1)×[y0,y1) of pixels above threshold (in luma),
// and false when there are none.
func InkBounds(im *Image, threshold float32) (x0, y0, x1, y1 int, ok bool) {
	im = im.Luma()
	x0, y0, x1, y1 = im.W, im.H, 0, 0
	for y := 0; y < im.H; y++ {
		for x := 0; x < im.W; x++ {
			if im.Pix[y*im.W+x] > threshold {
				x0, y0 = min(x0, x), min(y0, y)
				x1, y1 = max(x1, x+1), max(y1, y+1)
			}
		}
	}
	return x0, y0, x1, y1, x1 > x0
}

// convolve1D convolves im with the centred kernel k along (dx, dy) — (1, 0) for rows,
// (0, 1) for columns — repeating the border pixels.
func convolve1D(im *Image, k []float32, dx, dy int) *Image {
	r := len(k) / 2
	out := New(im.W, im.H)
	for y := 0; y < im.H; y++ {
		for x := 0; x < im.W; x++ {
			var v float32
			for i := -r; i <= r; i++ {
				px, py := min(im.W-1, max(0, x+i*dx)), min(im.H-1, max(0, y+i*dy))
				v += k[i+r] * im.Pix[py*im.W+px]
			}
			out.Pix[y*im.W+x] = v
		}
	}
	return out
}
