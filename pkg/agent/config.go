package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/sampling"
	"github.com/edgeloop/edgeloop/pkg/servicemain"
)

// DefaultMaxMessageBytes is deploy's Mosquitto message_size_limit and the bridge's
// -max-message-bytes.
const DefaultMaxMessageBytes = 1_000_000

// Config is everything an agent needs.
type Config struct {
	Project, Device string
	// DataDir holds the outbox and the models.
	DataDir string
	MQTT    mqttbus.Config
	// Sampling chooses the frames to upload.
	Sampling sampling.Config
	// PublicKeys verify model releases, by key id.
	PublicKeys map[string]ed25519.PublicKey
	// DeviceToken authenticates model downloads.
	DeviceToken string
	// RegistryURL is the origin of the API serving model artifacts (e.g.
	// http://curator:8080): the agent downloads only from it, whatever a release
	// message says. Default: http (https for a TLS broker) on port 8080 of the MQTT
	// broker's host.
	RegistryURL string
	// Model is a model file to start with when DataDir holds none.
	Model string
	// HTTPAddr serves /v1/infer, /v1/feedback, /v1/status and the ops endpoints
	// (empty: none).
	HTTPAddr string
	// HTTPTLS, when set, makes that server HTTPS only.
	HTTPTLS *tls.Config
	// WatchDir, when set, is a directory whose new images are inferred.
	WatchDir string
	// Sim, when its Dataset is set, generates frames.
	Sim SimConfig
	// OutboxBytes bounds the outbox (default 256 MiB).
	OutboxBytes int64
	// MaxPixels bounds the images the agent decodes (HTTP and watched directory),
	// checked from their header before decoding (default raster.DefaultMaxPixels).
	MaxPixels int
	// MaxImageSide resizes uploads to fit (default 640); JPEGQuality encodes them (95).
	MaxImageSide int
	JPEGQuality  int
	// StatusInterval between heartbeats (default 10s).
	StatusInterval time.Duration
	// MaxMessageBytes is the broker's message size limit: a larger example is refused
	// with ErrMessageTooLarge rather than queued (default 1,000,000, deploy's Mosquitto
	// message_size_limit and the bridge's limit).
	MaxMessageBytes int
	// MaxModelBytes bounds a model download (default 64 MiB).
	MaxModelBytes int64
	// Workers are the engines inferring in parallel (default 2).
	Workers int
	// InFlight is how many uploads may await their PUBACK at once (default 16).
	InFlight int
	// ConfirmTimeout is how long an upload the broker acknowledged waits for the bridge's
	// confirmation before it is sent again (default 30s).
	ConfirmTimeout time.Duration
	// Unconfirmed bounds the uploads awaiting their PUBACK or confirmation (default 1024).
	Unconfirmed int
	// NoConfirm deletes an upload on the broker's PUBACK instead of the bridge's
	// confirmation: for bridges that send none (a PUBACK is not durable: a broker that
	// dies loses what it acknowledged but had not forwarded).
	NoConfirm bool
	// Version is the agent's version, reported in examples and status.
	Version string
}

func (c *Config) defaults() error {
	if err := contract.CheckID("project", c.Project); err != nil {
		return err
	}
	if err := contract.CheckID("device", c.Device); err != nil {
		return err
	}
	if c.DataDir == "" {
		return fmt.Errorf("agent: a data dir is required")
	}
	if len(c.Sampling.Strategies) == 0 {
		c.Sampling = sampling.Default()
	}
	config.Default(&c.MaxPixels, raster.DefaultMaxPixels)
	config.Default(&c.MaxImageSide, 640)
	config.Default(&c.JPEGQuality, 95)
	config.Default(&c.StatusInterval, 10*time.Second)
	config.Default(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	config.Default(&c.MaxModelBytes, 64<<20)
	config.Default(&c.Workers, 2)
	config.Default(&c.InFlight, 16)
	config.Default(&c.ConfirmTimeout, 30*time.Second)
	config.Default(&c.Unconfirmed, 1024)
	c.Unconfirmed = max(c.Unconfirmed, c.InFlight)
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.RegistryURL == "" {
		u, err := DefaultRegistryURL(c.MQTT.URL)
		if err != nil {
			return err
		}
		c.RegistryURL = u
	}
	u, err := url.Parse(c.RegistryURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("agent: registry URL %q: want http(s)://host[:port][/prefix]", c.RegistryURL)
	}
	c.RegistryURL = strings.TrimRight(c.RegistryURL, "/")
	if c.MQTT.ClientID == "" {
		c.MQTT.ClientID = "agent-" + c.Project + "-" + c.Device
	}
	return nil
}

// Flags fill a Config from the command line.
type Flags struct {
	cfg      Config
	mqtt     *mqttbus.Flags
	tls      *config.ServerTLS
	sampling string
	keys     string
	// pseudo is the confident strategy the -pseudo-* flags describe.
	pseudo sampling.StrategyConfig
}

// RegisterFlags adds the agent's flags to fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{mqtt: mqttbus.RegisterFlags(fs), tls: config.RegisterServerTLS(fs)}
	c := &f.cfg
	host, _ := os.Hostname()
	fs.StringVar(&c.Project, "project", "digits", "project id")
	fs.StringVar(&c.Device, "device", sanitize(host), "device id")
	fs.StringVar(&c.DataDir, "data-dir", ".data/agent", "outbox and models")
	fs.StringVar(&f.sampling, "sampling", "", "sampling strategies (JSON file; default: built-in)")
	def := sampling.DefaultConfident()
	f.pseudo = def
	fs.Float64Var(&f.pseudo.Probability, "pseudo-share", def.Probability, "share of the frames a classifier is sure of sent with its prediction as pseudo-labels (never annotated; retrain's pseudo_weight trains on them; 0: none)")
	fs.Float64Var(&f.pseudo.Min, "pseudo-min-confidence", def.Min, "top-1 confidence a frame needs to be sent as a pseudo-label")
	fs.IntVar(&f.pseudo.Limits.PerMinute, "pseudo-per-minute", def.Limits.PerMinute, "pseudo-labels sent at most a minute")
	fs.IntVar(&f.pseudo.Limits.PerHour, "pseudo-per-hour", def.Limits.PerHour, "pseudo-labels sent at most an hour")
	fs.StringVar(&f.keys, "public-keys", "", "comma-separated PEM public keys that sign model releases")
	fs.StringVar(&c.DeviceToken, "device-token", "", "bearer token for model downloads")
	fs.StringVar(&c.RegistryURL, "registry-url", "", "the only origin model artifacts are downloaded from (default: http://<MQTT host>:8080, https for a TLS broker)")
	fs.StringVar(&c.Model, "model", "", "model file to start with when the data dir holds none")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8090", "inference API and ops endpoints (empty: off)")
	fs.StringVar(&c.WatchDir, "watch-dir", "", "infer images dropped into this directory")
	fs.StringVar(&c.Sim.Dataset, "sim", "", "simulate frames of a built-in dataset: mnist, digit-scenes, colour-objects[:size=WxH,classes=N] or colour-scenes[:…] (empty: off)")
	fs.StringVar(&c.Sim.Drift, "sim-drift", "none", "drift preset of simulated frames (pkg/drift: digit presets for digits, colour presets — new-site, white-balance, low-light, motion-blur, jpeg, far — for colour)")
	fs.Float64Var(&c.Sim.Rate, "sim-rate", 5, "simulated frames per second")
	fs.Float64Var(&c.Sim.OperatorShare, "sim-operator-share", 0.3, "share of wrong predictions the simulated operator flags")
	fs.Int64Var(&c.OutboxBytes, "outbox-bytes", 256<<20, "outbox disk budget")
	fs.IntVar(&c.MaxMessageBytes, "max-message-bytes", DefaultMaxMessageBytes, "the MQTT broker's message size limit: larger examples are refused, not queued")
	fs.IntVar(&c.MaxPixels, "max-pixels", raster.DefaultMaxPixels, "largest image decoded (width × height), checked from its header first")
	fs.IntVar(&c.MaxImageSide, "max-image-side", 640, "uploads are resized to fit this side")
	fs.IntVar(&c.JPEGQuality, "jpeg-quality", 95, "JPEG quality of uploads")
	fs.DurationVar(&c.ConfirmTimeout, "confirm-timeout", 30*time.Second, "an upload not confirmed by the bridge within this time is sent again")
	fs.IntVar(&c.Unconfirmed, "unconfirmed", 1024, "uploads awaiting the bridge's confirmation at most")
	fs.BoolVar(&c.NoConfirm, "no-confirm", false, "delete uploads on the broker's PUBACK (bridges without confirmations; not durable)")
	fs.DurationVar(&c.StatusInterval, "status-interval", 10*time.Second, "heartbeat interval")
	return f
}

// Config returns the Config the flags describe.
func (f *Flags) Config() (Config, error) {
	c := f.cfg
	var err error
	if c.MQTT, err = f.mqtt.Config("agent-" + c.Project + "-" + c.Device); err != nil {
		return c, err
	}
	if c.HTTPTLS, err = f.tls.Config(); err != nil {
		return c, err
	}
	c.Sampling = sampling.Default()
	if f.sampling != "" {
		if c.Sampling, err = sampling.Load(f.sampling); err != nil {
			return c, err
		}
	}
	// The -pseudo-* flags govern the confident strategy, a sampling file's too.
	c.Sampling = sampling.WithConfident(c.Sampling, f.pseudo)
	if err := c.Sampling.Validate(); err != nil {
		return c, fmt.Errorf("-pseudo-*: %w", err)
	}
	c.PublicKeys = map[string]ed25519.PublicKey{}
	for _, p := range strings.Split(f.keys, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		k, err := artifact.ReadPublicKey(p)
		if err != nil {
			return c, fmt.Errorf("public key %s: %w", p, err)
		}
		c.PublicKeys[artifact.KeyID(k)] = k
	}
	return c, nil
}

// DefaultRegistryURL derives the registry origin from the MQTT broker URL: the same
// host on port 8080, https when the broker speaks TLS (ssl://, tls://, mqtts://, wss://).
func DefaultRegistryURL(mqttURL string) (string, error) {
	if mqttURL == "" {
		return "http://127.0.0.1:8080", nil
	}
	u, err := url.Parse(mqttURL)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("agent: cannot derive a registry URL from MQTT URL %q: set the registry URL", mqttURL)
	}
	scheme := "http"
	switch u.Scheme {
	case "ssl", "tls", "mqtts", "wss":
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(u.Hostname(), "8080"), nil
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "device"
	}
	return strings.TrimLeft(b.String(), "-")
}

// Command is the edge-agent binary's body for servicemain: the agent's flags, then the
// agent until the context ends. Tests that run agents as processes of their own (the
// fault suite) run it as the binary does.
func Command(fs *flag.FlagSet) servicemain.RunFunc {
	f := RegisterFlags(fs)
	return func(ctx context.Context, log *zap.Logger) error {
		cfg, err := f.Config()
		if err != nil {
			return err
		}
		a, err := New(cfg, nil, log)
		if err != nil {
			return err
		}
		return a.Run(ctx)
	}
}
