// Command train benchmarks training and inference speed of edgeloop's two networks: the
// Gorgonia engine with pure-Go BLAS and with OpenBLAS, beside PyTorch on the CPU running
// the same architectures, losses, batch and data, with the same thread count, in the
// same run. It prints a table with ratios.
//
//	go run ./bench/train -torch ~/.cache/edgeloop/torch-venv/bin/python -openblas bin/bench-train-openblas
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
	"sort"
	"strings"
	"time"

	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/scenes"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

const batch = 64

type result struct {
	Model             string  `json:"model"`
	Framework         string  `json:"framework"`
	TrainImagesPerSec float64 `json:"train_images_per_sec"`
	InferP50ms        float64 `json:"infer_p50_ms"`
	InferP99ms        float64 `json:"infer_p99_ms"`
}

func main() {
	torchPy := flag.String("torch", "", "python with torch installed (empty: skip PyTorch)")
	openblas := flag.String("openblas", "", "this benchmark built with -tags openblas (empty: skip)")
	steps := flag.Int("steps", 20, "timed training steps of 64 images")
	asJSON := flag.Bool("json", false, "print results as JSON lines (used for the OpenBLAS run)")
	dataDir := flag.String("data", "", "where to write the shared batches (default: a temp dir)")
	flag.Parse()

	dir := *dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "bench-train")
		check(err)
		defer os.RemoveAll(d)
		dir = d
	}
	batches := writeBatches(dir)
	var results []result
	for _, m := range []struct {
		name string
		arch nn.Arch
		b    *nn.Batch
	}{{"classifier", nn.ClassifierArch(10), batches[0]}, {"detector", nn.DetectorArch(10), batches[1]}} {
		results = append(results, benchGo(m.name, m.arch, m.b, *steps))
	}
	if *asJSON {
		for _, r := range results {
			b, _ := json.Marshal(r)
			fmt.Println(string(b))
		}
		return
	}
	if *openblas != "" {
		results = append(results, runJSON(exec.Command(*openblas, "-json", "-steps", fmt.Sprint(*steps), "-data", dir))...)
	}
	if *torchPy != "" {
		script := filepath.Join(filepath.Dir(os.Args[0]), "torch_bench.py")
		if _, err := os.Stat(script); err != nil {
			script = "bench/train/torch_bench.py"
		}
		results = append(results, runJSON(exec.Command(*torchPy, script, "--data", dir, "--threads", fmt.Sprint(runtime.GOMAXPROCS(0)), "--steps", fmt.Sprint(*steps)))...)
	}
	printTable(results)
}

// writeBatches prepares one batch per model from real data and writes it for PyTorch.
func writeBatches(dir string) []*nn.Batch {
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

func benchGo(name string, a nn.Arch, b *nn.Batch, steps int) result {
	p, err := nn.InitParams(a, 1)
	check(err)
	e, err := gorgoniaengine.New(nn.EngineConfig{Arch: a, Params: p, BatchSize: batch})
	check(err)
	defer e.Close()
	for i := 0; i < 3; i++ {
		_, err := e.Step(b)
		check(err)
	}
	start := time.Now()
	for i := 0; i < steps; i++ {
		_, err := e.Step(b)
		check(err)
	}
	trainRate := float64(steps*batch) / time.Since(start).Seconds()

	// Inference as the edge agent runs it: one image, through the Predictor.
	pr, err := vision.NewPredictor(a, p, datasets.Classes(), gorgoniaengine.Factory, 1, vision.Options{})
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
	return result{Model: name, Framework: e.Name(), TrainImagesPerSec: trainRate,
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
	fmt.Printf("\nTraining and inference speed, batch %d for training, 1 image for inference, %d threads (%s)\n\n",
		batch, runtime.GOMAXPROCS(0), runtime.GOARCH)
	fmt.Println("| model      | engine                          | train img/s | vs PyTorch | infer p50 ms | infer p99 ms | vs PyTorch |")
	fmt.Println("|------------|---------------------------------|-------------|------------|--------------|--------------|------------|")
	torch := map[string]result{}
	for _, r := range rs {
		if strings.HasPrefix(r.Framework, "pytorch") {
			torch[r.Model] = r
		}
	}
	for _, model := range []string{"classifier", "detector"} {
		for _, r := range rs {
			if r.Model != model {
				continue
			}
			tr, inf := "", ""
			if t, ok := torch[model]; ok {
				tr = fmt.Sprintf("%.2fx", r.TrainImagesPerSec/t.TrainImagesPerSec)
				inf = fmt.Sprintf("%.2fx", r.InferP50ms/t.InferP50ms)
			}
			fmt.Printf("| %-10s | %-31s | %11.0f | %10s | %12.2f | %12.2f | %10s |\n",
				r.Model, r.Framework, r.TrainImagesPerSec, tr, r.InferP50ms, r.InferP99ms, inf)
		}
	}
	fmt.Println("\nvs PyTorch: training throughput ratio (higher is better), inference latency ratio (lower is better).")
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench train:", err)
		os.Exit(1)
	}
}
