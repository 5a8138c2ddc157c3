package curator

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// One frame, one example. An agent may send a frame twice: an operator's correction
// of a frame it had already sampled comes under the same example id (current agents)
// or under a new one (older agents). The curator joins examples on the frame — project,
// device, frame id and capture time (project.FrameKey) — so the second becomes part of
// the first instead of a second queue item.

// claimFrame makes rec the example of its frame unless an earlier example holds it; it
// returns the holder's id and whether rec became it just now.
func (c *Curator) claimFrame(ctx context.Context, pid string, rec *project.ExampleRecord) (owner string, fresh bool, err error) {
	key := project.FrameKey(pid, rec.Device, rec.FrameID, rec.CapturedAt)
	_, err = objstore.PutJSON(ctx, c.st.S, key, project.FrameRecord{Example: rec.ID}, objstore.PutOptions{IfNoneMatch: true})
	if err == nil {
		return rec.ID, true, nil
	}
	if !errors.Is(err, objstore.ErrPrecondition) {
		return "", false, fmt.Errorf("example %s: recording frame %q of %s: %w", rec.ID, rec.FrameID, rec.Device, err)
	}
	var fr project.FrameRecord
	if _, err := objstore.GetJSON(ctx, c.st.S, key, &fr); err != nil {
		return "", false, fmt.Errorf("example %s: reading frame %q of %s: %w", rec.ID, rec.FrameID, rec.Device, err)
	}
	return fr.Example, false, nil
}

// joinFrame merges rec, a later example of a frame, into owner, the example that holds
// the frame. An operator's correction wins: it replaces the owner's correction and
// takes the owner as operator_flagged; the reasons of both are kept. The owner's
// place in the queue follows (requeue). joinFrame reports false, changing nothing,
// when the owner's record is missing — its ingest never finished — and then hands the
// frame to rec, which the caller ingests as a new example.
func (c *Curator) joinFrame(ctx context.Context, p *project.Project, owner string, rec *project.ExampleRecord) (bool, error) {
	var merged project.ExampleRecord
	found := false
	written, err := objstore.Update(ctx, c.st.S, project.ExampleKey(p.ID, owner), func(r *project.ExampleRecord, exists bool) error {
		if found = exists; !exists {
			return objstore.ErrNoChange
		}
		changed := mergeExample(r, rec)
		merged = *r
		if !changed {
			return objstore.ErrNoChange
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("example %s: joining example %s of the same frame: %w", rec.ID, owner, err)
	}
	if !found {
		if owner == rec.ID {
			return false, nil
		}
		_, err := objstore.Update(ctx, c.st.S, project.FrameKey(p.ID, rec.Device, rec.FrameID, rec.CapturedAt), func(fr *project.FrameRecord, _ bool) error {
			if fr.Example == rec.ID {
				return objstore.ErrNoChange
			}
			fr.Example = rec.ID
			return nil
		})
		return false, err
	}
	if written || owner != rec.ID { // not a redelivered correction
		c.m.joined.WithLabelValues(p.ID).Inc()
		c.log.Debug("example joined the earlier example of its frame", zap.String("example", rec.ID), zap.String("joined", owner),
			zap.String("frame", rec.FrameID), zap.Bool("correction", len(rec.Correction) > 0))
	}
	if len(rec.Correction) == 0 {
		return true, nil // a second sampling of the frame: the owner keeps its place
	}
	return true, c.requeue(ctx, p, &merged)
}

// mergeExample merges rec, a later example of r's frame, into r and reports whether r
// changed.
func mergeExample(r, rec *project.ExampleRecord) bool {
	changed := false
	if len(rec.Correction) > 0 {
		if !reflect.DeepEqual(r.Correction, rec.Correction) {
			r.Correction, changed = rec.Correction, true
		}
		if rec.TakenBy != "" && r.TakenBy != rec.TakenBy {
			r.TakenBy, changed = rec.TakenBy, true
		}
	}
	for _, x := range rec.Reasons {
		if !slices.ContainsFunc(r.Reasons, func(y project.Reason) bool { return y.Kind == x.Kind && y.Strategy == x.Strategy }) {
			r.Reasons, changed = append(r.Reasons, x), true
		}
	}
	return changed
}

// requeue moves a corrected example to its place in the queue, idempotently: waiting
// in the open batch (or in a batch formed but not yet written), it takes its new
// reason; left out as a near-duplicate, it is queued now; already in a batch that is
// not approved, its item takes the new reason, and the annotator sees the operator's
// correction (the UI starts from the record's). An approved batch keeps its labels:
// the dataset never changes.
func (c *Curator) requeue(ctx context.Context, p *project.Project, r *project.ExampleRecord) error {
	pe := pendingOf(p, r)
	var formed []project.FormedBatch
	expired := 0
	inOpen, formedIn := false, ""
	_, err := objstore.Update(ctx, c.st.S, project.LedgerKey(p.ID), func(l *project.Ledger, _ bool) error {
		inOpen, formedIn, formed, expired = false, "", nil, 0
		changed := false
		for i := range l.Pending {
			if l.Pending[i].ID == r.ID {
				inOpen = true
				if l.Pending[i].Reason != r.TakenBy {
					l.Pending[i].Reason, changed = r.TakenBy, true
				}
			}
		}
		for fi := range l.Formed {
			fb := &l.Formed[fi]
			for i := range fb.Examples {
				if fb.Examples[i].ID == r.ID {
					formedIn = fb.ID
					if fb.Examples[i].Reason != r.TakenBy {
						fb.Examples[i].Reason, changed = r.TakenBy, true
					}
				}
			}
		}
		if !inOpen && formedIn == "" && r.DuplicateOf != "" && addPending(l, pe) {
			inOpen, changed = true, true
			formed, expired = formDue(l, p.Batch, c.now())
		}
		if !changed {
			return objstore.ErrNoChange
		}
		l.Rev++
		return nil
	})
	if err != nil {
		return fmt.Errorf("example %s: requeueing the corrected example: %w", r.ID, err)
	}
	c.m.expired.WithLabelValues(p.ID).Add(float64(expired))
	if err := c.writeFormed(ctx, p.ID, formed, map[string]bool{r.ID: true}); err != nil {
		return err
	}
	if r.DuplicateOf != "" { // queued above (or by an earlier try): no longer a duplicate
		_, err := objstore.Update(ctx, c.st.S, project.ExampleKey(p.ID, r.ID), func(x *project.ExampleRecord, exists bool) error {
			if !exists || x.DuplicateOf == "" {
				return objstore.ErrNoChange
			}
			x.DuplicateOf = ""
			return nil
		})
		if err != nil {
			return fmt.Errorf("example %s: queued, but not yet marked so: %w", r.ID, err)
		}
	}
	if inOpen {
		return nil
	}
	return c.correctItem(ctx, p.ID, formedIn, r)
}

// correctItem gives a corrected example's batch item its new reason; batch is "" when
// the batch is to be found.
func (c *Curator) correctItem(ctx context.Context, pid, batch string, r *project.ExampleRecord) error {
	if batch == "" {
		var err error
		if batch, err = c.findBatch(ctx, pid, r.ID); err != nil {
			return err
		}
		if batch == "" {
			c.log.Warn("corrected example is in no batch", zap.String("project", pid), zap.String("example", r.ID))
			return nil
		}
	}
	var state string
	_, err := c.transition(ctx, pid, batch, "curator", "operator_correction", func(b *project.Batch, _ time.Time) error {
		state = b.State
		if b.State == project.StateApproving || b.State == project.StateApproved {
			return objstore.ErrNoChange
		}
		for i := range b.Items {
			if it := &b.Items[i]; it.ExampleID == r.ID {
				if it.Reason == r.TakenBy {
					return objstore.ErrNoChange
				}
				it.Reason = r.TakenBy
				return nil
			}
		}
		return objstore.ErrNoChange
	})
	if errors.Is(err, project.ErrNotFound) {
		return nil // formed but not written yet: writeFormed writes it with the new reason
	}
	if err == nil && (state == project.StateApproving || state == project.StateApproved) {
		c.log.Info("operator correction arrived after its batch was approved; the record keeps it", zap.String("project", pid),
			zap.String("batch", batch), zap.String("example", r.ID))
	}
	return err
}

// findBatch returns the id of the batch holding example id ("" when none), reading
// the newest batches first. It reads every batch in the worst case: it serves only
// corrections that arrive after their example was batched.
func (c *Curator) findBatch(ctx context.Context, pid, id string) (string, error) {
	var keys []string
	if err := c.st.S.List(ctx, project.BatchesPrefix(pid), func(i objstore.Info) error {
		keys = append(keys, i.Key)
		return nil
	}); err != nil {
		return "", err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	for _, k := range keys {
		var b project.Batch
		if _, err := objstore.GetJSON(ctx, c.st.S, k, &b); err != nil {
			return "", err
		}
		for _, it := range b.Items {
			if it.ExampleID == id {
				return strings.TrimSuffix(strings.TrimPrefix(k, project.BatchesPrefix(pid)), ".json"), nil
			}
		}
	}
	return "", nil
}
