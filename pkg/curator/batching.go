package curator

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
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
	for _, r := range d.recent[pid] {
		if r.id != id && raster.ThumbDistance(r.thumb, t) <= raster.SameSceneDistance {
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

// formDue cuts batches from the open batch: one of Max as soon as Max are waiting, and
// one of what is there once at least Min are waiting and the oldest waited MaxWait.
func formDue(l *project.Ledger, s project.BatchSettings, now time.Time) []project.FormedBatch {
	var out []project.FormedBatch
	for len(l.Pending) >= s.Max {
		out = append(out, cut(l, s.Max, now))
	}
	if len(l.Pending) >= s.Min && now.Sub(oldest(l.Pending)) >= s.MaxWait.D() {
		out = append(out, cut(l, len(l.Pending), now))
	}
	return out
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

// cut takes n examples from the open batch, balanced across predicted classes and
// sampling reasons: round robin over (class, reason) groups, oldest first in each.
func cut(l *project.Ledger, n int, now time.Time) project.FormedBatch {
	groups := map[string][]int{}
	var keys []string
	for i, p := range l.Pending {
		k := p.Class + "\x00" + p.Reason
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], i)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := groups[k]
		sort.SliceStable(g, func(a, b int) bool { return l.Pending[g[a]].At.Before(l.Pending[g[b]].At) })
	}
	take := map[int]bool{}
	for len(take) < n {
		for _, k := range keys {
			if len(groups[k]) > 0 && len(take) < n {
				take[groups[k][0]] = true
				groups[k] = groups[k][1:]
			}
		}
	}
	l.Seq++
	fb := project.FormedBatch{ID: fmt.Sprintf("b%06d", l.Seq), At: now}
	keep := l.Pending[:0:0]
	for i, p := range l.Pending {
		if take[i] {
			fb.Examples = append(fb.Examples, p)
		} else {
			keep = append(keep, p)
		}
	}
	l.Pending = keep
	l.Formed = append(l.Formed, fb)
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
