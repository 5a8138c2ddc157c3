// Package simannotator is a simulated annotator and reviewer for `make run
// --auto-annotate`: it claims ready batches, corrects every example from the
// simulator's ground truth (or the operator's correction) with a configurable error
// rate and delay, submits, and approves — so that the loop runs by itself.
package simannotator

import (
	"context"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// Config tunes the simulated people.
type Config struct {
	// Annotator and Reviewer are the names they work under.
	Annotator, Reviewer string
	// ErrorRate is the share of examples labelled wrong on purpose.
	ErrorRate float64
	// Delay is the time spent on each example.
	Delay time.Duration
	// Poll is how often the queue is checked (default 1s).
	Poll time.Duration
	Seed uint64
}

// Run works on every project's ready batches until ctx ends.
func Run(ctx context.Context, cur *curator.Curator, c Config, log *zap.Logger) error {
	if c.Annotator == "" {
		c.Annotator = "sim-annotator"
	}
	if c.Reviewer == "" {
		c.Reviewer = "sim-reviewer"
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	r := rand.New(rand.NewPCG(c.Seed, 17))
	t := time.NewTicker(c.Poll)
	defer t.Stop()
	for {
		ps, err := cur.Store().Projects(ctx)
		if err == nil {
			for _, p := range ps {
				if err := work(ctx, cur, p, c, r, log); err != nil && ctx.Err() == nil {
					log.Warn("simulated annotation failed", zap.String("project", p.ID), zap.Error(err))
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func work(ctx context.Context, cur *curator.Curator, p *project.Project, c Config, r *rand.Rand, log *zap.Logger) error {
	list, err := cur.List(ctx, p.ID, curator.Filter{})
	if err != nil {
		return err
	}
	for _, s := range list {
		mine := s.State == project.StateInProgress && s.Claim != nil && s.Claim.User == c.Annotator
		if s.State != project.StateReady && !mine && s.State != project.StateSubmitted {
			continue
		}
		if s.State != project.StateSubmitted {
			b, err := cur.Claim(ctx, p.ID, s.ID, c.Annotator)
			if err != nil {
				return err
			}
			wrong := 0
			for _, it := range b.Items {
				if it.Status != "" {
					continue
				}
				labels, status := answer(ctx, cur, p, it.ExampleID)
				if status == "done" && r.Float64() < c.ErrorRate {
					labels = mistake(p, labels, r)
					wrong++
				}
				if _, err := cur.SaveItem(ctx, p.ID, s.ID, it.ExampleID, c.Annotator, labels, status); err != nil {
					return err
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(c.Delay):
				}
			}
			if _, err := cur.Submit(ctx, p.ID, s.ID, c.Annotator); err != nil {
				return err
			}
			log.Info("batch corrected", zap.String("project", p.ID), zap.String("batch", s.ID), zap.Int("examples", len(b.Items)), zap.Int("wrong_on_purpose", wrong))
		}
		if _, err := cur.Approve(ctx, p.ID, s.ID, c.Reviewer); err != nil {
			return err
		}
	}
	return nil
}

// answer is the right label: the simulator's truth, else the operator's correction,
// else the model's prediction (taken as right); an example whose record is gone is
// skipped as unusable.
func answer(ctx context.Context, cur *curator.Curator, p *project.Project, id string) ([]project.Label, string) {
	rec, err := cur.Store().Example(ctx, p.ID, id)
	if err != nil {
		return nil, "skipped"
	}
	switch {
	case len(rec.Truth) > 0:
		return rec.Truth, "done"
	case len(rec.Correction) > 0:
		return rec.Correction, "done"
	}
	var out []project.Label
	for _, pr := range rec.Predictions {
		if p.Task == "classify" {
			return []project.Label{{Class: pr.Class}}, "done"
		}
		if pr.Box != nil && pr.Confidence >= 0.5 {
			out = append(out, project.Label{Class: pr.Class, Box: pr.Box})
		}
	}
	if p.Task == "classify" {
		return nil, "skipped"
	}
	return out, "done"
}

// mistake changes one label's class, as a tired annotator would.
func mistake(p *project.Project, labels []project.Label, r *rand.Rand) []project.Label {
	if len(labels) == 0 {
		return labels
	}
	out := append([]project.Label(nil), labels...)
	i := r.IntN(len(out))
	other := p.Classes[r.IntN(len(p.Classes))]
	for other == out[i].Class && len(p.Classes) > 1 {
		other = p.Classes[r.IntN(len(p.Classes))]
	}
	out[i].Class = other
	return out
}
