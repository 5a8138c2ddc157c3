// Command standalone runs the whole of edgeloop in one process — every module of
// pkg/modules (-target=all) plus embedded MQTT, Kafka and S3 servers on loopback, a
// seeded project, a simulated fleet and, with -auto-annotate, simulated annotators:
// `make run`.
package main

import (
	"github.com/edgeloop/edgeloop/pkg/modules"
	"github.com/edgeloop/edgeloop/pkg/modules/frontend"
	"github.com/edgeloop/edgeloop/pkg/modules/headless"
)

func main() {
	modules.Main("standalone", "standalone", modules.Merge(headless.Modules(), frontend.Modules(nil)))
}
