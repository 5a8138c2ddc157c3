// Command loop measures what the loop buys: on a drift scenario, the accuracy on a
// held-out drifted test set after each iteration of 50 corrected examples, for the edge
// agent's uncertainty strategies against random sampling at the same label budget, over
// several seeds. Each run uses the product's own parts — the agent's sampler
// (pkg/sampling, near-duplicate suppression included), the curator's split rule and the
// retrain service's fine-tuning settings — in one process, without servers, and a
// perfect annotator. It prints tables (mean ± standard deviation over seeds, the labels
// each strategy needed to reach a target accuracy) and writes loop.png and results.json.
//
//	go run -tags openblas ./bench/loop -out bench/out/loop
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/nn/backend"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/report"
	"github.com/edgeloop/edgeloop/pkg/retrain"
	"github.com/edgeloop/edgeloop/pkg/sampling"
	"github.com/edgeloop/edgeloop/pkg/selection"
)

type options struct {
	drift                       string
	seeds, iterations           int
	firstSeed                   int
	perIteration, seedExamples  int
	test, maxFrames, epochs     int
	workers                     int
	target                      float64
	out, mnistDir, strategyList string
	// modes are the fine-tuning modes each strategy runs in: full (the whole dataset)
	// and/or replay (new examples + a class-balanced sample of replay examples).
	modes   string
	replays string
	add     string
	// bnFamily, when set, measures site adaptation instead (siteAdaptation) on
	// bnFrames unlabelled frames.
	bnFamily string
	bnFrames string
	// bnFrameList is bnFrames parsed; bnBackbone the pretrained weights a colour
	// preset's classifier is fine-tuned from; bnBudget stops starting colour cells
	// once spent (0: no limit).
	bnFrameList []int
	bnBackbone  string
	bnBudget    time.Duration
	// colourSide and colourClasses shape the colour objects of a colour preset
	// (pkg/drift's colour presets; colourGen draws them over the photographs).
	colourSide, colourClasses int
	colourGen                 *colourscenes.Generator
}

// strategy is one way the agent picks frames, as an agent's sampling config has it,
// and how each iteration fine-tunes (retrain.ModeFull or retrain.ModeReplay).
type strategy struct {
	name string
	cfg  sampling.StrategyConfig
	mode string
	// replay is the replay budget in replay mode.
	replay int
	// pool, when above 1, makes the iteration gather pool × its labels of candidates
	// that pass the rule and pick its labels from them with selection.Pick(method)
	// (the curator's pool-based batches); else the first candidates are taken.
	pool   int
	method string
	// cold is the number of first iterations that pick typical-first
	// (selection.Typical) from a pool of coldPool × labels frames taken at random,
	// before the rule: a cold start.
	cold, coldPool int
	// agentDiversity, when above 0, is the agent's embedding distance below which a
	// candidate is skipped as too like a recent pick (sampling.Config.MinEmbeddingDistance).
	agentDiversity float64
	// agentShare, when above 0, is the share of candidates nearest to a recent pick
	// that the agent skips (sampling.Config.SkipSimilarShare).
	agentShare float64
	// pseudo, when above 0, adds to each fine-tune's training set up to pseudo frames
	// of the iteration that the model predicted with at least pseudoMin confidence,
	// labelled with its prediction (that fine-tune only: never val or test, never
	// kept).
	pseudo    int
	pseudoMin float64
	// pseudoWeight, when above 0, is the pseudo-labels' loss weight (train.Sample.Weight,
	// as the retrain service's pseudo_weight) and pseudoKeep, when above 0, keeps them
	// across iterations, the newest pseudoKeep (as the curator's store and pseudo_max).
	pseudoWeight float32
	pseudoKeep   int
	// strong trains the corrections on augment.Config.Strong's view (train.Sample.Strong),
	// pseudoStrong the pseudo-labels: FixMatch's consistency, the pseudo-label decided on
	// the frame as the agent saw it (the weak view), learnt from a strong one.
	strong, pseudoStrong bool
	// The fine-tune itself, for random and the default alike: ema is the weights'
	// moving-average decay (train.Config.EMA); repeat puts the iteration's new
	// corrections repeat times in the train set; epochs and lr, when set, replace the
	// retrain service's.
	ema    float64
	last   bool // keep the last epoch's weights (train.Config.KeepLast)
	repeat int
	epochs int
	lr     float32
}

// strategies are the agent's uncertainty strategies and random sampling, the baseline.
func strategies() []strategy {
	random := sampling.StrategyConfig{Kind: sampling.Random, Probability: 0.1}
	margin := sampling.StrategyConfig{Kind: sampling.LowConfidence, Measure: "margin", Max: 0.3}
	return []strategy{
		{name: "random", cfg: random, mode: retrain.ModeFull},
		{name: "top1", cfg: sampling.StrategyConfig{Kind: sampling.LowConfidence, Measure: "top1", Max: 0.9}, mode: retrain.ModeFull},
		{name: "margin", cfg: margin, mode: retrain.ModeFull},
		{name: "entropy", cfg: sampling.StrategyConfig{Kind: sampling.LowConfidence, Measure: "entropy", Min: 0.2}, mode: retrain.ModeFull},
		{name: "threshold", cfg: sampling.StrategyConfig{Kind: sampling.CloseToThreshold, Threshold: 0.5, Epsilon: 0.25}, mode: retrain.ModeFull},
		// Diversity: the agent's embedding filter, the curator's pool-based batches
		// over margin candidates, and BADGE over a random pool (no uncertainty rule).
		{name: "margin-agentdiv", cfg: margin, mode: retrain.ModeFull, agentDiversity: 0.05},
		{name: "margin-agentdiv10", cfg: margin, mode: retrain.ModeFull, agentDiversity: 0.10},
		{name: "margin-agentdiv20", cfg: margin, mode: retrain.ModeFull, agentDiversity: 0.20},
		{name: "margin-pool", cfg: margin, mode: retrain.ModeFull, pool: 4, method: selection.Diverse},
		{name: "badge", cfg: random, mode: retrain.ModeFull, pool: 8, method: selection.Diverse},
		// Cold start typical-first, then the pool.
		{name: "typical-pool", cfg: margin, mode: retrain.ModeFull, pool: 4, method: selection.Diverse, cold: 1, coldPool: 8},
		// Pseudo-labels on top of the pool.
		{name: "pool-pseudo", cfg: margin, mode: retrain.ModeFull, pool: 4, method: selection.Diverse, pseudo: 100, pseudoMin: 0.97},
		{name: "agentdiv-pool", cfg: margin, mode: retrain.ModeFull, agentDiversity: 0.05, pool: 4, method: selection.Diverse},
		// The relative filter: the half of the candidates nearest to a recent pick skipped.
		{name: "margin-agentshare", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5},
		{name: "agentshare-pool", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, pool: 4, method: selection.Diverse},
		// The combinations: agent diversity and the curator's pool with its cold start,
		// without and with pseudo-labels.
		{name: "combo", cfg: margin, mode: retrain.ModeFull, agentDiversity: 0.05, pool: 4, method: selection.Diverse, cold: 1, coldPool: 8},
		{name: "combo-pseudo", cfg: margin, mode: retrain.ModeFull, agentDiversity: 0.05, pool: 4, method: selection.Diverse, cold: 1, coldPool: 8,
			pseudo: 100, pseudoMin: 0.97},
		// The product's default with its pseudo-label path: the agent's default filter,
		// 100 confident frames an iteration at the retrain service's threshold and weight,
		// kept across fine-tunes up to pseudo_max.
		{name: "agentshare-pseudo", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, pseudo: 100,
			pseudoMin: project.DefaultPseudoMinConfidence, pseudoWeight: project.DefaultPseudoWeight, pseudoKeep: project.DefaultPseudoMax},
		// More of them, less sure: 300 an iteration at ≥ 0.9 (the agent's threshold).
		{name: "agentshare-pseudo300", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, pseudo: 300,
			pseudoMin: 0.9, pseudoWeight: project.DefaultPseudoWeight, pseudoKeep: project.DefaultPseudoMax},
		// Strong augmentation (augment.Config.Strong) on the corrections, for random and
		// the default alike, and FixMatch: the pseudo-labels learnt from strong views too.
		{name: "random-strong", cfg: random, mode: retrain.ModeFull, strong: true},
		{name: "agentshare-strong", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, strong: true},
		{name: "agentshare-fixmatch", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, strong: true, pseudo: 300,
			pseudoMin: 0.9, pseudoWeight: project.DefaultPseudoWeight, pseudoKeep: project.DefaultPseudoMax, pseudoStrong: true},
		{name: "agentshare-fixmatch-pl", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, pseudo: 300,
			pseudoMin: 0.9, pseudoWeight: project.DefaultPseudoWeight, pseudoKeep: project.DefaultPseudoMax, pseudoStrong: true},
		{name: "agentshare-fixmatch95", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, strong: true, pseudo: 100,
			pseudoMin: project.DefaultPseudoMinConfidence, pseudoWeight: project.DefaultPseudoWeight, pseudoKeep: project.DefaultPseudoMax, pseudoStrong: true},
		// Cluster-Margin over a pool of 8 × the labels of margin candidates, without and
		// with the agent's filter.
		{name: "cluster-margin", cfg: margin, mode: retrain.ModeFull, pool: 8, method: selection.ClusterMargin},
		{name: "agentshare-cmargin", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, pool: 8, method: selection.ClusterMargin},
		// The fine-tune: an EMA of the weights; the new corrections twice over, 12 epochs
		// at half the learning rate.
		{name: "random-ema", cfg: random, mode: retrain.ModeFull, ema: 0.9},
		{name: "agentshare-ema", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, ema: 0.9},
		// The last epoch's weights kept, not the lowest clean val loss's.
		{name: "random-last", cfg: random, mode: retrain.ModeFull, last: true},
		{name: "agentshare-last", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, last: true},
		{name: "cmargin-last", cfg: margin, mode: retrain.ModeFull, pool: 8, method: selection.ClusterMargin, last: true},
		// The combinations: Cluster-Margin with pseudo-labels, and the last epoch kept.
		{name: "cmargin-pseudo", cfg: margin, mode: retrain.ModeFull, pool: 8, method: selection.ClusterMargin, pseudo: 300,
			pseudoMin: 0.9, pseudoWeight: project.DefaultPseudoWeight, pseudoKeep: project.DefaultPseudoMax},
		{name: "cmargin-pseudo-last", cfg: margin, mode: retrain.ModeFull, pool: 8, method: selection.ClusterMargin, pseudo: 300,
			pseudoMin: 0.9, pseudoWeight: project.DefaultPseudoWeight, pseudoKeep: project.DefaultPseudoMax, last: true},
		{name: "random-last12", cfg: random, mode: retrain.ModeFull, last: true, epochs: 12},
		{name: "agentshare-last12", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, last: true, epochs: 12},
		{name: "agentshare-pseudo-last12", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, pseudo: 100,
			pseudoMin: project.DefaultPseudoMinConfidence, pseudoWeight: project.DefaultPseudoWeight, pseudoKeep: project.DefaultPseudoMax, last: true, epochs: 12},
		{name: "agentshare-pseudo-last", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, pseudo: 100,
			pseudoMin: project.DefaultPseudoMinConfidence, pseudoWeight: project.DefaultPseudoWeight, pseudoKeep: project.DefaultPseudoMax, last: true},
		{name: "agentshare-pseudo300-last", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, pseudo: 300,
			pseudoMin: 0.9, pseudoWeight: project.DefaultPseudoWeight, pseudoKeep: project.DefaultPseudoMax, last: true},
		{name: "random-focus", cfg: random, mode: retrain.ModeFull, repeat: 2, epochs: 12, lr: 2.5e-4},
		{name: "agentshare-focus", cfg: margin, mode: retrain.ModeFull, agentShare: 0.5, repeat: 2, epochs: 12, lr: 2.5e-4},
	}
}

func describe(s strategy) string {
	c := s.cfg
	switch {
	case c.Kind == sampling.Random:
		return fmt.Sprintf("random, p=%.2f", c.Probability)
	case c.Kind == sampling.CloseToThreshold:
		return fmt.Sprintf("top-1 within %.2f of %.2f", c.Epsilon, c.Threshold)
	case c.Measure == "entropy":
		return fmt.Sprintf("normalised entropy > %.2f", c.Min)
	case c.Measure == "margin":
		return fmt.Sprintf("top-1 − top-2 < %.2f", c.Max)
	default:
		return fmt.Sprintf("top-1 < %.2f", c.Max)
	}
}

// describeAll is the rule with what the strategy adds to it.
func describeAll(s strategy) string {
	d := describe(s)
	if s.agentDiversity > 0 {
		d += fmt.Sprintf(", agent skips picks within cosine %.2f of a recent one", s.agentDiversity)
	}
	if s.agentShare > 0 {
		d += fmt.Sprintf(", agent skips the %.0f %% of candidates nearest to a recent pick", 100*s.agentShare)
	}
	if s.pool > 1 {
		d += fmt.Sprintf(", %s of a pool of %d×", s.method, s.pool)
	}
	if s.cold > 0 {
		d = fmt.Sprintf("first %d typical of %d× random, then ", s.cold, s.coldPool) + d
	}
	if s.pseudo > 0 {
		d += fmt.Sprintf(", ≤ %d pseudo-labels ≥ %.2f", s.pseudo, s.pseudoMin)
		if s.pseudoWeight > 0 {
			d += fmt.Sprintf(" of weight %.2f", s.pseudoWeight)
		}
		if s.pseudoKeep > 0 {
			d += fmt.Sprintf(", the newest %d kept", s.pseudoKeep)
		}
		if s.pseudoStrong {
			d += ", learnt from strong views"
		}
	}
	if s.strong {
		d += ", corrections learnt from strong views"
	}
	if s.ema > 0 {
		d += fmt.Sprintf(", EMA %.2f of the weights", s.ema)
	}
	if s.last {
		d += ", the last epoch's weights kept"
	}
	if s.repeat > 1 {
		d += fmt.Sprintf(", new corrections %d× in the train set", s.repeat)
	}
	if s.epochs > 0 {
		d += fmt.Sprintf(", fine-tunes of %d epochs", s.epochs)
	}
	if s.lr > 0 {
		d += fmt.Sprintf(" at %g", s.lr)
	}
	return d
}

func main() {
	var o options
	flag.StringVar(&o.drift, "drift", "rotation", "drift preset the fleet meets (see pkg/drift)")
	flag.IntVar(&o.seeds, "seeds", 3, "seeds (each: its own first model, seed data, stream and test draw)")
	flag.IntVar(&o.firstSeed, "first-seed", 1, "first seed: seeds first-seed … first-seed+seeds−1 run (with -add, a run per seed joins the earlier seeds')")
	flag.IntVar(&o.iterations, "iterations", 8, "iterations of the loop")
	flag.IntVar(&o.perIteration, "per", 50, "corrected examples per iteration (the label budget)")
	flag.IntVar(&o.seedExamples, "seed-examples", 1000, "clean digits (or colour objects) the first model is trained on")
	flag.IntVar(&o.test, "test", 1000, "held-out drifted test images")
	flag.IntVar(&o.maxFrames, "max-frames", 20000, "most frames a strategy may look at per iteration")
	flag.IntVar(&o.epochs, "epochs", 0, "most epochs of the first model and each fine-tuning (0: 8, as docs/benchmarks.md's tables; a strategy's own epochs replace it for its fine-tunes)")
	flag.IntVar(&o.workers, "workers", runtime.NumCPU(), "runs in parallel")
	flag.Float64Var(&o.target, "target", 0.85, "accuracy whose label cost is reported")
	flag.StringVar(&o.out, "out", "bench/out/loop", "directory for loop.png and results.json")
	flag.StringVar(&o.mnistDir, "mnist", "", "MNIST directory (default: the GoMNIST module)")
	flag.StringVar(&o.strategyList, "strategies", "", "comma-separated subset of the strategies (default: all; see strategies())")
	flag.StringVar(&o.modes, "modes", "full", "fine-tuning modes, comma-separated: full (the whole dataset, as before), replay (the retrain service's bounded fine-tune)")
	flag.StringVar(&o.replays, "replay", fmt.Sprint(project.DefaultReplay), "replay budgets of the replay mode, in examples, comma-separated (each a run of its own)")
	flag.StringVar(&o.add, "add", "", "results.json of an earlier run with the same options: its runs join this run's tables (a strategy this run plays replaces its earlier runs; -strategies none only tabulates)")
	flag.StringVar(&o.bnFamily, "bn-family", "", "measure batch norm re-estimation instead, on the MobileNetV2 family member of this size (n, s, m)")
	flag.StringVar(&o.bnFrames, "bn-frames", "512", "unlabelled drifted frames batch norm is re-estimated on, comma-separated counts (-bn-family; digits use the largest)")
	flag.StringVar(&o.bnBackbone, "bn-backbone", "deploy/models/mobilenetv2-n.safetensors", "-bn-family with colour presets: the pretrained backbone the classifier is fine-tuned from")
	flag.DurationVar(&o.bnBudget, "bn-budget", 0, "-bn-family with colour presets: start no cell after this long (0: no limit); a rerun with the same -out resumes")
	flag.IntVar(&o.colourSide, "colour-side", 32, "side of the colour objects of a colour drift preset (new-site, white-balance, low-light, motion-blur, jpeg, far), in px")
	flag.IntVar(&o.colourClasses, "colour-classes", 4, "classes of the colour objects of a colour drift preset")
	flag.Parse()
	log := zap.NewNop()
	ctx := context.Background()

	// all are the strategies in every mode; strats those this run plays.
	var all, strats []strategy
	for _, s := range strategies() {
		picked := o.strategyList == "" || strings.Contains(","+o.strategyList+",", ","+s.name+",")
		add := func(s strategy) {
			all = append(all, s)
			if picked {
				strats = append(strats, s)
			}
		}
		{
			for _, m := range strings.Split(o.modes, ",") {
				switch m {
				case retrain.ModeFull:
					s.mode = m
					add(s)
				case retrain.ModeReplay:
					for _, b := range strings.Split(o.replays, ",") {
						r := s
						var err error
						if r.replay, err = strconv.Atoi(b); err != nil || r.replay < 1 {
							fail(fmt.Errorf("-replay %q: want budgets of 1 or more", o.replays))
						}
						r.name, r.mode = fmt.Sprintf("%s replay %d", s.name, r.replay), m
						add(r)
					}
				default:
					fail(fmt.Errorf("-modes %q: want full and/or replay", o.modes))
				}
			}
		}
	}
	var results []runResult
	if o.add != "" {
		b, err := os.ReadFile(o.add)
		fail(err)
		var prev struct {
			Runs []runResult `json:"runs"`
		}
		fail(json.Unmarshal(b, &prev))
		for _, r := range prev.Runs {
			again := int(r.Seed) >= o.firstSeed && int(r.Seed) < o.firstSeed+o.seeds
			if !again || !slices.ContainsFunc(strats, func(s strategy) bool { return s.name == r.Strategy }) {
				results = append(results, r) // unless this run plays it again on that seed
			}
		}
	}
	if len(strats) == 0 && len(results) == 0 {
		fail(fmt.Errorf("-strategies %q names none of the strategies", o.strategyList))
	}
	if o.bnFamily != "" {
		fail(siteAdaptationMain(ctx, o, log))
		return
	}
	dir, err := mnist.FindDir(o.mnistDir)
	fail(err)
	trainSet, testSet, err := mnist.Load(dir)
	fail(err)
	be, err := backend.Select("auto", log)
	fail(err)
	if d, err := drift.Get(o.drift); err == nil && d.Colour {
		o.colourGen, err = colourscenes.New(colourscenes.LoadPhotos("", log, colourscenes.SiteHome, colourscenes.SiteOf(d)))
		fail(err)
	}

	start := time.Now()
	fmt.Fprintf(os.Stderr, "loop bench: drift %s, %d seeds × %d strategies × %d iterations of %d labels, %d workers, engine %s\n",
		o.drift, o.seeds, len(strats), o.iterations, o.perIteration, o.workers, be.Name)
	type job struct {
		sc *scenario
		st strategy
	}
	jobs := make(chan job)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < max(1, o.workers); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				r, err := run(ctx, o, j.sc, j.st)
				fail(err)
				last := r.Points[len(r.Points)-1]
				fmt.Fprintf(os.Stderr, "  seed %d %-9s %.4f → %.4f after %d labels (%.0f s)\n", r.Seed, r.Strategy, r.Points[0].Accuracy,
					last.Accuracy, last.Labels, time.Since(start).Seconds())
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		}()
	}
	for seed := uint64(o.firstSeed); seed < uint64(o.firstSeed+o.seeds) && len(strats) > 0; seed++ {
		sc, err := newScenario(ctx, o, trainSet, testSet, seed, be, true)
		fail(err)
		for _, st := range strats {
			jobs <- job{sc, st}
		}
	}
	close(jobs)
	wg.Wait()
	// The table shows every strategy with runs, this run's and those added.
	strats = slices.DeleteFunc(all, func(s strategy) bool {
		return !slices.ContainsFunc(results, func(r runResult) bool { return r.Strategy == s.name })
	})

	t := tabulate(o, strats, results)
	o.seeds = len(t.inDomain) // the table's seeds: this run's and those added
	fmt.Print(t.markdown(o, strats, be.Name, time.Since(start)))
	fail(os.MkdirAll(o.out, 0o755))
	fail(os.WriteFile(filepath.Join(o.out, "loop.png"), report.PNG(t.chart(o, strats)), 0o644))
	js, _ := json.MarshalIndent(map[string]any{"drift": o.drift, "modes": o.modes, "replay": o.replays, "per_iteration": o.perIteration, "seed_examples": o.seedExamples,
		"test": o.test, "engine": be.Name, "runs": results}, "", "  ")
	fail(os.WriteFile(filepath.Join(o.out, "results.json"), js, 0o644))
	fmt.Printf("\nPlot: %s; every run: %s\n", filepath.Join(o.out, "loop.png"), filepath.Join(o.out, "results.json"))
}

// table holds the runs by strategy and iteration.
type table struct {
	// acc[strategy][iteration] are the accuracies over seeds; likewise wrong, frames and
	// the seconds an iteration took.
	acc, wrong, frames, secs map[string][][]float64
	// clean[strategy] are, per seed, the final model's accuracy without the drift.
	clean map[string][]float64
	// reach[strategy] are, per seed, the labels spent when the target was first met (-1:
	// never); reach95 likewise for 95 % of the first model's in-domain accuracy.
	reach, reach95 map[string][]int
	// inDomain are, per seed, the first model's accuracy without the drift.
	inDomain map[uint64]float64
	notes    []string
}

func tabulate(o options, strats []strategy, rs []runResult) table {
	t := table{acc: map[string][][]float64{}, wrong: map[string][][]float64{}, frames: map[string][][]float64{}, secs: map[string][][]float64{},
		reach: map[string][]int{}, reach95: map[string][]int{}, clean: map[string][]float64{}, inDomain: map[uint64]float64{}}
	for _, s := range strats {
		n := o.iterations + 1
		t.acc[s.name], t.wrong[s.name], t.frames[s.name], t.secs[s.name] = make([][]float64, n), make([][]float64, n), make([][]float64, n), make([][]float64, n)
	}
	for _, r := range rs {
		reached, reached95 := -1, -1
		t.inDomain[r.Seed] = r.InDomain
		for i, p := range r.Points {
			t.acc[r.Strategy][i] = append(t.acc[r.Strategy][i], p.Accuracy)
			if i > 0 {
				t.wrong[r.Strategy][i] = append(t.wrong[r.Strategy][i], p.Wrong)
				t.frames[r.Strategy][i] = append(t.frames[r.Strategy][i], float64(p.Frames))
				t.secs[r.Strategy][i] = append(t.secs[r.Strategy][i], p.Seconds)
			}
			if reached < 0 && p.Accuracy >= o.target {
				reached = p.Labels
			}
			if reached95 < 0 && p.Accuracy >= 0.95*r.InDomain {
				reached95 = p.Labels
			}
		}
		t.reach[r.Strategy] = append(t.reach[r.Strategy], reached)
		t.reach95[r.Strategy] = append(t.reach95[r.Strategy], reached95)
		t.clean[r.Strategy] = append(t.clean[r.Strategy], r.Clean)
		if r.Note != "" {
			t.notes = append(t.notes, fmt.Sprintf("seed %d %s: %s", r.Seed, r.Strategy, r.Note))
		}
	}
	return t
}

func meanSD(v []float64) (float64, float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	var m, s float64
	for _, x := range v {
		m += x
	}
	m /= float64(len(v))
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	if len(v) > 1 {
		s /= float64(len(v) - 1)
	}
	return m, math.Sqrt(s)
}

func (t table) markdown(o options, strats []strategy, engine string, took time.Duration) string {
	var b strings.Builder
	what := "digits"
	if o.colourGen != nil {
		what = fmt.Sprintf("colour objects (%d classes, %d×%d RGB)", o.colourClasses, o.colourSide, o.colourSide)
	}
	fmt.Fprintf(&b, "\nLoop benchmark: drift %q, first model on %d clean %s, %d corrected examples per iteration, "+
		"accuracy on %d held-out drifted test images (mean ± sd over %d seeds); fine-tuning %s (replay budgets %s); engine %s; %s\n\n",
		o.drift, o.seedExamples, what, o.perIteration, o.test, o.seeds, o.modes, o.replays, engine, took.Round(time.Second))
	row := func(cells ...string) { fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | ")) }
	head := []string{"labels"}
	rule := []string{"-----:"}
	for _, s := range strats {
		head = append(head, s.name)
		rule = append(rule, ":---:")
	}
	row(head...)
	row(rule...)
	for i := 0; i <= o.iterations; i++ {
		cells := []string{fmt.Sprint(i * o.perIteration)}
		for _, s := range strats {
			m, sd := meanSD(t.acc[s.name][i])
			if math.IsNaN(m) {
				cells = append(cells, "—")
				continue
			}
			best := true
			for _, s2 := range strats {
				if m2, _ := meanSD(t.acc[s2.name][i]); m2 > m+1e-9 {
					best = false
				}
			}
			c := fmt.Sprintf("%.3f ± %.3f", m, sd)
			if best && i > 0 {
				c = "**" + c + "**"
			}
			cells = append(cells, c)
		}
		row(cells...)
	}

	fmt.Fprintf(&b, "\nPer strategy: labels to reach %.0f %% and to reach 95 %% of the first model's in-domain accuracy (per seed; — never within %d labels), the share of its picks the model had wrong, "+
		"frames it looked at per %d labels, the seconds an iteration took (sampling and fine-tuning), the accuracy gain at the end over random sampling "+
		"fine-tuned the same way, and the final model's accuracy on the same test images without the drift\n\n", 100*o.target, o.iterations*o.perIteration, o.perIteration)
	var dom []string
	for _, seed := range slices.Sorted(maps.Keys(t.inDomain)) {
		dom = append(dom, fmt.Sprintf("%.3f", t.inDomain[seed]))
	}
	fmt.Fprintf(&b, "(in-domain accuracy of the first model per seed, clean test images: %s; \"95 %% in-domain\" is 0.95 × that)\n\n", strings.Join(dom, ", "))
	row("strategy", "rule", "fine-tune", fmt.Sprintf("labels to %.0f %%", 100*o.target), "labels to 95 % in-domain", "picks wrong", "frames / iteration", "s / iteration",
		"final vs random", "clean test at the end")
	row("--------", "----", "---------", "---:", "---:", "---:", "---:", "---:", "---:", "---:")
	for _, s := range strats {
		// The baseline is random sampling fine-tuned the same way, when it ran.
		rm := math.NaN()
		if base := t.acc[strings.Replace(s.name, strings.Fields(s.name)[0], "random", 1)]; base != nil {
			rm, _ = meanSD(base[o.iterations])
		}
		reachs := func(rs []int) string {
			var out []string
			for _, r := range rs {
				if r < 0 {
					out = append(out, "—")
				} else {
					out = append(out, fmt.Sprint(r))
				}
			}
			return strings.Join(out, ", ")
		}
		var wrong, frames, secs []float64
		for i := 1; i <= o.iterations; i++ {
			wrong = append(wrong, t.wrong[s.name][i]...)
			frames = append(frames, t.frames[s.name][i]...)
			secs = append(secs, t.secs[s.name][i]...)
		}
		w, _ := meanSD(wrong)
		f, _ := meanSD(frames)
		sec, _ := meanSD(secs)
		cm, csd := meanSD(t.clean[s.name])
		tune := "whole dataset"
		if s.mode == retrain.ModeReplay {
			tune = fmt.Sprintf("new + %d replay", s.replay)
		}
		m, _ := meanSD(t.acc[s.name][o.iterations])
		vs := "—"
		if !math.IsNaN(rm) && !math.IsNaN(m) {
			vs = fmt.Sprintf("%+.3f", m-rm)
		}
		row(s.name, describeAll(s), tune, reachs(t.reach[s.name]), reachs(t.reach95[s.name]), fmt.Sprintf("%.0f %%", 100*w), fmt.Sprintf("%.0f", f), fmt.Sprintf("%.1f", sec), vs, fmt.Sprintf("%.3f ± %.3f", cm, csd))
	}
	for _, n := range t.notes {
		fmt.Fprintf(&b, "\nnote: %s", n)
	}
	b.WriteString("\n")
	return b.String()
}

func (t table) chart(o options, strats []strategy) image.Image {
	var series []report.Series
	pal := report.Palette()
	for k, s := range strats {
		name := s.name
		if !strings.Contains(o.modes, ",") && !strings.Contains(o.replays, ",") {
			name = strings.TrimSuffix(name, fmt.Sprintf(" replay %d", s.replay)) // one mode: the title says it
		}
		sr := report.Series{Name: name, Color: pal[k%len(pal)], Dashed: strings.HasPrefix(s.name, "random")}
		for i := 0; i <= o.iterations; i++ {
			if m, _ := meanSD(t.acc[s.name][i]); !math.IsNaN(m) {
				sr.X, sr.Y = append(sr.X, float64(i*o.perIteration)), append(sr.Y, m)
			}
		}
		series = append(series, sr)
	}
	tune := "whole dataset"
	if o.modes == retrain.ModeReplay {
		tune = "replay " + o.replays
	}
	return report.LineChart(fmt.Sprintf("drifted test accuracy (%s), mean of %d seeds, %s", o.drift, o.seeds, tune), "corrected labels", series, 0, 0)
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench loop:", err)
		os.Exit(1)
	}
}
