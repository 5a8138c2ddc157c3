package kafkabus

import (
	"context"
	"errors"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgeloop/edgeloop/pkg/retry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Middleware wraps a Handler with one concern.
type Middleware func(Handler) Handler

// Chain applies middleware so that the first one listed is the outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Reject is a handler error for a message that can never succeed (it does not decode,
// it breaks a rule). Reason is a stable machine-readable code.
type Reject struct {
	Reason string
	Err    error
}

func (r *Reject) Error() string { return r.Reason + ": " + r.Err.Error() }
func (r *Reject) Unwrap() error { return r.Err }

// Rejectf builds a Reject.
func Rejectf(reason string, err error) error { return &Reject{Reason: reason, Err: err} }

// Retry retries transient handler errors with backoff until they succeed or ctx ends.
// A Reject is passed through at once.
func Retry(b retry.Backoff, log *zap.Logger) Middleware {
	return func(h Handler) Handler {
		return func(ctx context.Context, m kafka.Message) error {
			return retry.Do(ctx, b, func(ctx context.Context) error {
				err := h(ctx, m)
				var rej *Reject
				if errors.As(err, &rej) {
					return retry.Permanent(err)
				}
				return err
			}, func(err error, attempt int, d time.Duration) {
				log.Warn("handler failed, retrying", zap.Error(err), zap.String("topic", m.Topic),
					zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset),
					zap.Int("attempt", attempt+1), zap.Duration("backoff", d))
			})
		}
	}
}

// DeadLetter sends messages whose handler returned a Reject to deadLetterTopic,
// with the reason, and reports them handled so the consumer moves on. onReject, when
// not nil, is told (for metrics).
func DeadLetter(p *Producer, deadLetterTopic, service string, log *zap.Logger, onReject func(reason string)) Middleware {
	return func(h Handler) Handler {
		return func(ctx context.Context, m kafka.Message) error {
			err := h(ctx, m)
			var rej *Reject
			if !errors.As(err, &rej) {
				return err
			}
			log.Warn("message rejected to dead letter", zap.String("reason", rej.Reason), zap.Error(rej.Err),
				zap.String("topic", m.Topic), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset))
			if onReject != nil {
				onReject(rej.Reason)
			}
			return ProduceDeadLetter(ctx, p, deadLetterTopic, m.Key, &edgeloopv1.DeadLetter{
				Service: service, Source: "kafka:" + m.Topic, Reason: rej.Reason,
				Detail: rej.Err.Error(), Payload: m.Value,
			})
		}
	}
}

// ProduceDeadLetter writes dl to topic, stamping its time.
func ProduceDeadLetter(ctx context.Context, p *Producer, topic string, key []byte, dl *edgeloopv1.DeadLetter) error {
	if dl.ReceivedAt == nil {
		dl.ReceivedAt = timestamppb.Now()
	}
	b, err := proto.Marshal(dl)
	if err != nil {
		return err
	}
	return p.Produce(ctx, kafka.Message{Topic: topic, Key: key, Value: b})
}
