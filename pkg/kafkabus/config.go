// Package kafkabus is edgeloop's Kafka layer on segmentio/kafka-go: a producer that only
// returns once every in-sync replica has the message (acks=all), a consumer that commits
// an offset only after its handler made the effect durable, watermill-style handler
// middleware (retry, dead letter), and topic set-up.
package kafkabus

import (
	"crypto/tls"
	"flag"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/edgeloop/edgeloop/pkg/config"
)

// Config says how to reach the Kafka cluster.
type Config struct {
	// Brokers are bootstrap host:port addresses.
	Brokers []string
	// ClientID names this client in the brokers' logs and quotas.
	ClientID string
	// TLS, when not nil, encrypts every connection.
	TLS *tls.Config
	// SASLMechanism is "", "plain", "scram-sha-256" or "scram-sha-512".
	SASLMechanism string
	// SASLUser and SASLPassword are the SASL credentials.
	SASLUser, SASLPassword string
	// TopicPrefix namespaces every topic name (e.g. "staging."), so that several
	// deployments or test runs can share one cluster. Empty in production.
	TopicPrefix string
}

// Topic returns the cluster's name of a contract topic: TopicPrefix + name.
func (c Config) Topic(name string) string { return c.TopicPrefix + name }

// Flags are the command-line settings of a Config.
type Flags struct {
	brokers, mechanism, user, password, prefix string
	tls                                        *config.TLS
}

// RegisterFlags adds the -kafka-* flags to fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.brokers, "kafka-brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap brokers")
	fs.StringVar(&f.prefix, "kafka-topic-prefix", "", "prefix of every Kafka topic name, to share a cluster between deployments")
	fs.StringVar(&f.mechanism, "kafka-sasl-mechanism", "", "Kafka SASL mechanism: plain, scram-sha-256 or scram-sha-512 (empty: none)")
	fs.StringVar(&f.user, "kafka-sasl-user", "", "Kafka SASL user")
	fs.StringVar(&f.password, "kafka-sasl-password", "", "Kafka SASL password")
	f.tls = config.RegisterTLS(fs, "kafka")
	return f
}

// Config builds the Config the flags describe.
func (f *Flags) Config(clientID string) (Config, error) {
	t, err := f.tls.Config()
	if err != nil {
		return Config{}, fmt.Errorf("kafka: %w", err)
	}
	c := Config{
		Brokers: config.SplitList(f.brokers), ClientID: clientID, TLS: t,
		SASLMechanism: f.mechanism, SASLUser: f.user, SASLPassword: f.password, TopicPrefix: f.prefix,
	}
	if len(c.Brokers) == 0 {
		return Config{}, fmt.Errorf("kafka: no brokers given (-kafka-brokers)")
	}
	if _, err := c.mechanism(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c Config) mechanism() (sasl.Mechanism, error) {
	switch c.SASLMechanism {
	case "":
		return nil, nil
	case "plain":
		return plain.Mechanism{Username: c.SASLUser, Password: c.SASLPassword}, nil
	case "scram-sha-256":
		return scram.Mechanism(scram.SHA256, c.SASLUser, c.SASLPassword)
	case "scram-sha-512":
		return scram.Mechanism(scram.SHA512, c.SASLUser, c.SASLPassword)
	default:
		return nil, fmt.Errorf("kafka: SASL mechanism %q: want plain, scram-sha-256 or scram-sha-512", c.SASLMechanism)
	}
}

func (c Config) transport() (*kafka.Transport, error) {
	m, err := c.mechanism()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{ClientID: c.ClientID, TLS: c.TLS, SASL: m, DialTimeout: 5 * time.Second}, nil
}

func (c Config) dialer() (*kafka.Dialer, error) {
	m, err := c.mechanism()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{ClientID: c.ClientID, TLS: c.TLS, SASLMechanism: m, Timeout: 5 * time.Second, DualStack: true}, nil
}
