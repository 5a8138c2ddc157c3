package project_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// TestClassesOnlyGrowByAppending: an update may append classes (logged in the audit with
// who did it) but never reorder, rename or drop one; removal is its own logged
// operation that needs a reason.
func TestClassesOnlyGrowByAppending(t *testing.T) {
	ctx := context.Background()
	s := &project.Store{S: memstore.New()}
	if err := s.CreateProject(ctx, &project.Project{ID: "p", Task: "classify", Classes: []string{"a", "b", "c"}}); err != nil {
		t.Fatal(err)
	}
	set := func(cs ...string) func(*project.Project) error {
		return func(p *project.Project) error { p.Classes = cs; p.Audit = nil; return nil }
	}
	for name, cs := range map[string][]string{
		"reorder": {"b", "a", "c"}, "rename": {"a", "b", "z"}, "drop": {"a", "b"}, "drop and add": {"a", "b", "d"}, "duplicate": {"a", "b", "c", "a"},
	} {
		if _, err := s.UpdateProjectBy(ctx, "p", "ada", set(cs...)); err == nil {
			t.Fatalf("%s: classes %v were accepted", name, cs)
		}
	}
	p, err := s.UpdateProjectBy(ctx, "p", "ada", set("a", "b", "c", "d", "e"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Classes, ",") != "a,b,c,d,e" || len(p.Audit) != 1 || p.Audit[0].User != "ada" || p.Audit[0].Action != "add classes" ||
		!strings.Contains(p.Audit[0].Detail, "d, e") {
		t.Fatalf("after appending: classes %v, audit %+v", p.Classes, p.Audit)
	}
	// An update that keeps the classes adds no audit entry and cannot erase the log.
	if p, err = s.UpdateProjectBy(ctx, "p", "ada", func(p *project.Project) error { p.Retrain.Epochs = 3; p.Audit = nil; return nil }); err != nil || len(p.Audit) != 1 {
		t.Fatalf("plain update: %v, audit %+v", err, p.Audit)
	}
	if _, err := s.RemoveClass(ctx, "p", "b", "ada", ""); !errors.Is(err, project.ErrInvalid) {
		t.Fatalf("removal without a reason: %v", err)
	}
	if _, err := s.RemoveClass(ctx, "p", "nope", "ada", "typo"); !errors.Is(err, project.ErrNotFound) {
		t.Fatalf("removal of an unknown class: %v", err)
	}
	if p, err = s.RemoveClass(ctx, "p", "b", "bob", "never seen in production"); err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Classes, ",") != "a,c,d,e" || len(p.Audit) != 2 || p.Audit[1].User != "bob" || p.Audit[1].Action != "remove class" {
		t.Fatalf("after removing b: classes %v, audit %+v", p.Classes, p.Audit)
	}
}

// TestModelFixedAtCreation: an update that leaves the model out keeps it; one that
// changes it, or gives a model to a project created without one, is refused.
func TestModelFixedAtCreation(t *testing.T) {
	ctx := context.Background()
	s := &project.Store{S: memstore.New()}
	spec := nn.Spec{Family: nn.MobileNetV2, Input: [2]int{128, 96}}
	if err := s.CreateProject(ctx, &project.Project{ID: "colour", Task: "classify", Classes: []string{"a", "b"}, Model: &spec}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateProject(ctx, &project.Project{ID: "grey", Task: "classify", Classes: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	p, err := s.UpdateProjectBy(ctx, "colour", "ada", func(p *project.Project) error { p.Model, p.Retrain.Epochs = nil, 3; return nil })
	if err != nil || p.Model == nil || p.Model.Input != [2]int{128, 96} || p.Model.Channels != 3 {
		t.Fatalf("update without the model: %v, model %+v", err, p.Model)
	}
	if _, err := s.UpdateProjectBy(ctx, "colour", "ada", func(p *project.Project) error { p.Model.Input = [2]int{160, 160}; return nil }); err == nil ||
		!strings.Contains(err.Error(), "chosen at creation") {
		t.Fatalf("a changed input: %v, want refused", err)
	}
	if _, err := s.UpdateProjectBy(ctx, "grey", "ada", func(p *project.Project) error { p.Model = &nn.Spec{}; return nil }); err == nil {
		t.Fatal("a model given to a project created without one was accepted")
	}
}

// TestStoreBackbonePinned: a project naming a store backbone gets its sha256 pinned at
// creation; an update resending the model without the pin (the creation request's body)
// keeps it, one with another sum is refused, and Backbone refuses bytes that changed.
func TestStoreBackbonePinned(t *testing.T) {
	ctx := context.Background()
	s := &project.Store{S: memstore.New()}
	ref, sum, err := s.PutBackbone(ctx, "w.safetensors", []byte("weights"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutBackbone(ctx, "../w.safetensors", []byte("weights")); err == nil {
		t.Fatal("a backbone name with a path was accepted")
	}
	spec := nn.Spec{Input: [2]int{96, 96}, Backbone: ref}
	if err := s.CreateProject(ctx, &project.Project{ID: "shelf", Task: "classify", Classes: []string{"a", "b"}, Model: &spec}); err != nil {
		t.Fatal(err)
	}
	p, err := s.UpdateProjectBy(ctx, "shelf", "ada", func(p *project.Project) error {
		p.Model = &nn.Spec{Input: [2]int{96, 96}, Backbone: ref}
		return nil
	})
	if err != nil {
		t.Fatalf("an update resending the model without its pin: %v", err)
	}
	if p.Model.BackboneSHA256 != sum {
		t.Fatalf("after an update without the pin: sha256 %q, want %s", p.Model.BackboneSHA256, sum)
	}
	if _, err := s.UpdateProjectBy(ctx, "shelf", "ada", func(p *project.Project) error {
		p.Model.BackboneSHA256 = strings.Repeat("1", 64)
		return nil
	}); err == nil || !strings.Contains(err.Error(), "chosen at creation") {
		t.Fatalf("another sha256: %v, want refused", err)
	}
	key, _ := p.Model.BackboneKey()
	if _, err := s.S.Put(ctx, key, []byte("other"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backbone(ctx, *p.Model); err == nil || !strings.Contains(err.Error(), "wants "+sum) {
		t.Fatalf("changed bytes: %v, want the mismatch named", err)
	}
}

// TestListingsPassOverCorruptDocuments: a project or batch document that does not decode
// hides only itself from Projects and Batches, and is reported to Corrupt; reading it
// by its key is an error wrapping objstore.ErrCorrupt.
func TestListingsPassOverCorruptDocuments(t *testing.T) {
	ctx := context.Background()
	var corrupt []string
	s := &project.Store{S: memstore.New(), Listed: &objstore.ListCache{}, Corrupt: func(key string, err error) {
		if !errors.Is(err, objstore.ErrCorrupt) || !strings.Contains(err.Error(), key) {
			t.Errorf("%s reported with %v, want an ErrCorrupt naming it", key, err)
		}
		corrupt = append(corrupt, key)
	}}
	for _, id := range []string{"a", "b", "c"} {
		if err := s.CreateProject(ctx, &project.Project{ID: id, Task: "classify", Classes: []string{"x", "y"}}); err != nil {
			t.Fatal(err)
		}
	}
	put := func(key, doc string) {
		if _, err := s.S.Put(ctx, key, []byte(doc), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put(project.ProjectKey("b"), `{"id": "b", "classes": [`)
	for _, id := range []string{"b1", "b2", "b3"} {
		if _, err := objstore.PutJSON(ctx, s.S, project.BatchKey("a", id), &project.Batch{ID: id, Project: "a"}, objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put(project.BatchKey("a", "b2"), "not json")

	ps, err := s.Projects(ctx)
	if err != nil || len(ps) != 2 || ps[0].ID != "a" || ps[1].ID != "c" {
		t.Fatalf("projects with b corrupt: %v, %v", ps, err)
	}
	bs, err := s.Batches(ctx, "a")
	if err != nil || len(bs) != 2 || bs[0].ID != "b1" || bs[1].ID != "b3" {
		t.Fatalf("batches with b2 corrupt: %v, %v", bs, err)
	}
	if want := []string{project.ProjectKey("b"), project.BatchKey("a", "b2")}; !slices.Equal(corrupt, want) {
		t.Fatalf("reported %v, want %v", corrupt, want)
	}
	if _, err := s.Batch(ctx, "a", "b2"); !errors.Is(err, objstore.ErrCorrupt) {
		t.Fatalf("reading the corrupt batch: %v", err)
	}
	// Repaired, it is listed again.
	if _, err := objstore.PutJSON(ctx, s.S, project.BatchKey("a", "b2"), &project.Batch{ID: "b2", Project: "a"}, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if bs, err := s.Batches(ctx, "a"); err != nil || len(bs) != 3 {
		t.Fatalf("batches after the repair: %d, %v", len(bs), err)
	}
}
