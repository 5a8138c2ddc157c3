package project

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/edgeloop/edgeloop/pkg/objstore"
)

// Store reads and writes a project's objects.
type Store struct {
	S objstore.Store
	// Listed, when set, keeps the batch documents Batches read, so that a service listing
	// them on every tick reads only those that changed (nil: read them all each time).
	Listed *objstore.ListCache
	// Corrupt hears of the documents Projects and Batches pass over because they do not
	// decode: one corrupt document hides only itself.
	Corrupt objstore.OnCorrupt
}

// ProjectPrefix is the prefix of every object of project p.
func ProjectPrefix(p string) string { return "projects/" + p + "/" }

// RetrainKey is the key of project p's retraining state (the retrain service's trigger
// state and training lease; the dashboard reads it).
func RetrainKey(p string) string { return ProjectPrefix(p) + "retrain.json" }

// ProjectKey is the key of project p's settings.
func ProjectKey(p string) string { return ProjectPrefix(p) + "project.json" }

// LedgerKey is the key of project p's open-batch ledger.
func LedgerKey(p string) string { return ProjectPrefix(p) + "ledger.json" }

// BatchKey is the key of batch id of project p.
func BatchKey(p, id string) string { return ProjectPrefix(p) + "batches/" + id + ".json" }

// ExampleKey is the key of example record id of project p.
func ExampleKey(p, id string) string { return ProjectPrefix(p) + "examples/" + id + ".json" }

// ImagePrefix is the prefix of project p's content-addressed images.
func ImagePrefix(p string) string { return ProjectPrefix(p) + "images/" }

// DatasetKey is the key of project p's dataset manifest.
func DatasetKey(p string) string { return ProjectPrefix(p) + "dataset.json" }

// FrameKey is the key of the FrameRecord of the frame that device names frameID and
// captured at capturedAt. Frame ids are the device's own (file names, a line's
// counters) and come back over time; with the capture time they name one frame.
func FrameKey(p, device, frameID string, capturedAt time.Time) string {
	h := sha256.Sum256([]byte(device + "\x00" + frameID + "\x00" + capturedAt.UTC().Format(time.RFC3339Nano)))
	return ProjectPrefix(p) + "frames/" + hex.EncodeToString(h[:16]) + ".json"
}

// PseudoKey is the key of project p's pseudo-labels (PseudoSet).
func PseudoKey(p string) string { return ProjectPrefix(p) + "pseudo.json" }

// BatchesPrefix is the prefix of project p's batches.
func BatchesPrefix(p string) string { return ProjectPrefix(p) + "batches/" }

// ErrNotFound wraps objstore.ErrNotFound for the API.
var ErrNotFound = objstore.ErrNotFound

// Project reads a project.
func (s *Store) Project(ctx context.Context, id string) (*Project, error) {
	var p Project
	if _, err := objstore.GetJSON(ctx, s.S, ProjectKey(id), &p); err != nil {
		return nil, fmt.Errorf("project %s: %w", id, err)
	}
	p.Defaults()
	return &p, nil
}

// Projects lists every project. It lists the folders under projects/, not their
// objects, so a tick costs one request per project however many examples they hold. A
// project whose document does not decode is passed over (and reported to s.Corrupt).
func (s *Store) Projects(ctx context.Context) ([]*Project, error) {
	var out []*Project
	err := s.S.Dirs(ctx, "projects/", func(dir string) error {
		var p Project
		_, err := objstore.GetJSON(ctx, s.S, dir+"project.json", &p)
		if errors.Is(err, objstore.ErrNotFound) {
			return nil // a folder without a project document (a deleted project's leftovers)
		}
		if errors.Is(err, objstore.ErrCorrupt) {
			s.Corrupt.Report(dir+"project.json", err)
			return nil
		}
		if err != nil {
			return err
		}
		p.Defaults()
		out = append(out, &p)
		return nil
	})
	return out, err
}

// ErrExists says an object to create exists already.
var ErrExists = errors.New("already exists")

// CreateProject stores a new project.
func (s *Store) CreateProject(ctx context.Context, p *Project) error {
	p.Defaults()
	if err := p.Validate(); err != nil {
		return err
	}
	if err := s.pinBackbone(ctx, p.Model); err != nil {
		return err
	}
	_, err := objstore.PutJSON(ctx, s.S, ProjectKey(p.ID), p, objstore.PutOptions{IfNoneMatch: true})
	if errors.Is(err, objstore.ErrPrecondition) {
		return fmt.Errorf("project %s: %w", p.ID, ErrExists)
	}
	return err
}

// UpdateProject changes a project by compare-and-swap (see UpdateProjectBy), for no
// one in particular.
func (s *Store) UpdateProject(ctx context.Context, id string, fn func(p *Project) error) (*Project, error) {
	return s.UpdateProjectBy(ctx, id, "", fn)
}

// UpdateProjectBy changes a project by compare-and-swap on behalf of user by. Id and task
// are fixed; classes may only be appended (the model grows its head and keeps its old
// classes), never reordered, renamed or removed — removal is RemoveClass. An append is
// recorded in the project's audit. fn cannot rewrite the audit.
func (s *Store) UpdateProjectBy(ctx context.Context, id, by string, fn func(p *Project) error) (*Project, error) {
	var out Project
	_, err := objstore.Update(ctx, s.S, ProjectKey(id), func(p *Project, exists bool) error {
		if !exists {
			return fmt.Errorf("project %s: %w", id, ErrNotFound)
		}
		p.Defaults()
		before := *p
		before.Classes = slices.Clone(p.Classes)
		before.Audit = slices.Clone(p.Audit)
		if p.Model != nil {
			m := *p.Model
			before.Model = &m
		}
		if err := fn(p); err != nil {
			return err
		}
		p.Audit = before.Audit
		if p.ID != before.ID || p.Task != before.Task {
			return fmt.Errorf("project %s: id and task cannot change", id)
		}
		p.Defaults()
		if m, b := p.Model, before.Model; m != nil && b != nil && m.BackboneSHA256 == "" && m.Backbone == b.Backbone {
			m.BackboneSHA256 = b.BackboneSHA256 // the pin the curator added at creation
		}
		switch {
		case p.Model == nil:
			p.Model = before.Model // an update that does not name the model keeps it
		case !p.Model.Equal(before.Model):
			return fmt.Errorf("project %s: model %+v cannot change: it is chosen at creation (make a new project for another network)", id, *p.Model)
		}
		added, err := appended(before.Classes, p.Classes)
		if err != nil {
			return fmt.Errorf("project %s: %w", id, err)
		}
		if err := p.Validate(); err != nil {
			return err
		}
		if len(added) > 0 {
			p.Audit = append(p.Audit, AuditEntry{At: time.Now().UTC(), User: by, Action: "add classes",
				Detail: fmt.Sprintf("%s appended after %d classes", strings.Join(added, ", "), len(before.Classes))})
		}
		p.Rev++
		out = *p
		return nil
	})
	return &out, err
}

// appended returns the classes next adds at the end of prev, or an error when next does
// not keep every class of prev in its place.
func appended(prev, next []string) ([]string, error) {
	if len(next) < len(prev) {
		return nil, fmt.Errorf("classes %v would drop %d of %v: remove a class with the explicit remove operation", next, len(prev)-len(next), prev)
	}
	for i, c := range prev {
		if next[i] != c {
			return nil, fmt.Errorf("class %d is %q, the update makes it %q: classes can only be appended, never reordered or renamed", i, c, next[i])
		}
	}
	return next[len(prev):], nil
}

// RemoveClass removes a class from a project on behalf of user by, with a reason, and
// records it in the project's audit. Its examples stay in the dataset but no training
// uses them any more; the next training drops the class from the model's head.
func (s *Store) RemoveClass(ctx context.Context, id, class, by, reason string) (*Project, error) {
	var out Project
	_, err := objstore.Update(ctx, s.S, ProjectKey(id), func(p *Project, exists bool) error {
		if !exists {
			return fmt.Errorf("project %s: %w", id, ErrNotFound)
		}
		p.Defaults()
		i := slices.Index(p.Classes, class)
		if i < 0 {
			return fmt.Errorf("project %s: class %q: %w", id, class, ErrNotFound)
		}
		if len(p.Classes) == 1 {
			return fmt.Errorf("project %s: %w: %q is its only class", id, ErrInvalid, class)
		}
		if strings.TrimSpace(reason) == "" {
			return fmt.Errorf("project %s: %w: removing class %q needs a reason", id, ErrInvalid, class)
		}
		p.Classes = slices.Delete(slices.Clone(p.Classes), i, i+1)
		p.Mirror = p.Mirror.Without(class)
		p.Audit = append(p.Audit, AuditEntry{At: time.Now().UTC(), User: by, Action: "remove class",
			Detail: fmt.Sprintf("%s (was class %d): %s", class, i, reason)})
		p.Rev++
		out = *p
		return nil
	})
	return &out, err
}

// Example reads an example record.
func (s *Store) Example(ctx context.Context, project, id string) (*ExampleRecord, error) {
	var e ExampleRecord
	if _, err := objstore.GetJSON(ctx, s.S, ExampleKey(project, id), &e); err != nil {
		return nil, fmt.Errorf("example %s: %w", id, err)
	}
	return &e, nil
}

// Batch reads a batch and its ETag.
func (s *Store) Batch(ctx context.Context, project, id string) (*Batch, error) {
	var b Batch
	if _, err := objstore.GetJSON(ctx, s.S, BatchKey(project, id), &b); err != nil {
		return nil, fmt.Errorf("batch %s: %w", id, err)
	}
	return &b, nil
}

// Batches lists a project's batches; one whose document does not decode is passed over
// (and reported to s.Corrupt).
func (s *Store) Batches(ctx context.Context, project string) ([]*Batch, error) {
	var out []*Batch
	err := s.Listed.ReadAll(ctx, s.S, BatchesPrefix(project), func(key string, data []byte) error {
		var b Batch
		if err := objstore.DecodeJSON(key, data, &b); err != nil {
			s.Corrupt.Report(key, err)
			return nil
		}
		out = append(out, &b)
		return nil
	})
	return out, err
}

// Ledger reads the open batch.
func (s *Store) Ledger(ctx context.Context, project string) (*Ledger, error) {
	return readOrEmpty[Ledger](ctx, s, LedgerKey(project))
}

// Dataset reads the dataset manifest.
func (s *Store) Dataset(ctx context.Context, project string) (*Dataset, error) {
	return readOrEmpty[Dataset](ctx, s, DatasetKey(project))
}

// Pseudo reads the pseudo-labels (empty when there are none).
func (s *Store) Pseudo(ctx context.Context, project string) (*PseudoSet, error) {
	return readOrEmpty[PseudoSet](ctx, s, PseudoKey(project))
}

// readOrEmpty reads the JSON document at key, or returns T's zero value when there is
// none yet.
func readOrEmpty[T any](ctx context.Context, s *Store, key string) (*T, error) {
	var v T
	_, err := objstore.GetJSON(ctx, s.S, key, &v)
	if errors.Is(err, objstore.ErrNotFound) {
		return &v, nil
	}
	return &v, err
}
