// Package standalone runs all of edgeloop in one process: the embedded MQTT, Kafka and
// S3 servers on loopback and every service wired to them through the same client code
// as in production — bridge, curator (UI, API, registry, dashboard), retrain — plus a
// simulated fleet of edge agents meeting a drift, and, with AutoAnnotate, simulated
// annotators, so that the whole loop runs by itself. It is what `make run` starts.
package standalone

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/edgeloop/edgeloop/pkg/agent"
	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/dashboard"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/embedded"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
	"github.com/edgeloop/edgeloop/pkg/retrain"
	"github.com/edgeloop/edgeloop/pkg/simannotator"
)

// Config places the stack and the simulation.
type Config struct {
	// DataDir keeps the servers' data, the signing key and the agents' state.
	DataDir string
	// Host the embedded servers listen on.
	Host                        string
	MQTTPort, KafkaPort, S3Port int
	// HTTPAddr serves the UI and the API.
	HTTPAddr       string
	BridgeOpsAddr  string
	RetrainOpsAddr string
	Backend        string

	// Project is bootstrapped from Seed (a built-in dataset) with SeedLimit examples.
	Project   string
	Seed      string
	SeedLimit int
	BatchMin  int
	BatchMax  int
	MaxWait   time.Duration

	// Fleet simulated agents meet Drift at SimRate frames/s each; the simulated operator
	// flags OperatorShare of the wrong predictions.
	Fleet         int
	Drift         string
	SimRate       float64
	OperatorShare float64

	// AutoAnnotate corrects and approves ready batches from the simulator's truth.
	AutoAnnotate  bool
	AnnotateError float64
	AnnotateDelay time.Duration
}

// RegisterFlags adds the standalone's flags to fs.
func RegisterFlags(fs *flag.FlagSet) *Config {
	c := &Config{}
	fs.StringVar(&c.DataDir, "data-dir", ".data/standalone", "where the servers, keys and agents keep their data")
	fs.StringVar(&c.Host, "host", "127.0.0.1", "address the embedded servers listen on")
	fs.IntVar(&c.MQTTPort, "mqtt-port", 1883, "embedded MQTT broker port")
	fs.IntVar(&c.KafkaPort, "kafka-port", 9092, "embedded Kafka broker port")
	fs.IntVar(&c.S3Port, "s3-port", 9000, "embedded S3 server port")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "UI and API")
	fs.StringVar(&c.BridgeOpsAddr, "bridge-ops-addr", "127.0.0.1:9101", "bridge /healthz, /readyz and /metrics")
	fs.StringVar(&c.RetrainOpsAddr, "retrain-ops-addr", "127.0.0.1:9103", "retrain /healthz, /readyz and /metrics")
	fs.StringVar(&c.Backend, "backend", "auto", "training backend: auto, cpu or cuda")
	fs.StringVar(&c.Project, "project", "digits", "project to bootstrap")
	fs.StringVar(&c.Seed, "seed", "mnist", "seed dataset of the project: mnist or digit-scenes")
	fs.IntVar(&c.SeedLimit, "seed-limit", 2000, "seed examples")
	fs.IntVar(&c.BatchMin, "batch-min", 30, "smallest correction batch")
	fs.IntVar(&c.BatchMax, "batch-max", 50, "largest correction batch")
	fs.DurationVar(&c.MaxWait, "max-wait", time.Minute, "a batch of at least batch-min closes after this wait")
	fs.IntVar(&c.Fleet, "fleet", 3, "simulated edge agents (0: none)")
	fs.StringVar(&c.Drift, "drift", "rotation", "drift preset the fleet meets")
	fs.Float64Var(&c.SimRate, "sim-rate", 4, "frames per second per simulated agent")
	fs.Float64Var(&c.OperatorShare, "operator-share", 0.3, "share of wrong predictions the simulated operators flag")
	fs.BoolVar(&c.AutoAnnotate, "auto-annotate", false, "simulated annotators correct and approve ready batches")
	fs.Float64Var(&c.AnnotateError, "annotate-error", 0.02, "share of examples the simulated annotator labels wrong")
	fs.DurationVar(&c.AnnotateDelay, "annotate-delay", 20*time.Millisecond, "time the simulated annotator spends per example")
	return c
}

// Tokens are the standalone's fixed loopback tokens.
func Tokens() *httpapi.Tokens {
	return &httpapi.Tokens{Tokens: map[string]httpapi.User{
		"annotator-dev-token": {Name: "annie", Roles: []string{httpapi.RoleAnnotator}},
		"reviewer-dev-token":  {Name: "rex", Roles: []string{httpapi.RoleReviewer}},
		"admin-dev-token":     {Name: "ada", Roles: []string{httpapi.RoleAdmin}},
		"device-dev-token":    {Name: "devices", Roles: []string{httpapi.RoleDevice}},
	}}
}

// Stack is the running stack.
type Stack struct {
	Servers *embedded.Servers
	Kafka   kafkabus.Config
	S3      s3store.Config
	// API is the UI and API base URL.
	API     string
	Curator *curator.Curator
	Agents  []*agent.Agent
}

// keys loads the standalone's signing key, making it on first start.
func keys(dir string) (ed25519.PrivateKey, error) {
	kp, pp := filepath.Join(dir, "signing.key"), filepath.Join(dir, "signing.pub")
	if k, err := artifact.ReadPrivateKey(kp); err == nil {
		return k, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pub, priv, err := artifact.GenerateKey()
	if err != nil {
		return nil, err
	}
	return priv, artifact.WriteKeys(kp, pp, pub, priv)
}

// Run starts the stack, prints where everything listens to out, and runs until ctx
// ends. started, when not nil, is called once the services are up.
func Run(ctx context.Context, c Config, log *zap.Logger, out io.Writer, started func(*Stack)) error {
	srv, err := embedded.Start(embedded.Config{
		Dir: filepath.Join(c.DataDir, "servers"), Host: c.Host,
		MQTTPort: c.MQTTPort, KafkaPort: c.KafkaPort, S3Port: c.S3Port,
		Topics: contract.Topics(), Partitions: 3,
	}, log.Named("embedded"))
	if err != nil {
		return err
	}
	defer srv.Close()
	key, err := keys(filepath.Join(c.DataDir, "keys"))
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	st := &Stack{Servers: srv, Kafka: kafkabus.Config{Brokers: []string{srv.KafkaAddr}, ClientID: "edgeloop-standalone"},
		S3: s3store.Config{Endpoint: srv.S3Addr, Bucket: "edgeloop", AccessKey: "edgeloop", SecretKey: "edgeloop-secret"}}
	publicURL := "http://" + c.HTTPAddr

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	stop := func(err error) error { // a start-up failure: stop the services, then report
		cancel()
		if werr := g.Wait(); werr != nil && !errors.Is(werr, context.Canceled) {
			return errors.Join(err, werr)
		}
		return err
	}
	g.Go(func() error {
		return bridge.RunService(gctx, bridge.ServiceConfig{Kafka: st.Kafka, OpsAddr: c.BridgeOpsAddr, Partitions: 3,
			MQTT: mqttbus.Config{URL: srv.MQTTURL, ClientID: "bridge-standalone"}}, log.Named("bridge"))
	})
	ready := make(chan string, 1)
	curators := make(chan *curator.Curator, 1)
	g.Go(func() error {
		ext := dashboard.Extend(publicURL, "curator-dashboard")
		return curator.RunService(gctx, curator.ServiceConfig{Kafka: st.Kafka, S3: st.S3, Tokens: Tokens(), Addr: c.HTTPAddr,
			Tick: time.Second, Ready: func(a string) { ready <- a },
			Extend: func(e curator.Extension) func(context.Context) error { curators <- e.Curator; return ext(e) }}, log.Named("curator"))
	})
	g.Go(func() error {
		return retrain.RunService(gctx, retrain.ServiceConfig{Kafka: st.Kafka, S3: st.S3, Key: key, PublicURL: publicURL, Backend: c.Backend,
			CacheDir: filepath.Join(c.DataDir, "retrain"), OpsAddr: c.RetrainOpsAddr}, log.Named("retrain"))
	})
	select {
	case a := <-ready:
		st.API = "http://" + a
	case <-gctx.Done():
		return g.Wait()
	}
	st.Curator = <-curators

	if err := retrain.Bootstrap(gctx, &retrain.BootstrapOptions{API: st.API, Token: "admin-dev-token", Project: c.Project,
		Dataset: c.Seed, Limit: c.SeedLimit, Seed: 1, BatchMin: c.BatchMin, BatchMax: c.BatchMax, MaxWait: c.MaxWait}, log.Named("bootstrap")); err != nil &&
		!errors.Is(err, retrain.ErrAlreadySeeded) {
		return stop(err)
	}
	spec, err := datasets.Parse(c.Seed)
	if err != nil {
		return stop(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	for i := 0; i < c.Fleet; i++ {
		dev := fmt.Sprintf("cam-%02d", i+1)
		httpAddr := ""
		if i == 0 {
			httpAddr = "127.0.0.1:8090"
		}
		a, err := agent.New(agent.Config{Project: c.Project, Device: dev, DataDir: filepath.Join(c.DataDir, "agents", dev),
			MQTT: mqttbus.Config{URL: srv.MQTTURL}, PublicKeys: map[string]ed25519.PublicKey{artifact.KeyID(pub): pub},
			DeviceToken: "device-dev-token", HTTPAddr: httpAddr, StatusInterval: 5 * time.Second, Version: "standalone",
			Sim: agent.SimConfig{Dataset: spec.Name, Drift: c.Drift, Rate: c.SimRate, OperatorShare: c.OperatorShare, Seed: uint64(i + 1)},
		}, nil, log.Named("agent").With(zap.String("device", dev)))
		if err != nil {
			return stop(err)
		}
		st.Agents = append(st.Agents, a)
		g.Go(func() error { return a.Run(gctx) })
	}
	if c.AutoAnnotate {
		g.Go(func() error {
			return simannotator.Run(gctx, st.Curator, simannotator.Config{ErrorRate: c.AnnotateError, Delay: c.AnnotateDelay, Seed: 1},
				log.Named("simannotator"))
		})
	}
	annotate := "annotate and approve batches yourself in the UI"
	if c.AutoAnnotate {
		annotate = "simulated annotators correct and approve batches"
	}
	fmt.Fprintf(out, `
edgeloop standalone is up (data in %s)

  UI            %s/#token=annotator-dev-token   (reviewer: #token=reviewer-dev-token)
  dashboard     %s/#/dashboard
  API           %s/api/v1/   (Authorization: Bearer admin-dev-token)
  MQTT broker   %s      Kafka %s      S3 http://%s
  agent API     http://127.0.0.1:8090/v1/infer   (device cam-01)
  metrics       http://%s/metrics  http://%s/metrics  %s/metrics

  project %q: seed %s (%d examples) -> version 1; %d simulated agents meet drift %q;
  %s; every approval retrains, and a better model ships to the fleet.

`, c.DataDir, st.API, st.API, st.API, srv.MQTTURL, srv.KafkaAddr, srv.S3Addr, c.BridgeOpsAddr, c.RetrainOpsAddr, st.API,
		c.Project, c.Seed, c.SeedLimit, c.Fleet, c.Drift, annotate)
	if started != nil {
		started(st)
	}
	return g.Wait()
}
