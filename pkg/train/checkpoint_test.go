package train_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// stopped runs cfg with a checkpoint at path and cancels it once epoch after has
// finished; the cancelled run must say so.
func stopped(t *testing.T, a nn.Arch, data train.Split, cfg train.Config, path string, after int) {
	t.Helper()
	p, err := nn.InitParams(a, cfg.Seed)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.Checkpoint = path
	cfg.Progress = func(pr train.Progress) {
		if pr.Done != nil && pr.Done.Epoch == after {
			cancel()
		}
	}
	if _, err := train.Run(ctx, a, p, datasets.Classes(), data, cfg, gorgoniaengine.Factory); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled after epoch %d: %v, want context.Canceled", after, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no checkpoint after a cancelled training: %v", err)
	}
}

// sameRun fails unless resumed ended as whole did: the same weights to the bit, the
// same per-epoch losses and metrics, best epoch, early stop and overfitting flag.
func sameRun(t *testing.T, whole, resumed *train.Result) {
	t.Helper()
	if len(whole.History) != len(resumed.History) {
		t.Fatalf("resumed training ran %d epochs, the whole one %d", len(resumed.History), len(whole.History))
	}
	for i, h := range whole.History {
		r := resumed.History[i]
		if h.TrainLoss != r.TrainLoss || h.ValLoss != r.ValLoss || h.ValMetric != r.ValMetric {
			t.Fatalf("epoch %d: whole %+v, resumed %+v", i+1, h, r)
		}
	}
	if whole.BestEpoch != resumed.BestEpoch || whole.StoppedEarly != resumed.StoppedEarly || whole.Overfitting != resumed.Overfitting ||
		whole.OverfitFrom != resumed.OverfitFrom || !slices.Equal(whole.Warnings, resumed.Warnings) {
		t.Fatalf("whole: best %d, stopped early %v, overfitting %v from %d, %q; resumed: best %d, stopped early %v, overfitting %v from %d, %q",
			whole.BestEpoch, whole.StoppedEarly, whole.Overfitting, whole.OverfitFrom, whole.Warnings,
			resumed.BestEpoch, resumed.StoppedEarly, resumed.Overfitting, resumed.OverfitFrom, resumed.Warnings)
	}
	for i, v := range whole.Params.Values {
		if !slices.Equal(v, resumed.Params.Values[i]) {
			t.Fatalf("tensor %s differs between the whole and the resumed training", whole.Params.Specs[i].Name)
		}
	}
}

// TestResumedTrainingEndsAsAnUninterruptedOne: a training stopped after an epoch and
// run again with the same checkpoint goes on from the next epoch (Adam's moments,
// the cosine schedule, the weight average and each epoch's augmentation where they
// were) and ends with the uninterrupted training's weights to the bit; so does one
// that stops early, with its best epoch and overfitting flag.
func TestResumedTrainingEndsAsAnUninterruptedOne(t *testing.T) {
	all := tiny(t, 160, false)
	noisy := tiny(t, 260, true)
	mixed := slices.Clone(all[:128]) // pseudo-labels of weight ½ in their strong view
	for i := range mixed {
		if i%3 == 0 {
			mixed[i].Weight, mixed[i].Strong = 0.5, true
		}
	}
	a := nn.ClassifierArch(10)
	for _, c := range []struct {
		name  string
		data  train.Split
		cfg   train.Config
		after int
	}{
		{"augmented", train.Split{Train: all[:128], Val: all[128:]}, train.Config{Epochs: 4, Seed: 11, BatchSize: 32, Patience: -1, Augment: augment.Default()}, 2},
		{"ema", train.Split{Train: all[:128], Val: all[128:]}, train.Config{Epochs: 3, Seed: 4, BatchSize: 32, Patience: -1, EMA: 0.9, Augment: augment.None()}, 1},
		{"early stop", train.Split{Train: noisy[:200], Val: noisy[200:]}, train.Config{Epochs: 25, Patience: 3, Seed: 3, LR: 3e-3, BatchSize: 32, Augment: augment.None()}, 4},
		{"frozen backbone, weighted strong views", train.Split{Train: mixed, Val: all[128:]}, train.Config{Epochs: 3, Seed: 6, BatchSize: 32, Patience: -1, FreezeBackbone: true, Augment: augment.Default()}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			whole := run(t, a, c.data, c.cfg)
			// The early-stop case is flagged overfitting before it is stopped (epoch
			// OverfitFrom+1 ≤ after), so that the resume restores the flag and its
			// warning, and it stops early after the resume.
			if c.cfg.Patience > 0 && (!whole.Overfitting || whole.OverfitFrom+1 > c.after || !whole.StoppedEarly || len(whole.History) <= c.after) {
				t.Fatalf("the early-stop case must be flagged by epoch %d and stop early after it: overfitting %v from %d, stopped early %v after %d epochs",
					c.after, whole.Overfitting, whole.OverfitFrom, whole.StoppedEarly, len(whole.History))
			}
			path := filepath.Join(t.TempDir(), "run.ckpt")
			stopped(t, a, c.data, c.cfg, path, c.after)
			cfg := c.cfg
			cfg.Checkpoint = path
			var epochs []int
			cfg.Progress = func(pr train.Progress) {
				if pr.Done != nil {
					epochs = append(epochs, pr.Done.Epoch)
				}
			}
			resumed := run(t, a, c.data, cfg)
			if resumed.ResumedFrom != c.after || len(epochs) == 0 || epochs[0] != c.after+1 {
				t.Fatalf("resumed from epoch %d and ran epochs %v, want from %d", resumed.ResumedFrom, epochs, c.after)
			}
			sameRun(t, whole, resumed)
			// A finished checkpoint is the finished training: nothing runs again.
			epochs = nil
			again := run(t, a, c.data, cfg)
			if len(epochs) != 0 || again.ResumedFrom != len(whole.History) {
				t.Fatalf("a finished training ran epochs %v again (resumed from %d)", epochs, again.ResumedFrom)
			}
			sameRun(t, whole, again)
		})
	}
}

// TestCheckpointOfAnotherTrainingIsRefused: a checkpoint is only resumed by the
// training that wrote it; another learning rate, other examples, an image whose pixels
// changed or a damaged file get an error that names the file, never a silent restart.
func TestCheckpointOfAnotherTrainingIsRefused(t *testing.T) {
	all := tiny(t, 160, false)
	data := train.Split{Train: all[:128], Val: all[128:]}
	a := nn.ClassifierArch(10)
	cfg := train.Config{Epochs: 2, Seed: 5, BatchSize: 32, Augment: augment.None()}
	path := filepath.Join(t.TempDir(), "run.ckpt")
	stopped(t, a, data, cfg, path, 1)
	p, err := nn.InitParams(a, cfg.Seed)
	if err != nil {
		t.Fatal(err)
	}
	refused := func(what string, data train.Split, cfg train.Config, want string) {
		t.Helper()
		cfg.Checkpoint = path
		_, err := train.Run(context.Background(), a, p, datasets.Classes(), data, cfg, gorgoniaengine.Factory)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want an error naming %s and saying %q", what, err, path, want)
		}
	}
	other := cfg
	other.LR = 5e-3
	refused("another learning rate", data, other, "another training")
	refused("other examples", train.Split{Train: all[1:129], Val: all[128:]}, cfg, "another training")
	changed := slices.Clone(data.Train)
	changed[7].Image = changed[7].Image.Clone()
	changed[7].Image.Pix[100] += 0.5
	refused("one image's pixels changed", train.Split{Train: changed, Val: data.Val}, cfg, "another training")
	if err := os.WriteFile(path, []byte("not a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	refused("a damaged file", data, cfg, "unreadable")
}

// renamed is the CPU engine under another name: resuming on it is a hand-over to
// another engine.
type renamed struct{ nn.Engine }

func (renamed) Name() string { return "another engine" }

// TestHandoverWarningOutlivesLaterResumes: a training resumed on another engine says so
// in its result, and still does after it was stopped again and resumed on that engine,
// whose own checkpoint no longer names the first.
func TestHandoverWarningOutlivesLaterResumes(t *testing.T) {
	all := tiny(t, 160, false)
	data := train.Split{Train: all[:128], Val: all[128:]}
	a := nn.ClassifierArch(10)
	cfg := train.Config{Epochs: 3, Seed: 5, BatchSize: 32, Patience: -1, Augment: augment.None()}
	path := filepath.Join(t.TempDir(), "run.ckpt")
	stopped(t, a, data, cfg, path, 1)
	other := func(c nn.EngineConfig) (nn.Engine, error) {
		e, err := gorgoniaengine.Factory(c)
		if err != nil {
			return nil, err
		}
		return renamed{e}, nil
	}
	p, err := nn.InitParams(a, cfg.Seed)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	second := cfg
	second.Checkpoint = path
	second.Progress = func(pr train.Progress) {
		if pr.Done != nil && pr.Done.Epoch == 2 {
			cancel()
		}
	}
	if _, err := train.Run(ctx, a, p, datasets.Classes(), data, second, other); !errors.Is(err, context.Canceled) {
		t.Fatalf("second run, cancelled after epoch 2: %v, want context.Canceled", err)
	}
	last := cfg
	last.Checkpoint = path
	res, err := train.Run(context.Background(), a, p, datasets.Classes(), data, last, other)
	if err != nil {
		t.Fatal(err)
	}
	handovers := slices.DeleteFunc(slices.Clone(res.Warnings), func(w string) bool { return !strings.Contains(w, "resumed after epoch") })
	if res.ResumedFrom != 2 || len(handovers) != 1 || !strings.Contains(handovers[0], "resumed after epoch 1") ||
		!strings.Contains(handovers[0], "another engine") {
		t.Fatalf("resumed from %d with warnings %q, want from 2 with the hand-over after epoch 1", res.ResumedFrom, res.Warnings)
	}
}
