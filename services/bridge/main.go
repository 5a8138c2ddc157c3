// Command bridge forwards edge examples and device status from MQTT to Kafka (ack after
// Kafka's acks=all) and model releases from Kafka to retained MQTT messages.
package main

import (
	"context"
	"flag"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/servicemain"
)

func main() {
	servicemain.Main("bridge", func(fs *flag.FlagSet) servicemain.RunFunc {
		f := bridge.RegisterFlags(fs)
		return func(ctx context.Context, log *zap.Logger) error {
			cfg, err := f.Config()
			if err != nil {
				return err
			}
			return bridge.RunService(ctx, cfg, log)
		}
	})
}
