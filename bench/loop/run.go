package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/backend"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/retrain"
	"github.com/edgeloop/edgeloop/pkg/sampling"
	"github.com/edgeloop/edgeloop/pkg/selection"
	"github.com/edgeloop/edgeloop/pkg/train"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// scenario is what every strategy of one seed starts from: the same first model, the
// same seed dataset, the same stream of drifted frames and the same held-out test set.
type scenario struct {
	seed    uint64
	project *project.Project
	arch    nn.Arch
	v1      *nn.Params
	data    train.Split // the seed dataset in its pinned splits
	counts  map[string]int
	// frame is production frame k under the drift: MNIST's train digits, or colour
	// objects (colourscenes) for a colour preset; reproducible per seed and k.
	frame   func(k int) train.Sample
	from    int // first stream index (after the seed digits)
	drift   drift.Preset
	test    []train.Sample // held-out drifted test digits, never trained on
	clean   []train.Sample // the same test digits without the drift (what must not be forgotten)
	backend backend.Choice
}

// point is one iteration of one run.
type point struct {
	Labels   int     `json:"labels"`
	Accuracy float64 `json:"accuracy"`
	// Wrong is the share of the iteration's sampled frames the model had wrong.
	Wrong float64 `json:"wrong"`
	// Frames is how many frames the strategy saw to take its labels.
	Frames  int     `json:"frames"`
	Seconds float64 `json:"seconds"`
	// BestEpoch is the fine-tune's epoch whose weights were kept (the lowest val loss)
	// and Epochs how many it ran.
	BestEpoch int `json:"best_epoch,omitempty"`
	Epochs    int `json:"epochs,omitempty"`
}

// runResult is one strategy's curve on one seed.
type runResult struct {
	Strategy string  `json:"strategy"`
	Seed     uint64  `json:"seed"`
	Points   []point `json:"points"`
	// Clean is the final model's accuracy on the test digits without the drift.
	Clean float64 `json:"clean"`
	// InDomain is the first model's accuracy on the test digits without the drift: what
	// recovery is measured against.
	InDomain float64 `json:"in_domain"`
	Note     string  `json:"note,omitempty"`
}

// newScenario trains the seed's first model the way the retrain service bootstraps a
// project: from scratch on clean digits split by the curator's rule (unless first is
// false: the data only).
func newScenario(ctx context.Context, o options, trainSet, testSet *mnist.Set, seed uint64, be backend.Choice, first bool) (*scenario, error) {
	d, err := drift.Get(o.drift)
	if err != nil {
		return nil, err
	}
	p := &project.Project{ID: "bench", Task: "classify", Classes: datasets.Classes()}
	if d.Colour {
		if p.Classes, err = colourscenes.ClassNames(o.colourClasses); err != nil {
			return nil, err
		}
	}
	// The tables' fine-tunes and first models: 8 epochs unless -epochs (the retrain
	// service's classifier default is 12 since session 4: the *12 strategies).
	p.Retrain.Epochs = 8
	if o.epochs > 0 {
		p.Retrain.Epochs = o.epochs
	}
	p.Defaults()
	sc := &scenario{seed: seed, project: p, arch: nn.ClassifierArch(len(p.Classes)), counts: map[string]int{}, drift: d, backend: be}
	if d.Colour {
		if err := sc.colour(o, seed); err != nil {
			return nil, err
		}
	} else {
		// Seed digits: a different clean slice per seed; the stream follows them.
		start := int(seed-1) * o.seedExamples
		for _, s := range datasets.Digits(trainSet, start, o.seedExamples, fmt.Sprintf("seed%d", seed), drift.Preset{Name: drift.None}, seed) {
			sc.add(s)
		}
		sc.from = 20000
		sc.frame = func(k int) train.Sample {
			i := sc.from + (k-sc.from)%(trainSet.Len()-sc.from)
			im := raster.FromBytes(mnist.Side, mnist.Side, trainSet.Images[i])
			im = d.Classification(im, rand.New(rand.NewPCG(seed, uint64(k))))
			return train.Sample{ID: fmt.Sprintf("stream-%d-%d", seed, k), Image: im, Label: int(trainSet.Labels[i])}
		}
		sc.test = datasets.Digits(testSet, 0, o.test, "test", d, 1000+seed)
		sc.clean = datasets.Digits(testSet, 0, o.test, "clean", drift.Preset{Name: drift.None}, 1000+seed)
	}
	if !first {
		return sc, nil
	}
	cfg := retrain.TrainConfig(p, false, seed)
	init, err := nn.InitParams(sc.arch, seed)
	if err != nil {
		return nil, err
	}
	res, err := train.Run(ctx, sc.arch, init, p.Classes, sc.data, cfg, be.Factory)
	if err != nil {
		return nil, fmt.Errorf("seed %d: first model: %w", seed, err)
	}
	sc.v1 = res.Params
	return sc, nil
}

// colour makes the scenario's data colour objects (colourscenes) at
// o.colourSide px, RGB, over the home site's photographs for the seed data and the
// clean test, and under the colour drift preset for the stream and the drifted test;
// the network is the small CNN on 3 channels at that size.
func (sc *scenario) colour(o options, seed uint64) error {
	sc.arch.InC, sc.arch.InW, sc.arch.InH = 3, o.colourSide, o.colourSide
	seedData, err := sc.colourSet(o, o.seedExamples, seed, drift.Preset{Name: drift.None}, "seed")
	if err != nil {
		return err
	}
	for _, s := range seedData {
		sc.add(s)
	}
	return sc.colourDrift(o)
}

// colourDrift makes the scenario's drifted and clean colour test sets and its drifted
// stream of frames for its preset (sc.drift).
func (sc *scenario) colourDrift(o options) error {
	var err error
	if sc.test, err = sc.colourSet(o, o.test, 1000+sc.seed, sc.drift, "test"); err != nil {
		return err
	}
	// The same objects undrifted: a colour preset's frame function draws after the
	// object, so the clean set's objects are the drifted set's (a new site changes the
	// backgrounds too).
	if sc.clean, err = sc.colourSet(o, o.test, 1000+sc.seed, drift.Preset{Name: drift.None}, "clean"); err != nil {
		return err
	}
	cfg := sc.colourConfig(o)
	sc.frame = func(k int) train.Sample {
		c, err := o.colourGen.ClassificationAt(cfg, 2000+sc.seed, k, sc.drift)
		if err != nil {
			panic(err) // cfg was validated by the sets above
		}
		return train.Sample{ID: fmt.Sprintf("stream-%d-%d", sc.seed, k), Image: c.Image, Label: c.Label}
	}
	return nil
}

// colourConfig is the scenario's colour objects: o.colourSide px, its classes.
func (sc *scenario) colourConfig(o options) colourscenes.ClassifyConfig {
	return colourscenes.ClassifyConfig{W: o.colourSide, H: o.colourSide, Classes: len(sc.project.Classes)}
}

// colourSet draws n colour objects from seed under d, with IDs tagged tag.
func (sc *scenario) colourSet(o options, n int, seed uint64, d drift.Preset, tag string) ([]train.Sample, error) {
	cs, err := o.colourGen.Classification(sc.colourConfig(o), n, seed, d)
	if err != nil {
		return nil, err
	}
	out := make([]train.Sample, len(cs))
	for i, c := range cs {
		out[i] = train.Sample{ID: fmt.Sprintf("%s-%d-%d", tag, sc.seed, i), Image: c.Image, Label: c.Label}
	}
	return out, nil
}

// add puts a labelled example into the dataset under the curator's split rule.
func (sc *scenario) add(s train.Sample) {
	split := project.AssignSplit(sc.project.Split, s.ID, sc.counts)
	sc.data.Add(split, s)
	sc.counts[split]++
}

// clone copies the scenario's dataset so that a run can grow its own.
func (sc *scenario) clone() *scenario {
	c := *sc
	c.data = train.Split{Train: append([]train.Sample(nil), sc.data.Train...), Val: append([]train.Sample(nil), sc.data.Val...),
		Test: append([]train.Sample(nil), sc.data.Test...)}
	c.counts = map[string]int{}
	for k, v := range sc.counts {
		c.counts[k] = v
	}
	return &c
}

// accuracy of params on the held-out drifted test set.
func (sc *scenario) accuracy(params *nn.Params) (float64, error) {
	return sc.accuracyOn(params, sc.test)
}

// accuracyOn is the accuracy of params on set.
func (sc *scenario) accuracyOn(params *nn.Params, set []train.Sample) (float64, error) {
	e, err := sc.backend.Factory(nn.EngineConfig{Arch: sc.arch, Params: params})
	if err != nil {
		return 0, err
	}
	defer e.Close()
	ev, err := train.Evaluate(e, sc.arch, sc.project.Classes, set, 64)
	if err != nil {
		return 0, err
	}
	return ev.Headline(), nil
}

// run plays the loop for one strategy: each iteration the edge model meets the drifted
// stream, the agent's sampler takes frames until the label budget is spent, a perfect
// annotator corrects them, and the model is fine-tuned with the retrain service's
// settings on the seed dataset plus every correction so far.
func run(ctx context.Context, o options, base *scenario, st strategy) (runResult, error) {
	sc := base.clone()
	out := runResult{Strategy: st.name, Seed: sc.seed}
	acc, err := sc.accuracy(sc.v1)
	if err != nil {
		return out, err
	}
	out.Points = append(out.Points, point{Accuracy: acc})
	if out.InDomain, err = sc.accuracyOn(sc.v1, sc.clean); err != nil {
		return out, err
	}
	sampler, err := sampling.New(sampling.Config{Strategies: []sampling.StrategyConfig{st.cfg}, MinEmbeddingDistance: st.agentDiversity, SkipSimilarShare: st.agentShare},
		sc.seed, func() time.Time { return time.Unix(0, 0) })
	if err != nil {
		return out, fmt.Errorf("strategy %s: %w", st.name, err)
	}
	coldSampler, err := sampling.New(sampling.Config{Strategies: []sampling.StrategyConfig{{Kind: sampling.Random, Probability: 0.1}}},
		sc.seed+77, func() time.Time { return time.Unix(0, 0) })
	if err != nil {
		return out, err
	}
	params, next, labels := sc.v1, sc.from, 0
	added := map[string]int{} // iteration each corrected example was added in (seed: 0)
	var kept []train.Sample   // pseudo-labels kept across iterations (pseudoKeep)
	for it := 1; it <= o.iterations; it++ {
		start := time.Now()
		pr, err := vision.NewPredictor(sc.arch, params, sc.project.Classes, sc.backend.Factory, 1, vision.Options{Embed: true})
		if err != nil {
			return out, err
		}
		// The candidates: the first that pass the rule, or a pool of them to pick from.
		cold := it <= st.cold
		smp, size, method := sampler, o.perIteration, st.method
		switch {
		case cold:
			smp, size, method = coldSampler, o.perIteration*st.coldPool, selection.Typical
		case st.pool > 1:
			size = o.perIteration * st.pool
		}
		type candidate struct {
			s     train.Sample
			preds []vision.Prediction
			emb   []float32
		}
		var cands []candidate
		var pseudo []train.Sample
		seen := 0
		for len(cands) < size && seen < o.maxFrames {
			frames := streamChunk(sc, next, 256)
			next += len(frames)
			ims := make([]*raster.Image, len(frames))
			for i, f := range frames {
				ims[i] = f.Image
			}
			preds, embs, err := pr.PredictEmbed(ctx, ims)
			if err != nil {
				pr.Close()
				return out, err
			}
			for i, f := range frames {
				if len(cands) == size {
					break
				}
				seen++
				if !smp.Decide(sampling.Frame{Predictions: preds[i], Thumb: raster.Thumbnail(f.Image), Embedding: embs[i]}).Taken() {
					if len(pseudo) < st.pseudo && float64(preds[i][0].Confidence) >= st.pseudoMin {
						pseudo = append(pseudo, train.Sample{ID: f.ID, Image: f.Image, Label: preds[i][0].Class, Weight: st.pseudoWeight, Strong: st.pseudoStrong})
					}
					continue
				}
				cands = append(cands, candidate{s: f, preds: preds[i], emb: embs[i]})
			}
		}
		pr.Close()
		picks := make([]int, min(len(cands), o.perIteration))
		for i := range picks {
			picks[i] = i
		}
		if len(cands) > o.perIteration {
			cs := make([]selection.Candidate, len(cands))
			for i, c := range cands {
				probs := make([]float32, len(sc.project.Classes))
				for _, p := range c.preds {
					probs[p.Class] = p.Confidence
				}
				// As the curator keeps them (pendingOf): the embedding reduced.
				cs[i] = selection.Candidate{Probs: probs, Embedding: selection.Reduce(c.emb, project.PendingEmbedding), Class: c.preds[0].ClassName}
			}
			picks = selection.Pick(method, cs, o.perIteration, sc.seed*1000+uint64(it))
		}
		var taken []train.Sample
		wrong := 0
		for _, i := range picks {
			c := cands[i]
			if c.preds[0].ClassName != sc.project.Classes[c.s.Label] {
				wrong++
			}
			c.s.Strong = st.strong
			taken = append(taken, c.s)
		}
		if len(taken) == 0 {
			out.Note = fmt.Sprintf("took nothing in %d frames at iteration %d: the model is too sure for this strategy", seen, it)
			break
		}
		for _, s := range taken {
			sc.add(s)
			added[s.ID] = it
		}
		labels += len(taken)
		cfg := retrain.TrainConfig(sc.project, true, sc.seed*100+uint64(it))
		cfg.EMA, cfg.KeepLast = st.ema, st.last
		if st.epochs > 0 {
			cfg.Epochs = st.epochs
		}
		if st.lr > 0 {
			cfg.LR = st.lr
		}
		data := sc.data
		if st.mode == retrain.ModeReplay {
			data.Train = replaySet(sc, added, it, st.replay)
		}
		for range st.repeat - 1 {
			data.Train = append(slices.Clone(data.Train), taken...)
		}
		if st.pseudoKeep > 0 { // the newest pseudoKeep, as the curator keeps them
			kept = append(kept, pseudo...)
			pseudo = kept[max(0, len(kept)-st.pseudoKeep):]
		}
		if len(pseudo) > 0 { // train only, never val or test
			data.Train = append(slices.Clone(data.Train), pseudo...)
		}
		res, err := train.Run(ctx, sc.arch, params, sc.project.Classes, data, cfg, sc.backend.Factory)
		if err != nil {
			return out, fmt.Errorf("%s seed %d iteration %d: %w", st.name, sc.seed, it, err)
		}
		params = res.Params
		if acc, err = sc.accuracy(params); err != nil {
			return out, err
		}
		out.Points = append(out.Points, point{Labels: labels, Accuracy: acc, Wrong: float64(wrong) / float64(len(taken)),
			Frames: seen, Seconds: time.Since(start).Seconds(), BestEpoch: res.BestEpoch, Epochs: len(res.History)})
		if len(taken) < o.perIteration {
			out.Note = fmt.Sprintf("only %d labels in %d frames at iteration %d", len(taken), seen, it)
			break
		}
	}
	out.Clean, err = sc.accuracyOn(params, sc.clean)
	return out, err
}

// streamChunk is the next n production frames (scenario.frame, made in parallel): MNIST
// train digits under the drift, each with its own reproducible drift draw, wrapping
// around before the test digits run out (the ids stay unique), or colour objects.
func streamChunk(sc *scenario, from, n int) []train.Sample {
	out := make([]train.Sample, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() { defer wg.Done(); out[i] = sc.frame(from + i) }()
	}
	wg.Wait()
	return out
}

// replaySet is what the retrain service's replay mode trains on at iteration it: the
// examples added this iteration (the release saw every earlier one) and budget of the
// rest (the most recent and a class-balanced sample), chosen by retrain.PlanTraining.
func replaySet(sc *scenario, added map[string]int, it, budget int) []train.Sample {
	entries := make([]project.DatasetEntry, len(sc.data.Train))
	byID := make(map[string]train.Sample, len(sc.data.Train))
	for i, s := range sc.data.Train {
		entries[i] = project.DatasetEntry{ID: s.ID, Split: "train", Seq: added[s.ID], Labels: []project.Label{{Class: sc.project.Classes[s.Label]}}}
		byID[s.ID] = s
	}
	pl := retrain.PlanTraining(entries, sc.project.Classes, retrain.ModeReplay, it-1, budget, sc.seed*1000+uint64(it))
	out := make([]train.Sample, len(pl.Train))
	for i, e := range pl.Train {
		out[i] = byID[e.ID]
	}
	return out
}
