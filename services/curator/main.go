// Command curator ingests edge examples, queues them in correction batches, serves the
// annotation UI and API with the model registry and the dashboard, and turns approved
// batches into the dataset: the module table of pkg/modules with
// -target=curator,registry,dashboard.
package main

import (
	"github.com/edgeloop/edgeloop/pkg/modules"
	"github.com/edgeloop/edgeloop/pkg/modules/frontend"
)

func main() {
	modules.Main("curator", modules.Curator+","+modules.Registry+","+modules.Dashboard, frontend.Modules(nil))
}
