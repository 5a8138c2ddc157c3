package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/evaluate"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/train"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// decodeOptions are the flags of the decode sweep: one trained model's mAP on the
// validation and test scenes under each NMS setting (the project's decode.iou and
// decode.class_agnostic), the setting picked on the validation scenes alone.
type decodeOptions struct {
	model, size, ious string
}

// decodeRow is one NMS setting's reports on the validation and test scenes.
type decodeRow struct {
	decoding  nn.Decoding
	val, test *evaluate.DetectionReport
}

// sweepBatch is the images of one forward pass of the decode sweep.
const sweepBatch = 32

// runDecodeSweep scores o.model (a cell's .params, of size o.size at -input) under
// each IoU of o.ious, class-wise and class-agnostic, and returns the table. The
// network runs once per scene set; only the decoding is repeated.
func runDecodeSweep(ctx context.Context, o decodeOptions, b *bench, log *zap.Logger) (string, error) {
	var ious []float32
	for _, s := range config.SplitList(o.ious) {
		v, err := strconv.ParseFloat(s, 32)
		if err != nil || !(v > 0 && v <= 1) {
			return "", fmt.Errorf("-decode-ious: %q is not an IoU in (0, 1]", s)
		}
		if !slices.Contains(ious, float32(v)) {
			ious = append(ious, float32(v))
		}
	}
	if len(ious) == 0 {
		return "", fmt.Errorf("-decode-ious %q: no IoU to try", o.ious)
	}
	a, err := b.arch(o.size)
	if err != nil {
		return "", fmt.Errorf("-decode-size: %w", err)
	}
	p, err := nn.NewParams(a)
	if err != nil {
		return "", fmt.Errorf("%s: %w", a.Name, err)
	}
	if err := readParams(o.model, p); err != nil {
		return "", fmt.Errorf("-decode-model (a %s at %dx%d?): %w", a.Name, b.o.w, b.o.h, err)
	}
	e, err := b.choice.Factory(nn.EngineConfig{Arch: a, Params: p, BatchSize: sweepBatch})
	if err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	defer e.Close()
	outputs := func(samples []train.Sample) ([][]float32, error) {
		out := make([][]float32, 0, len(samples))
		err := train.Outputs(e, a, samples, sweepBatch, func(raw []float32) error {
			out = append(out, slices.Clone(raw))
			return ctx.Err()
		})
		return out, err
	}
	val, err := outputs(b.data.Val)
	if err != nil {
		return "", fmt.Errorf("validation scenes: %w", err)
	}
	test, err := outputs(b.data.Test)
	if err != nil {
		return "", fmt.Errorf("test scenes: %w", err)
	}
	score := func(samples []train.Sample, raw [][]float32, d *nn.Decoding) *train.Evaluation {
		preds := make([][]vision.Prediction, len(raw))
		for i, r := range raw {
			preds[i] = train.DecodeWith(a, b.classes, r, d)
		}
		ev := train.EvaluatePredictions(a, b.classes, samples, preds)
		return &ev
	}
	var rows []decodeRow
	for _, agnostic := range []bool{false, true} {
		for _, iou := range ious {
			d := nn.Decoding{IoU: iou, ClassAgnostic: agnostic}
			v, t := score(b.data.Val, val, &d).Detection, score(b.data.Test, test, &d).Detection
			rows = append(rows, decodeRow{decoding: d, val: v, test: t})
			log.Info("decoding scored", zap.Float32("iou", iou), zap.Bool("class_agnostic", agnostic),
				zap.Float64("val_map50", v.MAP50), zap.Float64("test_map50", t.MAP50))
		}
	}
	best := slices.MaxFunc(rows, func(x, y decodeRow) int {
		return cmp.Or(cmp.Compare(x.val.MAP50, y.val.MAP50), cmp.Compare(x.val.MAP5095, y.val.MAP5095))
	})
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n## NMS settings of %s (%s at %dx%d; %d validation, %d test scenes)\n\n", o.model, a.Name, b.o.w, b.o.h,
		len(b.data.Val), len(b.data.Test))
	sb.WriteString("The setting is picked on the validation scenes (mAP@0.5, then mAP@[.5:.95]); the test columns are read after.\n\n")
	sb.WriteString("| NMS | IoU | val mAP@0.5 | val mAP@[.5:.95] | test mAP@0.5 | test mAP@[.5:.95] | test AP@[.5:.95] small |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		kind := "class-wise"
		if r.decoding.ClassAgnostic {
			kind = "class-agnostic"
		}
		mark := ""
		if r.decoding == best.decoding {
			mark = " (picked)"
		}
		small := "—"
		if ap := bySize(r.test, "small"); ap >= 0 {
			small = fmt.Sprintf("%.3f", ap)
		}
		fmt.Fprintf(&sb, "| %s%s | %.2f | %.3f | %.3f | %.3f | %.3f | %s |\n", kind, mark, r.decoding.IoU, r.val.MAP50, r.val.MAP5095,
			r.test.MAP50, r.test.MAP5095, small)
	}
	sb.WriteString("\nThe picked setting's test figures by class and by COCO size (AP@0.5, AP@[.5:.95], objects):\n\n| class or size | AP@0.5 | AP@[.5:.95] | objects |\n|---|---:|---:|---:|\n")
	for _, c := range best.test.PerClass {
		fmt.Fprintf(&sb, "| %s | %.3f | %.3f | %d |\n", c.Class, c.AP50, c.AP5095, c.GroundTr)
	}
	for _, z := range best.test.BySize {
		fmt.Fprintf(&sb, "| %s objects | %.3f | %.3f | %d |\n", z.Size, z.MAP50, z.MAP5095, z.GroundTr)
	}
	return sb.String(), nil
}
