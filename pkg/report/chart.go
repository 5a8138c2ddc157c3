// Package report draws the pictures of a training and of the benchmarks as PNG: line
// charts (loss and val loss, accuracy or mAP per epoch, accuracy per label budget), bar
// charts (per-class figures) and the confusion matrix. It needs no plotting library:
// image/draw and a bitmap font.
package report

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Series is one line of a chart.
type Series struct {
	Name  string
	Color color.RGBA
	X, Y  []float64
	// Dashed draws the line dashed.
	Dashed bool
}

// Palette are distinct, colour-blind-friendly line colours (Okabe–Ito).
func Palette() []color.RGBA {
	return []color.RGBA{{0, 114, 178, 255}, {213, 94, 0, 255}, {0, 158, 115, 255}, {204, 121, 167, 255},
		{230, 159, 0, 255}, {86, 180, 233, 255}, {0, 0, 0, 255}}
}

var (
	white = color.RGBA{255, 255, 255, 255}
	grey  = color.RGBA{200, 200, 200, 255}
	ink   = color.RGBA{40, 40, 40, 255}
)

// canvas is an image with text helpers.
type canvas struct{ *image.RGBA }

func newCanvas(w, h int) canvas {
	c := canvas{image.NewRGBA(image.Rect(0, 0, w, h))}
	draw.Draw(c, c.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)
	return c
}

func (c canvas) text(x, y int, s string, col color.Color) {
	d := font.Drawer{Dst: c.RGBA, Src: image.NewUniform(col), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func textWidth(s string) int { return len(s) * 7 }

func (c canvas) line(x0, y0, x1, y1 int, col color.RGBA, dashed bool) {
	dx, dy := x1-x0, y1-y0
	n := max(abs(dx), abs(dy))
	for i := 0; i <= n; i++ {
		if dashed && (i/4)%2 == 1 {
			continue
		}
		x := x0 + int(math.Round(float64(dx*i)/float64(max(n, 1))))
		y := y0 + int(math.Round(float64(dy*i)/float64(max(n, 1))))
		c.Set(x, y, col)
		c.Set(x, y+1, col)
	}
}

func (c canvas) rect(r image.Rectangle, col color.Color) {
	draw.Draw(c, r, &image.Uniform{col}, image.Point{}, draw.Src)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// LineChart draws series on shared axes. yMin/yMax fix the y range when yMax > yMin.
func LineChart(title, xLabel string, series []Series, yMin, yMax float64) image.Image {
	const w, left, right, top = 520, 60, 20, 40
	// The legend wraps onto as many rows as its names need, below the plot.
	rows, lx := 1, left
	for _, s := range series {
		if wd := 30 + textWidth(s.Name); lx+wd > w && lx > left {
			rows, lx = rows+1, left+wd
		} else {
			lx += wd
		}
	}
	bottom := 70 + 16*(rows-1)
	h := 340 + 16*(rows-1)
	c := newCanvas(w, h)
	c.text(left, 20, title, ink)
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for i := range s.X {
			if math.IsNaN(s.Y[i]) || math.IsInf(s.Y[i], 0) {
				continue
			}
			xmin, xmax = math.Min(xmin, s.X[i]), math.Max(xmax, s.X[i])
			ymin, ymax = math.Min(ymin, s.Y[i]), math.Max(ymax, s.Y[i])
		}
	}
	if yMax > yMin {
		ymin, ymax = yMin, yMax
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax, ymin, ymax = 0, 1, 0, 1
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	if ymax == ymin {
		ymax = ymin + 1
	}
	integerX := true
	for _, s := range series {
		for _, x := range s.X {
			integerX = integerX && x == math.Trunc(x)
		}
	}
	pw, ph := w-left-right, h-top-bottom
	px := func(x float64) int { return left + int((x-xmin)/(xmax-xmin)*float64(pw)) }
	py := func(y float64) int { return top + ph - int((y-ymin)/(ymax-ymin)*float64(ph)) }
	for i := 0; i <= 4; i++ {
		y := ymin + (ymax-ymin)*float64(i)/4
		c.line(left, py(y), left+pw, py(y), grey, false)
		lbl := fmt.Sprintf("%.3g", y)
		c.text(left-6-textWidth(lbl), py(y)+4, lbl, ink)
		x := xmin + (xmax-xmin)*float64(i)/4
		if integerX {
			x = math.Round(x)
		}
		lx := fmt.Sprintf("%.4g", x)
		c.text(px(x)-textWidth(lx)/2, top+ph+16, lx, ink)
	}
	c.line(left, top, left, top+ph, ink, false)
	c.line(left, top+ph, left+pw, top+ph, ink, false)
	c.text(left+pw/2-textWidth(xLabel)/2, top+ph+32, xLabel, ink)
	lx, row := left, 0
	for _, s := range series {
		for i := 1; i < len(s.X); i++ {
			if bad(s.Y[i-1]) || bad(s.Y[i]) {
				continue
			}
			c.line(px(s.X[i-1]), py(s.Y[i-1]), px(s.X[i]), py(s.Y[i]), s.Color, s.Dashed)
		}
		for i := range s.X {
			if !bad(s.Y[i]) {
				c.rect(image.Rect(px(s.X[i])-2, py(s.Y[i])-2, px(s.X[i])+3, py(s.Y[i])+3), s.Color)
			}
		}
		wd := 30 + textWidth(s.Name)
		if lx+wd > w && lx > left {
			lx, row = left, row+1
		}
		base := h - 8 - 16*(rows-1-row)
		c.rect(image.Rect(lx, base-10, lx+14, base), s.Color)
		c.text(lx+18, base, s.Name, ink)
		lx += wd
	}
	return c
}

func bad(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }

// Bars draws one bar per label, values in [0, 1].
func Bars(title string, labels []string, values []float64) image.Image {
	const w, h, left, top, bottom = 520, 340, 60, 40, 40
	c := newCanvas(w, h)
	c.text(left, 20, title, ink)
	pw, ph := w-left-20, h-top-bottom
	n := max(1, len(labels))
	bw := pw / n
	for i := 0; i <= 4; i++ {
		y := top + ph - ph*i/4
		c.line(left, y, left+pw, y, grey, false)
		lbl := fmt.Sprintf("%.2f", float64(i)/4)
		c.text(left-6-textWidth(lbl), y+4, lbl, ink)
	}
	for i, l := range labels {
		v := math.Max(0, math.Min(1, values[i]))
		x0 := left + i*bw + bw/6
		c.rect(image.Rect(x0, top+ph-int(v*float64(ph)), left+(i+1)*bw-bw/6, top+ph), Palette()[0])
		c.text(left+i*bw+bw/2-textWidth(l)/2, top+ph+16, l, ink)
	}
	return c
}

// Confusion draws a confusion matrix (rows: truth, columns: prediction), each cell
// shaded by its share of the row.
func Confusion(title string, classes []string, m [][]int) image.Image {
	n := len(classes)
	cell := max(24, min(48, 440/max(1, n)))
	left, top := 70, 60
	c := newCanvas(left+cell*n+20, top+cell*n+30)
	c.text(10, 20, title, ink)
	c.text(left, 42, "predicted ->   (rows: truth)", ink)
	for i := 0; i < n; i++ {
		row := 0
		for _, v := range m[i] {
			row += v
		}
		c.text(left-8-textWidth(classes[i]), top+i*cell+cell/2+4, classes[i], ink)
		c.text(left+i*cell+cell/2-textWidth(classes[i])/2, top+n*cell+16, classes[i], ink)
		for j := 0; j < n; j++ {
			share := 0.0
			if row > 0 {
				share = float64(m[i][j]) / float64(row)
			}
			shade := uint8(255 - 200*share)
			col := color.RGBA{shade, shade, 255, 255}
			if i != j && m[i][j] > 0 {
				col = color.RGBA{255, shade, shade, 255}
			}
			r := image.Rect(left+j*cell, top+i*cell, left+(j+1)*cell-1, top+(i+1)*cell-1)
			c.rect(r, col)
			if m[i][j] > 0 {
				s := fmt.Sprint(m[i][j])
				c.text(r.Min.X+cell/2-textWidth(s)/2, r.Min.Y+cell/2+4, s, ink)
			}
		}
	}
	return c
}

// Picture is one tile of a Pictures panel: an image, its boxes (normalised x0, y0, x1,
// y1 and a class index that picks the colour) and a caption.
type Picture struct {
	Image   image.Image
	Boxes   [][5]float64
	Caption string
}

// Pictures draws a titled panel of images, perRow to a row, each scaled to fit side×side
// (nearest pixel), with its boxes outlined and its caption underneath.
func Pictures(title string, perRow, side int, pics []Picture) image.Image {
	const pad, capH, titleH = 6, 16, 24
	perRow = max(1, min(perRow, len(pics)))
	rows := (len(pics) + perRow - 1) / perRow
	c := newCanvas(pad+perRow*(side+pad), titleH+rows*(side+capH+pad))
	c.text(pad, 16, title, ink)
	pal := Palette()
	for i, p := range pics {
		b := p.Image.Bounds()
		s := math.Min(float64(side)/float64(b.Dx()), float64(side)/float64(b.Dy()))
		w, h := max(1, int(float64(b.Dx())*s)), max(1, int(float64(b.Dy())*s))
		ox, oy := pad+(i%perRow)*(side+pad)+(side-w)/2, titleH+(i/perRow)*(side+capH+pad)+(side-h)/2
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c.Set(ox+x, oy+y, p.Image.At(b.Min.X+int(float64(x)/s), b.Min.Y+int(float64(y)/s)))
			}
		}
		for _, bx := range p.Boxes {
			col := pal[int(bx[4])%len(pal)]
			x0, y0 := ox+int(bx[0]*float64(w)), oy+int(bx[1]*float64(h))
			x1, y1 := ox+int(bx[2]*float64(w))-1, oy+int(bx[3]*float64(h))-1
			c.line(x0, y0, x1, y0, col, false)
			c.line(x0, y1, x1, y1, col, false)
			c.line(x0, y0, x0, y1, col, false)
			c.line(x1, y0, x1, y1, col, false)
		}
		caption := p.Caption
		for len(caption) > 0 && textWidth(caption) > side {
			caption = caption[:len(caption)-1]
		}
		c.text(pad+(i%perRow)*(side+pad), titleH+(i/perRow)*(side+capH+pad)+side+12, caption, ink)
	}
	return c
}

// Grid lays images out in rows of perRow, on white.
func Grid(perRow int, ims ...image.Image) image.Image {
	if len(ims) == 0 {
		return newCanvas(1, 1)
	}
	var rowsH []int
	colW := make([]int, perRow)
	for i, im := range ims {
		r := i / perRow
		if r >= len(rowsH) {
			rowsH = append(rowsH, 0)
		}
		rowsH[r] = max(rowsH[r], im.Bounds().Dy())
		colW[i%perRow] = max(colW[i%perRow], im.Bounds().Dx())
	}
	tw, th := 0, 0
	for _, w := range colW {
		tw += w
	}
	for _, h := range rowsH {
		th += h
	}
	c := newCanvas(tw, th)
	y := 0
	for r, rh := range rowsH {
		x := 0
		for col := 0; col < perRow && r*perRow+col < len(ims); col++ {
			im := ims[r*perRow+col]
			draw.Draw(c, im.Bounds().Add(image.Pt(x, y)), im, im.Bounds().Min, draw.Src)
			x += colW[col]
		}
		y += rh
	}
	return c
}

// PNG encodes an image.
func PNG(im image.Image) []byte {
	var buf bytes.Buffer
	_ = png.Encode(&buf, im) // encoding to memory cannot fail
	return buf.Bytes()
}
