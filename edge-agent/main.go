// Command edge-agent runs one project's model on an edge device: it serves inferences
// (HTTP, a watched directory or a simulator), uploads the frames worth correcting
// through a durable outbox over MQTT, and follows verified model releases.
package main

import (
	"github.com/edgeloop/edgeloop/pkg/agent"
	"github.com/edgeloop/edgeloop/pkg/servicemain"
)

func main() { servicemain.Main("edge-agent", agent.Command) }
