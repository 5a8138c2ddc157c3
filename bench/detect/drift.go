package main

import (
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/atomicfile"
	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/weights"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/retrain"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// driftOptions are the flags of the drift table (-drift-table).
type driftOptions struct {
	presets, seeds string
	// base is the clean training scenes of the model every cell starts from, trained
	// for baseEpochs from the size's backbone (-backbones).
	base, baseEpochs int
	// baseModel, when set, is the base model's file (writeParams'), trained elsewhere:
	// a per-size or curve cell's model.
	baseModel string
	size      string
	// batches correction batches of batch drifted scenes, each fine-tuned on with the
	// retrain service's replay mode under a replay budget of replay examples.
	batches, batch, replay int
	// cells is the subfolder of -out/drift the fine-tune cells go to (empty: -out/drift
	// itself), so that a rerun under another fine-tune rule keeps the base model and
	// each preset's drop (step 0) and leaves the earlier cells for the comparison.
	cells string
}

// driftCell is one point of the drift table: the model after step correction batches
// of one preset (step 0: the base model, before any), on the drifted and the clean
// test scenes.
type driftCell struct {
	Preset  string `json:"preset"`
	Seed    uint64 `json:"seed"` // the correction scenes' and the fine-tune's; 0 at step 0
	Step    int    `json:"step"`
	Network string `json:"network"`
	Input   string `json:"input"`
	// BaseTrain are the clean scenes the base model was trained on.
	BaseTrain int `json:"base_train"`
	// BaseModel is -drift-base-model's file, when the base was trained elsewhere.
	BaseModel string `json:"base_model,omitempty"`
	// Labels are the drifted scenes corrected so far (Step × PerBatch).
	Labels   int `json:"labels"`
	PerBatch int `json:"correction_batch"`
	// Replay is the fine-tunes' replay budget.
	Replay int `json:"replay_budget"`
	// The fine-tune of this step: its replay plan and training (zero at step 0).
	Train     int     `json:"train,omitempty"`
	New       int     `json:"new,omitempty"`
	Replayed  int     `json:"replayed,omitempty"`
	Val       int     `json:"val,omitempty"`
	Epochs    int     `json:"epochs,omitempty"`
	BestEpoch int     `json:"best_epoch,omitempty"`
	LR        float64 `json:"lr,omitempty"`
	Batch     int     `json:"batch,omitempty"`
	// KeepLast: the fine-tune kept its last epoch (retrain.fine_tune_keep "last"), not
	// the one of least validation loss.
	KeepLast bool    `json:"keep_last,omitempty"`
	Seconds  float64 `json:"train_seconds,omitempty"`
	// Test mAP on the preset's drifted test scenes and on the clean ones (forgetting).
	TestImages   int     `json:"test_images"`
	DriftMAP50   float64 `json:"drift_map50"`
	DriftMAP5095 float64 `json:"drift_map50_95"`
	CleanMAP50   float64 `json:"clean_map50"`
	CleanMAP5095 float64 `json:"clean_map50_95"`
	Engine       string  `json:"engine"`
}

// driftBench is the drift table's state: the data and the base model.
type driftBench struct {
	*bench
	do driftOptions
	// dir holds the base model and the step-0 cells, cells the fine-tune cells.
	dir, cells, bb string
	project        *project.Project
	// base is the model every preset starts from; arch its network (the backbone's
	// batch-norm ε).
	arch nn.Arch
	base *nn.Params
}

// runDrift fills the drift table cell by cell: the base model (trained once and kept
// under -out/drift), each preset's drop, then each seed's fine-tunes, one correction
// batch after another, all presets at a step before the next step. A cell already
// saved is skipped, so a run can be stopped and resumed; no cell starts after
// -deadline.
func runDrift(ctx context.Context, o options, do driftOptions, b *bench, log *zap.Logger) error {
	start := time.Now()
	late := func(what string) bool {
		if o.deadline > 0 && time.Since(start) > o.deadline {
			log.Warn("deadline passed: drift cells left for the next run", zap.String("next", what))
			return true
		}
		return false
	}
	presets := config.SplitList(do.presets)
	if do.presets == "all" {
		presets = slices.DeleteFunc(drift.NamesFor(true), func(n string) bool { return n == drift.None })
	}
	seeds, err := ints(do.seeds)
	if err != nil {
		return fmt.Errorf("-drift-seeds: %w", err)
	}
	if b.scenes == nil {
		return errors.New("the drift table needs -data colour")
	}
	if len(b.data.Train) < do.base {
		return fmt.Errorf("the drift table needs %d clean training scenes, %d drawn", do.base, len(b.data.Train))
	}
	d := &driftBench{bench: b, do: do, dir: filepath.Join(o.out, "drift"),
		bb: strings.ReplaceAll(o.backbones, "{size}", do.size)}
	d.cells = filepath.Join(d.dir, do.cells)
	if err := os.MkdirAll(d.cells, 0o755); err != nil {
		return fmt.Errorf("drift cells: %w", err)
	}
	if err := checkBaseModel(do.baseModel, d.dir, d.cells); err != nil {
		return err
	}
	d.project = &project.Project{ID: "bench", Task: string(nn.Detect), Classes: b.classes}
	d.project.Defaults()
	d.o.latencyRuns = 0 // the base cell measures mAP only
	if err := d.loadBase(ctx); err != nil || d.base == nil {
		return err
	}
	if late("the presets") {
		return nil
	}
	for _, name := range presets {
		if _, err := drift.Get(name); err != nil {
			return err
		}
		if err := d.step0(name); err != nil {
			return err
		}
	}
	for _, sd := range seeds {
		seed := uint64(sd)
		for k := 1; k <= do.batches; k++ {
			for _, name := range presets {
				if _, err := os.Stat(d.cellPath(name, seed, k)); err == nil {
					continue
				}
				if late(filepath.Base(d.cellPath(name, seed, k))) {
					return nil
				}
				if err := d.fineTune(ctx, name, seed, k); err != nil {
					return fmt.Errorf("drift %s seed %d step %d: %w", name, seed, k, err)
				}
			}
		}
	}
	return nil
}

// checkBaseModel refuses the drift cells already in dirs when they started from
// another base model than model (-drift-base-model; empty: the table's own): a cell's
// name does not say which, so a rerun would skip them as done and the table would mix
// them with this run's.
func checkBaseModel(model string, dirs ...string) error {
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("drift cells: %w", err)
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), "base-") {
				continue
			}
			path := filepath.Join(dir, e.Name())
			c, err := readCell[driftCell](path)
			if err != nil {
				return err
			}
			if c.BaseModel != model {
				return fmt.Errorf("drift cell %s started from the base model %q, this run from %q: give this run an -out of its own", path, c.BaseModel, model)
			}
		}
	}
	return nil
}

func (d *driftBench) cellPath(preset string, seed uint64, step int) string {
	dir := d.cells
	if step == 0 {
		dir = d.dir
	}
	return filepath.Join(dir, fmt.Sprintf("%s%s-%s-%dx%d-base%d-seed%d-step%d.json", d.do.size, nn.PyramidSuffix(d.o.pyramid), preset, d.o.w, d.o.h, d.do.base, seed, step))
}

func (d *driftBench) paramsPath(preset string, seed uint64, step int) string {
	if step == 0 {
		return filepath.Join(d.dir, fmt.Sprintf("base-%s%s-%dx%d-%d-seed%d.params", d.do.size, nn.PyramidSuffix(d.o.pyramid), d.o.w, d.o.h, d.do.base, d.o.seed))
	}
	return strings.TrimSuffix(d.cellPath(preset, seed, step), ".json") + ".params"
}

// loadBase reads the base model, or trains it (a cell of its own: the mAP-vs-data
// table's pretrained cell at -drift-base scenes) and saves it.
func (d *driftBench) loadBase(ctx context.Context) error {
	if _, err := os.Stat(d.bb); err != nil {
		return fmt.Errorf("the drift table's base model starts from the backbone %s: %w", d.bb, err)
	}
	a, p, err := weights.BackboneDetector(d.bb, d.o.pyramid, d.o.w, d.o.h, 3, len(d.classes), d.o.seed, d.log)
	if err != nil {
		return err
	}
	if d.do.baseModel != "" {
		if err := readParams(d.do.baseModel, p); err != nil {
			return fmt.Errorf("-drift-base-model: %w", err)
		}
		d.log.Info("the drift table starts from a trained model", zap.String("model", d.do.baseModel), zap.String("network", a.Name))
		d.arch, d.base = a, p
		return nil
	}
	path := d.paramsPath("", 0, 0)
	if err := readParams(path, p); err == nil {
		d.arch, d.base = a, p
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	d.log.Info("training the drift table's base model", zap.Int("scenes", d.do.base), zap.Int("epochs", d.do.baseEpochs))
	ckpt := strings.TrimSuffix(path, ".params") + ".ckpt"
	c, a, p, err := d.runCell(ctx, "drift-base", d.do.size, d.do.base, d.do.baseEpochs, d.bb, ckpt)
	if err != nil {
		return fmt.Errorf("base model: %w", err)
	}
	raw, _ := json.MarshalIndent(c, "", "  ")
	if err := atomicfile.Write(strings.TrimSuffix(path, ".params")+".json", raw, 0o644); err != nil {
		return fmt.Errorf("saving the base cell: %w", err)
	}
	if err := writeParams(path, p); err != nil {
		return err
	}
	if err := os.Remove(ckpt); err != nil {
		d.log.Warn("the base model's checkpoint stays", zap.String("file", ckpt), zap.Error(err))
	}
	d.log.Info("base model done", zap.Float64("map50", c.MAP50), zap.Float64("map50_95", c.MAP5095), zap.Float64("train_seconds", c.Seconds))
	d.arch, d.base = a, p
	return nil
}

// step0 measures the base model on a preset's drifted test scenes: the drop.
func (d *driftBench) step0(name string) error {
	path := d.cellPath(name, 0, 0)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	c := d.newCell(name, 0, 0)
	if err := d.measure(&c, d.base); err != nil {
		return err
	}
	return d.save(path, c, nil)
}

func (d *driftBench) newCell(name string, seed uint64, step int) driftCell {
	return driftCell{Preset: name, Seed: seed, Step: step, Network: d.arch.Name, Input: fmt.Sprintf("%dx%d", d.o.w, d.o.h),
		BaseTrain: d.do.base, BaseModel: d.do.baseModel, Labels: step * d.do.batch, PerBatch: d.do.batch, Replay: d.do.replay, TestImages: len(d.data.Test)}
}

// corrections is correction batch k (1-based) of a preset and seed: batch drifted scenes,
// the same for every run.
func (d *driftBench) corrections(p drift.Preset, seed uint64, k int) ([]train.Sample, error) {
	return d.scenes(d.do.batch, 10000+100*seed+uint64(k), p)
}

// fineTune is step k of a preset and seed: the project's dataset after k correction
// batches (each split by the curator's rule), the retrain service's replay plan and
// fine-tune configuration, from step k−1's model.
func (d *driftBench) fineTune(ctx context.Context, name string, seed uint64, k int) error {
	p, err := drift.Get(name)
	if err != nil {
		return err
	}
	params := d.base.Clone()
	if k > 1 {
		if err := readParams(d.paramsPath(name, seed, k-1), params); err != nil {
			return fmt.Errorf("step %d's model: %w", k-1, err)
		}
	}
	// The project's dataset: the clean base scenes (snapshot 0; the clean validation
	// and test scenes fill val and test), then batch j at snapshot j.
	train0 := d.data.Train[:d.do.base]
	byID := make(map[string]train.Sample, len(train0)+k*d.do.batch)
	var entries []project.DatasetEntry
	add := func(s train.Sample, seq int) {
		labels := make([]project.Label, len(s.Boxes))
		for i, bx := range s.Boxes {
			labels[i] = project.Label{Class: d.classes[bx.Class]}
		}
		entries = append(entries, project.DatasetEntry{ID: s.ID, Split: "train", Seq: seq, Labels: labels})
		byID[s.ID] = s
	}
	for _, s := range train0 {
		add(s, 0)
	}
	val := slices.Clone(d.data.Val)
	counts := map[string]int{"train": len(train0), "val": len(val), "test": len(d.data.Test)}
	for j := 1; j <= k; j++ {
		batch, err := d.corrections(p, seed, j)
		if err != nil {
			return err
		}
		for _, s := range batch {
			split := project.AssignSplit(d.project.Split, s.ID, counts)
			counts[split]++
			switch split {
			case "train":
				add(s, j)
			case "val":
				val = append(val, s)
			}
		}
	}
	plan := retrain.PlanTraining(entries, d.classes, retrain.ModeReplay, k-1, d.do.replay, seed*1000+uint64(k))
	data := train.Split{Val: val, Test: d.data.Test}
	for _, e := range plan.Train {
		data.Train = append(data.Train, byID[e.ID])
	}
	cfg := retrain.TrainConfig(d.project, true, seed*100+uint64(k))
	cfg.Augment = augment.DefaultFor(d.arch) // as the service does for a project without its own
	t0 := time.Now()
	res, err := train.Run(ctx, d.arch, params, d.classes, data, cfg, d.choice.Factory)
	if err != nil && (res == nil || !errors.Is(err, train.ErrDiverged)) {
		return fmt.Errorf("fine-tune: %w", err)
	}
	c := d.newCell(name, seed, k)
	c.Train, c.New, c.Replayed, c.Val = len(data.Train), plan.New, plan.Replayed, len(val)
	c.Epochs, c.BestEpoch, c.LR, c.Batch, c.Seconds = len(res.History), res.BestEpoch, float64(cfg.LR), 64, time.Since(t0).Seconds()
	if cfg.BatchSize > 0 {
		c.Batch = cfg.BatchSize
	}
	c.KeepLast = cfg.KeepLast
	if err := d.measure(&c, res.Params); err != nil {
		return err
	}
	return d.save(d.cellPath(name, seed, k), c, res.Params)
}

// measure fills c's test figures: p on the preset's drifted test scenes (the clean ones'
// layouts under the drift) and on the clean test scenes.
func (d *driftBench) measure(c *driftCell, p *nn.Params) error {
	preset, err := drift.Get(c.Preset)
	if err != nil {
		return err
	}
	drifted, err := d.scenes(len(d.data.Test), 3, preset)
	if err != nil {
		return err
	}
	e, err := d.choice.Factory(nn.EngineConfig{Arch: d.arch, Params: p, BatchSize: 32})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	defer e.Close()
	c.Engine = e.Name()
	for _, set := range []struct {
		samples     []train.Sample
		at50, at595 *float64
	}{{drifted, &c.DriftMAP50, &c.DriftMAP5095}, {d.data.Test, &c.CleanMAP50, &c.CleanMAP5095}} {
		ev, err := train.Evaluate(e, d.arch, d.classes, set.samples, 32)
		if err != nil {
			return fmt.Errorf("evaluate: %w", err)
		}
		*set.at50, *set.at595 = ev.Detection.MAP50, ev.Detection.MAP5095
	}
	return nil
}

// save writes a cell (and its model, which the next step starts from).
func (d *driftBench) save(path string, c driftCell, p *nn.Params) error {
	if p != nil {
		if err := writeParams(strings.TrimSuffix(path, ".json")+".params", p); err != nil {
			return err
		}
	}
	raw, _ := json.MarshalIndent(c, "", "  ")
	if err := atomicfile.Write(path, raw, 0o644); err != nil {
		return fmt.Errorf("saving the drift cell: %w", err)
	}
	d.log.Info("drift cell done", zap.String("cell", filepath.Base(path)), zap.Float64("drift_map50", c.DriftMAP50),
		zap.Float64("clean_map50", c.CleanMAP50), zap.Float64("train_seconds", c.Seconds))
	return nil
}

// writeParams saves a model's values (gob) atomically, so that path is either absent
// or complete.
func writeParams(path string, p *nn.Params) error {
	err := atomicfile.WriteWith(path, 0o600, func(w io.Writer) error { return gob.NewEncoder(w).Encode(p.Values) })
	if err != nil {
		return fmt.Errorf("saving the model: %w", err)
	}
	return nil
}

// readParams reads writeParams' values into p, whose shapes they must have.
func readParams(path string, p *nn.Params) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var vs [][]float32
	if err := gob.NewDecoder(f).Decode(&vs); err != nil {
		return fmt.Errorf("model %s: %w", path, err)
	}
	if len(vs) != len(p.Values) {
		return fmt.Errorf("model %s: %d tensors, the network has %d", path, len(vs), len(p.Values))
	}
	for i, v := range vs {
		if len(v) != len(p.Values[i]) {
			return fmt.Errorf("model %s: tensor %d (%s) has %d values, the network %d", path, i, p.Specs[i].Name, len(v), len(p.Values[i]))
		}
		copy(p.Values[i], v)
	}
	return nil
}

// driftTable renders the drift cells: per preset and metric, the base model on clean
// and drifted scenes (dir's step-0 cells), then after 1, 3 and 5 correction batches on
// the drifted and the clean scenes (the fine-tune cells in cellDir, dir's own when
// cellDir is dir); a figure is the mean over the seeds measured, each seed's after it.
func driftTable(dir, cellDir string) (string, error) {
	var ents []string
	for _, from := range slices.Compact([]string{filepath.Clean(dir), filepath.Clean(cellDir)}) {
		des, err := os.ReadDir(from)
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		} else if err != nil {
			return "", err
		}
		for _, e := range des {
			if name := e.Name(); from == filepath.Clean(cellDir) || strings.HasSuffix(name, "-step0.json") {
				ents = append(ents, filepath.Join(from, name))
			}
		}
	}
	type key struct {
		preset string
		step   int
	}
	cells := map[key][]driftCell{}
	var presets []string
	var first *driftCell
	for _, path := range ents {
		name := filepath.Base(path)
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, "base-") {
			continue
		}
		c, err := readCell[driftCell](path)
		if err != nil {
			return "", err
		}
		k := key{c.Preset, c.Step}
		if c.Step == 0 && !slices.Contains(presets, c.Preset) {
			presets = append(presets, c.Preset)
		}
		cells[k] = append(cells[k], c)
		if first == nil {
			first = &c
		}
	}
	if len(presets) == 0 {
		return "", nil
	}
	sort.Strings(presets)
	fig := func(cs []driftCell, v func(driftCell) float64) string {
		if len(cs) == 0 {
			return "—"
		}
		sort.Slice(cs, func(i, j int) bool { return cs[i].Seed < cs[j].Seed })
		var sum float64
		var each []string
		for _, c := range cs {
			sum += v(c)
			each = append(each, fmt.Sprintf("%.3f", v(c)))
		}
		if len(cs) == 1 {
			return each[0]
		}
		return fmt.Sprintf("%.3f (%s)", sum/float64(len(cs)), strings.Join(each, " / "))
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nDrift presets (%s at %s from %d clean scenes; correction batches of %d drifted scenes, each fine-tuned on with the retrain service's replay mode, replay budget %d; %d test scenes each; mean over seeds, each seed's in brackets):\n",
		first.Network, strings.Replace(first.Input, "x", "×", 1), first.BaseTrain, first.PerBatch, first.Replay, first.TestImages)
	for _, m := range []struct {
		name         string
		drift, clean func(driftCell) float64
	}{
		{"mAP@0.5", func(c driftCell) float64 { return c.DriftMAP50 }, func(c driftCell) float64 { return c.CleanMAP50 }},
		{"mAP@[.5:.95]", func(c driftCell) float64 { return c.DriftMAP5095 }, func(c driftCell) float64 { return c.CleanMAP5095 }},
	} {
		fmt.Fprintf(&sb, "\n%s:\n\n| preset | clean | drifted | drop | drifted after 1 | after 3 | after 5 | clean after 1 | after 3 | after 5 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n", m.name)
		for _, p := range presets {
			base := cells[key{p, 0}]
			drop := "—"
			if len(base) > 0 {
				drop = fmt.Sprintf("%+.3f", m.drift(base[0])-m.clean(base[0]))
			}
			fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", p, fig(base, m.clean), fig(base, m.drift), drop,
				fig(cells[key{p, 1}], m.drift), fig(cells[key{p, 3}], m.drift), fig(cells[key{p, 5}], m.drift),
				fig(cells[key{p, 1}], m.clean), fig(cells[key{p, 3}], m.clean), fig(cells[key{p, 5}], m.clean))
		}
	}
	return sb.String(), nil
}
