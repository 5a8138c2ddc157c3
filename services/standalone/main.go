// Command standalone runs the whole of edgeloop in one process with embedded MQTT,
// Kafka and S3 servers on loopback: `make run`.
package main

import (
	"context"
	"flag"
	"os"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/servicemain"
	"github.com/edgeloop/edgeloop/pkg/standalone"
)

func main() {
	servicemain.Main("standalone", func(fs *flag.FlagSet) servicemain.RunFunc {
		c := standalone.RegisterFlags(fs)
		return func(ctx context.Context, log *zap.Logger) error {
			return standalone.Run(ctx, *c, log, os.Stdout, nil)
		}
	})
}
