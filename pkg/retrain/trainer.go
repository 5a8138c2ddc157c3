package retrain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/atomicfile"
	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/weights"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/registry"
	"github.com/edgeloop/edgeloop/pkg/train"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// loadEntries reads the images of dataset entries at the network's channels, fitted to
// its input as its preprocessing says (stretched or letterboxed, boxes moved with the
// pixels), and sorts them into their splits. Images are cached on disk by their
// content key. Unusable examples are skipped with a reason.
func (s *Service) loadEntries(ctx context.Context, p *project.Project, a nn.Arch, entries []project.DatasetEntry) (train.Split, []train.Skip, error) {
	idx := p.ClassIndex()
	var sp train.Split
	var skipped []train.Skip
	for _, e := range entries {
		im, err := s.image(ctx, e.Image, a.InC)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return sp, nil, err
			}
			skipped = append(skipped, train.Skip{Split: e.Split, ID: e.ID, Reason: err.Error()})
			continue
		}
		smp := train.Sample{ID: e.ID, Size: [2]int{im.W, im.H}}
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
		smp.Image, smp.Boxes, _ = vision.Fit(a, im, smp.Boxes)
		sp.Add(e.Split, smp)
	}
	return sp, skipped, nil
}

// image reads a content-addressed image (its key ends in its sha256) through the disk
// cache, decoded to channels (1 grey, 3 RGB). A cache file is used only if it hashes to
// its key, else it is fetched again: a file cut short by a crash would otherwise skip
// its example in every later training.
func (s *Service) image(ctx context.Context, key string, channels int) (*raster.Image, error) {
	name := path.Base(key)
	cache := filepath.Join(s.cfg.CacheDir, "images", name)
	if data, err := os.ReadFile(cache); err == nil && contentMatches(name, data) {
		return raster.DecodeChannels(data, 0, channels)
	}
	o, err := s.cur.S.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", key, err)
	}
	if !contentMatches(name, o.Data) {
		return nil, fmt.Errorf("image %s: its %d bytes do not hash to its content key", key, len(o.Data))
	}
	if err := writeCacheFile(cache, o.Data); err != nil {
		s.log.Warn("image not cached", zap.String("key", key), zap.Error(err)) // costs only a refetch
	}
	return raster.DecodeChannels(o.Data, 0, channels)
}

// contentMatches reports whether data hashes to name, when name is a hex sha256 (other
// keys cannot be checked and are trusted).
func contentMatches(name string, data []byte) bool {
	if len(name) != 64 {
		return true
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]) == name
}

// writeCacheFile writes data to path atomically (atomicfile), so that path is either
// absent or complete, making the cache directory first.
func writeCacheFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	return nil
}

// TrainConfig is how the service trains a project: fine-tuning from the release with
// the project's settings, or — without a parent — a first model for at least 6 epochs
// at its network's higher learning rate (nn.Arch.ScratchLR), from a backbone's trunk
// too: for the detector from the shipped n trunk on 300 scenes, 1e-2 scored test
// mAP@0.5 0.153 against 0.096 at a third of it (docs/benchmarks.md). A fine-tune
// keeps its last epoch's weights unless the project's fine_tune_keep is "best".
// Validation decodes detections with the NMS of the project's decode setting, as the
// gate does (train.DecodeWith).
func TrainConfig(p *project.Project, fineTune bool, seed uint64) train.Config {
	cfg := train.Config{Epochs: p.Retrain.Epochs, LR: p.Retrain.LR, Seed: seed, Patience: 3,
		FreezeBackbone: p.Retrain.FreezeBackbone && fineTune, Augment: augment.Default(),
		KeepLast: fineTune && p.Retrain.FineTuneKeep != project.FineTuneKeepBest, Decode: p.Decode}
	if p.Augment != nil {
		cfg.Augment = *p.Augment
	}
	if !fineTune {
		cfg.LR, cfg.Epochs = 1e-3, max(cfg.Epochs, 6)
		if a, err := p.Arch(); err == nil {
			cfg.LR = a.ScratchLR()
		}
	}
	return cfg
}

// adaptPlan is what ModeAdaptBN reads: the AdaptFrames most recently approved train
// examples (their images only).
func adaptPlan(entries []project.DatasetEntry) Plan {
	var train []project.DatasetEntry
	for _, e := range entries {
		if e.Split == "train" {
			train = append(train, e)
		}
	}
	slices.SortStableFunc(train, func(x, y project.DatasetEntry) int { return y.Seq - x.Seq })
	pl := Plan{Mode: ModeAdaptBN, Available: len(train)}
	pl.Train = train[:min(len(train), AdaptFrames)]
	pl.Recent = len(pl.Train)
	return pl
}

// planFor chooses a training's train examples for its mode: PlanTraining's, adaptPlan's
// for ModeAdaptBN, or sitePlan's and the site's pseudo-labels for SiteMode.
func (s *Service) planFor(ctx context.Context, p *project.Project, mode string, since int, d *project.Dataset, ps *project.PseudoSet) (Plan, []project.PseudoEntry, error) {
	switch base, site := SplitMode(mode); {
	case base == ModeAdaptBN && site == "":
		return adaptPlan(d.Entries), nil, nil
	case base == ModeAdaptBN:
		return s.sitePlan(ctx, p.ID, site, d.Entries, ps)
	}
	return PlanTraining(d.Entries, p.Classes, mode, since, p.Retrain.Replay, uint64(d.Seq)), nil, nil
}

// adaptBatch is the batch batch norm adaptation estimates the statistics over, and so
// the fewest frames it needs.
const adaptBatch = 32

// adaptBN is ModeAdaptBN's "training": the release's weights with batch norm
// statistics re-estimated on data's train images.
func (s *Service) adaptBN(ctx context.Context, a nn.Arch, release *nn.Params, data train.Split) (*train.Result, error) {
	ims := make([]*raster.Image, len(data.Train))
	for i, smp := range data.Train {
		ims[i] = smp.Image
	}
	params, err := train.AdaptBN(ctx, a, release, ims, adaptBatch, s.backend.Factory)
	if err != nil {
		return nil, err
	}
	res := &train.Result{Params: params, Engine: s.backend.Name}
	res.Examples.Train, res.Examples.Val, res.Examples.Test = len(data.Train), len(data.Val), len(data.Test)
	return res, nil
}

// Outcome is one training's result.
type Outcome struct {
	Version  *registry.Version
	Released bool
}

// TrainOnce trains a candidate of the project in the given mode ("" lets the policy
// decide: replay, or full when the policy's replay is negative) — a fine-tune of the
// released model, or a first model from scratch when there is none —, evaluates
// candidate and release on the same frozen test split, stores the candidate as a new
// version with the gate's decision and the mode and examples it trained on, and
// releases it when the gate says so. When the project's classes changed since the
// release, the release's head is remapped first (old classes keep their weights, new
// ones start small) and the release is gated as that remapped model. Every write is
// fenced: it happens only while fence holds (the trainer's lease), and the version's
// files carry its token.
func (s *Service) TrainOnce(ctx context.Context, project, trigger, mode string, fence registry.Fence) (*Outcome, error) {
	start := time.Now()
	if err := CheckMode(mode); err != nil {
		return nil, err
	}
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
	base, site := SplitMode(mode)
	if site != "" { // whatever its outcome, the next superseded site's turn
		defer s.readaptNext(ctx, project)
	}
	switch {
	case parent == nil && base == ModeAdaptBN:
		return nil, fmt.Errorf("project %s: batch norm adaptation needs a released model", project)
	case parent == nil:
		mode = ModeScratch
	case mode == "" && p.Retrain.Replay < 0:
		mode = ModeFull
	case mode == "":
		mode = ModeReplay
	}
	d, err := s.cur.Dataset(ctx, project)
	if err != nil {
		return nil, err
	}
	snapshot := fmt.Sprintf("ds-%d", d.Seq)
	cfg := TrainConfig(p, mode != ModeScratch, uint64(time.Now().UnixNano()))
	// current is the release as a network of the project's classes (for the gate).
	a, err := p.Arch()
	if err != nil {
		return nil, fmt.Errorf("project %s: %w", project, err)
	}
	init, current, curArch := (*nn.Params)(nil), (*nn.Params)(nil), nn.Arch{}
	if parent != nil {
		curArch, current = parent.Header.Arch, parent.Params
		if !slices.Equal(parent.Header.Classes, p.Classes) {
			if curArch, current, err = nn.RemapClasses(curArch, parent.Params, parent.Header.Classes, p.Classes, uint64(d.Seq)); err != nil {
				return nil, fmt.Errorf("released model v%d: %w", parentVersion, err)
			}
			s.log.Info("classes changed since the release: head remapped", zap.String("project", project),
				zap.Strings("from", parent.Header.Classes), zap.Strings("to", p.Classes))
		}
	}
	var backbone weights.Source
	switch {
	case mode == ModeScratch && p.Model != nil && p.Model.Backbone != "":
		b, err := s.cur.Backbone(ctx, *p.Model)
		if err != nil {
			return nil, fmt.Errorf("project %s: first model from its backbone: %w", project, err)
		}
		if a, init, backbone, err = weights.FromSpec(*p.Model, b, nn.Task(p.Task), len(p.Classes), cfg.Seed, s.log); err != nil {
			return nil, fmt.Errorf("project %s: first model from its backbone: %w", project, err)
		}
		s.log.Info("first model starts from the project's backbone", zap.String("project", project),
			zap.String("backbone", p.Model.Backbone), zap.String("sha256", backbone.SHA256))
	case mode == ModeScratch:
		if init, err = nn.InitParams(a, cfg.Seed); err != nil {
			return nil, err
		}
	default:
		a, init = curArch, current
	}
	since := 0
	if parent != nil {
		since = SnapshotSeq(parent.Header.Lineage.Dataset)
	}
	if p.Augment == nil {
		cfg.Augment = augment.DefaultFor(a) // colour networks get colour augmentation
	}
	if cfg.Augment.Mirror, err = p.Mirror.Resolve(p.Classes); err != nil {
		return nil, fmt.Errorf("project %s: %w", project, err)
	}
	ps, err := s.cur.Pseudo(ctx, project)
	if err != nil {
		return nil, err
	}
	plan, siteFrames, err := s.planFor(ctx, p, mode, since, d, ps)
	if err != nil {
		return nil, err
	}
	entries := plan.Train
	for _, e := range d.Entries {
		if e.Split == "val" || e.Split == "test" {
			entries = append(entries, e)
		}
	}
	data, skipped, err := s.loadEntries(ctx, p, a, entries)
	if err != nil {
		return nil, err
	}
	if len(siteFrames) > 0 { // their images only: adaptBN reads no label
		smps, skip, err := s.loadPseudo(ctx, p, a, siteFrames)
		if err != nil {
			return nil, err
		}
		data.Train, skipped = append(data.Train, smps...), append(skipped, skip...)
	}
	labelled := make(map[string]bool, len(d.Entries))
	for _, e := range d.Entries {
		labelled[e.ID] = true
	}
	pseudo := PseudoPlan(p, mode, ps, labelled)
	if len(pseudo) > 0 {
		smps, skip, err := s.loadPseudo(ctx, p, a, pseudo)
		if err != nil {
			return nil, err
		}
		data.Train, skipped, plan.Pseudo = append(data.Train, smps...), append(skipped, skip...), len(smps)
	}
	if err := HumanLabelledOnly(data, pseudo); err != nil {
		return nil, err
	}
	s.log.Info("training", zap.String("project", project), zap.Int64("parent", parentVersion), zap.String("snapshot", snapshot),
		zap.String("mode", mode), zap.Int("new", plan.New), zap.Int("replayed", plan.Replayed), zap.Int("recent", plan.Recent), zap.Int("available", plan.Available), zap.Int("pseudo", plan.Pseudo),
		zap.Int("train", len(data.Train)), zap.Int("val", len(data.Val)), zap.Int("test", len(data.Test)), zap.String("trigger", trigger))
	// trainErr is kept apart from err: a diverged training goes on to be evaluated, and
	// is refused below whatever the gate says.
	var res *train.Result
	var trainErr error
	if base == ModeAdaptBN {
		res, trainErr = s.adaptBN(ctx, a, init, data)
	} else {
		res, trainErr = train.Run(ctx, a, init, p.Classes, data, cfg, s.backend.Factory)
	}
	if trainErr != nil && (res == nil || !errors.Is(trainErr, train.ErrDiverged)) {
		return nil, trainErr
	}
	cand, err := evaluateParams(s.backend.Factory, a, res.Params, p.Classes, data.Test, p.Decode)
	if err != nil {
		return nil, err
	}
	var cur *train.Evaluation
	if current != nil {
		ev, err := evaluateParams(s.backend.Factory, curArch, current, p.Classes, data.Test, p.Decode)
		if err != nil {
			return nil, err
		}
		cur = &ev
	}
	metric := headlineName(a.Task)
	decision := Gate(metric, cand, cur, p.Retrain)
	if site != "" {
		sc, scur, n, err := s.siteEvaluations(ctx, project, site, d.Entries, data.Test, a, res.Params, curArch, current, p.Classes, p.Decode)
		if err != nil {
			return nil, err
		}
		decision = siteGate(site, metric, sc, scur, n, decision, p.Retrain)
	}
	if trainErr != nil { // diverged: never publish
		decision.Published, decision.Verdict = false, "refused"
		decision.Reasons = append(decision.Reasons, "refused: the training diverged: "+trainErr.Error())
	}
	version, err := s.reg.NextVersion(ctx, project)
	if err != nil {
		return nil, err
	}
	settings, _ := json.Marshal(cfg)
	model := &artifact.Model{Params: res.Params, Header: artifact.Header{Arch: a, Model: p.Model, Classes: p.Classes, Decode: p.Decode, Project: project, Version: version,
		CreatedAt: time.Now().UTC(), Lineage: artifact.Lineage{ParentVersion: parentVersion, ParentSHA256: parentSHA, Dataset: snapshot, Settings: settings,
			Mirror: p.Mirror, Mode: mode, Examples: len(data.Train), Backbone: backbone.File, BackboneSHA256: backbone.SHA256},
		Metrics: map[string]float64{"test_" + metric: decision.Candidate}}}
	mb, err := artifact.Encode(model)
	if err != nil {
		return nil, err
	}
	m := &Metrics{Task: a.Task, Dataset: project + "/" + snapshot, EpochsRun: len(res.History), BestEpoch: res.BestEpoch,
		StoppedEarly: res.StoppedEarly, Overfitting: res.Overfitting, OverfitFrom: res.OverfitFrom,
		Examples: map[string]int{"train": res.Examples.Train, "val": res.Examples.Val, "test": res.Examples.Test},
		Warnings: res.Warnings, Engine: res.Engine, Seconds: time.Since(start).Seconds(), Settings: cfg,
		ValMetricName: "val_" + metric, Plan: &plan, Model: ModelRef{File: "model.elm", SHA256: artifact.SHA256(mb), ParentSHA256: parentSHA, ParentVersion: parentVersion}}
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
		Decision: decision, Classes: p.Classes, Task: p.Task, Mode: mode, Site: site,
		Examples: map[string]int{"train": len(data.Train), "new": plan.New, "replayed": plan.Replayed, "recent": plan.Recent,
			"available": plan.Available, "pseudo": plan.Pseudo, "test": len(data.Test)}}
	aug := train.Augmented(a, data.Train, cfg.Augment, reportSamples, cfg.Seed)
	if err := s.reg.Put(ctx, ver, mb, mj, TrainingReport(m, p.Classes, aug), s.key, fence); err != nil {
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
		if err := fence.Held(ctx); err != nil {
			return out, fmt.Errorf("release of %s v%d: %w", project, version, err)
		}
		if site != "" {
			if _, err := s.reg.SetSiteRelease(ctx, project, site, version, "site", "retrain"); err != nil {
				return out, err
			}
			out.Released = true
			return out, nil
		}
		rel, err := s.reg.SetRelease(ctx, project, version, reason, "retrain", false)
		if rel != nil { // moved (even if its announcement failed): superseded sites' turn
			s.readaptNext(ctx, project)
		}
		if err != nil {
			return out, err
		}
		out.Released = true
	}
	return out, nil
}

// readaptNext asks for a new batch norm adaptation of one site whose release the
// project release supersedes (its device is back on the project release meanwhile),
// gated like any site candidate. It runs after each project release and after each
// site's training, so superseded sites are re-adapted one after another; each is asked
// for once per project release (ClaimReadaptation), whatever its outcome. A failure is
// logged: the site stays on the project release until an admin asks.
func (s *Service) readaptNext(ctx context.Context, project string) {
	rel, err := s.reg.Current(ctx, project)
	if err != nil {
		return
	}
	sites, err := s.reg.SiteReleases(ctx, project)
	if err != nil {
		s.log.Warn("site releases not read: their sites are not adapted to the new release", zap.String("project", project), zap.Error(err))
		return
	}
	for _, sr := range sites {
		if registry.SiteStatus(sr, rel) != registry.SiteSuperseded {
			continue
		}
		claimed, err := s.reg.ClaimReadaptation(ctx, project, sr.Site, rel.Rev)
		if err != nil || !claimed {
			continue
		}
		id, err := s.reg.RequestTraining(ctx, project, "retrain", SiteMode(sr.Site))
		if err != nil {
			s.log.Warn("site not re-adapted to the new release", zap.String("project", project), zap.String("site", sr.Site), zap.Error(err))
			continue
		}
		s.log.Info("site re-adaptation requested: the project release supersedes its site release", zap.String("project", project),
			zap.String("site", sr.Site), zap.Int64("site_version", sr.Version), zap.Int64("release", rel.Version), zap.String("request", id))
		return
	}
}
