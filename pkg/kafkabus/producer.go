package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/message"
)

// Producer writes messages synchronously: Produce returns nil only once every in-sync
// replica acknowledged them (acks=all). It is safe for concurrent use, and concurrent
// calls share batches, so many goroutines calling Produce get both low latency and high
// throughput.
type Producer struct {
	w *kafka.Writer
}

// ProducerOptions tune a Producer; the zero value is a good default.
type ProducerOptions struct {
	// BatchTimeout bounds how long a message waits for others to share its batch
	// (default 2ms; kafka-go's own default of 1s would delay every synchronous write).
	BatchTimeout time.Duration
	// BatchBytes caps one request (default 1,000,000 bytes: under Kafka's default
	// message.max.bytes of 1,048,588, which also bounds a batch).
	BatchBytes int64
	// WriteTimeout bounds one attempt (default 10s).
	WriteTimeout time.Duration
	// MaxAttempts per Produce call before it returns an error (default 3); callers that
	// must not lose a message retry on their side.
	MaxAttempts int
}

// NewProducer returns a Producer for cfg. Messages name their topic.
func NewProducer(cfg Config, o ProducerOptions) (*Producer, error) {
	tr, err := cfg.transport()
	if err != nil {
		return nil, err
	}
	config.Default(&o.BatchTimeout, 2*time.Millisecond)
	config.Default(&o.BatchBytes, 1_000_000)
	config.Default(&o.WriteTimeout, 10*time.Second)
	config.Default(&o.MaxAttempts, 3)
	return &Producer{w: &kafka.Writer{
		Addr: kafka.TCP(cfg.Brokers...),
		// Murmur2 places keys on the same partitions as the Java clients do.
		Balancer:        &kafka.Murmur2Balancer{},
		RequiredAcks:    kafka.RequireAll,
		BatchTimeout:    o.BatchTimeout,
		BatchSize:       256,
		BatchBytes:      o.BatchBytes,
		WriteTimeout:    o.WriteTimeout,
		ReadTimeout:     o.WriteTimeout,
		MaxAttempts:     o.MaxAttempts,
		WriteBackoffMin: 50 * time.Millisecond,
		WriteBackoffMax: time.Second,
		Transport:       tr,
	}}, nil
}

// Produce writes msgs and waits for acks=all. Each message must name its Topic.
func (p *Producer) Produce(ctx context.Context, msgs ...kafka.Message) error {
	for i := range msgs {
		if msgs[i].Topic == "" {
			return fmt.Errorf("kafka produce: message %d names no topic", i)
		}
	}
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("kafka produce to %s: %w", msgs[0].Topic, err)
	}
	return nil
}

// Publish writes msgs to topic and waits for acks=all; it implements
// message.Publisher. A message Kafka will never take (larger than the broker's limit)
// is a *message.Reject with reason contract.ReasonTooLarge.
func (p *Producer) Publish(ctx context.Context, topic string, msgs ...*message.Message) error {
	out := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		out[i] = kafka.Message{Topic: topic, Key: m.Key, Value: m.Value}
		for k, v := range m.Headers {
			out[i].Headers = append(out[i].Headers, kafka.Header{Key: k, Value: []byte(v)})
		}
	}
	err := p.Produce(ctx, out...)
	if errors.Is(err, kafka.MessageSizeTooLarge) {
		return &message.Reject{Reason: contract.ReasonTooLarge, Err: err}
	}
	return err
}

var _ message.Publisher = (*Producer)(nil)

// Close flushes pending writes and releases the connections.
func (p *Producer) Close() error { return p.w.Close() }
