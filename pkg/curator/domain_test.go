package curator

// Domain tests: the curator's logic — batching, the tick, approvals, frame joins — on
// the in-memory store with a recording producer and a settable clock. They need no
// server and run in milliseconds (`go test ./pkg/curator -run Domain`); the service
// tests in curator_test.go run the same code on Kafka and MinIO.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/selection"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// events records what the curator publishes; fail makes Publish fail.
type events struct {
	mu   sync.Mutex
	msgs []message.Message
	fail error
}

func (e *events) Publish(_ context.Context, topic string, msgs ...*message.Message) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return e.fail
	}
	for _, m := range msgs {
		c := *m
		c.Topic = topic
		e.msgs = append(e.msgs, c)
	}
	return nil
}

func (e *events) approvals(t *testing.T) []*edgeloopv1.BatchApproved {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*edgeloopv1.BatchApproved
	for _, m := range e.msgs {
		ev := &edgeloopv1.BatchApproved{}
		if m.Topic != contract.TopicBatchesApproved || proto.Unmarshal(m.Value, ev) != nil || string(m.Key) != ev.Project {
			t.Fatalf("unexpected message on %s: %q", m.Topic, m.Value)
		}
		out = append(out, ev)
	}
	return out
}

// count reads a counter.
func count(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type domain struct {
	c   *Curator
	s   *memstore.Store
	ev  *events
	clk *clock
	p   *project.Project
	ctx context.Context
}

// start is the clock's start and the capture time of frame 0.
func start() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

// newDomain returns a curator on a memory store with project "digits" (classes 0–9,
// batches of 4–6, a minute's max wait) changed by mod.
func newDomain(t *testing.T, mod func(p *project.Project)) *domain {
	t.Helper()
	d := &domain{s: memstore.New(), ev: &events{}, clk: &clock{t: start()}, ctx: context.Background()}
	d.c = New(d.s, d.ev, kafkabus.Config{}, NewMetrics(prometheus.NewRegistry()), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	d.c.now = d.clk.Now
	d.p = &project.Project{ID: "digits", Task: "classify", Classes: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
		// Batches in arrival order as soon as Max wait: the workflow tests; the
		// selection tests set the pool and the selection.
		Batch: project.BatchSettings{Min: 4, Max: 6, MaxWait: config.Duration(time.Minute), Pool: 1, Select: selection.Oldest}}
	if mod != nil {
		mod(d.p)
	}
	d.p.Defaults()
	if err := d.c.st.CreateProject(d.ctx, d.p); err != nil {
		t.Fatal(err)
	}
	return d
}

// noisy is a distinct image per seed (no two look alike).
func noisy(seed int) []byte {
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	im := raster.New(16, 16)
	for i := range im.Pix {
		im.Pix[i] = r.Float32()
	}
	return im.EncodePNG()
}

const (
	kindCTT      = edgeloopv1.SamplingKind_SAMPLING_KIND_CLOSE_TO_THRESHOLD
	kindRandom   = edgeloopv1.SamplingKind_SAMPLING_KIND_RANDOM
	kindOperator = edgeloopv1.SamplingKind_SAMPLING_KIND_OPERATOR_FLAGGED
)

// frameExample is example id of frame "f<frame>" of device cam-1 (image seed frame,
// captured frame seconds after start), predicted class, taken by takenBy; its reasons
// name random first, then close_to_threshold, whichever took it.
func frameExample(id string, frame int, class string, takenBy edgeloopv1.SamplingKind) *edgeloopv1.Example {
	return &edgeloopv1.Example{
		Id: id, Project: "digits", Device: "cam-1", CapturedAt: timestamppb.New(start().Add(time.Duration(frame) * time.Second)),
		Image: &edgeloopv1.Image{Data: noisy(frame), ContentType: "image/png", Width: 16, Height: 16}, Task: edgeloopv1.Task_TASK_CLASSIFY,
		ModelVersion: 1, FrameId: fmt.Sprintf("f%d", frame),
		Predictions: []*edgeloopv1.Prediction{{ClassName: class, Confidence: 0.5}},
		Reasons:     []*edgeloopv1.SamplingReason{{Kind: kindRandom, Strategy: "random"}, {Kind: kindCTT, Strategy: "uncertain"}},
		TakenBy:     takenBy,
	}
}

// corrected is ex (cloned) with an operator's correction to class, taken by the
// operator, the operator's reason first.
func corrected(ex *edgeloopv1.Example, class string) *edgeloopv1.Example {
	c := proto.Clone(ex).(*edgeloopv1.Example)
	c.Correction = &edgeloopv1.Annotation{Labels: []*edgeloopv1.Label{{ClassName: class}}}
	c.Reasons = append([]*edgeloopv1.SamplingReason{{Kind: kindOperator, Strategy: "operator_flagged"}}, c.Reasons...)
	c.TakenBy = kindOperator
	return c
}

func (d *domain) ingest(t *testing.T, exs ...*edgeloopv1.Example) {
	t.Helper()
	for _, ex := range exs {
		if err := d.c.Ingest(d.ctx, ex); err != nil {
			t.Fatalf("ingest %s: %v", ex.Id, err)
		}
	}
}

func (d *domain) ledger(t *testing.T) *project.Ledger {
	t.Helper()
	l, err := d.c.st.Ledger(d.ctx, d.p.ID)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (d *domain) pending(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range d.ledger(t).Pending {
		out[p.ID] = p.Reason
	}
	return out
}

func (d *domain) record(t *testing.T, id string) *project.ExampleRecord {
	t.Helper()
	r, err := d.c.st.Example(d.ctx, d.p.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (d *domain) batches(t *testing.T) []*project.Batch {
	t.Helper()
	bs, err := d.c.st.Batches(d.ctx, d.p.ID)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// approve claims, annotates (class "3" for all), submits and approves batch id.
func (d *domain) approve(t *testing.T, id string) (*project.Batch, error) {
	t.Helper()
	b, err := d.c.Claim(d.ctx, d.p.ID, id, "annie")
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range b.Items {
		if _, err := d.c.SaveItem(d.ctx, d.p.ID, id, it.ExampleID, "annie", []project.Label{{Class: "3"}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.c.Submit(d.ctx, d.p.ID, id, "annie"); err != nil {
		t.Fatal(err)
	}
	return d.c.Approve(d.ctx, d.p.ID, id, "rex")
}

// TestDomainBalancedOnTheStrategyThatTookTheFrame: examples wait in the open batch
// (with their TakenBy as reason, whatever the order of their reasons), and a batch cut
// from more than it holds takes (class, reason) groups round robin, oldest first.
func TestDomainBalancedOnTheStrategyThatTookTheFrame(t *testing.T) {
	d := newDomain(t, func(p *project.Project) { p.Batch.Min, p.Batch.Max = 20, 50 })
	want := map[string]string{}
	for i := 0; i < 10; i++ {
		kind, name := kindCTT, "close_to_threshold"
		if i >= 7 {
			kind, name = kindRandom, "random"
		}
		d.clk.Add(time.Second)
		d.ingest(t, frameExample(fmt.Sprintf("ex-%d", i), i, "1", kind))
		want[fmt.Sprintf("ex-%d", i)] = name
	}
	for id, reason := range d.pending(t) {
		if reason != want[id] {
			t.Errorf("%s waits with reason %q, want %q (the strategy that took it, not its first reason)", id, reason, want[id])
		}
	}
	if len(d.batches(t)) != 0 {
		t.Fatal("a batch formed below min")
	}
	// Smaller batches: the tick cuts 6 of the 10, 3 of each reason, the oldest of each.
	if _, err := d.c.st.UpdateProject(d.ctx, d.p.ID, func(p *project.Project) error { p.Batch.Min, p.Batch.Max = 4, 6; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := d.c.Tick(d.ctx); err != nil {
		t.Fatal(err)
	}
	bs := d.batches(t)
	if len(bs) != 1 || len(bs[0].Items) != 6 || bs[0].State != project.StateReady {
		t.Fatalf("after the tick: %d batches (%v); want one ready batch of 6", len(bs), bs)
	}
	got := map[string]int{}
	for _, it := range bs[0].Items {
		got[it.Reason]++
		if it.Reason != want[it.ExampleID] {
			t.Errorf("item %s has reason %q, want %q", it.ExampleID, it.Reason, want[it.ExampleID])
		}
	}
	if got["close_to_threshold"] != 3 || got["random"] != 3 {
		t.Fatalf("batch reasons %v: want 3 and 3", got)
	}
	left := d.pending(t)
	for _, id := range []string{"ex-3", "ex-4", "ex-5", "ex-6"} {
		if _, ok := left[id]; !ok || len(left) != 4 {
			t.Fatalf("left waiting %v; want the 4 newest close_to_threshold ones", left)
		}
	}
}

// TestDomainTickClosesAfterMaxWait: at least min waiting closes a batch only once the
// oldest waited max_wait; max closes one at once.
func TestDomainTickClosesAfterMaxWait(t *testing.T) {
	d := newDomain(t, nil)
	for i := 0; i < 4; i++ {
		d.ingest(t, frameExample(fmt.Sprintf("ex-%d", i), i, "2", kindCTT))
	}
	d.clk.Add(59 * time.Second)
	if err := d.c.Tick(d.ctx); err != nil || len(d.batches(t)) != 0 {
		t.Fatalf("tick before max wait: %v, %d batches", err, len(d.batches(t)))
	}
	d.clk.Add(time.Second)
	if err := d.c.Tick(d.ctx); err != nil {
		t.Fatal(err)
	}
	if bs := d.batches(t); len(bs) != 1 || len(bs[0].Items) != 4 || len(d.pending(t)) != 0 {
		t.Fatalf("tick at max wait: %d batches, %d waiting; want one batch of 4", len(bs), len(d.pending(t)))
	}
	for i := 4; i < 10; i++ {
		d.ingest(t, frameExample(fmt.Sprintf("ex-%d", i), i, "2", kindCTT))
	}
	if bs := d.batches(t); len(bs) != 2 || len(bs[1].Items) != 6 {
		t.Fatalf("max reached: %d batches; want a second one of 6 at once", len(bs))
	}
}

// TestDomainTickWritesBatchesACrashLeftFormed: a batch cut in the ledger but not written
// (the curator stopped in between) is written by the next tick and forgotten.
func TestDomainTickWritesBatchesACrashLeftFormed(t *testing.T) {
	d := newDomain(t, nil)
	for i := 0; i < 5; i++ {
		d.ingest(t, frameExample(fmt.Sprintf("ex-%d", i), i, "2", kindCTT))
	}
	// What Ingest does before writeFormed, as a crash would leave it.
	_, err := objstore.Update(d.ctx, d.s, project.LedgerKey(d.p.ID), func(l *project.Ledger, _ bool) error {
		cut(l, 1, 5, d.clk.Now())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.batches(t)) != 0 || len(d.ledger(t).Formed) != 1 {
		t.Fatal("setup: want one formed, unwritten batch")
	}
	if err := d.c.Tick(d.ctx); err != nil {
		t.Fatal(err)
	}
	if bs, l := d.batches(t), d.ledger(t); len(bs) != 1 || len(bs[0].Items) != 5 || len(l.Formed) != 0 || len(l.Pending) != 0 {
		t.Fatalf("after the tick: %d batches, %d formed, %d waiting; want the batch of 5 written and forgotten", len(bs), len(l.Formed), len(l.Pending))
	}
}

// unrecord removes example id's record, as a round that queued the example and has not
// written its record yet leaves it, and returns a func that writes it back.
func (d *domain) unrecord(t *testing.T, id string) (restore func()) {
	t.Helper()
	key := project.ExampleKey(d.p.ID, id)
	o, err := d.s.Get(d.ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.s.Delete(d.ctx, key); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := d.s.Put(d.ctx, key, o.Data, objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDomainTickLeavesABatchToTheRoundWritingItsRecords: an ingest round queues its
// examples, then writes their records, then its batches. A tick in between does not
// make the batch visible while one of its records is missing (an annotator opening it
// would get "example not found"); it writes it once the record is there, or after
// formedGrace when the round never finished.
func TestDomainTickLeavesABatchToTheRoundWritingItsRecords(t *testing.T) {
	for _, tc := range []struct {
		name   string
		finish func(d *domain, restore func())
	}{
		{"the record arrives", func(_ *domain, restore func()) { restore() }},
		{"the round never finishes", func(d *domain, _ func()) { d.clk.Add(formedGrace + time.Second) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDomain(t, nil)
			for i := 0; i < 5; i++ {
				d.ingest(t, frameExample(fmt.Sprintf("ex-%d", i), i, "2", kindCTT))
			}
			// The round's state between its ledger update and its last record.
			restore := d.unrecord(t, "ex-4")
			if _, err := objstore.Update(d.ctx, d.s, project.LedgerKey(d.p.ID), func(l *project.Ledger, _ bool) error {
				cut(l, 1, 5, d.clk.Now())
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			d.clk.Add(time.Second)
			if err := d.c.Tick(d.ctx); err != nil {
				t.Fatal(err)
			}
			if bs, l := d.batches(t), d.ledger(t); len(bs) != 0 || len(l.Formed) != 1 {
				t.Fatalf("a tick with a record missing: %d batches written, %d formed; want it left formed", len(bs), len(l.Formed))
			}
			tc.finish(d, restore)
			if err := d.c.Tick(d.ctx); err != nil {
				t.Fatal(err)
			}
			bs, l := d.batches(t), d.ledger(t)
			if len(bs) != 1 || len(bs[0].Items) != 5 || len(l.Formed) != 0 {
				t.Fatalf("the next tick: %d batches, %d formed; want the batch of 5 written", len(bs), len(l.Formed))
			}
			// The batch opens, with the records there are.
			mux := httpapi.NewMux(&httpapi.Tokens{Tokens: map[string]httpapi.User{
				"admin-token-00001": {Name: "ada", Roles: []string{httpapi.RoleAdmin}, Projects: []string{httpapi.AllProjects}}}})
			Mount(mux, d.c)
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/api/v1/projects/"+d.p.ID+"/batches/"+bs[0].ID, nil)
			req.Header.Set("Authorization", "Bearer admin-token-00001")
			mux.ServeHTTP(rec, req)
			var v BatchView
			if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &v) != nil {
				t.Fatalf("GET the batch: %d %s", rec.Code, rec.Body)
			}
			if want := map[string]int{"the record arrives": 5, "the round never finishes": 4}[tc.name]; len(v.Items) != 5 || len(v.Examples) != want {
				t.Fatalf("GET the batch: %d items, %d records; want 5 and %d", len(v.Items), len(v.Examples), want)
			}
		})
	}
}

// TestDomainIngestHoldsABatchWithAnotherRoundsExample: a round that cuts a batch holding
// an example another round queued but has not recorded yet leaves the batch in the
// ledger; the tick writes it once that record is there.
func TestDomainIngestHoldsABatchWithAnotherRoundsExample(t *testing.T) {
	d := newDomain(t, nil)
	for i := 0; i < 4; i++ {
		d.ingest(t, frameExample(fmt.Sprintf("ex-%d", i), i, "2", kindCTT))
	}
	// ex-3's round has queued it and not written its record yet.
	restore := d.unrecord(t, "ex-3")
	d.ingest(t, frameExample("ex-4", 4, "2", kindCTT), frameExample("ex-5", 5, "2", kindCTT)) // Max: a batch of 6 is cut
	if bs, l := d.batches(t), d.ledger(t); len(bs) != 0 || len(l.Formed) != 1 || len(l.Formed[0].Examples) != 6 {
		t.Fatalf("the round that cut the batch: %d batches written, %d formed; want the batch of 6 left formed", len(bs), len(l.Formed))
	}
	restore()
	if err := d.c.Tick(d.ctx); err != nil {
		t.Fatal(err)
	}
	if bs, l := d.batches(t), d.ledger(t); len(bs) != 1 || len(bs[0].Items) != 6 || len(l.Formed) != 0 {
		t.Fatalf("the tick after the record: %d batches, %d formed; want the batch of 6 written", len(bs), len(l.Formed))
	}
}

// TestDomainRedeliveryAndLookalikes: a redelivered example changes nothing; a
// look-alike from another frame is recorded but not queued, unless an operator
// corrected it.
func TestDomainRedeliveryAndLookalikes(t *testing.T) {
	d := newDomain(t, func(p *project.Project) { p.Batch.Min, p.Batch.Max = 20, 50 })
	a := frameExample("a", 1, "4", kindCTT)
	d.ingest(t, a, a)
	rev := d.ledger(t).Rev
	d.ingest(t, a)
	if l := d.ledger(t); len(l.Pending) != 1 || l.Rev != rev {
		t.Fatalf("redelivery: %d waiting, rev %d→%d", len(l.Pending), rev, l.Rev)
	}
	look := frameExample("b", 2, "4", kindCTT)
	look.Image.Data = a.Image.Data
	d.ingest(t, look)
	if r := d.record(t, "b"); r.DuplicateOf != "a" || len(d.pending(t)) != 1 {
		t.Fatalf("look-alike: duplicate of %q, %d waiting; want of a, not queued", r.DuplicateOf, len(d.pending(t)))
	}
	flagged := corrected(frameExample("c", 3, "4", kindCTT), "5")
	flagged.Image.Data = a.Image.Data
	d.ingest(t, flagged)
	if p := d.pending(t); p["c"] != "operator_flagged" || len(p) != 2 {
		t.Fatalf("corrected look-alike: waiting %v; want it queued as operator_flagged", p)
	}
	if n := count(t, d.c.m.duplicates.WithLabelValues("digits")); n != 1 {
		t.Fatalf("%v duplicates counted, want 1", n)
	}
}

// TestDomainBadExamplesRejected: what can never be accepted is a message.Reject with
// a reason, and nothing is stored.
func TestDomainBadExamplesRejected(t *testing.T) {
	d := newDomain(t, nil)
	cases := []struct {
		reason string
		mod    func(ex *edgeloopv1.Example)
	}{
		{contract.ReasonUnknownProject, func(ex *edgeloopv1.Example) { ex.Project = "nope" }},
		{contract.ReasonTaskMismatch, func(ex *edgeloopv1.Example) { ex.Task = edgeloopv1.Task_TASK_DETECT }},
		{contract.ReasonUnknownClass, func(ex *edgeloopv1.Example) { ex.Predictions[0].ClassName = "cat" }},
		{contract.ReasonUnknownClass, func(ex *edgeloopv1.Example) {
			ex.Correction = &edgeloopv1.Annotation{Labels: []*edgeloopv1.Label{{ClassName: "dog"}}}
		}},
		{contract.ReasonBadImage, func(ex *edgeloopv1.Example) { ex.Image.Data = []byte("not an image") }},
	}
	for _, c := range cases {
		ex := frameExample("bad", 1, "1", kindCTT)
		c.mod(ex)
		var rej *message.Reject
		if err := d.c.Ingest(d.ctx, ex); !errors.As(err, &rej) || rej.Reason != c.reason {
			t.Errorf("%s: got %v", c.reason, err)
		}
	}
	var keys []string
	d.s.List(d.ctx, "", func(i objstore.Info) error { keys = append(keys, i.Key); return nil })
	if len(keys) != 1 {
		t.Fatalf("stored %v, want the project only", keys)
	}
}

// TestDomainApprovalAnnouncedOnce: an approval puts the batch into the dataset and
// produces one BatchApproved; approving again is a conflict and produces nothing; an
// approval whose event could not be produced stays approving, and the tick completes
// and announces it.
func TestDomainApprovalAnnouncedOnce(t *testing.T) {
	d := newDomain(t, nil)
	for i := 0; i < 12; i++ {
		d.ingest(t, frameExample(fmt.Sprintf("ex-%02d", i), i, "1", kindCTT))
	}
	if _, err := d.approve(t, "b000001"); err != nil {
		t.Fatal(err)
	}
	evs := d.ev.approvals(t)
	if len(evs) != 1 || evs[0].BatchId != "b000001" || evs[0].Project != "digits" || evs[0].DatasetSnapshot != "ds-1" ||
		evs[0].AddedByClass["3"] != 6 || evs[0].ApprovedBy != "rex" {
		t.Fatalf("events %v; want one BatchApproved of b000001 adding 6 of class 3", evs)
	}
	if _, err := d.c.Approve(d.ctx, d.p.ID, "b000001", "rex"); !errors.Is(err, project.ErrConflict) || len(d.ev.approvals(t)) != 1 {
		t.Fatalf("second approval: %v, %d events", err, len(d.ev.approvals(t)))
	}
	d.ev.fail = errors.New("broker down")
	if _, err := d.approve(t, "b000002"); err == nil {
		t.Fatal("approval without its event succeeded")
	}
	if b, _ := d.c.st.Batch(d.ctx, d.p.ID, "b000002"); b.State != project.StateApproving {
		t.Fatalf("unannounced approval is %s, want approving", b.State)
	}
	d.ev.fail = nil
	if err := d.c.Tick(d.ctx); err != nil {
		t.Fatal(err)
	}
	evs = d.ev.approvals(t)
	if b, _ := d.c.st.Batch(d.ctx, d.p.ID, "b000002"); b.State != project.StateApproved || len(evs) != 2 || evs[1].DatasetSnapshot != "ds-2" {
		t.Fatalf("after the tick: %s, %d events; want approved and announced with ds-2", b.State, len(evs))
	}
	ds, _ := d.c.st.Dataset(d.ctx, d.p.ID)
	if len(ds.Entries) != 12 {
		t.Fatalf("dataset holds %d, want 12", len(ds.Entries))
	}
}

// TestDomainApprovalCompletedTwiceAnnouncesTheSame: when the tick's resumeApprovals
// completes an approval that Approve is completing too, both events announce the
// batch's additions (a second one announcing none undercounts new examples in retrain
// when it arrives first), and the dataset takes the batch once.
func TestDomainApprovalCompletedTwiceAnnouncesTheSame(t *testing.T) {
	d := newDomain(t, nil)
	for i := 0; i < 6; i++ {
		d.ingest(t, frameExample(fmt.Sprintf("ex-%d", i), i, "1", kindCTT))
	}
	b, err := d.c.Claim(d.ctx, d.p.ID, "b000001", "annie")
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range b.Items {
		if b, err = d.c.SaveItem(d.ctx, d.p.ID, b.ID, it.ExampleID, "annie", []project.Label{{Class: "3"}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.c.Submit(d.ctx, d.p.ID, b.ID, "annie"); err != nil {
		t.Fatal(err)
	}
	b, err = d.c.transition(d.ctx, d.p.ID, b.ID, "rex", "approve", func(b *project.Batch, _ time.Time) error {
		b.State = project.StateApproving
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // Approve's completion and resumeApprovals', both from the approving batch
		if _, err := d.c.completeApproval(d.ctx, d.p.ID, b, "rex"); err != nil {
			t.Fatal(err)
		}
	}
	evs := d.ev.approvals(t)
	if len(evs) != 2 || evs[0].AddedByClass["3"] != 6 || evs[1].AddedByClass["3"] != 6 || evs[1].DatasetSnapshot != evs[0].DatasetSnapshot {
		t.Fatalf("events %v; want two announcing the same 6 additions", evs)
	}
	if ds, _ := d.c.st.Dataset(d.ctx, d.p.ID); len(ds.Entries) != 6 || len(ds.Batches) != 1 {
		t.Fatalf("dataset: %d entries from %d batches; want 6 from 1", len(ds.Entries), len(ds.Batches))
	}
}

// TestDomainFrameCorrectionJoinsItsExample: a correction sent under the example's own id
// (an agent whose example had left its outbox) changes that example — its labels, its
// reason in the open batch — and queues nothing new; so does one under a new id (older
// agents), whichever arrives first; a redelivered correction changes nothing.
func TestDomainFrameCorrectionJoinsItsExample(t *testing.T) {
	d := newDomain(t, func(p *project.Project) { p.Batch.Min, p.Batch.Max = 20, 50 })
	a := frameExample("a", 1, "1", kindCTT)
	d.ingest(t, a, corrected(a, "7"))
	if p := d.pending(t); len(p) != 1 || p["a"] != "operator_flagged" {
		t.Fatalf("same id: waiting %v; want a alone, as operator_flagged", p)
	}
	r := d.record(t, "a")
	if len(r.Correction) != 1 || r.Correction[0].Class != "7" || r.TakenBy != "operator_flagged" || len(r.Reasons) != 3 {
		t.Fatalf("record a: %+v; want the correction, taken by the operator, three reasons", r)
	}
	rev := d.ledger(t).Rev
	d.ingest(t, corrected(a, "7"))
	if d.ledger(t).Rev != rev {
		t.Fatal("a redelivered correction changed the ledger")
	}

	// An older agent: the correction comes under a new id.
	b := frameExample("b", 2, "1", kindCTT)
	bc := corrected(b, "8")
	bc.Id = "b-flagged"
	d.ingest(t, b, bc)
	if p := d.pending(t); len(p) != 2 || p["b"] != "operator_flagged" {
		t.Fatalf("new id: waiting %v; want b (not b-flagged) as operator_flagged", p)
	}
	if r := d.record(t, "b"); len(r.Correction) != 1 || r.Correction[0].Class != "8" {
		t.Fatalf("record b: %+v", r)
	}
	if _, err := d.c.st.Example(d.ctx, d.p.ID, "b-flagged"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("the joined example has a record of its own: %v", err)
	}

	// The correction first (it goes ahead in the outbox), the sampled one after.
	c := frameExample("c", 3, "1", kindCTT)
	cc := corrected(c, "9")
	cc.Id = "c-flagged"
	d.ingest(t, cc, c)
	if p := d.pending(t); len(p) != 3 || p["c-flagged"] != "operator_flagged" {
		t.Fatalf("correction first: waiting %v; want c-flagged only, as operator_flagged", p)
	}
	if r := d.record(t, "c-flagged"); r.Correction[0].Class != "9" || r.TakenBy != "operator_flagged" || len(r.Reasons) != 3 {
		t.Fatalf("record c-flagged: %+v; the operator's correction wins", r)
	}

	// The same frame id captured at another time is another frame (ids come back).
	again := frameExample("a-later", 1, "1", kindCTT)
	again.CapturedAt = timestamppb.New(start().Add(time.Hour))
	again.Image.Data = noisy(100)
	d.ingest(t, again)
	if p := d.pending(t); len(p) != 4 {
		t.Fatalf("a reused frame id: waiting %v; want a-later queued too", p)
	}
	if n := count(t, d.c.m.joined.WithLabelValues("digits")); n != 3 {
		t.Fatalf("%v joins counted, want 3", n)
	}
}

// TestDomainFrameCorrectionReachesItsBatch: a correction arriving once its example is
// in a batch changes that batch's item (an audited transition) and queues nothing; a
// look-alike left out of the queue is queued once corrected; after approval the
// dataset does not change.
func TestDomainFrameCorrectionReachesItsBatch(t *testing.T) {
	d := newDomain(t, nil)
	var exs []*edgeloopv1.Example
	for i := 0; i < 6; i++ {
		exs = append(exs, frameExample(fmt.Sprintf("ex-%d", i), i, "1", kindCTT))
	}
	d.ingest(t, exs...)
	d.ingest(t, corrected(exs[2], "6"))
	bs := d.batches(t)
	if len(bs) != 1 || len(d.pending(t)) != 0 {
		t.Fatalf("%d batches, %d waiting; want one batch, nothing waiting", len(bs), len(d.pending(t)))
	}
	var item project.Item
	for _, it := range bs[0].Items {
		if it.ExampleID == "ex-2" {
			item = it
		}
	}
	last := bs[0].Audit[len(bs[0].Audit)-1]
	if item.Reason != "operator_flagged" || last.Action != "operator_correction" || d.record(t, "ex-2").Correction[0].Class != "6" {
		t.Fatalf("item %+v, last audit %+v; want the item operator_flagged by an audited correction", item, last)
	}

	// A look-alike of ex-0 from another frame is left out, then corrected: queued.
	look := frameExample("look", 10, "1", kindCTT)
	look.Image.Data = exs[0].Image.Data
	d.ingest(t, look)
	if len(d.pending(t)) != 0 {
		t.Fatal("look-alike queued")
	}
	d.ingest(t, corrected(look, "2"))
	if p := d.pending(t); p["look"] != "operator_flagged" || d.record(t, "look").DuplicateOf != "" {
		t.Fatalf("corrected look-alike: waiting %v, duplicate of %q; want it queued", p, d.record(t, "look").DuplicateOf)
	}

	// Approved: the correction stays on the record; the dataset keeps the annotator's label.
	if _, err := d.approve(t, "b000001"); err != nil {
		t.Fatal(err)
	}
	d.ingest(t, corrected(exs[4], "9"))
	ds, _ := d.c.st.Dataset(d.ctx, d.p.ID)
	for _, e := range ds.Entries {
		if e.ID == "ex-4" && e.Labels[0].Class != "3" {
			t.Fatalf("an approved entry changed: %+v", e)
		}
	}
	if r := d.record(t, "ex-4"); r.Correction[0].Class != "9" || len(d.pending(t)) != 1 {
		t.Fatalf("record ex-4 %+v, waiting %v", r, d.pending(t))
	}
}

// TestDomainBacklogBatchesBalanced: 520 examples that arrive in one consumer poll (the
// group commit), their predicted classes uneven (class c about (c+1)/55 of them), form
// 10 batches that each hold about a tenth of every class; it fails when each batch is
// cut from what the ones before left (the first take 5 of each class, the last are
// lopsided with the common classes).
func TestDomainBacklogBatchesBalanced(t *testing.T) {
	s := project.BatchSettings{Min: 30, Max: 50, Pool: 50, MaxWait: config.Duration(time.Hour)}
	t0 := time.Unix(1_700_000_000, 0)
	r := rand.New(rand.NewPCG(7, 7))
	l := &project.Ledger{}
	for i := 0; i < 520; i++ {
		c, u := 0, r.IntN(55)
		for u >= c+1 {
			u -= c + 1
			c++
		}
		addPending(l, project.Pending{ID: fmt.Sprintf("ex-%03d", i), Class: fmt.Sprint(c), Reason: "margin", At: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	got, _ := formDue(l, s, t0.Add(time.Second))
	if len(got) != 10 || len(l.Pending) != 20 {
		t.Fatalf("%d batches, %d waiting; want 10 and 20", len(got), len(l.Pending))
	}
	all := map[string]int{}
	for _, fb := range got {
		for _, e := range fb.Examples {
			all[e.Class]++
		}
	}
	seen := map[string]bool{}
	for i, fb := range got {
		classes := map[string]int{}
		for _, e := range fb.Examples {
			classes[e.Class]++
			if seen[e.ID] {
				t.Fatalf("%s in two batches", e.ID)
			}
			seen[e.ID] = true
		}
		for c, n := range all {
			if share := float64(n) / 10; len(fb.Examples) != 50 || math.Abs(float64(classes[c])-share) > 1 {
				t.Errorf("batch %d: %d examples, %d of class %s where its share is %.1f: not balanced", i, len(fb.Examples), classes[c], c, share)
			}
		}
	}
}

// TestDomainCorruptDocumentsHideOnlyThemselves: a project, batch or example document
// that does not decode stops nothing else: the tick goes on with the other projects and
// batches, and a batch approves without the example whose record went bad.
func TestDomainCorruptDocumentsHideOnlyThemselves(t *testing.T) {
	d := newDomain(t, nil)
	for i := 0; i < 6; i++ {
		d.ingest(t, frameExample(fmt.Sprintf("ex-%02d", i), i, "1", kindCTT))
	}
	put := func(key string) {
		t.Helper()
		if _, err := d.s.Put(d.ctx, key, []byte(`{"id": `), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put(project.ProjectKey("broken"))
	put(project.BatchKey(d.p.ID, "b000099"))
	if err := d.c.Tick(d.ctx); err != nil {
		t.Fatalf("tick beside a corrupt project and batch: %v", err)
	}
	if bs := d.batches(t); len(bs) != 1 || bs[0].ID != "b000001" {
		t.Fatalf("batches %v, want b000001 alone listed", bs)
	}
	b, err := d.c.Claim(d.ctx, d.p.ID, "b000001", "annie")
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range b.Items {
		if _, err := d.c.SaveItem(d.ctx, d.p.ID, "b000001", it.ExampleID, "annie", []project.Label{{Class: "3"}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.c.Submit(d.ctx, d.p.ID, "b000001", "annie"); err != nil {
		t.Fatal(err)
	}
	put(project.ExampleKey(d.p.ID, b.Items[0].ExampleID))
	if b, err := d.c.Approve(d.ctx, d.p.ID, "b000001", "rex"); err != nil || b.State != project.StateApproved {
		t.Fatalf("approval with one record gone bad: %v", err)
	}
	ds, _ := d.c.st.Dataset(d.ctx, d.p.ID)
	evs := d.ev.approvals(t)
	if len(ds.Entries) != 5 || len(evs) != 1 || evs[0].AddedByClass["3"] != 5 {
		t.Fatalf("dataset %d entries, events %v; want the 5 readable examples added and announced", len(ds.Entries), evs)
	}
	for _, e := range ds.Entries {
		if e.ID == b.Items[0].ExampleID || e.Image == "" {
			t.Fatalf("dataset entry %+v: the unreadable example is in, or an entry has no image", e)
		}
	}
}
