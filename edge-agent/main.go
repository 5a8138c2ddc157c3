// Command edge-agent runs one project's model on an edge device: it serves inferences
// (HTTP, a watched directory or a simulator), uploads the frames worth correcting
// through a durable outbox over MQTT, and follows verified model releases.
package main

import (
	"context"
	"flag"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/agent"
	"github.com/edgeloop/edgeloop/pkg/servicemain"
)

func main() {
	servicemain.Main("edge-agent", func(fs *flag.FlagSet) servicemain.RunFunc {
		f := agent.RegisterFlags(fs)
		return func(ctx context.Context, log *zap.Logger) error {
			cfg, err := f.Config()
			if err != nil {
				return err
			}
			a, err := agent.New(cfg, nil, log)
			if err != nil {
				return err
			}
			return a.Run(ctx)
		}
	})
}
