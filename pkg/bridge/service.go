package bridge

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
)

// ServiceConfig is everything the bridge service needs.
type ServiceConfig struct {
	Kafka kafkabus.Config
	MQTT  mqttbus.Config
	// OpsAddr serves /healthz, /readyz and /metrics.
	OpsAddr string
	// Partitions of the topics the bridge creates when they are missing.
	Partitions int
	Options    Options
}

// Flags fill a ServiceConfig from the command line.
type Flags struct {
	kafka    *kafkabus.Flags
	mqtt     *mqttbus.Flags
	clientID string
	cfg      ServiceConfig
}

// RegisterFlags adds the bridge's flags to fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	host, _ := os.Hostname()
	f := &Flags{kafka: kafkabus.RegisterFlags(fs), mqtt: mqttbus.RegisterFlags(fs)}
	fs.StringVar(&f.clientID, "mqtt-client-id", "bridge-"+host, "MQTT client id; keep it stable so the broker keeps the session")
	fs.StringVar(&f.cfg.OpsAddr, "ops-addr", "127.0.0.1:9101", "address of /healthz, /readyz and /metrics")
	fs.IntVar(&f.cfg.Partitions, "partitions", 6, "partitions of topics created at start")
	fs.StringVar(&f.cfg.Options.ShareGroup, "share-group", "bridge", "MQTT shared-subscription group of the bridges (\"-\": a plain subscription, for brokers without $share)")
	fs.IntVar(&f.cfg.Options.Limits.MaxMessageBytes, "max-message-bytes", 1_000_000, "largest MQTT payload accepted")
	fs.IntVar(&f.cfg.Options.Limits.MaxImageSide, "max-image-side", 4096, "largest image width or height accepted, in pixels")
	fs.IntVar(&f.cfg.Options.Router.MaxInFlight, "max-in-flight", 512, "messages handled at once")
	fs.DurationVar(&f.cfg.Options.Router.DrainTimeout, "drain-timeout", 15*time.Second, "how long shutdown waits for messages in flight")
	return f
}

// Config returns the ServiceConfig the flags describe.
func (f *Flags) Config() (ServiceConfig, error) {
	var err error
	c := f.cfg
	if c.Kafka, err = f.kafka.Config("edgeloop-bridge"); err != nil {
		return c, err
	}
	if c.MQTT, err = f.mqtt.Config(f.clientID); err != nil {
		return c, err
	}
	return c, nil
}

// RunService runs the bridge with its ops endpoints until ctx ends.
func RunService(ctx context.Context, c ServiceConfig, log *zap.Logger) error {
	if c.Partitions <= 0 {
		c.Partitions = 6
	}
	if err := kafkabus.EnsureTopics(ctx, c.Kafka, c.Partitions, topics(c.Kafka)...); err != nil {
		return err
	}
	prod, err := kafkabus.NewProducer(c.Kafka, kafkabus.ProducerOptions{})
	if err != nil {
		return err
	}
	defer prod.Close()
	reg := opshttp.NewRegistry()
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
	g.Go(func() error { return opshttp.Serve(gctx, c.OpsAddr, mux, log, nil) })
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
