// Command detect measures the multi-scale detector (nn.DetectorFamily) for each family
// size: its weights and multiply-adds, training images/s, one-image inference p50/p99,
// and test mAP@0.5, mAP@[.5:.95] and COCO's small/medium/large AP after a short
// training, on colour scenes (colourscenes: 1–12 shapes and letters of 8 px to most of
// the frame over photographs, partly hidden) or, with -data digits, on the 64×64 grey
// digit scenes
// beside today's grid detector trained the same way (its peer). It is a short
// benchmark: minutes, not the full tables.
//
//	go run ./bench/detect -sizes n -input 160x128 -train 400 -epochs 8
//	go run ./bench/detect -data digits -sizes n -train 2000 -epochs 10
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/evaluate"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/scenes"
	"github.com/edgeloop/edgeloop/pkg/train"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

func main() {
	sizes := flag.String("sizes", "n", "family sizes, comma-separated (n, s, m)")
	input := flag.String("input", "160x128", "network input WxH (multiples of 32); scenes are drawn at this size")
	nTrain := flag.Int("train", 400, "training scenes")
	nTest := flag.Int("test", 100, "test scenes (and as many validation scenes)")
	epochs := flag.Int("epochs", 8, "training epochs")
	batch := flag.Int("batch", 8, "training batch size")
	lr := flag.Float64("lr", 0, "the multi-scale detector's Adam learning rate, cosine schedule (0: nn.Arch.ScratchLR)")
	gridLR := flag.Float64("grid-lr", 3e-3, "the grid detector's learning rate (-data digits)")
	latencyRuns := flag.Int("latency", 30, "one-image inference runs for p50/p99")
	dataName := flag.String("data", "colour", "colour (colour scenes drawn at -input) or digits (64×64 grey digit scenes, with the grid detector as peer)")
	classCount := flag.Int("classes", 8, "classes of the colour scenes")
	peer := flag.Bool("peer", true, "with -data digits, train the grid detector too")
	flag.Parse()
	log, _ := zap.NewDevelopment()
	defer func() { _ = log.Sync() }()
	var w, h int
	if _, err := fmt.Sscanf(*input, "%dx%d", &w, &h); err != nil {
		log.Fatal("bad -input", zap.String("input", *input), zap.Error(err))
	}
	var data train.Split
	var classes []string
	channels, what := 3, "colour scenes"
	archs := func(size string) (nn.Arch, error) {
		return nn.DetectorFamily(nn.MobileNetV2, size, w, h, channels, len(classes))
	}
	none, _ := drift.Get(drift.None)
	switch *dataName {
	case "colour":
		photos := colourscenes.LoadPhotos("", log)
		g, err := colourscenes.New(photos)
		if err != nil {
			log.Fatal("colour scenes", zap.Error(err))
		}
		if photos.Count(colourscenes.SiteHome) == 0 {
			what += " (procedural backgrounds: no photographs installed)"
		} else {
			what += " over photographs"
		}
		gen := func(n int, seed uint64) []train.Sample {
			sc, err := g.Scenes(colourscenes.SceneConfig{W: w, H: h, Classes: *classCount}, n, seed, none)
			if err != nil {
				log.Fatal("colour scenes", zap.Error(err))
			}
			out := make([]train.Sample, len(sc))
			for i, s := range sc {
				out[i] = train.Sample{ID: fmt.Sprintf("colour-%d-%d", seed, i), Image: s.Image, Boxes: s.Boxes}
			}
			return out
		}
		data = train.Split{Train: gen(*nTrain, 1), Val: gen(*nTest/2, 2), Test: gen(*nTest, 3)}
		if classes, err = colourscenes.ClassNames(*classCount); err != nil {
			log.Fatal("classes", zap.Error(err))
		}
	case "digits":
		tr, te, err := mnist.Load("")
		if err != nil {
			log.Fatal("mnist", zap.Error(err))
		}
		gen := func(set *mnist.Set, n int, seed uint64) []train.Sample {
			sc, err := scenes.Generate(set, n, seed, scenes.Config{}, none)
			if err != nil {
				log.Fatal("digit scenes", zap.Error(err))
			}
			return datasets.Scenes(sc, fmt.Sprint(seed))
		}
		data = train.Split{Train: gen(tr, *nTrain, 1), Val: gen(tr, *nTest/2, 2), Test: gen(te, *nTest, 3)}
		classes, channels, what, w, h = datasets.Classes(), 1, "64×64 grey digit scenes", 64, 64
		if *peer {
			*sizes = "grid," + *sizes
		}
		archs = func(size string) (nn.Arch, error) {
			if size == "grid" {
				return nn.DetectorArch(len(classes)), nil
			}
			return nn.DetectorFamily(nn.MobileNetV2, size, w, h, channels, len(classes))
		}
	default:
		log.Fatal("unknown -data (want shapes or digits)", zap.String("data", *dataName))
	}

	fmt.Printf("Multi-scale detector on %s at %dx%d: %d train, %d val, %d test scenes, %d epochs, batch %d, cosine schedule, 2-core CPU (%s)\n\n",
		what, w, h, len(data.Train), len(data.Val), len(data.Test), *epochs, *batch, gorgoniaengine.Name)
	fmt.Println("| network | lr | weights | MACs | train img/s | infer p50 | infer p99 | mAP@0.5 | mAP@[.5:.95] | AP small | AP medium | AP large |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, size := range strings.Split(*sizes, ",") {
		a, err := archs(size)
		if err != nil {
			log.Fatal("detector", zap.Error(err))
		}
		params, macs, _ := a.Cost()
		rate := float32(*lr)
		if len(a.Levels) == 0 {
			rate = float32(*gridLR)
		}
		if rate == 0 {
			rate = a.ScratchLR()
		}
		p, err := nn.InitParams(a, 1)
		if err != nil {
			log.Fatal("init", zap.Error(err))
		}
		start := time.Now()
		res, err := train.Run(context.Background(), a, p, classes, data, train.Config{
			Epochs: *epochs, BatchSize: *batch, LR: rate, Patience: -1, Seed: 1, Augment: augment.None(),
			Progress: func(pr train.Progress) {
				if pr.Done != nil {
					log.Info("epoch", zap.String("size", size), zap.Int("epoch", pr.Epoch), zap.Float64("loss", pr.Done.TrainLoss),
						zap.Float64("val_loss", pr.Done.ValLoss), zap.Float64("val_map50", pr.Done.ValMetric),
						zap.Float64("images_per_sec", pr.Done.ImagesPerSec))
				}
			},
		}, gorgoniaengine.Factory)
		if err != nil {
			log.Fatal("training", zap.String("size", size), zap.Error(err))
		}
		var trainSecs float64
		for _, st := range res.History {
			trainSecs += st.Seconds
		}
		// Training images/s: the epochs' images over their time, validation included.
		ips := float64(len(data.Train)*len(res.History)) / trainSecs
		e, err := gorgoniaengine.New(nn.EngineConfig{Arch: a, Params: res.Params})
		if err != nil {
			log.Fatal("engine", zap.Error(err))
		}
		ev, err := train.Evaluate(e, a, classes, data.Test, 16)
		_ = e.Close()
		if err != nil {
			log.Fatal("evaluate", zap.Error(err))
		}
		p50, p99, err := latency(a, res.Params, classes, data.Test[0].Image, *latencyRuns)
		if err != nil {
			log.Fatal("latency", zap.Error(err))
		}
		d := ev.Detection
		fmt.Printf("| %s | %g | %.2f M | %.0f M | %.1f | %.1f ms | %.1f ms | %.3f | %.3f | %s | %s | %s |\n", a.Name, rate, float64(params)/1e6,
			float64(macs)/1e6, ips, p50, p99, d.MAP50, d.MAP5095, bySize(d, "small"), bySize(d, "medium"), bySize(d, "large"))
		log.Info("size done", zap.String("size", size), zap.Duration("took", time.Since(start)))
	}
	fmt.Println("\nAP by size is mAP@[.5:.95] over COCO's areas (below 32², 32²–96², above 96² pixels of the scene).")
}

// latency is one-image inference p50 and p99 in milliseconds through the predictor the
// agent uses (preprocessing, forward, decoding, NMS).
func latency(a nn.Arch, p *nn.Params, classes []string, im *raster.Image, runs int) (float64, float64, error) {
	pr, err := vision.NewPredictor(a, p, classes, gorgoniaengine.Factory, 1, vision.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer pr.Close()
	ims := []*raster.Image{im}
	var ms []float64
	for i := 0; i < runs+3; i++ {
		t := time.Now()
		if _, err := pr.Predict(context.Background(), ims); err != nil {
			return 0, 0, err
		}
		if i >= 3 { // warm-up
			ms = append(ms, float64(time.Since(t).Microseconds())/1000)
		}
	}
	slices.Sort(ms)
	at := func(q float64) float64 { return ms[min(len(ms)-1, int(math.Ceil(q*float64(len(ms))))-1)] }
	return at(0.5), at(0.99), nil
}

func bySize(d *evaluate.DetectionReport, size string) string {
	for _, s := range d.BySize {
		if s.Size == size {
			if s.GroundTr == 0 {
				return "—"
			}
			return fmt.Sprintf("%.3f", s.MAP5095)
		}
	}
	return "—"
}
