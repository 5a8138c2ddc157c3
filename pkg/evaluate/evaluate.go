// Package evaluate measures models the way the training overview does: accuracy,
// per-class precision and recall and the confusion matrix for classification; mean
// average precision (COCO's 101-point interpolation, at IoU 0.5 and averaged over IoU
// 0.50:0.05:0.95, over all objects and per object size, counting COCO's maxDets best
// detections of each class in an image) for detection.
package evaluate

import (
	"math"
	"sort"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// ClassStat are one class's figures.
type ClassStat struct {
	Class     string  `json:"class"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	// Support is the number of examples of the class.
	Support int `json:"support"`
	// Accuracy is the recall under its everyday name: the share of the class's examples
	// predicted right.
	Accuracy float64 `json:"accuracy"`
}

// ClassificationReport are a classifier's figures on one split.
type ClassificationReport struct {
	Accuracy float64     `json:"accuracy"`
	N        int         `json:"n"`
	PerClass []ClassStat `json:"per_class"`
	// Confusion[truth][predicted] counts examples.
	Confusion [][]int `json:"confusion"`
	// truth and pred are kept, example by example, for paired comparisons (Paired).
	truth, pred []int
}

// Classification compares predicted with true class indices.
func Classification(truth, pred []int, classes []string) ClassificationReport {
	k := len(classes)
	r := ClassificationReport{N: len(truth), Confusion: make([][]int, k), truth: append([]int(nil), truth...), pred: append([]int(nil), pred...)}
	for i := range r.Confusion {
		r.Confusion[i] = make([]int, k)
	}
	correct := 0
	for i, t := range truth {
		if t < 0 || t >= k || pred[i] < 0 || pred[i] >= k {
			continue
		}
		r.Confusion[t][pred[i]]++
		if t == pred[i] {
			correct++
		}
	}
	if len(truth) > 0 {
		r.Accuracy = float64(correct) / float64(len(truth))
	}
	for c := 0; c < k; c++ {
		tp, support, predicted := r.Confusion[c][c], 0, 0
		for j := 0; j < k; j++ {
			support += r.Confusion[c][j]
			predicted += r.Confusion[j][c]
		}
		s := ClassStat{Class: classes[c], Support: support}
		if predicted > 0 {
			s.Precision = float64(tp) / float64(predicted)
		}
		if support > 0 {
			s.Recall = float64(tp) / float64(support)
		}
		if s.Precision+s.Recall > 0 {
			s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
		}
		s.Accuracy = s.Recall
		r.PerClass = append(r.PerClass, s)
	}
	return r
}

// DetClassStat are one class's detection figures.
type DetClassStat struct {
	Class    string  `json:"class"`
	AP50     float64 `json:"ap50"`
	AP5095   float64 `json:"ap50_95"`
	GroundTr int     `json:"ground_truth"`
}

// DetectionReport are a detector's figures on one split.
type DetectionReport struct {
	MAP50    float64        `json:"map50"`
	MAP5095  float64        `json:"map50_95"`
	Images   int            `json:"images"`
	PerClass []DetClassStat `json:"per_class"`
	// BySize are COCO's small, medium and large figures (DetectionSized; absent when
	// the images' sizes are not known).
	BySize []SizeStat `json:"by_size,omitempty"`
	// images are the per-image matches at IoU 0.5, for paired comparisons
	// (PairedBootstrap).
	images []imageMatches
}

// IoUThresholds are COCO's: 0.50, 0.55, …, 0.95.
func IoUThresholds() []float32 {
	var ts []float32
	for i := 0; i < 10; i++ {
		ts = append(ts, 0.5+0.05*float32(i))
	}
	return ts
}

// SizeStat are the figures of the objects of one COCO size: mAP over the classes with
// ground truth of that size, at IoU 0.5 and over 0.50:0.95.
type SizeStat struct {
	Size    string  `json:"size"`
	MAP50   float64 `json:"map50"`
	MAP5095 float64 `json:"map50_95"`
	// GroundTr counts the objects of this size.
	GroundTr int `json:"ground_truth"`
}

// MaxDetections is COCO's maxDets for AP: of an image's detections of one class, the
// evaluation counts the best 100 by score and ignores the rest, for mAP, per-class AP
// and per-size AP alike. The cap is per image and class, as in pycocotools
// (COCOeval.evaluateImg keeps the first maxDets of an image's detections of the category
// it scores), so decoding with more boxes per image (vision.DefaultMaxDetections, 300)
// changes nothing unless one class has more than 100 in an image.
const MaxDetections = 100

// Object sizes: COCO's area thresholds, 32² and 96² pixels, unscaled.
const (
	SmallArea  = 32 * 32
	MediumArea = 96 * 96
)

// SizeRange is an object size: areas in [Lo, Hi) pixels.
type SizeRange struct {
	Name   string
	Lo, Hi float64
}

// SizeRanges are COCO's object sizes by area in pixels: small below 32², medium from
// 32² to 96², large above.
func SizeRanges() []SizeRange {
	return []SizeRange{{"small", 0, SmallArea}, {"medium", SmallArea, MediumArea}, {"large", MediumArea, math.Inf(1)}}
}

// Detection scores predictions against ground truth, image by image. Classes without
// ground truth are left out of the means, as in COCO, and only an image's best
// MaxDetections of each class count.
func Detection(gt [][]nn.Box, pred [][]nn.Detection, classes []string) DetectionReport {
	return DetectionSized(gt, pred, classes, nil)
}

// DetectionSized is Detection with COCO's per-size figures: sizes[i] is image i's
// width and height in pixels, which turn its normalised boxes into areas. COCO's
// thresholds (SmallArea, MediumArea) apply unscaled to those pixels, so pass the
// original images' sizes for COCO's figures (an image evaluated at the network's
// input counts in the input's pixels). As in COCO's evaluation, for each size the
// objects of other sizes are ignored (a detection matching one counts for nothing), as
// are unmatched detections of other sizes. Nil sizes leave BySize out.
func DetectionSized(gt [][]nn.Box, pred [][]nn.Detection, classes []string, sizes [][2]int) DetectionReport {
	r := detection(gt, pred, classes)
	if sizes == nil {
		return r
	}
	area := func(img int, b nn.Box) float64 {
		if img >= len(sizes) {
			return 0
		}
		return float64(b.Area()) * float64(sizes[img][0]) * float64(sizes[img][1])
	}
	for _, rg := range SizeRanges() {
		in := func(img int, b nn.Box) bool { a := area(img, b); return a >= rg.Lo && a < rg.Hi }
		st := SizeStat{Size: rg.Name}
		var sum50, sum5095 float64
		n := 0
		for c := range classes {
			ngt := 0
			for i, boxes := range gt {
				for _, b := range boxes {
					if b.Class == c && in(i, b) {
						ngt++
					}
				}
			}
			if ngt == 0 {
				continue
			}
			st.GroundTr += ngt
			var total, ap50 float64
			for _, t := range IoUThresholds() {
				_, tp, ignored := matchClassIn(gt, pred, c, t, in)
				var kept []bool
				for k, ok := range tp {
					if !ignored[k] {
						kept = append(kept, ok)
					}
				}
				ap := AveragePrecision(kept, ngt)
				if t == 0.5 {
					ap50 = ap
				}
				total += ap
			}
			sum50 += ap50
			sum5095 += total / 10
			n++
		}
		if n > 0 {
			st.MAP50, st.MAP5095 = sum50/float64(n), sum5095/float64(n)
		}
		r.BySize = append(r.BySize, st)
	}
	return r
}

func detection(gt [][]nn.Box, pred [][]nn.Detection, classes []string) DetectionReport {
	r := DetectionReport{Images: len(gt), images: make([]imageMatches, len(gt))}
	for i := range r.images {
		r.images[i].gt = make([]int, len(classes))
	}
	var sum50, sum5095 float64
	n := 0
	for c := range classes {
		s := DetClassStat{Class: classes[c]}
		for _, boxes := range gt {
			for _, b := range boxes {
				if b.Class == c {
					s.GroundTr++
				}
			}
		}
		for i, boxes := range gt {
			for _, b := range boxes {
				if b.Class == c {
					r.images[i].gt[c]++
				}
			}
		}
		if s.GroundTr > 0 {
			var total float64
			for _, t := range IoUThresholds() {
				dets, tp := matchClass(gt, pred, c, t)
				ap := AveragePrecision(tp, s.GroundTr)
				if t == 0.5 {
					s.AP50 = ap
					for k, d := range dets {
						if d.img >= len(gt) {
							continue
						}
						r.images[d.img].dets = append(r.images[d.img].dets, match{class: c, score: d.det.Score, tp: tp[k]})
					}
				}
				total += ap
			}
			s.AP5095 = total / 10
			sum50 += s.AP50
			sum5095 += s.AP5095
			n++
		}
		r.PerClass = append(r.PerClass, s)
	}
	if n > 0 {
		r.MAP50, r.MAP5095 = sum50/float64(n), sum5095/float64(n)
	}
	return r
}

type scored struct {
	img int
	det nn.Detection
}

// matchClass matches one class's detections to ground truth at IoU threshold t, greedily
// by descending score (each detection takes the unmatched ground-truth box it overlaps
// most); it returns the detections in that order, each image's best MaxDetections of
// the class only, and whether each is a true positive.
func matchClass(gt [][]nn.Box, pred [][]nn.Detection, c int, t float32) ([]scored, []bool) {
	dets, tp, _ := matchClassIn(gt, pred, c, t, nil)
	return dets, tp
}

// matchClassIn is matchClass counting only the ground truth in range (nil: all), as
// COCO's evaluation of an area range: a detection prefers the unmatched in-range box it
// overlaps most, else takes an out-of-range one and is ignored; an unmatched detection
// out of range is ignored too.
func matchClassIn(gt [][]nn.Box, pred [][]nn.Detection, c int, t float32, in func(img int, b nn.Box) bool) ([]scored, []bool, []bool) {
	var dets []scored
	byScore := func(ds []scored) func(i, j int) bool {
		return func(i, j int) bool { return ds[i].det.Score > ds[j].det.Score }
	}
	for i, ds := range pred {
		start := len(dets)
		for _, d := range ds {
			if d.Class == c {
				dets = append(dets, scored{img: i, det: d})
			}
		}
		// COCO's maxDets: the image's best detections of the class, before any matching.
		if mine := dets[start:]; len(mine) > MaxDetections {
			sort.SliceStable(mine, byScore(mine))
			dets = dets[:start+MaxDetections]
		}
	}
	sort.SliceStable(dets, byScore(dets))
	matched := make(map[[2]int]bool)
	tp := make([]bool, len(dets))
	ignored := make([]bool, len(dets))
	counts := func(img int, b nn.Box) bool { return in == nil || in(img, b) }
	for k, d := range dets {
		if d.img >= len(gt) {
			continue
		}
		// The best in-range match first; an out-of-range one only when none is left.
		best := -1
		for _, want := range []bool{true, false} {
			bestIoU := t
			for gi, g := range gt[d.img] {
				if g.Class != c || matched[[2]int{d.img, gi}] || counts(d.img, g) != want {
					continue
				}
				if iou := nn.IoU(g, d.det.Box); iou >= bestIoU {
					best, bestIoU = gi, iou
				}
			}
			if best >= 0 || in == nil {
				break
			}
		}
		switch {
		case best >= 0:
			matched[[2]int{d.img, best}] = true
			if counts(d.img, gt[d.img][best]) {
				tp[k] = true
			} else {
				ignored[k] = true
			}
		case !counts(d.img, d.det.Box):
			ignored[k] = true
		}
	}
	return dets, tp, ignored
}

// AveragePrecision is COCO's 101-point interpolated AP of a ranked list of detections
// (tp[i]: the i-th best-scored detection is a true positive) against nGT ground-truth
// objects.
func AveragePrecision(tp []bool, nGT int) float64 {
	if nGT == 0 {
		return 0
	}
	prec := make([]float64, len(tp))
	rec := make([]float64, len(tp))
	hits := 0
	for i, ok := range tp {
		if ok {
			hits++
		}
		prec[i] = float64(hits) / float64(i+1)
		rec[i] = float64(hits) / float64(nGT)
	}
	return interpolatedAP(prec, rec)
}

// interpolatedAP is the 101-point interpolated AP of a precision–recall curve, ranked
// best detection first; it makes prec monotone in place.
func interpolatedAP(prec, rec []float64) float64 {
	// Make precision monotone: the best precision at this recall or beyond.
	for i := len(prec) - 2; i >= 0; i-- {
		prec[i] = max(prec[i], prec[i+1])
	}
	var sum float64
	for p := 0; p <= 100; p++ {
		r := float64(p) / 100
		i := sort.SearchFloat64s(rec, r-1e-12)
		if i < len(prec) {
			sum += prec[i]
		}
	}
	return sum / 101
}
