package message

import (
	"context"
	"fmt"
	"sync"

	"go.uber.org/zap"
)

// GiveUp turns an error that keeps coming back on one message into a *Reject with
// reason after max failed attempts, so that DeadLetter (placed outside GiveUp, inside
// Retry) sets the message aside with the last error and the transport moves on, instead
// of the message blocking its Kafka partition forever. It gives up only while healthy
// answers nil: when a dependency is down every message fails alike, and the failure is
// not the message's; the message is then retried until the dependency is back, however
// long that takes. Attempts are counted per message (its Origin) across Retry's calls.
//
//	Chain(h, Retry(b, log), DeadLetter(pub, topic, service, log, onReject), GiveUp(max, healthy, reason, log))
func GiveUp(maxAttempts int, healthy func(ctx context.Context) error, reason string, log *zap.Logger) Middleware {
	return func(h Handler) Handler {
		var mu sync.Mutex
		attempts := map[string]int{}
		forget := func(key string) {
			mu.Lock()
			delete(attempts, key)
			mu.Unlock()
		}
		return func(ctx context.Context, m *Message) error {
			err := h(ctx, m)
			if _, rejected := AsReject(err); err == nil || rejected || ctx.Err() != nil {
				forget(m.Origin)
				return err
			}
			mu.Lock()
			attempts[m.Origin]++
			n := attempts[m.Origin]
			mu.Unlock()
			if n < maxAttempts {
				return err
			}
			if herr := healthy(ctx); herr != nil {
				if n == maxAttempts {
					log.Warn("message keeps failing while a dependency is down: retried until it is back", zap.String("origin", m.Origin),
						zap.Error(err), zap.NamedError("dependency", herr))
				}
				return err
			}
			forget(m.Origin)
			return &Reject{Reason: reason, Err: fmt.Errorf("failed %d times while the service's dependencies answer: %w", n, err)}
		}
	}
}
