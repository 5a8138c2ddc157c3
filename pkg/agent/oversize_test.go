package agent

import (
	"context"
	"errors"
	"strings"
	"testing"

	msgs "github.com/edgeloop/edgeloop/internal/fixture"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/sampling"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// TestOversizeExampleNotQueued: an example over the broker's message limit would be
// closed by the broker without a dead letter and retried for ever: the agent refuses to
// queue it, with an error that says so.
func TestOversizeExampleNotQueued(t *testing.T) {
	f := newFixture(t)
	a := newAgent(t, f, func(c *Config) {
		c.MaxImageSide = 2048 // noisy frames this large encode to well over 1 MB
		c.Sampling = sampling.Config{DedupDistance: -1, Strategies: []sampling.StrategyConfig{{Kind: sampling.OperatorFlagged}}}
	})
	ctx := context.Background()
	if err := a.Apply(ctx, f.release(1, modelFile(t, 1, 1))); err != nil {
		t.Fatal(err)
	}
	im, err := raster.Decode(msgs.JPEG(1600, 1600, 7))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Infer(ctx, "big", im, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Feedback(res.FrameID, &edgeloopv1.Annotation{Labels: []*edgeloopv1.Label{{ClassName: "1"}}})
	if !errors.Is(err, ErrMessageTooLarge) || !strings.Contains(err.Error(), "max-message-bytes") {
		t.Fatalf("feedback on a frame too large to send: %v", err)
	}
	if d := a.ob.Stats().Depth; d != 0 {
		t.Fatalf("outbox holds %d examples over the broker's limit", d)
	}
}
