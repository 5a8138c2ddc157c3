package message

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/retry"
)

// BatchHandler processes messages together (a group commit). It returns nil only once
// every message's effect is durable, or the message was set aside (dead-lettered); the
// transport then acknowledges them all. An error leaves them all unacknowledged, to be
// redelivered, so every message's handling must be idempotent.
type BatchHandler func(ctx context.Context, ms []*Message) error

// BatchFunc handles messages together and says how each went: outcomes[i] is nil when
// ms[i]'s effect is durable, a *Reject when it can never succeed, another error when it
// is to be tried again. It must return exactly one outcome per message.
type BatchFunc func(ctx context.Context, ms []*Message) (outcomes []error)

// Settle makes a BatchHandler of fn. Each message's outcome goes through mw, the
// per-message middleware (DeadLetter, GiveUp), as though the message had had a handler
// of its own: a message is settled when its outcome comes out of mw nil — durable, or
// dead-lettered with its reason. The messages left are given to fn again, together,
// with backoff b, until every one is settled or ctx ends, so one bad message never
// blocks the others' effects and never stops the batch: it is dead-lettered, or
// retried alone. Settle takes Retry's place in a per-message chain.
//
//	Settle(fn, b, log, DeadLetter(pub, topic, service, log, onReject), GiveUp(max, healthy, reason, log))
func Settle(fn BatchFunc, b retry.Backoff, log *zap.Logger, mw ...Middleware) BatchHandler {
	// One chain for every call: GiveUp counts a message's attempts across them.
	settle := Chain(func(ctx context.Context, _ *Message) error {
		return ctx.Value(outcomeKey{}).(outcome).err
	}, mw...)
	return func(ctx context.Context, ms []*Message) error {
		left := ms
		return retry.Do(ctx, b, func(ctx context.Context) error {
			outs := fn(ctx, left)
			if len(outs) != len(left) {
				return retry.Permanent(fmt.Errorf("batch handler: %d outcomes for %d messages", len(outs), len(left)))
			}
			var still []*Message
			var last error
			for i, m := range left {
				if err := settle(context.WithValue(ctx, outcomeKey{}, outcome{outs[i]}), m); err != nil {
					still, last = append(still, m), err
				}
			}
			left = still
			if len(left) > 0 {
				return fmt.Errorf("%d of the batch's messages not yet handled, e.g. %s: %w", len(left), left[0].Origin, last)
			}
			return nil
		}, func(err error, attempt int, d time.Duration) {
			if attempt%20 == 0 {
				log.Warn("batch handler failed; its messages stay unacknowledged and are retried", zap.Error(err),
					zap.Int("messages", len(left)), zap.Int("attempt", attempt+1), zap.Duration("backoff", d))
			}
		})
	}
}

// outcomeKey carries a message's outcome to the innermost handler of Settle's chain.
type outcomeKey struct{}

type outcome struct{ err error }
