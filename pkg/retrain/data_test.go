package retrain

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/dataformat"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/train"
)

var testColours = map[string][3]float32{"red": {0.9, 0.1, 0.1}, "green": {0.1, 0.8, 0.2}, "blue": {0.1, 0.2, 0.9}}

// colourItems makes n images per class of a small colour dataset: a grey 48×36 (or
// 36×48) image with one coloured square (the class) at a random place, its box the
// label (classification drops it). Every third image has no split, the rest are
// train, then val or test.
func colourItems(t *testing.T, task string, n int) (*project.Project, []dataformat.Item, map[string][]byte) {
	t.Helper()
	p := &project.Project{ID: "colours", Task: task, Classes: []string{"red", "green", "blue"}}
	r := rand.New(rand.NewPCG(1, 2))
	var items []dataformat.Item
	data := map[string][]byte{}
	for i := 0; i < n; i++ {
		for _, cls := range p.Classes {
			w, h := 48, 36
			if i%2 == 1 {
				w, h = 36, 48
			}
			im := raster.NewC(w, h, 3)
			for k := range im.Pix {
				im.Pix[k] = 0.5 + 0.1*float32(r.NormFloat64())
			}
			s := 12 + r.IntN(8)
			x, y := r.IntN(w-s), r.IntN(h-s)
			ink := testColours[cls]
			for c := 0; c < 3; c++ {
				pl := im.Plane(c)
				for yy := y; yy < y+s; yy++ {
					for xx := x; xx < x+s; xx++ {
						pl.Pix[yy*w+xx] = ink[c]
					}
				}
			}
			id := fmt.Sprintf("%s-%02d", cls, i)
			split := []string{"", "train", "train", "val", "train", "test"}[i%6]
			ct, b := "image/png", im.EncodePNG()
			if i%2 == 0 {
				ct, b = "image/jpeg", im.EncodeJPEG(90)
			}
			box := &project.Box{X0: float32(x) / float32(w), Y0: float32(y) / float32(h), X1: float32(x+s) / float32(w), Y1: float32(y+s) / float32(h)}
			l := project.Label{Class: cls}
			if task == "detect" {
				l.Box = box
			}
			items = append(items, dataformat.Item{DatasetEntry: project.DatasetEntry{ID: id, Split: split, Labels: []project.Label{l}},
				Record: &project.ExampleRecord{ContentType: ct, Width: w, Height: h}})
			data[id] = b
		}
	}
	return p, items, data
}

// writeDataset writes items in format under dir with dataformat's exporter (class
// folders: [split/]class/image by hand) and breaks the image of id broken (not an
// image any more). It returns the broken image's path in the dataset.
func writeDataset(t *testing.T, dir, format string, p *project.Project, items []dataformat.Item, data map[string][]byte, broken string) string {
	t.Helper()
	var brokenPath string
	put := func(name string, b []byte) error {
		path := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(name, "/")))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, b, 0o644)
	}
	image := func(name string, it dataformat.Item) error {
		b := data[it.ID]
		if it.ID == broken {
			b, brokenPath = []byte("this is not a JPEG"), strings.TrimPrefix(name, "/")
		}
		return put(name, b)
	}
	if format == dataformat.FormatFolders {
		for _, it := range items {
			ext := map[string]string{"image/png": ".png", "image/jpeg": ".jpg"}[it.Record.ContentType]
			if err := image(filepath.ToSlash(filepath.Join(it.Split, it.Labels[0].Class, it.ID+ext)), it); err != nil {
				t.Fatal(err)
			}
		}
		return brokenPath
	}
	if err := dataformat.Write(format, p, items, image, put); err != nil {
		t.Fatal(err)
	}
	return brokenPath
}

func readMetrics(t *testing.T, dir string) Metrics {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m Metrics
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("metrics.json: %v", err)
	}
	return m
}

func quick(o *TrainOptions) *TrainOptions {
	o.NoAug, o.Backend = true, "cpu"
	o.Train = train.Config{Epochs: 2, BatchSize: 8, Patience: -1, Seed: 1}
	return o
}

// TestTrainOnYourData: `retrain train -data DIR -format F` trains on a small colour
// dataset written in each import format (classification and detection), skips the one
// broken image with a line naming its path, keeps the dataset's own splits and splits
// the rest by the project rule, and writes a metrics.json that reads back with the
// dataset's classes and counts, and a report.png.
func TestTrainOnYourData(t *testing.T) {
	for _, c := range []struct{ format, task string }{
		{dataformat.FormatFolders, "classify"}, {dataformat.FormatYOLO, "classify"}, {dataformat.FormatCOCO, "classify"}, {dataformat.FormatVOC, "classify"},
		{dataformat.FormatCOCO, "detect"}, {dataformat.FormatYOLO, "detect"}, {dataformat.FormatVOC, "detect"},
	} {
		t.Run(c.format+"-"+c.task, func(t *testing.T) {
			p, items, data := colourItems(t, c.task, 8)
			dir := t.TempDir()
			broken := writeDataset(t, filepath.Join(dir, "data"), c.format, p, items, data, "green-04")
			var progress bytes.Buffer
			o := quick(&TrainOptions{Data: filepath.Join(dir, "data"), Format: "auto", Out: filepath.Join(dir, "out")})
			if _, err := RunTrain(context.Background(), o, zap.NewNop(), &progress); err != nil {
				t.Fatalf("train: %v\n%s", err, progress.String())
			}
			m := readMetrics(t, o.Out)
			format := c.format
			if format == dataformat.FormatYOLO && c.task == "classify" {
				format = dataformat.FormatFolders // Ultralytics' classification layout is class folders
			}
			if m.Dataset != format+":"+o.Data || string(m.Task) != c.task {
				t.Errorf("metrics: dataset %q task %s, want %s:%s and %s", m.Dataset, m.Task, format, o.Data, c.task)
			}
			want := slices.Sorted(slices.Values(p.Classes))
			if c.format == dataformat.FormatCOCO || c.format == dataformat.FormatYOLO && c.task == "detect" {
				want = p.Classes // the categories' / data.yaml's order
			}
			if !slices.Equal(m.Classes, want) {
				t.Errorf("classes %v, want %v", m.Classes, want)
			}
			if n := m.Examples["train"] + m.Examples["val"] + m.Examples["test"]; n != len(items)-1 || m.Examples["val"] < 3 || m.Examples["test"] < 3 {
				t.Errorf("examples %v: want %d in all (one broken), val and test from the dataset's own splits", m.Examples, len(items)-1)
			}
			line := "skipping " + broken + ": "
			if broken == "" || !strings.Contains(progress.String(), line) || !strings.Contains(progress.String(), "decode image") {
				t.Errorf("progress does not say %q with the reason:\n%s", line, progress.String())
			}
			if !slices.ContainsFunc(m.Warnings, func(w string) bool { return strings.Contains(w, broken) }) {
				t.Errorf("metrics warnings %q do not name %s", m.Warnings, broken)
			}
			if c.task == "classify" && m.TestAccuracy == nil || c.task == "detect" && m.TestMAP50 == nil {
				t.Errorf("metrics without the test headline: %+v", m.Test)
			}
			if st, err := os.Stat(filepath.Join(o.Out, "report.png")); err != nil || st.Size() == 0 {
				t.Errorf("report.png: %v", err)
			}
		})
	}
}

// TestTrainFamilyOnZipAndEval: a zip of class folders under a top folder trains the
// MobileNetV2 family at -input 64 in colour, and `retrain eval -data` scores the model
// on the same images; a model refuses data of classes it does not know.
func TestTrainFamilyOnZipAndEval(t *testing.T) {
	p, items, data := colourItems(t, "classify", 6)
	dir := t.TempDir()
	writeDataset(t, filepath.Join(dir, "tree", "mydata"), dataformat.FormatFolders, p, items, data, "")
	archive := filepath.Join(dir, "mydata.zip")
	zipDir(t, filepath.Join(dir, "tree"), archive)

	o := quick(&TrainOptions{Data: archive, Format: "folders", Out: filepath.Join(dir, "out"),
		Model: nn.Spec{Family: "mobilenetv2", Size: "n", Input: [2]int{64, 64}, Channels: 3}})
	o.Train.Epochs = 1
	var progress bytes.Buffer
	if _, err := RunTrain(context.Background(), o, zap.NewNop(), &progress); err != nil {
		t.Fatalf("train: %v\n%s", err, progress.String())
	}
	m := readMetrics(t, o.Out)
	if m.Network != "mobilenetv2-n" || m.Examples["train"]+m.Examples["val"]+m.Examples["test"] != len(items) {
		t.Errorf("network %s, examples %v: want mobilenetv2-n on %d images", m.Network, m.Examples, len(items))
	}
	model, _, err := ReadModel(filepath.Join(o.Out, "model.elm"))
	if err != nil {
		t.Fatal(err)
	}
	if a := model.Header.Arch; a.InW != 64 || a.InH != 64 || a.InC != 3 {
		t.Errorf("model input %dx%dx%d, want 64x64x3", a.InW, a.InH, a.InC)
	}
	var out bytes.Buffer
	r, err := RunEval(context.Background(), &EvalOptions{Model: filepath.Join(o.Out, "model.elm"), Data: archive, Format: "auto", Split: "all", Backend: "cpu"}, zap.NewNop(), &out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Examples != len(items) || r.Metric != "accuracy" || r.Eval.Classification == nil {
		t.Errorf("eval: %d examples, metric %s: want %d, accuracy", r.Examples, r.Metric, len(items))
	}
	var back EvalResult
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Examples != r.Examples {
		t.Errorf("eval output does not read back: %v", err)
	}

	// A dataset with a class the model does not know: those images are left out by name.
	other := filepath.Join(dir, "other")
	writeDataset(t, other, dataformat.FormatFolders, p, items[:6], data, "")
	if err := os.MkdirAll(filepath.Join(other, "train", "purple"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "train", "purple", "x.png"), data[items[0].ID], 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = RunEval(context.Background(), &EvalOptions{Model: filepath.Join(o.Out, "model.elm"), Data: other, Split: "all", Backend: "cpu"}, zap.NewNop(), &out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Examples != 6 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], `train/purple/x.png: class folder "purple"`) {
		t.Errorf("eval on an unknown class: %d examples, warnings %q", r.Examples, r.Warnings)
	}
}

// TestTrainDataErrors: what cannot train says why.
func TestTrainDataErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		o    TrainOptions
		want string
	}{
		{TrainOptions{Data: filepath.Join(dir, "missing")}, "missing"},
		{TrainOptions{Data: dir}, "no image in a class folder"},
		{TrainOptions{Data: dir, Format: "pascal"}, `format "pascal"`},
	} {
		_, err := RunTrain(context.Background(), quick(&c.o), zap.NewNop(), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one saying %q", c.o, err, c.want)
		}
	}
	// An image over the pixel budget is skipped from its header, with a line.
	p, items, data := colourItems(t, "classify", 8)
	writeDataset(t, filepath.Join(dir, "big"), dataformat.FormatFolders, p, items, data, "")
	if err := os.WriteFile(filepath.Join(dir, "big", "red", "huge.png"), raster.NewC(400, 300, 3).EncodePNG(), 0o644); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	o := quick(&TrainOptions{Data: filepath.Join(dir, "big"), MaxPixels: 48 * 48, Out: filepath.Join(dir, "out-big")})
	if _, err := RunTrain(context.Background(), o, zap.NewNop(), &progress); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "skipping red/huge.png: image has too many pixels") {
		t.Errorf("the huge image is not skipped with its reason:\n%s", progress.String())
	}

	p, items, data = colourItems(t, "detect", 2)
	writeDataset(t, filepath.Join(dir, "det"), dataformat.FormatCOCO, p, items, data, "")
	o = quick(&TrainOptions{Data: filepath.Join(dir, "det"), Backbone: "../nn/weights/testdata/mobilenetv2-035.safetensors"})
	// A backbone on detection data starts the detector's trunk (weights.FromSpec, tested
	// there); these 6 images then stop at the examples check, past the network's start.
	if _, err := RunTrain(context.Background(), o, zap.NewNop(), nil); err == nil || !strings.Contains(err.Error(), "too few examples") {
		t.Errorf("a backbone on detection data: %v, want the detector built and the tiny set refused", err)
	}
	o = quick(&TrainOptions{Data: filepath.Join(dir, "det"), Model: nn.Spec{Family: "mobilenetv2", Size: "n", Input: [2]int{48, 64}}})
	if _, err := RunTrain(context.Background(), o, zap.NewNop(), nil); err == nil || !strings.Contains(err.Error(), "multiple of 32") {
		t.Errorf("input 48x64: %v", err)
	}
}

func zipDir(t *testing.T, root, archive string) {
	t.Helper()
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		w, err := zw.Create(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
