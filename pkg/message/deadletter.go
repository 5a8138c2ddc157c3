package message

import (
	"context"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// MaxDeadLetterPayload keeps a dead letter under Kafka's message size limit: a longer
// payload is cut to it.
const MaxDeadLetterPayload = 256 << 10

// DeadLetter turns a *Reject from the handler into an edgeloop.v1.DeadLetter on topic
// (the service's name, the message's origin, the reason code, the detail and the
// payload, cut to 256 KiB) and reports the message handled, so that the transport acks
// it and moves on. onReject, when not nil, is told the reason (for metrics). Other
// errors pass through; so does a failure to write the dead letter, so that the message
// is retried rather than lost.
func DeadLetter(pub Publisher, topic, service string, log *zap.Logger, onReject func(reason string)) Middleware {
	return func(h Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			err := h(ctx, m)
			rej, ok := AsReject(err)
			if !ok {
				return err
			}
			log.Warn("message refused: dead-lettered", zap.String("reason", rej.Reason), zap.Error(rej.Err),
				zap.String("origin", m.Origin))
			payload := m.Value
			if len(payload) > MaxDeadLetterPayload {
				payload = payload[:MaxDeadLetterPayload]
			}
			// Marshalling a message built here from valid strings and bytes cannot fail.
			v, _ := proto.Marshal(&edgeloopv1.DeadLetter{
				Service: service, Source: m.Origin, Reason: rej.Reason, Detail: rej.Err.Error(),
				Payload: payload, ReceivedAt: timestamppb.Now(),
			})
			if err := pub.Publish(ctx, topic, &Message{Key: m.Key, Value: v}); err != nil {
				return err
			}
			if onReject != nil {
				onReject(rej.Reason)
			}
			return nil
		}
	}
}
