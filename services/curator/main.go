// Command curator ingests edge examples, queues them in correction batches, serves the
// annotation UI and API (with the model registry and the dashboard), and turns approved
// batches into the dataset.
package main

import (
	"context"
	"flag"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/dashboard"
	"github.com/edgeloop/edgeloop/pkg/servicemain"
)

func main() {
	servicemain.Main("curator", func(fs *flag.FlagSet) servicemain.RunFunc {
		f := curator.RegisterFlags(fs)
		publicURL := fs.String("public-url", "http://127.0.0.1:8080", "URL devices reach this API at (model downloads)")
		return func(ctx context.Context, log *zap.Logger) error {
			cfg, err := f.Config()
			if err != nil {
				return err
			}
			cfg.Extend = dashboard.Extend(*publicURL, "curator-dashboard")
			return curator.RunService(ctx, cfg, log)
		}
	})
}
