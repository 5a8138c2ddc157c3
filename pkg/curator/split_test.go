package curator

import (
	"context"
	"fmt"
	"testing"

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
