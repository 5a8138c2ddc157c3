// Package datasets names the built-in data edgeloop trains and evaluates on: "mnist"
// (classification, 28×28 digits) and "digit-scenes" (detection, 64×64 canvases with 1–4
// digits), each optionally under a drift preset: "mnist:drift=rotation",
// "digit-scenes:drift=blur". Train data always comes from MNIST's train digits and test
// data from its test digits.
package datasets

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/scenes"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// Names of the built-in datasets.
const (
	MNIST       = "mnist"
	DigitScenes = "digit-scenes"
)

// Spec names a dataset and how much of it to use.
type Spec struct {
	Name  string
	Drift string
}

// String is the spec in its flag form.
func (s Spec) String() string {
	if s.Drift == "" || s.Drift == drift.None {
		return s.Name
	}
	return s.Name + ":drift=" + s.Drift
}

// Parse reads "mnist", "digit-scenes", "mnist:drift=NAME", "digit-scenes:drift=NAME".
func Parse(v string) (Spec, error) {
	name, opts, _ := strings.Cut(v, ":")
	s := Spec{Name: name}
	if name != MNIST && name != DigitScenes {
		return s, fmt.Errorf("dataset %q: want mnist or digit-scenes, optionally with :drift=NAME", v)
	}
	if opts != "" {
		k, val, ok := strings.Cut(opts, "=")
		if !ok || k != "drift" {
			return s, fmt.Errorf("dataset %q: unknown option %q (want drift=NAME)", v, opts)
		}
		if _, err := drift.Get(val); err != nil {
			return s, fmt.Errorf("dataset %q: %w", v, err)
		}
		s.Drift = val
	}
	return s, nil
}

// Task is what the dataset trains.
func (s Spec) Task() nn.Task {
	if s.Name == DigitScenes {
		return nn.Detect
	}
	return nn.Classify
}

// Arch is the default network for the dataset.
func (s Spec) Arch() nn.Arch {
	if s.Task() == nn.Detect {
		return nn.DetectorArch(10)
	}
	return nn.ClassifierArch(10)
}

// Classes are the digit names "0"…"9".
func Classes() []string {
	return []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
}

// Sizes bound each split; 0 means the default.
type Sizes struct {
	// Train examples (mnist default 55,000; digit-scenes default 10,000).
	Train int
	// Val examples (default 5,000 for mnist, 500 for scenes).
	Val int
	// Test examples (default 10,000 for mnist, 1,000 for scenes).
	Test int
}

// Load builds the splits. Seed fixes the scenes and the drift's randomness.
func Load(s Spec, mnistDir string, sz Sizes, seed uint64) (train.Split, error) {
	trainSet, testSet, err := mnist.Load(mnistDir)
	if err != nil {
		return train.Split{}, err
	}
	d, err := drift.Get(s.Drift)
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
