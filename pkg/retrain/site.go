package retrain

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// maxSiteReads bounds the example records a site's batch norm adaptation reads to find
// the site's approved examples.
const maxSiteReads = 5000

// siteEntries are the dataset entries of split whose example came from device site,
// newest first, at most n (reading at most maxSiteReads records).
func (s *Service) siteEntries(ctx context.Context, pid, site, split string, entries []project.DatasetEntry, n int) ([]project.DatasetEntry, error) {
	var out []project.DatasetEntry
	reads := 0
	for i := len(entries) - 1; i >= 0 && len(out) < n && reads < maxSiteReads; i-- {
		e := entries[i]
		if e.Split != split {
			continue
		}
		reads++
		r, err := s.cur.Example(ctx, pid, e.ID)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, err
			}
			continue // an imported example without a record has no site
		}
		if r.Device == site {
			out = append(out, e)
		}
	}
	return out, nil
}

// sitePseudo are the newest pseudo-labels of device site, at most n: its unlabelled
// frames, for batch norm statistics.
func sitePseudo(ps *project.PseudoSet, site string, n int) []project.PseudoEntry {
	var out []project.PseudoEntry
	for i := len(ps.Entries) - 1; i >= 0 && len(out) < n; i-- {
		if ps.Entries[i].Device == site {
			out = append(out, ps.Entries[i])
		}
	}
	return out
}

// siteGate decides on a site candidate (mode adapt-bn:SITE), which only that device
// will run: the paired gate of the project's policy on the site's own human-labelled
// test examples, candidate against the project release (held below min_test of
// them). The whole test split — every site's examples — is reported, not required:
// re-estimated statistics are meant to fit this site's frames and not the others'
// (docs/benchmarks.md "Site adaptation": on the colour presets they cost most of the
// accuracy on clean frames), and no other device runs the site release.
func siteGate(site, metric string, cand, cur *train.Evaluation, n int, whole registry.Decision, pol project.RetrainPolicy) registry.Decision {
	var d registry.Decision
	switch {
	case n == 0:
		d = registry.Decision{Metric: metric, Verdict: "held", PerClass: map[string][2]float64{},
			Reasons: []string{fmt.Sprintf("site %s: no human-labelled test example of its own yet: held (an admin can release it to the site by hand: promote)", site)}}
	default:
		d = Gate(metric, *cand, cur, pol)
		d.Reasons = append([]string{fmt.Sprintf("site %s: decided on its %d own test examples: candidate %s %.3f, project release %.3f", site, n, metric, d.Candidate, d.Current)}, d.Reasons...)
	}
	d.Reasons = append(d.Reasons, fmt.Sprintf("whole test split (every site, %d examples): candidate %.3f, project release %.3f — reported, not required: only site %s runs a site release",
		whole.TestExamples, whole.Candidate, whole.Current, site))
	return d
}

// siteEvaluations evaluates a site candidate and the project release on the site's
// own test examples (n of them; nil evaluations when there are none).
func (s *Service) siteEvaluations(ctx context.Context, pid, site string, entries []project.DatasetEntry, test []train.Sample,
	a nn.Arch, params *nn.Params, curArch nn.Arch, current *nn.Params, classes []string, decode *nn.Decoding) (cand, cur *train.Evaluation, n int, err error) {
	own, err := s.siteEntries(ctx, pid, site, "test", entries, len(entries))
	if err != nil {
		return nil, nil, 0, err
	}
	ids := map[string]bool{}
	for _, e := range own {
		ids[e.ID] = true
	}
	var sub []train.Sample
	for _, smp := range test {
		if ids[smp.ID] {
			sub = append(sub, smp)
		}
	}
	if len(sub) == 0 {
		return nil, nil, 0, nil
	}
	ce, err := evaluateParams(s.backend.Factory, a, params, classes, sub, decode)
	if err != nil {
		return nil, nil, 0, err
	}
	if current != nil {
		ev, err := evaluateParams(s.backend.Factory, curArch, current, classes, sub, decode)
		if err != nil {
			return nil, nil, 0, err
		}
		cur = &ev
	}
	return &ce, cur, len(sub), nil
}

// sitePlan is what SiteMode(site) reads: the site's most recently approved train
// examples and its newest pseudo-labels (unlabelled frames), AdaptFrames in all.
func (s *Service) sitePlan(ctx context.Context, pid, site string, entries []project.DatasetEntry, ps *project.PseudoSet) (Plan, []project.PseudoEntry, error) {
	pl := Plan{Mode: SiteMode(site)}
	var err error
	if pl.Train, err = s.siteEntries(ctx, pid, site, "train", entries, AdaptFrames); err != nil {
		return pl, nil, err
	}
	frames := sitePseudo(ps, site, AdaptFrames-len(pl.Train))
	pl.Recent, pl.Available = len(pl.Train), len(pl.Train)+len(frames)
	if pl.Available < adaptBatch {
		return pl, nil, fmt.Errorf("project %s: site %s has %d frames to re-estimate batch norm statistics on, and it needs %d (approved examples or pseudo-labels)", pid, site, pl.Available, adaptBatch)
	}
	return pl, frames, nil
}
