package retrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/registry"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// archFor is the network of a project without a model yet.
func archFor(p *project.Project) nn.Arch {
	if p.Task == "detect" {
		return nn.DetectorArch(len(p.Classes))
	}
	return nn.ClassifierArch(len(p.Classes))
}

// loadDataset reads the project's dataset (every example in its pinned split) with its
// images, resized to the network's input. Images are cached on disk by their content
// key. Unusable examples are skipped with a reason.
func (s *Service) loadDataset(ctx context.Context, p *project.Project, a nn.Arch) (train.Split, string, []train.Skip, error) {
	d, err := s.cur.Dataset(ctx, p.ID)
	if err != nil {
		return train.Split{}, "", nil, err
	}
	idx := p.ClassIndex()
	var sp train.Split
	var skipped []train.Skip
	for _, e := range d.Entries {
		im, err := s.image(ctx, e.Image)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return sp, "", nil, err
			}
			skipped = append(skipped, train.Skip{Split: e.Split, ID: e.ID, Reason: err.Error()})
			continue
		}
		smp := train.Sample{ID: e.ID, Image: raster.Resize(im, a.InW, a.InH)}
		bad := ""
		for _, l := range e.Labels {
			c, ok := idx[l.Class]
			if !ok {
				bad = fmt.Sprintf("class %q is not one of the project's", l.Class)
				break
			}
			if p.Task == "classify" {
				smp.Label = c
			} else if l.Box != nil {
				smp.Boxes = append(smp.Boxes, nn.Box{X0: l.Box.X0, Y0: l.Box.Y0, X1: l.Box.X1, Y1: l.Box.Y1, Class: c})
			}
		}
		if bad != "" || (p.Task == "classify" && len(e.Labels) == 0) {
			if bad == "" {
				bad = "no label"
			}
			skipped = append(skipped, train.Skip{Split: e.Split, ID: e.ID, Reason: bad})
			continue
		}
		switch e.Split {
		case "val":
			sp.Val = append(sp.Val, smp)
		case "test":
			sp.Test = append(sp.Test, smp)
		default:
			sp.Train = append(sp.Train, smp)
		}
	}
	return sp, fmt.Sprintf("ds-%d", d.Seq), skipped, nil
}

func (s *Service) image(ctx context.Context, key string) (*raster.Image, error) {
	cache := filepath.Join(s.cfg.CacheDir, "images", path.Base(key))
	data, err := os.ReadFile(cache)
	if err != nil {
		o, err := s.cur.S.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", key, err)
		}
		data = o.Data
		_ = os.MkdirAll(filepath.Dir(cache), 0o755)
		_ = os.WriteFile(cache, data, 0o644) // a cache: failure only costs a refetch
	}
	return raster.Decode(data)
}

// TrainConfig is how the service trains a project: fine-tuning from the release with
// the project's settings, or — without a parent — a first model from scratch at a
// higher learning rate for at least 6 epochs.
func TrainConfig(p *project.Project, fineTune bool, seed uint64) train.Config {
	cfg := train.Config{Epochs: p.Retrain.Epochs, LR: p.Retrain.LR, Seed: seed, Patience: 3,
		FreezeBackbone: p.Retrain.FreezeBackbone && fineTune, Augment: augment.Default()}
	if p.Augment != nil {
		cfg.Augment = *p.Augment
	}
	if !fineTune {
		cfg.LR, cfg.Epochs = 1e-3, max(cfg.Epochs, 6)
	}
	return cfg
}

// Outcome is one training's result.
type Outcome struct {
	Version  *registry.Version
	Released bool
}

// TrainOnce fine-tunes the project's released model (or trains a first one) on its
// dataset, evaluates candidate and release on the same frozen test split, stores the
// candidate as a new version with the gate's decision, and releases it when the gate
// says so.
func (s *Service) TrainOnce(ctx context.Context, project, trigger string) (*Outcome, error) {
	start := time.Now()
	p, err := s.cur.Project(ctx, project)
	if err != nil {
		return nil, err
	}
	var parent *artifact.Model
	var parentVersion int64
	var parentSHA string
	rel, err := s.reg.Current(ctx, project)
	switch {
	case err == nil:
		if parent, err = s.reg.Model(ctx, project, rel.Version); err != nil {
			return nil, fmt.Errorf("released model v%d: %w", rel.Version, err)
		}
		parentVersion, parentSHA = rel.Version, rel.SHA256
	case errors.Is(err, registry.ErrNotFound):
	default:
		return nil, err
	}
	a := archFor(p)
	if parent != nil {
		a = parent.Header.Arch
	}
	data, snapshot, skipped, err := s.loadDataset(ctx, p, a)
	if err != nil {
		return nil, err
	}
	cfg := TrainConfig(p, parent != nil, uint64(time.Now().UnixNano()))
	init := (*nn.Params)(nil)
	if parent != nil {
		init = parent.Params
	} else if init, err = nn.InitParams(a, cfg.Seed); err != nil {
		return nil, err
	}
	s.log.Info("training", zap.String("project", project), zap.Int64("parent", parentVersion), zap.String("snapshot", snapshot),
		zap.Int("train", len(data.Train)), zap.Int("val", len(data.Val)), zap.Int("test", len(data.Test)), zap.String("trigger", trigger))
	res, err := train.Run(ctx, a, init, p.Classes, data, cfg, s.backend.Factory)
	if err != nil && (res == nil || !errors.Is(err, train.ErrDiverged)) {
		return nil, err
	}
	cand, err := evaluateParams(s.backend.Factory, a, res.Params, p.Classes, data.Test)
	if err != nil {
		return nil, err
	}
	var cur *train.Evaluation
	if parent != nil {
		ev, err := evaluateParams(s.backend.Factory, a, parent.Params, p.Classes, data.Test)
		if err != nil {
			return nil, err
		}
		cur = &ev
	}
	metric := headlineName(a.Task)
	decision := Gate(metric, cand, cur, p.Retrain)
	if err != nil { // diverged: never publish
		decision.Published, decision.Verdict = false, "refused"
		decision.Reasons = append(decision.Reasons, err.Error())
	}
	version, err := s.reg.NextVersion(ctx, project)
	if err != nil {
		return nil, err
	}
	settings, _ := json.Marshal(cfg)
	model := &artifact.Model{Params: res.Params, Header: artifact.Header{Arch: a, Classes: p.Classes, Project: project, Version: version,
		CreatedAt: time.Now().UTC(), Lineage: artifact.Lineage{ParentVersion: parentVersion, ParentSHA256: parentSHA, Dataset: snapshot, Settings: settings},
		Metrics: map[string]float64{"test_" + metric: decision.Candidate}}}
	mb, err := artifact.Encode(model)
	if err != nil {
		return nil, err
	}
	m := &Metrics{Task: a.Task, Dataset: project + "/" + snapshot, EpochsRun: len(res.History), BestEpoch: res.BestEpoch,
		StoppedEarly: res.StoppedEarly, Overfitting: res.Overfitting, OverfitFrom: res.OverfitFrom,
		Examples: map[string]int{"train": res.Examples.Train, "val": res.Examples.Val, "test": res.Examples.Test},
		Warnings: res.Warnings, Engine: res.Engine, Seconds: time.Since(start).Seconds(), Settings: cfg,
		ValMetricName: "val_" + metric, Model: ModelRef{File: "model.elm", SHA256: artifact.SHA256(mb), ParentSHA256: parentSHA, ParentVersion: parentVersion}}
	for _, h := range res.History {
		m.TrainLoss, m.ValLoss, m.ValMetric = append(m.TrainLoss, h.TrainLoss), append(m.ValLoss, h.ValLoss), append(m.ValMetric, h.ValMetric)
	}
	for _, sk := range skipped {
		m.Warnings = append(m.Warnings, fmt.Sprintf("skipped %s example %s: %s", sk.Split, sk.ID, sk.Reason))
	}
	m.SetTest(cand)
	mj, _ := json.MarshalIndent(m, "", "  ")
	ver := &registry.Version{Project: project, Version: version, Parent: parentVersion, Snapshot: snapshot, Trigger: trigger,
		Engine: res.Engine, Seconds: m.Seconds, Metrics: map[string]float64{"test_" + metric: decision.Candidate},
		Decision: decision, Classes: p.Classes, Task: p.Task}
	if err := s.reg.Put(ctx, ver, mb, mj, TrainingReport(m, p.Classes), s.key); err != nil {
		return nil, err
	}
	out := &Outcome{Version: ver}
	s.log.Info("candidate stored", zap.String("project", project), zap.Int64("version", version), zap.Bool("publish", decision.Published),
		zap.Float64("candidate", decision.Candidate), zap.Float64("current", decision.Current), zap.Strings("reasons", decision.Reasons),
		zap.Duration("took", time.Since(start)))
	if decision.Published {
		reason := "retrain"
		if parent == nil {
			reason = "bootstrap"
		}
		if _, err := s.reg.SetRelease(ctx, project, version, reason, "retrain", false); err != nil {
			return out, err
		}
		out.Released = true
	}
	return out, nil
}
