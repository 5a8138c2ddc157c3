// Package vision is the inference API of edgeloop's models, for the edge agent and for
// evaluation: preprocessing (the network's channels, stretched or letterboxed to its
// input, normalised as its weights expect), a pool of engines safe for concurrent
// callers, and decoding into predictions with confidences (softmax for classification;
// sigmoid objectness × class, then non-maximum suppression, for detection: the grid
// detector's cells or a multi-scale detector's pyramid levels) whose boxes are mapped
// back to the original image.
package vision

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Prediction is one output: a class with its confidence, and for detection a box.
type Prediction struct {
	Class      int     `json:"class"`
	ClassName  string  `json:"class_name"`
	Confidence float32 `json:"confidence"`
	// Box is set for detection (normalised coordinates).
	Box *nn.Box `json:"box,omitempty"`
}

// Options tune decoding.
type Options struct {
	// MinScore drops detections scoring less (default 0.25).
	MinScore float32
	// NMSIoU is the overlap above which a lower-scoring box of the same class (of any
	// class when ClassAgnostic) is suppressed (default 0.45).
	NMSIoU float32
	// ClassAgnostic makes non-maximum suppression ignore classes: one box per object
	// even when two classes score it.
	ClassAgnostic bool
	// MaxDetections keeps the best boxes of an image (default DefaultMaxDetections).
	MaxDetections int
	// TopK keeps the k best classes of a classification (default: all, sorted).
	TopK int
	// Embed makes a classifier's Predictor also return each image's embedding, the
	// penultimate features (nn.SplitHead), from the same forward pass.
	Embed bool
}

func (o Options) withDefaults() Options {
	if o.MinScore == 0 {
		o.MinScore = 0.25
	}
	if o.NMSIoU == 0 {
		o.NMSIoU = 0.45
	}
	if o.MaxDetections == 0 {
		o.MaxDetections = DefaultMaxDetections
	}
	return o
}

// WithDecoding returns o with a project's decoding settings (a model file's
// artifact.Header.Decode); nil, or a zero field, keeps o's.
func (o Options) WithDecoding(d *nn.Decoding) Options {
	if d == nil {
		return o
	}
	if d.MinScore != 0 {
		o.MinScore = d.MinScore
	}
	if d.IoU != 0 {
		o.NMSIoU = d.IoU
	}
	if d.MaxDetections != 0 {
		o.MaxDetections = d.MaxDetections
	}
	o.ClassAgnostic = o.ClassAgnostic || d.ClassAgnostic
	return o
}

// DefaultMaxDetections is the most boxes an image's decoding keeps unless told
// (Ultralytics' max_det). Evaluation then counts, as COCO's does, only the best 100 of
// each class in an image (evaluate.MaxDetections).
const DefaultMaxDetections = 300

// Fit converts an image to the network's channels (colour to grey by luma, grey to
// colour by repetition) and input size, stretched or letterboxed as the network's
// preprocessing says, and maps boxes normalised to the image into the fitted image. It
// returns the mapping from the fitted image's pixels back to the image's. An image
// that fits already is returned as it is.
func Fit(a nn.Arch, im *raster.Image, boxes []nn.Box) (*raster.Image, []nn.Box, raster.Letterbox) {
	im = im.WithChannels(max(a.InC, 1))
	l := raster.Letterbox{Scale: 1, SrcW: im.W, SrcH: im.H}
	switch {
	case im.W == a.InW && im.H == a.InH:
		return im, boxes, l
	case !a.Preprocess.Letterboxed():
		return raster.Resize(im, a.InW, a.InH), boxes, l
	}
	fill := a.Preprocess.Fill
	out, l := raster.LetterboxTo(im, a.InW, a.InH, fill)
	if len(boxes) == 0 {
		return out, boxes, l
	}
	moved := make([]nn.Box, len(boxes))
	for i, b := range boxes {
		x0, y0 := l.FromSource(float64(b.X0)*float64(l.SrcW), float64(b.Y0)*float64(l.SrcH))
		x1, y1 := l.FromSource(float64(b.X1)*float64(l.SrcW), float64(b.Y1)*float64(l.SrcH))
		moved[i] = nn.Box{X0: float32(x0 / float64(a.InW)), Y0: float32(y0 / float64(a.InH)),
			X1: float32(x1 / float64(a.InW)), Y1: float32(y1 / float64(a.InH)), Class: b.Class}
	}
	return out, moved, l
}

// Unfit maps a box the network predicted (normalised to its input) back to the
// original image, normalised to it and kept inside it: l is the mapping Fit returned.
func Unfit(a nn.Arch, l raster.Letterbox, b nn.Box) nn.Box {
	if l.Scale == 0 || l.SrcW < 1 || l.SrcH < 1 || !a.Preprocess.Letterboxed() {
		return b
	}
	back := func(x, y float32) (float32, float32) {
		sx, sy := l.ToSource(float64(x)*float64(a.InW), float64(y)*float64(a.InH))
		return float32(min(1, max(0, sx/float64(l.SrcW)))), float32(min(1, max(0, sy/float64(l.SrcH))))
	}
	out := b
	out.X0, out.Y0 = back(b.X0, b.Y0)
	out.X1, out.Y1 = back(b.X1, b.Y1)
	return out
}

// Normalise applies the network's per-channel input normalisation to pixels of its
// input size, in a copy; without normalisation it returns pix itself.
func Normalise(a nn.Arch, pix []float32) []float32 {
	p := a.Preprocess
	if p == nil || len(p.Mean) == 0 {
		return pix
	}
	out := make([]float32, len(pix))
	plane := a.InW * a.InH
	for i, v := range pix {
		c := (i / plane) % len(p.Mean)
		out[i] = (v - p.Mean[c]) / p.Std[c]
	}
	return out
}

// Input converts an image to the network's input: Fit, then Normalise.
func Input(a nn.Arch, im *raster.Image) []float32 {
	x, _ := input(a, im)
	return x
}

// input is Input with the mapping back to the image.
func input(a nn.Arch, im *raster.Image) ([]float32, raster.Letterbox) {
	fit, _, l := Fit(a, im, nil)
	return Normalise(a, fit.Pix), l
}

// Softmax returns the probabilities of logits.
func Softmax(logits []float32) []float32 {
	m := logits[0]
	for _, v := range logits {
		m = max(m, v)
	}
	out := make([]float32, len(logits))
	var sum float64
	for i, v := range logits {
		e := math.Exp(float64(v - m))
		out[i] = float32(e)
		sum += e
	}
	for i := range out {
		out[i] = float32(float64(out[i]) / sum)
	}
	return out
}

// DecodeClassify turns one image's logits into predictions, most confident first.
func DecodeClassify(logits []float32, classes []string, o Options) []Prediction {
	p := Softmax(logits)
	out := make([]Prediction, len(p))
	for i, v := range p {
		out[i] = Prediction{Class: i, ClassName: name(classes, i), Confidence: v}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Confidence > out[j].Confidence })
	if o.TopK > 0 && o.TopK < len(out) {
		out = out[:o.TopK]
	}
	return out
}

// DecodeDetect turns one image's head output (the grid detector's or every level of a
// multi-scale detector's) into boxes after NMS, best first, at most o.MaxDetections.
func DecodeDetect(a nn.Arch, out []float32, classes []string, o Options) []Prediction {
	o = o.withDefaults()
	dets := nn.Suppression{IoU: o.NMSIoU, ClassAgnostic: o.ClassAgnostic, MaxDetections: o.MaxDetections}.Apply(nn.Decode(a, out, o.MinScore))
	preds := make([]Prediction, len(dets))
	for i, d := range dets {
		b := d.Box
		preds[i] = Prediction{Class: d.Class, ClassName: name(classes, d.Class), Confidence: d.Score, Box: &b}
	}
	return preds
}

// Detections converts predictions back to scored boxes (for metrics).
func Detections(ps []Prediction) []nn.Detection {
	out := make([]nn.Detection, 0, len(ps))
	for _, p := range ps {
		if p.Box != nil {
			out = append(out, nn.Detection{Box: *p.Box, Score: p.Confidence})
		}
	}
	return out
}

func name(classes []string, i int) string {
	if i < len(classes) {
		return classes[i]
	}
	return fmt.Sprint(i)
}

// Predictor runs a model for concurrent callers with a pool of engines.
type Predictor struct {
	arch    nn.Arch
	classes []string
	opts    Options
	pool    chan nn.Engine
	all     []nn.Engine
	// head is set when the engines run the trunk (Options.Embed): it makes the logits.
	head *nn.DenseHead
}

// NewPredictor builds workers engines for the model.
func NewPredictor(a nn.Arch, p *nn.Params, classes []string, factory func(nn.EngineConfig) (nn.Engine, error), workers int, o Options) (*Predictor, error) {
	if len(classes) != a.Classes {
		return nil, fmt.Errorf("predictor: %d class names for %d classes", len(classes), a.Classes)
	}
	if workers < 1 {
		workers = 1
	}
	pr := &Predictor{arch: a, classes: classes, opts: o.withDefaults(), pool: make(chan nn.Engine, workers)}
	run, rp := a, p
	if o.Embed && a.Task == nn.Classify {
		trunk, tp, head, err := nn.SplitHead(a, p)
		if err != nil {
			return nil, fmt.Errorf("predictor with embeddings: %w", err)
		}
		run, rp, pr.head = trunk, tp, &head
	}
	for i := 0; i < workers; i++ {
		e, err := factory(nn.EngineConfig{Arch: run, Params: rp, BatchSize: 16})
		if err != nil {
			pr.Close()
			return nil, err
		}
		pr.all = append(pr.all, e)
		pr.pool <- e
	}
	return pr, nil
}

// Arch is the model's architecture.
func (pr *Predictor) Arch() nn.Arch { return pr.arch }

// Classes are the model's class names.
func (pr *Predictor) Classes() []string { return pr.classes }

// Predict runs the model on images.
func (pr *Predictor) Predict(ctx context.Context, ims []*raster.Image) ([][]Prediction, error) {
	res, _, err := pr.PredictEmbed(ctx, ims)
	return res, err
}

// Embeds reports whether PredictEmbed returns embeddings (Options.Embed on a classifier).
func (pr *Predictor) Embeds() bool { return pr.head != nil }

// PredictEmbed runs the model on images and returns, with the predictions, each
// image's embedding when the predictor was built with Options.Embed (else nil).
func (pr *Predictor) PredictEmbed(ctx context.Context, ims []*raster.Image) ([][]Prediction, [][]float32, error) {
	var e nn.Engine
	select {
	case e = <-pr.pool:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	defer func() { pr.pool <- e }()
	in := make([]float32, 0, len(ims)*pr.arch.InputSize())
	fits := make([]raster.Letterbox, len(ims))
	for i, im := range ims {
		x, l := input(pr.arch, im)
		in, fits[i] = append(in, x...), l
	}
	out, err := e.Forward(in, len(ims))
	if err != nil {
		return nil, nil, err
	}
	res := make([][]Prediction, len(ims))
	if h := pr.head; h != nil {
		embs := make([][]float32, len(ims))
		out = slices.Clone(out[:len(ims)*h.In]) // the engine may reuse its output
		for i := range ims {
			embs[i] = out[i*h.In : (i+1)*h.In : (i+1)*h.In]
			res[i] = DecodeClassify(h.Logits(embs[i]), pr.classes, pr.opts)
		}
		return res, embs, nil
	}
	k := pr.arch.OutputSize()
	for i := range ims {
		o := out[i*k : (i+1)*k]
		if pr.arch.Task == nn.Classify {
			res[i] = DecodeClassify(o, pr.classes, pr.opts)
		} else {
			res[i] = DecodeDetect(pr.arch, o, pr.classes, pr.opts)
			for _, p := range res[i] {
				*p.Box = Unfit(pr.arch, fits[i], *p.Box)
			}
		}
	}
	return res, nil, nil
}

// Close releases the engines.
func (pr *Predictor) Close() {
	for _, e := range pr.all {
		_ = e.Close()
	}
}

// BoxProto is b on the wire.
func BoxProto(b *nn.Box) *edgeloopv1.Box {
	if b == nil {
		return nil
	}
	return &edgeloopv1.Box{XMin: b.X0, YMin: b.Y0, XMax: b.X1, YMax: b.Y1}
}

// BoxFromProto is a wire box as an nn.Box (class index 0: the label names the class).
func BoxFromProto(b *edgeloopv1.Box) *nn.Box {
	if b == nil {
		return nil
	}
	return &nn.Box{X0: b.XMin, Y0: b.YMin, X1: b.XMax, Y1: b.YMax}
}
