package retrain

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/dataformat"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// registerModelFlags adds -model, -input, -channels, -resize, -normalize and -pyramid: the
// project's `model` setting (nn.Spec) in flag form. Left unset, the network is the
// dataset's default.
func registerModelFlags(fs *flag.FlagSet, m *nn.Spec) {
	fs.Func("model", "network FAMILY:SIZE, e.g. mobilenetv2:s (sizes n, s, m; a classifier or, on detection data, the multi-scale detector; default: the dataset's network, for your images today's cnn-classifier-v1 / grid-detector-v1)", func(v string) error {
		f, s, ok := strings.Cut(v, ":")
		if !ok {
			return fmt.Errorf("-model %q: want FAMILY:SIZE, e.g. %s:n", v, nn.MobileNetV2)
		}
		m.Family, m.Size = f, s
		return nil
	})
	fs.Func("input", "network input WxH (or one side for a square) of a -model or -backbone network, sides multiples of 32 from 64 to 640 (default: the project setting's, 96 for classification and 160 for detection on your images; the dataset's size for a built-in one)", func(v string) error {
		ws, hs, ok := strings.Cut(strings.ToLower(v), "x")
		if !ok {
			hs = ws
		}
		w, err1 := strconv.Atoi(ws)
		h, err2 := strconv.Atoi(hs)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("-input %q: want WxH, e.g. 160x160", v)
		}
		m.Input = [2]int{w, h}
		return nil
	})
	fs.Func("channels", "input channels of a -model or -backbone network: 3 (RGB, default for your images) or 1 (grey)", func(v string) error {
		c, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("-channels %q: want 1 or 3", v)
		}
		m.Channels = c
		return nil
	})
	fs.StringVar(&m.Resize, "resize", "", "how images fit a -model or -backbone network's input: letterbox (default) or stretch")
	fs.StringVar(&m.Normalize, "normalize", "", "input normalisation of a -model or -backbone network: none (default) or imagenet (for torchvision's ImageNet weights)")
	fs.StringVar(&m.Pyramid, "pyramid", "", "pyramid of a -model or -backbone detector: p3 (default: strides 8, 16, 32) or p2 (and a stride-4 level, for small objects)")
}

// source is what a training or evaluation reads: a built-in dataset or the user's
// files.
type source struct {
	name    string
	task    nn.Task
	classes []string
	// arch is the dataset's default network for its classes.
	arch  nn.Arch
	files *datasets.Files
	spec  datasets.Spec
	mnist string
	// maxPixels bounds one image of the user's files (0: raster.DefaultMaxPixels).
	maxPixels int
}

func (s *source) Close() {
	if s.files != nil {
		s.files.Close()
	}
}

// openSource opens -data (the user's files, in format) or else the built-in dataset.
// classes, when set (a parent model's, a model being evaluated), are the classes the
// labels must be among.
func openSource(dataset, mnistDir, data, format string, maxPixels int, task nn.Task, classes []string) (*source, error) {
	if data == "" {
		spec, err := datasets.Parse(dataset)
		if err != nil {
			return nil, err
		}
		if task != "" && task != spec.Task() {
			return nil, fmt.Errorf("task %s does not fit dataset %s (a %s dataset)", task, spec, spec.Task())
		}
		a := spec.Arch()
		return &source{name: spec.String(), task: spec.Task(), classes: spec.ClassNames(), arch: a, spec: spec, mnist: mnistDir}, nil
	}
	if format == "auto" {
		format = dataformat.FormatAuto
	}
	f, err := datasets.OpenFiles(data, format, dataformat.ReadOptions{Task: string(task), Classes: classes})
	if err != nil {
		return nil, err
	}
	s := &source{name: f.String(), task: nn.Task(f.Task), classes: f.Classes, files: f, maxPixels: maxPixels}
	if s.task == nn.Detect {
		s.arch = nn.DetectorArch(len(f.Classes))
	} else {
		s.arch = nn.ClassifierArch(len(f.Classes))
	}
	return s, nil
}

// model completes a -model/-backbone choice for this data: the input and channels of
// a built-in dataset's images (MNIST's 28 px is refused by the family), the project
// setting's defaults for the user's images.
func (s *source) model(m nn.Spec) nn.Spec {
	if s.files == nil {
		if m.Input == [2]int{} {
			m.Input = [2]int{s.arch.InW, s.arch.InH}
		}
		if m.Channels == 0 {
			m.Channels = s.arch.InC
		}
	}
	if m.Family == "" {
		m.Family = nn.MobileNetV2
	}
	m.Defaults(s.task)
	return m
}

// load reads the splits for network a; images the data cannot give are reported on
// progress (a line each, with the path) and in the returned warnings.
// splits, when set, are the only splits read from the user's files.
func (s *source) load(ctx context.Context, a nn.Arch, sz datasets.Sizes, splits []string, seed uint64, log *zap.Logger, progress io.Writer) (train.Split, []string, error) {
	if s.files == nil {
		log.Info("loading data", zap.String("dataset", s.name))
		d, err := datasets.LoadFrom(s.spec, datasets.Sources{MNISTDir: s.mnist, Log: log}, sz, seed)
		return d, nil, err
	}
	log.Info("reading images", zap.String("dataset", s.name), zap.Int("images", len(s.files.Entries)),
		zap.Strings("classes", s.classes), zap.String("task", string(s.task)))
	if progress == nil {
		progress = io.Discard
	}
	var warnings []string
	d, skipped, err := s.files.Load(ctx, datasets.LoadOptions{Arch: a, Sizes: sz, Splits: splits, MaxPixels: s.maxPixels,
		Skip: func(p dataformat.Problem) {
			fmt.Fprintf(progress, "skipping %s: %s\n", p.Path, p.Reason)
			log.Warn("image skipped", zap.String("path", p.Path), zap.String("reason", p.Reason))
		},
		Progress: func(done, total int) { fmt.Fprintf(progress, "read %d/%d images\n", done, total) }})
	if err != nil {
		return d, nil, err
	}
	for _, p := range skipped {
		warnings = append(warnings, "skipped "+p.String())
	}
	fmt.Fprintf(progress, "%s: %d classes, train %d, val %d, test %d images, %d skipped\n",
		s.name, len(s.classes), len(d.Train), len(d.Val), len(d.Test), len(skipped))
	return d, warnings, nil
}
