package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/backend"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/retrain"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// siteAdaptationMain runs -bn-family: on colour presets (-drift a comma list of
// them) colourSiteAdaptation, on a digit preset siteAdaptation; it prints the table.
func siteAdaptationMain(ctx context.Context, o options, log *zap.Logger) error {
	var err error
	if o.bnFrameList, err = positiveInts(o.bnFrames); err != nil {
		return fmt.Errorf("-bn-frames: %w", err)
	}
	be, err := backend.Select("auto", log)
	if err != nil {
		return err
	}
	presets, colour, err := colourPresets(o.drift)
	if err != nil {
		return err
	}
	var t string
	if colour {
		if o.colourGen, err = colourGenerator(presets, log); err != nil {
			return err
		}
		t, err = colourSiteAdaptation(ctx, o, presets, be, log)
	} else {
		var dir string
		if dir, err = mnist.FindDir(o.mnistDir); err != nil {
			return err
		}
		trainSet, testSet, err := mnist.Load(dir)
		if err != nil {
			return err
		}
		t, err = siteAdaptation(ctx, o, trainSet, testSet, be)
	}
	if err != nil {
		return err
	}
	fmt.Print(t)
	return nil
}

// positiveInts parses a comma list of counts of 1 or more.
func positiveInts(list string) ([]int, error) {
	var out []int
	for _, f := range config.SplitList(list) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a count of 1 or more", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q: no count", list)
	}
	return out, nil
}

// siteAdaptation measures batch norm re-estimation (train.AdaptBN) at zero labels:
// per seed, a MobileNetV2 family member of size o.bnFamily (32×32 grey) is trained
// from scratch on the clean seed digits, then its statistics are re-estimated on
// the largest of o.bnFrameList unlabelled frames of the drifted stream; the table compares the accuracy
// on the drifted and the clean test digits before and after.
func siteAdaptation(ctx context.Context, o options, trainSet, testSet *mnist.Set, be backend.Choice) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nSite adaptation: %s-%s (32×32 grey) trained on %d clean digits, batch norm statistics re-estimated on %d unlabelled drifted frames "+
		"(train.AdaptBN); accuracy on %d test digits, drifted (%s) and clean\n\n", nn.MobileNetV2, o.bnFamily, o.seedExamples, slices.Max(o.bnFrameList), o.test, o.drift)
	fmt.Fprintf(&b, "| seed | drifted, before | drifted, after | clean, before | clean, after |\n| ---: | ---: | ---: | ---: | ---: |\n")
	var sums [4]float64
	for seed := uint64(1); seed <= uint64(o.seeds); seed++ {
		a, err := nn.Family(nn.MobileNetV2, o.bnFamily, 32, 32, 1, 10)
		if err != nil {
			return "", err
		}
		sc, err := newScenario(ctx, o, trainSet, testSet, seed, be, false)
		if err != nil {
			return "", err
		}
		sc.arch = a
		init, err := nn.InitParams(a, seed)
		if err != nil {
			return "", err
		}
		cfg := retrain.TrainConfig(sc.project, false, seed)
		res, err := train.Run(ctx, a, init, sc.project.Classes, sc.data, cfg, be.Factory)
		if err != nil {
			return "", fmt.Errorf("seed %d: %s: %w", seed, a.Name, err)
		}
		var ims []*raster.Image
		for _, s := range streamChunk(sc, sc.from, slices.Max(o.bnFrameList)) {
			ims = append(ims, s.Image)
		}
		adapted, err := train.AdaptBN(ctx, a, res.Params, ims, 32, be.Factory)
		if err != nil {
			return "", err
		}
		var accs [4]float64
		for i, c := range []struct {
			p   *nn.Params
			set []train.Sample
		}{{res.Params, sc.test}, {adapted, sc.test}, {res.Params, sc.clean}, {adapted, sc.clean}} {
			if accs[i], err = sc.accuracyOn(c.p, c.set); err != nil {
				return "", err
			}
			sums[i] += accs[i]
		}
		fmt.Fprintf(&b, "| %d | %.3f | %.3f | %.3f | %.3f |\n", seed, accs[0], accs[1], accs[2], accs[3])
	}
	n := float64(o.seeds)
	fmt.Fprintf(&b, "| mean | %.3f | %.3f | %.3f | %.3f |\n", sums[0]/n, sums[1]/n, sums[2]/n, sums[3]/n)
	return b.String(), nil
}
