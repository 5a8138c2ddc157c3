package registry

import (
	"context"
	"errors"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// TestRequestTrainingModes: a training request names replay, full, scratch, adapt-bn or
// adapt-bn for one site (a valid device id); anything else is invalid before anything
// is sent.
func TestRequestTrainingModes(t *testing.T) {
	r := New(memstore.New(), nil, kafkabus.Config{}, "")
	for _, bad := range []string{"adapt-bn:Cam 1", "replay:cam-1", "adapt-bn:", "bn"} {
		if _, err := r.RequestTraining(context.Background(), "p", "ada", bad); !errors.Is(err, project.ErrInvalid) {
			t.Errorf("mode %q: %v, want invalid", bad, err)
		}
	}
	for _, good := range []string{"", "replay", "adapt-bn", "adapt-bn:cam-1"} {
		// Valid: it gets as far as the producer, which this test has none of.
		if _, err := r.RequestTraining(context.Background(), "p", "ada", good); err == nil || errors.Is(err, project.ErrInvalid) {
			t.Errorf("mode %q: %v, want it sent (no producer here)", good, err)
		}
	}
}
