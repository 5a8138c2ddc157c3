package frontend

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/edgeloop/edgeloop/pkg/agent"
	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/embedded"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/modules"
	"github.com/edgeloop/edgeloop/pkg/retrain"
	"github.com/edgeloop/edgeloop/pkg/simannotator"
)

// The embedded S3 server's credentials: it refuses any request not signed with them
// (fixed, so that an S3 client such as mc can read the standalone's data on loopback).
const (
	embeddedAccessKey = "edgeloop"
	embeddedSecretKey = "edgeloop-secret"
)

// adminToken is the token of deploy/tokens.example.json that the standalone's bootstrap
// uses on loopback.
const adminToken = "admin-dev-token"

// fleetToken adds to tokens a random device token of project pid for the simulated
// agents, so that they download models whatever -project and -tokens say.
func fleetToken(tokens *httpapi.Tokens, pid string) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("fleet token: %w", err)
	}
	tok := "fleet-" + hex.EncodeToString(b)
	if tokens.Tokens == nil {
		tokens.Tokens = map[string]httpapi.User{}
	}
	tokens.Tokens[tok] = httpapi.User{Name: "standalone-fleet", Roles: []string{httpapi.RoleDevice}, Projects: []string{pid}}
	return tok, nil
}

// setupEmbedded starts the embedded MQTT, Kafka-protocol and S3 servers before any
// other module runs; every client in the process then talks to them.
func setupEmbedded(a *modules.App) error {
	c := a.Config.Embedded
	srv, err := embedded.Start(embedded.Config{
		Dir: a.DataPath("servers"), Host: c.Host, MQTTPort: c.MQTTPort, KafkaPort: c.KafkaPort, S3Port: c.S3Port,
		Topics: contract.Topics(), Partitions: 3, S3AccessKey: embeddedAccessKey, S3SecretKey: embeddedSecretKey,
	}, a.Log.Named("embedded"))
	if err != nil {
		return err
	}
	a.UseLocal(&modules.LocalServers{MQTTURL: srv.MQTTURL, KafkaAddr: srv.KafkaAddr, S3Addr: srv.S3Addr,
		AccessKey: srv.S3AccessKey, SecretKey: srv.S3SecretKey, Close: srv.Close})
	return nil
}

func runEmbedded(ctx context.Context, _ *modules.App) error {
	<-ctx.Done() // the servers stop when modules.Run returns
	return nil
}

// runBootstrap creates and seeds the project once the API is up (a project that exists
// already is left as it is), then prints the standalone's banner.
func (s *state) runBootstrap(ctx context.Context, a *modules.App) error {
	if err := s.waitUp(ctx); err != nil {
		return err
	}
	b, log := a.Config.Bootstrap, a.Log.Named("bootstrap")
	backbone, missing, err := a.Config.DemoBackbone()
	if err != nil {
		return err
	}
	if missing != "" {
		log.Info("no pretrained backbone cached: the project's first model trains from scratch (near chance on a small seed); `make pretrain` writes one",
			zap.String("demo", a.Config.Demo), zap.String("file", missing))
	}
	err = retrain.Bootstrap(ctx, &retrain.BootstrapOptions{API: s.api, Token: adminToken, Project: b.Project,
		Dataset: b.Dataset, Limit: b.Limit, Seed: 1, BatchMin: b.BatchMin, BatchMax: b.BatchMax, MaxWait: b.MaxWait, Epochs: b.Epochs,
		Model: b.Model, Backbone: backbone}, log)
	if err != nil && !errors.Is(err, retrain.ErrAlreadySeeded) {
		return err
	}
	close(s.seeded)
	s.banner(a)
	if s.started != nil {
		s.started(&Stack{API: s.api, Curator: s.cur})
	}
	return nil
}

// runFleet runs simulated edge agents on the seeded project.
func (s *state) runFleet(ctx context.Context, a *modules.App) error {
	select {
	case <-s.seeded:
	case <-ctx.Done():
		return nil
	}
	f, b := a.Config.Fleet, a.Config.Bootstrap
	spec, err := datasets.Parse(b.Dataset)
	if err != nil {
		return err
	}
	key, err := a.SigningKey()
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	simSpec := spec
	simSpec.Drift = "" // the fleet meets f.Drift, not the seed's
	g, gctx := errgroup.WithContext(ctx)
	for i := 0; i < f.Size; i++ {
		dev := fmt.Sprintf("cam-%02d", i+1)
		httpAddr := ""
		if i == 0 {
			httpAddr = f.HTTPAddr
		}
		mq, err := a.MQTT("")
		if err != nil {
			return err
		}
		ag, err := agent.New(agent.Config{Project: b.Project, Device: dev, DataDir: a.DataPath("agents", dev),
			MQTT: mq, PublicKeys: map[string]ed25519.PublicKey{artifact.KeyID(pub): pub},
			DeviceToken: s.fleetToken, RegistryURL: s.api, HTTPAddr: httpAddr, StatusInterval: 5 * time.Second, Version: "standalone",
			Sim: agent.SimConfig{Dataset: simSpec.String(), Drift: f.Drift, Rate: f.Rate, OperatorShare: f.OperatorShare, Seed: uint64(i + 1)},
		}, nil, a.Log.Named("agent").With(zap.String("device", dev)))
		if err != nil {
			return err
		}
		g.Go(func() error { return ag.Run(gctx) })
	}
	return g.Wait()
}

// runAnnotators corrects and approves ready batches when -auto-annotate is set.
func (s *state) runAnnotators(ctx context.Context, a *modules.App) error {
	c := a.Config.Annotators
	if !c.Auto {
		return nil
	}
	if err := s.waitUp(ctx); err != nil {
		return err
	}
	return simannotator.Run(ctx, s.cur, simannotator.Config{ErrorRate: c.Error, Delay: c.Delay, Seed: 1}, a.Log.Named("simannotator"))
}

// banner prints where everything listens, when the process runs its own servers.
func (s *state) banner(a *modules.App) {
	l := a.Local()
	if a.Options.Out == nil || l == nil {
		return
	}
	c := a.Config
	annotate := "annotate and approve batches yourself in the UI"
	if c.Annotators.Auto {
		annotate = "simulated annotators correct and approve batches"
	}
	agentAPI := "none (-agent-http-addr)"
	if c.Fleet.HTTPAddr != "" && c.Fleet.Size > 0 {
		agentAPI = "http://" + c.Fleet.HTTPAddr + "/v1/infer   (device cam-01)"
	}
	fmt.Fprintf(a.Options.Out, `
edgeloop standalone is up (data in %s)

  UI            %s/#token=annotator-dev-token   (reviewer: #token=reviewer-dev-token)
  dashboard     %s/#/dashboard&token=annotator-dev-token
  API           %s/api/v1/   (Authorization: Bearer admin-dev-token)
  MQTT broker   %s      Kafka %s      S3 http://%s (key %s, secret %s)
  agent API     %s
  metrics       http://%s/metrics  http://%s/metrics  http://%s/metrics

  project %q: seed %s (%d examples) -> version 1; %d simulated agents meet drift %q;
  %s; every approval retrains, and a better model ships to the fleet.

`, c.Embedded.DataDir, s.api, s.api, s.api, l.MQTTURL, l.KafkaAddr, l.S3Addr, l.AccessKey, l.SecretKey, agentAPI,
		c.Bridge.OpsAddr, c.Retrain.OpsAddr, c.Curator.OpsAddr, c.Bootstrap.Project, c.Bootstrap.Dataset, c.Bootstrap.Limit, c.Fleet.Size,
		c.Fleet.Drift, annotate)
}
