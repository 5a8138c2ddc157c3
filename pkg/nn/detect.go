package nn

import (
	"fmt"
	"math"
	"sort"
)

// Box is an axis-aligned box in normalised image coordinates ([0,1], x0 < x1, y0 < y1)
// with a class index. It is edgeloop's one box type: models, predictions, stored
// labels and exports use it (stored JSON names the class, not the index, beside it).
type Box struct {
	X0    float32 `json:"x0"`
	Y0    float32 `json:"y0"`
	X1    float32 `json:"x1"`
	Y1    float32 `json:"y1"`
	Class int     `json:"-"`
}

// Area of b.
func (b Box) Area() float32 { return max(0, b.X1-b.X0) * max(0, b.Y1-b.Y0) }

// IoU is the intersection over union of two boxes (0 when either is empty).
func IoU(a, b Box) float32 {
	iw := min(a.X1, b.X1) - max(a.X0, b.X0)
	ih := min(a.Y1, b.Y1) - max(a.Y0, b.Y0)
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	union := a.Area() + b.Area() - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// Detection is a predicted box with its score: σ(objectness) · σ(class).
type Detection struct {
	Box
	Score float32
}

// The detection loss weights (YOLO v1's λcoord and λnoobj).
const (
	LambdaCoord = 5
	LambdaNoObj = 0.5
)

// DetTargets are the detection loss's inputs, each shaped like the head's output. For a
// multi-scale detector see MultiScaleLoss; for the grid detector, (N, 5+C, S, S), with z
// the head output, the loss is
//
//	L = 1/N · [ Σ W⊙(softplus(z) − T⊙z) + LambdaCoord · Σ M⊙(σ(z) − B)² ]
//
// that is, binary cross-entropy on objectness (channel 0, weight 1 where a box's centre
// falls, LambdaNoObj elsewhere) and on the class channels (5…, only at those cells), and
// squared error on the box channels (1–4: centre offset in the cell, and the square
// roots of width and height, so that a thin box's width counts as much as a wide one's,
// as in YOLO v1).
type DetTargets struct {
	W, T, M, B []float32
}

// EncodeTargets builds the targets of n images from their ground-truth boxes. For the
// grid detector a box belongs to the cell that holds its centre; when two share a
// cell, the larger wins. For a multi-scale detector (Arch.Levels) see MultiScaleLoss.
func EncodeTargets(a Arch, boxes [][]Box) *DetTargets {
	if len(a.Levels) > 0 {
		return encodeLevels(a, boxes)
	}
	s := a.Grid()
	ch := DetectOut(a.Classes)
	n := len(boxes)
	size := n * ch * s * s
	t := &DetTargets{W: make([]float32, size), T: make([]float32, size), M: make([]float32, size), B: make([]float32, size)}
	at := func(img, c, row, col int) int { return ((img*ch+c)*s+row)*s + col }
	for i, bs := range boxes {
		for r := 0; r < s; r++ {
			for c := 0; c < s; c++ {
				t.W[at(i, 0, r, c)] = LambdaNoObj
			}
		}
		owner := map[[2]int]Box{}
		for _, b := range bs {
			cx, cy := (b.X0+b.X1)/2, (b.Y0+b.Y1)/2
			col := min(s-1, max(0, int(cx*float32(s))))
			row := min(s-1, max(0, int(cy*float32(s))))
			if cur, ok := owner[[2]int{row, col}]; ok && cur.Area() >= b.Area() {
				continue
			}
			owner[[2]int{row, col}] = b
		}
		for rc, b := range owner {
			row, col := rc[0], rc[1]
			cx, cy := (b.X0+b.X1)/2, (b.Y0+b.Y1)/2
			t.W[at(i, 0, row, col)] = 1
			t.T[at(i, 0, row, col)] = 1
			vals := [4]float32{cx*float32(s) - float32(col), cy*float32(s) - float32(row), sqrt32(b.X1 - b.X0), sqrt32(b.Y1 - b.Y0)}
			for k, v := range vals {
				t.M[at(i, 1+k, row, col)] = 1
				t.B[at(i, 1+k, row, col)] = v
			}
			for k := 0; k < a.Classes; k++ {
				t.W[at(i, 5+k, row, col)] = 1
				if k == b.Class {
					t.T[at(i, 5+k, row, col)] = 1
				}
			}
		}
	}
	return t
}

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(max(0, x)))) }

// Decode turns one image's head output into detections scoring at least minScore,
// before non-maximum suppression: the grid detector's (5+C)·S·S values, or every level
// of a multi-scale detector.
func Decode(a Arch, out []float32, minScore float32) []Detection {
	if len(a.Levels) > 0 {
		return decodeLevels(a, out, minScore)
	}
	s := a.Grid()
	at := func(c, row, col int) float32 { return out[(c*s+row)*s+col] }
	var dets []Detection
	for row := 0; row < s; row++ {
		for col := 0; col < s; col++ {
			obj := sigmoid(at(0, row, col))
			if obj < minScore {
				continue
			}
			best, bestP := 0, float32(-1)
			for k := 0; k < a.Classes; k++ {
				if p := sigmoid(at(5+k, row, col)); p > bestP {
					best, bestP = k, p
				}
			}
			score := obj * bestP
			if score < minScore {
				continue
			}
			cx := (float32(col) + sigmoid(at(1, row, col))) / float32(s)
			cy := (float32(row) + sigmoid(at(2, row, col))) / float32(s)
			sw, sh := sigmoid(at(3, row, col)), sigmoid(at(4, row, col))
			w, h := sw*sw, sh*sh
			dets = append(dets, Detection{Box: Box{
				X0: clamp01(cx - w/2), Y0: clamp01(cy - h/2), X1: clamp01(cx + w/2), Y1: clamp01(cy + h/2), Class: best,
			}, Score: score})
		}
	}
	return dets
}

func clamp01(x float32) float32 { return min(1, max(0, x)) }

// NMS keeps, per class, the highest-scoring boxes and drops those overlapping a kept
// one by more than iou. Ties in score keep the earlier box. The result is sorted by
// score, highest first.
func NMS(dets []Detection, iou float32) []Detection {
	return Suppression{IoU: iou}.Apply(dets)
}

// Suppression is non-maximum suppression's configuration.
type Suppression struct {
	// IoU is the overlap above which the lower-scoring box is dropped.
	IoU float32
	// ClassAgnostic suppresses overlapping boxes whatever their classes; else only
	// boxes of one class suppress each other.
	ClassAgnostic bool
	// MaxDetections keeps at most this many boxes, the best (0: all).
	MaxDetections int
}

// Decoding is how a project's detector output becomes boxes on its agents: boxes
// scoring under MinScore dropped, then non-maximum suppression (Suppression), as
// Ultralytics' conf, iou, agnostic_nms and max_det. A project sets it (its decode
// setting) and the model file's header carries it to the agents with the model. A zero
// field means the agent's default (vision.Options: min score 0.25, IoU 0.45, class-wise,
// 300 boxes), which is how a model file without the setting is decoded.
type Decoding struct {
	// MinScore drops boxes scoring less.
	MinScore float32 `json:"min_score,omitempty"`
	// IoU is the overlap above which the lower-scoring box is suppressed.
	IoU float32 `json:"iou,omitempty"`
	// ClassAgnostic suppresses overlapping boxes whatever their classes: one box per
	// object even when two classes score it.
	ClassAgnostic bool `json:"class_agnostic,omitempty"`
	// MaxDetections keeps at most this many boxes of an image, the best.
	MaxDetections int `json:"max_detections,omitempty"`
}

// MaxDecodedDetections bounds Decoding.MaxDetections.
const MaxDecodedDetections = 10000

// Validate refuses a setting outside its range, naming it.
func (d Decoding) Validate() error {
	if !(d.MinScore >= 0 && d.MinScore < 1) {
		return fmt.Errorf("decode.min_score %v: want 0 ≤ min_score < 1 (0: the default)", d.MinScore)
	}
	if !(d.IoU >= 0 && d.IoU <= 1) {
		return fmt.Errorf("decode.iou %v: want 0 < iou ≤ 1 (0: the default)", d.IoU)
	}
	if d.MaxDetections < 0 || d.MaxDetections > MaxDecodedDetections {
		return fmt.Errorf("decode.max_detections %d: want 1–%d (0: the default)", d.MaxDetections, MaxDecodedDetections)
	}
	return nil
}

// Apply keeps the highest-scoring boxes and drops those overlapping a kept one (of its
// class, unless ClassAgnostic) by more than s.IoU, up to s.MaxDetections. Ties in score
// keep the earlier box. The result is sorted by score, highest first.
func (s Suppression) Apply(dets []Detection) []Detection {
	sorted := append([]Detection(nil), dets...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Score > sorted[j].Score })
	var keep []Detection
	for _, d := range sorted {
		if s.MaxDetections > 0 && len(keep) >= s.MaxDetections {
			break
		}
		ok := true
		for _, k := range keep {
			if (s.ClassAgnostic || k.Class == d.Class) && IoU(k.Box, d.Box) > s.IoU {
				ok = false
				break
			}
		}
		if ok {
			keep = append(keep, d)
		}
	}
	return keep
}
