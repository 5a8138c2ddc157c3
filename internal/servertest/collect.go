package servertest

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/edgeloop/edgeloop/pkg/kafkabus"
)

// Collect reads topic (its name with cfg's prefix applied) from the start as a new
// consumer group, handing each message to each, until done reports true or timeout
// passes; it reports whether done did. Broker errors are logged and retried: a freshly
// started Kafka answers "group coordinator not available" until its offsets topic
// exists, and the reader gets over it when asked again.
func Collect(t testing.TB, cfg kafkabus.Config, topic string, timeout time.Duration, each func(kafka.Message), done func() bool) bool {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers, GroupID: "check-" + RandomID(8), Topic: cfg.Topic(topic),
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond, JoinGroupBackoff: 200 * time.Millisecond,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !done() {
		m, err := r.FetchMessage(ctx)
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			t.Logf("reading %s: %v; retrying", cfg.Topic(topic), err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		each(m)
	}
	return true
}
