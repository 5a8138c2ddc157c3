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

// ModelSpec is the network a training builds, named as the project's `model` setting
// names it: family and size, input [W, H] and channels. The zero value is today's
// network for the task (cnn-classifier-v1, grid-detector-v1).
type ModelSpec struct {
	Family   string `json:"family,omitempty"`
	Size     string `json:"size,omitempty"`
	Input    [2]int `json:"input,omitempty"`
	Channels int    `json:"channels,omitempty"`
}

// DefaultFamilyInput is the input side of a family network trained on the user's
// images when -input is not given (the project model setting's default for
// classification, Edge Impulse's input).
const DefaultFamilyInput = 96

// CheckInput validates a network input: sides multiples of 32 from 64 to 640, 1 or 3
// channels.
func CheckInput(w, h, channels int) error {
	for _, s := range []int{w, h} {
		if s < 64 || s > 640 || s%32 != 0 {
			return fmt.Errorf("input %dx%d: each side a multiple of 32 from 64 to 640", w, h)
		}
	}
	if channels != 1 && channels != 3 {
		return fmt.Errorf("%d channels: want 1 (grey) or 3 (RGB)", channels)
	}
	return nil
}

// registerModelFlags adds -model, -input and -channels.
func registerModelFlags(fs *flag.FlagSet, m *ModelSpec) {
	fs.Func("model", "network FAMILY:SIZE, e.g. mobilenetv2:s (sizes n, s, m; default: today's cnn-classifier-v1 / grid-detector-v1)", func(v string) error {
		f, s, ok := strings.Cut(v, ":")
		if !ok {
			return fmt.Errorf("-model %q: want FAMILY:SIZE, e.g. %s:n", v, nn.MobileNetV2)
		}
		if _, err := nn.Family(f, s, 64, 64, 3, 1); err != nil {
			return err
		}
		m.Family, m.Size = f, s
		return nil
	})
	fs.Func("input", fmt.Sprintf("network input WxH (or one side for a square) of a -model or -backbone network, sides multiples of 32 from 64 to 640 (default %d for your images, the dataset's size for a built-in one)", DefaultFamilyInput), func(v string) error {
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
		return CheckInput(w, h, 3)
	})
	fs.Func("channels", "input channels of a -model or -backbone network: 3 (RGB, default for your images) or 1 (grey)", func(v string) error {
		c, err := strconv.Atoi(v)
		if err != nil || (c != 1 && c != 3) {
			return fmt.Errorf("-channels %q: want 1 or 3", v)
		}
		m.Channels = c
		return nil
	})
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
	// colour is the channels a family network takes by default (3 for the user's
	// images, the dataset's own for a built-in one).
	colour int
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
		return &source{name: spec.String(), task: spec.Task(), classes: spec.ClassNames(), arch: a, spec: spec, mnist: mnistDir, colour: a.InC}, nil
	}
	if format == "auto" {
		format = dataformat.FormatAuto
	}
	f, err := datasets.OpenFiles(data, format, dataformat.ReadOptions{Task: string(task), Classes: classes})
	if err != nil {
		return nil, err
	}
	s := &source{name: f.String(), task: nn.Task(f.Task), classes: f.Classes, files: f, colour: 3, maxPixels: maxPixels}
	if s.task == nn.Detect {
		s.arch = nn.DetectorArch(len(f.Classes))
	} else {
		s.arch = nn.ClassifierArch(len(f.Classes))
	}
	return s, nil
}

// input is the input a family network takes: -input and -channels, else the defaults.
func (s *source) input(m ModelSpec) (w, h, c int) {
	w, h, c = m.Input[0], m.Input[1], m.Channels
	if w == 0 {
		w, h = s.arch.InW, s.arch.InH
		if s.files != nil {
			w, h = DefaultFamilyInput, DefaultFamilyInput
		}
	}
	if c == 0 {
		c = s.colour
	}
	return w, h, c
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
	d, skipped, err := s.files.Load(ctx, datasets.LoadOptions{InW: a.InW, InH: a.InH, InC: a.InC, Sizes: sz, Splits: splits, MaxPixels: s.maxPixels,
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
