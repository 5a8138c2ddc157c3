package retrain

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/project"
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

// siteReason is the gate's note on a site candidate: candidate and release on the
// site's own test examples (the decision itself is on the whole test split).
func siteReason(site, metric string, cand, cur *train.Evaluation, n int) string {
	if n == 0 || cand == nil {
		return fmt.Sprintf("site %s: no test example of its own yet; decided on the whole test split", site)
	}
	if cur == nil {
		return fmt.Sprintf("site %s: candidate %s %.3f on its %d test examples", site, metric, cand.Headline(), n)
	}
	return fmt.Sprintf("site %s: candidate %s %.3f, release %.3f on its %d test examples; decided on the whole test split", site, metric, cand.Headline(), cur.Headline(), n)
}

// siteFigures evaluates a site candidate and the release on the site's own test
// examples, for the gate's reasons.
func (s *Service) siteFigures(ctx context.Context, pid, site, metric string, entries []project.DatasetEntry, test []train.Sample,
	a nn.Arch, params *nn.Params, curArch nn.Arch, current *nn.Params, classes []string) (string, error) {
	own, err := s.siteEntries(ctx, pid, site, "test", entries, len(entries))
	if err != nil {
		return "", err
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
		return siteReason(site, metric, nil, nil, 0), nil
	}
	cand, err := evaluateParams(s.backend.Factory, a, params, classes, sub)
	if err != nil {
		return "", err
	}
	var cur *train.Evaluation
	if current != nil {
		ev, err := evaluateParams(s.backend.Factory, curArch, current, classes, sub)
		if err != nil {
			return "", err
		}
		cur = &ev
	}
	return siteReason(site, metric, &cand, cur, len(sub)), nil
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
