package agent

import (
	"testing"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/nn"
)

// TestCompatibleClassChanges: a release may append classes or drop some (the project's
// explicit removal), but not reorder them or switch the task.
func TestCompatibleClassChanges(t *testing.T) {
	h := func(task nn.Task, cs ...string) artifact.Header {
		return artifact.Header{Arch: nn.Arch{Task: task}, Classes: cs}
	}
	cur := h(nn.Classify, "a", "b", "c")
	for _, c := range []struct {
		name string
		next artifact.Header
		ok   bool
	}{
		{"same", h(nn.Classify, "a", "b", "c"), true},
		{"appended", h(nn.Classify, "a", "b", "c", "d"), true},
		{"removed", h(nn.Classify, "a", "c"), true},
		{"removed and appended", h(nn.Classify, "a", "c", "d"), true},
		{"reordered", h(nn.Classify, "b", "a", "c"), false},
		{"other classes", h(nn.Classify, "x", "y"), false},
		{"other task", h(nn.Detect, "a", "b", "c"), false},
	} {
		if err := compatible(cur, c.next); (err == nil) != c.ok {
			t.Errorf("%s: compatible = %v, want ok %v", c.name, err, c.ok)
		}
	}
	if add, rm := classDiff([]string{"a", "b"}, []string{"a", "c"}); len(add) != 1 || add[0] != "c" || len(rm) != 1 || rm[0] != "b" {
		t.Fatalf("classDiff: added %v removed %v", add, rm)
	}
}
