package retrain

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// Training modes: what a training starts from and which train examples it sees.
const (
	// ModeReplay fine-tunes the release on the examples approved since it plus a
	// class-balanced replay sample of the older ones: its cost stays flat as the
	// dataset grows, and the old classes are rehearsed so that they are not forgotten.
	ModeReplay = "replay"
	// ModeFull fine-tunes the release on the whole train split.
	ModeFull = "full"
	// ModeScratch trains fresh weights on the whole train split (a project's first
	// model, or on request).
	ModeScratch = "scratch"
	// ModeAdaptBN re-estimates the release's batch norm statistics on the images of
	// the project's AdaptFrames most recently approved train examples, the frames of
	// its sites (their labels unused), and trains nothing (train.AdaptBN): site
	// adaptation for the families with batch norm, gated like any candidate.
	ModeAdaptBN = "adapt-bn"
)

// SiteMode is ModeAdaptBN for one site: the release's batch norm statistics
// re-estimated on the frames of site (a device id) only — its pseudo-labels and its
// approved examples —, and the gate's reasons give the candidate's and the release's
// figures on the site's own test examples besides the whole test split's.
func SiteMode(site string) string { return ModeAdaptBN + ":" + site }

// SplitMode splits a mode into its base and its site ("" but for SiteMode's).
func SplitMode(m string) (base, site string) {
	base, site, _ = strings.Cut(m, ":")
	return base, site
}

// AdaptFrames is how many recent frames ModeAdaptBN re-estimates the statistics on.
const AdaptFrames = 512

// CheckMode refuses an unknown training mode ("" lets the policy decide).
func CheckMode(m string) error {
	if base, site := SplitMode(m); base == ModeAdaptBN && site != "" {
		if err := contract.CheckID("site (device)", site); err != nil {
			return fmt.Errorf("training mode %q: %w", m, err)
		}
		return nil
	}
	switch m {
	case "", ModeReplay, ModeFull, ModeScratch, ModeAdaptBN:
		return nil
	}
	return fmt.Errorf("training mode %q: want %s, %s, %s, %s or %s", m, ModeReplay, ModeFull, ModeScratch, ModeAdaptBN, SiteMode("SITE"))
}

// Plan is the train examples one training uses.
type Plan struct {
	Mode string `json:"mode"`
	// Train are the chosen train-split entries (all of them unless Mode is replay).
	Train []project.DatasetEntry `json:"-"`
	// New are the train examples approved since the release; Replayed the older ones
	// sampled (Recent of them for being the most recent); Available the train split's
	// usable examples in all.
	New      int `json:"new"`
	Replayed int `json:"replayed"`
	// Recent are the replayed examples taken because they are the most recent.
	Recent    int `json:"recent"`
	Available int `json:"available"`
	// Budget is the replay budget the sample was drawn under.
	Budget int `json:"budget,omitempty"`
	// Pseudo are the pseudo-labels trained on besides (PseudoPlan), weighted.
	Pseudo int `json:"pseudo,omitempty"`
}

// SnapshotSeq parses a dataset snapshot id "ds-N" (0 when it is not one).
func SnapshotSeq(snapshot string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(snapshot, "ds-"))
	if err != nil || !strings.HasPrefix(snapshot, "ds-") {
		return 0
	}
	return n
}

// PlanTraining chooses a training's train examples from a dataset manifest. In replay
// mode it takes every usable train example added after snapshot `since` (what the
// release never saw) and at most budget of the older ones: half of the budget the most
// recently approved (today's production data, which the release has seen in its last
// fine-tunes only), the other half a class-balanced sample of the rest (each class an
// equal share, what a small class cannot fill going to the others), so that every old
// class is rehearsed. The sample depends only on the entries and seed. Any other mode
// takes the whole train split. Entries labelled with a class the project no longer has
// are left out (their examples stay in the dataset).
func PlanTraining(entries []project.DatasetEntry, classes []string, mode string, since, budget int, seed uint64) Plan {
	known := make(map[string]bool, len(classes))
	for _, c := range classes {
		known[c] = true
	}
	pl := Plan{Mode: mode}
	var fresh, old []project.DatasetEntry
	for _, e := range entries {
		if e.Split != "train" && e.Split != "" {
			continue
		}
		usable := true
		for _, l := range e.Labels {
			usable = usable && known[l.Class]
		}
		if !usable {
			continue
		}
		pl.Available++
		if mode == ModeReplay && e.Seq > since {
			fresh = append(fresh, e)
		} else {
			old = append(old, e)
		}
	}
	if mode == ModeReplay {
		pl.Budget = budget
	}
	if mode != ModeReplay || budget < 0 || len(old) <= budget {
		pl.Train = append(fresh, old...)
		pl.New, pl.Replayed = len(fresh), len(old)
		return pl
	}
	// The manifest is in approval order: the most recent are at its end.
	slices.SortStableFunc(old, func(a, b project.DatasetEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	cut := len(old) - budget/2
	recent := old[cut:]
	sample := balancedSample(old[:cut], budget-len(recent), seed)
	pl.Train = append(append(fresh, recent...), sample...)
	pl.New, pl.Recent, pl.Replayed = len(fresh), len(recent), len(recent)+len(sample)
	return pl
}

// balancedSample draws n entries spread evenly over classes (an entry counts for the
// rarest of its classes; unlabelled entries form a group of their own).
func balancedSample(es []project.DatasetEntry, n int, seed uint64) []project.DatasetEntry {
	freq := map[string]int{}
	for _, e := range es {
		for _, l := range e.Labels {
			freq[l.Class]++
		}
	}
	groups := map[string][]project.DatasetEntry{}
	for _, e := range es {
		g, best := "", -1
		for _, l := range e.Labels {
			if f := freq[l.Class]; best < 0 || f < best || (f == best && l.Class < g) {
				g, best = l.Class, f
			}
		}
		groups[g] = append(groups[g], e)
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	// Smallest groups first: what they cannot fill is shared by the larger ones.
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(groups[a]), len(groups[b])), strings.Compare(a, b))
	})
	out := make([]project.DatasetEntry, 0, n)
	left := n
	for i, g := range names {
		quota := left / (len(names) - i)
		members := groups[g]
		if quota < len(members) {
			h := fnv.New64a()
			h.Write([]byte(g))
			r := rand.New(rand.NewPCG(seed, h.Sum64()))
			members = slices.Clone(members)
			r.Shuffle(len(members), func(a, b int) { members[a], members[b] = members[b], members[a] })
			members = members[:quota]
		}
		out = append(out, members...)
		left -= len(members)
	}
	return out
}
