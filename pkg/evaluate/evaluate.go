// Package evaluate measures models the way the training overview does: accuracy,
// per-class precision and recall and the confusion matrix for classification; mean
// average precision (COCO's 101-point interpolation, at IoU 0.5 and averaged over IoU
// 0.50:0.05:0.95) for detection.
package evaluate

import (
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

// Detection scores predictions against ground truth, image by image. Classes without
// ground truth are left out of the means, as in COCO.
func Detection(gt [][]nn.Box, pred [][]nn.Detection, classes []string) DetectionReport {
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
// most); it returns the detections in that order and whether each is a true positive.
func matchClass(gt [][]nn.Box, pred [][]nn.Detection, c int, t float32) ([]scored, []bool) {
	var dets []scored
	for i, ds := range pred {
		for _, d := range ds {
			if d.Class == c {
				dets = append(dets, scored{img: i, det: d})
			}
		}
	}
	sort.SliceStable(dets, func(i, j int) bool { return dets[i].det.Score > dets[j].det.Score })
	matched := make(map[[2]int]bool)
	tp := make([]bool, len(dets))
	for k, d := range dets {
		if d.img >= len(gt) {
			continue
		}
		best, bestIoU := -1, t
		for gi, g := range gt[d.img] {
			if g.Class != c || matched[[2]int{d.img, gi}] {
				continue
			}
			if iou := nn.IoU(g, d.det.Box); iou >= bestIoU {
				best, bestIoU = gi, iou
			}
		}
		if best >= 0 {
			matched[[2]int{d.img, best}] = true
			tp[k] = true
		}
	}
	return dets, tp
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
