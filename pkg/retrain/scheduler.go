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
	// Running is the lease of the training under way, if any.
	Running *Lease `json:"running,omitempty"`
	// Last is the outcome of the latest training.
	Last *LastTraining `json:"last,omitempty"`
	Rev  int           `json:"rev"`
}

// Lease is a trainer's claim on a project.
type Lease struct {
	Owner   string    `json:"owner"`
	Started time.Time `json:"started"`
	Until   time.Time `json:"until"`
	Trigger string    `json:"trigger"`
}

// LastTraining summarises the latest training.
type LastTraining struct {
	At        time.Time `json:"at"`
	Version   int64     `json:"version"`
	Published bool      `json:"published"`
	Error     string    `json:"error,omitempty"`
}

func stateKey(p string) string { return "projects/" + p + "/retrain.json" }

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
		}
		st.Due = true
		st.NewExamples += added
		st.LastApproval = time.Now().UTC()
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
	for {
		if err := s.maybeTrain(ctx, project); err != nil && ctx.Err() == nil {
			s.log.Error("training failed", zap.String("project", project), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
	}
}

// errNotDue ends a claim attempt without writing.
var errNotDue = errors.New("no training due")

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
	var trigger string
	now := time.Now().UTC()
	claimed, err := objstore.Update(ctx, s.cur.S, stateKey(project), func(st *State, _ bool) error {
		crashed := st.Running != nil && now.After(st.Running.Until)
		if st.Running != nil && !crashed {
			return objstore.ErrNoChange // someone trains it now
		}
		due := st.Manual || crashed ||
			(st.Due && pol.Trigger == "batch") ||
			(st.Due && pol.Trigger == "examples" && st.NewExamples >= pol.MinNew)
		if !due {
			return objstore.ErrNoChange
		}
		if !st.Manual && !crashed && now.Sub(st.LastApproval) < pol.Debounce.D() {
			return objstore.ErrNoChange // wait for more approvals
		}
		switch {
		case crashed:
			trigger = "resume after " + st.Running.Owner + " stopped"
		case st.Manual:
			trigger = "manual"
		default:
			trigger = fmt.Sprintf("%d new examples", st.NewExamples)
		}
		st.Due, st.Manual, st.NewExamples = false, false, 0
		st.Running = &Lease{Owner: s.cfg.Owner, Started: now, Until: now.Add(s.cfg.Lease), Trigger: trigger}
		st.Rev++
		return nil
	})
	if err != nil || !claimed {
		return err
	}
	s.m.running.Inc()
	defer s.m.running.Dec()
	tctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.renew(tctx, project) }()
	start := time.Now()
	out, trainErr := s.TrainOnce(tctx, project, trigger)
	stop()
	wg.Wait()
	s.m.seconds.Observe(time.Since(start).Seconds())
	last := &LastTraining{At: time.Now().UTC()}
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
	_, err = objstore.Update(ctx, s.cur.S, stateKey(project), func(st *State, _ bool) error {
		if st.Running == nil || st.Running.Owner != s.cfg.Owner {
			return objstore.ErrNoChange
		}
		st.Running, st.Last = nil, last
		if trainErr != nil {
			st.Due = true // try again with the next wake-up
		}
		st.Rev++
		return nil
	})
	if err != nil {
		return err
	}
	return trainErr
}

// renew extends the lease while a training runs.
func (s *Service) renew(ctx context.Context, project string) {
	t := time.NewTicker(s.cfg.Lease / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := objstore.Update(ctx, s.cur.S, stateKey(project), func(st *State, _ bool) error {
			if st.Running == nil || st.Running.Owner != s.cfg.Owner {
				return objstore.ErrNoChange
			}
			st.Running.Until = time.Now().UTC().Add(s.cfg.Lease)
			st.Rev++
			return nil
		})
		if err != nil && ctx.Err() == nil {
			s.log.Warn("lease renewal failed", zap.String("project", project), zap.Error(err))
		}
	}
}
