// Package headless implements the modules of pkg/modules that serve no UI: the bridge
// and retrain. Binaries that link only these (bridge, retrain) carry neither the
// curator nor its UI.
package headless

import (
	"context"

	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/modules"
	"github.com/edgeloop/edgeloop/pkg/retrain"
)

// Modules returns the implementations of the bridge and retrain modules.
func Modules() map[string]modules.Impl {
	return map[string]modules.Impl{
		modules.Bridge:  {Run: runBridge},
		modules.Retrain: {Run: runRetrain},
	}
}

func runBridge(ctx context.Context, a *modules.App) error {
	c := a.Config
	mq, err := a.MQTT(c.Bridge.ClientID)
	if err != nil {
		return err
	}
	tc, err := c.TLS.Config()
	if err != nil {
		return err
	}
	return bridge.RunService(ctx, bridge.ServiceConfig{Kafka: a.Kafka("edgeloop-bridge"), MQTT: mq, OpsAddr: c.Bridge.OpsAddr, OpsTLS: tc,
		Partitions: c.Partitions, Options: c.Bridge.Options}, a.Log.Named("bridge"))
}

func runRetrain(ctx context.Context, a *modules.App) error {
	c := a.Config
	key, err := a.SigningKey()
	if err != nil {
		return err
	}
	tc, err := c.TLS.Config()
	if err != nil {
		return err
	}
	cacheDir := c.Retrain.CacheDir
	if a.Local() != nil {
		cacheDir = a.DataPath("retrain")
	}
	return retrain.RunService(ctx, retrain.ServiceConfig{Kafka: a.Kafka("edgeloop-retrain"), S3: a.S3(), Key: key,
		PublicURL: a.PublicURL(), Backend: c.Retrain.Backend, CacheDir: cacheDir, OpsAddr: c.Retrain.OpsAddr, OpsTLS: tc,
		Group: c.Retrain.Group, Lease: c.Retrain.Lease, Reannounce: c.Retrain.Reannounce}, a.Log.Named("retrain"))
}
