package datasets

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/edgeloop/edgeloop/pkg/dataformat"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/train"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// Files is a dataset of the user's own images: a directory or a zip archive in one of
// dataformat's import formats (COCO, YOLO, VOC, class folders).
type Files struct {
	*dataformat.Dataset
	// Path is the directory or archive.
	Path   string
	closer io.Closer
}

// OpenFiles reads the annotations of the dataset at path (a directory, or a .zip) in
// format ("" picks it from the files). Images are read later, by Load.
func OpenFiles(path, format string, o dataformat.ReadOptions) (*Files, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", path, err)
	}
	f := &Files{Path: path}
	var fsys fs.FS
	if st.IsDir() {
		fsys = os.DirFS(path)
	} else {
		zr, err := zip.OpenReader(path)
		if err != nil {
			return nil, fmt.Errorf("dataset %s: want a directory or a zip archive: %w", path, err)
		}
		f.closer, fsys = zr, zr
	}
	if fsys, err = dataformat.Root(fsys); err != nil {
		f.Close()
		return nil, fmt.Errorf("dataset %s: %w", path, err)
	}
	if f.Dataset, err = dataformat.Open(fsys, format, o); err != nil {
		f.Close()
		return nil, fmt.Errorf("dataset %s: %w", path, err)
	}
	if len(f.Entries) == 0 {
		f.Close()
		return nil, fmt.Errorf("dataset %s (%s): no annotated image%s", path, f.Format, firstProblem(f.Problems))
	}
	return f, nil
}

func firstProblem(ps []dataformat.Problem) string {
	if len(ps) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d left out, the first: %s)", len(ps), ps[0])
}

// Close releases the archive.
func (f *Files) Close() error {
	if f.closer != nil {
		return f.closer.Close()
	}
	return nil
}

// String names the dataset in reports: "FORMAT:PATH".
func (f *Files) String() string { return f.Format + ":" + f.Path }

// LoadOptions say how Load prepares the images for a network.
type LoadOptions struct {
	// Arch is the network: each image is decoded to its channels and fitted to its
	// input as it will be served (vision.Fit: letterboxed or stretched), boxes moved
	// with it, so that only input-sized copies are held.
	Arch nn.Arch
	// MaxPixels bounds one image's size, read from its header before it is decoded
	// (0: raster.DefaultMaxPixels).
	MaxPixels int
	// Split is the rule that places the images the dataset puts in no split (zero: the
	// project default, 80/10/10 with val and test capped at 100).
	Split project.SplitSettings
	// Sizes bound each split after splitting (0: all).
	Sizes Sizes
	// Splits, when set, are the only splits read (train, val, test).
	Splits []string
	// Skip, when set, is told of each image left out, as it happens.
	Skip func(dataformat.Problem)
	// Progress, when set, is told how many images are read, every few hundred.
	Progress func(done, total int)
}

// Load reads and prepares every image. An image that cannot be read or decoded (or is
// over the pixel budget) is left out and reported, never an error: Load fails only
// when the context ends. It returns the splits and every image left out, the
// annotation problems of OpenFiles first.
func (f *Files) Load(ctx context.Context, o LoadOptions) (train.Split, []dataformat.Problem, error) {
	var sp train.Split
	skipped := append([]dataformat.Problem(nil), f.Problems...)
	skip := func(p dataformat.Problem) {
		skipped = append(skipped, p)
		if o.Skip != nil {
			o.Skip(p)
		}
	}
	for _, p := range f.Problems {
		if o.Skip != nil {
			o.Skip(p)
		}
	}
	rule := o.Split
	if rule == (project.SplitSettings{}) {
		p := project.Project{}
		p.Defaults()
		rule = p.Split
	}
	index := map[string]int{}
	for i, c := range f.Classes {
		index[c] = i
	}
	// Splits are decided before any image is read, so that a split is the same
	// whichever splits are loaded and whether or not an image decodes.
	counts := map[string]int{}
	for _, e := range f.Entries {
		counts[e.Split]++
	}
	splits := make([]string, len(f.Entries))
	for i, e := range f.Entries {
		if splits[i] = e.Split; splits[i] == "" {
			splits[i] = project.AssignSplit(rule, e.Name, counts)
			counts[splits[i]]++
		}
	}
	for i, e := range f.Entries {
		if err := ctx.Err(); err != nil {
			return sp, skipped, err
		}
		if o.Progress != nil && i > 0 && i%250 == 0 {
			o.Progress(i, len(f.Entries))
		}
		if o.Splits != nil && !slices.Contains(o.Splits, splits[i]) {
			continue
		}
		s, reason := f.sample(e, index, o)
		if reason != "" {
			skip(dataformat.Problem{Path: e.Name, Reason: reason})
			continue
		}
		sp.Add(splits[i], s)
	}
	if o.Progress != nil {
		o.Progress(len(f.Entries), len(f.Entries))
	}
	cut := func(s []train.Sample, n int) []train.Sample {
		if n > 0 && n < len(s) {
			return s[:n]
		}
		return s
	}
	sp.Train, sp.Val, sp.Test = cut(sp.Train, o.Sizes.Train), cut(sp.Val, o.Sizes.Val), cut(sp.Test, o.Sizes.Test)
	return sp, skipped, nil
}

// sample reads one image into a training sample; it returns why it cannot.
func (f *Files) sample(e dataformat.Entry, index map[string]int, o LoadOptions) (train.Sample, string) {
	data, err := e.Read()
	if err != nil {
		return train.Sample{}, strings.TrimPrefix(err.Error(), project.ErrInvalid.Error()+": ")
	}
	im, err := raster.DecodeChannels(data, o.MaxPixels, max(o.Arch.InC, 1))
	if err != nil {
		return train.Sample{}, err.Error()
	}
	s := train.Sample{ID: e.Name, Size: [2]int{im.W, im.H}}
	if f.Task == string(nn.Classify) {
		s.Image, _, _ = vision.Fit(o.Arch, im, nil)
		s.Label = index[e.Labels[0].Class]
		return s, ""
	}
	var boxes []nn.Box
	for _, l := range e.Labels {
		if l.Box == nil {
			continue
		}
		clamp := func(v float32) float32 { return float32(math.Min(1, math.Max(0, float64(v)))) }
		b := nn.Box{Class: index[l.Class], X0: clamp(l.Box.X0), Y0: clamp(l.Box.Y0), X1: clamp(l.Box.X1), Y1: clamp(l.Box.Y1)}
		if b.X1-b.X0 < 1e-3 || b.Y1-b.Y0 < 1e-3 {
			return train.Sample{}, fmt.Sprintf("box of %s (%.3f,%.3f)-(%.3f,%.3f) is empty or outside the image", l.Class, l.Box.X0, l.Box.Y0, l.Box.X1, l.Box.Y1)
		}
		boxes = append(boxes, b)
	}
	s.Image, s.Boxes, _ = vision.Fit(o.Arch, im, boxes)
	return s, ""
}
