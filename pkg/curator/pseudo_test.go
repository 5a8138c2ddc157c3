package curator

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

const kindConfident = edgeloopv1.SamplingKind_SAMPLING_KIND_CONFIDENT

// confident is a pseudo-label: frame's example taken by the confident strategy, class
// predicted at 0.97.
func confident(id string, frame int, class string) *edgeloopv1.Example {
	ex := frameExample(id, frame, class, kindConfident)
	ex.Reasons = []*edgeloopv1.SamplingReason{{Kind: kindConfident, Strategy: "confident"}}
	ex.Predictions = []*edgeloopv1.Prediction{{ClassName: class, Confidence: 0.97}, {ClassName: "8", Confidence: 0.02}}
	return ex
}

// TestDomainPseudoLabelsStayOutOfBatchesAndSplits: confident frames go to the
// project's pseudo-labels (class and confidence of the prediction), never to the open
// batch, so never to a batch, val or test; a redelivery adds nothing; an operator's
// correction of a pseudo-labelled frame is an example of its own, queued for
// annotation; a pseudo-label that is a detection, has no prediction or carries a
// correction is refused.
func TestDomainPseudoLabelsStayOutOfBatchesAndSplits(t *testing.T) {
	d := newDomain(t, nil)
	for i := 0; i < 10; i++ {
		d.ingest(t, confident(fmt.Sprintf("ps-%d", i), 100+i, "3"))
	}
	d.ingest(t, confident("ps-3", 103, "3")) // redelivery
	if n := len(d.pending(t)); n != 0 {
		t.Fatalf("%d pseudo-labels in the open batch", n)
	}
	ps, err := d.c.st.Pseudo(d.ctx, d.p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Entries) != 10 || ps.Received != 10 {
		t.Fatalf("pseudo-labels: %d entries, %d received; want 10 and 10", len(ps.Entries), ps.Received)
	}
	if e := ps.Entries[0]; e.Class != "3" || e.Confidence != 0.97 || e.Image == "" || e.Device != "cam-1" || e.Model != 1 {
		t.Fatalf("pseudo-label %+v", e)
	}
	if got := count(t, d.c.m.pseudo.WithLabelValues(d.p.ID)); got != 10 {
		t.Fatalf("pseudo metric %v, want 10", got)
	}

	// The operator corrects frame 104 (a pseudo-label): an example of its own, queued.
	fix := corrected(frameExample("fix-104", 104, "3", kindOperator), "5")
	d.ingest(t, fix)
	if _, ok := d.pending(t)["fix-104"]; !ok {
		t.Fatalf("the correction of a pseudo-labelled frame is not queued: %v", d.pending(t))
	}
	for i := 0; i < 5; i++ {
		d.ingest(t, frameExample(fmt.Sprintf("ex-%d", i), i, "3", kindRandom))
	}
	bs := d.batches(t)
	if len(bs) != 1 {
		t.Fatalf("%d batches, want 1", len(bs))
	}
	for _, it := range bs[0].Items {
		if it.ExampleID[:3] == "ps-" {
			t.Fatalf("pseudo-label %s in batch %s", it.ExampleID, bs[0].ID)
		}
	}
	if _, err := d.approve(t, bs[0].ID); err != nil {
		t.Fatal(err)
	}
	ds, err := d.c.st.Dataset(d.ctx, d.p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Entries) != 6 {
		t.Fatalf("dataset of %d, want the batch's 6", len(ds.Entries))
	}
	for _, e := range ds.Entries {
		if e.ID[:3] == "ps-" {
			t.Fatalf("pseudo-label %s in the dataset (%s)", e.ID, e.Split)
		}
	}

	for name, ex := range map[string]*edgeloopv1.Example{
		"no prediction": func() *edgeloopv1.Example { e := confident("bad-1", 200, "3"); e.Predictions = nil; return e }(),
		"a correction": func() *edgeloopv1.Example {
			e := confident("bad-2", 201, "3")
			e.Correction = proto.Clone(fix.Correction).(*edgeloopv1.Annotation)
			return e
		}(),
	} {
		var rej *message.Reject
		if err := d.c.Ingest(d.ctx, ex); !errors.As(err, &rej) {
			t.Errorf("a pseudo-label with %s: %v, want a rejection", name, err)
		}
	}
	det := newDomain(t, func(p *project.Project) { p.ID, p.Task = "shelf", "detect" })
	ex := confident("det-1", 300, "3")
	ex.Project, ex.Task = "shelf", edgeloopv1.Task_TASK_DETECT
	var rej *message.Reject
	if err := det.c.Ingest(det.ctx, ex); !errors.As(err, &rej) {
		t.Errorf("a detection pseudo-label: %v, want a rejection", err)
	}
}

// TestDomainCorruptPseudoSet: with the project's pseudo.json corrupt, the pseudo-labels
// of a round are refused as corrupt_state, and the round's other examples are queued
// with their records as ever; once it is repaired, a redelivered pseudo-label is added.
func TestDomainCorruptPseudoSet(t *testing.T) {
	d := newDomain(t, nil)
	if _, err := d.s.Put(d.ctx, project.PseudoKey(d.p.ID), []byte("{"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	outs := d.c.IngestBatch(d.ctx, []*edgeloopv1.Example{
		frameExample("ex-1", 1, "3", kindRandom), confident("ps-1", 101, "3"), frameExample("ex-2", 2, "3", kindRandom),
	})
	var rej *message.Reject
	if outs[0] != nil || outs[2] != nil || !errors.As(outs[1], &rej) || rej.Reason != contract.ReasonCorruptState {
		t.Fatalf("outcomes %v; want the pseudo-label alone refused as %s", outs, contract.ReasonCorruptState)
	}
	pending := d.pending(t)
	if _, ok := pending["ex-1"]; !ok || len(pending) != 2 || d.record(t, "ex-2").ID != "ex-2" {
		t.Fatalf("pending %v; want ex-1 and ex-2 queued with their records", pending)
	}
	// Repaired, the pseudo-label's redelivery is added: its failed round left no record
	// that would make it look known.
	if err := d.s.Delete(d.ctx, project.PseudoKey(d.p.ID)); err != nil {
		t.Fatal(err)
	}
	d.ingest(t, confident("ps-1", 101, "3"))
	if ps, err := d.c.st.Pseudo(d.ctx, d.p.ID); err != nil || len(ps.Entries) != 1 || ps.Entries[0].ID != "ps-1" {
		t.Fatalf("pseudo-labels after the repair and a redelivery: %+v, %v", ps, err)
	}
}
