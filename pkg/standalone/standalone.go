// Package standalone runs all of edgeloop in one process: the embedded MQTT, Kafka and
// S3 servers on loopback and every service wired to them through the same client code
// as in production. It is what `make run` starts.
package standalone

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/embedded"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
)

// Config places the stack.
type Config struct {
	// DataDir keeps the servers' data between runs.
	DataDir string
	// Host the servers listen on.
	Host string
	// MQTTPort, KafkaPort and S3Port of the embedded servers.
	MQTTPort, KafkaPort, S3Port int
	// BridgeOpsAddr serves the bridge's /healthz, /readyz and /metrics.
	BridgeOpsAddr string
}

// RegisterFlags adds the standalone's flags to fs.
func RegisterFlags(fs *flag.FlagSet) *Config {
	c := &Config{}
	fs.StringVar(&c.DataDir, "data-dir", ".data/standalone", "where the embedded servers keep their data")
	fs.StringVar(&c.Host, "host", "127.0.0.1", "address the embedded servers listen on")
	fs.IntVar(&c.MQTTPort, "mqtt-port", 1883, "embedded MQTT broker port")
	fs.IntVar(&c.KafkaPort, "kafka-port", 9092, "embedded Kafka broker port")
	fs.IntVar(&c.S3Port, "s3-port", 9000, "embedded S3 server port")
	fs.StringVar(&c.BridgeOpsAddr, "bridge-ops-addr", "127.0.0.1:9101", "bridge /healthz, /readyz and /metrics")
	return c
}

// Stack is the running stack's addresses.
type Stack struct {
	Servers *embedded.Servers
	Kafka   kafkabus.Config
}

// Run starts the stack, prints where everything listens to out, and runs until ctx
// ends. started, when not nil, is called once everything is up.
func Run(ctx context.Context, c Config, log *zap.Logger, out io.Writer, started func(*Stack)) error {
	srv, err := embedded.Start(embedded.Config{
		Dir: filepath.Clean(c.DataDir), Host: c.Host,
		MQTTPort: c.MQTTPort, KafkaPort: c.KafkaPort, S3Port: c.S3Port,
		Topics: contract.Topics(), Partitions: 3,
	}, log.Named("embedded"))
	if err != nil {
		return err
	}
	defer srv.Close()
	st := &Stack{Servers: srv, Kafka: kafkabus.Config{Brokers: []string{srv.KafkaAddr}, ClientID: "edgeloop-standalone"}}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return bridge.RunService(gctx, bridge.ServiceConfig{
			Kafka: st.Kafka, OpsAddr: c.BridgeOpsAddr, Partitions: 3,
			MQTT: mqttbus.Config{URL: srv.MQTTURL, ClientID: "bridge-standalone"},
		}, log.Named("bridge"))
	})
	fmt.Fprintf(out, `
edgeloop standalone is up (data in %s)
  MQTT broker      %s
  Kafka broker     %s
  S3 endpoint      http://%s  (bucket edgeloop)
  bridge metrics   http://%s/metrics
`, c.DataDir, srv.MQTTURL, srv.KafkaAddr, srv.S3Addr, c.BridgeOpsAddr)
	if started != nil {
		started(st)
	}
	return g.Wait()
}
