package retrain

import (
	"image"

	"github.com/edgeloop/edgeloop/pkg/report"
)

// TrainingReport draws report.png: loss and val loss per epoch, the val metric per
// epoch, and the confusion matrix (classify) or per-class AP@0.5 (detect) on the test
// split.
func TrainingReport(m *Metrics, classes []string) []byte {
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
	return report.PNG(report.Grid(3, panels...))
}
