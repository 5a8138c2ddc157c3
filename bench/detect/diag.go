package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/train"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// diagnosis splits a trained multi-scale detector's loss on samples into its terms and
// says how well it does at the points the assignment makes positive: what to look at
// when the detector learns slowly.
type diagnosis struct {
	images, objects, positives int
	// Loss terms per image, as the engines weigh them.
	objPos, objNeg, cls, box float64
	// At the positive points: mean IoU of the predicted box with its object, the share
	// whose best class is the object's, mean σ(objectness) and mean σ(class).
	iou, clsRight, objProb, clsProb float64
	// negHigh counts negative points with σ(objectness) ≥ 0.3.
	negHigh int
	// byLevel counts positives per level.
	byLevel []int
}

func diagnose(e nn.Engine, a nn.Arch, samples []train.Sample, batch int) (diagnosis, error) {
	maps := a.LevelMaps()
	d := diagnosis{byLevel: make([]int, len(maps))}
	per := a.OutputSize()
	sp := func(v float64) float64 { return max(v, 0) + math.Log1p(math.Exp(-math.Abs(v))) }
	sg := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	for start := 0; start < len(samples); start += batch {
		end := min(len(samples), start+batch)
		var x []float32
		var boxes [][]nn.Box
		for _, s := range samples[start:end] {
			x = append(x, vision.Input(a, s.Image)...)
			boxes = append(boxes, s.Boxes)
			d.objects += len(s.Boxes)
		}
		n := end - start
		z, err := e.Forward(x, n)
		if err != nil {
			return d, err
		}
		t := nn.EncodeTargets(a, boxes)
		for img := 0; img < n; img++ {
			for l, m := range maps {
				hw := m.H * m.W
				for p := 0; p < hw; p++ {
					o := img*per + m.Offset + p
					v := float64(z[o])
					bce := float64(t.W[o]) * (sp(v) - float64(t.T[o])*v)
					if t.M[o+hw] == 0 {
						d.objNeg += bce
						if sg(v) >= 0.3 {
							d.negHigh++
						}
						continue
					}
					d.positives++
					d.byLevel[l]++
					d.objPos += bce
					d.objProb += sg(v)
					best, bestZ, want := 0, math.Inf(-1), 0
					for k := 0; k < a.Classes; k++ {
						i := o + (5+k)*hw
						c := float64(z[i])
						d.cls += float64(t.W[i]) * (sp(c) - float64(t.T[i])*c)
						if c > bestZ {
							best, bestZ = k, c
						}
						if t.T[i] == 1 {
							want = k
						}
					}
					if best == want {
						d.clsRight++
					}
					d.clsProb += sg(float64(z[o+(5+want)*hw]))
					var pd, gd [4]float64
					for k := range pd {
						pd[k] = math.Exp(min(float64(z[o+(k+1)*hw]), nn.BoxLogMax))
						gd[k] = float64(t.B[o+(k+1)*hw])
					}
					gl, _ := nn.GIoULoss(pd, gd)
					d.box += float64(t.M[o+hw]) * gl
					iw := min(pd[0], gd[0]) + min(pd[2], gd[2])
					ih := min(pd[1], gd[1]) + min(pd[3], gd[3])
					inter := max(iw, 0) * max(ih, 0)
					d.iou += inter / ((pd[0]+pd[2])*(pd[1]+pd[3]) + (gd[0]+gd[2])*(gd[1]+gd[3]) - inter)
				}
			}
		}
		d.images += n
	}
	return d, nil
}

func (d diagnosis) String() string {
	ni, np := float64(max(d.images, 1)), float64(max(d.positives, 1))
	var lv []string
	for _, c := range d.byLevel {
		lv = append(lv, fmt.Sprint(c))
	}
	return fmt.Sprintf("loss/image obj+ %.3f obj- %.3f cls %.3f box %.3f | positives/object %.2f (by level %s) | at positives: IoU %.3f, class right %.3f, σ(obj) %.3f, σ(cls) %.3f | negatives with σ(obj)≥0.3: %.1f/image",
		d.objPos/ni, d.objNeg/ni, d.cls/ni, d.box/ni, float64(d.positives)/float64(max(d.objects, 1)), strings.Join(lv, "/"),
		d.iou/np, d.clsRight/np, d.objProb/np, d.clsProb/np, float64(d.negHigh)/ni)
}
