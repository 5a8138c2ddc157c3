package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
)

// readIdle is how long ReadTopic waits for the next message of a partition it has not
// read to its end: longer means the rest was deleted meanwhile (retention).
const readIdle = 10 * time.Second

// ReadTopic calls fn with every message topic holds now, partition by partition (in
// partition order) and in offset order within each, and returns once it reached the
// end offsets it found at the start (messages produced meanwhile are not waited for). It joins no consumer group and
// commits nothing: it is for tools that inspect a topic, such as the dead-letter one.
// An error of fn stops it and is returned.
func ReadTopic(ctx context.Context, cfg Config, topic string, fn func(kafka.Message) error) error {
	tr, err := cfg.transport()
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: tr, Timeout: 10 * time.Second}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("kafka metadata of %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return fmt.Errorf("kafka topic %s: %w", topic, topicError(meta.Topics))
	}
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return fmt.Errorf("kafka offsets of %s: %w", topic, err)
	}
	d, err := cfg.dialer()
	if err != nil {
		return err
	}
	parts := slices.SortedFunc(slices.Values(offs.Topics[topic]), func(a, b kafka.PartitionOffsets) int { return a.Partition - b.Partition })
	for _, po := range parts {
		if po.Error != nil {
			return fmt.Errorf("kafka offsets of %s[%d]: %w", topic, po.Partition, po.Error)
		}
		if po.LastOffset <= po.FirstOffset {
			continue // empty
		}
		if err := readPartition(ctx, cfg, d, topic, po, fn); err != nil {
			return err
		}
	}
	return nil
}

func readPartition(ctx context.Context, cfg Config, d *kafka.Dialer, topic string, po kafka.PartitionOffsets, fn func(kafka.Message) error) error {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Brokers, Topic: topic, Partition: po.Partition, Dialer: d, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(po.FirstOffset); err != nil {
		return fmt.Errorf("kafka %s[%d]: %w", topic, po.Partition, err)
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, readIdle)
		m, err := r.ReadMessage(rctx)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			if r.Offset() >= po.LastOffset {
				return nil // the rest was deleted meanwhile
			}
			return fmt.Errorf("kafka read %s[%d]: nothing at offset %d within %s, before the end offset %d", topic, po.Partition, r.Offset(), readIdle, po.LastOffset)
		}
		if err != nil {
			return fmt.Errorf("kafka read %s[%d]: %w", topic, po.Partition, err)
		}
		if err := fn(m); err != nil {
			return err
		}
		if m.Offset >= po.LastOffset-1 {
			return nil
		}
	}
}

// topicError is why a metadata answer holds no usable topic.
func topicError(ts []kafka.Topic) error {
	if len(ts) == 1 && ts[0].Error != nil {
		return ts[0].Error
	}
	return fmt.Errorf("%d topics in the answer, want 1", len(ts))
}
