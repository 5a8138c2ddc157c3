package message

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/retry"
)

// Retry retries transient handler errors with backoff until the handler succeeds or ctx
// ends; a *Reject passes through at once. It logs the first failure and every 20th
// after it, so that a long outage does not flood the log.
func Retry(b retry.Backoff, log *zap.Logger) Middleware {
	return func(h Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			return retry.Do(ctx, b, func(ctx context.Context) error {
				err := h(ctx, m)
				if _, ok := AsReject(err); ok {
					return retry.Permanent(err)
				}
				return err
			}, func(err error, attempt int, d time.Duration) {
				if attempt%20 == 0 {
					log.Warn("handler failed; the message stays unacknowledged and is retried", zap.Error(err),
						zap.String("origin", m.Origin), zap.Int("attempt", attempt+1), zap.Duration("backoff", d))
				}
			})
		}
	}
}
