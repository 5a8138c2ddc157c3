// Command train benchmarks training and inference speed of edgeloop's two networks: the
// Gorgonia engine with pure-Go BLAS and with OpenBLAS, and the CUDA engine when built
// with -tags edgeloop_cuda, beside PyTorch running the same architectures, losses,
// batches and data, with the same thread count (or on the same GPU), in the same run.
// It prints a table with ratios.
//
//	go run ./bench/train -torch ~/.cache/edgeloop/torch-venv/bin/python -with bin/bench-train-openblas
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
	flag.Parse()
	log, _ := zap.NewDevelopment()
	var sizes []int
	for _, f := range strings.Split(*batchList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			check(fmt.Errorf("-batches: %q is not a positive batch size", f))
		}
		sizes = append(sizes, n)
	}
	maxBatch := slices.Max(sizes)

	dir := *dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "bench-train")
		check(err)
		defer os.RemoveAll(d)
		dir = d
	}
	batches := writeBatches(dir, maxBatch)
	var results []result
	for _, name := range strings.Split(*engines, ",") {
		choice, err := backend.Select(strings.TrimSpace(name), log)
		check(err)
		for _, m := range []struct {
			name string
			arch nn.Arch
			b    *nn.Batch
		}{{"classifier", nn.ClassifierArch(10), batches[0]}, {"detector", nn.DetectorArch(10), batches[1]}} {
			for _, bs := range sizes {
				results = append(results, benchEngine(choice, m.name, m.arch, m.b.Slice(0, bs), *seconds))
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
			results = append(results, runJSON(exec.Command(bin, "-json", "-batches", *batchList, "-seconds", fmt.Sprint(*seconds), "-data", dir))...)
		}
	}
	if *torchPy != "" {
		script := filepath.Join(filepath.Dir(os.Args[0]), "torch_bench.py")
		if _, err := os.Stat(script); err != nil {
			script = "bench/train/torch_bench.py"
		}
		results = append(results, runJSON(exec.Command(*torchPy, script, "--data", dir, "--threads", fmt.Sprint(runtime.GOMAXPROCS(0)),
			"--batches", *batchList, "--seconds", fmt.Sprint(*seconds), "--device", *torchDevice))...)
	}
	printTable(results)
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

	pr, err := vision.NewPredictor(a, p, datasets.Classes(), c.Factory, 1, vision.Options{})
	check(err)
	defer pr.Close()
	im := &raster.Image{W: a.InW, H: a.InH, Pix: b.X[:a.InputSize()]}
	var lat []float64
	for i := 0; i < 210; i++ {
		t := time.Now()
		_, err := pr.Predict(context.Background(), []*raster.Image{im})
		check(err)
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
	fmt.Println("| model      | batch | engine                                   | train img/s | vs PyTorch | infer p50 ms | infer p99 ms | vs PyTorch |")
	fmt.Println("|------------|------:|------------------------------------------|------------:|-----------:|-------------:|-------------:|-----------:|")
	type key struct {
		model string
		batch int
	}
	torch := map[key]result{}
	for _, r := range rs {
		if strings.HasPrefix(r.Framework, "pytorch") {
			torch[key{r.Model, r.Batch}] = r
		}
	}
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].Model != rs[j].Model {
			return rs[i].Model < rs[j].Model
		}
		return rs[i].Batch < rs[j].Batch
	})
	for _, r := range rs {
		tr, inf := "", ""
		if t, ok := torch[key{r.Model, r.Batch}]; ok {
			tr = fmt.Sprintf("%.2fx", r.TrainImagesPerSec/t.TrainImagesPerSec)
			inf = fmt.Sprintf("%.2fx", r.InferP50ms/t.InferP50ms)
		}
		fmt.Printf("| %-10s | %5d | %-40s | %11.0f | %10s | %12.2f | %12.2f | %10s |\n",
			r.Model, r.Batch, r.Framework, r.TrainImagesPerSec, tr, r.InferP50ms, r.InferP99ms, inf)
	}
	fmt.Println("\nvs PyTorch: against PyTorch at the same batch in the same run; training throughput ratio (higher is better), inference latency ratio (lower is better).")
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench train:", err)
		os.Exit(1)
	}
}
