package curator

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Intake is a group commit: a consumer poll's examples are stored one by one (in
// parallel: image, frame claim, per-id check), queued with one compare-and-swap of each
// project's ledger, and only then given their records (create-only) — the same order,
// and so the same guarantees, as one example at a time:
//   - nothing lost: the offsets are committed after the ledger and the records;
//   - nothing queued twice: the ledger's recent ids catch a redelivery whose record was
//     never written (a crash between the ledger and the record), the record catches any
//     older one, and examples of one batch that share an id or a frame are taken in
//     rounds, each meeting the effect of the one before as it would one by one;
//   - one bad example is refused alone (its outcome), and the others go on.

// ingestWorkers bounds the object store requests one intake makes at once.
const ingestWorkers = 32

// Ingest stores an example and queues it: IngestBatch of one.
func (c *Curator) Ingest(ctx context.Context, ex *edgeloopv1.Example) error {
	return c.IngestBatch(ctx, []*edgeloopv1.Example{ex})[0]
}

// IngestBatch stores and queues examples, and returns each one's outcome: nil once it
// is queued (or known: a redelivery, a near-duplicate, a later example of a frame), a
// *message.Reject for an example that can never be accepted, another error for one to
// try again. Each project's ledger changes once per round (see Intake).
//
// It is idempotent by example id: a redelivered example changes nothing, however old it
// is, and is never counted as a near-duplicate (the per-id check comes before the
// look-alike check). One frame makes one queue item: a later example of a frame already
// stored (same device, frame id and capture time) joins the first, and an operator's
// correction in it wins (see joinFrame) — also when it comes under the first example's
// id.
func (c *Curator) IngestBatch(ctx context.Context, exs []*edgeloopv1.Example) []error {
	outs := make([]error, len(exs))
	for _, round := range rounds(exs) {
		c.ingestRound(ctx, exs, round, outs)
	}
	return outs
}

// rounds splits a batch so that no two examples of a round share an id or a frame: each
// example goes to the round after the last one holding either, in batch order.
func rounds(exs []*edgeloopv1.Example) [][]int {
	last := map[string]int{}
	var out [][]int
	for i, ex := range exs {
		keys := []string{"id\x00" + ex.GetProject() + "\x00" + ex.GetId()}
		if ex.GetFrameId() != "" {
			keys = append(keys, "frame\x00"+project.FrameKey(ex.GetProject(), ex.GetDevice(), ex.GetFrameId(), ex.GetCapturedAt().AsTime()))
		}
		r := 0
		for _, k := range keys {
			if n, ok := last[k]; ok {
				r = max(r, n+1)
			}
		}
		for _, k := range keys {
			last[k] = r
		}
		if r == len(out) {
			out = append(out, nil)
		}
		out[r] = append(out[r], i)
	}
	return out
}

// intake is one example on its way through a round.
type intake struct {
	p     *project.Project
	rec   *project.ExampleRecord
	thumb raster.Thumb
	// settled: the example needs nothing more (a redelivery, a frame join).
	settled bool
	added   bool
	// pseudo: a pseudo-label (contract.Pseudo), which goes to the project's PseudoSet
	// instead of the open batch.
	pseudo bool
}

// ingestRound ingests exs[i] for every i of idx, none sharing an id or a frame, and
// writes their outcomes into outs.
func (c *Curator) ingestRound(ctx context.Context, exs []*edgeloopv1.Example, idx []int, outs []error) {
	projects := c.projectsOf(ctx, exs, idx)
	work := make([]*intake, len(exs))
	forEach(idx, func(i int) {
		work[i], outs[i] = c.prepare(ctx, exs[i], projects)
	})

	// Look-alikes in batch order, as one by one: an example may look like one queued
	// earlier in this round.
	byProject := map[string][]int{}
	var order []string
	thisRound := map[string][]thumbOf{}
	for _, i := range idx {
		w := work[i]
		if outs[i] != nil || w.settled {
			continue
		}
		pid := w.p.ID
		if len(w.rec.Correction) == 0 && !w.pseudo { // an operator's correction is worth keeping anyway
			w.rec.DuplicateOf = c.dups.find(pid, w.rec.ID, w.thumb)
			for j := range thisRound[pid] {
				if t := &thisRound[pid][j]; w.rec.DuplicateOf == "" && raster.ThumbsWithin(&t.thumb, &w.thumb, raster.SameSceneDistance) {
					w.rec.DuplicateOf = t.id
				}
			}
		}
		if w.rec.DuplicateOf == "" && !w.pseudo {
			thisRound[pid] = append(thisRound[pid], thumbOf{id: w.rec.ID, thumb: w.thumb})
		}
		if _, ok := byProject[pid]; !ok {
			order = append(order, pid)
		}
		byProject[pid] = append(byProject[pid], i)
	}

	// One ledger update per project, then the records, then the batches it formed. The
	// projects queue at once; their outcomes are applied after, so that byProject is
	// only read while they run.
	type queued struct {
		formed         []project.FormedBatch
		pseudoErr, err error
	}
	results := make(map[string]*queued, len(order))
	for _, pid := range order {
		results[pid] = &queued{}
	}
	forEach(order, func(pid string) {
		q := results[pid]
		q.formed, q.pseudoErr, q.err = c.queue(ctx, projects[pid].p, byProject[pid], work)
	})
	formed := map[string][]project.FormedBatch{}
	for _, pid := range order {
		q := results[pid]
		if q.err != nil {
			for _, i := range byProject[pid] {
				outs[i] = q.err
			}
			delete(byProject, pid)
			continue
		}
		formed[pid] = q.formed
		if q.pseudoErr == nil {
			continue
		}
		// The pseudo-labels failed alone: no record for them (a retry must find them
		// new), while the project's other examples go on.
		var rest []int
		for _, i := range byProject[pid] {
			if work[i].pseudo {
				outs[i] = q.pseudoErr
			} else {
				rest = append(rest, i)
			}
		}
		byProject[pid] = rest
	}
	var mu sync.Mutex
	var recs []int
	for _, pid := range order {
		recs = append(recs, byProject[pid]...)
	}
	forEach(recs, func(i int) {
		rec := work[i].rec
		_, err := objstore.PutJSON(ctx, c.st.S, project.ExampleKey(rec.Project, rec.ID), rec, objstore.PutOptions{IfNoneMatch: true})
		if err != nil && !errors.Is(err, objstore.ErrPrecondition) {
			outs[i] = fmt.Errorf("example %s: queued, record not yet written: %w", rec.ID, err)
		}
	})
	for _, i := range recs {
		w := work[i]
		switch {
		case outs[i] != nil:
		case w.added && w.pseudo:
			c.m.pseudo.WithLabelValues(w.p.ID).Inc()
		case w.added:
			c.dups.add(w.p.ID, w.rec.ID, w.thumb)
			c.m.ingested.WithLabelValues(w.p.ID).Inc()
		case w.rec.DuplicateOf != "":
			c.m.duplicates.WithLabelValues(w.p.ID).Inc()
			c.log.Debug("near-duplicate not queued", zap.String("example", w.rec.ID), zap.String("duplicate_of", w.rec.DuplicateOf))
		}
	}
	known := map[string]map[string]bool{} // by project, the examples this round recorded
	for _, i := range recs {
		if rec := work[i].rec; outs[i] == nil {
			if known[rec.Project] == nil {
				known[rec.Project] = map[string]bool{}
			}
			known[rec.Project][rec.ID] = true
		}
	}
	forEach(order, func(pid string) {
		if _, ok := byProject[pid]; !ok {
			return
		}
		if err := c.writeFormed(ctx, pid, formed[pid], known[pid]); err != nil {
			// The ledger keeps them (Formed): the next try, or the tick, writes them.
			mu.Lock()
			defer mu.Unlock()
			for _, i := range byProject[pid] {
				if outs[i] == nil {
					outs[i] = err
				}
			}
		}
	})
}

// loaded is a project read once for a round, or why it could not be.
type loaded struct {
	p   *project.Project
	err error
}

// projectsOf reads every project the round's examples name, once each.
func (c *Curator) projectsOf(ctx context.Context, exs []*edgeloopv1.Example, idx []int) map[string]loaded {
	var ids []string
	seen := map[string]bool{}
	for _, i := range idx {
		if id := exs[i].GetProject(); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	out := make(map[string]loaded, len(ids))
	var mu sync.Mutex
	forEach(ids, func(id string) {
		p, err := c.st.Project(ctx, id)
		mu.Lock()
		out[id] = loaded{p: p, err: err}
		mu.Unlock()
	})
	return out
}

// prepare checks an example, stores its image, joins it to its frame and checks its id:
// everything before the ledger. It returns a *message.Reject for an example that can
// never be accepted.
func (c *Curator) prepare(ctx context.Context, ex *edgeloopv1.Example, projects map[string]loaded) (*intake, error) {
	if err := contract.CheckExampleID(ex.GetId()); err != nil {
		return nil, message.Rejectf(contract.ReasonBadID, "example of project %q: %v", ex.GetProject(), err)
	}
	l := projects[ex.GetProject()]
	if errors.Is(l.err, objstore.ErrNotFound) {
		return nil, message.Rejectf(contract.ReasonUnknownProject, "example %s: project %q does not exist (create it first)", ex.GetId(), ex.GetProject())
	}
	if l.err != nil {
		return nil, fmt.Errorf("example %s: %w", ex.GetId(), l.err)
	}
	p := l.p
	if want := map[string]edgeloopv1.Task{"classify": edgeloopv1.Task_TASK_CLASSIFY, "detect": edgeloopv1.Task_TASK_DETECT}[p.Task]; ex.GetTask() != want {
		return nil, message.Rejectf(contract.ReasonTaskMismatch, "example %s: task %v, project %s is %s", ex.GetId(), ex.GetTask(), p.ID, p.Task)
	}
	known := p.ClassIndex()
	for _, pr := range ex.GetPredictions() {
		if _, ok := known[pr.GetClassName()]; !ok {
			return nil, message.Rejectf(contract.ReasonUnknownClass, "example %s: predicted class %q is not one of project %s's", ex.GetId(), pr.GetClassName(), p.ID)
		}
	}
	for _, l := range ex.GetCorrection().GetLabels() {
		if _, ok := known[l.GetClassName()]; !ok {
			return nil, message.Rejectf(contract.ReasonUnknownClass, "example %s: corrected class %q is not one of project %s's", ex.GetId(), l.GetClassName(), p.ID)
		}
	}
	// The file's own channels: a colour frame's thumbnail holds its colour.
	img, err := raster.DecodeChannels(ex.GetImage().GetData(), raster.DefaultMaxPixels, 0)
	if err != nil {
		return nil, message.Rejectf(contract.ReasonBadImage, "example %s: %w", ex.GetId(), err)
	}
	key, _, err := objstore.PutContent(ctx, c.st.S, project.ImagePrefix(p.ID), ex.GetImage().GetData(), ex.GetImage().GetContentType())
	if err != nil {
		return nil, fmt.Errorf("example %s: storing its image: %w", ex.GetId(), err)
	}
	w := &intake{p: p, rec: recordOf(ex, key, c.now()), pseudo: contract.Pseudo(ex.GetTakenBy())}
	rec := w.rec
	rec.Channels = img.Channels()
	if w.pseudo && (p.Task != "classify" || len(ex.GetPredictions()) == 0 || len(rec.Correction) > 0) {
		return nil, message.Rejectf(contract.ReasonBadLabel, "example %s: a pseudo-label (taken_by confident) is a classification with a prediction and no correction", ex.GetId())
	}
	fresh := false
	// A pseudo-label claims no frame: an operator's later correction of its frame comes
	// as an example of its own, for annotation.
	if rec.FrameID != "" && !w.pseudo {
		var owner string
		owner, fresh, err = c.claimFrame(ctx, p.ID, rec)
		if err != nil {
			return nil, err
		}
		// A later example of a frame, or a correction of this one sent under its id.
		if !fresh && (owner != rec.ID || len(rec.Correction) > 0) {
			joined, err := c.joinFrame(ctx, p, owner, rec)
			if err != nil {
				return nil, err
			}
			if joined {
				w.settled = true
				return w, nil
			}
		}
	}
	// After the frame join, which takes a correction sent under a known id: anything
	// else with a known id is a redelivery. An example that claimed its frame just now
	// is not one: an id names one frame, and every earlier ingest of it claimed the
	// frame (or found it claimed) before it queued anything.
	if !fresh {
		seen, err := c.seen(ctx, p.ID, rec.ID)
		if err != nil {
			return nil, err
		}
		w.settled = seen
	}
	w.thumb = raster.Thumbnail(img)
	return w, nil
}

// queue adds the examples idx of work (one project's, in batch order) to the project's
// ledger in one compare-and-swap, cutting the batches that fill, and marks those added
// (a redelivery the ledger knows is not). pseudoErr is the failure to add the
// pseudo-labels among them, which concerns only those.
func (c *Curator) queue(ctx context.Context, p *project.Project, idx []int, work []*intake) (formed []project.FormedBatch, pseudoErr, err error) {
	expired := 0
	_, err = objstore.Update(ctx, c.st.S, project.LedgerKey(p.ID), func(l *project.Ledger, _ bool) error {
		formed, expired = nil, 0
		changed := false
		for _, i := range idx {
			w := work[i]
			w.added = false
			if w.rec.DuplicateOf != "" || w.pseudo {
				continue
			}
			if w.added = addPending(l, pendingOf(p, w.rec)); w.added {
				changed = true
			}
		}
		if !changed {
			return objstore.ErrNoChange // redeliveries, near-duplicates
		}
		formed, expired = formDue(l, p.Batch, c.now())
		l.Rev++
		return nil
	})
	if err != nil {
		// A corrupt ledger too is retried, not refused at once: its examples are the
		// project's production misses, and the retries (message.GiveUp bounds them) give
		// an operator the time to repair it before they go to the dead-letter topic.
		return nil, nil, fmt.Errorf("queueing %d examples of project %s: %w", len(idx), p.ID, err)
	}
	c.m.expired.WithLabelValues(p.ID).Add(float64(expired))
	pseudoErr = c.addPseudo(ctx, p.ID, idx, work)
	if errors.Is(pseudoErr, objstore.ErrCorrupt) { // retrying cannot help
		pseudoErr = &message.Reject{Reason: contract.ReasonCorruptState, Err: pseudoErr}
	}
	return formed, pseudoErr, nil
}

// addPseudo adds the pseudo-labels among the examples idx of work to the project's
// PseudoSet in one compare-and-swap, and marks those added (a redelivery is not). They
// never enter the open batch, so never a batch, val or test.
func (c *Curator) addPseudo(ctx context.Context, pid string, idx []int, work []*intake) error {
	var es []project.PseudoEntry
	var ws []*intake
	for _, i := range idx {
		if w := work[i]; w.pseudo {
			r := w.rec
			es = append(es, project.PseudoEntry{ID: r.ID, Image: r.Image, Class: r.TopClass(), Confidence: r.TopConfidence(),
				Device: r.Device, Model: r.ModelVersion, At: r.ReceivedAt})
			ws = append(ws, w)
		}
	}
	if len(es) == 0 {
		return nil
	}
	_, err := objstore.Update(ctx, c.st.S, project.PseudoKey(pid), func(ps *project.PseudoSet, _ bool) error {
		before := map[string]bool{}
		for _, e := range ps.Entries {
			before[e.ID] = true
		}
		if ps.Add(es...) == 0 {
			return objstore.ErrNoChange
		}
		for _, w := range ws {
			w.added = !before[w.rec.ID]
		}
		ps.Rev++
		return nil
	})
	if err != nil {
		return fmt.Errorf("adding %d pseudo-labels of project %s: %w", len(es), pid, err)
	}
	return nil
}

// forEach calls fn for every item, ingestWorkers at a time, and returns when all are
// done.
func forEach[T any](items []T, fn func(T)) {
	if len(items) == 1 {
		fn(items[0])
		return
	}
	sem := make(chan struct{}, ingestWorkers)
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(it)
		}()
	}
	wg.Wait()
}
