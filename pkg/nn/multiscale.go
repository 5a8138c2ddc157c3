package nn

import (
	"fmt"
	"math"
)

// The multi-scale detector (DetectorFamily) is anchor-free in the manner of FCOS and
// YOLOX: every point of every pyramid level predicts an objectness logit, the
// distances from the point to the box's four sides (left, top, right, bottom, in
// strides, as exp of the raw outputs) and one logit per class; docs/models.md argues
// the design.
//
// Its loss, per point, over the targets DetTargets holds for it (EncodeTargets):
//
//	W₀·BCE(z₀, T₀) + Σₖ W₅₊ₖ·BCE(z₅₊ₖ, T₅₊ₖ·q) + M₁·(1 − GIoU(exp(z₁…₄), B₁…₄))
//
// with BCE(z, t) = softplus(z) − t·z: objectness at every point (T₀ = 1 at the points
// assigned to a box), the classes at the assigned points with the assigned class's
// target q = IoU(exp(z₁…₄), B₁…₄), held constant (YOLOX's IoU-aware class target; see
// PointLoss), and the generalised IoU of
// the predicted box with the assigned box at those points (B₁…₄ are the box's
// distances from the point in strides; GIoU is invariant to that shift and scale). The
// weights fold in the normalisation by the batch's mean number of assigned points per
// image (at least one), so the engines' mean over images is YOLOX's sum over points
// divided by the assigned points.

// Loss weights of the multi-scale detector (YOLOX's: box 5, objectness and class 1).
const (
	MSLambdaBox = 5
	MSLambdaObj = 1
	MSLambdaCls = 1
)

// CentreRadius is the centre sampling radius in strides: a point is assigned to a box
// only when it lies inside the box and within this many strides of its centre on both
// axes (YOLOX's 2.5).
const CentreRadius = 2.5

// BoxLogMax bounds the raw box outputs: distances are exp(min(z, BoxLogMax)) strides.
const BoxLogMax = 10

// PriorProb is the objectness and class probability the heads start at (their biases
// are log(p/(1−p)), RetinaNet's prior), so that the many background points do not
// swamp the first steps.
const PriorProb = 0.01

// levelRange is the range (lo, hi] of the largest point-to-side distance, in input
// pixels, that level i of levels handles: FCOS's 0, 64, 128, ∞ at strides 8, 16, 32,
// that is hi = 8·stride and lo the previous level's hi; the last level has no bound.
func levelRange(levels []LevelMap, i int) (lo, hi float64) {
	hi = math.Inf(1)
	if i < len(levels)-1 {
		hi = 8 * float64(levels[i].Stride)
	}
	if i > 0 {
		lo = 8 * float64(levels[i-1].Stride)
	}
	return lo, hi
}

// encodeLevels builds the multi-scale detector's targets: label assignment by centre
// sampling within each level's size range, the smallest box winning a point claimed by
// several; a box that no point takes (smaller than a stride, or between points) gets
// the point nearest its centre on the level its size falls in. A box left with no
// point because smaller boxes took all of its own (tiny objects side by side in a
// dense scene) is then given one on that level within ±2 cells of its centre's cell
// (up to 2.5 strides from the centre on each axis): the nearest to its centre of the
// points inside it that are unclaimed or whose box keeps another, else the nearest
// unclaimed point outside it (rescue).
func encodeLevels(a Arch, boxes [][]Box) *DetTargets {
	maps := a.LevelMaps()
	per := a.OutputSize()
	n := len(boxes)
	t := &DetTargets{W: make([]float32, n*per), T: make([]float32, n*per), M: make([]float32, n*per), B: make([]float32, n*per)}
	owners := make([][][]int, n) // owners[img][level][point]: index of the box, or -1
	positives := 0
	fw, fh := float64(a.InW), float64(a.InH)
	for img, bs := range boxes {
		owners[img] = make([][]int, len(maps))
		for l, m := range maps {
			owners[img][l] = make([]int, m.H*m.W)
			for i := range owners[img][l] {
				owners[img][l][i] = -1
			}
		}
		area := func(k int) float64 { return float64(bs[k].Area()) }
		claim := func(l, p, k int) {
			if cur := owners[img][l][p]; cur < 0 || area(k) < area(cur) {
				owners[img][l][p] = k
			}
		}
		valid := func(b Box) bool { return b.Class >= 0 && b.Class < a.Classes && b.X1 > b.X0 && b.Y1 > b.Y0 }
		for k, b := range bs {
			if !valid(b) {
				continue
			}
			x0, y0, x1, y1 := float64(b.X0)*fw, float64(b.Y0)*fh, float64(b.X1)*fw, float64(b.Y1)*fh
			cx, cy := (x0+x1)/2, (y0+y1)/2
			found := false
			for l, m := range maps {
				s := float64(m.Stride)
				lo, hi := levelRange(maps, l)
				r := CentreRadius * s
				// Points (j+½)s inside the box and the centre region.
				j0, j1 := max(0, int(math.Ceil(max(x0, cx-r)/s-0.5))), min(m.W-1, int(math.Floor(min(x1, cx+r)/s-0.5)))
				i0, i1 := max(0, int(math.Ceil(max(y0, cy-r)/s-0.5))), min(m.H-1, int(math.Floor(min(y1, cy+r)/s-0.5)))
				for i := i0; i <= i1; i++ {
					py := (float64(i) + 0.5) * s
					for j := j0; j <= j1; j++ {
						px := (float64(j) + 0.5) * s
						if px <= x0 || px >= x1 || py <= y0 || py >= y1 || math.Abs(px-cx) >= r || math.Abs(py-cy) >= r {
							continue
						}
						if d := max(px-x0, py-y0, x1-px, y1-py); d <= lo || d > hi {
							continue
						}
						claim(l, i*m.W+j, k)
						found = true
					}
				}
			}
			if found {
				continue
			}
			l := sizeLevel(maps, max(x1-x0, y1-y0)/2)
			m, s := maps[l], float64(maps[l].Stride)
			j, i := min(m.W-1, max(0, int(cx/s))), min(m.H-1, max(0, int(cy/s)))
			claim(l, i*m.W+j, k)
		}
		rescue(maps, owners[img], bs, valid, fw, fh)
		for l := range maps {
			for _, k := range owners[img][l] {
				if k >= 0 {
					positives++
				}
			}
		}
	}
	// Normalise by the mean assigned points per image, at least one.
	w := float32(float64(n) / max(float64(positives), float64(n)))
	for img, bs := range boxes {
		for l, m := range maps {
			hw := m.H * m.W
			base := img*per + m.Offset
			s := float64(m.Stride)
			for p, k := range owners[img][l] {
				o := base + p
				t.W[o] = MSLambdaObj * w
				if k < 0 {
					continue
				}
				b := bs[k]
				t.T[o] = 1
				for c := 0; c < a.Classes; c++ {
					t.W[o+(5+c)*hw] = MSLambdaCls * w
				}
				t.T[o+(5+b.Class)*hw] = 1
				px, py := (float64(p%m.W)+0.5)*s, (float64(p/m.W)+0.5)*s
				t.M[o+hw] = MSLambdaBox * w
				t.B[o+hw] = float32((px - float64(b.X0)*fw) / s)
				t.B[o+2*hw] = float32((py - float64(b.Y0)*fh) / s)
				t.B[o+3*hw] = float32((float64(b.X1)*fw - px) / s)
				t.B[o+4*hw] = float32((float64(b.Y1)*fh - py) / s)
			}
		}
	}
	return t
}

// sizeLevel is the level whose size range holds a box's half longer side d (pixels).
func sizeLevel(maps []LevelMap, d float64) int {
	for i := range maps {
		if _, hi := levelRange(maps, i); d <= hi {
			return i
		}
	}
	return len(maps) - 1
}

// rescue gives each valid box of one image that owns no point (smaller boxes took all
// of its own) one point of the level of its size, searched in the 5×5 cells around the
// cell of its centre (±2 cells: up to 2.5 strides from the centre on each axis). It
// takes the point nearest its centre among those inside the box that are unowned or
// whose owner keeps another point (taken from that owner); when there is none, the
// nearest unowned point outside the box; when there is neither, the box stays without a
// point. Ties go to the first in row-major order. owners are the image's
// owners[level][point].
func rescue(maps []LevelMap, owners [][]int, bs []Box, valid func(Box) bool, fw, fh float64) {
	count := make([]int, len(bs))
	for _, pts := range owners {
		for _, k := range pts {
			if k >= 0 {
				count[k]++
			}
		}
	}
	for k, b := range bs {
		if count[k] > 0 || !valid(b) {
			continue
		}
		x0, y0, x1, y1 := float64(b.X0)*fw, float64(b.Y0)*fh, float64(b.X1)*fw, float64(b.Y1)*fh
		cx, cy := (x0+x1)/2, (y0+y1)/2
		l := sizeLevel(maps, max(x1-x0, y1-y0)/2)
		m, s := maps[l], float64(maps[l].Stride)
		cj, ci := int(cx/s), int(cy/s)
		best, bestInside, bestD := -1, false, math.Inf(1)
		for i := max(0, ci-2); i <= min(m.H-1, ci+2); i++ {
			for j := max(0, cj-2); j <= min(m.W-1, cj+2); j++ {
				px, py := (float64(j)+0.5)*s, (float64(i)+0.5)*s
				inside := px > x0 && px < x1 && py > y0 && py < y1
				cur := owners[l][i*m.W+j]
				if !(cur < 0 || inside && count[cur] > 1) {
					continue
				}
				d := (px-cx)*(px-cx) + (py-cy)*(py-cy)
				if inside && !bestInside || inside == bestInside && d < bestD {
					best, bestInside, bestD = i*m.W+j, inside, d
				}
			}
		}
		if best < 0 {
			continue
		}
		if cur := owners[l][best]; cur >= 0 {
			count[cur]--
		}
		owners[l][best] = k
		count[k]++
	}
}

// MultiScaleLoss is the multi-scale detector's loss of the first n images of z (the
// head's outputs) against t, summed over images (the engines scale it by 1/n), and its
// gradient in dz (same layout as z; the first n images are written). It is the
// definition the Gorgonia engine computes and the CUDA kernel transcribes.
func MultiScaleLoss(a Arch, z []float32, t *DetTargets, n int, dz []float32) (float64, error) {
	per := a.OutputSize()
	if len(a.Levels) == 0 || per == 0 {
		return 0, fmt.Errorf("multi-scale loss: arch %s has no pyramid levels", a.Name)
	}
	if len(z) < n*per || len(dz) < n*per || len(t.W) < n*per || len(t.T) < n*per || len(t.M) < n*per || len(t.B) < n*per {
		return 0, fmt.Errorf("multi-scale loss: %d images of %d outputs, have %d outputs, %d gradients, %d targets", n, per, len(z), len(dz), len(t.W))
	}
	var loss float64
	for img := 0; img < n; img++ {
		for _, m := range a.LevelMaps() {
			hw := m.H * m.W
			for p := 0; p < hw; p++ {
				loss += PointLoss(z, t.W, t.T, t.M, t.B, dz, img*per+m.Offset+p, hw, a.Classes)
			}
		}
	}
	return loss, nil
}

// PointLoss is the loss of one point of a level, whose channel c lies at o + c·hw in
// z and the targets, for classes classes; it writes the point's gradient into dz. At an
// assigned point (M₁ ≠ 0) a class target of exactly 1 stands for the IoU of the
// predicted box with the assigned one (BoxIoU), taken as a constant: YOLOX's IoU-aware
// class target, so that a detection's score σ(objectness)·σ(class) ranks well-placed
// boxes first. Other target values are used as they are (QualityTargets freezes them).
func PointLoss(z, w, t, m, b, dz []float32, o, hw, classes int) float64 {
	var loss float64
	mw := float64(m[o+hw])
	var pd, gd [4]float64
	quality := 1.0
	if mw != 0 {
		for k := range pd {
			pd[k] = math.Exp(min(float64(z[o+(k+1)*hw]), BoxLogMax))
			gd[k] = float64(b[o+(k+1)*hw])
		}
		quality = BoxIoU(pd, gd)
	}
	bce := func(i int, ti float64) {
		v, wi := float64(z[i]), float64(w[i])
		e := math.Exp(-math.Abs(v)) // one exponential for the softplus and σ(v), stable both ways
		sp := max(v, 0) + math.Log1p(e)
		loss += wi * (sp - ti*v)
		s := 1 / (1 + e)
		if v < 0 {
			s = e / (1 + e)
		}
		dz[i] = float32(wi * (s - ti))
	}
	bce(o, float64(t[o]))
	for k := 0; k < classes; k++ {
		i := o + (5+k)*hw
		ti := float64(t[i])
		if ti == 1 && mw != 0 {
			ti = quality
		}
		bce(i, ti)
	}
	if mw == 0 {
		for k := 1; k <= 4; k++ {
			dz[o+k*hw] = 0
		}
		return loss
	}
	l, grad := GIoULoss(pd, gd)
	loss += mw * l
	for k := range pd {
		g := 0.0
		if float64(z[o+(k+1)*hw]) < BoxLogMax {
			g = mw * grad[k] * pd[k]
		}
		dz[o+(k+1)*hw] = float32(g)
	}
	return loss
}

// BoxIoU is the IoU of two boxes given as distances (left, top, right, bottom) from one
// point.
func BoxIoU(p, g [4]float64) float64 {
	iw := min(p[0], g[0]) + min(p[2], g[2])
	ih := min(p[1], g[1]) + min(p[3], g[3])
	inter := max(iw, 0) * max(ih, 0)
	union := (p[0]+p[2])*(p[1]+p[3]) + (g[0]+g[2])*(g[1]+g[3]) - inter
	if !(union > 0) {
		return 0
	}
	return inter / union
}

// QualityTargets returns a copy of the targets of the first n images with the IoU-aware
// class targets PointLoss uses for outputs z written in: the loss of z against them is
// the same, and its gradient is PointLoss's with the targets held constant, which is
// what a finite-difference check of PointLoss's gradient compares against.
func QualityTargets(a Arch, z []float32, t *DetTargets, n int) *DetTargets {
	q := &DetTargets{W: t.W, M: t.M, B: t.B, T: append([]float32(nil), t.T...)}
	per := a.OutputSize()
	for img := 0; img < n; img++ {
		for _, m := range a.LevelMaps() {
			hw := m.H * m.W
			for p := 0; p < hw; p++ {
				o := img*per + m.Offset + p
				if t.M[o+hw] == 0 {
					continue
				}
				var pd, gd [4]float64
				for k := range pd {
					pd[k] = math.Exp(min(float64(z[o+(k+1)*hw]), BoxLogMax))
					gd[k] = float64(t.B[o+(k+1)*hw])
				}
				for k := 0; k < a.Classes; k++ {
					if i := o + (5+k)*hw; t.T[i] == 1 {
						q.T[i] = float32(BoxIoU(pd, gd))
					}
				}
			}
		}
	}
	return q
}

// GIoULoss is 1 − GIoU of two boxes given as distances (left, top, right, bottom)
// from one point, and its gradient with respect to p's distances. Ties of a min or max
// count for the target g's side.
func GIoULoss(p, g [4]float64) (float64, [4]float64) {
	ap := (p[0] + p[2]) * (p[1] + p[3])
	ag := (g[0] + g[2]) * (g[1] + g[3])
	iw := min(p[0], g[0]) + min(p[2], g[2])
	ih := min(p[1], g[1]) + min(p[3], g[3])
	iwp, ihp := max(iw, 0), max(ih, 0)
	inter := iwp * ihp
	union := ap + ag - inter
	ew := max(p[0], g[0]) + max(p[2], g[2])
	eh := max(p[1], g[1]) + max(p[3], g[3])
	enc := ew * eh
	loss := 2 - inter/union - union/enc
	dI := -(union+inter)/(union*union) + 1/enc
	dA := inter/(union*union) - 1/enc
	dE := union / (enc * enc)
	var grad [4]float64
	for k := range p {
		// Horizontal sides (0, 2) meet the vertical extent's factors and vice versa.
		extI, own, extE := ihp, iw, eh
		side := p[1] + p[3]
		if k%2 == 1 {
			extI, own, extE, side = iwp, ih, ew, p[0]+p[2]
		}
		var d float64
		if own > 0 && p[k] < g[k] {
			d += dI * extI
		}
		if p[k] > g[k] {
			d += dE * extE
		}
		grad[k] = d + dA*side
	}
	return loss, grad
}

// decodeLevels turns one image's multi-scale output into detections scoring at least
// minScore (objectness × best class), before non-maximum suppression.
func decodeLevels(a Arch, out []float32, minScore float32) []Detection {
	var dets []Detection
	fw, fh := float32(a.InW), float32(a.InH)
	for _, m := range a.LevelMaps() {
		hw := m.H * m.W
		s := float32(m.Stride)
		for p := 0; p < hw; p++ {
			o := m.Offset + p
			obj := sigmoid(out[o])
			if !(obj >= minScore) { // NaN outputs (a diverged model) give no box
				continue
			}
			best, bestZ := 0, out[o+5*hw]
			for k := 1; k < a.Classes; k++ {
				if v := out[o+(5+k)*hw]; v > bestZ {
					best, bestZ = k, v
				}
			}
			score := obj * sigmoid(bestZ)
			if !(score >= minScore) {
				continue
			}
			px, py := (float32(p%m.W)+0.5)*s, (float32(p/m.W)+0.5)*s
			d := func(k int) float32 { return s * float32(math.Exp(min(float64(out[o+k*hw]), BoxLogMax))) }
			dets = append(dets, Detection{Box: Box{
				X0: clamp01((px - d(1)) / fw), Y0: clamp01((py - d(2)) / fh),
				X1: clamp01((px + d(3)) / fw), Y1: clamp01((py + d(4)) / fh), Class: best,
			}, Score: score})
		}
	}
	return dets
}

// priorBias is the logit of PriorProb.
func priorBias() float32 { return float32(math.Log(PriorProb / (1 - PriorProb))) }
