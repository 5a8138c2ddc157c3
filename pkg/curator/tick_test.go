package curator

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
		// At least Min examples, waiting longer than MaxWait: due for a batch.
		l := &project.Ledger{}
		for i := 0; i < p.Batch.Min; i++ {
			l.Pending = append(l.Pending, project.Pending{ID: fmt.Sprintf("ex-%d", i), Class: "a", At: now.Add(-2 * p.Batch.MaxWait.D())})
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
