// Command curator ingests edge examples, queues them in correction batches, serves the
// annotation UI and API with the model registry and the dashboard, and turns approved
// batches into the dataset: the module table of pkg/modules with
// -target=curator,registry,dashboard.
//
// `curator deadletters [-reason R] [-service S] [-since D] [-replay]` lists what the
// services set aside on the dead-letter topic and replays it (package deadletter).
package main

import (
	"os"

	"github.com/edgeloop/edgeloop/pkg/deadletter"
	"github.com/edgeloop/edgeloop/pkg/modules"
	"github.com/edgeloop/edgeloop/pkg/modules/frontend"
	"github.com/edgeloop/edgeloop/pkg/servicemain"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "deadletters" {
		os.Exit(servicemain.Run("curator deadletters", os.Args[2:], deadletter.Command(os.Stdout)))
	}
	modules.Main("curator", modules.Curator+","+modules.Registry+","+modules.Dashboard, frontend.Modules(nil))
}
