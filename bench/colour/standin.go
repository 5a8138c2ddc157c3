package main

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// standinShapes are the stand-in's 16 classes: an inside test on [-1, 1]² each.
var standinShapes = []struct {
	name   string
	inside func(x, y float64) bool
}{
	{"circle", func(x, y float64) bool { return x*x+y*y < 1 }},
	{"square", func(x, y float64) bool { return math.Abs(x) < 0.8 && math.Abs(y) < 0.8 }},
	{"triangle", func(x, y float64) bool { return y < 0.8 && y > 2*math.Abs(x)-1 }},
	{"cross", func(x, y float64) bool {
		return (math.Abs(x) < 0.3 || math.Abs(y) < 0.3) && math.Abs(x) < 0.9 && math.Abs(y) < 0.9
	}},
	{"ring", func(x, y float64) bool { r := x*x + y*y; return r < 1 && r > 0.4 }},
	{"diamond", func(x, y float64) bool { return math.Abs(x)+math.Abs(y) < 1 }},
	{"bars", func(x, y float64) bool { return math.Abs(x) < 0.9 && math.Abs(math.Abs(y)-0.5) < 0.2 }},
	{"star", func(x, y float64) bool {
		r, a := math.Hypot(x, y), math.Atan2(y, x)
		return r < 0.45+0.5*math.Pow(math.Abs(math.Cos(2.5*a)), 3)
	}},
	{"hexagon", func(x, y float64) bool {
		ax, ay := math.Abs(x), math.Abs(y)
		return ay < 0.85 && ax*0.866+ay*0.5 < 0.85
	}},
	{"ell", func(x, y float64) bool { return x > -0.8 && y < 0.8 && (x < -0.3 || y > 0.3) && x < 0.8 && y > -0.8 }},
	{"tee", func(x, y float64) bool {
		return (y < -0.4 && y > -0.85 && math.Abs(x) < 0.85) || (math.Abs(x) < 0.22 && y > -0.85 && y < 0.85)
	}},
	{"half", func(x, y float64) bool { return x*x+y*y < 1 && y > 0 }},
	{"crescent", func(x, y float64) bool { return x*x+y*y < 1 && (x-0.45)*(x-0.45)+y*y > 0.55 }},
	{"frame", func(x, y float64) bool {
		m := math.Max(math.Abs(x), math.Abs(y))
		return m < 0.85 && m > 0.55
	}},
	{"arrow", func(x, y float64) bool {
		return (math.Abs(y) < 0.2 && x < 0.2 && x > -0.9) || (x >= 0.2 && x < 0.9 && math.Abs(y) < 0.9-x)
	}},
	{"ex", func(x, y float64) bool {
		return (math.Abs(x-y) < 0.35 || math.Abs(x+y) < 0.35) && math.Abs(x) < 0.85 && math.Abs(y) < 0.85
	}},
}

// standin makes n w×h RGB images of classes [first, first+classes) of the stand-in
// catalogue, image i of class first + i mod classes: a shape in a random saturated
// colour, rotated up to ±20°, at 40–85 % of the smaller side, over a two-colour
// gradient with a few faint rectangles and noise. It stands in for the colourscenes
// generator (photographs, fonts) until that lands.
func standin(n, w, h, first, classes int, seed uint64) ([]train.Sample, error) {
	if first < 0 || classes < 1 || first+classes > len(standinShapes) {
		return nil, fmt.Errorf("stand-in generator: classes %d–%d of %d", first, first+classes-1, len(standinShapes))
	}
	out := make([]train.Sample, n)
	for i := range out {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		cls := i % classes
		im := raster.NewC(w, h, 3)
		c0, c1 := muted(r), muted(r)
		angle := r.Float64() * 2 * math.Pi
		dx, dy := math.Cos(angle), math.Sin(angle)
		for c := 0; c < 3; c++ {
			pl := im.Plane(c).Pix
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					t := 0.5 + 0.5*((float64(x)/float64(w)-0.5)*dx+(float64(y)/float64(h)-0.5)*dy)
					pl[y*w+x] = float32((1-t)*c0[c] + t*c1[c])
				}
			}
		}
		for k := 0; k < 3; k++ { // distractors
			col := muted(r)
			x0, y0 := r.IntN(w), r.IntN(h)
			x1, y1 := min(w, x0+w/8+r.IntN(w/3)), min(h, y0+h/8+r.IntN(h/3))
			for c := 0; c < 3; c++ {
				pl := im.Plane(c).Pix
				for y := y0; y < y1; y++ {
					for x := x0; x < x1; x++ {
						pl[y*w+x] = 0.6*pl[y*w+x] + 0.4*float32(col[c])
					}
				}
			}
		}
		ink := saturated(r)
		side := float64(min(w, h)) * (0.4 + 0.45*r.Float64())
		half := side / 2
		cx := half + r.Float64()*(float64(w)-side)
		cy := half + r.Float64()*(float64(h)-side)
		rot := (r.Float64()*2 - 1) * 20 * math.Pi / 180
		cs, sn := math.Cos(rot), math.Sin(rot)
		inside := standinShapes[first+cls].inside
		for y := int(cy - half*1.5); y < int(cy+half*1.5); y++ {
			for x := int(cx - half*1.5); x < int(cx+half*1.5); x++ {
				if x < 0 || y < 0 || x >= w || y >= h {
					continue
				}
				u, v := (float64(x)+0.5-cx)/half, (float64(y)+0.5-cy)/half
				if !inside(cs*u+sn*v, -sn*u+cs*v) {
					continue
				}
				shade := 0.85 + 0.15*(1-v)/2
				for c := 0; c < 3; c++ {
					im.Plane(c).Pix[y*w+x] = float32(ink[c] * shade)
				}
			}
		}
		for k := range im.Pix {
			im.Pix[k] = float32(math.Min(1, math.Max(0, float64(im.Pix[k])+0.04*r.NormFloat64())))
		}
		out[i] = train.Sample{ID: fmt.Sprintf("standin-%d-%d", seed, i), Image: im, Label: cls}
	}
	return out, nil
}

func muted(r *rand.Rand) [3]float64 {
	base := 0.3 + 0.4*r.Float64()
	return [3]float64{base + 0.2*(r.Float64()-0.5), base + 0.2*(r.Float64()-0.5), base + 0.2*(r.Float64()-0.5)}
}

// saturated is a random colour of full saturation and value 0.6–1 (HSV).
func saturated(r *rand.Rand) [3]float64 {
	h, v := r.Float64()*6, 0.6+0.4*r.Float64()
	f := h - math.Floor(h)
	p, q, t := 0.0, v*(1-f), v*f
	switch int(h) {
	case 0:
		return [3]float64{v, t, p}
	case 1:
		return [3]float64{q, v, p}
	case 2:
		return [3]float64{p, v, t}
	case 3:
		return [3]float64{p, q, v}
	case 4:
		return [3]float64{t, p, v}
	}
	return [3]float64{v, p, q}
}
