package retrain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// State is a project's retraining state, changed by compare-and-swap so that several
// retrain instances agree: one trains, the others wait.
type State struct {
	// Due says approvals arrived since the last training started.
	Due bool `json:"due"`
	// Manual says an admin asked for a training.
	Manual bool `json:"manual"`
	// NewExamples counts examples approved since the last training started.
	NewExamples int `json:"new_examples"`
	// LastApproval is when the latest approval arrived (for the debounce).
	LastApproval time.Time `json:"last_approval"`
	// Seen are the recent batch ids already counted (redelivered events change nothing).
	Seen []string `json:"seen"`
	// Mode is the training mode an admin asked for (full or scratch), if any.
	Mode string `json:"mode,omitempty"`
	// SinceFull counts the trainings since the last full (or scratch) one.
	SinceFull int `json:"since_full"`
	// LastFull is when the last full (or scratch) training started.
	LastFull time.Time `json:"last_full,omitzero"`
	// Running is the lease of the training under way, if any.
	Running *Lease `json:"running,omitempty"`
	// Last is the outcome of the latest training.
	Last *LastTraining `json:"last,omitempty"`
	// Failures counts the trainings that failed in a row; RetryAt is when the next
	// may start (failureBackoff), unless an admin asks for one.
	Failures int       `json:"failures,omitempty"`
	RetryAt  time.Time `json:"retry_at,omitzero"`
	// Epoch counts the leases ever granted: each claim takes the next one as its
	// fencing token.
	Epoch int64 `json:"epoch"`
	Rev   int   `json:"rev"`
}

// Lease is a trainer's claim on a project.
type Lease struct {
	Owner   string    `json:"owner"`
	Started time.Time `json:"started"`
	Until   time.Time `json:"until"`
	Trigger string    `json:"trigger"`
	Mode    string    `json:"mode,omitempty"`
	// Epoch is the lease's fencing token: a trainer writes only while the project's
	// lease is still its own epoch.
	Epoch int64 `json:"epoch"`
}

// ErrLeaseLost says a trainer's lease was taken over or ran out: it must stop writing.
var ErrLeaseLost = errors.New("training lease lost")

// heldIn reports whether st's lease is still l, unexpired at now.
func (l *Lease) heldIn(st *State, now time.Time) bool {
	r := st.Running
	return r != nil && r.Owner == l.Owner && r.Epoch == l.Epoch && now.Before(r.Until)
}

// checkLease fails with ErrLeaseLost once the project's lease is no longer l.
func (s *Service) checkLease(ctx context.Context, project string, l *Lease) error {
	st, err := s.ReadState(ctx, project)
	if err != nil {
		return fmt.Errorf("lease of %s: %w", project, err)
	}
	if !l.heldIn(st, time.Now()) {
		holder := "nobody"
		if st.Running != nil {
			holder = fmt.Sprintf("%s (epoch %d)", st.Running.Owner, st.Running.Epoch)
		}
		return fmt.Errorf("%w: %s's lease on %s (epoch %d) is now held by %s", ErrLeaseLost, l.Owner, project, l.Epoch, holder)
	}
	return nil
}

// LastTraining summarises the latest training.
type LastTraining struct {
	At        time.Time `json:"at"`
	Version   int64     `json:"version"`
	Published bool      `json:"published"`
	Error     string    `json:"error,omitempty"`
}

func stateKey(p string) string { return project.RetrainKey(p) }

// ReadState returns a project's retraining state.
func (s *Service) ReadState(ctx context.Context, project string) (*State, error) {
	var st State
	_, err := objstore.GetJSON(ctx, s.cur.S, stateKey(project), &st)
	if errors.Is(err, objstore.ErrNotFound) {
		return &st, nil
	}
	return &st, err
}

// record counts an approval in the project's state (idempotent by batch id).
func (s *Service) record(ctx context.Context, ev *edgeloopv1.BatchApproved) error {
	added := 0
	for _, n := range ev.AddedBySplit {
		added += int(n)
	}
	_, err := objstore.Update(ctx, s.cur.S, stateKey(ev.Project), func(st *State, _ bool) error {
		if slices.Contains(st.Seen, ev.BatchId) {
			return objstore.ErrNoChange
		}
		st.Seen = append(st.Seen, ev.BatchId)
		if len(st.Seen) > 500 {
			st.Seen = st.Seen[len(st.Seen)-500:]
		}
		if IsManual(ev) {
			st.Manual = true
			m := ManualMode(ev)
			if base, _ := SplitMode(m); m == ModeScratch || (m == ModeFull && st.Mode != ModeScratch) || (base == ModeAdaptBN && st.Mode == "") {
				st.Mode = m
			}
		}
		st.Due = true
		st.NewExamples += added
		st.LastApproval = s.now().UTC()
		st.Rev++
		return nil
	})
	return err
}

// schedule runs one project's trainings: after each wake-up (and every few seconds, for
// the debounce and for leases left by crashed trainers) it starts a training when one
// is due and nobody trains the project. Approvals that arrive during a training make
// exactly one more training due.
func (s *Service) schedule(ctx context.Context, project string, wake <-chan struct{}) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	announced := s.now()
	for {
		if err := s.maybeTrain(ctx, project); err != nil && ctx.Err() == nil {
			s.log.Error("training failed", zap.String("project", project), zap.Error(err))
		}
		if s.cfg.Reannounce > 0 && s.now().Sub(announced) >= s.cfg.Reannounce {
			announced = s.now()
			if err := s.reg.AnnounceAll(ctx, project); err != nil && !errors.Is(err, registry.ErrNotFound) && ctx.Err() == nil {
				s.log.Warn("announcing the release again", zap.String("project", project), zap.Error(err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
	}
}

// maybeTrain claims the project and trains once if a training is due.
func (s *Service) maybeTrain(ctx context.Context, project string) error {
	p, err := s.cur.Project(ctx, project)
	if err != nil {
		if errors.Is(err, objstore.ErrNotFound) {
			return nil
		}
		return err
	}
	pol := p.Retrain
	select { // one training at a time in this process: they all want every core
	case s.train <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.train }()
	trigger, mode, lease, err := s.claim(ctx, project, pol)
	if err != nil || trigger == "" {
		return err
	}
	mine := *lease
	s.m.running.Inc()
	defer s.m.running.Dec()
	tctx, stop := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.renew(tctx, project, &mine, stop) }()
	start := time.Now()
	fence := registry.Fence{Token: mine.Epoch, Check: func(ctx context.Context) error { return s.checkLease(ctx, project, &mine) }}
	out, trainErr := s.TrainOnce(tctx, project, trigger, mode, fence)
	if cause := context.Cause(tctx); errors.Is(cause, ErrLeaseLost) {
		trainErr = cause
	}
	stop(nil)
	wg.Wait()
	s.m.seconds.Observe(time.Since(start).Seconds())
	last := &LastTraining{At: s.now().UTC()}
	switch {
	case trainErr != nil:
		last.Error = trainErr.Error()
		s.m.trainings.WithLabelValues("failed").Inc()
	case out.Released:
		last.Version, last.Published = out.Version.Version, true
		s.m.trainings.WithLabelValues("published").Inc()
	default:
		last.Version = out.Version.Version
		s.m.trainings.WithLabelValues("kept").Inc()
	}
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: the lease expires and the next start resumes
	}
	if err := s.finish(ctx, project, mine.Epoch, last, trainErr != nil); err != nil {
		return err
	}
	return trainErr
}

// chooseMode is the mode of a training the state makes due: what an admin asked for,
// else a full training (from the release or from scratch, as the policy says) when
// every FullEvery-th training or the nightly slot is due, else "" (replay, or full when
// the policy's replay is negative).
func chooseMode(pol project.RetrainPolicy, st *State, nightly time.Time) string {
	full := ModeFull
	if pol.FullFrom == ModeScratch {
		full = ModeScratch
	}
	switch {
	case st.Mode != "":
		return st.Mode
	case pol.FullEvery > 0 && st.SinceFull+1 >= pol.FullEvery:
		return full
	case !nightly.IsZero() && st.LastFull.Before(nightly):
		return full
	}
	return ""
}

// fullSlot is the latest daily full-training time at or before now ("HH:MM" UTC), or
// zero when there is none.
func fullSlot(at string, now time.Time) time.Time {
	t, err := time.Parse("15:04", at)
	if at == "" || err != nil {
		return time.Time{}
	}
	slot := time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC)
	if slot.After(now) {
		slot = slot.AddDate(0, 0, -1)
	}
	return slot
}

// claim takes the project's training lease when a training is due and returns its
// trigger, mode and the lease (with its fencing epoch); "" when none is due or another
// trainer holds the lease.
func (s *Service) claim(ctx context.Context, pid string, pol project.RetrainPolicy) (trigger, mode string, lease *Lease, err error) {
	_, err = objstore.Update(ctx, s.cur.S, stateKey(pid), func(st *State, _ bool) error {
		if trigger, mode = st.claim(pol, s.cfg.Owner, s.cfg.Lease, s.now().UTC()); trigger == "" {
			return objstore.ErrNoChange
		}
		l := *st.Running
		lease = &l
		return nil
	})
	if err != nil || trigger == "" {
		return "", "", nil, err
	}
	return trigger, mode, lease, nil
}

// finish hands back this trainer's lease (of epoch) with the training's outcome.
func (s *Service) finish(ctx context.Context, pid string, epoch int64, last *LastTraining, failed bool) error {
	_, err := objstore.Update(ctx, s.cur.S, stateKey(pid), func(st *State, _ bool) error {
		if !st.finish(s.cfg.Owner, epoch, last, failed) {
			return objstore.ErrNoChange
		}
		return nil
	})
	return err
}

// claim gives owner the lease for lease from now and returns the trigger and mode
// (chooseMode) when a training is due: an admin asked, a trainer's lease ran out (it
// crashed; its mode is resumed), the nightly full-training slot passed, or approvals
// arrived — with the "batch" policy, or with "examples" once MinNew examples did — and
// none for the debounce. It returns "" and leaves st as it was when no training is due
// or another trainer holds a live lease.
func (st *State) claim(pol project.RetrainPolicy, owner string, lease time.Duration, now time.Time) (trigger, mode string) {
	crashed := st.Running != nil && now.After(st.Running.Until)
	if st.Running != nil && !crashed {
		return "", "" // someone trains it now
	}
	if !st.Manual && !crashed && now.Before(st.RetryAt) {
		return "", "" // the last training failed: back off
	}
	nightly := fullSlot(pol.FullAt, now)
	due := st.Manual || crashed || (!nightly.IsZero() && st.LastFull.Before(nightly)) ||
		(st.Due && pol.Trigger == "batch") ||
		(st.Due && pol.Trigger == "examples" && st.NewExamples >= pol.MinNew)
	if !due {
		return "", ""
	}
	if !st.Manual && !crashed && now.Sub(st.LastApproval) < pol.Debounce.D() {
		return "", "" // wait for more approvals
	}
	switch {
	case crashed:
		trigger = "resume after " + st.Running.Owner + " stopped"
		mode = st.Running.Mode
	case st.Manual:
		trigger = "manual"
	case st.Due:
		trigger = fmt.Sprintf("%d new examples", st.NewExamples)
	default:
		trigger = "nightly full training"
	}
	if !crashed {
		mode = chooseMode(pol, st, nightly)
	}
	if mode == ModeFull || mode == ModeScratch {
		st.SinceFull, st.LastFull = 0, now
	} else {
		st.SinceFull++
	}
	st.Due, st.Manual, st.NewExamples, st.Mode = false, false, 0, ""
	st.Epoch++ // the fencing token of this lease: every write of the training checks it
	st.Running = &Lease{Owner: owner, Started: now, Until: now.Add(lease), Trigger: trigger, Mode: mode, Epoch: st.Epoch}
	st.Rev++
	return trigger, mode
}

// finish ends owner's lease of epoch with the training's outcome, at last.At; a failed
// training is due again after failureBackoff. It reports false, changing nothing, when
// that lease is no longer held.
func (st *State) finish(owner string, epoch int64, last *LastTraining, failed bool) bool {
	if st.Running == nil || st.Running.Owner != owner || st.Running.Epoch != epoch {
		return false
	}
	st.Running, st.Last = nil, last
	if failed {
		st.Due = true
		st.Failures++
		st.RetryAt = last.At.Add(failureBackoff(st.Failures))
	} else {
		st.Failures, st.RetryAt = 0, time.Time{}
	}
	st.Rev++
	return true
}

// failureBackoff is how long a project waits after its n-th failed training in a row
// before the next: 30 s, doubling, at most an hour. A failure that comes back every
// time (storage refusing a write, data that cannot load) then costs a training an hour,
// not the process's training slot without pause.
func failureBackoff(n int) time.Duration {
	return min(30*time.Second<<min(max(n-1, 0), 7), time.Hour)
}

// renew extends the lease l while a training runs. When the lease turns out lost
// (taken over after a pause longer than the lease, or expired), it cancels the training
// with ErrLeaseLost.
func (s *Service) renew(ctx context.Context, project string, l *Lease, cancel context.CancelCauseFunc) {

	t := time.NewTicker(s.cfg.Lease / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lost := false
		_, err := objstore.Update(ctx, s.cur.S, stateKey(project), func(st *State, _ bool) error {
			now := time.Now().UTC()
			if lost = !l.heldIn(st, now); lost {
				return objstore.ErrNoChange
			}
			st.Running.Until = s.now().UTC().Add(s.cfg.Lease)
			st.Rev++
			return nil
		})
		if lost {
			err := fmt.Errorf("%w: %s's lease on %s (epoch %d) was taken over or ran out", ErrLeaseLost, l.Owner, project, l.Epoch)
			s.log.Error("training stopped", zap.String("project", project), zap.Int64("epoch", l.Epoch), zap.Error(err))
			cancel(err)
			return
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("lease renewal failed", zap.String("project", project), zap.Error(err))
		}
	}
}
