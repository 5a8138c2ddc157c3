package curator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/retry"
	"github.com/edgeloop/edgeloop/pkg/selection"
	"github.com/edgeloop/edgeloop/pkg/vision"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Curator holds the correction workflow.
type Curator struct {
	st   *project.Store
	prod message.Publisher
	kcfg kafkabus.Config
	log  *zap.Logger
	m    *metrics
	now  func() time.Time
	dups *lookalikes
	// maxImport bounds an import's archive (bytes).
	maxImport int64
	ticks     tickState
}

// maxImportBytes is the largest dataset archive an import accepts.
const maxImportBytes = 512 << 20

// New returns a Curator on store s; approvals are published with prod (a
// *kafkabus.Producer in the services; the domain tests record them).
func New(s objstore.Store, prod message.Publisher, kcfg kafkabus.Config, m *metrics, log *zap.Logger) *Curator {
	return &Curator{st: &project.Store{S: s, Listed: &objstore.ListCache{}, Corrupt: objstore.LogCorrupt(log)}, prod: prod, kcfg: kcfg, log: log, m: m, now: time.Now, dups: &lookalikes{recent: map[string][]thumbOf{}},
		maxImport: maxImportBytes}
}

// project.Store is the curator's object store access.
func (c *Curator) Store() *project.Store { return c.st }

// seen reports whether example id was ingested before: its record, written create-only
// once the example is queued (or found a near-duplicate), is the durable per-id memory,
// which a redelivery older than the ledger's window of recent ids meets too.
func (c *Curator) seen(ctx context.Context, pid, id string) (bool, error) {
	_, err := c.st.S.Stat(ctx, project.ExampleKey(pid, id))
	switch {
	case err == nil:
		c.m.redelivered.WithLabelValues(pid).Inc()
		c.log.Debug("redelivered example ignored", zap.String("project", pid), zap.String("example", id))
		return true, nil
	case errors.Is(err, objstore.ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("example %s: is it known? %w", id, err)
	}
}

// reasonKinds are the kinds of every reason of r, each once.
func reasonKinds(r *project.ExampleRecord) []string {
	var out []string
	for _, x := range r.Reasons {
		if !slices.Contains(out, x.Kind) {
			out = append(out, x.Kind)
		}
	}
	return out
}

func recordOf(ex *edgeloopv1.Example, imageKey string, now time.Time) *project.ExampleRecord {
	r := &project.ExampleRecord{
		ID: ex.GetId(), Project: ex.GetProject(), Device: ex.GetDevice(), CapturedAt: ex.GetCapturedAt().AsTime(), ReceivedAt: now,
		Image: imageKey, ContentType: ex.GetImage().GetContentType(), Width: int(ex.GetImage().GetWidth()), Height: int(ex.GetImage().GetHeight()),
		ModelVersion: ex.GetModelVersion(), Correction: project.LabelsFromProto(ex.GetCorrection()), Truth: project.LabelsFromProto(ex.GetSimulationTruth()),
		FrameID: ex.GetFrameId(), Embedding: selection.Reduce(ex.GetEmbedding(), project.PendingEmbedding),
	}
	for _, p := range ex.GetPredictions() {
		r.Predictions = append(r.Predictions, project.Prediction{Class: p.GetClassName(), Confidence: p.GetConfidence(), Box: vision.BoxFromProto(p.GetBox())})
	}
	for _, s := range ex.GetReasons() {
		r.Reasons = append(r.Reasons, project.Reason{Kind: contract.SamplingKindName(s.GetKind()), Strategy: s.GetStrategy(), Score: s.GetScore(), Detail: s.GetDetail()})
	}
	if k := ex.GetTakenBy(); k != edgeloopv1.SamplingKind_SAMPLING_KIND_UNSPECIFIED {
		r.TakenBy = contract.SamplingKindName(k)
	} else if len(r.Reasons) > 0 {
		r.TakenBy = r.Reasons[0].Kind // an agent older than taken_by named its taker first
	}
	return r
}

// writeFormed writes the batch objects of formed batches (create-only: a retry writes
// nothing twice), then forgets them in the ledger. It writes a batch only once every
// example of it has its record (see recorded; known are ids whose records the caller
// has just written); the others stay in the ledger for a later call, the tick's.
func (c *Curator) writeFormed(ctx context.Context, pid string, formed []project.FormedBatch, known map[string]bool) error {
	formed, err := c.recorded(ctx, pid, formed, known)
	if err != nil || len(formed) == 0 {
		return err
	}
	ids := map[string]bool{}
	for _, fb := range formed {
		_, err := objstore.PutJSON(ctx, c.st.S, project.BatchKey(pid, fb.ID), newBatch(pid, fb), objstore.PutOptions{IfNoneMatch: true})
		if err != nil && !errors.Is(err, objstore.ErrPrecondition) {
			return err
		}
		ids[fb.ID] = true
		c.log.Info("batch formed", zap.String("project", pid), zap.String("batch", fb.ID), zap.Int("examples", len(fb.Examples)))
	}
	_, err = objstore.Update(ctx, c.st.S, project.LedgerKey(pid), func(l *project.Ledger, _ bool) error {
		keep := l.Formed[:0:0]
		for _, f := range l.Formed {
			if !ids[f.ID] {
				keep = append(keep, f)
			}
		}
		if len(keep) == len(l.Formed) {
			return objstore.ErrNoChange
		}
		l.Formed = keep
		l.Rev++
		return nil
	})
	return err
}

// Tick closes open batches that waited long enough and repairs batches formed but not
// written (after a crash). The service calls it periodically. Projects are isolated: one
// that fails is skipped for a growing delay (tickBackoff) while the others go on, and
// the error returned names every project that failed.
func (c *Curator) Tick(ctx context.Context) error {
	ps, err := c.st.Projects(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range ps {
		if !c.ticks.due(p.ID, c.now()) {
			continue
		}
		if err := c.tickProject(ctx, p); err != nil {
			if ctx.Err() != nil {
				return errors.Join(append(errs, err)...)
			}
			n, next := c.ticks.failed(p.ID, c.now())
			errs = append(errs, fmt.Errorf("project %s (failure %d, next try in %s): %w", p.ID, n, next.Round(time.Millisecond), err))
			continue
		}
		c.ticks.ok(p.ID)
	}
	return errors.Join(errs...)
}

// tickProject closes a project's due batches and completes its interrupted approvals.
func (c *Curator) tickProject(ctx context.Context, p *project.Project) error {
	var formed []project.FormedBatch
	expired := 0
	_, err := objstore.Update(ctx, c.st.S, project.LedgerKey(p.ID), func(l *project.Ledger, exists bool) error {
		if !exists {
			return objstore.ErrNoChange
		}
		var newly []project.FormedBatch
		newly, expired = formDue(l, p.Batch, c.now())
		formed = append([]project.FormedBatch(nil), l.Formed...) // with any a crash left unwritten
		if len(newly) == 0 && expired == 0 {
			return objstore.ErrNoChange
		}
		l.Rev++
		return nil
	})
	if err != nil {
		return err
	}
	c.m.expired.WithLabelValues(p.ID).Add(float64(expired))
	if err := c.writeFormed(ctx, p.ID, formed, nil); err != nil {
		return err
	}
	return c.resumeApprovals(ctx, p.ID)
}

// formedGrace is how long a formed batch whose example records are not all written
// waits for them (see recorded).
const formedGrace = 30 * time.Second

// recorded keeps the formed batches that may be written: those whose every example has
// its record (in known, or found in the store), and those formed over formedGrace ago.
// An ingest round queues its examples in the ledger, then writes their records, then
// writes the batches it cut, and a batch cut by one round (or the tick, or a replica)
// may hold examples another round has queued but not recorded yet: written then, it
// would be visible with examples an annotator cannot open. A batch still short of
// records after the grace is a crash's leftover, and is written anyway.
func (c *Curator) recorded(ctx context.Context, pid string, formed []project.FormedBatch, known map[string]bool) ([]project.FormedBatch, error) {
	var out []project.FormedBatch
	for _, fb := range formed {
		ok := c.now().Sub(fb.At) > formedGrace
		if !ok {
			var err error
			if ok, err = c.allRecorded(ctx, pid, fb, known); err != nil {
				return nil, err
			}
		}
		if ok {
			out = append(out, fb)
		}
	}
	return out, nil
}

// allRecorded reports whether every example of fb has its record.
func (c *Curator) allRecorded(ctx context.Context, pid string, fb project.FormedBatch, known map[string]bool) (bool, error) {
	for _, ex := range fb.Examples {
		if known[ex.ID] {
			continue
		}
		_, err := c.st.S.Stat(ctx, project.ExampleKey(pid, ex.ID))
		if errors.Is(err, objstore.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("batch %s: example %s: %w", fb.ID, ex.ID, err)
		}
	}
	return true, nil
}

// tickState remembers which projects failed their last tick, and when to try again.
type tickState struct {
	mu        sync.Mutex
	byProject map[string]tickFailure
}

type tickFailure struct {
	n    int
	next time.Time
}

func (s *tickState) due(pid string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !now.Before(s.byProject[pid].next)
}

func (s *tickState) failed(pid string, now time.Time) (int, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byProject == nil {
		s.byProject = map[string]tickFailure{}
	}
	f := s.byProject[pid]
	// A project that keeps failing is tried again after 2 s, 4 s, … up to 2 minutes.
	d := retry.Backoff{Initial: 2 * time.Second, Max: 2 * time.Minute}.Delay(f.n)
	f.n++
	f.next = now.Add(d)
	s.byProject[pid] = f
	return f.n, d
}

func (s *tickState) ok(pid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byProject, pid)
}

// refreshGauges sets the batches-by-state gauge of a project.
func (c *Curator) refreshGauges(pid string, bs []*project.Batch) {
	counts := map[string]int{project.StateReady: 0, project.StateInProgress: 0, project.StateSubmitted: 0, project.StateApproving: 0, project.StateApproved: 0}
	for _, b := range bs {
		counts[b.State]++
	}
	for st, n := range counts {
		c.m.batches.WithLabelValues(pid, st).Set(float64(n))
	}
}

// transition changes a batch by compare-and-swap, recording the audit entry. When fn
// returns objstore.ErrNoChange it returns (nil, nil).
func (c *Curator) transition(ctx context.Context, pid, id, user, action string, fn func(b *project.Batch, now time.Time) error) (*project.Batch, error) {
	var out project.Batch
	written, err := objstore.Update(ctx, c.st.S, project.BatchKey(pid, id), func(b *project.Batch, exists bool) error {
		if !exists {
			return fmt.Errorf("batch %s: %w", id, project.ErrNotFound)
		}
		now := c.now()
		from := b.State
		if err := fn(b, now); err != nil {
			return err
		}
		b.Audit = append(b.Audit, project.AuditEntry{At: now, User: user, Action: action, From: from, To: b.State})
		b.Rev++
		out = *b
		return nil
	})
	if err != nil || !written {
		return nil, err
	}
	return &out, nil
}

func (c *Curator) lease(ctx context.Context, pid string) time.Duration {
	p, err := c.st.Project(ctx, pid)
	if err != nil {
		return 30 * time.Minute
	}
	return p.Batch.Lease.D()
}

// project.Claim gives a ready batch (or one whose lease expired) to an annotator.
func (c *Curator) Claim(ctx context.Context, pid, id, user string) (*project.Batch, error) {
	lease := c.lease(ctx, pid)
	return c.transition(ctx, pid, id, user, "claim", func(b *project.Batch, now time.Time) error {
		switch {
		case b.State == project.StateReady:
		case b.State == project.StateInProgress && (b.Claim == nil || b.Claim.User == user || now.After(b.Claim.Expires)):
		case b.State == project.StateInProgress:
			return fmt.Errorf("%w: batch %s is claimed by %s until %s", project.ErrConflict, id, b.Claim.User, b.Claim.Expires.Format(time.RFC3339))
		default:
			return fmt.Errorf("%w: batch %s is %s, only ready batches can be claimed", project.ErrConflict, id, b.State)
		}
		b.State = project.StateInProgress
		b.Claim = &project.Claim{User: user, Expires: now.Add(lease)}
		return nil
	})
}

// Renew extends the caller's lease.
func (c *Curator) Renew(ctx context.Context, pid, id, user string) (*project.Batch, error) {
	lease := c.lease(ctx, pid)
	return c.transition(ctx, pid, id, user, "renew", func(b *project.Batch, now time.Time) error {
		if err := holds(b, user, now); err != nil {
			return err
		}
		b.Claim.Expires = now.Add(lease)
		return nil
	})
}

func holds(b *project.Batch, user string, now time.Time) error {
	if b.State != project.StateInProgress || b.Claim == nil || b.Claim.User != user {
		return fmt.Errorf("%w: batch %s is not claimed by %s", project.ErrConflict, b.ID, user)
	}
	if now.After(b.Claim.Expires) {
		return fmt.Errorf("%w: the lease on batch %s expired at %s; claim it again", project.ErrConflict, b.ID, b.Claim.Expires.Format(time.RFC3339))
	}
	return nil
}

// SaveItem stores one example's annotation; status "skipped" marks an unusable image.
func (c *Curator) SaveItem(ctx context.Context, pid, id, exampleID, user string, labels []project.Label, status string) (*project.Batch, error) {
	p, err := c.st.Project(ctx, pid)
	if err != nil {
		return nil, err
	}
	if status == "" {
		status = "done"
	}
	if status != "done" && status != "skipped" {
		return nil, fmt.Errorf("%w: status %q: want done or skipped", project.ErrInvalid, status)
	}
	if status == "done" {
		if err := checkLabels(p, labels); err != nil {
			return nil, err
		}
	} else {
		labels = nil
	}
	return c.transition(ctx, pid, id, user, "annotate", func(b *project.Batch, now time.Time) error {
		if err := holds(b, user, now); err != nil {
			return err
		}
		for i := range b.Items {
			if b.Items[i].ExampleID == exampleID {
				it := &b.Items[i]
				it.Labels, it.Status, it.AnnotatedBy = labels, status, user
				t := now
				it.AnnotatedAt = &t
				c.m.annotations.WithLabelValues(pid).Inc()
				return nil
			}
		}
		return fmt.Errorf("%w: example %s is not in batch %s", project.ErrNotFound, exampleID, id)
	})
}

func checkLabels(p *project.Project, labels []project.Label) error {
	known := p.ClassIndex()
	if len(labels) == 0 && p.Task == "classify" {
		return fmt.Errorf("%w: a classification annotation needs one class", project.ErrInvalid)
	}
	if p.Task == "classify" && len(labels) != 1 {
		return fmt.Errorf("%w: a classification annotation has exactly one class, got %d", project.ErrInvalid, len(labels))
	}
	for i, l := range labels {
		if _, ok := known[l.Class]; !ok {
			return fmt.Errorf("%w: label %d: class %q is not one of %v", project.ErrInvalid, i, l.Class, p.Classes)
		}
		if p.Task == "classify" && l.Box != nil {
			return fmt.Errorf("%w: label %d: classification labels have no box", project.ErrInvalid, i)
		}
		if p.Task == "detect" {
			b := l.Box
			if b == nil || !(b.X0 >= 0 && b.Y0 >= 0 && b.X1 <= 1 && b.Y1 <= 1 && b.X0 < b.X1 && b.Y0 < b.Y1) ||
				math.IsNaN(float64(b.X0+b.Y0+b.X1+b.Y1)) {
				return fmt.Errorf("%w: label %d: a detection label needs a box inside [0,1] with x0<x1, y0<y1", project.ErrInvalid, i)
			}
		}
	}
	return nil
}

// Submit hands a fully annotated batch to review.
func (c *Curator) Submit(ctx context.Context, pid, id, user string) (*project.Batch, error) {
	return c.transition(ctx, pid, id, user, "submit", func(b *project.Batch, now time.Time) error {
		if err := holds(b, user, now); err != nil {
			return err
		}
		todo := 0
		for _, it := range b.Items {
			if it.Status == "" {
				todo++
			}
		}
		if todo > 0 {
			return fmt.Errorf("%w: %d of %d examples are not annotated yet", project.ErrConflict, todo, len(b.Items))
		}
		b.State, b.Claim = project.StateSubmitted, nil
		return nil
	})
}

// Reject sends a submitted batch back to its annotator with the reviewer's comments.
func (c *Curator) Reject(ctx context.Context, pid, id, user, comments string) (*project.Batch, error) {
	if strings.TrimSpace(comments) == "" {
		return nil, fmt.Errorf("%w: a rejection needs comments for the annotator", project.ErrInvalid)
	}
	lease := c.lease(ctx, pid)
	return c.transition(ctx, pid, id, user, "reject", func(b *project.Batch, now time.Time) error {
		if b.State != project.StateSubmitted {
			return fmt.Errorf("%w: batch %s is %s, only submitted batches can be rejected", project.ErrConflict, id, b.State)
		}
		for i := range b.Items { // the items' verdicts become the annotator's feedback
			it := &b.Items[i]
			if it.Review != nil && it.Rejected() {
				it.Feedback, it.Status = it.Review, ""
			}
			it.Review = nil
		}
		b.State, b.Comments = project.StateInProgress, comments
		b.Claim = &project.Claim{User: annotatorOf(b), Expires: now.Add(lease)}
		return nil
	})
}

// annotatorOf is the user who last submitted b.
func annotatorOf(b *project.Batch) string {
	for i := len(b.Audit) - 1; i >= 0; i-- {
		if b.Audit[i].Action == "submit" {
			return b.Audit[i].User
		}
	}
	return ""
}

// ReviewItem records a reviewer's verdict on one item of a submitted batch:
// project.VerdictAccepted, or project.VerdictRejected with a comment for whoever
// corrects it again. At approval the rejected items leave the batch for a new one.
func (c *Curator) ReviewItem(ctx context.Context, pid, id, exampleID, user, verdict, comment string) (*project.Batch, error) {
	comment = strings.TrimSpace(comment)
	switch verdict {
	case project.VerdictAccepted:
	case project.VerdictRejected:
		if comment == "" {
			return nil, fmt.Errorf("%w: rejecting example %s needs a comment saying what to fix", project.ErrInvalid, exampleID)
		}
	default:
		return nil, fmt.Errorf("%w: verdict %q: want %s or %s", project.ErrInvalid, verdict, project.VerdictAccepted, project.VerdictRejected)
	}
	return c.transition(ctx, pid, id, user, "review", func(b *project.Batch, now time.Time) error {
		if b.State != project.StateSubmitted {
			return fmt.Errorf("%w: batch %s is %s, only submitted batches are reviewed", project.ErrConflict, id, b.State)
		}
		for i := range b.Items {
			if it := &b.Items[i]; it.ExampleID == exampleID {
				if it.Status != "done" && verdict == project.VerdictAccepted && it.Status != "skipped" {
					return fmt.Errorf("%w: example %s is not annotated", project.ErrConflict, exampleID)
				}
				it.Review = &project.ItemReview{Verdict: verdict, Comment: comment, By: user, At: now}
				return nil
			}
		}
		return fmt.Errorf("%w: example %s is not in batch %s", project.ErrNotFound, exampleID, id)
	})
}

// Approve approves a submitted batch; the items a reviewer rejected go back to the
// annotator who submitted it (see ApproveReturning).
func (c *Curator) Approve(ctx context.Context, pid, id, user string) (*project.Batch, error) {
	return c.ApproveReturning(ctx, pid, id, user, project.ReturnToAnnotator)
}

// ApproveReturning puts a submitted batch's annotations into the dataset (each example
// pinned to its split for life) and produces BatchApproved. Items a reviewer rejected
// (ReviewItem) are left out and move to a new batch: returnTo project.ReturnToAnnotator
// gives it, claimed, to the batch's annotator; project.ReturnToQueue makes it ready for
// anyone. Items without a verdict count as accepted. Each step is idempotent, so a retry
// after a crash completes the approval without doing anything twice. Unless the
// project's review policy allows self-approval, nobody approves a batch they worked on
// (ErrForbidden).
func (c *Curator) ApproveReturning(ctx context.Context, pid, id, user, returnTo string) (*project.Batch, error) {
	p, err := c.st.Project(ctx, pid)
	if err != nil {
		return nil, err
	}
	if returnTo == "" {
		returnTo = project.ReturnToAnnotator
	}
	if returnTo != project.ReturnToAnnotator && returnTo != project.ReturnToQueue {
		return nil, fmt.Errorf("%w: return_to %q: want %s or %s", project.ErrInvalid, returnTo, project.ReturnToAnnotator, project.ReturnToQueue)
	}
	cur, err := c.st.Batch(ctx, pid, id)
	if err != nil {
		return nil, err
	}
	returnID := cur.ReturnedTo
	if returnID == "" && slices.ContainsFunc(cur.Items, func(it project.Item) bool { return it.Rejected() }) {
		if returnID, err = c.nextBatchID(ctx, pid); err != nil {
			return nil, err
		}
	}
	b, err := c.transition(ctx, pid, id, user, "approve", func(b *project.Batch, _ time.Time) error {
		if b.State != project.StateSubmitted && b.State != project.StateApproving {
			return fmt.Errorf("%w: batch %s is %s, only submitted batches can be approved", project.ErrConflict, id, b.State)
		}
		if !p.Review.SelfApproval && b.State == project.StateSubmitted && workedOn(b, user) {
			return fmt.Errorf("%w: %s annotated batch %s and may not approve it too: another reviewer must (or set the project's review.self_approval)",
				project.ErrForbidden, user, id)
		}
		if b.State == project.StateSubmitted {
			rejected := slices.ContainsFunc(b.Items, func(it project.Item) bool { return it.Rejected() })
			if rejected && returnID == "" {
				return fmt.Errorf("%w: batch %s changed while it was approved; approve again", project.ErrConflict, id)
			}
			b.ReturnTo, b.ReturnedTo = "", ""
			if rejected {
				b.ReturnTo, b.ReturnedTo = returnTo, returnID
			}
		}
		b.State = project.StateApproving
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c.completeApproval(ctx, pid, b, user)
}

// workedOn reports whether user claimed, annotated or submitted the batch.
func workedOn(b *project.Batch, user string) bool {
	for _, a := range b.Audit {
		if a.User == user && (a.Action == "claim" || a.Action == "annotate" || a.Action == "submit" || a.Action == "renew") {
			return true
		}
	}
	for _, it := range b.Items {
		if it.AnnotatedBy == user {
			return true
		}
	}
	return false
}

// nextBatchID takes the next batch id of a project from its ledger.
func (c *Curator) nextBatchID(ctx context.Context, pid string) (string, error) {
	var id string
	_, err := objstore.Update(ctx, c.st.S, project.LedgerKey(pid), func(l *project.Ledger, _ bool) error {
		l.Seq++
		l.Rev++
		id = fmt.Sprintf("b%06d", l.Seq)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("batch id for project %s: %w", pid, err)
	}
	return id, nil
}

// writeReturned writes the batch that takes the rejected items of b (create-only: a
// retry writes nothing twice).
func (c *Curator) writeReturned(ctx context.Context, pid string, b *project.Batch, user string) error {
	if b.ReturnedTo == "" {
		return nil
	}
	now := c.now()
	rb := &project.Batch{ID: b.ReturnedTo, Project: pid, State: project.StateReady, CreatedAt: now, ReturnedFrom: b.ID}
	for _, it := range b.Items {
		if !it.Rejected() {
			continue
		}
		it.Feedback, it.Review = it.Review, nil
		it.Status, it.AnnotatedBy, it.AnnotatedAt = "", "", nil
		rb.Items = append(rb.Items, it)
	}
	rb.Comments = fmt.Sprintf("%d examples of batch %s returned by %s: see each example's comment", len(rb.Items), b.ID, user)
	to := project.StateReady
	if annotator := annotatorOf(b); b.ReturnTo != project.ReturnToQueue && annotator != "" {
		to = project.StateInProgress
		rb.State, rb.Claim = to, &project.Claim{User: annotator, Expires: now.Add(c.lease(ctx, pid))}
	}
	rb.Audit = []project.AuditEntry{{At: now, User: user, Action: "return", From: project.StateSubmitted, To: to,
		Detail: fmt.Sprintf("%d rejected examples of %s", len(rb.Items), b.ID)}}
	_, err := objstore.PutJSON(ctx, c.st.S, project.BatchKey(pid, rb.ID), rb, objstore.PutOptions{IfNoneMatch: true})
	if err != nil && !errors.Is(err, objstore.ErrPrecondition) {
		return fmt.Errorf("batch %s returning the rejected examples of %s: %w", rb.ID, b.ID, err)
	}
	return nil
}

func (c *Curator) completeApproval(ctx context.Context, pid string, b *project.Batch, user string) (*project.Batch, error) {
	p, err := c.st.Project(ctx, pid)
	if err != nil {
		return nil, err
	}
	ds, added, err := c.addToDataset(ctx, p, b)
	if err != nil {
		return nil, err
	}
	if err := c.writeReturned(ctx, pid, b, user); err != nil {
		return nil, err
	}
	now := c.now()
	bySplit, byClass := map[string]int32{}, map[string]int32{}
	for _, e := range added {
		bySplit[e.Split]++
		for _, l := range e.Labels {
			byClass[l.Class]++
		}
	}
	total, _ := ds.Counts()
	dsBySplit := map[string]int32{}
	for k, v := range total {
		dsBySplit[k] = int32(v)
	}
	snapshot := fmt.Sprintf("ds-%d", ds.Seq)
	ev, _ := proto.Marshal(&edgeloopv1.BatchApproved{
		Project: pid, BatchId: b.ID, ApprovedAt: timestamppb.New(now), ApprovedBy: user,
		AddedBySplit: bySplit, AddedByClass: byClass, DatasetSnapshot: snapshot, DatasetBySplit: dsBySplit,
	})
	if err := c.prod.Publish(ctx, c.kcfg.Topic(contract.TopicBatchesApproved), &message.Message{Key: []byte(pid), Value: ev}); err != nil {
		return nil, fmt.Errorf("approval of %s is stored but not yet announced (retry the approval): %w", b.ID, err)
	}
	out, err := c.transition(ctx, pid, b.ID, user, "approved", func(b *project.Batch, now time.Time) error {
		if b.State == project.StateApproved {
			return objstore.ErrNoChange
		}
		b.State, b.Snapshot = project.StateApproved, snapshot
		t := now
		b.ApprovedAt = &t
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil { // already approved by a concurrent retry
		return c.st.Batch(ctx, pid, b.ID)
	}
	for _, it := range b.Items {
		if it.Status == "done" && !it.Rejected() && it.Reason != "import" {
			c.m.toApproval.Observe(now.Sub(it.ArrivedAt).Seconds())
		}
	}
	c.log.Info("batch approved", zap.String("project", pid), zap.String("batch", b.ID), zap.String("snapshot", snapshot),
		zap.Int("added", len(added)), zap.String("by", user))
	return out, nil
}

// resumeApprovals completes approvals interrupted by a crash.
func (c *Curator) resumeApprovals(ctx context.Context, pid string) error {
	bs, err := c.st.Batches(ctx, pid)
	if err != nil {
		return err
	}
	c.refreshGauges(pid, bs)
	var errs []error
	for _, b := range bs {
		if b.State == project.StateApproving {
			user := "curator"
			if n := len(b.Audit); n > 0 {
				user = b.Audit[n-1].User
			}
			if _, err := c.completeApproval(ctx, pid, b, user); err != nil {
				errs = append(errs, fmt.Errorf("complete the approval of batch %s: %w", b.ID, err))
			}
		}
	}
	return errors.Join(errs...)
}

// addToDataset pins the batch's annotated examples to splits and returns them (all of
// the batch's entries when it was added before). Splits are decided once,
// deterministically from the example id (80/10/10 by default), with val and test capped
// (then train), unless an import's archive pinned them (project.Item.Split); an example already
// in the dataset keeps its split. An example whose record is missing or corrupt cannot
// name its image: it is left out and logged, and the rest of the batch goes in.
func (c *Curator) addToDataset(ctx context.Context, p *project.Project, b *project.Batch) (*project.Dataset, []project.DatasetEntry, error) {
	recs := map[string]string{}
	for _, it := range b.Items {
		if it.Status == "done" && !it.Rejected() {
			rec, err := c.st.Example(ctx, p.ID, it.ExampleID)
			if errors.Is(err, objstore.ErrNotFound) || errors.Is(err, objstore.ErrCorrupt) {
				c.log.Error("approved example left out of the dataset: its record cannot be read", zap.String("project", p.ID),
					zap.String("batch", b.ID), zap.String("example", it.ExampleID), zap.Error(err))
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			recs[it.ExampleID] = rec.Image
		}
	}
	var out project.Dataset
	var added []project.DatasetEntry
	_, err := objstore.Update(ctx, c.st.S, project.DatasetKey(p.ID), func(d *project.Dataset, _ bool) error {
		added = nil
		if slices.Contains(d.Batches, b.ID) {
			// Completed already (a retry, or resumeApprovals racing Approve): the event
			// announces the same additions again.
			for _, e := range d.Entries {
				if e.Batch == b.ID {
					added = append(added, e)
				}
			}
			out = *d
			return objstore.ErrNoChange
		}
		have := map[string]bool{}
		for _, e := range d.Entries {
			have[e.ID] = true
		}
		counts, _ := d.Counts()
		d.Seq++
		for _, it := range b.Items {
			if _, ok := recs[it.ExampleID]; !ok || have[it.ExampleID] { // not done, rejected or unreadable
				continue
			}
			split := it.Split
			if split == "" {
				split = project.AssignSplit(p.Split, it.ExampleID, counts)
			}
			counts[split]++
			e := project.DatasetEntry{ID: it.ExampleID, Split: split, Labels: it.Labels, Image: recs[it.ExampleID], Batch: b.ID, Seq: d.Seq}
			d.Entries = append(d.Entries, e)
			added = append(added, e)
		}
		d.Batches = append(d.Batches, b.ID)
		d.Rev++
		out = *d
		return nil
	})
	return &out, added, err
}

// BatchSummary is what the queue shows of a batch.
type BatchSummary struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Examples int    `json:"examples"`
	Done     int    `json:"done"`
	// Predicted counts the examples with a model prediction (imports have none); the
	// confidences are over those.
	Predicted      int            `json:"predicted"`
	MeanConfidence float32        `json:"mean_confidence"`
	MinConfidence  float32        `json:"min_confidence"`
	Classes        map[string]int `json:"classes"`
	// Reasons counts every sampling reason of every example: an example sampled for two
	// reasons counts in both.
	Reasons      map[string]int `json:"reasons"`
	Accepted     int            `json:"accepted,omitempty"`
	Rejected     int            `json:"rejected,omitempty"`
	Claim        *project.Claim `json:"claim,omitempty"`
	Comments     string         `json:"comments,omitempty"`
	ReturnedFrom string         `json:"returned_from,omitempty"`
	CreatedAt    time.Time      `json:"created_at"`
}

// Summarise reduces a batch to its summary.
func Summarise(b *project.Batch) BatchSummary {
	s := BatchSummary{ID: b.ID, State: b.State, Examples: len(b.Items), Claim: b.Claim, Comments: b.Comments, CreatedAt: b.CreatedAt,
		ReturnedFrom: b.ReturnedFrom, Classes: map[string]int{}, Reasons: map[string]int{}, MinConfidence: 1}
	var sum float32
	for _, it := range b.Items {
		if it.Status != "" {
			s.Done++
		}
		if it.Review != nil {
			if it.Rejected() {
				s.Rejected++
			} else {
				s.Accepted++
			}
		}
		s.Classes[it.Class]++
		for _, r := range it.ReasonKinds() {
			s.Reasons[r]++
		}
		if it.Reason == "import" {
			continue
		}
		s.Predicted++
		sum += it.Confidence
		s.MinConfidence = min(s.MinConfidence, it.Confidence)
	}
	if s.Predicted > 0 {
		s.MeanConfidence = sum / float32(s.Predicted)
	} else {
		s.MinConfidence = 0
	}
	return s
}

// Filter selects batches for the queue.
type Filter struct {
	State         string
	Reason, Class string
	MinConf       float32
	MaxConf       float32 // 0: no upper bound
}

// List returns the project's batches matching f, newest first, plus the open batch.
func (c *Curator) List(ctx context.Context, pid string, f Filter) ([]BatchSummary, error) {
	if _, err := c.st.Project(ctx, pid); err != nil {
		return nil, err
	}
	bs, err := c.st.Batches(ctx, pid)
	if err != nil {
		return nil, err
	}
	var out []BatchSummary
	l, err := c.st.Ledger(ctx, pid)
	if err != nil {
		return nil, err
	}
	open := &project.Batch{ID: "open", State: project.StateOpen}
	for _, p := range l.Pending {
		open.Items = append(open.Items, project.Item{ExampleID: p.ID, Class: p.Class, Reason: p.Reason, Reasons: p.Reasons, Confidence: p.Confidence, ArrivedAt: p.At})
	}
	bs = append(bs, open)
	for _, b := range bs {
		s := Summarise(b)
		if f.State != "" && s.State != f.State {
			continue
		}
		if f.Reason != "" && s.Reasons[f.Reason] == 0 {
			continue
		}
		if f.Class != "" && s.Classes[f.Class] == 0 {
			continue
		}
		if s.MeanConfidence < f.MinConf || (f.MaxConf > 0 && s.MeanConfidence > f.MaxConf) {
			continue
		}
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, nil
}
