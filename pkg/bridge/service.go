package bridge

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
	"github.com/edgeloop/edgeloop/pkg/retry"
)

// ServiceConfig is everything the bridge service needs.
type ServiceConfig struct {
	Kafka kafkabus.Config
	MQTT  mqttbus.Config
	// OpsAddr serves /healthz, /readyz and /metrics.
	OpsAddr string
	// OpsTLS, when set, makes the ops server HTTPS only.
	OpsTLS *tls.Config
	// Partitions of the topics the bridge creates when they are missing.
	Partitions int
	Options    Options
}

// RunService runs the bridge with its ops endpoints until ctx ends.
func RunService(ctx context.Context, c ServiceConfig, log *zap.Logger) error {
	reg := opshttp.NewRegistry() // metrics first: every part below registers its own
	if c.Partitions <= 0 {
		c.Partitions = 6
	}
	if err := retry.Wait(ctx, log, "kafka", func(ctx context.Context) error {
		return kafkabus.EnsureTopics(ctx, c.Kafka, c.Partitions, topics(c.Kafka)...)
	}); err != nil {
		return err
	}
	prod, err := kafkabus.NewProducer(c.Kafka, kafkabus.ProducerOptions{})
	if err != nil {
		return err
	}
	defer prod.Close()
	b := New(prod, c.Kafka, reg, log, c.Options)
	c.MQTT.ManualAck = true
	c.MQTT.CleanSession = false
	c.MQTT.Subscriptions = b.Subscriptions()
	mq, err := mqttbus.Connect(ctx, c.MQTT, log)
	if err != nil {
		return err
	}
	defer mq.Disconnect(time.Second)
	b.Attach(mq)
	mux := http.NewServeMux()
	opshttp.Mount(mux, reg,
		opshttp.Check{Name: "kafka", Fn: func(ctx context.Context) error { return kafkabus.Ping(ctx, c.Kafka) }},
		opshttp.Check{Name: "mqtt", Fn: func(context.Context) error {
			if !mq.Connected() {
				return fmt.Errorf("not connected to %s", c.MQTT.URL)
			}
			return nil
		}},
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return opshttp.Serve(gctx, c.OpsAddr, mux, log, nil, opshttp.WithTLS(c.OpsTLS)) })
	g.Go(func() error { return b.Run(gctx) })
	return g.Wait()
}

func topics(k kafkabus.Config) []string {
	var out []string
	for _, t := range contract.Topics() {
		out = append(out, k.Topic(t))
	}
	return out
}
