package retrain

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/train"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// PseudoPlan picks the pseudo-labels a fine-tune (ModeReplay or ModeFull of a
// classifier) trains on: those at or above the project's pseudo_min_confidence, of a
// class it knows, that are no human-labelled example (labelled: the dataset's ids),
// the newest pseudo_max; none when pseudo_weight is negative.
func PseudoPlan(p *project.Project, mode string, ps *project.PseudoSet, labelled map[string]bool) []project.PseudoEntry {
	r := p.Retrain
	if p.Task != "classify" || (mode != ModeReplay && mode != ModeFull) || r.PseudoWeight <= 0 || r.PseudoMax <= 0 || ps == nil {
		return nil
	}
	idx := p.ClassIndex()
	var out []project.PseudoEntry
	for i := len(ps.Entries) - 1; i >= 0 && len(out) < r.PseudoMax; i-- {
		e := ps.Entries[i]
		if _, ok := idx[e.Class]; ok && float64(e.Confidence) >= r.PseudoMinConfidence && !labelled[e.ID] {
			out = append(out, e)
		}
	}
	return out
}

// loadPseudo reads the images of pseudo-labels as training samples of the project's
// pseudo_weight, fitted to the network's input; an unusable one is skipped with a
// reason.
func (s *Service) loadPseudo(ctx context.Context, p *project.Project, a nn.Arch, entries []project.PseudoEntry) ([]train.Sample, []train.Skip, error) {
	idx := p.ClassIndex()
	var out []train.Sample
	var skipped []train.Skip
	for _, e := range entries {
		im, err := s.image(ctx, e.Image, a.InC)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, nil, err
			}
			skipped = append(skipped, train.Skip{Split: "pseudo", ID: e.ID, Reason: err.Error()})
			continue
		}
		smp := train.Sample{ID: e.ID, Label: idx[e.Class], Size: [2]int{im.W, im.H}, Weight: float32(p.Retrain.PseudoWeight)}
		smp.Image, _, _ = vision.Fit(a, im, nil)
		out = append(out, smp)
	}
	return out, skipped, nil
}

// HumanLabelledOnly checks that no pseudo-label is in val or test: the gate decides on
// human-labelled examples only, and early stopping reads val.
func HumanLabelledOnly(data train.Split, pseudo []project.PseudoEntry) error {
	ids := make(map[string]bool, len(pseudo))
	for _, e := range pseudo {
		ids[e.ID] = true
	}
	for name, set := range map[string][]train.Sample{"val": data.Val, "test": data.Test} {
		for _, smp := range set {
			if ids[smp.ID] || (smp.Weight != 0 && smp.Weight != 1) {
				return fmt.Errorf("pseudo-label %s in the %s split: val and test hold human labels only", smp.ID, name)
			}
		}
	}
	return nil
}
