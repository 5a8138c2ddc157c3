// Command colour benchmarks the MobileNetV2 family (nn.Family sizes n, s, m) on colour
// classification: test accuracy against the number of training images (the seed's
// "good results with 300 examples, great with 1000"), from scratch and from a
// pretrained backbone. With -pretrain it makes that backbone (`make pretrain`): the
// family trained on a large generated corpus of other classes with a fixed seed,
// written as a torchvision-named safetensors file that `retrain train -backbone` and
// this benchmark read.
//
//	go run -tags openblas ./bench/colour -sizes n,s,m -train 100,300,1000,3000 -input 96
//	go run -tags openblas ./bench/colour -sizes n@96,s@160,m@224 -backend cuda -budget 3m
//	go run -tags openblas ./bench/colour -pretrain bench/out/pretrain/mobilenetv2-n.safetensors -size n
//
// Every (size, input, training images, start) cell is saved under -out as it finishes,
// and a rerun skips the cells already there: a long run can be stopped and resumed.
// -budget stops starting cells once it is spent, so a run on a lent GPU ends in time
// with the table of what it has; bench/gpu/run.sh's colour part runs it there.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/atomicfile"
	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/backend"
	"github.com/edgeloop/edgeloop/pkg/nn/weights"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// generate is the colour classification data (pkg/colourscenes: shapes and letters in
// colour over crops of real photographs, procedural backgrounds when deploy/local/
// photos.sh has not cached them): n w×h RGB images of the catalogue's classes [first,
// first+classes), labelled 0…classes-1, reproducible from seed.
func generate(g *colourscenes.Generator, n, w, h, first, classes int, seed uint64) ([]train.Sample, error) {
	none, err := drift.Get(drift.None)
	if err != nil {
		return nil, err
	}
	total := first + classes
	// Image i is of class i mod total: draw enough to keep n of the classes wanted.
	all, err := g.Classification(colourscenes.ClassifyConfig{W: w, H: h, Classes: total}, (n*total+classes-1)/classes+total, seed, none)
	if err != nil {
		return nil, err
	}
	out := make([]train.Sample, 0, n)
	for i, s := range all {
		if s.Label >= first && len(out) < n {
			out = append(out, train.Sample{ID: fmt.Sprintf("colour-%d-%d", seed, i), Image: s.Image, Label: s.Label - first})
		}
	}
	return out, nil
}

// generatorName names generate's source in the tables.
const generatorName = "pkg/colourscenes"

// Classes: the benchmark uses the catalogue's first benchClasses, pretraining the next
// pretrainClasses, so the backbone never saw a benchmark class.
const (
	benchClasses    = 8
	pretrainClasses = 8
)

// Data seeds: benchmark train, val, test; pretraining train, val.
const (
	seedTrain, seedVal, seedTest = 11, 12, 13
	seedPretrain, seedPreVal     = 21, 22
)

type cell struct {
	Size        string  `json:"size"`
	Input       int     `json:"input"`
	TrainImages int     `json:"train_images"`
	Start       string  `json:"start"` // scratch or pretrained
	Backbone    string  `json:"backbone,omitempty"`
	TestImages  int     `json:"test_images"`
	TestAcc     float64 `json:"test_accuracy"`
	ValAcc      float64 `json:"val_accuracy"`
	Epochs      int     `json:"epochs"`
	EpochsRun   int     `json:"epochs_run"`
	BestEpoch   int     `json:"best_epoch"`
	Seconds     float64 `json:"seconds"`
	ImagesPerS  float64 `json:"train_images_per_sec"`
	Engine      string  `json:"engine"`
	Threads     int     `json:"threads"`
	Generator   string  `json:"generator"`
}

func main() {
	sizes := flag.String("sizes", "n,s,m", "comma-separated family sizes, each optionally at its own input side: n,s,m or n@96,s@160,m@224")
	trainList := flag.String("train", "100,300,1000,3000", "comma-separated training-set sizes")
	input := flag.Int("input", 96, "square RGB input side of the sizes that do not name one")
	engine := flag.String("backend", "auto", "training backend: auto, cpu or cuda (pkg/nn/backend)")
	budget := flag.Duration("budget", 0, "start no cell after this long (0: no limit); the table has what finished")
	valN := flag.Int("val", 200, "validation images (early stopping)")
	testN := flag.Int("test", 1000, "test images")
	seen := flag.String("seen", "10,3000,12000", "training budget: epochs = K·n images seen, clamped to [MIN, MAX] images: K,MIN,MAX")
	batch := flag.Int("batch", 32, "batch size")
	lr := flag.Float64("lr", 1e-3, "learning rate (Adam, cosine schedule)")
	starts := flag.String("starts", "scratch,pretrained", "which starts to run: scratch, pretrained")
	backbones := flag.String("backbones", "bench/out/pretrain/mobilenetv2-{size}.safetensors", "pretrained backbone per size ({size} is replaced); a missing file leaves the pretrained cells out")
	out := flag.String("out", "bench/out/colour", "directory for the cells (resumable) and the table")
	tableOnly := flag.Bool("table", false, "print the table of the cells already in -out, train nothing")
	pretrain := flag.String("pretrain", "", "make a backbone instead: write it to this .safetensors file")
	size := flag.String("size", "n", "-pretrain: the family size")
	preImages := flag.Int("pretrain-images", 6000, "-pretrain: generated training images")
	preEpochs := flag.Int("pretrain-epochs", 8, "-pretrain: epochs")
	preFrom := flag.String("pretrain-from", "", "-pretrain: continue from this backbone (an earlier -pretrain's file; the head starts new), to pretrain longer in slices")
	preSeed := flag.Uint64("pretrain-seed", seedPretrain, "-pretrain: seed of the generated corpus (another seed, other images of the same classes)")
	export := flag.String("export", "", "write the benchmark's images instead (the largest -train, -val, -test) as class folders under this directory, for `retrain train -data`")
	flag.Parse()
	log, _ := zap.NewDevelopment(zap.AddStacktrace(zap.ErrorLevel))
	ctx := context.Background()
	choice, err := backend.Select(*engine, log)
	check(err)
	gen, err := colourscenes.New(colourscenes.LoadPhotos(colourscenes.PhotoDir(""), log))
	check(err)

	if *pretrain != "" {
		check(runPretrain(ctx, choice, gen, pretrainRun{out: *pretrain, size: *size, side: *input, n: *preImages, epochs: *preEpochs, batch: *batch,
			from: *preFrom, seed: *preSeed}, log))
		return
	}
	ns := ints(*trainList)
	if *export != "" {
		check(exportFolders(*export, benchData(gen, slices.Max(ns), *valN, *testN, *input)))
		return
	}
	seenK := ints(*seen)
	if len(seenK) != 3 {
		check(fmt.Errorf("-seen %q: want K,MIN,MAX", *seen))
	}
	specs, err := sizeSpecs(*sizes, *input)
	check(err)
	cellDir := filepath.Join(*out, "cells")
	check(os.MkdirAll(cellDir, 0o755))
	data := map[int]*train.Split{} // by input side
	began, skipped := time.Now(), 0
	for _, spec := range specs {
		sz, side := spec.size, spec.side
		for _, n := range ns {
			for _, start := range config.SplitList(*starts) {
				if *tableOnly {
					continue
				}
				path := filepath.Join(cellDir, fmt.Sprintf("%s-%d-%d-%s.json", sz, side, n, start))
				if _, err := os.Stat(path); err == nil {
					continue // done in an earlier run
				}
				bb := ""
				if start == "pretrained" {
					bb = strings.ReplaceAll(*backbones, "{size}", sz)
					if _, err := os.Stat(bb); err != nil {
						log.Warn("no backbone: pretrained cell left out (make pretrain)", zap.String("size", sz), zap.String("file", bb))
						continue
					}
				}
				if *budget > 0 && time.Since(began) > *budget {
					skipped++
					continue
				}
				if data[side] == nil {
					data[side] = benchData(gen, slices.Max(ns), *valN, *testN, side)
				}
				epochs := min(max(seenK[0]*n, seenK[1]), seenK[2]) / n
				c, err := runCell(ctx, choice, sz, side, n, start, bb, epochs, *batch, float32(*lr), data[side], log)
				check(err)
				b, _ := json.MarshalIndent(c, "", "  ")
				check(atomicfile.Write(path, b, 0o644))
				fmt.Fprintf(os.Stderr, "== %s %d px, %d images, %s: test accuracy %.3f (%d/%d epochs, %.0f s)\n",
					sz, side, n, start, c.TestAcc, c.EpochsRun, c.Epochs, c.Seconds)
			}
		}
	}
	if skipped > 0 {
		fmt.Fprintf(os.Stderr, "budget %s spent: %d cells not started (a rerun with the same -out resumes)\n", *budget, skipped)
	}
	table := printTable(cellDir)
	check(os.WriteFile(filepath.Join(*out, "colour.md"), []byte(table), 0o644))
	fmt.Print(table)
}

// sizeSpec is one -sizes entry: a family size at a square input side.
type sizeSpec struct {
	size string
	side int
}

// sizeSpecs parses -sizes: "n,s" at side def, or "n@96,s@160" each at its own.
func sizeSpecs(list string, def int) ([]sizeSpec, error) {
	var out []sizeSpec
	for _, f := range config.SplitList(list) {
		sp := sizeSpec{size: f, side: def}
		if name, px, ok := strings.Cut(f, "@"); ok {
			side, err := strconv.Atoi(px)
			if err != nil {
				return nil, fmt.Errorf("-sizes %q: %q is not SIZE@SIDE", list, f)
			}
			sp = sizeSpec{size: name, side: side}
		}
		if _, err := nn.Family(nn.MobileNetV2, sp.size, sp.side, sp.side, 3, benchClasses); err != nil {
			return nil, fmt.Errorf("-sizes %q: %w", list, err)
		}
		out = append(out, sp)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-sizes %q: no size", list)
	}
	return out, nil
}

// benchData generates the benchmark's splits once: the first n training images of a
// cell are a prefix of the largest.
func benchData(gen *colourscenes.Generator, trainN, valN, testN, side int) *train.Split {
	start := time.Now()
	tr, err := generate(gen, trainN, side, side, 0, benchClasses, seedTrain)
	check(err)
	va, err := generate(gen, valN, side, side, 0, benchClasses, seedVal)
	check(err)
	te, err := generate(gen, testN, side, side, 0, benchClasses, seedTest)
	check(err)
	fmt.Fprintf(os.Stderr, "generated %d+%d+%d images at %d px in %.1f s (%s)\n", trainN, valN, testN, side, time.Since(start).Seconds(), generatorName)
	return &train.Split{Train: tr, Val: va, Test: te}
}

func classNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

func runCell(ctx context.Context, choice backend.Choice, size string, side, n int, start, backbone string, epochs, batch int, lr float32,
	data *train.Split, log *zap.Logger) (cell, error) {
	classes := classNames(benchClasses)
	var a nn.Arch
	var p *nn.Params
	var err error
	if start == "pretrained" {
		a, p, err = weights.Backbone(backbone, side, side, 3, benchClasses, 1, log)
	} else if a, err = nn.Family(nn.MobileNetV2, size, side, side, 3, benchClasses); err == nil {
		p, err = nn.InitParams(a, 1)
	}
	if err != nil {
		return cell{}, err
	}
	if a.Name != nn.MobileNetV2+"-"+size {
		return cell{}, fmt.Errorf("backbone %s is a %s, not size %s", backbone, a.Name, size)
	}
	cfg := train.Config{Epochs: epochs, BatchSize: batch, LR: lr, Patience: 4, Seed: 1, Augment: augment.DefaultFor(a),
		Progress: epochLine}
	t0 := time.Now()
	res, err := train.Run(ctx, a, p, classes, train.Split{Train: data.Train[:n], Val: data.Val}, cfg, choice.Factory)
	if err != nil && (res == nil || !errors.Is(err, train.ErrDiverged)) {
		return cell{}, err
	}
	secs := time.Since(t0).Seconds()
	ev, err := evaluate(choice, a, res.Params, classes, data.Test)
	if err != nil {
		return cell{}, err
	}
	c := cell{Size: size, Input: side, TrainImages: n, Start: start, Backbone: backbone, TestImages: len(data.Test),
		TestAcc: ev.Classification.Accuracy, Epochs: epochs, EpochsRun: len(res.History), BestEpoch: res.BestEpoch,
		Seconds: secs, Engine: res.Engine, Threads: runtime.GOMAXPROCS(0), Generator: generatorName}
	var imgs, s float64
	for _, h := range res.History {
		imgs += float64(res.Examples.Train)
		s += h.Seconds
		if h.Epoch == res.BestEpoch {
			c.ValAcc = h.ValMetric
		}
	}
	if s > 0 {
		c.ImagesPerS = imgs / s
	}
	return c, nil
}

func epochLine(p train.Progress) {
	if d := p.Done; d != nil {
		fmt.Fprintf(os.Stderr, "  epoch %d/%d loss %.3f val loss %.3f val acc %.3f %.0f img/s\n", d.Epoch, p.Epochs, d.TrainLoss, d.ValLoss, d.ValMetric, d.ImagesPerSec)
	}
}

func evaluate(choice backend.Choice, a nn.Arch, p *nn.Params, classes []string, samples []train.Sample) (train.Evaluation, error) {
	e, err := choice.Factory(nn.EngineConfig{Arch: a, Params: p, BatchSize: 64})
	if err != nil {
		return train.Evaluation{}, err
	}
	defer e.Close()
	return train.Evaluate(e, a, classes, samples, 64)
}

// exportFolders writes the splits as [train|val|test]/<class>/<n>.jpg.
func exportFolders(dir string, d *train.Split) error {
	for split, samples := range map[string][]train.Sample{"train": d.Train, "val": d.Val, "test": d.Test} {
		for i, s := range samples {
			path := filepath.Join(dir, split, fmt.Sprintf("class%d", s.Label), fmt.Sprintf("%05d.jpg", i))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(path, s.Image.EncodeJPEG(90), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// pretrainRun is one -pretrain: what to train and where to write it.
type pretrainRun struct {
	out, size              string
	side, n, epochs, batch int
	// from is an earlier backbone to continue from ("": a fresh initialisation).
	from string
	// seed draws the corpus.
	seed uint64
}

// runPretrain trains r.size on the pretraining classes and writes its backbone.
func runPretrain(ctx context.Context, choice backend.Choice, gen *colourscenes.Generator, r pretrainRun, log *zap.Logger) error {
	out, size, side, n, epochs, batch := r.out, r.size, r.side, r.n, r.epochs, r.batch
	var a nn.Arch
	var p *nn.Params
	var err error
	if r.from != "" {
		a, p, err = weights.Backbone(r.from, side, side, 3, pretrainClasses, 1, log)
		if err == nil && a.Name != nn.MobileNetV2+"-"+size {
			err = fmt.Errorf("-pretrain-from %s is a %s, not size %s", r.from, a.Name, size)
		}
	} else if a, err = nn.Family(nn.MobileNetV2, size, side, side, 3, pretrainClasses); err == nil {
		p, err = nn.InitParams(a, 1)
	}
	if err != nil {
		return err
	}
	t0 := time.Now()
	tr, err := generate(gen, n, side, side, benchClasses, pretrainClasses, r.seed)
	if err != nil {
		return err
	}
	va, err := generate(gen, 500, side, side, benchClasses, pretrainClasses, seedPreVal)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "pretraining %s at %d px on %d generated images of classes %d–%d (%s), %d epochs\n",
		a.Name, side, n, benchClasses, benchClasses+pretrainClasses-1, generatorName, epochs)
	cfg := train.Config{Epochs: epochs, BatchSize: batch, LR: 2e-3, Patience: -1, Seed: 1, Augment: augment.DefaultFor(a), Progress: epochLine}
	res, err := train.Run(ctx, a, p, classNames(pretrainClasses), train.Split{Train: tr, Val: va}, cfg, choice.Factory)
	if err != nil {
		return err
	}
	last := res.History[len(res.History)-1]
	ts, err := weights.Export(a, res.Params, false)
	if err != nil {
		return err
	}
	meta := map[string]string{
		"edgeloop":  "make pretrain (bench/colour -pretrain)",
		"arch":      a.Name,
		"input":     fmt.Sprintf("%dx%dx3", side, side),
		"images":    strconv.Itoa(n),
		"epochs":    strconv.Itoa(epochs),
		"seed":      fmt.Sprintf("data %d, init 1, order 1", r.seed),
		"classes":   fmt.Sprintf("%d–%d of the generator's catalogue", benchClasses, benchClasses+pretrainClasses-1),
		"generator": generatorName,
		"val_acc":   fmt.Sprintf("%.4f", last.ValMetric),
	}
	if r.from != "" {
		prev, err := os.ReadFile(r.from)
		if err != nil {
			return err
		}
		meta["continued_from"] = fmt.Sprintf("%s (sha256 %x)", filepath.Base(r.from), sha256.Sum256(prev))
	}
	b, err := weights.EncodeSafetensors(ts, meta)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := atomicfile.Write(out, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d tensors, %.1f MB): val accuracy %.3f on its own classes after %.0f s\n",
		out, len(ts), float64(len(b))/1e6, last.ValMetric, time.Since(t0).Seconds())
	return nil
}

// printTable reads every cell and lays them out: one row per size and training-set
// size, scratch and pretrained side by side.
func printTable(dir string) string {
	ents, err := os.ReadDir(dir)
	check(err)
	type key struct {
		size  string
		input int
		n     int
	}
	rows := map[key]map[string]cell{}
	var keys []key
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		check(err)
		var c cell
		check(json.Unmarshal(b, &c))
		k := key{c.Size, c.Input, c.TrainImages}
		if rows[k] == nil {
			rows[k] = map[string]cell{}
			keys = append(keys, k)
		}
		rows[k][c.Start] = c
	}
	order := map[string]int{"n": 0, "s": 1, "m": 2}
	slices.SortFunc(keys, func(a, b key) int {
		if a.size != b.size {
			return order[a.size] - order[b.size]
		}
		if a.input != b.input {
			return a.input - b.input
		}
		return a.n - b.n
	})
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nColour classification, %d classes, test accuracy (%s), MobileNetV2 from scratch and from a pretrained backbone\n\n", benchClasses, generatorName)
	sb.WriteString("| size | input | train images | scratch | pretrained | gain | epochs (scratch / pretrained) | train s (scratch / pretrained) | img/s | engine |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---|---|---:|---|\n")
	for _, k := range keys {
		s, okS := rows[k]["scratch"]
		p, okP := rows[k]["pretrained"]
		f := func(ok bool, v float64) string {
			if !ok {
				return "—"
			}
			return fmt.Sprintf("%.3f", v)
		}
		gain := "—"
		if okS && okP {
			gain = fmt.Sprintf("%+.3f", p.TestAcc-s.TestAcc)
		}
		ep := func(ok bool, c cell) string {
			if !ok {
				return "—"
			}
			return fmt.Sprintf("%d/%d", c.EpochsRun, c.Epochs)
		}
		sec := func(ok bool, c cell) string {
			if !ok {
				return "—"
			}
			return fmt.Sprintf("%.0f", c.Seconds)
		}
		rate, engine := s.ImagesPerS, s.Engine
		if !okS {
			rate, engine = p.ImagesPerS, p.Engine
		}
		fmt.Fprintf(&sb, "| %s | %d | %d | %s | %s | %s | %s / %s | %s / %s | %.0f | %s |\n", k.size, k.input, k.n, f(okS, s.TestAcc), f(okP, p.TestAcc), gain,
			ep(okS, s), ep(okP, p), sec(okS, s), sec(okP, p), rate, engine)
	}
	return sb.String()
}

func ints(list string) []int {
	var out []int
	for _, f := range config.SplitList(list) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			check(fmt.Errorf("%q is not a positive number", f))
		}
		out = append(out, n)
	}
	return out
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench colour:", err)
		os.Exit(1)
	}
}
