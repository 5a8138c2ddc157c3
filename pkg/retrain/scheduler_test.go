package retrain

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/dashboard"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// scheduler is two trainers' views of one project's retraining state on a memory
// store, with a settable clock: the trigger and lease logic without Kafka or training.
type scheduler struct {
	ctx  context.Context
	now  time.Time
	a, b *Service
}

func newScheduler(t *testing.T) *scheduler {
	sc := &scheduler{ctx: context.Background(), now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	store := &project.Store{S: memstore.New()}
	svc := func(owner string) *Service {
		return &Service{cfg: ServiceConfig{Owner: owner, Lease: time.Minute}, cur: store, log: zaptest.NewLogger(t), now: func() time.Time { return sc.now }}
	}
	sc.a, sc.b = svc("a"), svc("b")
	return sc
}

func (sc *scheduler) approve(t *testing.T, batch string, train, val int) {
	t.Helper()
	ev := &edgeloopv1.BatchApproved{Project: "p", BatchId: batch, AddedBySplit: map[string]int32{"train": int32(train), "val": int32(val)}}
	if err := sc.a.record(sc.ctx, ev); err != nil {
		t.Fatal(err)
	}
}

// epoch is the fencing epoch of the lease held now (0: none).
func (sc *scheduler) epoch(t *testing.T) int64 {
	t.Helper()
	if r := sc.state(t).Running; r != nil {
		return r.Epoch
	}
	return 0
}

func (sc *scheduler) claim(t *testing.T, s *Service, pol project.RetrainPolicy) string {
	t.Helper()
	trigger, _, _, err := s.claim(sc.ctx, "p", pol)
	if err != nil {
		t.Fatal(err)
	}
	return trigger
}

func (sc *scheduler) state(t *testing.T) *State {
	t.Helper()
	st, err := sc.a.ReadState(sc.ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// batchPolicy trains on every approved batch after 10 s without another.
func batchPolicy() project.RetrainPolicy {
	return project.RetrainPolicy{Trigger: "batch", Debounce: config.Duration(10 * time.Second)}
}

// TestDomainSchedulerDebounceLeaseAndOneMore: approvals are counted once per batch; a
// training starts once approvals stopped for the debounce, under one trainer's lease;
// approvals during it make exactly one more due; a failed training is due again after
// a back-off.
func TestDomainSchedulerDebounceLeaseAndOneMore(t *testing.T) {
	sc := newScheduler(t)
	sc.approve(t, "b1", 30, 5)
	sc.approve(t, "b1", 30, 5) // redelivered
	sc.now = sc.now.Add(5 * time.Second)
	sc.approve(t, "b2", 10, 0)
	if st := sc.state(t); !st.Due || st.NewExamples != 45 || len(st.Seen) != 2 {
		t.Fatalf("state %+v: want due with 45 new examples from 2 batches", st)
	}
	sc.now = sc.now.Add(9 * time.Second)
	if tr := sc.claim(t, sc.a, batchPolicy()); tr != "" {
		t.Fatalf("claimed %q within the debounce", tr)
	}
	sc.now = sc.now.Add(time.Second)
	if tr := sc.claim(t, sc.a, batchPolicy()); tr != "45 new examples" {
		t.Fatalf("after the debounce: trigger %q", tr)
	}
	st := sc.state(t)
	if st.Due || st.NewExamples != 0 || st.Running == nil || st.Running.Owner != "a" || !st.Running.Until.Equal(sc.now.Add(time.Minute)) {
		t.Fatalf("state %+v: want a's lease for a minute, nothing due", st)
	}
	// Approvals during the training: b cannot claim while a's lease lives.
	sc.approve(t, "b3", 8, 0)
	sc.approve(t, "b4", 8, 0)
	sc.now = sc.now.Add(30 * time.Second)
	if tr := sc.claim(t, sc.b, batchPolicy()); tr != "" {
		t.Fatalf("b claimed %q under a's live lease", tr)
	}
	if err := sc.b.finish(sc.ctx, "p", sc.epoch(t), &LastTraining{Version: 9}, false); err != nil || sc.state(t).Running.Owner != "a" {
		t.Fatalf("b ended a's lease: %v", err)
	}
	if err := sc.a.finish(sc.ctx, "p", sc.epoch(t), &LastTraining{At: sc.now, Version: 2, Published: true}, false); err != nil {
		t.Fatal(err)
	}
	st = sc.state(t)
	if st.Running != nil || st.Last == nil || st.Last.Version != 2 || !st.Due || st.NewExamples != 16 {
		t.Fatalf("after a's training: %+v; want no lease, v2 recorded, one more due with 16", st)
	}
	if tr := sc.claim(t, sc.b, batchPolicy()); tr != "16 new examples" {
		t.Fatalf("the one more: %q", tr)
	}
	if tr := sc.claim(t, sc.a, batchPolicy()); tr != "" {
		t.Fatalf("a second 'one more': %q", tr)
	}
	// b's training fails: due again without a new approval, after a back-off that
	// doubles with each failure in a row and ends with a success.
	fail := func(s *Service) {
		t.Helper()
		if err := s.finish(sc.ctx, "p", sc.epoch(t), &LastTraining{At: sc.now, Error: "storage refused"}, true); err != nil {
			t.Fatal(err)
		}
	}
	fail(sc.b)
	sc.now = sc.now.Add(29 * time.Second)
	if tr := sc.claim(t, sc.a, batchPolicy()); tr != "" {
		t.Fatalf("claimed %q 29 s after a failure", tr)
	}
	sc.now = sc.now.Add(time.Second)
	if tr := sc.claim(t, sc.a, batchPolicy()); tr == "" || sc.state(t).Last.Error != "storage refused" {
		t.Fatalf("30 s after a failure: trigger %q, state %+v", tr, sc.state(t))
	}
	fail(sc.a)
	sc.now = sc.now.Add(59 * time.Second)
	if st := sc.state(t); st.Failures != 2 || sc.claim(t, sc.b, batchPolicy()) != "" {
		t.Fatalf("59 s after a second failure: %+v, want 2 failures and nothing claimed", st)
	}
	sc.now = sc.now.Add(time.Second)
	if tr := sc.claim(t, sc.b, batchPolicy()); tr == "" {
		t.Fatal("not due 60 s after the second failure")
	}
	if err := sc.b.finish(sc.ctx, "p", sc.epoch(t), &LastTraining{At: sc.now, Version: 3}, false); err != nil {
		t.Fatal(err)
	}
	if st := sc.state(t); st.Failures != 0 || !st.RetryAt.IsZero() {
		t.Fatalf("after a success: %+v, want the failures forgotten", st)
	}
	if d := failureBackoff(20); d != time.Hour {
		t.Fatalf("back-off after 20 failures: %s, want an hour", d)
	}
}

// TestDomainSchedulerResumesACrashedTrainersLease: a lease that ran out (its trainer
// stopped renewing it) is taken over at once, naming the trainer that stopped, in the
// mode it was training.
func TestDomainSchedulerResumesACrashedTrainersLease(t *testing.T) {
	sc := newScheduler(t)
	sc.approve(t, "b1", 30, 0)
	sc.now = sc.now.Add(time.Minute)
	pol := batchPolicy()
	pol.FullEvery = 1
	if tr, mode, _, err := sc.a.claim(sc.ctx, "p", pol); tr == "" || mode != ModeFull || err != nil {
		t.Fatalf("claimed %q in mode %q (%v); want a full training", tr, mode, err)
	}
	sc.now = sc.now.Add(59 * time.Second)
	if tr := sc.claim(t, sc.b, batchPolicy()); tr != "" {
		t.Fatalf("taken over a live lease: %q", tr)
	}
	sc.now = sc.now.Add(2 * time.Second)
	if tr, mode, _, err := sc.b.claim(sc.ctx, "p", batchPolicy()); tr != "resume after a stopped" || mode != ModeFull || err != nil {
		t.Fatalf("expired lease: trigger %q, mode %q (%v); want a's full training resumed", tr, mode, err)
	}
	if err := sc.a.finish(sc.ctx, "p", sc.epoch(t), &LastTraining{Version: 5}, false); err != nil || sc.state(t).Running.Owner != "b" {
		t.Fatalf("the crashed trainer, back, ended b's lease: %v", err)
	}
}

// TestDomainSchedulerPolicies: "examples" waits for min_new examples; "manual" trains
// only on request, and a request skips the debounce.
func TestDomainSchedulerPolicies(t *testing.T) {
	sc := newScheduler(t)
	examples := project.RetrainPolicy{Trigger: "examples", MinNew: 50, Debounce: config.Duration(time.Second)}
	sc.approve(t, "b1", 30, 0)
	sc.now = sc.now.Add(time.Hour)
	if tr := sc.claim(t, sc.a, examples); tr != "" {
		t.Fatalf("30 of 50 examples: %q", tr)
	}
	sc.approve(t, "b2", 20, 0)
	sc.now = sc.now.Add(time.Second)
	if tr := sc.claim(t, sc.a, examples); tr != "50 new examples" {
		t.Fatalf("50 of 50: %q", tr)
	}
	if err := sc.a.finish(sc.ctx, "p", sc.epoch(t), &LastTraining{}, false); err != nil {
		t.Fatal(err)
	}

	manual := project.RetrainPolicy{Trigger: "manual", Debounce: config.Duration(time.Hour)}
	sc.approve(t, "b3", 30, 0)
	sc.now = sc.now.Add(2 * time.Hour)
	if tr := sc.claim(t, sc.a, manual); tr != "" {
		t.Fatalf("manual policy trained on an approval: %q", tr)
	}
	if err := sc.a.record(sc.ctx, &edgeloopv1.BatchApproved{Project: "p", BatchId: "manual-1"}); err != nil || !IsManual(&edgeloopv1.BatchApproved{BatchId: "manual-1"}) {
		t.Fatal(err)
	}
	if tr := sc.claim(t, sc.a, manual); tr != "manual" {
		t.Fatalf("a request, at once: %q", tr)
	}
}

// TestDomainApprovalEventsCountedOrRefused: an approval event counts in its project's
// state; one that is not a BatchApproved, names a bad project or meets a retrain.json
// that does not decode is refused for the dead-letter topic, not retried.
func TestDomainApprovalEventsCountedOrRefused(t *testing.T) {
	sc := newScheduler(t)
	msg := func(ev *edgeloopv1.BatchApproved) *message.Message {
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return &message.Message{Value: b}
	}
	if pid, err := sc.a.recordApproval(sc.ctx, msg(&edgeloopv1.BatchApproved{Project: "p", BatchId: "b1", AddedBySplit: map[string]int32{"train": 3}})); err != nil ||
		pid != "p" || !sc.state(t).Due {
		t.Fatalf("a good approval: %q, %v, state %+v", pid, err, sc.state(t))
	}
	if _, err := sc.a.cur.S.Put(sc.ctx, stateKey("q"), []byte(`{"due": tru`), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		m      *message.Message
		reason string
	}{
		"not protobuf":   {&message.Message{Value: []byte{0xff, 0xff}}, contract.ReasonBadProtobuf},
		"bad project id": {msg(&edgeloopv1.BatchApproved{Project: "../p", BatchId: "b1"}), contract.ReasonBadID},
		"corrupt state":  {msg(&edgeloopv1.BatchApproved{Project: "q", BatchId: "b1"}), contract.ReasonCorruptState},
	} {
		var rej *message.Reject
		if _, err := sc.a.recordApproval(sc.ctx, c.m); !errors.As(err, &rej) || rej.Reason != c.reason {
			t.Errorf("%s: %v, want a rejection as %s", name, err, c.reason)
		}
	}
}

// TestStateReadsAsTheDashboardShowsIt: the dashboard reads retrain.json into its own
// TrainingStatus (it does not link the trainer); every field it shows comes through.
func TestStateReadsAsTheDashboardShowsIt(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := State{Due: true, Manual: true, NewExamples: 45, Failures: 2, RetryAt: t0.Add(time.Minute),
		Running: &Lease{Owner: "trainer-1", Started: t0, Until: t0.Add(time.Hour), Trigger: "manual", Mode: ModeFull, Epoch: 7},
		Last:    &LastTraining{At: t0, Version: 3, Error: "storage refused"}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var got dashboard.TrainingStatus
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := dashboard.TrainingStatus{Due: true, Manual: true, NewExamples: 45, Failures: 2, RetryAt: t0.Add(time.Minute),
		Running: &dashboard.TrainingRun{Owner: "trainer-1", Started: t0, Until: t0.Add(time.Hour), Trigger: "manual", Mode: ModeFull},
		Last:    &dashboard.TrainingOutcome{At: t0, Version: 3, Error: "storage refused"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the dashboard reads %+v (running %+v, last %+v), want %+v", got, got.Running, got.Last, want)
	}
}
