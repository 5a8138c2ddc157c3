package servertest

import (
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
)

// KafkaArgs are the command-line flags that point a service binary at cfg's Kafka.
func KafkaArgs(cfg kafkabus.Config) []string {
	return []string{"-kafka-brokers", cfg.Brokers[0], "-kafka-topic-prefix", cfg.TopicPrefix}
}

// S3Args are the command-line flags that point a service binary at cfg's bucket.
func S3Args(cfg s3store.Config) []string {
	return []string{"-s3-endpoint", cfg.Endpoint, "-s3-bucket", cfg.Bucket, "-s3-access-key", cfg.AccessKey, "-s3-secret-key", cfg.SecretKey}
}
