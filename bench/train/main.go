// Command train benchmarks training and inference speed of edgeloop's two networks and,
// with -family, of MobileNetV2 sizes (nn.Family, RGB), and with -det of the multi-scale
// detector's sizes (nn.DetectorFamily, RGB colour scenes): the Gorgonia engine with pure-Go
// BLAS and with OpenBLAS, and the CUDA engine when built with -tags edgeloop_cuda,
// beside PyTorch running the same architectures, losses, batches and data, with the
// same thread count (or on the same GPU), in the same run, and for the family ONNX
// Runtime's batch-1 latency on the network exported from PyTorch. Inference runs the
// network with batch norm folded (nn.FoldBatchNorm), as serving does. It prints a
// table with ratios.
//
//	go run ./bench/train -torch ~/.cache/edgeloop/torch-venv/bin/python -with bin/bench-train-openblas
//	go run -tags openblas ./bench/train -models "" -family n,s,m -family-px 96,160 -family-batches 16,32 -torch $(bench/setup-torch.sh)
//	bench-train-cuda -engines cuda,cpu -batches 32,128,512 -torch python3 -torch-device cuda -with bench-train-purego
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/backend"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/scenes"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

type result struct {
	Model             string  `json:"model"`
	Framework         string  `json:"framework"`
	Batch             int     `json:"batch"`
	TrainImagesPerSec float64 `json:"train_images_per_sec"`
	InferP50ms        float64 `json:"infer_p50_ms"`
	InferP99ms        float64 `json:"infer_p99_ms"`
}

func main() {
	torchPy := flag.String("torch", "", "python with torch installed (empty: skip PyTorch)")
	torchDevice := flag.String("torch-device", "cpu", "where PyTorch runs: cpu or cuda")
	with := flag.String("with", "", "comma-separated builds of this benchmark (e.g. -tags openblas) to run on the same data")
	engines := flag.String("engines", "cpu", "comma-separated engines to measure in this build: cpu, cuda")
	batchList := flag.String("batches", "64", "comma-separated training batch sizes")
	seconds := flag.Float64("seconds", 2, "least time each measurement trains for (after 3 warm-up steps)")
	asJSON := flag.Bool("json", false, "print results as JSON lines (how -with builds report)")
	dataDir := flag.String("data", "", "where to write the shared batches (default: a temp dir)")
	family := flag.String("family", "", "comma-separated MobileNetV2 sizes to measure too (n, s, m; empty: none), each at every -family-px, or SIZE@PX at its own input (n@96,s@160,m@224)")
	familyPx := flag.String("family-px", "96,160", "comma-separated square RGB input sizes of the family")
	familyBatches := flag.String("family-batches", "16,32", "comma-separated training batch sizes of the family")
	models := flag.String("models", "classifier,detector", "comma-separated fixed models to measure (empty: none)")
	detFamily := flag.String("det", "", "comma-separated sizes of the multi-scale detector (nn.DetectorFamily) to measure too (empty: none)")
	detPx := flag.String("det-px", "320", "comma-separated square RGB input sizes of the multi-scale detector (multiples of 32)")
	detBatches := flag.String("det-batches", "8", "comma-separated training batch sizes of the multi-scale detector")
	flag.Parse()
	log, _ := zap.NewDevelopment()
	sizes, fpx, fbatches := ints("-batches", *batchList), ints("-family-px", *familyPx), ints("-family-batches", *familyBatches)
	maxBatch := slices.Max(sizes)
	dsizes := config.SplitList(*detFamily)
	dpx, dbatches := ints("-det-px", *detPx), ints("-det-batches", *detBatches)
	type familyNet struct {
		size string
		px   int
	}
	var fnets []familyNet
	for _, f := range config.SplitList(*family) {
		size, at, ok := strings.Cut(f, "@")
		switch {
		case size == "":
		case ok:
			fnets = append(fnets, familyNet{size, ints("-family", at)[0]})
		default:
			for _, px := range fpx {
				fnets = append(fnets, familyNet{size, px})
			}
		}
	}

	dir := *dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "bench-train")
		check(err)
		defer os.RemoveAll(d)
		dir = d
	}
	batches := writeBatches(dir, maxBatch)
	fbatch := map[int]*nn.Batch{}
	for _, f := range fnets {
		if fbatch[f.px] == nil {
			fbatch[f.px] = writeFamilyBatch(dir, f.px, slices.Max(fbatches))
		}
	}
	dbatch := map[int]*nn.Batch{}
	if len(dsizes) > 0 {
		for _, px := range dpx {
			dbatch[px] = writeDetectorBatch(dir, px, slices.Max(dbatches))
		}
	}
	var results []result
	for _, name := range strings.Split(*engines, ",") {
		choice, err := backend.Select(strings.TrimSpace(name), log)
		check(err)
		for _, m := range []struct {
			name string
			arch nn.Arch
			b    *nn.Batch
		}{{"classifier", nn.ClassifierArch(10), batches[0]}, {"detector", nn.DetectorArch(10), batches[1]}} {
			if !slices.Contains(strings.Split(*models, ","), m.name) {
				continue
			}
			for _, bs := range sizes {
				results = append(results, benchEngine(choice, m.name, m.arch, m.b.Slice(0, bs), *seconds))
			}
		}
		for _, f := range fnets {
			a, err := nn.Family(nn.MobileNetV2, f.size, f.px, f.px, 3, familyClasses)
			check(err)
			for _, bs := range fbatches {
				results = append(results, benchEngine(choice, familyModel(f.size, f.px), a, fbatch[f.px].Slice(0, bs), *seconds))
			}
		}
		for _, size := range dsizes {
			for _, px := range dpx {
				a, err := nn.DetectorFamily(nn.MobileNetV2, size, px, px, 3, detectorClasses)
				check(err)
				for _, bs := range dbatches {
					results = append(results, benchEngine(choice, detectorModel(size, px), a, dbatch[px].Slice(0, bs), *seconds))
				}
			}
		}
	}
	if *asJSON {
		for _, r := range results {
			b, _ := json.Marshal(r)
			fmt.Println(string(b))
		}
		return
	}
	for _, bin := range strings.Split(*with, ",") {
		if bin = strings.TrimSpace(bin); bin != "" {
			results = append(results, runJSON(exec.Command(bin, "-json", "-batches", *batchList, "-seconds", fmt.Sprint(*seconds), "-data", dir,
				"-models", *models, "-family", *family, "-family-px", *familyPx, "-family-batches", *familyBatches,
				"-det", *detFamily, "-det-px", *detPx, "-det-batches", *detBatches))...)
		}
	}
	if *torchPy != "" {
		script := filepath.Join(filepath.Dir(os.Args[0]), "torch_bench.py")
		if _, err := os.Stat(script); err != nil {
			script = "bench/train/torch_bench.py"
		}
		results = append(results, runJSON(exec.Command(*torchPy, script, "--data", dir, "--threads", fmt.Sprint(runtime.GOMAXPROCS(0)),
			"--batches", *batchList, "--seconds", fmt.Sprint(*seconds), "--device", *torchDevice, "--models", *models,
			"--family", *family, "--family-px", *familyPx, "--family-batches", *familyBatches,
			"--det", *detFamily, "--det-px", *detPx, "--det-batches", *detBatches, "--det-classes", fmt.Sprint(detectorClasses)))...)
	}
	printTable(results)
}

// familyClasses is the class count of the family networks measured.
const familyClasses = 10

func familyModel(size string, px int) string { return fmt.Sprintf("mnv2-%s %d", size, px) }

func detectorModel(size string, px int) string { return fmt.Sprintf("det-%s %d", size, px) }

// detectorClasses is the class count of the multi-scale detectors measured.
const detectorClasses = 8

// writeDetectorBatch makes batch colour scenes (colourscenes, procedural backgrounds) of
// px×px with the multi-scale detector's targets (the same for every size: the levels
// and classes are) and writes them for PyTorch and the other builds as det-PX.x.f32 and
// det-PX.{w,t,m,b}.f32.
func writeDetectorBatch(dir string, px, batch int) *nn.Batch {
	a, err := nn.DetectorFamily(nn.MobileNetV2, "n", px, px, 3, detectorClasses)
	check(err)
	g, err := colourscenes.New(nil)
	check(err)
	none, _ := drift.Get(drift.None)
	sc, err := g.Scenes(colourscenes.SceneConfig{W: px, H: px, Classes: detectorClasses}, batch, uint64(px), none)
	check(err)
	b := &nn.Batch{N: batch}
	var boxes [][]nn.Box
	for _, s := range sc {
		b.X = append(b.X, s.Image.Pix...)
		boxes = append(boxes, s.Boxes)
	}
	b.Det = nn.EncodeTargets(a, boxes)
	write(filepath.Join(dir, fmt.Sprintf("det-%d.x.f32", px)), b.X)
	for k, v := range map[string][]float32{"w": b.Det.W, "t": b.Det.T, "m": b.Det.M, "b": b.Det.B} {
		write(filepath.Join(dir, fmt.Sprintf("det-%d.%s.f32", px, k)), v)
	}
	return b
}

func ints(flagName, list string) []int {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			check(fmt.Errorf("%s: %q is not a positive number", flagName, f))
		}
		out = append(out, n)
	}
	return out
}

// writeFamilyBatch makes batch random px×px RGB images in [0, 1] with labels (the
// speed of a step does not depend on what the pixels show) and writes them for
// PyTorch and the other builds as family-PX.x.f32 and family-PX.y.i32.
func writeFamilyBatch(dir string, px, batch int) *nn.Batch {
	r := rand.New(rand.NewPCG(uint64(px), 1))
	b := &nn.Batch{N: batch, X: make([]float32, batch*3*px*px), Labels: make([]int, batch)}
	for i := range b.X {
		b.X[i] = r.Float32()
	}
	labels := make([]int32, batch)
	for i := range b.Labels {
		b.Labels[i] = r.IntN(familyClasses)
		labels[i] = int32(b.Labels[i])
	}
	write(filepath.Join(dir, fmt.Sprintf("family-%d.x.f32", px)), b.X)
	write(filepath.Join(dir, fmt.Sprintf("family-%d.y.i32", px)), labels)
	return b
}

// writeBatches prepares one batch of batch images per model from real data and writes
// it for PyTorch and the other builds; smaller batches are its first images.
func writeBatches(dir string, batch int) []*nn.Batch {
	tr, _, err := mnist.Load("")
	check(err)
	none, _ := drift.Get(drift.None)
	cls := &nn.Batch{N: batch}
	for _, s := range datasets.Digits(tr, 0, batch, "bench", none, 1) {
		cls.X = append(cls.X, s.Image.Pix...)
		cls.Labels = append(cls.Labels, s.Label)
	}
	sc, err := scenes.Generate(tr, batch, 1, scenes.Config{}, none)
	check(err)
	det := &nn.Batch{N: batch}
	var boxes [][]nn.Box
	for _, s := range sc {
		det.X = append(det.X, s.Image.Pix...)
		boxes = append(boxes, s.Boxes)
	}
	det.Det = nn.EncodeTargets(nn.DetectorArch(10), boxes)
	labels := make([]int32, batch)
	for i, l := range cls.Labels {
		labels[i] = int32(l)
	}
	write(filepath.Join(dir, "classifier.x.f32"), cls.X)
	write(filepath.Join(dir, "classifier.y.i32"), labels)
	write(filepath.Join(dir, "detector.x.f32"), det.X)
	for k, v := range map[string][]float32{"w": det.Det.W, "t": det.Det.T, "m": det.Det.M, "b": det.Det.B} {
		write(filepath.Join(dir, "detector."+k+".f32"), v)
	}
	return []*nn.Batch{cls, det}
}

func write(path string, v any) {
	var buf bytes.Buffer
	check(binary.Write(&buf, binary.LittleEndian, v))
	check(os.WriteFile(path, buf.Bytes(), 0o644))
}

// benchEngine trains on b for at least seconds after a warm-up, then times one-image
// inference through the Predictor, as the edge agent runs it.
func benchEngine(c backend.Choice, name string, a nn.Arch, b *nn.Batch, seconds float64) result {
	p, err := nn.InitParams(a, 1)
	check(err)
	e, err := c.Factory(nn.EngineConfig{Arch: a, Params: p, BatchSize: b.N})
	check(err)
	defer e.Close()
	for i := 0; i < 3; i++ {
		_, err := e.Step(b)
		check(err)
	}
	start, steps := time.Now(), 0
	for ; steps < 3 || time.Since(start).Seconds() < seconds; steps++ {
		_, err := e.Step(b)
		check(err)
	}
	trainRate := float64(steps*b.N) / time.Since(start).Seconds()

	// Serving computes the inference form: batch norm folded into the convs.
	fa, fp, err := nn.FoldBatchNorm(a, p)
	check(err)
	var infer func() error
	if a.InC == 1 { // through the Predictor, as the edge agent runs it
		pr, err := vision.NewPredictor(fa, fp, datasets.Classes(), c.Factory, 1, vision.Options{})
		check(err)
		defer pr.Close()
		im := &raster.Image{W: a.InW, H: a.InH, Pix: b.X[:a.InputSize()]}
		infer = func() error {
			_, err := pr.Predict(context.Background(), []*raster.Image{im})
			return err
		}
	} else { // colour networks: the engine's forward pass (the Predictor takes grey images)
		fe, err := c.Factory(nn.EngineConfig{Arch: fa, Params: fp, BatchSize: 1})
		check(err)
		defer fe.Close()
		x := b.X[:a.InputSize()]
		infer = func() error {
			_, err := fe.Forward(x, 1)
			return err
		}
	}
	// 200 timed runs after 10 warm-up runs, or fewer (20 at least) past `seconds`.
	var lat []float64
	start = time.Now()
	for i := 0; i < 210 && (i < 30 || time.Since(start).Seconds() < seconds); i++ {
		t := time.Now()
		check(infer())
		if i >= 10 {
			lat = append(lat, time.Since(t).Seconds()*1000)
		}
	}
	sort.Float64s(lat)
	return result{Model: name, Framework: e.Name(), Batch: b.N, TrainImagesPerSec: trainRate,
		InferP50ms: lat[len(lat)/2], InferP99ms: lat[int(0.99*float64(len(lat)-1))]}
}

func runJSON(cmd *exec.Cmd) []result {
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	check(err)
	var rs []result
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r result
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Model != "" {
			rs = append(rs, r)
		}
	}
	return rs
}

func printTable(rs []result) {
	fmt.Printf("\nTraining speed at each batch size and one-image inference latency, %d threads (%s)\n\n",
		runtime.GOMAXPROCS(0), runtime.GOARCH)
	fmt.Println("| model      | batch | engine                                   | train img/s | vs PyTorch | infer p50 ms | infer p99 ms | vs PyTorch | vs ORT |")
	fmt.Println("|------------|------:|------------------------------------------|------------:|-----------:|-------------:|-------------:|-----------:|-------:|")
	type key struct {
		model string
		batch int
	}
	torch, ort := map[key]result{}, map[string]result{}
	for _, r := range rs {
		if strings.HasPrefix(r.Framework, "pytorch") {
			torch[key{r.Model, r.Batch}] = r
		}
		if strings.HasPrefix(r.Framework, "onnxruntime") {
			ort[r.Model] = r
		}
	}
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].Model != rs[j].Model {
			return rs[i].Model < rs[j].Model
		}
		return rs[i].Batch < rs[j].Batch
	})
	for _, r := range rs {
		train, tr, inf, vo := fmt.Sprintf("%.0f", r.TrainImagesPerSec), "", "", ""
		if r.TrainImagesPerSec == 0 {
			train = "—" // an inference-only runtime
		}
		if t, ok := torch[key{r.Model, r.Batch}]; ok && r.TrainImagesPerSec > 0 {
			tr = fmt.Sprintf("%.2fx", r.TrainImagesPerSec/t.TrainImagesPerSec)
			inf = fmt.Sprintf("%.2fx", r.InferP50ms/t.InferP50ms)
		}
		if o, ok := ort[r.Model]; ok {
			vo = fmt.Sprintf("%.2fx", r.InferP50ms/o.InferP50ms)
		}
		fmt.Printf("| %-10s | %5d | %-40s | %11s | %10s | %12.2f | %12.2f | %10s | %6s |\n",
			r.Model, r.Batch, r.Framework, train, tr, r.InferP50ms, r.InferP99ms, inf, vo)
	}
	fmt.Println("\nvs PyTorch: against PyTorch at the same batch in the same run; training throughput ratio (higher is better), inference latency ratio (lower is better). " +
		"vs ORT: batch-1 latency against ONNX Runtime (CPU, same threads) running the network exported from PyTorch, in the same run (lower is better).")
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench train:", err)
		os.Exit(1)
	}
}
