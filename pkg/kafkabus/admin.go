package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// EnsureTopics creates the topics that do not exist yet, with the given partition count
// and a replication factor the cluster can hold (min(3, brokers)).
func EnsureTopics(ctx context.Context, cfg Config, partitions int, topics ...string) error {
	tr, err := cfg.transport()
	if err != nil {
		return err
	}
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: tr, Timeout: 10 * time.Second}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return fmt.Errorf("kafka metadata from %v: %w", cfg.Brokers, err)
	}
	have := map[string]bool{}
	for _, t := range meta.Topics {
		if t.Error == nil {
			have[t.Name] = true
		}
	}
	rf := min(3, len(meta.Brokers))
	var req kafka.CreateTopicsRequest
	for _, t := range topics {
		if !have[t] {
			req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: rf})
		}
	}
	if len(req.Topics) == 0 {
		return nil
	}
	resp, err := client.CreateTopics(ctx, &req)
	if err != nil {
		return fmt.Errorf("kafka create topics: %w", err)
	}
	for t, e := range resp.Errors {
		if e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
			return fmt.Errorf("kafka create topic %s: %w", t, e)
		}
	}
	return nil
}

// Ping checks that a broker answers, for readiness probes.
func Ping(ctx context.Context, cfg Config) error {
	d, err := cfg.dialer()
	if err != nil {
		return err
	}
	var last error
	for _, b := range cfg.Brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_, err = conn.Brokers()
			_ = conn.Close()
			if err == nil {
				return nil
			}
		}
		last = err
	}
	return fmt.Errorf("kafka brokers %v unreachable: %w", cfg.Brokers, last)
}
