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
