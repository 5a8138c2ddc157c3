// Package datasets names the built-in data edgeloop trains and evaluates on: "mnist"
// (classification, 28×28 digits), "digit-scenes" (detection, 64×64 canvases with 1–4
// digits), "colour-objects" (classification, colour objects over photographs, 96×96 by
// default) and "colour-scenes" (detection, colour scenes of many objects at many scales,
// 320×240 by default), each optionally under a drift preset and, for the colour ones,
// at another size or number of classes, and for colour scenes with another number of
// objects: "mnist:drift=rotation", "digit-scenes:drift=blur",
// "colour-scenes:size=640x480,classes=12,drift=low-light",
// "colour-scenes:size=640x480,objects=50-100". Digit train data always comes
// from MNIST's train digits and test data from its test digits; colour splits are drawn
// from separate random streams of the seed. Files is the user's own dataset: a directory
// or a zip in COCO, YOLO, VOC or class folders.
package datasets

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/scenes"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// Names of the built-in datasets.
const (
	MNIST         = "mnist"
	DigitScenes   = "digit-scenes"
	ColourObjects = "colour-objects"
	ColourScenes  = "colour-scenes"
)

// Spec names a dataset and how much of it to use.
type Spec struct {
	Name  string
	Drift string
	// W and H are a colour dataset's image size (0: its default, 96×96 for
	// colour-objects, 320×240 for colour-scenes).
	W, H int
	// Classes is a colour dataset's number of classes (0: 8).
	Classes int
	// MinObjects and MaxObjects bound a colour scene's objects (both 0: the generator's
	// default, 1–12; at most 100).
	MinObjects, MaxObjects int
}

// String is the spec in its flag form.
func (s Spec) String() string {
	var opts []string
	if s.W > 0 {
		opts = append(opts, fmt.Sprintf("size=%dx%d", s.W, s.H))
	}
	if s.Classes > 0 {
		opts = append(opts, fmt.Sprintf("classes=%d", s.Classes))
	}
	if s.MaxObjects > 0 {
		opts = append(opts, fmt.Sprintf("objects=%d-%d", s.MinObjects, s.MaxObjects))
	}
	if s.Drift != "" && s.Drift != drift.None {
		opts = append(opts, "drift="+s.Drift)
	}
	if len(opts) == 0 {
		return s.Name
	}
	return s.Name + ":" + strings.Join(opts, ",")
}

// Parse reads a dataset name with its options: "mnist", "digit-scenes:drift=NAME",
// "colour-objects:size=WxH,classes=N,drift=NAME", "colour-scenes:…" (which also takes
// objects=MIN-MAX or objects=N, objects per scene, up to 100). Digit datasets take digit
// drift presets, colour datasets colour ones (drift.NamesFor).
func Parse(v string) (Spec, error) {
	name, opts, _ := strings.Cut(v, ":")
	s := Spec{Name: name}
	colour := name == ColourObjects || name == ColourScenes
	if name != MNIST && name != DigitScenes && !colour {
		return s, fmt.Errorf("dataset %q: want mnist, digit-scenes, colour-objects or colour-scenes, optionally with :drift=NAME", v)
	}
	if opts == "" {
		return s, nil
	}
	for _, opt := range strings.Split(opts, ",") {
		k, val, ok := strings.Cut(opt, "=")
		switch {
		case ok && k == "drift":
			p, err := drift.Get(val)
			if err != nil {
				return s, fmt.Errorf("dataset %q: %w", v, err)
			}
			if p.Name != drift.None && p.Colour != colour {
				return s, fmt.Errorf("dataset %q: drift %s is for %s data; %s takes %v", v, val, kind(p.Colour), name, drift.NamesFor(colour))
			}
			s.Drift = val
		case ok && k == "size" && colour:
			ws, hs, _ := strings.Cut(val, "x")
			w, errW := strconv.Atoi(ws)
			h, errH := strconv.Atoi(hs)
			least := 16
			if name == ColourScenes {
				least = 64
			}
			if errW != nil || errH != nil || w < least || h < least || w > 4096 || h > 4096 {
				return s, fmt.Errorf("dataset %q: size %q, want WxH with sides %d–4096", v, val, least)
			}
			s.W, s.H = w, h
		case ok && k == "classes" && colour:
			n, err := strconv.Atoi(val)
			if err != nil {
				return s, fmt.Errorf("dataset %q: classes %q is no number", v, val)
			}
			if _, err := colourscenes.ClassNames(n); err != nil {
				return s, fmt.Errorf("dataset %q: %w", v, err)
			}
			s.Classes = n
		case ok && k == "objects" && name == ColourScenes:
			los, his, isRange := strings.Cut(val, "-")
			if !isRange {
				his = los
			}
			lo, errLo := strconv.Atoi(los)
			hi, errHi := strconv.Atoi(his)
			if errLo != nil || errHi != nil || lo < 0 || hi < max(lo, 1) || hi > 100 {
				return s, fmt.Errorf("dataset %q: objects %q, want MIN-MAX or N objects per scene with 0 <= MIN <= MAX, 1 <= MAX <= 100", v, val)
			}
			s.MinObjects, s.MaxObjects = lo, hi
		default:
			want := "drift=NAME"
			switch {
			case name == ColourScenes:
				want = "drift=NAME, size=WxH, classes=N or objects=MIN-MAX"
			case colour:
				want = "drift=NAME, size=WxH or classes=N"
			}
			return s, fmt.Errorf("dataset %q: unknown option %q (want %s)", v, opt, want)
		}
	}
	return s, nil
}

func kind(colour bool) string {
	if colour {
		return "colour"
	}
	return "digit"
}

// Colour reports whether the dataset is made of colour images.
func (s Spec) Colour() bool { return s.Name == ColourObjects || s.Name == ColourScenes }

// Task is what the dataset trains.
func (s Spec) Task() nn.Task {
	if s.Name == DigitScenes || s.Name == ColourScenes {
		return nn.Detect
	}
	return nn.Classify
}

// Size is the dataset's image size.
func (s Spec) Size() (w, h int) {
	switch {
	case s.W > 0:
		return s.W, s.H
	case s.Name == ColourObjects:
		return 96, 96
	case s.Name == ColourScenes:
		return 320, 240
	case s.Name == DigitScenes:
		return 64, 64
	}
	return 28, 28
}

// Arch is the default network for the dataset: for colour objects the smallest
// MobileNetV2 at the image size (sides multiples of 32; otherwise the small CNN on 3
// channels), for colour scenes the grid detector on 3 channels at the image size.
func (s Spec) Arch() nn.Arch {
	classes := len(s.ClassNames())
	w, h := s.Size()
	switch s.Name {
	case ColourObjects:
		if a, err := nn.Family(nn.MobileNetV2, "n", w, h, 3, classes); err == nil {
			return a
		}
		a := nn.ClassifierArch(classes)
		a.InC, a.InW, a.InH = 3, w, h
		return a
	case ColourScenes:
		a := nn.DetectorArch(classes)
		a.InC, a.InW, a.InH = 3, w, h
		return a
	case DigitScenes:
		return nn.DetectorArch(10)
	}
	return nn.ClassifierArch(10)
}

// Model is the model setting of a project seeded from the dataset: MobileNetV2 n at
// 96×96 RGB, letterboxed, for colour objects; nil (the built-in network of the task)
// for the others (a colour-scenes project that wants the detector family says so in
// its own setting: from scratch it trains for long on a CPU).
func (s Spec) Model() *nn.Spec {
	if s.Name != ColourObjects {
		return nil
	}
	return &nn.Spec{Family: nn.MobileNetV2, Size: "n", Input: [2]int{96, 96}, Channels: 3, Resize: nn.Letterbox, Normalize: nn.NormNone}
}

// SceneConfig lays out the scenes of colour-scenes: its size, classes and objects per
// scene.
func (s Spec) SceneConfig() colourscenes.SceneConfig {
	w, h := s.Size()
	return colourscenes.SceneConfig{W: w, H: h, Classes: len(s.ClassNames()), MinObjects: s.MinObjects, MaxObjects: s.MaxObjects}
}

// Scenes makes n colour scenes of the spec with generator g from seed under the drift d
// (colourscenes.Generator.Scenes), and refuses, naming split and the scene, when a scene
// holds fewer objects than the spec's minimum because the others fitted nowhere (too
// many objects asked for the scene size): a spec asking for what cannot fit gets an
// error, not quietly thinner scenes. The default 1–12 objects always fit.
func (s Spec) Scenes(g *colourscenes.Generator, n int, seed uint64, d drift.Preset, split string) ([]colourscenes.Scene, error) {
	sc, err := g.Scenes(s.SceneConfig(), n, seed, d)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", s, err)
	}
	least := s.SceneConfig().LeastObjects()
	w, h := s.Size()
	for i, scene := range sc {
		if len(scene.Boxes) < least {
			return nil, fmt.Errorf("dataset %s: %s scene %d (%dx%d): %d of the %d objects asked placed, fewer than the minimum %d (the others fit nowhere at that size: ask for fewer objects or a larger size)",
				s, split, i, w, h, len(scene.Boxes), len(scene.Boxes)+scene.Dropped, least)
		}
	}
	return sc, nil
}

// ClassNames are the dataset's classes: the digits "0"…"9", or the first N of the
// colour catalogue (colourscenes.Catalogue).
func (s Spec) ClassNames() []string {
	if !s.Colour() {
		return Classes()
	}
	n := s.Classes
	if n == 0 {
		n = 8
	}
	names, err := colourscenes.ClassNames(n)
	if err != nil {
		return nil // Parse refuses such a spec
	}
	return names
}

// Mirroring is the mirror setting of a project seeded from the dataset: the classes a
// flip must never mirror, should the project turn flips on. Digits are never mirrored
// (a mirrored 2 is no 2); of the colour catalogue, the letters are not and the shapes
// may be (colourscenes.MirrorSafe). No dataset has mirror pairs.
func (s Spec) Mirroring() augment.Mirroring {
	var m augment.Mirroring
	for _, c := range s.ClassNames() {
		if !s.Colour() || !colourscenes.MirrorSafe(c) {
			m.Never = append(m.Never, c)
		}
	}
	return m
}

// Classes are the digit names "0"…"9".
func Classes() []string {
	return []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
}

// Sizes bound each split; 0 means the default.
type Sizes struct {
	// Train examples (mnist default 55,000; digit-scenes default 10,000; colour 2,000).
	Train int
	// Val examples (default 5,000 for mnist, 500 for digit scenes, 200 for colour).
	Val int
	// Test examples (default 10,000 for mnist, 1,000 for digit scenes, 500 for colour).
	Test int
}

// Sources says where the data comes from.
type Sources struct {
	// MNISTDir overrides where the MNIST files are (see mnist.FindDir).
	MNISTDir string
	// PhotoDir overrides where the colour backgrounds are (see colourscenes.PhotoDir).
	PhotoDir string
	// Log receives the colour generator's word on its backgrounds (nil: none).
	Log *zap.Logger
}

// Load builds the splits. Seed fixes the scenes and the drift's randomness.
func Load(s Spec, mnistDir string, sz Sizes, seed uint64) (train.Split, error) {
	return LoadFrom(s, Sources{MNISTDir: mnistDir}, sz, seed)
}

// LoadFrom builds the splits from the given sources. Seed fixes the scenes, the colour
// images and the drift's randomness.
func LoadFrom(s Spec, src Sources, sz Sizes, seed uint64) (train.Split, error) {
	d, err := drift.Get(s.Drift)
	if err != nil {
		return train.Split{}, err
	}
	if s.Colour() {
		g, err := colourscenes.New(colourscenes.LoadPhotos(src.PhotoDir, src.Log, colourscenes.SiteOf(d)))
		if err != nil {
			return train.Split{}, err
		}
		return LoadColour(g, s, sz, seed, d)
	}
	trainSet, testSet, err := mnist.Load(src.MNISTDir)
	if err != nil {
		return train.Split{}, err
	}
	if s.Name == DigitScenes {
		return loadScenes(trainSet, testSet, d, sz, seed)
	}
	return loadMNIST(trainSet, testSet, d, sz, seed), nil
}

func loadMNIST(trainSet, testSet *mnist.Set, d drift.Preset, sz Sizes, seed uint64) train.Split {
	const held = 5000 // the last 5,000 train digits are the validation pool
	nTrain := min(pick(sz.Train, trainSet.Len()-held), trainSet.Len()-held)
	nVal := min(pick(sz.Val, held), held)
	nTest := min(pick(sz.Test, testSet.Len()), testSet.Len())
	var sp train.Split
	sp.Train = Digits(trainSet, 0, nTrain, "train", d, seed)
	sp.Val = Digits(trainSet, trainSet.Len()-held, nVal, "val", d, seed+1)
	sp.Test = Digits(testSet, 0, nTest, "test", d, seed+2)
	return sp
}

// Digits turns n MNIST digits from index start into classification samples under d.
func Digits(set *mnist.Set, start, n int, tag string, d drift.Preset, seed uint64) []train.Sample {
	out := make([]train.Sample, 0, n)
	for i := start; i < start+n && i < set.Len(); i++ {
		im := raster.FromBytes(mnist.Side, mnist.Side, set.Images[i])
		if d.Name != drift.None {
			im = d.Classification(im, rand.New(rand.NewPCG(seed, uint64(i))))
		}
		out = append(out, train.Sample{ID: fmt.Sprintf("mnist-%s-%d", tag, i), Image: im, Label: int(set.Labels[i])})
	}
	return out
}

func loadScenes(trainSet, testSet *mnist.Set, d drift.Preset, sz Sizes, seed uint64) (train.Split, error) {
	var sp train.Split
	for _, part := range []struct {
		set  *mnist.Set
		n    int
		seed uint64
		tag  string
		dst  *[]train.Sample
	}{
		{trainSet, pick(sz.Train, 10000), seed, "train", &sp.Train},
		{trainSet, pick(sz.Val, 500), seed + 1<<32, "val", &sp.Val},
		{testSet, pick(sz.Test, 1000), seed + 2<<32, "test", &sp.Test},
	} {
		sc, err := scenes.Generate(part.set, part.n, part.seed, scenes.Config{}, d)
		if err != nil {
			return sp, err
		}
		*part.dst = Scenes(sc, part.tag)
	}
	return sp, nil
}

// LoadColour builds a colour dataset's splits with generator g: train, val and test each
// from its own random stream of seed, under the drift d.
func LoadColour(g *colourscenes.Generator, s Spec, sz Sizes, seed uint64, d drift.Preset) (train.Split, error) {
	w, h := s.Size()
	classes := len(s.ClassNames())
	var sp train.Split
	for _, part := range []struct {
		n    int
		seed uint64
		tag  string
		dst  *[]train.Sample
	}{
		{pick(sz.Train, 2000), seed, "train", &sp.Train},
		{pick(sz.Val, 200), seed + 1<<32, "val", &sp.Val},
		{pick(sz.Test, 500), seed + 2<<32, "test", &sp.Test},
	} {
		if s.Name == ColourObjects {
			cls, err := g.Classification(colourscenes.ClassifyConfig{W: w, H: h, Classes: classes}, part.n, part.seed, d)
			if err != nil {
				return sp, fmt.Errorf("dataset %s: %w", s, err)
			}
			out := make([]train.Sample, len(cls))
			for i, c := range cls {
				out[i] = train.Sample{ID: fmt.Sprintf("colour-%s-%d", part.tag, i), Image: c.Image, Label: c.Label}
			}
			*part.dst = out
			continue
		}
		sc, err := s.Scenes(g, part.n, part.seed, d, part.tag)
		if err != nil {
			return sp, err
		}
		out := make([]train.Sample, len(sc))
		for i, c := range sc {
			out[i] = train.Sample{ID: fmt.Sprintf("colour-scene-%s-%d", part.tag, i), Image: c.Image, Boxes: c.Boxes}
		}
		*part.dst = out
	}
	return sp, nil
}

// Scenes turns generated scenes into detection samples.
func Scenes(sc []scenes.Scene, tag string) []train.Sample {
	out := make([]train.Sample, len(sc))
	for i, s := range sc {
		out[i] = train.Sample{ID: fmt.Sprintf("scene-%s-%d", tag, i), Image: s.Image, Boxes: s.Boxes}
	}
	return out
}

// pick is v when set, else def.
func pick(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
