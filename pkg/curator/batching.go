package curator

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/sampling"
	"github.com/edgeloop/edgeloop/pkg/selection"
)

// recentWindow is how many queued example ids the ledger remembers: a redelivery that
// finds no example record (the curator stopped between the ledger and the record) is
// recognised and not queued twice. Older redeliveries meet their record (Curator.seen).
const recentWindow = 4000

// addPending puts an example into the open batch unless it is already known (a
// redelivery); it reports whether it was added.
func addPending(l *project.Ledger, pe project.Pending) bool {
	for _, id := range l.Recent {
		if id == pe.ID {
			return false
		}
	}
	l.Pending = append(l.Pending, pe)
	l.Recent = append(l.Recent, pe.ID)
	if len(l.Recent) > recentWindow {
		l.Recent = l.Recent[len(l.Recent)-recentWindow:]
	}
	return true
}

// dedupWindow is how many recent thumbnails of a project are compared with a new one.
const dedupWindow = 2000

// lookalikes remembers the thumbnails of the examples recently queued, per project, to
// find near-duplicates coming from other devices. It is a filter, not a guarantee: it
// lives in memory and starts empty.
type lookalikes struct {
	mu     sync.Mutex
	recent map[string][]thumbOf
}

type thumbOf struct {
	id    string
	thumb raster.Thumb
}

// find returns the id of a recent example other than id that looks like t ("" when
// none).
func (d *lookalikes) find(pid, id string, t raster.Thumb) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.recent[pid] {
		if r := &d.recent[pid][i]; r.id != id && raster.ThumbsWithin(&r.thumb, &t, raster.SameSceneDistance) {
			return r.id
		}
	}
	return ""
}

func (d *lookalikes) add(pid, id string, t raster.Thumb) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := append(d.recent[pid], thumbOf{id: id, thumb: t})
	if len(r) > dedupWindow {
		r = r[len(r)-dedupWindow:]
	}
	d.recent[pid] = r
}

// formDue cuts batches from the open batch and reports how many candidates expired.
// Candidates that waited longer than the TTL (operator flags excepted) leave first.
// With a pool (Pool above Max), a batch of Max is picked (pick) once Pool are
// waiting; without, one forms as soon as Max are waiting. And once at least Min are
// waiting and MaxWait has passed since the oldest arrived and since the last batch
// formed, a batch of up to Max is picked from what is there.
func formDue(l *project.Ledger, s project.BatchSettings, now time.Time) ([]project.FormedBatch, int) {
	expired := expire(l, s.TTL.D(), now)
	var out []project.FormedBatch
	if s.Select == selection.Oldest || s.Select == "" {
		// Every batch due at once (a consumer poll's backlog), dealt from one balanced
		// order so the last is as balanced as the first.
		k := 0
		for n := len(l.Pending); n >= max(s.Pool, s.Max); n -= s.Max {
			k++
		}
		out = append(out, cut(l, k, s.Max, now)...)
	}
	for len(l.Pending) >= max(s.Pool, s.Max) {
		out = append(out, pick(l, s, s.Max, now))
	}
	if len(l.Pending) >= s.Min && now.Sub(oldest(l.Pending)) >= s.MaxWait.D() && now.Sub(l.LastFormed) >= s.MaxWait.D() {
		out = append(out, pick(l, s, min(len(l.Pending), s.Max), now))
	}
	return out, expired
}

func oldest(ps []project.Pending) time.Time {
	t := ps[0].At
	for _, p := range ps {
		if p.At.Before(t) {
			t = p.At
		}
	}
	return t
}

// pendingOf is what waits in the open batch of p for record r: when the project picks
// its batches by selection (not oldest first), with the model's probabilities in the
// project's class order and the frame's embedding, which selection weighs.
func pendingOf(p *project.Project, r *project.ExampleRecord) project.Pending {
	pe := project.Pending{ID: r.ID, Class: r.TopClass(), Reason: r.TakenBy, Reasons: reasonKinds(r), Confidence: r.TopConfidence(), At: r.ReceivedAt,
		Device: r.Device}
	if p.Batch.Select == "" || p.Batch.Select == selection.Oldest {
		return pe // the ledger stays small
	}
	pe.Embedding = r.Embedding
	if n := len(p.Classes); n <= project.MaxPendingClasses && len(r.Predictions) > 0 && p.Task == "classify" {
		idx := p.ClassIndex()
		pe.Probs = make([]float32, n)
		for _, pr := range r.Predictions {
			if i, ok := idx[pr.Class]; ok {
				pe.Probs[i] = float32(math.Round(float64(pr.Confidence)*1000) / 1000)
			}
		}
	}
	return pe
}

// expire drops the candidates that waited longer than ttl (0: none), except operator
// flags, and counts them in the ledger.
func expire(l *project.Ledger, ttl time.Duration, now time.Time) int {
	if ttl <= 0 {
		return 0
	}
	n := len(l.Pending)
	l.Pending = slices.DeleteFunc(l.Pending, func(p project.Pending) bool {
		return now.Sub(p.At) > ttl && !flagged(p)
	})
	n -= len(l.Pending)
	l.Expired += n
	return n
}

func flagged(p project.Pending) bool {
	return p.Reason == sampling.OperatorFlagged || slices.Contains(p.Reasons, sampling.OperatorFlagged)
}

// pick forms a batch of n from the open batch with the project's selection: operator
// flags always; the first ColdStart batches of the project typical-first, and up to
// half of a batch typical-first among the candidates of new sites (devices with fewer
// than Max examples batched); the rest by Select (selection.Diverse: uncertain,
// mutually different, balanced over predicted class and sampling reason).
func pick(l *project.Ledger, s project.BatchSettings, n int, now time.Time) project.FormedBatch {
	if s.Select == selection.Oldest || s.Select == "" {
		return cut(l, 1, n, now)[0]
	}
	seed := uint64(l.Seq + 1)
	cs := make([]selection.Candidate, len(l.Pending))
	var cold []int
	for i, p := range l.Pending {
		cs[i] = selection.Candidate{Probs: p.Probs, Confidence: p.Confidence, Embedding: p.Embedding, Class: p.Class + "\x00" + p.Reason, Must: flagged(p)}
		if !cs[i].Must && p.Device != "" && l.Sites[p.Device] < s.Max {
			cold = append(cold, i)
		}
	}
	method := s.Select
	if l.Seq < s.ColdStart {
		method = selection.Typical
	} else if len(cold) > 0 && s.ColdStart > 0 {
		// A new site: its most typical frames take up to half the batch, then the rest
		// is picked around them.
		sub := make([]selection.Candidate, len(cold))
		for j, i := range cold {
			sub[j] = cs[i]
		}
		for _, j := range selection.Pick(selection.Typical, sub, n/2, seed) {
			cs[cold[j]].Must = true
		}
	}
	take := map[int]bool{}
	for _, i := range selection.Pick(method, cs, n, seed) {
		take[i] = true
	}
	return formBatch(l, take, now)
}

// cut forms k batches of n from the open batch, balanced across predicted classes and
// sampling reasons: a round robin over (class, reason) groups, oldest first in each,
// dealt in turn to the k batches.
func cut(l *project.Ledger, k, n int, now time.Time) []project.FormedBatch {
	if k < 1 {
		return nil
	}
	groups := map[string][]int{}
	var keys []string
	for i, p := range l.Pending {
		key := p.Class + "\x00" + p.Reason
		if _, ok := groups[key]; !ok {
			keys = append(keys, key)
		}
		groups[key] = append(groups[key], i)
	}
	sort.Strings(keys)
	for _, key := range keys {
		g := groups[key]
		sort.SliceStable(g, func(a, b int) bool { return l.Pending[g[a]].At.Before(l.Pending[g[b]].At) })
	}
	// Choose k·n by the round robin, then deal each group's chosen in turn across the
	// batches (group after group), so every batch gets its share of every group.
	total := min(k*n, len(l.Pending))
	chosen := map[string][]int{}
	for taken := 0; taken < total; {
		for _, key := range keys {
			if len(groups[key]) > 0 && taken < total {
				chosen[key] = append(chosen[key], groups[key][0])
				groups[key] = groups[key][1:]
				taken++
			}
		}
	}
	deal := make([]int, len(l.Pending)) // 1 + the batch each chosen example goes to
	p := 0
	for _, key := range keys {
		for _, i := range chosen[key] {
			deal[i] = 1 + p%k
			p++
		}
	}
	ids := make([]map[string]bool, k)
	for i, b := range deal {
		if b > 0 {
			if ids[b-1] == nil {
				ids[b-1] = map[string]bool{}
			}
			ids[b-1][l.Pending[i].ID] = true
		}
	}
	out := make([]project.FormedBatch, 0, k)
	for _, set := range ids {
		take := map[int]bool{}
		for i, p := range l.Pending {
			if set[p.ID] {
				take[i] = true
			}
		}
		out = append(out, formBatch(l, take, now))
	}
	return out
}

// formBatch moves the pending examples take names into a new formed batch.
func formBatch(l *project.Ledger, take map[int]bool, now time.Time) project.FormedBatch {
	l.Seq++
	fb := project.FormedBatch{ID: fmt.Sprintf("b%06d", l.Seq), At: now}
	keep := l.Pending[:0:0]
	for i, p := range l.Pending {
		if take[i] {
			p.Probs, p.Embedding = nil, nil // what selection needed, not the batch
			fb.Examples = append(fb.Examples, p)
			if p.Device != "" {
				if l.Sites == nil {
					l.Sites = map[string]int{}
				}
				l.Sites[p.Device]++
			}
		} else {
			keep = append(keep, p)
		}
	}
	l.Pending = keep
	l.Formed = append(l.Formed, fb)
	l.LastFormed = now
	return fb
}

// newBatch is the batch object of a formed batch.
func newBatch(pid string, fb project.FormedBatch) *project.Batch {
	b := &project.Batch{ID: fb.ID, Project: pid, State: project.StateReady, CreatedAt: fb.At,
		Audit: []project.AuditEntry{{At: fb.At, User: "curator", Action: "form", From: project.StateOpen, To: project.StateReady,
			Detail: fmt.Sprintf("%d examples", len(fb.Examples))}}}
	for _, p := range fb.Examples {
		b.Items = append(b.Items, project.Item{ExampleID: p.ID, Class: p.Class, Reason: p.Reason, Reasons: p.Reasons, Confidence: p.Confidence, ArrivedAt: p.At})
	}
	return b
}
