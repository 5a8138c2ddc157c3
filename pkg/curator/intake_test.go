package curator

// Domain tests of the group commit (IngestBatch, ingestMessages): on the memory store,
// no server.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/retry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// watched is a Store that counts the writes of each key and refuses the writes of the
// keys fail says.
type watched struct {
	objstore.Store
	mu     sync.Mutex
	writes map[string]int
	fail   func(key string) bool
}

func (w *watched) Put(ctx context.Context, key string, data []byte, o objstore.PutOptions) (string, error) {
	w.mu.Lock()
	fail := w.fail != nil && w.fail(key)
	if !fail {
		w.writes[key]++
	}
	w.mu.Unlock()
	if fail {
		return "", fmt.Errorf("put %s: injected failure", key)
	}
	return w.Store.Put(ctx, key, data, o)
}

func (w *watched) count(key string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes[key]
}

// watch puts a watched store under d's curator.
func (d *domain) watch() *watched {
	w := &watched{Store: d.s, writes: map[string]int{}}
	d.c.st = &project.Store{S: w}
	return w
}

// examples are n distinct examples of d's project, ids first..first+n-1, one frame each.
func examples(first, n int) []*edgeloopv1.Example {
	var out []*edgeloopv1.Example
	for i := first; i < first+n; i++ {
		out = append(out, frameExample(fmt.Sprintf("ex-%03d", i), i, fmt.Sprint(i%10), kindCTT))
	}
	return out
}

func (d *domain) ingestBatch(t *testing.T, exs []*edgeloopv1.Example) {
	t.Helper()
	for i, err := range d.c.IngestBatch(d.ctx, exs) {
		if err != nil {
			t.Fatalf("ingest %s: %v", exs[i].Id, err)
		}
	}
}

// queued is every example id in the open batch or a batch, with how often.
func (d *domain) queued(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for id := range d.pending(t) {
		out[id]++
	}
	for _, b := range d.batches(t) {
		for _, it := range b.Items {
			out[it.ExampleID]++
		}
	}
	return out
}

// TestDomainGroupCommitOneLedgerUpdatePerProject: a batch of examples of two projects
// changes each ledger once (plus once to forget the batches it formed), forms the same
// batches as one by one would, and gives every example its record.
func TestDomainGroupCommitOneLedgerUpdatePerProject(t *testing.T) {
	d := newDomain(t, func(p *project.Project) { p.Batch.Min, p.Batch.Max = 20, 50 })
	other := *d.p
	other.ID = "letters"
	if err := d.c.st.CreateProject(d.ctx, &other); err != nil {
		t.Fatal(err)
	}
	w := d.watch()
	exs := examples(0, 120)
	for _, ex := range exs[60:] {
		ex.Project = "letters"
	}
	d.ingestBatch(t, exs)
	for _, pid := range []string{"digits", "letters"} {
		// 60 examples: one batch of 50 formed, 10 waiting.
		if n := w.count(project.LedgerKey(pid)); n != 2 {
			t.Errorf("project %s: ledger written %d times, want 2 (queue, then forget the formed batch)", pid, n)
		}
		l, err := d.c.st.Ledger(d.ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		bs, err := d.c.st.Batches(d.ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) != 1 || len(bs[0].Items) != 50 || len(l.Pending) != 10 || len(l.Formed) != 0 {
			t.Errorf("project %s: %d batches, %d waiting, %d formed unwritten; want one of 50 and 10 waiting", pid, len(bs), len(l.Pending), len(l.Formed))
		}
	}
	for _, ex := range exs {
		if _, err := d.c.st.Example(d.ctx, ex.Project, ex.Id); err != nil {
			t.Fatalf("no record of %s: %v", ex.Id, err)
		}
	}
	if n := count(t, d.c.m.ingested.WithLabelValues("digits")); n != 60 {
		t.Fatalf("%v ingested counted, want 60", n)
	}
}

// TestDomainGroupCommitBadExamplesAlone: the examples that can never be accepted get
// their reasons, and the others of their batch are queued.
func TestDomainGroupCommitBadExamplesAlone(t *testing.T) {
	d := newDomain(t, func(p *project.Project) { p.Batch.Min, p.Batch.Max = 20, 50 })
	exs := examples(0, 8)
	exs[1].Image.Data = []byte("not an image")
	exs[3].Project = "nope"
	exs[5].Predictions[0].ClassName = "cat"
	exs[6].Id = "../escape"
	want := map[int]string{1: contract.ReasonBadImage, 3: contract.ReasonUnknownProject, 5: contract.ReasonUnknownClass, 6: contract.ReasonBadID}
	outs := d.c.IngestBatch(d.ctx, exs)
	for i, err := range outs {
		rej, ok := message.AsReject(err)
		switch {
		case want[i] == "" && err != nil:
			t.Errorf("example %d: %v; want it queued", i, err)
		case want[i] != "" && (!ok || rej.Reason != want[i]):
			t.Errorf("example %d: %v; want a reject with %s", i, err, want[i])
		}
	}
	if q := d.queued(t); len(q) != 4 || q["ex-000"] != 1 || q["ex-007"] != 1 {
		t.Fatalf("queued %v; want the 4 good ones", q)
	}
}

// TestDomainGroupCommitRedeliveredAfterACrash: the curator stops after the ledger took a
// batch and before the records were written (here: the record writes fail); the batch
// comes again — and again after the ledger forgot the ids — and nothing is queued twice,
// every record is written, and nothing counts as a near-duplicate.
func TestDomainGroupCommitRedeliveredAfterACrash(t *testing.T) {
	d := newDomain(t, func(p *project.Project) { p.Batch.Min, p.Batch.Max = 20, 50 })
	w := d.watch()
	w.fail = func(key string) bool { return strings.Contains(key, "/examples/") }
	exs := examples(0, 30)
	for i, err := range d.c.IngestBatch(d.ctx, exs) {
		if err == nil {
			t.Fatalf("example %d: no error although its record was not written", i)
		}
	}
	if q := d.queued(t); len(q) != 30 {
		t.Fatalf("setup: %d queued, want 30 (the ledger was written)", len(q))
	}
	w.fail = nil
	d.ingestBatch(t, exs) // redelivered: the ledger's recent ids know them
	if _, err := objstore.Update(d.ctx, d.s, project.LedgerKey(d.p.ID), func(l *project.Ledger, _ bool) error { l.Recent = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	d.ingestBatch(t, exs) // redelivered long after: the records know them
	q := d.queued(t)
	for _, ex := range exs {
		if q[ex.Id] != 1 {
			t.Fatalf("%s queued %d times, want once", ex.Id, q[ex.Id])
		}
		if _, err := d.c.st.Example(d.ctx, d.p.ID, ex.Id); err != nil {
			t.Fatalf("no record of %s after the redelivery: %v", ex.Id, err)
		}
	}
	if n := count(t, d.c.m.duplicates.WithLabelValues("digits")); n != 0 {
		t.Fatalf("%v near-duplicates, want 0: a redelivery is not a look-alike", n)
	}
	if n := count(t, d.c.m.redelivered.WithLabelValues("digits")); n != 30 {
		t.Fatalf("%v redeliveries counted, want 30 (the second time; the first met the ledger)", n)
	}
}

// TestDomainGroupCommitWithinOneBatch: one poll may hold an example twice, a correction
// of a frame with the example it corrects, and look-alikes: the batch does what one by
// one would.
func TestDomainGroupCommitWithinOneBatch(t *testing.T) {
	d := newDomain(t, func(p *project.Project) { p.Batch.Min, p.Batch.Max = 20, 50 })
	a := frameExample("a", 1, "1", kindCTT)
	b := frameExample("b", 2, "1", kindCTT)
	bc := corrected(b, "8")
	bc.Id = "b-flagged" // an older agent's correction under a new id
	look := frameExample("look", 3, "1", kindCTT)
	look.Image.Data = a.Image.Data
	c := frameExample("c", 4, "1", kindCTT)
	d.ingestBatch(t, []*edgeloopv1.Example{a, b, a, bc, look, corrected(c, "2"), c})
	p := d.pending(t)
	if len(p) != 3 || p["a"] == "" || p["b"] != "operator_flagged" || p["c"] != "operator_flagged" {
		t.Fatalf("waiting %v; want a, b (operator_flagged) and c (operator_flagged)", p)
	}
	if r := d.record(t, "look"); r.DuplicateOf != "a" {
		t.Fatalf("look-alike: duplicate of %q, want a", r.DuplicateOf)
	}
	if r := d.record(t, "b"); len(r.Correction) != 1 || r.Correction[0].Class != "8" {
		t.Fatalf("record b: %+v; want the correction joined", r)
	}
	if r := d.record(t, "c"); len(r.Correction) != 1 || r.Correction[0].Class != "2" {
		t.Fatalf("record c: %+v; want the correction kept", r)
	}
}

// TestDomainIntakeDeadLettersTheBadAndQueuesTheRest: the consumer's batch handler
// dead-letters an undecodable and an unknown-class example with their reasons and
// handles the batch; the rest are queued.
func TestDomainIntakeDeadLettersTheBadAndQueuesTheRest(t *testing.T) {
	d := newDomain(t, func(p *project.Project) { p.Batch.Min, p.Batch.Max = 20, 50 })
	var ms []*message.Message
	for i, ex := range examples(0, 6) {
		if i == 4 {
			ex.Predictions[0].ClassName = "cat"
		}
		v, _ := proto.Marshal(ex)
		ms = append(ms, &message.Message{Key: []byte(ex.Project), Value: v, Origin: fmt.Sprintf("kafka:t[0]@%d", i)})
	}
	ms[2].Value = []byte("\xff junk")
	h := message.Settle(d.c.ingestMessages, retry.Backoff{}, zap.NewNop(),
		message.DeadLetter(d.ev, contract.TopicDeadLetter, "curator", zap.NewNop(), nil))
	if err := h(d.ctx, ms); err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, m := range d.ev.msgs {
		dl := &edgeloopv1.DeadLetter{}
		if m.Topic != contract.TopicDeadLetter || proto.Unmarshal(m.Value, dl) != nil {
			t.Fatalf("unexpected message on %s", m.Topic)
		}
		reasons[dl.Source] = dl.Reason
	}
	if len(reasons) != 2 || reasons["kafka:t[0]@2"] != contract.ReasonBadProtobuf || reasons["kafka:t[0]@4"] != contract.ReasonUnknownClass {
		t.Fatalf("dead letters %v; want bad_protobuf for @2 and unknown_class for @4", reasons)
	}
	if q := d.queued(t); len(q) != 4 {
		t.Fatalf("queued %v; want the other 4", q)
	}
}

// TestDomainGroupCommitRounds: examples sharing an id or a frame go to later rounds, in
// order; the others share the first.
func TestDomainGroupCommitRounds(t *testing.T) {
	a, b, c := frameExample("a", 1, "1", kindCTT), frameExample("b", 2, "1", kindCTT), frameExample("c", 3, "1", kindCTT)
	bc := corrected(b, "8")
	bc.Id = "b2"
	a3 := frameExample("a", 9, "1", kindCTT) // a's id, another frame
	got := rounds([]*edgeloopv1.Example{a, b, a, bc, c, a3})
	want := [][]int{{0, 1, 4}, {2, 3}, {5}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rounds %v, want %v", got, want)
	}
}
