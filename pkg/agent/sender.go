package agent

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/outbox"
	"github.com/edgeloop/edgeloop/pkg/retry"
)

type sent struct {
	e   outbox.Entry
	err error
}

// send drains the outbox into MQTT, most important first, with up to InFlight
// publishes awaiting their PUBACK. An entry is deleted only after its PUBACK arrived on
// the connection that sent it; anything else leaves it queued for the next attempt.
func (a *Agent) send(ctx context.Context) error {
	topic := contract.ExamplesTopic(a.cfg.Project, a.cfg.Device)
	busy := map[uint64]bool{}
	done := make(chan sent)
	backoff := retry.Backoff{Initial: 200 * time.Millisecond, Max: 10 * time.Second}
	failures := 0
	for {
		mq := a.mq.Load()
		if mq != nil && mq.Connected() && len(busy) < a.cfg.InFlight {
			es, err := a.ob.Next(a.cfg.InFlight-len(busy), busy)
			if err != nil {
				a.log.Error("outbox read failed", zap.Error(err))
			}
			for _, e := range es {
				busy[e.Seq] = true
				go func(e outbox.Entry) {
					pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					done <- sent{e: e, err: mq.Publish(pctx, topic, 1, false, e.Payload)}
				}(e)
			}
		}
		wait := time.Second
		if failures > 0 {
			wait = backoff.Delay(failures - 1)
		}
		select {
		case <-ctx.Done():
			for len(busy) > 0 { // let publishes in flight finish (they are cancelled)
				r := <-done
				delete(busy, r.e.Seq)
			}
			return nil
		case r := <-done:
			delete(busy, r.e.Seq)
			if r.err != nil {
				failures++
				a.m.uploadErrors.Inc()
				if failures == 1 || failures%20 == 0 {
					a.log.Warn("upload not acknowledged; it stays in the outbox", zap.Error(r.err), zap.Int("failures", failures))
				}
				continue
			}
			failures = 0
			a.m.uploaded.Inc()
			if err := a.ob.Delete(r.e); err != nil {
				a.log.Error("outbox delete failed", zap.Error(err))
			}
		case <-a.ob.Notify():
		case <-time.After(wait):
		}
	}
}
