// Package train fits edgeloop's networks, following the training overview: mini-batch
// Adam on the train split with augmentation, the validation split measured every epoch
// ("val loss"), early stopping after `patience` epochs without improvement with the best
// weights restored, a flag when loss falls while val loss rises (overfitting), a warning
// when classes are unbalanced, and a refusal below 10 examples. The same seed gives the
// same run, and a training that checkpoints (Config.Checkpoint) can be stopped after any
// epoch and resumed to the same end. What computes is an nn.Engine: the Gorgonia CPU
// engine or the CUDA engine.
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/evaluate"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// Sample is one annotated example.
type Sample struct {
	// ID names the example in errors and reports.
	ID    string
	Image *raster.Image
	// Label is the class (classification).
	Label int
	// Boxes are the objects (detection).
	Boxes []nn.Box
	// Size is the original image's width and height in pixels when Image is a resized
	// copy (zero: Image's own); detection's per-size figures count areas in them.
	Size [2]int
	// Weight is the example's weight in the training loss, in [0, 1]; 0 means 1. A
	// training example of weight w < 1 (a pseudo-label) takes part in each epoch with
	// probability w, so that it counts w times a labelled example on average (the
	// engines compute an unweighted mean). Val and test ignore it.
	Weight float32
	// Strong makes a training example learnt from Config.Strong's view instead of
	// Config.Augment's: FixMatch's strong view of a pseudo-label (or of a correction).
	Strong bool
}

// Split is a dataset divided for training.
type Split struct {
	Train, Val, Test []Sample
}

// Add puts smp in the split named name: "val", "test", else train.
func (s *Split) Add(name string, smp Sample) {
	switch name {
	case "val":
		s.Val = append(s.Val, smp)
	case "test":
		s.Test = append(s.Test, smp)
	default:
		s.Train = append(s.Train, smp)
	}
}

// MinExamples is the fewest training examples a training accepts (training overview:
// "at least 10 examples").
const MinExamples = 10

// ErrTooFew refuses a training with fewer than MinExamples examples.
var ErrTooFew = errors.New("too few examples to train")

// ErrDiverged says the loss became NaN or infinite; the best weights so far are kept.
var ErrDiverged = errors.New("training diverged")

// Config tunes a training.
type Config struct {
	// Epochs is the most epochs to run (default 10).
	Epochs int `json:"epochs"`
	// BatchSize (default 64).
	BatchSize int `json:"batch_size"`
	// LR is Adam's learning rate (default 1e-3; fine-tuning usually wants less).
	LR float32 `json:"lr"`
	// Schedule of the learning rate over the epochs: "cosine" (default: from LR down
	// to 5 % of it at the last epoch) or "constant".
	Schedule string `json:"schedule"`
	// Patience is how many epochs without val-loss improvement end the training
	// (default 3; 0 means the default, negative turns early stopping off).
	Patience int `json:"patience"`
	// MinDelta is the smallest val-loss decrease that counts as improvement.
	MinDelta float64 `json:"min_delta"`
	// Seed makes the run reproducible (shuffling, augmentation).
	Seed uint64 `json:"seed"`
	// FreezeBackbone trains the head only.
	FreezeBackbone bool `json:"freeze_backbone"`
	// FreezeBN makes batch norm use and keep its running statistics in training
	// (nn.EngineConfig.FreezeBN): for fine-tuning pretrained weights on small batches.
	FreezeBN bool `json:"freeze_bn,omitempty"`
	// Augment is the augmentation pipeline.
	Augment augment.Config `json:"augment"`
	// Strong is the pipeline of the examples marked Sample.Strong (zero: Augment's
	// strong view, augment.Config.Strong). Either way it flips as Augment.Mirror says:
	// the mirror setting is the project's, not the view's.
	Strong *augment.Config `json:"strong,omitempty"`
	// EMA, when in (0, 1), keeps an exponential moving average of the weights over the
	// steps (Polyak averaging, as Ultralytics' ModelEMA), with decay min(EMA, (1+t)/(10+t))
	// at step t; the average is what is validated and kept, not the raw weights.
	EMA float64 `json:"ema,omitempty"`
	// KeepLast keeps the weights of the last epoch, with early stopping off, rather
	// than those of the lowest val loss (val is still measured and reported): for a
	// fine-tune whose val split predates what it adapts to (a drift the val examples do
	// not show), where the lowest val loss picks the least adapted weights.
	KeepLast bool `json:"keep_last,omitempty"`
	// Decode is the project's decode setting (nil: the defaults): validation decodes
	// with its NMS, IoU and ClassAgnostic, as the agents will (DecodeWith).
	Decode *nn.Decoding `json:"decode,omitempty"`
	// MaxImbalance is the class-count ratio above which a warning is given (default 3).
	MaxImbalance float64 `json:"max_imbalance"`
	// Progress, when set, is told after each batch and each epoch.
	Progress func(Progress) `json:"-"`
	// Checkpoint, when set, is a file the training saves its whole state to after each
	// epoch (weights, best weights, Adam's moments, the weight average, the history) and
	// resumes from when it exists: a training that was stopped (killed, cancelled) goes on
	// after its last finished epoch and ends with what an uninterrupted run would have.
	// A checkpoint of another training (network, classes, settings, starting weights or
	// examples) is refused; one written on another engine or build is resumed with a
	// warning, as its sums round differently. The file is written durably (fsync) and
	// stays when the training ends: the caller removes it when it no longer wants it.
	Checkpoint string `json:"-"`
}

func (c Config) withDefaults() Config {
	config.Default(&c.Epochs, 10)
	config.Default(&c.BatchSize, 64)
	config.Default(&c.LR, 1e-3)
	if c.Patience == 0 {
		c.Patience = 3
	}
	config.Default(&c.MaxImbalance, 3)
	s := c.Augment.Strong()
	if c.Strong != nil {
		s = *c.Strong // a copy: the caller's stays as it is
		s.Mirror = c.Augment.Mirror
	}
	c.Strong = &s
	if c.Schedule == "" {
		c.Schedule = "cosine"
	}
	return c
}

// lrAt is the learning rate of an epoch (1-based) under the schedule.
func (c Config) lrAt(epoch int) float32 {
	if c.Schedule != "cosine" || c.Epochs <= 1 {
		return c.LR
	}
	const floor = 0.05
	t := float64(epoch-1) / float64(c.Epochs-1)
	return c.LR * float32(floor+(1-floor)*0.5*(1+math.Cos(math.Pi*t)))
}

// Progress reports a training's advance.
type Progress struct {
	Epoch, Epochs  int
	Batch, Batches int
	// Loss is the running mean train loss of the epoch.
	Loss float64
	// Done is set once per epoch, with its stats.
	Done *EpochStats
}

// EpochStats are one epoch's figures.
type EpochStats struct {
	Epoch     int     `json:"epoch"`
	TrainLoss float64 `json:"train_loss"`
	ValLoss   float64 `json:"val_loss"`
	// ValMetric is the val accuracy (classify) or mAP@0.5 (detect).
	ValMetric    float64 `json:"val_metric"`
	Seconds      float64 `json:"seconds"`
	ImagesPerSec float64 `json:"images_per_sec"`
}

// Result is a finished training.
type Result struct {
	// Params are the best weights (lowest val loss), restored into the engine too.
	Params       *nn.Params   `json:"-"`
	History      []EpochStats `json:"history"`
	BestEpoch    int          `json:"best_epoch"`
	StoppedEarly bool         `json:"stopped_early"`
	// Overfitting is set when train loss fell while val loss rose for two epochs in a
	// row; OverfitFrom is the first such epoch.
	Overfitting bool     `json:"overfitting"`
	OverfitFrom int      `json:"overfit_from,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
	// Skipped are the examples left out because they were unusable.
	Skipped []Skip `json:"skipped,omitempty"`
	// ResumedFrom is the epoch of the checkpoint the training resumed after (0: none).
	ResumedFrom int    `json:"resumed_from,omitempty"`
	Engine      string `json:"engine"`
	Examples    struct {
		Train, Val, Test int
	} `json:"examples"`
}

// Run trains the network arch from init (fresh or a parent's weights) on data.
func Run(ctx context.Context, arch nn.Arch, init *nn.Params, classes []string, data Split, cfg Config,
	factory func(nn.EngineConfig) (nn.Engine, error)) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Augment.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Strong.Validate(); err != nil {
		return nil, fmt.Errorf("strong view: %w", err)
	}
	if cfg.Schedule != "cosine" && cfg.Schedule != "constant" {
		return nil, fmt.Errorf("train: schedule %q: want cosine or constant", cfg.Schedule)
	}
	if !(cfg.EMA >= 0 && cfg.EMA < 1) {
		return nil, fmt.Errorf("train: ema %v: want a decay in [0, 1)", cfg.EMA)
	}
	if len(classes) != arch.Classes {
		return nil, fmt.Errorf("train: %d class names for a %d-class network", len(classes), arch.Classes)
	}
	res := &Result{}
	data, res.Skipped = Clean(arch, data)
	for _, sk := range res.Skipped {
		res.Warnings = append(res.Warnings, fmt.Sprintf("skipped %s example %s: %s", sk.Split, sk.ID, sk.Reason))
	}
	if len(data.Train) < MinExamples {
		return nil, fmt.Errorf("%w: %d usable training examples, the minimum is %d", ErrTooFew, len(data.Train), MinExamples)
	}
	if len(data.Val) == 0 {
		// No validation split: hold out every tenth training example.
		var tr, va []Sample
		for i, s := range data.Train {
			if i%10 == 9 {
				va = append(va, s)
			} else {
				tr = append(tr, s)
			}
		}
		data.Train, data.Val = tr, va
		res.Warnings = append(res.Warnings, fmt.Sprintf("no validation split: held out %d training examples", len(va)))
	}
	res.Examples.Train, res.Examples.Val, res.Examples.Test = len(data.Train), len(data.Val), len(data.Test)
	res.Warnings = append(res.Warnings, imbalance(arch, classes, data.Train, cfg.MaxImbalance)...)

	// A checkpoint is read before the engine is built: a refused one costs no memory.
	var id string
	var ck *checkpoint
	if cfg.Checkpoint != "" {
		var err error
		if id, err = trainingID(arch, classes, init, data, cfg); err != nil {
			return nil, fmt.Errorf("train: checkpoint %s: %w", cfg.Checkpoint, err)
		}
		if ck, err = loadCheckpoint(cfg.Checkpoint, id); err != nil {
			return nil, err
		}
	}

	engine, err := factory(nn.EngineConfig{
		Arch: arch, Params: init, BatchSize: cfg.BatchSize,
		Adam:      nn.AdamConfig{LR: cfg.LR, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		Trainable: nn.Trainable(arch, init, cfg.FreezeBackbone),
		FreezeBN:  cfg.FreezeBN,
	})
	if err != nil {
		return nil, fmt.Errorf("train: engine: %w", err)
	}
	defer engine.Close()
	res.Engine = engine.Name()

	best := init.Clone()
	var avg *ema
	if cfg.EMA > 0 {
		avg = &ema{decay: cfg.EMA, mean: init.Clone(), cur: init.Clone()}
	}
	bestLoss := math.Inf(1)
	bad, rising := 0, 0
	first := 1
	var handovers []string
	if ck != nil {
		if err := ck.restore(engine, best, avg); err != nil {
			return nil, fmt.Errorf("%w (checkpoint %s)", err, cfg.Checkpoint)
		}
		res.History, res.BestEpoch, res.StoppedEarly = ck.History, ck.BestEpoch, ck.StoppedEarly
		res.Overfitting, res.OverfitFrom, res.ResumedFrom = ck.Overfitting, ck.OverfitFrom, ck.Epoch
		if res.Overfitting {
			res.Warnings = append(res.Warnings, overfitWarning(res.OverfitFrom))
		}
		handovers = ck.Handovers
		if w := ck.differs(res.Engine); w != "" {
			handovers = append(handovers, w)
		}
		res.Warnings = append(res.Warnings, handovers...)
		bestLoss, bad, rising, first = ck.BestLoss, ck.Bad, ck.Rising, ck.Epoch+1
		if ck.Finished {
			first = cfg.Epochs + 1
		}
	}
	var raw *nn.Params // the raw weights read for a checkpoint
	var trainErr error
	for epoch := first; epoch <= cfg.Epochs; epoch++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		engine.SetLR(cfg.lrAt(epoch))
		trainLoss, err := runEpoch(ctx, engine, arch, data.Train, cfg, epoch, avg)
		if err != nil {
			if errors.Is(err, ErrDiverged) {
				trainErr = fmt.Errorf("epoch %d: %w; %s", epoch, err, kept(res.BestEpoch))
				break
			}
			return nil, err
		}
		if avg != nil { // validate (and keep) the average: swap it in, the raw weights aside
			if err := avg.swapIn(engine); err != nil {
				return nil, err
			}
		}
		valLoss, valMetric, err := Validate(engine, arch, classes, data.Val, cfg.BatchSize, cfg.Decode)
		if err != nil {
			return nil, err
		}
		if math.IsNaN(valLoss) || math.IsInf(valLoss, 0) {
			trainErr = fmt.Errorf("epoch %d: val loss %v: %w; %s", epoch, valLoss, ErrDiverged, kept(res.BestEpoch))
			break
		}
		secs := time.Since(start).Seconds()
		st := EpochStats{Epoch: epoch, TrainLoss: trainLoss, ValLoss: valLoss, ValMetric: valMetric, Seconds: secs,
			ImagesPerSec: float64(len(data.Train)) / secs}
		if n := len(res.History); n > 0 {
			prev := res.History[n-1]
			if valLoss > prev.ValLoss && trainLoss < prev.TrainLoss {
				rising++
				if rising == 2 && !res.Overfitting {
					res.Overfitting, res.OverfitFrom = true, epoch-1
					res.Warnings = append(res.Warnings, overfitWarning(epoch-1))
				}
			} else {
				rising = 0
			}
		}
		res.History = append(res.History, st)
		if cfg.Progress != nil {
			cfg.Progress(Progress{Epoch: epoch, Epochs: cfg.Epochs, Loss: trainLoss, Done: &st})
		}
		improved := valLoss < bestLoss-cfg.MinDelta || cfg.KeepLast
		if improved {
			bestLoss, bad, res.BestEpoch = valLoss, 0, epoch
			if err := engine.ReadParams(best); err != nil {
				return nil, err
			}
		}
		if avg != nil {
			if err := engine.WriteParams(avg.cur); err != nil { // training goes on from the raw weights
				return nil, err
			}
		}
		stop := false
		if !improved {
			if bad++; cfg.Patience > 0 && bad >= cfg.Patience {
				res.StoppedEarly, stop = epoch < cfg.Epochs, true
			}
		}
		if cfg.Checkpoint != "" {
			ck := &checkpoint{Version: checkpointVersion, Training: id, Engine: res.Engine, Build: build(), Handovers: handovers, Epoch: epoch, Finished: stop || epoch == cfg.Epochs,
				Best: best.Values, History: res.History, BestLoss: bestLoss, BestEpoch: res.BestEpoch, Bad: bad, Rising: rising,
				StoppedEarly: res.StoppedEarly, Overfitting: res.Overfitting, OverfitFrom: res.OverfitFrom}
			if avg != nil {
				ck.Weights, ck.EMAMean, ck.EMASteps = avg.cur.Values, avg.mean.Values, avg.steps
			} else {
				if raw == nil {
					raw = best.Clone()
				}
				if err := engine.ReadParams(raw); err != nil {
					return nil, fmt.Errorf("train: checkpoint weights: %w", err)
				}
				ck.Weights = raw.Values
			}
			if ck.Adam, err = engine.ReadAdam(); err != nil {
				return nil, fmt.Errorf("train: checkpoint optimiser: %w", err)
			}
			if err := ck.save(cfg.Checkpoint); err != nil {
				return nil, err
			}
		}
		if stop {
			break
		}
	}
	if err := engine.WriteParams(best); err != nil {
		return nil, err
	}
	res.Params = best
	if trainErr != nil {
		return res, trainErr
	}
	return res, nil
}

// overfitWarning is Result's warning for overfitting from epoch from.
func overfitWarning(from int) string {
	return fmt.Sprintf("overfitting from epoch %d: loss keeps falling while val loss rises", from)
}

// Skip is an example left out of a training, and why.
type Skip struct {
	Split  string `json:"split"`
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// Clean drops the examples a network cannot use (no image, a broken image, a class it
// does not know, a box outside the image) and says which and why: one bad example never
// stops a training.
func Clean(a nn.Arch, data Split) (Split, []Skip) {
	var skipped []Skip
	keep := func(name string, set []Sample) []Sample {
		out := set[:0:0]
		for _, s := range set {
			if reason := unusable(a, s); reason != "" {
				skipped = append(skipped, Skip{Split: name, ID: s.ID, Reason: reason})
				continue
			}
			out = append(out, s)
		}
		return out
	}
	return Split{Train: keep("train", data.Train), Val: keep("val", data.Val), Test: keep("test", data.Test)}, skipped
}

func unusable(a nn.Arch, s Sample) string {
	switch {
	case s.Image == nil:
		return "no image"
	case s.Image.W < 1 || s.Image.H < 1 || (s.Image.Channels() != 1 && s.Image.Channels() != 3) ||
		len(s.Image.Pix) != s.Image.W*s.Image.H*s.Image.Channels():
		return fmt.Sprintf("image of %dx%dx%d holds %d values", s.Image.W, s.Image.H, s.Image.Channels(), len(s.Image.Pix))
	case !(s.Weight >= 0 && s.Weight <= 1):
		return fmt.Sprintf("weight %v outside [0, 1]", s.Weight)
	case a.Task == nn.Classify && (s.Label < 0 || s.Label >= a.Classes):
		return fmt.Sprintf("class %d is not one of the model's %d classes", s.Label, a.Classes)
	}
	for _, v := range s.Image.Pix {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return "image holds NaN or Inf pixels"
		}
	}
	for _, b := range s.Boxes {
		if b.Class < 0 || b.Class >= a.Classes {
			return fmt.Sprintf("a box of class %d is not one of the model's %d classes", b.Class, a.Classes)
		}
		if !(b.X0 >= 0 && b.Y0 >= 0 && b.X1 <= 1 && b.Y1 <= 1 && b.X0 < b.X1 && b.Y0 < b.Y1) {
			return fmt.Sprintf("box %+v is outside the image or empty", b)
		}
	}
	return ""
}

// imbalance warns when the most frequent class outnumbers the rarest by more than
// ratio, or a class has no example at all.
func imbalance(a nn.Arch, classes []string, samples []Sample, ratio float64) []string {
	counts := make([]int, a.Classes)
	for _, s := range samples {
		if a.Task == nn.Classify {
			counts[s.Label]++
		}
		for _, b := range s.Boxes {
			counts[b.Class]++
		}
	}
	lo, hi := 0, 0
	var missing []string
	for c, n := range counts {
		if n == 0 {
			missing = append(missing, classes[c])
		}
		if n < counts[lo] {
			lo = c
		}
		if n > counts[hi] {
			hi = c
		}
	}
	var w []string
	if len(missing) > 0 {
		w = append(w, fmt.Sprintf("class imbalance: no training example of %v", missing))
	}
	if counts[lo] > 0 && float64(counts[hi]) > ratio*float64(counts[lo]) {
		w = append(w, fmt.Sprintf("class imbalance: %q has %d examples, %q only %d (%.1fx): the model will lean towards %q",
			classes[hi], counts[hi], classes[lo], counts[lo], float64(counts[hi])/float64(counts[lo]), classes[hi]))
	}
	return w
}

type prepared struct {
	b   *nn.Batch
	err error
}

// epochOrder is the shuffled order of an epoch's samples, without the weighted ones
// (Sample.Weight) this epoch leaves out.
func epochOrder(samples []Sample, seed uint64, epoch int) []int {
	r := rand.New(rand.NewPCG(seed, uint64(epoch)))
	order := r.Perm(len(samples))
	return slices.DeleteFunc(order, func(i int) bool { w := samples[i].Weight; return w > 0 && w < 1 && r.Float32() >= w })
}

// ema is an exponential moving average of the weights (Config.EMA): mean, over the
// steps so far; cur holds the raw weights while the mean is in the engine.
type ema struct {
	decay     float64
	steps     int
	mean, cur *nn.Params
}

// update mixes the engine's weights after a step into the mean.
func (m *ema) update(e nn.Engine) error {
	if err := e.ReadParams(m.cur); err != nil {
		return err
	}
	m.steps++
	d := float32(min(m.decay, float64(1+m.steps)/float64(10+m.steps)))
	for i, v := range m.cur.Values {
		mv := m.mean.Values[i]
		for j, x := range v {
			mv[j] = d*mv[j] + (1-d)*x
		}
	}
	return nil
}

// swapIn puts the mean into the engine, keeping the raw weights in cur.
func (m *ema) swapIn(e nn.Engine) error {
	if err := e.ReadParams(m.cur); err != nil {
		return err
	}
	return e.WriteParams(m.mean)
}

// runEpoch makes one pass over the shuffled train split, preparing the next batch
// (augmentation, target encoding) while the engine computes the current one; avg, when
// not nil, takes in the weights after each step.
func runEpoch(ctx context.Context, e nn.Engine, a nn.Arch, samples []Sample, cfg Config, epoch int, avg *ema) (float64, error) {
	order := epochOrder(samples, cfg.Seed, epoch)
	if len(order) == 0 {
		return 0, nil
	}
	batches := (len(order) + cfg.BatchSize - 1) / cfg.BatchSize
	ch := make(chan prepared, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer func() { // the preparing goroutine has ended when runEpoch returns
		cancel()
		for range ch {
		}
	}()
	go func() {
		defer close(ch)
		for bi := 0; bi < batches; bi++ {
			idx := order[bi*cfg.BatchSize : min(len(order), (bi+1)*cfg.BatchSize)]
			br := rand.New(rand.NewPCG(cfg.Seed^uint64(epoch)<<32, uint64(bi)))
			b := makeBatch(a, samples, idx, cfg.Augment.ForEpoch(epoch, cfg.Epochs), cfg.Strong.ForEpoch(epoch, cfg.Epochs), br)
			select {
			case ch <- prepared{b: b}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var sum float64
	n, bi := 0, 0
	for p := range ch {
		loss, err := e.Step(p.b)
		if err != nil {
			return 0, err
		}
		if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
			return 0, fmt.Errorf("%w: loss %v at batch %d", ErrDiverged, loss, bi+1)
		}
		if avg != nil {
			if err := avg.update(e); err != nil {
				return 0, err
			}
		}
		sum += float64(loss) * float64(p.b.N)
		n += p.b.N
		bi++
		if cfg.Progress != nil {
			cfg.Progress(Progress{Epoch: epoch, Epochs: cfg.Epochs, Batch: bi, Batches: batches, Loss: sum / float64(n)})
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return sum / float64(n), nil
}

// makeBatch prepares the samples idx as a batch: resized, augmented by aug (strong for
// a Sample.Strong; r nil: not augmented), normalised, with the detector's targets. The
// images are prepared in parallel, each from its own random stream drawn from r in
// order, so a batch does not depend on the number of cores: augmentation (mosaic, HSV,
// warps) costs tens of milliseconds an image, which one core cannot give a GPU hundreds
// of times a second.
func makeBatch(a nn.Arch, samples []Sample, idx []int, aug, strong augment.Config, r *rand.Rand) *nn.Batch {
	in := a.InputSize()
	b := &nn.Batch{N: len(idx), X: make([]float32, len(idx)*in)}
	rs := make([]*rand.Rand, len(idx))
	if r != nil {
		for k := range rs {
			rs[k] = rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))
		}
	}
	boxes, labels := make([][]nn.Box, len(idx)), make([]int, len(idx))
	prepare := func(k int) {
		s := samples[idx[k]]
		fit, fb := inputSized(a, s.Image, s.Boxes)
		view := aug
		if s.Strong {
			view = strong
		}
		im, l, bx := augmentOne(a, samples, fit, s.Label, fb, view, rs[k])
		copy(b.X[k*in:(k+1)*in], vision.Normalise(a, im.Pix))
		boxes[k], labels[k] = bx, l
	}
	var wg sync.WaitGroup
	next := make(chan int, len(idx))
	for k := range idx {
		next <- k
	}
	close(next)
	for w := 0; w < min(len(idx), runtime.GOMAXPROCS(0)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				prepare(k)
			}
		}()
	}
	wg.Wait()
	if a.Task == nn.Classify {
		b.Labels = labels
	} else {
		b.Det = nn.EncodeTargets(a, boxes)
	}
	return b
}

// augmentOne augments one image of class label (classification) or boxes (detection),
// resized to the network's input: for detection, first a mosaic with three other random
// training images when the pipeline draws one, then aug.ApplyLabelled. It returns a
// classification's label as the image now shows it (a mirrored pair's).
func augmentOne(a nn.Arch, samples []Sample, im *raster.Image, label int, boxes []nn.Box, aug augment.Config, r *rand.Rand) (*raster.Image, int, []nn.Box) {
	if a.Task == nn.Detect && aug.MosaicHit(r) {
		ims, bxs := [4]*raster.Image{im}, [4][]nn.Box{boxes}
		for k := 1; k < 4; k++ {
			o := samples[r.IntN(len(samples))]
			ims[k], bxs[k] = inputSized(a, o.Image, o.Boxes)
		}
		im, boxes = augment.Mosaic(ims, bxs, r)
	}
	if a.Task != nn.Classify { // a detection sample's label means nothing
		im, _, boxes = aug.ApplyLabelled(im, -1, boxes, r)
		return im, label, boxes
	}
	return aug.ApplyLabelled(im, label, boxes, r)
}

// inputSized is the image at the network's input size and channels, stretched or
// letterboxed as its preprocessing says, with its boxes moved along (vision.Fit).
func inputSized(a nn.Arch, im *raster.Image, boxes []nn.Box) (*raster.Image, []nn.Box) {
	im, boxes, _ = vision.Fit(a, im, boxes)
	return im, boxes
}

// Augmented returns n training samples (drawn at random from samples) as the first
// epoch's batches show them to the network: resized to its input and augmented by aug,
// boxes moved with them — what the training report shows, so that a person sees whether
// the augmentation keeps the objects recognisable (the training overview's
// "augmentation tests").
func Augmented(a nn.Arch, samples []Sample, aug augment.Config, n int, seed uint64) []Sample {
	if len(samples) == 0 {
		return nil
	}
	r := rand.New(rand.NewPCG(seed, 0xa09))
	aug = aug.ForEpoch(1, 2)
	out := make([]Sample, 0, n)
	for i := 0; i < n; i++ {
		s := samples[r.IntN(len(samples))]
		fit, fb := inputSized(a, s.Image, s.Boxes)
		im, l, bx := augmentOne(a, samples, fit, s.Label, fb, aug, r)
		out = append(out, Sample{ID: s.ID, Image: im, Label: l, Boxes: bx})
	}
	return out
}

// Validate returns the mean loss of samples and the headline metric: accuracy
// (classify) or mAP@0.5 (detect, decoded with d's NMS: EvaluateWith).
func Validate(e nn.Engine, a nn.Arch, classes []string, samples []Sample, batchSize int, d *nn.Decoding) (loss, metric float64, err error) {
	if len(samples) == 0 {
		return 0, 0, nil
	}
	var sum float64
	for start := 0; start < len(samples); start += batchSize {
		idx := make([]int, 0, batchSize)
		for i := start; i < min(len(samples), start+batchSize); i++ {
			idx = append(idx, i)
		}
		b := makeBatch(a, samples, idx, augment.None(), augment.None(), nil)
		l, err := e.Loss(b)
		if err != nil {
			return 0, 0, err
		}
		sum += float64(l) * float64(b.N)
	}
	ev, err := EvaluateWith(e, a, classes, samples, batchSize, d)
	if err != nil {
		return 0, 0, err
	}
	return sum / float64(len(samples)), ev.Headline(), nil
}

// Evaluation is a model's figures on one split.
type Evaluation struct {
	Classification *evaluate.ClassificationReport `json:"classification,omitempty"`
	Detection      *evaluate.DetectionReport      `json:"detection,omitempty"`
}

// Headline is accuracy (classify) or mAP@0.5 (detect).
func (ev Evaluation) Headline() float64 {
	if ev.Classification != nil {
		return ev.Classification.Accuracy
	}
	if ev.Detection != nil {
		return ev.Detection.MAP50
	}
	return 0
}

// PerClass returns each class's headline figure: accuracy (recall) or AP@0.5.
func (ev Evaluation) PerClass() map[string]float64 {
	out := map[string]float64{}
	if ev.Classification != nil {
		for _, c := range ev.Classification.PerClass {
			if c.Support > 0 {
				out[c.Class] = c.Accuracy
			}
		}
	}
	if ev.Detection != nil {
		for _, c := range ev.Detection.PerClass {
			if c.GroundTr > 0 {
				out[c.Class] = c.AP50
			}
		}
	}
	return out
}

// Evaluate runs the model the engine holds on samples and scores it, detections
// decoded with the default NMS (Decode).
func Evaluate(e nn.Engine, a nn.Arch, classes []string, samples []Sample, batchSize int) (Evaluation, error) {
	return EvaluateWith(e, a, classes, samples, batchSize, nil)
}

// EvaluateWith is Evaluate with detections decoded under a project's decode setting d
// (DecodeWith: its IoU and ClassAgnostic), so that a gate scores the boxes the
// project's agents keep.
func EvaluateWith(e nn.Engine, a nn.Arch, classes []string, samples []Sample, batchSize int, d *nn.Decoding) (Evaluation, error) {
	preds, err := Predict(e, a, classes, samples, batchSize, d)
	if err != nil {
		return Evaluation{}, err
	}
	return EvaluatePredictions(a, classes, samples, preds), nil
}

// EvaluatePredictions scores predictions of samples (Predict's, or another
// implementation's outputs decoded by Decode) the way Evaluate does.
func EvaluatePredictions(a nn.Arch, classes []string, samples []Sample, preds [][]vision.Prediction) Evaluation {
	if a.Task == nn.Classify {
		truth, got := make([]int, len(samples)), make([]int, len(samples))
		for i, s := range samples {
			truth[i], got[i] = s.Label, preds[i][0].Class
		}
		r := evaluate.Classification(truth, got, classes)
		return Evaluation{Classification: &r}
	}
	gt := make([][]nn.Box, len(samples))
	dets := make([][]nn.Detection, len(samples))
	sizes := make([][2]int, len(samples))
	for i, s := range samples {
		gt[i] = s.Boxes
		dets[i] = vision.Detections(preds[i])
		sizes[i] = s.Size
		if sizes[i] == [2]int{} {
			sizes[i] = [2]int{s.Image.W, s.Image.H}
		}
	}
	r := evaluate.DetectionSized(gt, dets, classes, sizes)
	return Evaluation{Detection: &r}
}

// Predict runs the engine's model on samples. Detection uses a low score threshold
// (0.01) so that average precision sees the whole ranking; the evaluation counts the
// best evaluate.MaxDetections of each class in an image (COCO's maxDets). Detections
// are decoded with d's NMS (DecodeWith; nil: the default).
func Predict(e nn.Engine, a nn.Arch, classes []string, samples []Sample, batchSize int, d *nn.Decoding) ([][]vision.Prediction, error) {
	out := make([][]vision.Prediction, 0, len(samples))
	err := Outputs(e, a, samples, batchSize, func(raw []float32) error {
		out = append(out, DecodeWith(a, classes, raw, d))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Outputs runs the engine's model on samples, batchSize images a pass, and hands each
// image's raw network output to each, in the samples' order. raw is the engine's
// buffer, valid during the call only; an error from each stops the passes and is
// returned.
func Outputs(e nn.Engine, a nn.Arch, samples []Sample, batchSize int, each func(raw []float32) error) error {
	k := a.OutputSize()
	for start := 0; start < len(samples); start += batchSize {
		end := min(len(samples), start+batchSize)
		x := make([]float32, 0, (end-start)*a.InputSize())
		for _, s := range samples[start:end] {
			x = append(x, vision.Input(a, s.Image)...)
		}
		res, err := e.Forward(x, end-start)
		if err != nil {
			return err
		}
		for i := 0; i < end-start; i++ {
			if err := each(res[i*k : (i+1)*k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// Decode turns one image's network output into Predict's predictions, detections
// with the default NMS (class-wise, IoU 0.45).
func Decode(a nn.Arch, classes []string, out []float32) []vision.Prediction {
	return DecodeWith(a, classes, out, nil)
}

// DecodeWith is Decode under a project's decode setting d (nil: the defaults). Of it,
// evaluation takes the NMS — IoU and ClassAgnostic — so that it scores the boxes the
// agents keep; not MinScore or MaxDetections: it decodes at min score 0.01 to see the
// whole ranking, up to vision.DefaultMaxDetections, and counts COCO's maxDets.
func DecodeWith(a nn.Arch, classes []string, out []float32, d *nn.Decoding) []vision.Prediction {
	if a.Task == nn.Classify {
		return vision.DecodeClassify(out, classes, vision.Options{})
	}
	o := vision.Options{MinScore: 0.01}
	if d != nil {
		o.NMSIoU, o.ClassAgnostic = d.IoU, d.ClassAgnostic
	}
	return vision.DecodeDetect(a, out, classes, o)
}

func kept(best int) string {
	if best == 0 {
		return "keeping the initial weights"
	}
	return fmt.Sprintf("keeping the weights of epoch %d", best)
}
