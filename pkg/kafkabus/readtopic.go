package kafkabus

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReadTopic calls fn with every message topic holds now, partition by partition and in
// offset order within each, and returns once it reached the end offsets it found at the
// start (messages produced meanwhile are not waited for). It joins no consumer group and
// commits nothing: it is for tools that inspect a topic, such as the dead-letter one.
// An error of fn stops it and is returned.
func ReadTopic(ctx context.Context, cfg Config, topic string, fn func(kafka.Message) error) error {
	tr, err := cfg.transport()
	if err != nil {
		return err
	}
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
	for _, po := range offs.Topics[topic] {
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
		m, err := r.ReadMessage(ctx)
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
