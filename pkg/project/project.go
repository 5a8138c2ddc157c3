// Package project holds what every edgeloop service knows of a project: its settings
// (task, classes, batching, split, retraining policy), the records stored for it (example
// records, the open-batch ledger, correction batches, the dataset manifest), their object
// keys, and a Store that reads and writes them by compare-and-swap.
//
// Object storage layout, one prefix per project (p):
//
//	projects/p/project.json          Project
//	projects/p/images/<sha256>       image bytes, content-addressed, written once
//	projects/p/examples/<id>.json    ExampleRecord, CAS (a later example of its frame joins it)
//	projects/p/frames/<hash>.json    FrameRecord: which example holds a device's frame
//	projects/p/ledger.json           Ledger: the open batch (pending examples), CAS
//	projects/p/batches/<id>.json     Batch, CAS
//	projects/p/dataset.json          Dataset manifest: split of every example, CAS
//	projects/p/pseudo.json           PseudoSet: the agents' confident frames, CAS; apart
//	                                 from batches and the dataset (never val or test)
//
// and, shared by every project, backbones/<sha256>/<name>: uploaded pretrained weights
// that a project's model setting names (PutBackbone), content-addressed, written once.
package project

import (
	"fmt"
	"math"
	"time"

	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/selection"
)

// Project is one model line's settings.
type Project struct {
	ID      string        `json:"id"`
	Task    string        `json:"task"` // classify or detect
	Classes []string      `json:"classes"`
	Batch   BatchSettings `json:"batch"`
	Split   SplitSettings `json:"split"`
	// Model is the network the project trains, chosen at creation and fixed after it:
	// a family at a size, its input and channels, letterboxed or stretched. Absent, the
	// project trains the built-in network of its task (a 28×28 grey classifier, a 64×64
	// grey detector), as every project did before the setting existed.
	Model *nn.Spec `json:"model,omitempty"`
	// Augment is the training augmentation (retrain reads it).
	Augment *augment.Config `json:"augment,omitempty"`
	// Mirror says which classes a flip (augment's flip_h, flip_v) must never mirror and
	// which mirror into each other, by name: flips happen only where allowed.
	Mirror augment.Mirroring `json:"mirror,omitzero"`
	// Decode is how the agents turn a detector's output into boxes (minimum score,
	// NMS IoU, class-agnostic NMS, most boxes an image); the model file carries it to
	// them. Absent, the agents' defaults. Detection projects only.
	Decode *nn.Decoding `json:"decode,omitempty"`
	// Retrain is the retraining policy (retrain reads it).
	Retrain RetrainPolicy `json:"retrain"`
	// Review says who may approve a batch.
	Review    ReviewPolicy `json:"review"`
	CreatedAt time.Time    `json:"created_at"`
	// Audit records the changes of the class list: classes appended by an update,
	// classes removed by the explicit remove operation.
	Audit []AuditEntry `json:"audit,omitempty"`
	Rev   int          `json:"rev"`
}

// BatchSettings size correction batches.
type BatchSettings struct {
	Min int `json:"min"`
	Max int `json:"max"`
	// MaxWait closes a batch of at least Min once its oldest example waited this long.
	MaxWait config.Duration `json:"max_wait"`
	// Lease is how long a claim lasts without renewal.
	Lease config.Duration `json:"lease"`
	// Pool is how many candidates the curator gathers before it forms a batch of Max
	// from them (pool-based selection); a pool of Max or less (the default: Max) forms
	// a batch as soon as Max are waiting. bench/loop measured a pool of 4×Max with
	// Select diverse against batches as they come (docs/benchmarks.md): ahead on two
	// drifts, behind on the third, so it is an option, not the default.
	Pool int `json:"pool"`
	// Select is how a batch is picked from the candidates: selection.Oldest (the
	// default: round robin over predicted class and sampling reason, oldest first),
	// selection.Diverse (operator flags, then uncertain and mutually different frames,
	// class-balanced: BADGE-like), selection.ClusterMargin (the lowest margins
	// round-robin over clusters of the pool: Cluster-Margin) or selection.Typical
	// (TypiClust-like).
	Select string `json:"select"`
	// ColdStart is, with Select diverse, how many first batches of a project are picked
	// typical-first (selection.Typical) before Select takes over; a new site (a device
	// with fewer than Max examples batched) gets up to half of a batch typical-first
	// too. 0: the default (1); negative: never.
	ColdStart int `json:"cold_start"`
	// TTL is how long a candidate not picked waits for a later batch before it expires
	// (default 1h; it counts in the dashboard).
	TTL config.Duration `json:"ttl"`
}

// SplitSettings pin approved examples to splits (training overview: 80/10/10, val and
// test capped at 100 each).
type SplitSettings struct {
	Train   float64 `json:"train"`
	Val     float64 `json:"val"`
	Test    float64 `json:"test"`
	ValCap  int     `json:"val_cap"`
	TestCap int     `json:"test_cap"`
}

// ReviewPolicy says who may approve a batch.
type ReviewPolicy struct {
	// SelfApproval lets a person approve a batch they claimed, annotated or submitted
	// (a team of one). Off by default: a second person reviews every batch.
	SelfApproval bool `json:"self_approval"`
}

// RetrainPolicy says when approved batches trigger a training, and how it is gated.
type RetrainPolicy struct {
	// Trigger is "batch" (every approved batch) or "examples" (once MinNew new
	// examples arrived); "manual" only on request.
	Trigger string `json:"trigger"`
	MinNew  int    `json:"min_new,omitempty"`
	// Debounce waits this long after an approval for more before training.
	Debounce config.Duration `json:"debounce"`
	// Tolerance is deprecated and ignored: the gate decides per class on paired evidence
	// (PerClass). It is kept so that older project.json files load unchanged.
	Tolerance float64 `json:"tolerance,omitempty"`
	// MinGain is how much the headline metric must improve under Require "better", with
	// the gate's confidence: the lower confidence bound of the gain must exceed it (0:
	// any improvement that is significant).
	MinGain float64 `json:"min_gain"`
	// Confidence is the gate's confidence, overall and per class (default 0.95).
	Confidence float64 `json:"confidence"`
	// MinTest is the fewest test examples (images, for detection) the gate decides on;
	// below it a candidate is held for lack of evidence (default 30). The first model is
	// released without a comparison; an admin can promote a held one by hand.
	MinTest int `json:"min_test"`
	// Require is what the candidate must show: "better" (default: significantly better
	// than the release by more than MinGain) or "not_worse" (not worse by Margin or
	// more, with the gate's confidence: a non-inferiority test).
	Require string `json:"require"`
	// Margin is the non-inferiority margin of Require "not_worse" (absolute, e.g. 0.01).
	Margin float64 `json:"margin,omitempty"`
	// PerClass is when a class's regression refuses the candidate: "significant"
	// (default: the class's paired test says it is worse at the gate's confidence, Holm-
	// corrected over the classes), "count" (the class lost more than ClassMaxLoss test
	// examples net — objects found, for detection) or "off".
	PerClass string `json:"per_class"`
	// ClassMaxLoss is the net loss of a class that PerClass "count" tolerates.
	ClassMaxLoss int `json:"class_max_loss,omitempty"`
	Epochs       int `json:"epochs"`
	// FreezeBackbone fine-tunes the head only.
	FreezeBackbone bool    `json:"freeze_backbone"`
	LR             float32 `json:"lr"`
	// Replay bounds a fine-tune: it trains on the examples approved since the release
	// plus a class-balanced sample of this many from the rest of the train split, so
	// its time does not grow with the dataset (default 1,500; negative: no bound, every
	// fine-tune is a full one).
	Replay int `json:"replay"`
	// FullEvery makes every FullEvery-th training a full one, on the whole train split
	// (0: never by count).
	FullEvery int `json:"full_every,omitempty"`
	// FullAt runs a full training every day at this UTC time, "HH:MM" (empty: never).
	FullAt string `json:"full_at,omitempty"`
	// FullFrom is where a full training starts: "release" (default: fine-tune the
	// release on the whole train split) or "scratch" (fresh weights).
	FullFrom string `json:"full_from,omitempty"`
	// FineTuneKeep is which weights a fine-tune keeps: "last" (the default: its last
	// epoch's, train.Config.KeepLast) or "best" (the lowest val loss's, with early
	// stopping). The val split fills with a project's first examples (Split.ValCap), so
	// after a drift it no longer shows what a fine-tune adapts to and its lowest loss
	// picks the least adapted weights: in bench/loop "last" reached 85 % on rotated
	// digits with 50–100 fewer labels, for random sampling and the agent's default alike
	// (docs/benchmarks.md). The gate decides on the test split either way.
	FineTuneKeep string `json:"fine_tune_keep,omitempty"`
	// PseudoWeight is the loss weight of a pseudo-label (an agent's confident frame,
	// PseudoSet) in a fine-tune's train split, in (0, 1] (default 0.5; negative: none
	// used). Pseudo-labels are never in val or test: the gate decides on human labels.
	PseudoWeight float64 `json:"pseudo_weight,omitempty"`
	// PseudoMinConfidence is the edge confidence a pseudo-label needs to be trained on
	// (default 0.95).
	PseudoMinConfidence float64 `json:"pseudo_min_confidence,omitempty"`
	// PseudoMax is the most pseudo-labels a fine-tune uses, the newest (default 500).
	PseudoMax int `json:"pseudo_max,omitempty"`
}

// DefaultClassifyEpochs is a classifier project's most epochs per training (a
// detector's: 8).
const DefaultClassifyEpochs = 12

// Values of RetrainPolicy.FineTuneKeep.
const (
	FineTuneKeepLast = "last"
	FineTuneKeepBest = "best"
)

// Pseudo-label defaults (RetrainPolicy).
const (
	DefaultPseudoWeight        = 0.5
	DefaultPseudoMinConfidence = 0.95
	DefaultPseudoMax           = 500
)

// DefaultReplay is the replay budget of a fine-tune, in examples: with a batch of 50
// new ones, a 50,000-example project fine-tunes as fast as a 2,000-example one.
const DefaultReplay = 1500

// Defaults fills unset settings with the seed's values.
func (p *Project) Defaults() {
	config.IfZero(&p.Batch.Min, 30)
	config.IfZero(&p.Batch.Max, 50)
	config.IfZero(&p.Batch.MaxWait, config.Duration(10*time.Minute))
	config.IfZero(&p.Batch.Lease, config.Duration(30*time.Minute))
	config.IfZero(&p.Batch.Pool, p.Batch.Max)
	config.IfZero(&p.Batch.Select, selection.Oldest)
	config.IfZero(&p.Batch.ColdStart, 1)
	config.IfZero(&p.Batch.TTL, config.Duration(time.Hour))
	if p.Split.Train == 0 && p.Split.Val == 0 && p.Split.Test == 0 {
		p.Split.Train, p.Split.Val, p.Split.Test = 0.8, 0.1, 0.1
	}
	config.IfZero(&p.Split.ValCap, 100)
	config.IfZero(&p.Split.TestCap, 100)
	config.IfZero(&p.Retrain.Trigger, "batch")
	config.IfZero(&p.Retrain.Debounce, config.Duration(5*time.Second))
	config.IfZero(&p.Retrain.Confidence, 0.95)
	config.IfZero(&p.Retrain.MinTest, 30)
	config.IfZero(&p.Retrain.Require, "better")
	config.IfZero(&p.Retrain.PerClass, "significant")
	if p.Task == "classify" {
		// Fine-tunes keep their last epoch (FineTuneKeep); bench/loop measured 12 of them
		// ahead of 8 for random sampling and the default alike (docs/benchmarks.md). A
		// detector's fine-tune costs minutes an epoch on a CPU: it keeps 8.
		config.IfZero(&p.Retrain.Epochs, DefaultClassifyEpochs)
	}
	config.IfZero(&p.Retrain.Epochs, 8)
	config.IfZero(&p.Retrain.LR, 5e-4)
	config.IfZero(&p.Retrain.Replay, DefaultReplay)
	config.IfZero(&p.Retrain.FullFrom, "release")
	config.IfZero(&p.Retrain.FineTuneKeep, FineTuneKeepLast)
	config.IfZero(&p.Retrain.PseudoWeight, DefaultPseudoWeight)
	config.IfZero(&p.Retrain.PseudoMinConfidence, DefaultPseudoMinConfidence)
	config.IfZero(&p.Retrain.PseudoMax, DefaultPseudoMax)
	if p.Model != nil {
		p.Model.Defaults(nn.Task(p.Task))
	}
}

// Validate checks a project.
func (p *Project) Validate() error {
	if err := contract.CheckID("project", p.ID); err != nil {
		return err
	}
	if p.Task != "classify" && p.Task != "detect" {
		return fmt.Errorf("project %s: task %q: want classify or detect", p.ID, p.Task)
	}
	if len(p.Classes) < 1 || len(p.Classes) > 1000 {
		return fmt.Errorf("project %s: %d classes: want 1–1000", p.ID, len(p.Classes))
	}
	seen := map[string]bool{}
	for _, c := range p.Classes {
		if c == "" || seen[c] {
			return fmt.Errorf("project %s: class names must be unique and not empty", p.ID)
		}
		seen[c] = true
	}
	b := p.Batch
	if b.Min < 1 || b.Max < b.Min || b.Max > 1000 {
		return fmt.Errorf("project %s: batch min %d max %d: want 1 ≤ min ≤ max ≤ 1000", p.ID, b.Min, b.Max)
	}
	if b.Pool < 0 || b.Pool > 10000 || b.TTL < 0 {
		return fmt.Errorf("project %s: batch pool %d ttl %s: want 0 ≤ pool ≤ 10000 and ttl ≥ 0", p.ID, b.Pool, b.TTL.D())
	}
	switch b.Select {
	case "", selection.Diverse, selection.ClusterMargin, selection.Typical, selection.Oldest:
	default:
		return fmt.Errorf("project %s: batch select %q: want %s, %s, %s or %s", p.ID, b.Select, selection.Diverse, selection.ClusterMargin,
			selection.Typical, selection.Oldest)
	}
	s := p.Split
	if s.Train < 0 || s.Val < 0 || s.Test < 0 || s.Train+s.Val+s.Test < 0.999 || s.Train+s.Val+s.Test > 1.001 {
		return fmt.Errorf("project %s: split %v/%v/%v must add up to 1", p.ID, s.Train, s.Val, s.Test)
	}
	if s.ValCap < 0 || s.TestCap < 0 {
		return fmt.Errorf("project %s: split caps val %d test %d: want ≥ 0", p.ID, s.ValCap, s.TestCap)
	}
	if err := p.Retrain.validateGate(); err != nil {
		return fmt.Errorf("project %s: %w", p.ID, err)
	}
	if p.Retrain.Epochs < 1 {
		return fmt.Errorf("project %s: epochs %d: want at least 1", p.ID, p.Retrain.Epochs)
	}
	if !(p.Retrain.LR > 0) || math.IsInf(float64(p.Retrain.LR), 0) {
		return fmt.Errorf("project %s: lr %v: want a learning rate above 0 (e.g. 5e-4 for fine-tuning)", p.ID, p.Retrain.LR)
	}
	switch p.Retrain.Trigger {
	case "batch", "manual":
	case "examples":
		if p.Retrain.MinNew < 1 {
			return fmt.Errorf("project %s: trigger examples needs min_new ≥ 1", p.ID)
		}
	default:
		return fmt.Errorf("project %s: trigger %q: want batch, examples or manual", p.ID, p.Retrain.Trigger)
	}
	if p.Retrain.FullEvery < 0 {
		return fmt.Errorf("project %s: full_every %d: want 0 (never) or more", p.ID, p.Retrain.FullEvery)
	}
	if p.Retrain.FullAt != "" {
		if _, err := time.Parse("15:04", p.Retrain.FullAt); err != nil {
			return fmt.Errorf("project %s: full_at %q: want a UTC time of day HH:MM", p.ID, p.Retrain.FullAt)
		}
	}
	if p.Retrain.FullFrom != "release" && p.Retrain.FullFrom != "scratch" {
		return fmt.Errorf("project %s: full_from %q: want release or scratch", p.ID, p.Retrain.FullFrom)
	}
	if k := p.Retrain.FineTuneKeep; k != "" && k != FineTuneKeepLast && k != FineTuneKeepBest {
		return fmt.Errorf("project %s: fine_tune_keep %q: want %s or %s", p.ID, k, FineTuneKeepLast, FineTuneKeepBest)
	}
	if r := p.Retrain; r.PseudoWeight > 1 || r.PseudoMinConfidence < 0 || r.PseudoMinConfidence > 1 || r.PseudoMax < 0 {
		return fmt.Errorf("project %s: pseudo_weight %v, pseudo_min_confidence %v, pseudo_max %d: want weight ≤ 1 (negative: off), 0 ≤ confidence ≤ 1, max ≥ 0",
			p.ID, r.PseudoWeight, r.PseudoMinConfidence, r.PseudoMax)
	}
	if p.Model != nil {
		if _, err := p.Model.Build(nn.Task(p.Task), len(p.Classes)); err != nil {
			return fmt.Errorf("project %s: %w", p.ID, err)
		}
	}
	if p.Augment != nil {
		if err := p.Augment.Validate(); err != nil {
			return fmt.Errorf("project %s: %w", p.ID, err)
		}
	}
	if _, err := p.Mirror.Resolve(p.Classes); err != nil {
		return fmt.Errorf("project %s: %w", p.ID, err)
	}
	if p.Decode != nil {
		if p.Task != "detect" {
			return fmt.Errorf("project %s: decode is for detection projects; a %s project has no boxes to decode", p.ID, p.Task)
		}
		if err := p.Decode.Validate(); err != nil {
			return fmt.Errorf("project %s: %w", p.ID, err)
		}
	}
	return nil
}

// validateGate checks the gate's settings.
func (r RetrainPolicy) validateGate() error {
	if r.Confidence < 0.5 || r.Confidence >= 1 {
		return fmt.Errorf("confidence %v: want 0.5 ≤ confidence < 1 (e.g. 0.95)", r.Confidence)
	}
	if r.MinTest < 1 {
		return fmt.Errorf("min_test %d: want at least 1", r.MinTest)
	}
	if r.MinGain <= -1 || r.MinGain >= 1 {
		return fmt.Errorf("min_gain %v: want -1 < min_gain < 1", r.MinGain)
	}
	switch r.Require {
	case "better":
	case "not_worse":
		if r.Margin < 0 || r.Margin > 1 {
			return fmt.Errorf("margin %v: want 0 ≤ margin ≤ 1", r.Margin)
		}
	default:
		return fmt.Errorf("require %q: want better or not_worse", r.Require)
	}
	switch r.PerClass {
	case "significant", "off":
	case "count":
		if r.ClassMaxLoss < 0 {
			return fmt.Errorf("class_max_loss %d: want ≥ 0", r.ClassMaxLoss)
		}
	default:
		return fmt.Errorf("per_class %q: want significant, count or off", r.PerClass)
	}
	return nil
}

// Arch is the network a project without a model yet starts from: its Model's, or the
// built-in network of its task.
func (p *Project) Arch() (nn.Arch, error) {
	if p.Model != nil {
		return p.Model.Build(nn.Task(p.Task), len(p.Classes))
	}
	if p.Task == "detect" {
		return nn.DetectorArch(len(p.Classes)), nil
	}
	return nn.ClassifierArch(len(p.Classes)), nil
}

// ClassIndex maps class names to indices.
func (p *Project) ClassIndex() map[string]int {
	m := make(map[string]int, len(p.Classes))
	for i, c := range p.Classes {
		m[c] = i
	}
	return m
}
