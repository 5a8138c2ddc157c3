package retry

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// Wait calls op until it succeeds, says it is permanent, or ctx ends, logging each
// failure as a wait for what (the first at once, then every tenth). Services wrap their
// start-up dependencies in it (creating Kafka topics, opening the bucket), so that a
// replica started while Kafka or the object store is down waits for it instead of
// exiting.
func Wait(ctx context.Context, log *zap.Logger, what string, op func(ctx context.Context) error) error {
	return Do(ctx, Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second}, op, func(err error, attempt int, d time.Duration) {
		if attempt%10 == 0 {
			log.Warn("waiting for "+what, zap.Error(err), zap.Int("attempt", attempt+1), zap.Duration("backoff", d))
		}
	})
}
