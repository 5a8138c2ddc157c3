package curator

// Curator logic on the memory store, no server: splits pinned by imports, Tick across
// projects, exports after a class is removed.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// TestDomainPinnedSplitsSurviveAnyApprovalPath: an import's archive pins splits in its batch,
// so whichever path completes the approval — the import itself or resumeApprovals after
// a crash (or racing it) — the dataset gets the archive's splits, not the split rule's.
func TestDomainPinnedSplitsSurviveAnyApprovalPath(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	c := New(s, nil, kafkabus.Config{}, NewMetrics(opshttp.NewRegistry()), zap.NewNop())
	p := &project.Project{ID: "pin", Task: "classify", Classes: []string{"a", "b"}}
	p.Defaults()
	if err := c.st.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	b := &project.Batch{ID: "import-1", Project: p.ID, State: project.StateApproving}
	want := map[string]string{}
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("ex-%02d", i)
		split := []string{"train", "val", "test", ""}[i%4]
		if _, err := objstore.PutJSON(ctx, s, project.ExampleKey(p.ID, id), &project.ExampleRecord{ID: id, Project: p.ID, Image: "img-" + id}, objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		b.Items = append(b.Items, project.Item{ExampleID: id, Reason: "import", Status: "done", Labels: []project.Label{{Class: "a"}}, Split: split})
		want[id] = split
	}
	d, added, err := c.addToDataset(ctx, p, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 40 || len(d.Entries) != 40 {
		t.Fatalf("added %d, dataset %d: want 40", len(added), len(d.Entries))
	}
	for _, e := range d.Entries {
		if w := want[e.ID]; w != "" && e.Split != w {
			t.Errorf("%s: split %s, the archive pinned %s", e.ID, e.Split, w)
		}
	}
	// Completing it again (the other path) changes nothing, and returns the same entries.
	d2, added2, err := c.addToDataset(ctx, p, b)
	if err != nil || len(added2) != 40 || d2.Rev != d.Rev {
		t.Fatalf("second completion: %d entries (want the 40), rev %d→%d, err %v", len(added2), d.Rev, d2.Rev, err)
	}
}

// TestTickIsolatesProjects: a project whose ledger cannot be read does not keep Tick
// from closing the other projects' batches; the error names the failing project.
func TestTickIsolatesProjects(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	c := New(s, nil, kafkabus.Config{}, NewMetrics(opshttp.NewRegistry()), zap.NewNop())
	now := time.Now()
	for _, pid := range []string{"a-broken", "b-fine", "c-fine"} {
		p := &project.Project{ID: pid, Task: "classify", Classes: []string{"a", "b"}}
		p.Defaults()
		if err := c.st.CreateProject(ctx, p); err != nil {
			t.Fatal(err)
		}
		if pid == "a-broken" {
			if _, err := s.Put(ctx, project.LedgerKey(pid), []byte("{not json"), objstore.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		// At least Min examples, recorded and waiting longer than MaxWait: due for a batch.
		l := &project.Ledger{}
		for i := 0; i < p.Batch.Min; i++ {
			id := fmt.Sprintf("ex-%d", i)
			l.Pending = append(l.Pending, project.Pending{ID: id, Class: "a", At: now.Add(-2 * p.Batch.MaxWait.D())})
			if _, err := objstore.PutJSON(ctx, s, project.ExampleKey(pid, id), &project.ExampleRecord{ID: id, Project: pid}, objstore.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := objstore.PutJSON(ctx, s, project.LedgerKey(pid), l, objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	err := c.Tick(ctx)
	if err == nil || !strings.Contains(err.Error(), "a-broken") {
		t.Fatalf("Tick: %v, want an error naming project a-broken", err)
	}
	for _, pid := range []string{"b-fine", "c-fine"} {
		bs, err := c.st.Batches(ctx, pid)
		if err != nil || len(bs) != 1 || bs[0].State != project.StateReady {
			t.Errorf("project %s: batches %d (%v), want one ready batch despite a-broken", pid, len(bs), err)
		}
	}
}

// TestApproveRefusesSelfApprovalByDefault: the person who claimed, annotated or
// submitted a batch may not approve it too unless the project allows it.
func TestApproveRefusesSelfApprovalByDefault(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	c := New(s, nil, kafkabus.Config{}, NewMetrics(opshttp.NewRegistry()), zap.NewNop())
	p := &project.Project{ID: "solo", Task: "classify", Classes: []string{"a", "b"}}
	p.Defaults()
	if err := c.st.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	b := &project.Batch{ID: "b000001", Project: p.ID, State: project.StateSubmitted,
		Items: []project.Item{{ExampleID: "ex-1", Status: "done", AnnotatedBy: "ada", Labels: []project.Label{{Class: "a"}}}},
		Audit: []project.AuditEntry{{User: "ada", Action: "claim"}, {User: "ada", Action: "annotate"}, {User: "ada", Action: "submit"}}}
	if _, err := objstore.PutJSON(ctx, s, project.BatchKey(p.ID, b.ID), b, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Approve(ctx, p.ID, b.ID, "ada")
	if !errors.Is(err, project.ErrForbidden) || !strings.Contains(err.Error(), "self_approval") {
		t.Fatalf("ada approves the batch ada annotated: %v, want ErrForbidden naming review.self_approval", err)
	}
	if got, _ := c.st.Batch(ctx, p.ID, b.ID); got.State != project.StateSubmitted {
		t.Fatalf("batch is %s after a refused approval, want submitted", got.State)
	}
}

// TestExportLeavesOutRemovedClasses: once a class is removed, an export no longer holds
// its labels (they would map to another class's index) nor the examples left without a
// label; the other examples keep theirs.
func TestExportLeavesOutRemovedClasses(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	c := New(s, nil, kafkabus.Config{}, NewMetrics(opshttp.NewRegistry()), zap.NewNop())
	p := &project.Project{ID: "rm", Task: "detect", Classes: []string{"a", "b", "c"}}
	p.Defaults()
	if err := c.st.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	box := &project.Box{X0: .1, Y0: .1, X1: .5, Y1: .5}
	b := &project.Batch{ID: "import-1", Project: p.ID, State: project.StateApproving}
	for i, labels := range [][]string{{"a"}, {"b"}, {"b", "c"}, {"c"}} {
		id := fmt.Sprintf("ex-%d", i)
		if _, err := objstore.PutJSON(ctx, s, project.ExampleKey(p.ID, id), &project.ExampleRecord{ID: id, Project: p.ID, Image: "img-" + id}, objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		it := project.Item{ExampleID: id, Reason: "import", Status: "done", Split: "train"}
		for _, l := range labels {
			it.Labels = append(it.Labels, project.Label{Class: l, Box: box})
		}
		b.Items = append(b.Items, it)
	}
	if _, _, err := c.addToDataset(ctx, p, b); err != nil {
		t.Fatal(err)
	}
	if _, err := c.st.RemoveClass(ctx, p.ID, "b", "ada", "never seen in production"); err != nil {
		t.Fatal(err)
	}
	set, err := c.prepareExport(ctx, p.ID, "coco", "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, it := range set.items {
		got[it.ID] = fmt.Sprint(len(it.Labels))
		for _, l := range it.Labels {
			got[it.ID] += l.Class
		}
	}
	want := map[string]string{"ex-0": "1a", "ex-2": "1c", "ex-3": "1c"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("exported %v, want %v", got, want)
	}
}
