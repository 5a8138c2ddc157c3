// Command curator ingests edge examples, queues them in correction batches, serves the
// annotation UI and API, and turns approved batches into the dataset.
package main

import (
	"context"
	"flag"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/servicemain"
)

func main() {
	servicemain.Main("curator", func(fs *flag.FlagSet) servicemain.RunFunc {
		f := curator.RegisterFlags(fs)
		return func(ctx context.Context, log *zap.Logger) error {
			cfg, err := f.Config()
			if err != nil {
				return err
			}
			return curator.RunService(ctx, cfg, log)
		}
	})
}
