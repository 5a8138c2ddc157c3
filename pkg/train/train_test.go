package train_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/evaluate"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/scenes"
	"github.com/edgeloop/edgeloop/pkg/train"
)

var (
	loadOnce        sync.Once
	trainSet, tests *mnist.Set
	loadErr         error
)

func digits(t *testing.T) (*mnist.Set, *mnist.Set) {
	t.Helper()
	loadOnce.Do(func() { trainSet, tests, loadErr = mnist.Load("") })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return trainSet, tests
}

func none() drift.Preset { d, _ := drift.Get(drift.None); return d }

func run(t *testing.T, a nn.Arch, data train.Split, cfg train.Config) *train.Result {
	t.Helper()
	p, err := nn.InitParams(a, cfg.Seed)
	if err != nil {
		t.Fatal(err)
	}
	res, err := train.Run(context.Background(), a, p, datasets.Classes(), data, cfg, gorgoniaengine.Factory)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func evaluateOn(t *testing.T, a nn.Arch, p *nn.Params, samples []train.Sample) train.Evaluation {
	t.Helper()
	e, err := gorgoniaengine.New(nn.EngineConfig{Arch: a, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ev, err := train.Evaluate(e, a, datasets.Classes(), samples, 64)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestLearnsMNISTFrom5000: 5,000 training digits, 3 epochs, ≥ 95 % on 1,000 test digits.
func TestLearnsMNISTFrom5000(t *testing.T) {
	tr, te := digits(t)
	data := train.Split{
		Train: datasets.Digits(tr, 0, 5000, "train", none(), 1),
		Val:   datasets.Digits(tr, 55000, 500, "val", none(), 1),
	}
	a := nn.ClassifierArch(10)
	res := run(t, a, data, train.Config{Epochs: 3, Seed: 1, Augment: augment.Default()})
	acc := evaluateOn(t, a, res.Params, datasets.Digits(te, 0, 1000, "test", none(), 1)).Headline()
	t.Logf("test accuracy %.4f after %d epochs (%s), train loss %v", acc, len(res.History), res.Engine, res.History)
	if acc < 0.95 {
		t.Fatalf("test accuracy %.4f < 0.95", acc)
	}
	if last := res.History[len(res.History)-1]; last.TrainLoss >= res.History[0].TrainLoss {
		t.Errorf("train loss did not fall: %v", res.History)
	}
}

// TestDetectionBeatsTrivialBaseline trains the grid detector briefly on digit scenes and
// compares it with a baseline that boxes the average digit at the image centre with
// every class.
func TestDetectionBeatsTrivialBaseline(t *testing.T) {
	tr, te := digits(t)
	gen := func(set *mnist.Set, n int, seed uint64) []train.Sample {
		sc, err := scenes.Generate(set, n, seed, scenes.Config{}, none())
		if err != nil {
			t.Fatal(err)
		}
		return datasets.Scenes(sc, "t")
	}
	data := train.Split{Train: gen(tr, 1500, 1), Val: gen(tr, 150, 2)}
	test := gen(te, 300, 3)
	a := nn.DetectorArch(10)
	res := run(t, a, data, train.Config{Epochs: 4, BatchSize: 16, Seed: 1, LR: 2e-3, Augment: augment.None()})
	got := evaluateOn(t, a, res.Params, test).Detection

	var gt [][]nn.Box
	var base [][]nn.Detection
	for _, s := range test {
		gt = append(gt, s.Boxes)
		var ds []nn.Detection
		for c := 0; c < 10; c++ {
			ds = append(ds, nn.Detection{Box: nn.Box{X0: .35, Y0: .3, X1: .65, Y1: .7, Class: c}, Score: .1})
		}
		base = append(base, ds)
	}
	baseline := evaluate.Detection(gt, base, datasets.Classes())
	t.Logf("mAP@0.5 %.3f (mAP@[.5:.95] %.3f) vs trivial baseline %.3f; history %v", got.MAP50, got.MAP5095, baseline.MAP50, res.History)
	if got.MAP50 < 0.2 || got.MAP50 < 5*baseline.MAP50 {
		t.Fatalf("mAP@0.5 %.3f is not clearly above the trivial baseline %.3f", got.MAP50, baseline.MAP50)
	}
}

func tiny(t *testing.T, n int, randomLabels bool) []train.Sample {
	tr, _ := digits(t)
	s := datasets.Digits(tr, 0, n, "tiny", none(), 1)
	if randomLabels {
		r := rand.New(rand.NewPCG(5, 5))
		for i := range s {
			s[i].Label = r.IntN(10)
		}
	}
	return s
}

func TestRefusesFewerThanTenExamples(t *testing.T) {
	a := nn.ClassifierArch(10)
	p, _ := nn.InitParams(a, 1)
	_, err := train.Run(context.Background(), a, p, datasets.Classes(), train.Split{Train: tiny(t, 9, false)}, train.Config{}, gorgoniaengine.Factory)
	if !errors.Is(err, train.ErrTooFew) {
		t.Fatalf("9 examples: %v, want ErrTooFew", err)
	}
}

// TestEarlyStoppingAndOverfitting: labels that cannot be learned make val loss rise
// while train loss falls; the training stops early, flags overfitting and returns the
// weights of its best epoch.
func TestEarlyStoppingAndOverfitting(t *testing.T) {
	all := tiny(t, 260, true)
	data := train.Split{Train: all[:200], Val: all[200:]}
	a := nn.ClassifierArch(10)
	res := run(t, a, data, train.Config{Epochs: 25, Patience: 3, Seed: 3, LR: 3e-3, BatchSize: 32, Augment: augment.None()})
	t.Logf("best %d of %d epochs, overfitting from %d; %+v", res.BestEpoch, len(res.History), res.OverfitFrom, res.History)
	if !res.StoppedEarly || len(res.History) >= 25 {
		t.Fatalf("did not stop early: %d epochs", len(res.History))
	}
	if len(res.History)-res.BestEpoch != 3 {
		t.Errorf("stopped %d epochs after the best, want patience 3", len(res.History)-res.BestEpoch)
	}
	if !res.Overfitting {
		t.Errorf("overfitting not flagged: %+v", res.History)
	}
	// The returned weights are the best epoch's: their val loss is the minimum seen.
	e, _ := gorgoniaengine.New(nn.EngineConfig{Arch: a, Params: res.Params})
	defer e.Close()
	loss, _, err := train.Validate(e, a, datasets.Classes(), data.Val, 64, nil)
	if err != nil {
		t.Fatal(err)
	}
	best := res.History[res.BestEpoch-1].ValLoss
	if math.Abs(loss-best) > 1e-4 {
		t.Fatalf("returned weights have val loss %.5f, best epoch had %.5f", loss, best)
	}
}

// TestDivergenceKeepsLastGoodWeights: an absurd learning rate makes the loss NaN or
// infinite; the training stops with ErrDiverged and returns finite weights.
func TestDivergenceKeepsLastGoodWeights(t *testing.T) {
	all := tiny(t, 120, false)
	a := nn.ClassifierArch(10)
	p, _ := nn.InitParams(a, 1)
	res, err := train.Run(context.Background(), a, p, datasets.Classes(), train.Split{Train: all[:100], Val: all[100:]},
		train.Config{Epochs: 5, LR: 1e9, BatchSize: 20, Augment: augment.None()}, gorgoniaengine.Factory)
	if !errors.Is(err, train.ErrDiverged) {
		t.Fatalf("err %v, want ErrDiverged", err)
	}
	if res == nil || res.Params.CheckFinite() != nil {
		t.Fatalf("no finite weights kept: %v", res)
	}
	t.Logf("%v", err)
}

// TestSkipsBadExamples: broken images and unknown classes are left out with a reason;
// the training goes on.
func TestSkipsBadExamples(t *testing.T) {
	all := tiny(t, 60, false)
	all[3].Image = nil
	all[7].Label = 42
	all[9].Image = &raster.Image{W: 28, H: 28, Pix: make([]float32, 10)}
	all[11].Image = all[11].Image.Clone()
	all[11].Image.Pix[5] = float32(math.NaN())
	a := nn.ClassifierArch(10)
	res := run(t, a, train.Split{Train: all[:50], Val: all[50:]}, train.Config{Epochs: 1, Augment: augment.None()})
	if len(res.Skipped) != 4 || res.Examples.Train != 46 {
		t.Fatalf("skipped %+v, trained on %d", res.Skipped, res.Examples.Train)
	}
}

func TestImbalanceWarning(t *testing.T) {
	all := tiny(t, 400, false)
	var skewed []train.Sample
	ones := 0
	for _, s := range all {
		if s.Label == 1 {
			ones++
			skewed = append(skewed, s, s, s, s, s)
		} else if s.Label == 0 || ones%3 == 0 {
			skewed = append(skewed, s)
		}
	}
	res := run(t, nn.ClassifierArch(10), train.Split{Train: skewed, Val: all[:20]}, train.Config{Epochs: 1, Augment: augment.None()})
	found := false
	for _, w := range res.Warnings {
		found = found || len(w) > 15 && w[:15] == "class imbalance"
	}
	if !found {
		t.Fatalf("no imbalance warning: %v", res.Warnings)
	}
}

func TestReproducibleFromSeed(t *testing.T) {
	all := tiny(t, 160, false)
	data := train.Split{Train: all[:128], Val: all[128:]}
	a := nn.ClassifierArch(10)
	cfg := train.Config{Epochs: 2, Seed: 11, BatchSize: 32, Augment: augment.Default()}
	r1, r2 := run(t, a, data, cfg), run(t, a, data, cfg)
	for i := range r1.History {
		if r1.History[i].TrainLoss != r2.History[i].TrainLoss || r1.History[i].ValLoss != r2.History[i].ValLoss {
			t.Fatalf("epoch %d differs: %+v vs %+v", i+1, r1.History[i], r2.History[i])
		}
	}
}

// TestFreezeBN: with FreezeBN the training keeps batch norm's running statistics (the
// pretrained ones when fine-tuning); without, it moves them.
func TestFreezeBN(t *testing.T) {
	all := tiny(t, 60, false)
	data := train.Split{Train: all[:40], Val: all[40:]}
	a := nn.Arch{Name: "bn", Task: nn.Classify, InC: 1, InH: 28, InW: 28, Classes: 10, HeadFrom: 5, Layers: []nn.Layer{
		{Kind: nn.Conv, Out: 4, K: 3, Pad: 1, NoBias: true}, {Kind: nn.BatchNorm}, {Kind: nn.ReLU}, {Kind: nn.MaxPool},
		{Kind: nn.Flatten}, {Kind: nn.Dense, Out: 10},
	}}
	for _, freeze := range []bool{true, false} {
		res := run(t, a, data, train.Config{Epochs: 1, Seed: 2, BatchSize: 20, FreezeBN: freeze, Augment: augment.None()})
		mean, variance := res.Params.Values[3], res.Params.Values[4] // conv w, bn γ, β, mean, var
		kept := slices.Equal(mean, make([]float32, 4)) && slices.Equal(variance, []float32{1, 1, 1, 1})
		if kept != freeze {
			t.Errorf("FreezeBN %v: running mean %v, variance %v", freeze, mean, variance)
		}
	}
}

// TestEMAKeepsTheAverage: with Config.EMA the weights kept are the moving average,
// which lags behind the raw weights (nearer the start), and a decay outside [0, 1) is
// refused.
func TestEMAKeepsTheAverage(t *testing.T) {
	all := tiny(t, 160, false)
	data := train.Split{Train: all[:128], Val: all[128:]}
	a := nn.ClassifierArch(10)
	init, err := nn.InitParams(a, 3)
	if err != nil {
		t.Fatal(err)
	}
	dist := func(p *nn.Params) float64 {
		var s float64
		for i, v := range p.Values {
			for j, x := range v {
				d := float64(x - init.Values[i][j])
				s += d * d
			}
		}
		return math.Sqrt(s)
	}
	cfg := train.Config{Epochs: 1, Seed: 3, BatchSize: 16, Augment: augment.None(), Schedule: "constant"}
	raw := run(t, a, data, cfg)
	cfg.EMA = 0.9
	avg := run(t, a, data, cfg)
	if dr, da := dist(raw.Params), dist(avg.Params); !(da > 0 && da < 0.95*dr) {
		t.Fatalf("the average moved %.4f from the start, the raw weights %.4f", da, dr)
	}
	cfg.EMA = 1
	if _, err := train.Run(context.Background(), a, init, datasets.Classes(), data, cfg, gorgoniaengine.Factory); err == nil {
		t.Fatal("an EMA decay of 1 was accepted")
	}
}

// TestKeepLastRunsEveryEpoch: the overfitting setup that stops early keeps, with
// KeepLast, training to the last epoch and returns that epoch's weights (their val loss
// is the last one's, above the minimum seen).
func TestKeepLastRunsEveryEpoch(t *testing.T) {
	all := tiny(t, 260, true)
	data := train.Split{Train: all[:200], Val: all[200:]}
	a := nn.ClassifierArch(10)
	res := run(t, a, data, train.Config{Epochs: 12, Patience: 3, Seed: 3, LR: 3e-3, BatchSize: 32, Augment: augment.None(), KeepLast: true})
	if res.StoppedEarly || len(res.History) != 12 || res.BestEpoch != 12 {
		t.Fatalf("KeepLast: %d epochs, kept epoch %d, stopped early %v", len(res.History), res.BestEpoch, res.StoppedEarly)
	}
	e, _ := gorgoniaengine.New(nn.EngineConfig{Arch: a, Params: res.Params})
	defer e.Close()
	loss, _, err := train.Validate(e, a, datasets.Classes(), data.Val, 64, nil)
	if err != nil {
		t.Fatal(err)
	}
	last, lowest := res.History[11].ValLoss, res.History[0].ValLoss
	for _, h := range res.History {
		lowest = min(lowest, h.ValLoss)
	}
	if math.Abs(loss-last) > 1e-4 || !(last > lowest) {
		t.Fatalf("returned weights have val loss %.5f, the last epoch %.5f, the lowest %.5f", loss, last, lowest)
	}
}
