// Package embedded runs, inside one process, the three servers that edgeloop talks to:
// an MQTT broker (mochi-mqtt with a bolt storage hook), a Kafka-protocol broker
// (franz-go's kfake with a data directory) and an S3 server (gofakes3 on a bolt file).
// They speak the real protocols on loopback, so every client code path is the
// production one, and their data survives a restart.
package embedded

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// Config places the servers.
type Config struct {
	// Dir holds their data: mqtt.db, kafka/ and s3.db.
	Dir string
	// Host to listen on (default 127.0.0.1).
	Host string
	// Ports; 0 picks a free port.
	MQTTPort, KafkaPort, S3Port int
	// Topics are created at start with Partitions partitions each.
	Topics     []string
	Partitions int
	// S3AccessKey and S3SecretKey are the credentials the S3 server requires of every
	// request (both empty: it makes random ones, in Servers).
	S3AccessKey, S3SecretKey string
}

// Servers are the running servers.
type Servers struct {
	// MQTTURL is tcp://host:port.
	MQTTURL string
	// KafkaAddr and S3Addr are host:port.
	KafkaAddr, S3Addr string
	// S3AccessKey and S3SecretKey sign every request to the S3 server.
	S3AccessKey, S3SecretKey string

	mq    *mqtt.Server
	kafka *kafka
	s3    *http.Server
	s3db  *bbolt.DB
}

// Start starts the three servers.
func Start(c Config, log *zap.Logger) (_ *Servers, err error) {
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.Partitions <= 0 {
		c.Partitions = 3
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded: data dir: %w", err)
	}
	s := &Servers{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.startMQTT(c, log); err != nil {
		return nil, err
	}
	if s.kafka, err = startKafka(c); err != nil {
		return nil, err
	}
	s.KafkaAddr = s.kafka.addr
	if err := s.startS3(c, log); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Servers) startMQTT(c Config, log *zap.Logger) error {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = 4 << 20
	caps.MaximumClientWritesPending = 64 * 1024
	s.mq = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(zapHandler{log: log.Named("mqtt")}),
	})
	if err := s.mq.AddHook(new(auth.AllowHook), nil); err != nil {
		return fmt.Errorf("embedded mqtt: %w", err)
	}
	if err := s.mq.AddHook(newHandoverHook(s.mq), nil); err != nil {
		return fmt.Errorf("embedded mqtt: %w", err)
	}
	dbPath := filepath.Join(c.Dir, "mqtt.db")
	if n, err := repairInflight(dbPath); err != nil {
		return err
	} else if n > 0 {
		log.Info("restored the packet ids of stored in-flight messages", zap.Int("messages", n))
	}
	// NoSync: sessions and queued messages survive a crash of the process (the OS has
	// them), not a power cut; an fsync per QoS 1 delivery would cap the broker at a few
	// hundred messages a second.
	boltOpts := &bbolt.Options{Timeout: 5 * time.Second, NoSync: true, NoFreelistSync: true}
	if err := s.mq.AddHook(new(bolt.Hook), &bolt.Options{Path: dbPath, Options: boltOpts}); err != nil {
		return fmt.Errorf("embedded mqtt storage %s: %w", dbPath, err)
	}
	addr := net.JoinHostPort(c.Host, strconv.Itoa(c.MQTTPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("embedded mqtt listen %s: %w", addr, err)
	}
	addr = ln.Addr().String()
	_ = ln.Close() // mochi binds by address itself; we only resolved a free port
	if err := s.mq.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return fmt.Errorf("embedded mqtt listener %s: %w", addr, err)
	}
	if err := s.mq.Serve(); err != nil {
		return fmt.Errorf("embedded mqtt serve: %w", err)
	}
	s.MQTTURL = "tcp://" + addr
	return nil
}

func (s *Servers) startS3(c Config, log *zap.Logger) error {
	path := filepath.Join(c.Dir, "s3.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("embedded s3 storage %s: %w", path, err)
	}
	s.s3db = db
	s.S3AccessKey, s.S3SecretKey = c.S3AccessKey, c.S3SecretKey
	if s.S3AccessKey == "" && s.S3SecretKey == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("embedded s3 credentials: %w", err)
		}
		s.S3AccessKey, s.S3SecretKey = "edgeloop-embedded", hex.EncodeToString(b)
	}
	if s.S3AccessKey == "" || s.S3SecretKey == "" {
		return errors.New("embedded s3: set both the access key and the secret key, or neither")
	}
	faker := gofakes3.New(s3bolt.New(db), gofakes3.WithAutoBucket(true), gofakes3.WithLogger(gofakes3.DiscardLog()))
	addr := net.JoinHostPort(c.Host, strconv.Itoa(c.S3Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("embedded s3 listen %s: %w", addr, err)
	}
	s.S3Addr = ln.Addr().String()
	s.s3 = &http.Server{Handler: s3Auth(s.S3AccessKey, s.S3SecretKey, faker.Server()), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 5 * time.Minute, WriteTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := s.s3.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("embedded s3 stopped", zap.Error(err))
		}
	}()
	return nil
}

// Close stops the servers; their data stays in Dir.
func (s *Servers) Close() {
	if s.s3 != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.s3.Shutdown(ctx)
		cancel()
	}
	if s.s3db != nil {
		_ = s.s3db.Close()
	}
	if s.kafka != nil {
		s.kafka.close()
	}
	if s.mq != nil {
		_ = s.mq.Close()
	}
}

// kafka wraps a kfake cluster so that it can be stopped and started again on the same
// port and data (for outage tests).
type kafka struct {
	c    *kfake.Cluster
	addr string
	opts []kfake.Opt
}

func startKafka(c Config) (*kafka, error) {
	port := c.KafkaPort
	if port == 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort(c.Host, "0"))
		if err != nil {
			return nil, fmt.Errorf("embedded kafka: %w", err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
	}
	k := &kafka{opts: []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.DataDir(filepath.Join(c.Dir, "kafka")),
		kfake.DefaultNumPartitions(c.Partitions),
		kfake.AllowAutoTopicCreation(),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(c.Host, strconv.Itoa(port)))
		}),
	}}
	if len(c.Topics) > 0 {
		k.opts = append(k.opts, kfake.SeedTopics(int32(c.Partitions), c.Topics...))
	}
	if err := k.start(); err != nil {
		return nil, err
	}
	k.addr = net.JoinHostPort(c.Host, strconv.Itoa(port))
	return k, nil
}

func (k *kafka) start() error {
	c, err := kfake.NewCluster(k.opts...)
	if err != nil {
		return fmt.Errorf("embedded kafka: %w", err)
	}
	k.c = c
	return nil
}

func (k *kafka) close() {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

// StopKafka stops the embedded Kafka broker, keeping its data (for outage tests).
func (s *Servers) StopKafka() { s.kafka.close() }

// StartKafka starts the embedded Kafka broker again on the same port and data.
func (s *Servers) StartKafka() error { return s.kafka.start() }
