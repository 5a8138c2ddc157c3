// Command bridge forwards edge examples and device status from MQTT to Kafka (ack after
// Kafka's acks=all) and model releases from Kafka to retained MQTT messages: the module
// table of pkg/modules with -target=bridge.
package main

import (
	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/modules"
	"github.com/edgeloop/edgeloop/pkg/modules/headless"
)

func main() {
	bridge.TuneGC()
	modules.Main("bridge", modules.Bridge, headless.Modules())
}
