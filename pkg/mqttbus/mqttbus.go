// Package mqttbus is edgeloop's MQTT client on eclipse/paho.mqtt.golang: a persistent
// session (CleanSession=false), QoS 1, manual acknowledgement so that a message is acked
// only after its effect is durable, reconnection with backoff, subscriptions restored on
// every reconnect, and publish confirmations that are trusted only when they arrived on
// the connection that sent the message (paho.mqtt.golang#563).
package mqttbus

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/retry"
)

// Config says how to reach the broker and who we are.
type Config struct {
	// URL is tcp://host:port, ssl://host:port (TLS) or ws://host:port/path.
	URL string
	// ClientID must be stable across restarts for the session to persist.
	ClientID string
	// Username and Password authenticate the client.
	Username, Password string
	// TLS configures ssl:// connections.
	TLS *tls.Config
	// CleanSession drops the broker-side session at connect. Keep it false: then the
	// broker keeps the subscriptions and queues QoS 1 messages while we are away.
	CleanSession bool
	// KeepAlive is the MQTT keep-alive (default 15s).
	KeepAlive time.Duration
	// MaxReconnectInterval caps the reconnect backoff (default 10s).
	MaxReconnectInterval time.Duration
	// Will, when not nil, is the last will the broker publishes if we vanish.
	Will *Will
	// ManualAck turns off paho's automatic acknowledgement: handlers call Message.Ack.
	ManualAck bool
	// Subscriptions are routed before the client connects, so that messages the broker
	// queued for a persistent session, which it sends right after CONNACK, reach their
	// handler instead of being left unacknowledged.
	Subscriptions []Subscription
}

// Subscription is a topic filter, its QoS and its handler.
type Subscription struct {
	Filter  string
	QoS     byte
	Handler Handler
}

// Will is an MQTT last will.
type Will struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// Flags are the command-line settings of a Config.
type Flags struct {
	url, user, password string
	tls                 *config.TLS
}

// RegisterFlags adds the -mqtt-* flags to fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.url, "mqtt-url", "tcp://127.0.0.1:1883", "MQTT broker URL (tcp://, ssl:// or ws://)")
	fs.StringVar(&f.user, "mqtt-user", "", "MQTT user name")
	fs.StringVar(&f.password, "mqtt-password", "", "MQTT password")
	f.tls = config.RegisterTLS(fs, "mqtt")
	return f
}

// Config builds the Config the flags describe.
func (f *Flags) Config(clientID string) (Config, error) {
	t, err := f.tls.Config()
	if err != nil {
		return Config{}, fmt.Errorf("mqtt: %w", err)
	}
	return Config{URL: f.url, ClientID: clientID, Username: f.user, Password: f.password, TLS: t}, nil
}

// Message is one received message. With ManualAck, call Ack once its effect is durable;
// a message never acked is redelivered after a reconnect.
type Message interface {
	Topic() string
	Payload() []byte
	Duplicate() bool
	Ack()
}

// Handler receives messages of one subscription. It may block: it runs on its own
// goroutine, and the broker's in-flight window bounds how many run at once.
type Handler func(Message)

// Client is a connected MQTT client.
type Client struct {
	c    mqtt.Client
	log  *zap.Logger
	mu   sync.Mutex
	subs map[string]Subscription
	// epoch changes on every connection loss.
	epoch atomic.Uint64
	// ready is set once Connect subscribed; reconnections resubscribe from then on.
	ready atomic.Bool
}

// Connect connects to the broker, retrying with backoff until ctx ends.
func Connect(ctx context.Context, cfg Config, log *zap.Logger) (*Client, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("mqtt: a client id is required for a persistent session")
	}
	config.Default(&cfg.KeepAlive, 15*time.Second)
	config.Default(&cfg.MaxReconnectInterval, 10*time.Second)
	cl := &Client{log: log.With(zap.String("mqtt_client", cfg.ClientID)), subs: map[string]Subscription{}}
	for _, s := range cfg.Subscriptions {
		cl.subs[s.Filter] = s
	}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetCleanSession(cfg.CleanSession).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(cfg.KeepAlive).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(cfg.MaxReconnectInterval).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetOrderMatters(false).
		SetAutoAckDisabled(cfg.ManualAck).
		SetOnConnectHandler(cl.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			cl.epoch.Add(1)
			cl.log.Warn("mqtt connection lost", zap.Error(err))
		}).
		SetReconnectingHandler(func(_ mqtt.Client, _ *mqtt.ClientOptions) {
			cl.log.Debug("mqtt reconnecting")
		})
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	if cfg.Will != nil {
		opts.SetBinaryWill(cfg.Will.Topic, cfg.Will.Payload, cfg.Will.QoS, cfg.Will.Retained)
	}
	cl.c = mqtt.NewClient(opts)
	for _, s := range cfg.Subscriptions {
		cl.c.AddRoute(routeTopic(s.Filter), wrap(s.Handler))
	}
	// With ConnectRetry the token completes only once connected (or Disconnect).
	if err := wait(ctx, cl.c.Connect()); err != nil {
		cl.c.Disconnect(0)
		return nil, fmt.Errorf("mqtt connect %s: %w", cfg.URL, err)
	}
	// Subscribe before returning, so that the caller can rely on the subscriptions. A
	// connection lost meanwhile comes back by itself: subscribe again once it has.
	err := retry.Do(ctx, retry.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second}, func(ctx context.Context) error {
		for _, s := range cfg.Subscriptions {
			if err := wait(ctx, cl.c.Subscribe(s.Filter, s.QoS, wrap(s.Handler))); err != nil {
				return fmt.Errorf("mqtt subscribe %s: %w", s.Filter, err)
			}
		}
		return nil
	}, func(err error, attempt int, d time.Duration) {
		cl.log.Warn("mqtt subscribe failed; retrying", zap.Error(err), zap.Int("attempt", attempt+1), zap.Duration("backoff", d))
	})
	if err != nil {
		cl.c.Disconnect(0)
		return nil, err
	}
	cl.ready.Store(true)
	return cl, nil
}

func (c *Client) onConnect(mc mqtt.Client) {
	c.log.Info("mqtt connected")
	if !c.ready.Load() {
		return // the first connection: Connect subscribes and waits for the acks
	}
	c.mu.Lock()
	subs := make(map[string]Subscription, len(c.subs))
	for f, s := range c.subs {
		subs[f] = s
	}
	c.mu.Unlock()
	for filter, s := range subs {
		tok := mc.Subscribe(filter, s.QoS, wrap(s.Handler))
		go func(filter string) {
			if tok.WaitTimeout(10*time.Second) && tok.Error() != nil {
				c.log.Error("mqtt resubscribe failed", zap.String("filter", filter), zap.Error(tok.Error()))
			}
		}(filter)
	}
}

// routeTopic is the filter paho's router matches for a subscription: Subscribe strips
// "$share/{group}/", so a route added beforehand must too, or messages are dispatched
// twice.
func routeTopic(filter string) string {
	if strings.HasPrefix(filter, "$share/") {
		if parts := strings.SplitN(filter, "/", 3); len(parts) == 3 {
			return parts[2]
		}
	}
	return filter
}

func wrap(h Handler) mqtt.MessageHandler {
	return func(_ mqtt.Client, m mqtt.Message) { h(m) }
}

// Subscribe subscribes to filter and keeps the subscription across reconnects. For a
// persistent session that must not miss queued messages, list it in
// Config.Subscriptions instead.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte, h Handler) error {
	c.mu.Lock()
	c.subs[filter] = Subscription{Filter: filter, QoS: qos, Handler: h}
	c.mu.Unlock()
	if err := wait(ctx, c.c.Subscribe(filter, qos, wrap(h))); err != nil {
		return fmt.Errorf("mqtt subscribe %s: %w", filter, err)
	}
	return nil
}

// Unsubscribe stops receiving messages from filter.
func (c *Client) Unsubscribe(ctx context.Context, filter string) error {
	c.mu.Lock()
	delete(c.subs, filter)
	c.mu.Unlock()
	return wait(ctx, c.c.Unsubscribe(filter))
}

// ErrConnectionChanged says a publish completed, but not on the connection that sent it:
// the broker may never have received it, so the caller must treat it as not delivered.
var ErrConnectionChanged = errors.New("mqtt: connection changed while the publish was in flight")

// Publish sends payload and, for QoS 1, waits for the broker's PUBACK. It returns nil only
// if the PUBACK arrived on the same connection that sent the message.
func (c *Client) Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error {
	before := c.epoch.Load()
	if !c.c.IsConnectionOpen() {
		return fmt.Errorf("mqtt publish %s: not connected", topic)
	}
	if err := wait(ctx, c.c.Publish(topic, qos, retained, payload)); err != nil {
		return fmt.Errorf("mqtt publish %s: %w", topic, err)
	}
	if qos > 0 && c.epoch.Load() != before {
		return fmt.Errorf("mqtt publish %s: %w", topic, ErrConnectionChanged)
	}
	return nil
}

// Connected reports whether the client is connected now.
func (c *Client) Connected() bool { return c.c.IsConnectionOpen() }

// Disconnect closes the connection, waiting up to quiesce for work in flight.
func (c *Client) Disconnect(quiesce time.Duration) {
	c.c.Disconnect(uint(quiesce / time.Millisecond))
}

func wait(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}
