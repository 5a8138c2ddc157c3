package retrain

import (
	"fmt"
	"image"

	"github.com/edgeloop/edgeloop/pkg/report"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// TrainingReport draws report.png: loss and val loss per epoch, the val metric per
// epoch, the confusion matrix (classify) or per-class AP@0.5 (detect) on the test
// split, and the augmented training samples (train.Augmented) with their labels or
// boxes, when given.
func TrainingReport(m *Metrics, classes []string, augmented []train.Sample) []byte {
	epochs := make([]float64, len(m.TrainLoss))
	for i := range epochs {
		epochs[i] = float64(i + 1)
	}
	pal := report.Palette()
	panels := []image.Image{
		report.LineChart("loss and val loss", "epoch", []report.Series{
			{Name: "loss", Color: pal[0], X: epochs, Y: m.TrainLoss},
			{Name: "val loss", Color: pal[1], X: epochs, Y: m.ValLoss},
		}, 0, 0),
		report.LineChart(m.ValMetricName+" per epoch", "epoch", []report.Series{
			{Name: m.ValMetricName, Color: pal[2], X: epochs, Y: m.ValMetric},
		}, 0, 1),
	}
	if c := m.Test.Classification; c != nil {
		panels = append(panels, report.Confusion("confusion matrix (test)", classes, c.Confusion))
	}
	if d := m.Test.Detection; d != nil {
		var labels []string
		var ap []float64
		for _, c := range d.PerClass {
			labels = append(labels, c.Class)
			ap = append(ap, c.AP50)
		}
		panels = append(panels, report.Bars("AP@0.5 per class (test)", labels, ap))
	}
	grid := report.Grid(3, panels...)
	if len(augmented) == 0 {
		return report.PNG(grid)
	}
	pics := make([]report.Picture, len(augmented))
	for i, s := range augmented {
		p := report.Picture{Image: s.Image.Std()}
		name := func(c int) string {
			if c >= 0 && c < len(classes) {
				return classes[c]
			}
			return fmt.Sprint(c)
		}
		if s.Boxes == nil {
			p.Caption = name(s.Label)
		} else {
			p.Caption = fmt.Sprintf("%d boxes", len(s.Boxes))
		}
		for _, b := range s.Boxes {
			p.Boxes = append(p.Boxes, [5]float64{float64(b.X0), float64(b.Y0), float64(b.X1), float64(b.Y1), float64(b.Class)})
		}
		pics[i] = p
	}
	side := max(96, grid.Bounds().Dx()/6-8)
	return report.PNG(report.Grid(1, grid, report.Pictures("augmented training samples (as the network sees them)", 6, side, pics)))
}

// reportSamples is how many augmented samples the report shows.
const reportSamples = 12
