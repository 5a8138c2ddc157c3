package colourscenes

import (
	"fmt"
	"image"
	"math"

	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"

	"github.com/edgeloop/edgeloop/pkg/raster"
)

// Catalogue names every object class the generator can draw, in class order: filled
// shapes interleaved with letters of the Go Bold font (golang.org/x/image/font/gofont), so
// that the first few classes already mix both. A set of N classes uses the first N.
func Catalogue() []string {
	return []string{"circle", "square", "triangle", "star", "A", "K", "ring", "cross",
		"hexagon", "diamond", "R", "E", "G", "S", "F", "Y"}
}

// MirrorSafe reports whether class name looks the same mirrored left to right, so that a
// horizontal flip may mirror it as itself: the filled shapes do; the letters do not (a
// mirrored K or R is no letter, and even A and Y, symmetric in outline, are drawn with
// the font's uneven strokes). A name outside the catalogue is not.
func MirrorSafe(name string) bool {
	switch name {
	case "circle", "square", "triangle", "star", "ring", "cross", "hexagon", "diamond":
		return true
	}
	return false
}

// ClassNames returns the first n class names, or an error when n is outside 1–16.
func ClassNames(n int) ([]string, error) {
	all := Catalogue()
	if n < 1 || n > len(all) {
		return nil, fmt.Errorf("colour classes: %d, want 1–%d", n, len(all))
	}
	return all[:n], nil
}

// seg is one outline segment: move, line, quadratic or cubic Bézier ('M', 'L', 'Q',
// 'C'), with its points.
type seg struct {
	op byte
	p  [3][2]float64
}

// outlines holds each class's outline in unit coordinates: centred on (0,0), its larger
// side 1, y down.
type outlines [][]seg

// newOutlines builds the catalogue's outlines, parsing the font once.
func newOutlines() (outlines, error) {
	f, err := sfnt.Parse(gobold.TTF)
	if err != nil {
		return nil, fmt.Errorf("colour objects: parse the Go Bold font: %w", err)
	}
	var buf sfnt.Buffer
	names := Catalogue()
	out := make(outlines, len(names))
	for i, name := range names {
		if len([]rune(name)) == 1 {
			if out[i], err = glyph(f, &buf, []rune(name)[0]); err != nil {
				return nil, err
			}
			continue
		}
		out[i] = shape(name)
	}
	return out, nil
}

// glyph is a letter's outline, normalised to the unit box.
func glyph(f *sfnt.Font, buf *sfnt.Buffer, r rune) ([]seg, error) {
	idx, err := f.GlyphIndex(buf, r)
	if err != nil || idx == 0 {
		return nil, fmt.Errorf("colour objects: the Go Bold font has no glyph %q: %v", r, err)
	}
	segs, err := f.LoadGlyph(buf, idx, fixed.I(256), nil)
	if err != nil {
		return nil, fmt.Errorf("colour objects: load glyph %q: %w", r, err)
	}
	out := make([]seg, len(segs))
	for i, s := range segs {
		var sg seg
		switch s.Op {
		case sfnt.SegmentOpMoveTo:
			sg.op = 'M'
		case sfnt.SegmentOpLineTo:
			sg.op = 'L'
		case sfnt.SegmentOpQuadTo:
			sg.op = 'Q'
		default:
			sg.op = 'C'
		}
		for k := range s.Args {
			sg.p[k] = [2]float64{float64(s.Args[k].X) / 64, float64(s.Args[k].Y) / 64}
		}
		out[i] = sg
	}
	return normalise(out), nil
}

// npts is the number of points a segment uses.
func npts(op byte) int {
	switch op {
	case 'Q':
		return 2
	case 'C':
		return 3
	}
	return 1
}

// normalise centres an outline and scales its larger side to 1.
func normalise(s []seg) []seg {
	x0, y0, x1, y1 := bounds(s)
	side := math.Max(x1-x0, y1-y0)
	cx, cy := (x0+x1)/2, (y0+y1)/2
	for i := range s {
		for k := 0; k < npts(s[i].op); k++ {
			s[i].p[k] = [2]float64{(s[i].p[k][0] - cx) / side, (s[i].p[k][1] - cy) / side}
		}
	}
	return s
}

// bounds is the box of an outline's points (control points included).
func bounds(s []seg) (x0, y0, x1, y1 float64) {
	x0, y0, x1, y1 = math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, sg := range s {
		for k := 0; k < npts(sg.op); k++ {
			x0, y0 = math.Min(x0, sg.p[k][0]), math.Min(y0, sg.p[k][1])
			x1, y1 = math.Max(x1, sg.p[k][0]), math.Max(y1, sg.p[k][1])
		}
	}
	return
}

// polygon is a closed outline through pts.
func polygon(pts [][2]float64) []seg {
	out := []seg{{op: 'M', p: [3][2]float64{pts[0]}}}
	for _, p := range pts[1:] {
		out = append(out, seg{op: 'L', p: [3][2]float64{p}})
	}
	return append(out, seg{op: 'L', p: [3][2]float64{pts[0]}})
}

// regular is a regular n-gon of radius rad starting at angle a0 (radians), clockwise on
// screen (y down) or counter-clockwise.
func regular(n int, rad, a0 float64, ccw bool) [][2]float64 {
	pts := make([][2]float64, n)
	for i := range pts {
		a := a0 + 2*math.Pi*float64(i)/float64(n)
		if ccw {
			a = a0 - 2*math.Pi*float64(i)/float64(n)
		}
		pts[i] = [2]float64{rad * math.Cos(a), rad * math.Sin(a)}
	}
	return pts
}

// shape is a named filled shape's outline.
func shape(name string) []seg {
	up := -math.Pi / 2
	switch name {
	case "square":
		return polygon([][2]float64{{-0.5, -0.5}, {0.5, -0.5}, {0.5, 0.5}, {-0.5, 0.5}})
	case "triangle":
		return normalise(polygon([][2]float64{{0, -0.5}, {0.5, 0.5}, {-0.5, 0.5}}))
	case "star":
		var pts [][2]float64
		for i := 0; i < 10; i++ {
			rad := 0.5
			if i%2 == 1 {
				rad = 0.2
			}
			a := up + math.Pi*float64(i)/5
			pts = append(pts, [2]float64{rad * math.Cos(a), rad * math.Sin(a)})
		}
		return normalise(polygon(pts))
	case "ring":
		// The hole runs the other way round, so the winding cancels inside it.
		return append(polygon(regular(48, 0.5, 0, false)), polygon(regular(48, 0.27, 0, true))...)
	case "cross":
		a := 0.17
		return polygon([][2]float64{{-a, -0.5}, {a, -0.5}, {a, -a}, {0.5, -a}, {0.5, a}, {a, a}, {a, 0.5},
			{-a, 0.5}, {-a, a}, {-0.5, a}, {-0.5, -a}, {-a, -a}})
	case "hexagon":
		return normalise(polygon(regular(6, 0.5, 0, false)))
	case "diamond":
		return polygon([][2]float64{{0, -0.5}, {0.3, 0}, {0, 0.5}, {-0.3, 0}})
	default: // circle
		return polygon(regular(48, 0.5, 0, false))
	}
}

// mask draws outline o with its larger side size pixels, stretched by aspect (width /
// height factor) and rotated by deg degrees, as anti-aliased coverage in [0,1] on the
// smallest image that holds it plus a pixel of margin.
func mask(o []seg, size, aspect, deg float64) *raster.Image {
	sx, sy := size, size
	if aspect > 1 {
		sy /= aspect
	} else {
		sx *= aspect
	}
	rad := deg * math.Pi / 180
	c, s := math.Cos(rad), math.Sin(rad)
	tr := make([]seg, len(o))
	for i, sg := range o {
		tr[i].op = sg.op
		for k := 0; k < npts(sg.op); k++ {
			x, y := sg.p[k][0]*sx, sg.p[k][1]*sy
			tr[i].p[k] = [2]float64{c*x - s*y, s*x + c*y}
		}
	}
	x0, y0, x1, y1 := bounds(tr)
	w, h := int(math.Ceil(x1-x0))+2, int(math.Ceil(y1-y0))+2
	ox, oy := 1-x0, 1-y0
	z := vector.NewRasterizer(w, h)
	pt := func(p [2]float64) (float32, float32) { return float32(p[0] + ox), float32(p[1] + oy) }
	for _, sg := range tr {
		ax, ay := pt(sg.p[0])
		switch sg.op {
		case 'M':
			z.ClosePath()
			z.MoveTo(ax, ay)
		case 'L':
			z.LineTo(ax, ay)
		case 'Q':
			bx, by := pt(sg.p[1])
			z.QuadTo(ax, ay, bx, by)
		default:
			bx, by := pt(sg.p[1])
			cx, cy := pt(sg.p[2])
			z.CubeTo(ax, ay, bx, by, cx, cy)
		}
	}
	z.ClosePath()
	dst := image.NewAlpha(image.Rect(0, 0, w, h))
	z.Draw(dst, dst.Bounds(), image.Opaque, image.Point{})
	out := raster.New(w, h)
	for i, a := range dst.Pix {
		out.Pix[i] = float32(a) / 255
	}
	return out
}
