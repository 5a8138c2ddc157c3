package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/retry"
)

// Consumer reads one topic as a member of a consumer group and hands each message to a
// message.Handler, or each poll's messages to a message.BatchHandler: fetch, handle,
// commit — an offset is committed only once the handler returned nil, that is once the
// message's effect is durable. A message whose handler fails is never committed, and no
// later message of its partition is handled before it succeeds.
type Consumer struct {
	r     *kafka.Reader
	log   *zap.Logger
	group string
}

// ConsumerOptions tune a Consumer; the zero value is a good default.
type ConsumerOptions struct {
	// CommitInterval batches offset commits (default 200ms). Commits never run ahead of
	// the handler; a crash only means redelivery of what the handler already did.
	CommitInterval time.Duration
	// MaxWait bounds how long a fetch waits for new data (default 250ms).
	MaxWait time.Duration
	// StartAtEnd makes a new group start at the newest offset instead of the oldest.
	StartAtEnd bool
}

// NewConsumer joins group on topic.
func NewConsumer(cfg Config, group, topic string, o ConsumerOptions, log *zap.Logger) (*Consumer, error) {
	d, err := cfg.dialer()
	if err != nil {
		return nil, err
	}
	config.Default(&o.CommitInterval, 200*time.Millisecond)
	config.Default(&o.MaxWait, 250*time.Millisecond)
	start := kafka.FirstOffset
	if o.StartAtEnd {
		start = kafka.LastOffset
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:  cfg.Brokers,
		GroupID:  group,
		Topic:    topic,
		Dialer:   d,
		MinBytes: 1,
		// 2 MiB holds the largest message (1 MB) and keeps fetches short; with 4 MiB and
		// more, kafka-go v0.4.51 stalled reading full partitions from kfake.
		MaxBytes:       2 << 20,
		MaxWait:        o.MaxWait,
		CommitInterval: o.CommitInterval,
		StartOffset:    start,
		// The broker's minimum session (group.min.session.timeout.ms, 6 s): after a
		// Kafka restart the group is formed again, and consuming resumes, that much
		// sooner than with kafka-go's 30 s.
		HeartbeatInterval:     time.Second,
		SessionTimeout:        6 * time.Second,
		RebalanceTimeout:      6 * time.Second,
		JoinGroupBackoff:      500 * time.Millisecond,
		WatchPartitionChanges: true,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			log.Debug("kafka reader", zap.String("detail", fmt.Sprintf(msg, args...)))
		}),
	})
	return &Consumer{r: r, log: log.With(zap.String("group", group), zap.String("topic", topic)), group: group}, nil
}

// Run handles messages one at a time until ctx ends. Broker errors (Kafka down, a
// rebalance) are logged and retried with backoff. The handler is retried by whatever
// middleware wraps it; Run itself stops at the first handler error, without committing
// that message, so that it is redelivered.
func (c *Consumer) Run(ctx context.Context, h message.Handler) error {
	return c.RunBatch(ctx, BatchOptions{MaxSize: 1}, func(ctx context.Context, ms []*message.Message) error { return h(ctx, ms[0]) })
}

// BatchOptions bound the batches of RunBatch.
type BatchOptions struct {
	// MaxSize is the most messages in one batch (default 500).
	MaxSize int
	// MaxWait is how long a batch waits for more messages after its first one (default
	// 10ms): what is already fetched joins at once, and a quiet topic delays a message by
	// at most MaxWait.
	MaxWait time.Duration
}

// RunBatch is Run for a message.BatchHandler: it hands the handler what one poll
// gathers (up to MaxSize messages, waiting at most MaxWait after the first) and commits
// the batch's offsets only once the handler returned nil for the whole batch. A crash
// between the handler's effect and the commit redelivers the batch, so the handler
// must be idempotent. Broker errors (Kafka down, a rebalance) are logged and retried
// with backoff; RunBatch stops at the first handler error, without committing.
func (c *Consumer) RunBatch(ctx context.Context, o BatchOptions, h message.BatchHandler) error {
	config.Default(&o.MaxSize, 500)
	config.Default(&o.MaxWait, 10*time.Millisecond)
	b := retry.Backoff{Initial: 200 * time.Millisecond, Max: 2 * time.Second}
	failures := 0
	pause := func(what string, err error) bool {
		d := b.Delay(failures)
		failures++
		c.log.Warn("kafka "+what+" failed; retrying", zap.Error(err), zap.Duration("backoff", d))
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	for {
		m, err := c.r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil
			}
			if !pause("fetch", err) {
				return nil
			}
			continue
		}
		batch := []kafka.Message{m}
		// The rest of the batch: whatever arrives within MaxWait. A fetch cut short by
		// the deadline leaves its message in the reader for the next batch.
		if o.MaxSize > 1 {
			batch = c.gather(ctx, batch, o)
		}
		if ctx.Err() != nil {
			return nil
		}
		msgs := make([]*message.Message, len(batch))
		for i, m := range batch {
			msgs[i] = toMessage(m)
		}
		if err := h(ctx, msgs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			first := batch[0]
			return fmt.Errorf("handle %d message(s) from %s[%d]@%d: %w", len(batch), first.Topic, first.Partition, first.Offset, err)
		}
		for {
			err := c.r.CommitMessages(ctx, batch...)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			if !pause("commit", err) {
				return nil
			}
		}
		failures = 0
	}
}

// gather adds to batch what the reader gives within o.MaxWait, up to o.MaxSize.
func (c *Consumer) gather(ctx context.Context, batch []kafka.Message, o BatchOptions) []kafka.Message {
	wctx, cancel := context.WithTimeout(ctx, o.MaxWait)
	defer cancel()
	for len(batch) < o.MaxSize {
		m, err := c.r.FetchMessage(wctx)
		if err != nil {
			if wctx.Err() == nil {
				c.log.Debug("kafka fetch ended a batch early", zap.Error(err))
			}
			break
		}
		batch = append(batch, m)
	}
	return batch
}

// Lag returns the reader's current lag, for metrics.
func (c *Consumer) Lag() int64 { return c.r.Stats().Lag }

// Close leaves the group and flushes pending commits.
func (c *Consumer) Close() error { return c.r.Close() }

// toMessage is the transport-neutral view of a Kafka message.
func toMessage(m kafka.Message) *message.Message {
	out := &message.Message{Topic: m.Topic, Key: m.Key, Value: m.Value,
		Origin: fmt.Sprintf("kafka:%s[%d]@%d", m.Topic, m.Partition, m.Offset)}
	if len(m.Headers) > 0 {
		out.Headers = make(map[string]string, len(m.Headers))
		for _, h := range m.Headers {
			out.Headers[h.Key] = string(h.Value)
		}
	}
	return out
}
