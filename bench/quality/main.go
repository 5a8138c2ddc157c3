// Command quality measures what edgeloop's models reach: full MNIST training against
// the ≥ 99.0 % test accuracy target (LeNet-5's 0.95 % error, LeCun et al. 1998), digit
// scenes against mAP@0.5 ≥ 0.90, and for every drift preset how far each base model
// falls. It trains both models (or reuses them with -reuse), then prints a table.
//
//	go run -tags openblas ./bench/quality -out bench/out/quality
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/retrain"
	"github.com/edgeloop/edgeloop/pkg/train"
)

func main() {
	out := flag.String("out", "bench/out/quality", "directory for the models and results")
	reuse := flag.Bool("reuse", false, "reuse models already trained in -out")
	mnistEpochs := flag.Int("mnist-epochs", 15, "most MNIST epochs")
	sceneEpochs := flag.Int("scene-epochs", 30, "most digit-scene epochs")
	scenes := flag.Int("scenes", 10000, "training scenes")
	flag.Parse()
	log, _ := zap.NewDevelopment()
	ctx := context.Background()

	type job struct {
		name, dataset, metric string
		target                float64
		epochs, limit         int
	}
	jobs := []job{
		{"mnist", "mnist", "test accuracy", 0.99, *mnistEpochs, 0},
		{"scenes", "digit-scenes", "test mAP@0.5", 0.90, *sceneEpochs, *scenes},
	}
	type row struct {
		job     job
		clean   float64
		map5095 float64
		drifts  map[string]float64
	}
	var rows []row
	for _, j := range jobs {
		dir := filepath.Join(*out, j.name)
		model := filepath.Join(dir, "model.elm")
		if _, err := os.Stat(model); !*reuse || err != nil {
			fmt.Fprintf(os.Stderr, "== training %s (%d epochs at most)\n", j.dataset, j.epochs)
			o := &retrain.TrainOptions{Dataset: j.dataset, Out: dir, Limit: j.limit, Backend: "auto",
				Train: train.Config{Epochs: j.epochs, Patience: 8, Seed: 1}}
			if j.name == "scenes" {
				o.Train.LR = 2e-3
			}
			m, err := retrain.RunTrain(ctx, o, log, os.Stderr)
			if err != nil && !errors.Is(err, train.ErrDiverged) {
				fail(err)
			}
			fmt.Fprintf(os.Stderr, "%s: %d epochs (best %d), %.0f s, %.0f img/s on %s\n", j.name, m.EpochsRun, m.BestEpoch, m.Seconds, m.ImagesPerSec, m.Engine)
		}
		r := row{job: j, drifts: map[string]float64{}}
		for _, d := range drift.NamesFor(false) {
			ds := j.dataset
			if d != drift.None {
				ds += ":drift=" + d
			}
			ev, err := retrain.RunEval(ctx, &retrain.EvalOptions{Model: model, Dataset: ds, Split: "test", Backend: "auto", Seed: 7}, log, io.Discard)
			fail(err)
			if d == drift.None {
				r.clean = ev.Headline
				if ev.Eval.Detection != nil {
					r.map5095 = ev.Eval.Detection.MAP5095
				}
			} else {
				r.drifts[d] = ev.Headline
			}
		}
		rows = append(rows, r)
	}

	fmt.Println("\nQuality of the base models (test split; drift: the same test split under each preset)")
	fmt.Println()
	fmt.Println("| model  | metric        | target | clean  | met |")
	fmt.Println("|--------|---------------|--------|--------|-----|")
	for _, r := range rows {
		met := "yes"
		if r.clean < r.job.target {
			met = "NO"
		}
		fmt.Printf("| %-6s | %-13s | %6.2f | %6.4f | %-3s |\n", r.job.name, r.job.metric, r.job.target, r.clean, met)
	}
	for _, r := range rows {
		if r.map5095 > 0 {
			fmt.Printf("\nscenes mAP@[.5:.95]: %.4f\n", r.map5095)
		}
	}
	fmt.Println("\n| drift preset | what changes                                         | mnist acc | drop    | scenes mAP@0.5 | drop    |")
	fmt.Println("|--------------|------------------------------------------------------|-----------|---------|----------------|---------|")
	for _, d := range drift.NamesFor(false)[1:] {
		p, _ := drift.Get(d)
		fmt.Printf("| %-12s | %-52s | %9.4f | %+7.4f | %14.4f | %+7.4f |\n", d, trim(p.Description, 52),
			rows[0].drifts[d], rows[0].drifts[d]-rows[0].clean, rows[1].drifts[d], rows[1].drifts[d]-rows[1].clean)
	}
}

func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench quality:", err)
		os.Exit(1)
	}
}
