package modules

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
)

// Config is the configuration of every module. RegisterFlags registers each of its
// flags once, with the one default that every binary and the standalone share; a flag
// can also be set as EDGELOOP_<FLAG> (pkg/config).
type Config struct {
	// Target lists the modules to run, comma-separated (see Targets).
	Target string

	// The clients every module shares.
	Kafka *kafkabus.Flags
	S3    *s3store.Config
	MQTT  *mqttbus.Flags
	// TokensFile holds the API's bearer tokens and their roles.
	TokensFile string
	// HTTPAddr serves the annotation UI and the API (curator, registry, dashboard).
	HTTPAddr string
	// TLS is the certificate of every HTTP server of the process (none: plain HTTP).
	TLS *config.ServerTLS
	// PublicURL is where devices reach the API (model downloads).
	PublicURL string
	// KeyFile is the ed25519 key that signs models (retrain).
	KeyFile string
	// Partitions of the topics a module creates when they are missing.
	Partitions int

	Bridge struct {
		ClientID string
		OpsAddr  string
		Options  bridge.Options
	}
	Curator struct {
		// OpsAddr serves the curator's /healthz, /readyz and /metrics.
		OpsAddr string
		Group   string
		Tick    time.Duration
		// Intake bounds the group commit of ingestion.
		Intake kafkabus.BatchOptions
	}
	Dashboard struct {
		Group string
	}
	Retrain struct {
		Backend  string
		CacheDir string
		OpsAddr  string
		Group    string
		Lease    time.Duration
		// Reannounce is how often each project's release is produced again.
		Reannounce time.Duration
	}
	// Embedded runs the MQTT, Kafka-protocol and S3 servers in the process.
	Embedded struct {
		DataDir                     string
		Host                        string
		MQTTPort, KafkaPort, S3Port int
	}
	// Demo names the project the standalone seeds and simulates: "digits", "colour" or
	// "colour-detect" (Demos); the bootstrap and fleet settings left empty take its values.
	Demo string
	// Bootstrap seeds a project from a built-in dataset when it does not exist.
	Bootstrap struct {
		Project string
		Dataset string
		Limit   int
		// Epochs of the project's fine-tunes (0: the project's default).
		Epochs int
		// Backbone is the pretrained weights file the project's first model starts
		// from (its model setting's backbone): "" takes the demo's when cached, "none"
		// none.
		Backbone string
		BatchMin int
		BatchMax int
		MaxWait  time.Duration
		// Model is the project's model setting (nil: the dataset's).
		Model *nn.Spec
	}
	// Fleet simulates edge agents meeting a drift.
	Fleet struct {
		Size          int
		Drift         string
		Rate          float64
		OperatorShare float64
		// HTTPAddr is the first agent's HTTP API ("" for none).
		HTTPAddr string
	}
	// Annotators correct and approve ready batches from the simulator's truth.
	Annotators struct {
		Auto  bool
		Error float64
		Delay time.Duration
	}
}

// DemoSettings are what a demo project sets.
type DemoSettings struct {
	Project, Dataset, Drift string
	Limit, Epochs           int
	// Model is the project's model setting (nil: the dataset's, datasets.Spec.Model).
	Model *nn.Spec
	// Backbones are the backbones the demo starts from, the first that exists
	// (relative to the repository root): `make pretrain`'s own, then the one shipped in
	// deploy/models.
	Backbones []string
}

// Demos are the standalone's demo projects: digits (grey MNIST digits, the built-in
// 28×28 network, meeting rotated digits) and colour (128×96 RGB frames of 4 object
// classes over photographs, MobileNetV2 n at 96×96 letterboxed, meeting a camera whose
// white balance drifted) and colour-detect (160×128 RGB scenes of 1–12 objects of 4
// classes at many scales over photographs, the multi-scale detector MobileNetV2 n at
// 160×128 on the same backbone's trunk, meeting the same drift), seeded small enough that version 1 trains in a
// minute or two on 2 cores.
func Demos() map[string]DemoSettings {
	return map[string]DemoSettings{
		"digits": {Project: "digits", Dataset: "mnist", Drift: "rotation", Limit: 2000},
		"colour": {Project: "shelf", Dataset: "colour-objects:size=128x96,classes=4", Drift: "white-balance", Limit: 400, Epochs: 4,
			Backbones: []string{"bench/out/pretrain/mobilenetv2-n.safetensors", "deploy/models/mobilenetv2-n.safetensors"}},
		"colour-detect": {Project: "shelf-detect", Dataset: "colour-scenes:size=160x128,classes=4", Drift: "white-balance", Limit: 300, Epochs: 4,
			Model:     &nn.Spec{Family: nn.MobileNetV2, Size: "n", Input: [2]int{160, 128}, Channels: 3, Resize: nn.Letterbox, Normalize: nn.NormNone},
			Backbones: []string{"bench/out/pretrain/mobilenetv2-n.safetensors", "deploy/models/mobilenetv2-n.safetensors"}},
	}
}

// DemoNames are the demos' names, sorted.
func DemoNames() []string { return slices.Sorted(maps.Keys(Demos())) }

// ApplyDemo fills the bootstrap and fleet settings left empty with the demo's.
func (c *Config) ApplyDemo() error {
	d, ok := Demos()[c.Demo]
	if !ok {
		return fmt.Errorf("-demo %q: want one of %s", c.Demo, strings.Join(DemoNames(), ", "))
	}
	config.IfZero(&c.Bootstrap.Project, d.Project)
	config.IfZero(&c.Bootstrap.Dataset, d.Dataset)
	config.IfZero(&c.Bootstrap.Limit, d.Limit)
	config.IfZero(&c.Bootstrap.Epochs, d.Epochs)
	config.IfZero(&c.Fleet.Drift, d.Drift)
	if c.Bootstrap.Model == nil {
		c.Bootstrap.Model = d.Model
	}
	return nil
}

// DemoBackbone is the backbone the bootstrapped project starts from, as an absolute
// path: -backbone's, else the first of the demo's that exists; "" for none. missing
// names the demo's files when they were looked for and none is there.
func (c *Config) DemoBackbone() (path, missing string, err error) {
	switch b := c.Bootstrap.Backbone; b {
	case "none":
		return "", "", nil
	case "":
		ds := Demos()[c.Demo].Backbones
		i := slices.IndexFunc(ds, func(d string) bool { _, err := os.Stat(d); return err == nil })
		if i < 0 {
			return "", strings.Join(ds, ", "), nil
		}
		path = ds[i]
	default:
		path = b
	}
	if path, err = filepath.Abs(path); err != nil {
		return "", "", fmt.Errorf("-backbone %s: %w", path, err)
	}
	return path, "", nil
}

// RegisterFlags adds every module's flags to fs and returns the Config they fill.
// defaultTarget is the binary's default -target.
func RegisterFlags(fs *flag.FlagSet, defaultTarget string) *Config {
	c := &Config{}
	fs.StringVar(&c.Target, "target", defaultTarget, "modules to run, comma-separated: "+targetHelp())

	c.Kafka = kafkabus.RegisterFlags(fs)
	c.S3 = s3store.RegisterFlags(fs)
	c.MQTT = mqttbus.RegisterFlags(fs)
	fs.StringVar(&c.TokensFile, "tokens", "deploy/tokens.example.json", "bearer tokens and their roles (JSON)")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "address of the annotation UI and the API")
	c.TLS = config.RegisterServerTLS(fs)
	fs.StringVar(&c.PublicURL, "public-url", "", "URL devices reach the API at (model downloads; default http://<http-addr>)")
	fs.StringVar(&c.KeyFile, "key", "keys/signing.key", "ed25519 private key (PEM) that signs models (made at first start when -target has embedded); the registry signs admins' promotes and rollbacks with it")
	fs.IntVar(&c.Partitions, "partitions", 6, "partitions of the Kafka topics created at start")

	host, _ := os.Hostname()
	fs.StringVar(&c.Bridge.ClientID, "bridge-mqtt-client-id", "bridge-"+host, "the bridge's MQTT client id; keep it stable and unique per replica so the broker keeps its session")
	fs.StringVar(&c.Bridge.OpsAddr, "bridge-ops-addr", "127.0.0.1:9101", "the bridge's /healthz, /readyz and /metrics")
	fs.StringVar(&c.Bridge.Options.ShareGroup, "share-group", "bridge", "MQTT shared-subscription group of the bridges (\"-\": a plain subscription, for brokers without $share)")
	fs.IntVar(&c.Bridge.Options.Limits.MaxMessageBytes, "max-message-bytes", 1_000_000, "largest MQTT payload the bridge accepts")
	fs.IntVar(&c.Bridge.Options.Limits.MaxImageSide, "max-image-side", 4096, "largest image width or height the bridge accepts, in pixels")
	fs.DurationVar(&c.Bridge.Options.Limits.MaxClockSkew, "max-clock-skew", 10*time.Minute, "how far ahead of the bridge's clock an example's captured_at may be")
	fs.IntVar(&c.Bridge.Options.Limits.MaxPixels, "max-pixels", bridge.DefaultMaxPixels, "largest image the bridge accepts, in pixels (width × height, read from its header)")
	fs.IntVar(&c.Bridge.Options.Router.MaxInFlight, "max-in-flight", 512, "MQTT messages the bridge handles at once")
	fs.DurationVar(&c.Bridge.Options.Router.DrainTimeout, "drain-timeout", 15*time.Second, "how long the bridge's shutdown waits for messages in flight")

	fs.StringVar(&c.Curator.OpsAddr, "curator-ops-addr", "127.0.0.1:9102", "the curator's /healthz, /readyz and /metrics, which need no token (empty: none)")
	fs.StringVar(&c.Curator.Group, "curator-group", "curator", "the curator's Kafka consumer group")
	fs.IntVar(&c.Curator.Intake.MaxSize, "curator-intake-batch", 500, "most examples the curator queues with one ledger update per project (1: one by one)")
	fs.DurationVar(&c.Curator.Intake.MaxWait, "curator-intake-wait", 10*time.Millisecond, "how long the curator's intake waits for more examples after the first of a batch")
	fs.DurationVar(&c.Curator.Tick, "tick", 2*time.Second, "how often open batches are checked for closing")
	fs.StringVar(&c.Dashboard.Group, "dashboard-group", "curator-dashboard", "the dashboard's Kafka consumer group (device heartbeats)")

	fs.StringVar(&c.Retrain.Backend, "backend", "auto", "training backend: auto, cpu or cuda")
	fs.StringVar(&c.Retrain.CacheDir, "cache-dir", ".data/retrain", "retrain's image cache")
	fs.StringVar(&c.Retrain.OpsAddr, "retrain-ops-addr", "127.0.0.1:9103", "retrain's /healthz, /readyz and /metrics (empty: none)")
	fs.StringVar(&c.Retrain.Group, "retrain-group", "retrain", "retrain's Kafka consumer group")
	fs.DurationVar(&c.Retrain.Lease, "lease", 2*time.Minute, "training lease per project (a crashed trainer blocks its project at most this long)")
	fs.DurationVar(&c.Retrain.Reannounce, "reannounce", time.Minute, "how often retrain produces each project's release again, so a retained MQTT release a crashed broker lost comes back")

	fs.StringVar(&c.Embedded.DataDir, "data-dir", ".data/standalone", "embedded: where the servers, the signing key and the simulated agents keep their data")
	fs.StringVar(&c.Embedded.Host, "host", "127.0.0.1", "embedded: address the servers listen on")
	fs.IntVar(&c.Embedded.MQTTPort, "mqtt-port", 1883, "embedded: MQTT broker port")
	fs.IntVar(&c.Embedded.KafkaPort, "kafka-port", 9092, "embedded: Kafka broker port")
	fs.IntVar(&c.Embedded.S3Port, "s3-port", 9000, "embedded: S3 server port")

	fs.StringVar(&c.Demo, "demo", "digits", "bootstrap and fleet: the demo project, digits (grey MNIST digits meeting rotation), colour (RGB objects over photographs, MobileNetV2 n at 96×96, meeting white-balance drift) or colour-detect (RGB scenes of many objects, the multi-scale detector at 160×128, meeting white-balance drift); -project, -seed, -seed-limit and -drift override its settings")
	fs.StringVar(&c.Bootstrap.Project, "project", "", "bootstrap: project to create and seed (default: the demo's, digits, shelf or shelf-detect)")
	fs.StringVar(&c.Bootstrap.Dataset, "seed", "", "bootstrap: seed dataset of the project: mnist, digit-scenes, colour-objects or colour-scenes, with options (default: the demo's)")
	fs.IntVar(&c.Bootstrap.Limit, "seed-limit", 0, "bootstrap: seed examples (default: the demo's, 2000 digits, 400 colour frames or 300 colour scenes)")
	fs.StringVar(&c.Bootstrap.Backbone, "backbone", "", "bootstrap: pretrained MobileNetV2 weights (.safetensors or .onnx, torchvision names) the project's first model starts from (default: the colour demo's bench/out/pretrain/mobilenetv2-n.safetensors when `make pretrain` has written it, else the one shipped in deploy/models; none: from scratch)")
	fs.IntVar(&c.Bootstrap.BatchMin, "batch-min", 30, "bootstrap: the project's smallest correction batch")
	fs.IntVar(&c.Bootstrap.BatchMax, "batch-max", 50, "bootstrap: the project's largest correction batch")
	fs.DurationVar(&c.Bootstrap.MaxWait, "max-wait", time.Minute, "bootstrap: a batch of at least batch-min closes after this wait")

	fs.IntVar(&c.Fleet.Size, "fleet", 3, "fleet: simulated edge agents")
	fs.StringVar(&c.Fleet.Drift, "drift", "", "fleet: drift preset the agents meet (default: the demo's, rotation or white-balance)")
	fs.Float64Var(&c.Fleet.Rate, "sim-rate", 4, "fleet: frames per second per agent")
	fs.Float64Var(&c.Fleet.OperatorShare, "operator-share", 0.3, "fleet: share of wrong predictions the simulated operators flag")
	fs.StringVar(&c.Fleet.HTTPAddr, "agent-http-addr", "127.0.0.1:8090", "fleet: the first agent's HTTP API (empty: none)")

	fs.BoolVar(&c.Annotators.Auto, "auto-annotate", false, "annotators: simulated annotators correct and approve ready batches")
	fs.Float64Var(&c.Annotators.Error, "annotate-error", 0.02, "annotators: share of examples labelled wrong")
	fs.DurationVar(&c.Annotators.Delay, "annotate-delay", 20*time.Millisecond, "annotators: time spent per example")
	return c
}
