package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/atomicfile"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/evaluate"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/weights"
	"github.com/edgeloop/edgeloop/pkg/train"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// twinOptions are the flags of the PyTorch comparison (-twin).
type twinOptions struct {
	starts, python, size string
	n                    int
}

// twinCell is one start's pair: the same network trained by train.Run (Go) and by
// the PyTorch twin from the same initial weights, on the same scenes in the same
// batches and order at the same learning rates, both scored by pkg/evaluate.
type twinCell struct {
	Network     string  `json:"network"`
	Input       string  `json:"input"`
	Start       string  `json:"start"`
	TrainImages int     `json:"train_images"`
	Epochs      int     `json:"epochs"`
	Batch       int     `json:"batch"`
	LR          float64 `json:"lr"`
	Seed        uint64  `json:"seed"`
	TestImages  int     `json:"test_images"`
	// InitMaxDiff is the largest difference of the two implementations' outputs from
	// the initial weights on four test scenes (batch norm in inference mode), and
	// InitMaxOut the largest output: the check that both run the same network.
	InitMaxDiff float64  `json:"init_max_diff"`
	InitMaxOut  float64  `json:"init_max_out"`
	Go          twinSide `json:"go"`
	Torch       twinSide `json:"torch"`
}

// twinSide is one implementation's figures.
type twinSide struct {
	Engine     string    `json:"engine"`
	Seconds    float64   `json:"train_seconds"`
	BestEpoch  int       `json:"best_epoch"`
	ValLoss    []float64 `json:"val_loss"`
	TrainLoss  []float64 `json:"train_loss"`
	MAP50      float64   `json:"map50"`
	MAP5095    float64   `json:"map50_95"`
	APSmall    float64   `json:"ap_small"`
	APMedium   float64   `json:"ap_medium"`
	APLarge    float64   `json:"ap_large"`
	ValMAP50   []float64 `json:"val_map50_by_epoch,omitempty"`
	ImagesPerS float64   `json:"train_images_per_sec"`
}

// twinParam describes one parameter tensor for the PyTorch side, in Go's order.
type twinParam struct {
	Name  string  `json:"name"`
	Shape []int   `json:"shape"`
	Kind  string  `json:"kind"`
	Eps   float32 `json:"eps,omitempty"` // batch norm's
}

// twinMeta is what the PyTorch side reads besides the arrays.
type twinMeta struct {
	Size      string      `json:"size"`
	Classes   int         `json:"classes"`
	W         int         `json:"w"`
	H         int         `json:"h"`
	N         int         `json:"n"`
	Val       int         `json:"val"`
	Test      int         `json:"test"`
	Check     int         `json:"check"`
	Output    int         `json:"output"`
	Target    int         `json:"target"`
	Batch     int         `json:"batch"`
	Epochs    int         `json:"epochs"`
	LR        []float64   `json:"lr_by_epoch"`
	Threads   int         `json:"threads"`
	Params    []twinParam `json:"params"`
	TorchBase string      `json:"torch_bench"`
}

// runTwin trains each start of -twin-starts in Go and in PyTorch and saves the pair as
// a cell under -out/twin; a start already saved is skipped, none starts after
// -deadline.
func runTwin(ctx context.Context, o options, to twinOptions, b *bench, log *zap.Logger) error {
	start := time.Now()
	dir := filepath.Join(o.out, "twin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("twin cells: %w", err)
	}
	budget, err := ints(o.seen)
	if err != nil || len(budget) != 3 {
		return fmt.Errorf("-seen %q: want K,MIN,MAX", o.seen)
	}
	epochs := min(max(budget[0]*to.n, budget[1]), budget[2]) / to.n
	b.o.latencyRuns = 0
	for _, st := range config.SplitList(to.starts) {
		path := filepath.Join(dir, fmt.Sprintf("%s-%dx%d-%d-%s-seed%d.json", to.size, o.w, o.h, to.n, st, o.seed))
		if _, err := os.Stat(path); err == nil {
			continue
		}
		if o.deadline > 0 && time.Since(start) > o.deadline {
			log.Warn("deadline passed: twin cell left for the next run", zap.String("cell", filepath.Base(path)))
			continue
		}
		c, err := b.twin(ctx, to, st, epochs, filepath.Join(dir, "exchange-"+st))
		if err != nil {
			return fmt.Errorf("twin %s: %w", st, err)
		}
		raw, _ := json.MarshalIndent(c, "", "  ")
		if err := atomicfile.Write(path, raw, 0o644); err != nil {
			return fmt.Errorf("saving the twin cell: %w", err)
		}
		log.Info("twin cell done", zap.String("cell", filepath.Base(path)), zap.Float64("go_map50", c.Go.MAP50), zap.Float64("torch_map50", c.Torch.MAP50))
	}
	return nil
}

// twin is one start's pair (twinCell): it writes the initial weights, scenes, targets,
// batch order and learning rates to ex, trains in Go, runs the PyTorch side on ex and
// scores its test outputs.
func (b *bench) twin(ctx context.Context, to twinOptions, start string, epochs int, ex string) (twinCell, error) {
	o := b.o
	var a nn.Arch
	var p *nn.Params
	var err error
	switch start {
	case "pretrained":
		bb := strings.ReplaceAll(o.backbones, "{size}", to.size)
		a, p, err = weights.BackboneDetector(bb, o.pyramid, o.w, o.h, 3, len(b.classes), o.seed, b.log)
	case "scratch":
		if a, err = b.arch(to.size); err == nil {
			p, err = nn.InitParams(a, o.seed)
		}
	default:
		err = fmt.Errorf("-twin-starts: %q is neither scratch nor pretrained", start)
	}
	if err != nil {
		return twinCell{}, err
	}
	rate := o.rate(a, start)
	if err := os.MkdirAll(ex, 0o755); err != nil {
		return twinCell{}, err
	}
	tr := b.data.Train[:to.n]
	meta := twinMeta{Size: to.size, Classes: len(b.classes), W: o.w, H: o.h, N: len(tr), Val: len(b.data.Val), Test: len(b.data.Test),
		Check: 4, Output: a.OutputSize(), Batch: o.batch, Epochs: epochs, Threads: runtime.GOMAXPROCS(0)}
	cfg := train.Config{Epochs: epochs, BatchSize: o.batch, LR: float32(rate), Patience: -1, Seed: o.seed}
	for e := 1; e <= epochs; e++ { // train.Config's cosine schedule, per epoch
		t := float64(e-1) / float64(max(1, epochs-1))
		meta.LR = append(meta.LR, rate*(0.05+0.95*0.5*(1+math.Cos(math.Pi*t))))
	}
	for _, s := range p.Specs {
		l := a.Layers[s.Layer]
		tp := twinParam{Name: s.Name, Shape: s.Shape, Kind: string(l.Kind)}
		if l.Kind == nn.BatchNorm {
			tp.Eps = l.BNEps()
		}
		meta.Params = append(meta.Params, tp)
	}
	var init []float32
	for _, v := range p.Values {
		init = append(init, v...)
	}
	// The arrays: inputs as train.Run's batches have them without augmentation, the
	// targets nn.EncodeTargets makes, and each epoch's order (train.Run's shuffle).
	inputs := func(ss []train.Sample) ([]float32, []float32) {
		var x []float32
		boxes := make([][]nn.Box, len(ss))
		for i, s := range ss {
			fit, bx, _ := vision.Fit(a, s.Image, s.Boxes)
			x = append(x, vision.Normalise(a, fit.Pix)...)
			boxes[i] = bx
		}
		t := nn.EncodeTargets(a, boxes)
		meta.Target = len(t.W) / len(ss)
		return x, perImage(t, len(ss))
	}
	files := map[string][]float32{"init.f32": init}
	files["train.x.f32"], files["train.t.f32"] = inputs(tr)
	files["val.x.f32"], files["val.t.f32"] = inputs(b.data.Val)
	files["test.x.f32"], _ = inputs(b.data.Test)
	// Go's outputs from the initial weights on the first test scenes, batch norm in
	// inference mode: the PyTorch side compares its own with them.
	e, err := b.choice.Factory(nn.EngineConfig{Arch: a, Params: p, BatchSize: meta.Check})
	if err != nil {
		return twinCell{}, err
	}
	out, err := e.Forward(files["test.x.f32"][:meta.Check*a.InputSize()], meta.Check)
	e.Close()
	if err != nil {
		return twinCell{}, err
	}
	files["check.y.f32"] = out
	order := make([]float32, 0, epochs*len(tr))
	for ep := 1; ep <= epochs; ep++ {
		for _, i := range rand.New(rand.NewPCG(o.seed, uint64(ep))).Perm(len(tr)) { // train's epochOrder
			order = append(order, float32(i))
		}
	}
	files["order.f32"] = order
	for name, v := range files {
		if err := writeF32(filepath.Join(ex, name), v); err != nil {
			return twinCell{}, err
		}
	}
	script, _ := filepath.Abs("bench/detect/torch_twin.py")
	meta.TorchBase, _ = filepath.Abs("bench/train/torch_bench.py")
	raw, _ := json.MarshalIndent(meta, "", "  ")
	if err := os.WriteFile(filepath.Join(ex, "meta.json"), raw, 0o644); err != nil {
		return twinCell{}, err
	}

	c := twinCell{Network: a.Name, Input: fmt.Sprintf("%dx%d", o.w, o.h), Start: start, TrainImages: len(tr), Epochs: epochs,
		Batch: o.batch, LR: rate, Seed: o.seed, TestImages: len(b.data.Test)}
	// Go: train.Run as the mAP-vs-data table's cell.
	t0 := time.Now()
	res, err := train.Run(ctx, a, p, b.classes, train.Split{Train: tr, Val: b.data.Val}, cfg, b.choice.Factory)
	if err != nil {
		return twinCell{}, fmt.Errorf("go training: %w", err)
	}
	c.Go.Seconds = time.Since(t0).Seconds()
	c.Go.BestEpoch = res.BestEpoch
	for _, h := range res.History {
		c.Go.TrainLoss, c.Go.ValLoss, c.Go.ValMAP50 = append(c.Go.TrainLoss, h.TrainLoss), append(c.Go.ValLoss, h.ValLoss), append(c.Go.ValMAP50, h.ValMetric)
	}
	c.Go.ImagesPerS = float64(len(tr)*epochs) / c.Go.Seconds
	ge, err := b.choice.Factory(nn.EngineConfig{Arch: a, Params: res.Params, BatchSize: 32})
	if err != nil {
		return twinCell{}, err
	}
	c.Go.Engine = ge.Name()
	ev, err := train.Evaluate(ge, a, b.classes, b.data.Test, 32)
	ge.Close()
	if err != nil {
		return twinCell{}, err
	}
	c.Go.fill(ev.Detection)

	// PyTorch: the same, then its test outputs scored here.
	cmd := exec.CommandContext(ctx, to.python, script, "--dir", ex)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return twinCell{}, fmt.Errorf("pytorch side (%s %s): %w", to.python, script, err)
	}
	// The script prints its side's training figures and the initial outputs' check.
	var tres struct {
		twinSide
		InitMaxDiff float64 `json:"init_max_diff"`
		InitMaxOut  float64 `json:"init_max_out"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &tres); err != nil {
		return twinCell{}, fmt.Errorf("pytorch side's result %q: %w", stdout.String(), err)
	}
	c.InitMaxDiff, c.InitMaxOut = tres.InitMaxDiff, tres.InitMaxOut
	c.Torch = tres.twinSide
	c.Torch.ImagesPerS = float64(len(tr)*epochs) / tres.Seconds
	tout, err := readF32(filepath.Join(ex, "test.out.f32"))
	if err != nil {
		return twinCell{}, err
	}
	k := a.OutputSize()
	if len(tout) != k*len(b.data.Test) {
		return twinCell{}, fmt.Errorf("pytorch test outputs: %d values, want %d", len(tout), k*len(b.data.Test))
	}
	preds := make([][]vision.Prediction, len(b.data.Test))
	for i := range preds {
		preds[i] = train.Decode(a, b.classes, tout[i*k:(i+1)*k])
	}
	c.Torch.fill(train.EvaluatePredictions(a, b.classes, b.data.Test, preds).Detection)
	return c, nil
}

func (s *twinSide) fill(d *evaluate.DetectionReport) {
	s.MAP50, s.MAP5095 = d.MAP50, d.MAP5095
	s.APSmall, s.APMedium, s.APLarge = bySize(d, "small"), bySize(d, "medium"), bySize(d, "large")
}

// perImage lays the targets of n images out per image: W, T, M, B of image 0, then of
// image 1, …
func perImage(t *nn.DetTargets, n int) []float32 {
	per := len(t.W) / n
	out := make([]float32, 0, 4*len(t.W))
	for i := 0; i < n; i++ {
		for _, v := range [][]float32{t.W, t.T, t.M, t.B} {
			out = append(out, v[i*per:(i+1)*per]...)
		}
	}
	return out
}

func writeF32(path string, v []float32) error {
	buf := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
	}
	return os.WriteFile(path, buf, 0o644)
}

func readF32(path string) ([]float32, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v := make([]float32, len(buf)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return v, nil
}

// twinTable renders the twin cells in dir.
func twinTable(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	var cells []twinCell
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		c, err := readCell[twinCell](filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		cells = append(cells, c)
	}
	if len(cells) == 0 {
		return "", nil
	}
	sort.Slice(cells, func(i, j int) bool { return cells[i].Start > cells[j].Start })
	var sb strings.Builder
	sb.WriteString("\nBeside PyTorch at the same budget (same initial weights, scenes, batches and order, learning rates; the best validation-loss epoch kept; both scored by pkg/evaluate):\n\n")
	sb.WriteString("| network | input | start | train scenes | epochs × batch | lr | implementation | train s | img/s | best epoch | mAP@0.5 | mAP@[.5:.95] | AP small | AP medium | AP large | val loss, first → last epoch | initial outputs' largest difference |\n")
	sb.WriteString("|---|---|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	ap := func(v float64) string {
		if v < 0 {
			return "—"
		}
		return fmt.Sprintf("%.3f", v)
	}
	for _, c := range cells {
		for _, s := range []twinSide{c.Go, c.Torch} {
			vl := "—"
			if n := len(s.ValLoss); n > 0 {
				vl = fmt.Sprintf("%.3f → %.3f", s.ValLoss[0], s.ValLoss[n-1])
			}
			fmt.Fprintf(&sb, "| %s | %s | %s | %d | %d × %d | %.3g | %s | %.0f | %.1f | %d | **%.3f** | %.3f | %s | %s | %s | %s | %.1e of %.1f |\n",
				c.Network, strings.Replace(c.Input, "x", "×", 1), c.Start, c.TrainImages, c.Epochs, c.Batch, c.LR, s.Engine, s.Seconds, s.ImagesPerS,
				s.BestEpoch, s.MAP50, s.MAP5095, ap(s.APSmall), ap(s.APMedium), ap(s.APLarge), vl, c.InitMaxDiff, c.InitMaxOut)
		}
	}
	return sb.String(), nil
}
