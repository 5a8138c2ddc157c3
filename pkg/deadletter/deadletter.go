// Package deadletter reads what the services set aside on the dead-letter topic
// (edgeloop.v1.DeadLetter: the service, the source, a stable reason, the detail and the
// payload) and replays it to the Kafka topic it came from, after watermill's poison
// queue and requeuer: an operator who repaired the cause (a corrupt ledger, an outage
// longer than the retries) lists the examples set aside as retry_exhausted and sends
// them through again. Replaying is safe twice: the curator ingests by example id and
// retrain counts an approval once per batch.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/message"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Filter selects dead letters; its zero value selects all.
type Filter struct {
	// Service and Reason, when set, must equal the letter's.
	Service, Reason string
	// Since, when set, is the earliest ReceivedAt.
	Since time.Time
}

// Match reports whether d passes f.
func (f Filter) Match(d *edgeloopv1.DeadLetter) bool {
	return (f.Service == "" || d.GetService() == f.Service) && (f.Reason == "" || d.GetReason() == f.Reason) &&
		(f.Since.IsZero() || !d.GetReceivedAt().AsTime().Before(f.Since))
}

// Letter is a dead letter with where it lies on the dead-letter topic and the key it
// was produced with (the project, for the topics it can be replayed to).
type Letter struct {
	*edgeloopv1.DeadLetter
	Partition int
	Offset    int64
	Key       []byte
}

// List reads the whole dead-letter topic of cfg as it is now and returns the letters
// f selects, oldest first per partition, with the number of messages on the topic that
// were not dead letters (they are passed over).
func List(ctx context.Context, cfg kafkabus.Config, f Filter) ([]Letter, int, error) {
	var out []Letter
	bad := 0
	err := kafkabus.ReadTopic(ctx, cfg, cfg.Topic(contract.TopicDeadLetter), func(m kafka.Message) error {
		d := &edgeloopv1.DeadLetter{}
		if err := proto.Unmarshal(m.Value, d); err != nil {
			bad++
			return nil
		}
		if f.Match(d) {
			out = append(out, Letter{DeadLetter: d, Partition: m.Partition, Offset: m.Offset, Key: m.Key})
		}
		return nil
	})
	return out, bad, err
}

// source is a Kafka message's origin as message.Message.Origin writes it:
// kafka:TOPIC[PARTITION]@OFFSET.
var source = regexp.MustCompile(`^kafka:([^\[\]]+)\[\d+\]@\d+$`)

// Why a letter cannot be replayed (Target's errors wrap one).
var (
	ErrNotKafka    = errors.New("not from a Kafka topic")
	ErrNotReplayed = errors.New("from a topic not replayed")
	ErrCut         = errors.New("payload cut to the size limit")
	ErrUnreadable  = errors.New("payload does not decode")
)

// Target returns the topic letter l is replayed to, or why it cannot be: only what a
// service consumed from the examples or approvals topic goes back (a message an edge
// device sent over MQTT was refused by the bridge for what it holds), and only whole
// (a payload cut to the dead letter's size limit, or one that never decoded, would only
// be refused again).
func Target(cfg kafkabus.Config, l Letter) (string, error) {
	m := source.FindStringSubmatch(l.GetSource())
	if m == nil {
		return "", fmt.Errorf("source %q: %w", l.GetSource(), ErrNotKafka)
	}
	var payload proto.Message
	switch m[1] {
	case cfg.Topic(contract.TopicExamples):
		payload = &edgeloopv1.Example{}
	case cfg.Topic(contract.TopicBatchesApproved):
		payload = &edgeloopv1.BatchApproved{}
	default:
		return "", fmt.Errorf("topic %s (only %s and %s are): %w", m[1],
			cfg.Topic(contract.TopicExamples), cfg.Topic(contract.TopicBatchesApproved), ErrNotReplayed)
	}
	if err := proto.Unmarshal(l.GetPayload(), payload); err != nil {
		why := ErrUnreadable
		if len(l.GetPayload()) == message.MaxDeadLetterPayload {
			why = ErrCut
		}
		return "", fmt.Errorf("%w: not a %T: %w", why, payload, err)
	}
	return m[1], nil
}

// Result counts what Replay did.
type Result struct {
	// Replayed counts the letters produced again to their topic.
	Replayed int
	// Skipped counts the letters that cannot be replayed by why: ErrNotKafka's,
	// ErrNotReplayed's, ErrCut's or ErrUnreadable's text.
	Skipped map[string]int
}

// Replay produces the payload of each letter that can be replayed back to its topic,
// with its key, through pub; the others are counted in Result.Skipped. A failure to
// produce stops it, with what was replayed before counted.
func Replay(ctx context.Context, cfg kafkabus.Config, pub message.Publisher, letters []Letter) (Result, error) {
	r := Result{Skipped: map[string]int{}}
	for _, l := range letters {
		topic, err := Target(cfg, l)
		if err != nil {
			for _, why := range []error{ErrNotKafka, ErrNotReplayed, ErrCut, ErrUnreadable} {
				if errors.Is(err, why) {
					r.Skipped[why.Error()]++
				}
			}
			continue
		}
		if err := pub.Publish(ctx, topic, &message.Message{Key: l.Key, Value: l.GetPayload()}); err != nil {
			return r, fmt.Errorf("replaying the letter at %d@%d to %s: %w", l.Partition, l.Offset, topic, err)
		}
		r.Replayed++
	}
	return r, nil
}
