// Command detect measures the multi-scale detector (nn.DetectorFamily) on colour
// scenes (colourscenes: 1–12 shapes and letters of 8 px to most of the frame over
// photographs, partly hidden) or, with -data digits, on the 64×64 grey digit scenes
// beside today's grid detector trained the same way (its peer). It prints issue 14's
// two tables:
//
//   - per family size (-sizes): weights, multiply-adds, training images/s, one-image
//     inference p50/p99 on the CPU, test mAP@0.5, mAP@[.5:.95] and COCO's
//     small/medium/large AP after training on -train scenes;
//   - with -curve, test mAP against the number of training scenes (e.g.
//     100,300,1000,3000) from scratch and, with a backbone file, pretrained.
//
// Training and evaluation run on -backend (the CUDA engine when built with -tags
// edgeloop_cuda on a GPU machine); latency always runs on the CPU engine with
// -latency-threads cores. Every cell is saved under -out as it finishes and a rerun
// skips the cells already there; a cell's training checkpoints after each epoch (a
// .ckpt beside the cell, removed when the cell is saved) and a rerun resumes it, so a
// long run can be stopped and resumed at any epoch, or run one cell per heavy-lock hold.
//
//	go run -tags openblas ./bench/detect -sizes n -input 160x128 -train 400 -epochs 8
//	go run -tags openblas ./bench/detect -sizes n -curve 100,300 -input 160x128 -seen 10,1000,4000
//	go run -tags openblas ./bench/detect -data digits -sizes n -train 2000 -epochs 10
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/atomicfile"
	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/evaluate"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/backend"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
	"github.com/edgeloop/edgeloop/pkg/nn/weights"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/scenes"
	"github.com/edgeloop/edgeloop/pkg/train"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// options are the command's flags.
type options struct {
	sizes, curve, starts, backbones, data, augment, out, seen string
	sizeStarts, pyramid                                       string
	w, h, nTrain, nTest, epochs, batch, classes               int
	latencyRuns, latencyThreads                               int
	seed                                                      uint64
	lr, gridLR                                                float64
	peer, diag                                                bool
	deadline                                                  time.Duration
}

// cell is one trained detector's figures: a row of a table.
type cell struct {
	Table       string  `json:"table"` // sizes or curve
	Network     string  `json:"network"`
	Size        string  `json:"size"`
	Input       string  `json:"input"`
	TrainImages int     `json:"train_images"`
	Start       string  `json:"start"` // scratch or pretrained
	Backbone    string  `json:"backbone,omitempty"`
	Augment     string  `json:"augment"`
	Params      int     `json:"params"`
	MACs        int64   `json:"macs"`
	LR          float64 `json:"lr"`
	Epochs      int     `json:"epochs"`
	Batch       int     `json:"batch"`
	// Seconds are the epochs' time, training and validation, over every run of a
	// resumed cell.
	Seconds float64 `json:"train_seconds"`
	// ResumedAfter is the epoch the training resumed after, from its checkpoint (0:
	// trained in one run).
	ResumedAfter int `json:"resumed_after_epoch,omitempty"`
	// Warnings are the training's (train.Result.Warnings): a resume on another engine
	// or build says so.
	Warnings   []string  `json:"warnings,omitempty"`
	ImagesPerS float64   `json:"train_images_per_sec"`
	P50        float64   `json:"infer_ms_p50,omitempty"`
	P99        float64   `json:"infer_ms_p99,omitempty"`
	LatThreads int       `json:"latency_threads,omitempty"`
	TestImages int       `json:"test_images"`
	MAP50      float64   `json:"map50"`
	MAP5095    float64   `json:"map50_95"`
	APSmall    float64   `json:"ap_small"` // -1: no ground truth of that size
	APMedium   float64   `json:"ap_medium"`
	APLarge    float64   `json:"ap_large"`
	ValMAP50   []float64 `json:"val_map50_by_epoch"`
	Engine     string    `json:"engine"`
	Data       string    `json:"data"`
}

// rate is the multi-scale detector a's learning rate for a cell starting from start:
// -lr, or by default ScratchLR, a third of it from a pretrained trunk (the recipe the
// earlier cells were measured at; docs/benchmarks.md compares the full rate).
func (o options) rate(a nn.Arch, start string) float64 {
	switch {
	case o.lr != 0:
		return o.lr
	case start == "pretrained":
		return float64(a.ScratchLR()) / 3
	default:
		return float64(a.ScratchLR())
	}
}

func main() {
	var o options
	var input string
	flag.StringVar(&o.sizes, "sizes", "n", "family sizes for the per-size table, comma-separated (n, s, m); empty: none")
	flag.StringVar(&input, "input", "160x128", "network input WxH (multiples of 32); scenes are drawn at this size")
	flag.IntVar(&o.nTrain, "train", 400, "training scenes of the per-size table")
	flag.IntVar(&o.nTest, "test", 100, "test scenes (and half as many validation scenes)")
	flag.IntVar(&o.epochs, "epochs", 8, "training epochs of the per-size table")
	flag.IntVar(&o.batch, "batch", 8, "training batch size")
	flag.Float64Var(&o.lr, "lr", 0, "the multi-scale detector's Adam learning rate, cosine schedule (0: nn.Arch.ScratchLR, or a third of it from a pretrained backbone)")
	flag.Float64Var(&o.gridLR, "grid-lr", 3e-3, "the grid detector's learning rate (-data digits)")
	flag.StringVar(&o.curve, "curve", "", "training-set sizes of the mAP-vs-data table, comma-separated (e.g. 100,300,1000,3000), for the first of -curve-size")
	curveSize := flag.String("curve-size", "n", "the family size of the mAP-vs-data table")
	flag.StringVar(&o.seen, "seen", "10,1000,20000", "mAP-vs-data budget: epochs = K·n images seen clamped to [MIN, MAX], over n: K,MIN,MAX")
	flag.StringVar(&o.sizeStarts, "size-starts", "scratch", "starts of the per-size table: scratch, pretrained (from -backbones)")
	flag.StringVar(&o.starts, "starts", "scratch,pretrained", "starts of the mAP-vs-data table: scratch, pretrained")
	flag.StringVar(&o.backbones, "backbones", "bench/out/pretrain/mobilenetv2-{size}.safetensors", "pretrained backbone per size ({size} is replaced; make pretrain writes it); a missing file leaves the pretrained cells out")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the initial weights and of the training order and augmentation (the scenes are fixed)")
	flag.IntVar(&o.latencyRuns, "latency", 30, "one-image CPU inference runs for p50/p99 (0: not measured)")
	flag.IntVar(&o.latencyThreads, "latency-threads", 2, "cores (GOMAXPROCS) for the CPU latency (the issue's 2-core edge device)")
	flag.StringVar(&o.data, "data", "colour", "colour (colour scenes drawn at -input) or digits (64×64 grey digit scenes, with the grid detector as peer)")
	flag.StringVar(&o.pyramid, "pyramid", nn.PyramidP3, "the multi-scale detectors' pyramid: p3 (strides 8, 16, 32) or p2 (and stride 4, for small objects); cells of p2 carry it in their names")
	flag.IntVar(&o.classes, "classes", 8, "classes of the colour scenes")
	flag.BoolVar(&o.peer, "peer", true, "with -data digits, train the grid detector too")
	flag.StringVar(&o.augment, "augment", "none", "training augmentation: none, or colour (augment.Colour: HSV, scale/translate, mosaic closed for the last epochs)")
	flag.BoolVar(&o.diag, "diag", false, "after training, split the loss into its terms on the validation scenes and a slice of the training scenes, with the IoU, class and objectness at the assigned points, and the training slice's mAP")
	be := flag.String("backend", "auto", "what trains and evaluates: auto (CUDA when built with -tags edgeloop_cuda and a GPU is present), cpu or cuda")
	flag.StringVar(&o.out, "out", "bench/out/detect", "directory for the cells (resumable) and the tables (detect.md)")
	flag.DurationVar(&o.deadline, "deadline", 0, "start no cell after this long (0: no limit); the tables show what finished")
	tableOnly := flag.Bool("table", false, "print the tables of the cells already in -out, train nothing")
	var do driftOptions
	flag.StringVar(&do.presets, "drift-table", "", "colour drift presets of the drift table, comma-separated, or all (empty: no drift table): each preset's mAP drop, then mAP after correction batches fine-tuned on as the retrain service does (replay mode)")
	flag.StringVar(&do.seeds, "drift-seeds", "1", "seeds of the drift table's correction scenes and fine-tunes, comma-separated (the base model is trained once, at -seed)")
	flag.IntVar(&do.base, "drift-base", 1000, "clean training scenes of the drift table's base model (trained from -backbones' -drift-size trunk)")
	flag.IntVar(&do.baseEpochs, "drift-base-epochs", 8, "epochs of the drift table's base model")
	flag.StringVar(&do.baseModel, "drift-base-model", "", "start the drift table from this trained model (a cell's .params file, which each per-size or curve cell saves beside its .json) instead of training a base model; it must be -drift-size's network at -input, trained on the first -drift-base scenes (give the table an -out of its own: its cells are named by size, input and -drift-base, not by the model)")
	flag.StringVar(&do.size, "drift-size", "n", "family size of the drift table")
	flag.IntVar(&do.batches, "drift-batches", 5, "correction batches per preset and seed")
	flag.StringVar(&do.cells, "drift-cells", "", "subfolder of -out/drift for the drift table's fine-tune cells (empty: -out/drift); the base model and the drops stay in -out/drift, so a rerun under another fine-tune rule keeps them and the earlier cells")
	flag.IntVar(&do.batch, "drift-batch", 50, "drifted scenes per correction batch")
	var to twinOptions
	flag.StringVar(&to.starts, "twin", "", "train the -twin-size detector on -twin-train scenes in Go and in PyTorch (bench/detect/torch_twin.py) from the same initial weights, in the same batches, and score both with pkg/evaluate, for these starts (scratch, pretrained; empty: not)")
	flag.IntVar(&to.n, "twin-train", 300, "training scenes of -twin (epochs by -seen)")
	flag.StringVar(&to.size, "twin-size", "n", "family size of -twin")
	flag.StringVar(&to.python, "torch", filepath.Join(os.Getenv("HOME"), ".cache/edgeloop/torch-venv/bin/python"), "python with torch and numpy for -twin (bench/setup-torch.sh prints it)")
	var dm decodeOptions
	flag.StringVar(&dm.model, "decode-model", "", "score this trained model (a cell's .params, of -decode-size at -input) under each NMS setting of -decode-ious, class-wise and class-agnostic, on the validation and test scenes, and pick the setting on the validation scenes (the table goes to -out/decode.md); with -sizes '' nothing is trained first")
	flag.StringVar(&dm.size, "decode-size", "s", "family size of -decode-model")
	flag.StringVar(&dm.ious, "decode-ious", "0.45,0.5,0.55,0.6,0.65,0.7", "NMS IoUs of the -decode-model sweep")
	flag.IntVar(&do.replay, "replay", 150, "replay budget of the drift table's fine-tunes (project retrain.replay; the product's default is 1,500)")
	flag.Parse()
	log, _ := zap.NewDevelopment()
	defer func() { _ = log.Sync() }()
	if _, err := fmt.Sscanf(input, "%dx%d", &o.w, &o.h); err != nil {
		log.Fatal("bad -input", zap.String("input", input), zap.Error(err))
	}
	if _, ok := nn.PyramidStrides(o.pyramid); !ok || o.pyramid == "" {
		log.Fatal("bad -pyramid", zap.String("pyramid", o.pyramid), zap.Strings("want", nn.Pyramids()))
	}
	if to.starts != "" && o.pyramid != nn.PyramidP3 {
		log.Fatal("-twin: the PyTorch twin (bench/train's torch_bench.Detector) is the P3 network only", zap.String("pyramid", o.pyramid))
	}
	cellDir := filepath.Join(o.out, "cells")
	if err := os.MkdirAll(cellDir, 0o755); err != nil {
		log.Fatal("cells directory", zap.Error(err))
	}
	if !*tableOnly {
		choice, err := backend.Select(*be, log)
		if err != nil {
			log.Fatal("backend", zap.Error(err))
		}
		if err := run(context.Background(), o, *curveSize, choice, cellDir, log); err != nil {
			log.Fatal("detect benchmark", zap.Error(err))
		}
		if to.starts != "" {
			b, err := newBench(o, choice, to.n, log)
			if err != nil {
				log.Fatal("twin", zap.Error(err))
			}
			if err := runTwin(context.Background(), o, to, b, log); err != nil {
				log.Fatal("twin", zap.Error(err))
			}
		}
		if dm.model != "" {
			b, err := newBench(o, choice, 1, log)
			if err != nil {
				log.Fatal("decode sweep", zap.Error(err))
			}
			table, err := runDecodeSweep(context.Background(), dm, b, log)
			if err != nil {
				log.Fatal("decode sweep", zap.Error(err))
			}
			if err := os.WriteFile(filepath.Join(o.out, "decode.md"), []byte(table), 0o644); err != nil {
				log.Fatal("decode sweep", zap.Error(err))
			}
			fmt.Print(table)
		}
		if do.presets != "" {
			b, err := newBench(o, choice, do.base, log)
			if err != nil {
				log.Fatal("drift table", zap.Error(err))
			}
			if err := runDrift(context.Background(), o, do, b, log); err != nil {
				log.Fatal("drift table", zap.Error(err))
			}
		}
	}
	tables, err := printTables(cellDir)
	if err != nil {
		log.Fatal("tables", zap.Error(err))
	}
	dt, err := driftTable(filepath.Join(o.out, "drift"), filepath.Join(o.out, "drift", do.cells))
	if err != nil {
		log.Fatal("drift table", zap.Error(err))
	}
	tw, err := twinTable(filepath.Join(o.out, "twin"))
	if err != nil {
		log.Fatal("twin table", zap.Error(err))
	}
	tables += dt + tw
	if err := os.WriteFile(filepath.Join(o.out, "detect.md"), []byte(tables), 0o644); err != nil {
		log.Fatal("tables", zap.Error(err))
	}
	fmt.Print(tables)
}

// bench holds what every cell shares: the data, the classes and the backend.
type bench struct {
	o       options
	choice  backend.Choice
	data    train.Split
	classes []string
	what    string
	log     *zap.Logger
	// arch builds the network of a size ("grid": the grid detector).
	arch func(size string) (nn.Arch, error)
	// scenes draws n colour scenes from seed under a drift preset (nil for digits);
	// the same seed draws the same layouts under every preset.
	scenes func(n int, seed uint64, d drift.Preset) ([]train.Sample, error)
}

// run trains and measures every cell not yet in cellDir: the per-size table first, then
// the mAP-vs-data table.
func run(ctx context.Context, o options, curveSize string, choice backend.Choice, cellDir string, log *zap.Logger) error {
	start := time.Now()
	type job struct {
		table, size, startFrom string
		n, epochs              int
	}
	var jobs []job
	sizes := config.SplitList(o.sizes)
	if o.data == "digits" && o.peer && len(sizes) > 0 {
		sizes = append([]string{"grid"}, sizes...)
	}
	for _, s := range sizes {
		for _, st := range config.SplitList(o.sizeStarts) {
			if st != "scratch" && st != "pretrained" {
				return fmt.Errorf("-size-starts: %q is neither scratch nor pretrained", st)
			}
			jobs = append(jobs, job{"sizes", s, st, o.nTrain, o.epochs})
		}
	}
	curve, err := ints(o.curve)
	if err != nil {
		return fmt.Errorf("-curve: %w", err)
	}
	budget, err := ints(o.seen)
	if err != nil || len(budget) != 3 {
		return fmt.Errorf("-seen %q: want K,MIN,MAX", o.seen)
	}
	for _, n := range curve {
		for _, st := range config.SplitList(o.starts) {
			if st != "scratch" && st != "pretrained" {
				return fmt.Errorf("-starts: %q is neither scratch nor pretrained", st)
			}
			jobs = append(jobs, job{"curve", curveSize, st, n, min(max(budget[0]*n, budget[1]), budget[2]) / n})
		}
	}
	var b *bench
	for _, j := range jobs {
		path := filepath.Join(cellDir, fmt.Sprintf("%s-%s-%s%s-%dx%d-%d-%s-%s-seed%d.json", j.table, o.data, j.size, nn.PyramidSuffix(o.pyramid), o.w, o.h, j.n, j.startFrom, o.augment, o.seed))
		if _, err := os.Stat(path); err == nil {
			continue // done in an earlier run
		}
		if o.deadline > 0 && time.Since(start) > o.deadline {
			log.Warn("deadline passed: cell left out", zap.String("cell", filepath.Base(path)))
			continue
		}
		bb := ""
		if j.startFrom == "pretrained" {
			bb = strings.ReplaceAll(o.backbones, "{size}", j.size)
			if _, err := os.Stat(bb); err != nil {
				log.Warn("no backbone: pretrained cell left out (make pretrain)", zap.String("size", j.size), zap.String("file", bb))
				continue
			}
		}
		if b == nil {
			most := slices.Max(append(slices.Clone(curve), 1))
			if len(sizes) > 0 {
				most = max(most, o.nTrain)
			}
			if b, err = newBench(o, choice, most, log); err != nil {
				return err
			}
		}
		ckpt := strings.TrimSuffix(path, ".json") + ".ckpt"
		c, _, p, err := b.runCell(ctx, j.table, j.size, j.n, j.epochs, bb, ckpt)
		if err != nil {
			return fmt.Errorf("cell %s: %w", filepath.Base(path), err)
		}
		// The model first, so that a cell saved from now on always has it
		// (-drift-base-model starts from it).
		if err := writeParams(strings.TrimSuffix(path, ".json")+".params", p); err != nil {
			return fmt.Errorf("cell %s: %w", filepath.Base(path), err)
		}
		raw, _ := json.MarshalIndent(c, "", "  ")
		if err := atomicfile.Write(path, raw, 0o644); err != nil {
			return fmt.Errorf("saving the cell: %w", err)
		}
		if err := os.Remove(ckpt); err != nil {
			log.Warn("the finished cell's checkpoint stays", zap.String("file", ckpt), zap.Error(err))
		}
		log.Info("cell done", zap.String("cell", filepath.Base(path)), zap.Float64("map50", c.MAP50),
			zap.Float64("map50_95", c.MAP5095), zap.Float64("train_seconds", c.Seconds))
	}
	return nil
}

// newBench draws the data: most training scenes (a cell with fewer takes a prefix),
// and the validation and test scenes every cell shares.
func newBench(o options, choice backend.Choice, most int, log *zap.Logger) (*bench, error) {
	b := &bench{o: o, choice: choice, log: log}
	none, err := drift.Get(drift.None)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	switch o.data {
	case "colour":
		photos := colourscenes.LoadPhotos("", log)
		g, err := colourscenes.New(photos)
		if err != nil {
			return nil, fmt.Errorf("colour scenes: %w", err)
		}
		b.what = "colour scenes over photographs"
		if photos.Count(colourscenes.SiteHome) == 0 {
			b.what = "colour scenes (procedural backgrounds: no photographs installed)"
		}
		b.scenes = func(n int, seed uint64, d drift.Preset) ([]train.Sample, error) {
			spec := datasets.Spec{Name: datasets.ColourScenes, W: o.w, H: o.h, Classes: o.classes}
			sc, err := spec.Scenes(g, n, seed, d, fmt.Sprintf("seed-%d", seed))
			if err != nil {
				return nil, err
			}
			id := fmt.Sprintf("colour-%d", seed)
			if d.Name != drift.None {
				id = fmt.Sprintf("colour-%s-%d", d.Name, seed)
			}
			out := make([]train.Sample, len(sc))
			for i, s := range sc {
				out[i] = train.Sample{ID: fmt.Sprintf("%s-%d", id, i), Image: s.Image, Boxes: s.Boxes}
			}
			return out, nil
		}
		gen := func(n int, seed uint64) ([]train.Sample, error) { return b.scenes(n, seed, none) }
		if b.data.Train, err = gen(most, 1); err != nil {
			return nil, err
		}
		if b.data.Val, err = gen(o.nTest/2, 2); err != nil {
			return nil, err
		}
		if b.data.Test, err = gen(o.nTest, 3); err != nil {
			return nil, err
		}
		if b.classes, err = colourscenes.ClassNames(o.classes); err != nil {
			return nil, err
		}
		b.arch = func(size string) (nn.Arch, error) {
			return nn.DetectorPyramid(nn.MobileNetV2, size, o.pyramid, o.w, o.h, 3, o.classes)
		}
	case "digits":
		tr, te, err := mnist.Load("")
		if err != nil {
			return nil, fmt.Errorf("mnist: %w", err)
		}
		gen := func(set *mnist.Set, n int, seed uint64) ([]train.Sample, error) {
			sc, err := scenes.Generate(set, n, seed, scenes.Config{}, none)
			if err != nil {
				return nil, fmt.Errorf("digit scenes: %w", err)
			}
			return datasets.Scenes(sc, fmt.Sprint(seed)), nil
		}
		if b.data.Train, err = gen(tr, most, 1); err != nil {
			return nil, err
		}
		if b.data.Val, err = gen(tr, o.nTest/2, 2); err != nil {
			return nil, err
		}
		if b.data.Test, err = gen(te, o.nTest, 3); err != nil {
			return nil, err
		}
		b.classes, b.what, b.o.w, b.o.h = datasets.Classes(), "64×64 grey digit scenes", 64, 64
		b.arch = func(size string) (nn.Arch, error) {
			if size == "grid" {
				return nn.DetectorArch(len(b.classes)), nil
			}
			return nn.DetectorPyramid(nn.MobileNetV2, size, o.pyramid, 64, 64, 1, len(b.classes))
		}
	default:
		return nil, fmt.Errorf("unknown -data %q (want colour or digits)", o.data)
	}
	log.Info("scenes drawn", zap.String("data", b.what), zap.Int("train", len(b.data.Train)), zap.Int("val", len(b.data.Val)),
		zap.Int("test", len(b.data.Test)), zap.Duration("took", time.Since(t0)))
	return b, nil
}

// network is a cell's untrained detector of size at -pyramid, from scratch (bb empty)
// or with the trunk of the backbone file bb, which must be of that size.
func (b *bench) network(size, bb string) (nn.Arch, *nn.Params, error) {
	o := b.o
	if bb == "" {
		a, err := b.arch(size)
		if err != nil {
			return nn.Arch{}, nil, err
		}
		p, err := nn.InitParams(a, o.seed)
		return a, p, err
	}
	a, p, err := weights.BackboneDetector(bb, o.pyramid, o.w, o.h, 3, len(b.classes), o.seed, b.log)
	if err == nil && a.Name != nn.MobileNetV2+"-"+size+"-det"+nn.PyramidSuffix(o.pyramid) {
		err = fmt.Errorf("backbone %s makes a %s, not size %s", bb, a.Name, size)
	}
	return a, p, err
}

// runCell trains one detector of size on the first n training scenes for epochs epochs,
// from scratch or from the backbone file bb, and measures it; it returns the trained
// network too. The training checkpoints to ckpt after each epoch and resumes from it,
// so a cell stopped midway goes on where it was.
func (b *bench) runCell(ctx context.Context, table, size string, n, epochs int, bb, ckpt string) (cell, nn.Arch, *nn.Params, error) {
	o := b.o
	start := "scratch"
	if bb != "" {
		start = "pretrained"
	}
	a, p, err := b.network(size, bb)
	if err != nil {
		return cell{}, nn.Arch{}, nil, err
	}
	aug := augment.None()
	switch o.augment {
	case "none":
	case "colour":
		aug = augment.Colour(nn.Detect)
	default:
		return cell{}, nn.Arch{}, nil, fmt.Errorf("unknown -augment %q (want none or colour)", o.augment)
	}
	rate := o.gridLR
	if len(a.Levels) > 0 {
		rate = o.rate(a, start)
	}
	params, macs, _ := a.Cost()
	c := cell{Table: table, Network: a.Name, Size: size, Input: fmt.Sprintf("%dx%d", o.w, o.h), TrainImages: n, Start: start,
		Backbone: bb, Augment: o.augment, Params: params, MACs: int64(macs), LR: rate, Epochs: epochs, Batch: o.batch,
		TestImages: len(b.data.Test), Data: b.what}
	res, err := train.Run(ctx, a, p, b.classes, train.Split{Train: b.data.Train[:n], Val: b.data.Val}, train.Config{
		Epochs: epochs, BatchSize: o.batch, LR: float32(rate), Patience: -1, Seed: o.seed, Augment: aug, Checkpoint: ckpt,
		Progress: func(pr train.Progress) {
			if d := pr.Done; d != nil {
				b.log.Info("epoch", zap.String("network", a.Name), zap.Int("train", n), zap.Int("epoch", d.Epoch),
					zap.Float64("loss", d.TrainLoss), zap.Float64("val_loss", d.ValLoss), zap.Float64("val_map50", d.ValMetric),
					zap.Float64("images_per_sec", d.ImagesPerSec))
			}
		},
	}, b.choice.Factory)
	if err != nil && (res == nil || !errors.Is(err, train.ErrDiverged)) {
		return cell{}, nn.Arch{}, nil, fmt.Errorf("training %s: %w", a.Name, err)
	}
	for _, st := range res.History {
		c.Seconds += st.Seconds
		c.ValMAP50 = append(c.ValMAP50, st.ValMetric)
	}
	c.Warnings = res.Warnings
	if c.ResumedAfter = res.ResumedFrom; c.ResumedAfter > 0 {
		b.log.Info("the cell's training resumed from its checkpoint", zap.String("network", a.Name),
			zap.Int("after_epoch", c.ResumedAfter), zap.String("checkpoint", ckpt), zap.Strings("warnings", res.Warnings))
	}
	// Training images/s: the epochs' images over their time, validation included.
	c.ImagesPerS = float64(n*len(res.History)) / c.Seconds
	e, err := b.choice.Factory(nn.EngineConfig{Arch: a, Params: res.Params, BatchSize: 32})
	if err != nil {
		return cell{}, nn.Arch{}, nil, fmt.Errorf("engine: %w", err)
	}
	defer e.Close()
	c.Engine = e.Name()
	ev, err := train.Evaluate(e, a, b.classes, b.data.Test, 32)
	if err != nil {
		return cell{}, nn.Arch{}, nil, fmt.Errorf("evaluate: %w", err)
	}
	d := ev.Detection
	c.MAP50, c.MAP5095 = d.MAP50, d.MAP5095
	c.APSmall, c.APMedium, c.APLarge = bySize(d, "small"), bySize(d, "medium"), bySize(d, "large")
	if o.diag && len(a.Levels) > 0 {
		if err := printDiagnosis(e, a, b.classes, b.data); err != nil {
			return cell{}, nn.Arch{}, nil, err
		}
	}
	if o.latencyRuns > 0 {
		c.LatThreads = o.latencyThreads
		if c.P50, c.P99, err = latency(a, res.Params, b.classes, b.data.Test[0].Image, o.latencyRuns, o.latencyThreads); err != nil {
			return cell{}, nn.Arch{}, nil, fmt.Errorf("latency: %w", err)
		}
	}
	return c, a, res.Params, nil
}

// printDiagnosis prints diagnose's figures on the validation scenes and on as many
// training scenes, and the training scenes' mAP (under- or over-fitting).
func printDiagnosis(e nn.Engine, a nn.Arch, classes []string, data train.Split) error {
	tr := data.Train[:min(len(data.Train), max(len(data.Val), 50))]
	for _, set := range []struct {
		name    string
		samples []train.Sample
	}{{"val", data.Val}, {"train", tr}} {
		d, err := diagnose(e, a, set.samples, 16)
		if err != nil {
			return err
		}
		ev, err := train.Evaluate(e, a, classes, set.samples, 16)
		if err != nil {
			return err
		}
		fmt.Printf("diagnosis %s (%d scenes): mAP@0.5 %.3f mAP@[.5:.95] %.3f | %s\n", set.name, len(set.samples),
			ev.Detection.MAP50, ev.Detection.MAP5095, d)
	}
	return nil
}

// latency is one-image inference p50 and p99 in milliseconds on the CPU engine with
// threads cores, through the predictor the agent uses (preprocessing, forward,
// decoding, NMS).
func latency(a nn.Arch, p *nn.Params, classes []string, im *raster.Image, runs, threads int) (float64, float64, error) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(1, threads)))
	pr, err := vision.NewPredictor(a, p, classes, gorgoniaengine.Factory, 1, vision.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer pr.Close()
	ims := []*raster.Image{im}
	var ms []float64
	for i := 0; i < runs+3; i++ {
		t := time.Now()
		if _, err := pr.Predict(context.Background(), ims); err != nil {
			return 0, 0, err
		}
		if i >= 3 { // warm-up
			ms = append(ms, float64(time.Since(t).Microseconds())/1000)
		}
	}
	slices.Sort(ms)
	at := func(q float64) float64 { return ms[min(len(ms)-1, int(math.Ceil(q*float64(len(ms))))-1)] }
	return at(0.5), at(0.99), nil
}

// bySize is mAP@[.5:.95] over one of COCO's areas, or -1 when the test set has no
// object of that size.
func bySize(d *evaluate.DetectionReport, size string) float64 {
	for _, s := range d.BySize {
		if s.Size == size && s.GroundTr > 0 {
			return s.MAP5095
		}
	}
	return -1
}

// readCell reads a cell of any of the benchmark's tables from its JSON file.
func readCell[T any](path string) (T, error) {
	var c T
	raw, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("cell %s: %w", path, err)
	}
	return c, nil
}

// printTables renders the cells in dir as the two tables, in markdown.
func printTables(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var cells []cell
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue // a cell's model (.params) or a stopped cell's checkpoint (.ckpt)
		}
		c, err := readCell[cell](filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		cells = append(cells, c)
	}
	order := map[string]int{"grid": 0, "n": 1, "s": 2, "m": 3}
	sort.SliceStable(cells, func(i, j int) bool {
		a, b := cells[i], cells[j]
		if a.Input != b.Input {
			return a.Input < b.Input
		}
		if a.Size != b.Size {
			return order[a.Size] < order[b.Size]
		}
		if a.TrainImages != b.TrainImages {
			return a.TrainImages < b.TrainImages
		}
		return a.Start > b.Start // scratch first
	})
	ap := func(v float64) string {
		if v < 0 {
			return "—"
		}
		return fmt.Sprintf("%.3f", v)
	}
	ms := func(v float64) string {
		if v == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f ms", v)
	}
	var sb strings.Builder
	sb.WriteString("Per size (test scenes; AP small/medium/large is mAP@[.5:.95] over COCO's areas: below 32², 32²–96², above 96² pixels):\n\n")
	sb.WriteString("| network | input | train scenes | start | epochs | batch | lr | augment | weights | MACs | train img/s | engine | infer p50 (CPU) | infer p99 | mAP@0.5 | mAP@[.5:.95] | AP small | AP medium | AP large | val mAP@0.5 by epoch |\n")
	sb.WriteString("|---|---|---:|---|---:|---:|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, c := range cells {
		if c.Table != "sizes" {
			continue
		}
		fmt.Fprintf(&sb, "| %s | %s | %d | %s | %d | %d | %.3g | %s | %.2f M | %.0f M | %.1f | %s | %s | %s | **%.3f** | **%.3f** | %s | %s | %s | %s |\n",
			c.Network, c.Input, c.TrainImages, c.Start, c.Epochs, c.Batch, c.LR, c.Augment, float64(c.Params)/1e6, float64(c.MACs)/1e6,
			c.ImagesPerS, c.Engine, ms(c.P50), ms(c.P99), c.MAP50, c.MAP5095, ap(c.APSmall), ap(c.APMedium), ap(c.APLarge), curveOf(c.ValMAP50))
	}
	sb.WriteString("\nmAP against training scenes (same validation and test scenes; scratch and pretrained trunk):\n\n")
	sb.WriteString("| network | input | train scenes | start | epochs | lr | augment | train s | engine | mAP@0.5 | mAP@[.5:.95] | AP small | AP medium | AP large |\n")
	sb.WriteString("|---|---|---:|---|---:|---|---|---:|---|---:|---:|---:|---:|---:|\n")
	for _, c := range cells {
		if c.Table != "curve" {
			continue
		}
		fmt.Fprintf(&sb, "| %s | %s | %d | %s | %d | %.3g | %s | %.0f | %s | **%.3f** | %.3f | %s | %s | %s |\n",
			c.Network, c.Input, c.TrainImages, c.Start, c.Epochs, c.LR, c.Augment, c.Seconds, c.Engine, c.MAP50, c.MAP5095,
			ap(c.APSmall), ap(c.APMedium), ap(c.APLarge))
	}
	return sb.String(), nil
}

// curveOf shortens a per-epoch series to at most eight values.
func curveOf(v []float64) string {
	if len(v) == 0 {
		return "—"
	}
	step := max(1, (len(v)+7)/8)
	var parts []string
	for i := step - 1; i < len(v); i += step {
		parts = append(parts, fmt.Sprintf("%.2f", v[i]))
	}
	if (len(v)-1)%step != step-1 {
		parts = append(parts, fmt.Sprintf("%.2f", v[len(v)-1]))
	}
	return strings.Join(parts, " ")
}

func ints(list string) ([]int, error) {
	var out []int
	for _, f := range config.SplitList(list) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}
