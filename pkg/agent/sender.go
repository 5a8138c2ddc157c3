package agent

import (
	"context"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/outbox"
	"github.com/edgeloop/edgeloop/pkg/retry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

type sent struct {
	e   outbox.Entry
	err error
}

// send drains the outbox into MQTT, most important first, with up to InFlight
// publishes awaiting their PUBACK. A PUBACK that arrived on the connection that sent the
// entry only says the broker has it in memory: the entry then waits, still in the
// outbox, for the bridge's confirmation that Kafka has it (onAcks deletes it), and is
// sent again when none came within ConfirmTimeout. At most Unconfirmed entries wait at
// once, so that a long outage downstream does not make the agent resend its whole
// outbox every ConfirmTimeout. With NoConfirm an entry is deleted on its PUBACK (for
// bridges that send no confirmations).
func (a *Agent) send(ctx context.Context) error {
	topic := contract.ExamplesTopic(a.cfg.Project, a.cfg.Device)
	busy := map[uint64]bool{}          // awaiting PUBACK or confirmation: not picked again
	inflight := 0                      // awaiting PUBACK
	awaiting := map[uint64]time.Time{} // PUBACKed, awaiting confirmation until
	done := make(chan sent)
	backoff := retry.Backoff{Initial: 200 * time.Millisecond, Max: 10 * time.Second}
	failures := 0
	for {
		now := time.Now()
		for seq, until := range awaiting {
			if now.After(until) { // no confirmation (or it was lost): send again
				delete(awaiting, seq)
				delete(busy, seq)
			}
		}
		mq := a.mq.Load()
		room := min(a.cfg.InFlight-inflight, a.cfg.Unconfirmed-len(busy))
		if mq != nil && mq.Connected() && room > 0 {
			es, err := a.ob.Next(room, busy)
			if err != nil {
				a.log.Error("outbox read failed", zap.Error(err))
			}
			for _, e := range es {
				busy[e.Seq] = true
				inflight++
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
			for ; inflight > 0; inflight-- { // let publishes in flight finish (they are cancelled)
				<-done
			}
			return nil
		case r := <-done:
			inflight--
			if r.err != nil {
				delete(busy, r.e.Seq)
				failures++
				a.m.uploadErrors.Inc()
				if failures == 1 || failures%20 == 0 {
					a.log.Warn("upload not acknowledged; it stays in the outbox", zap.Error(r.err), zap.Int("failures", failures))
				}
				continue
			}
			failures = 0
			a.m.uploaded.Inc()
			if a.cfg.NoConfirm {
				delete(busy, r.e.Seq)
				if err := a.ob.Delete(r.e); err != nil {
					a.log.Error("outbox delete failed", zap.Error(err))
				}
				continue
			}
			awaiting[r.e.Seq] = time.Now().Add(a.cfg.ConfirmTimeout)
		case <-a.confirmed:
			// Confirmed entries left the outbox: forget them so that the window opens.
			for seq := range awaiting {
				if !a.ob.Has(seq) {
					delete(awaiting, seq)
					delete(busy, seq)
				}
			}
		case <-a.ob.Notify():
		case <-time.After(wait):
		}
	}
}

// onAcks receives the bridge's confirmations on the device's acks topic and deletes the
// confirmed examples from the outbox. An id not (or no longer) queued is ignored: a
// confirmation may arrive twice, or for an entry resent meanwhile.
func (a *Agent) onAcks(msg mqttbus.Message) {
	ack := &edgeloopv1.ExampleAck{}
	if err := proto.Unmarshal(msg.Payload(), ack); err != nil {
		a.log.Warn("confirmation does not decode; ignored", zap.String("topic", msg.Topic()), zap.Error(err))
		return
	}
	n, err := a.ob.DeleteIDs(ack.GetIds()...)
	if err != nil {
		a.log.Error("outbox delete failed", zap.Error(err))
	}
	a.m.confirmed.Add(float64(n))
	select {
	case a.confirmed <- struct{}{}:
	default:
	}
}
