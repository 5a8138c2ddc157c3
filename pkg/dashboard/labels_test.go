package dashboard

import (
	"testing"

	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
)

// Each served version sits at the labels approved since the first model's dataset when
// it was trained; versions without an edge figure are left out.
func TestLabelCurve(t *testing.T) {
	ds := &project.Dataset{}
	for seq, n := range map[int]int{1: 2000, 2: 50, 3: 40, 4: 50} {
		for range n {
			ds.Entries = append(ds.Entries, project.DatasetEntry{Seq: seq})
		}
	}
	vs := []*registry.Version{{Version: 1, Snapshot: "ds-1"}, {Version: 2, Snapshot: "ds-2"}, {Version: 3, Snapshot: "ds-3"}, {Version: 4, Snapshot: "ds-4"}}
	acc := []Accuracy{{Version: 1, Accuracy: 0.55, Frames: 100}, {Version: 2, Accuracy: 0.7, Frames: 90}, {Version: 4, Accuracy: 0.9, Frames: 80}}
	got := labelCurve(vs, ds, acc)
	want := []LabelPoint{{Version: 1, Labels: 0, Accuracy: 0.55, Frames: 100}, {Version: 2, Labels: 50, Accuracy: 0.7, Frames: 90}, {Version: 4, Labels: 140, Accuracy: 0.9, Frames: 80}}
	if len(got) != len(want) {
		t.Fatalf("curve %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("point %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if labelCurve(vs, nil, acc) != nil {
		t.Fatal("a curve without a dataset")
	}
}
