// Package bridge moves edge traffic between MQTT and Kafka without losing any of it.
//
// Examples and device status arrive on MQTT (QoS 1, shared subscription, manual
// acknowledgement through an mqttbus.Router). Each is validated; a valid one is written
// to Kafka with acks=all, an invalid one (a *message.Reject) to the dead-letter topic
// with its reason, and the Router acks it only then. While Kafka is down the Retry
// middleware holds the message, so nothing is acked and the broker keeps the backlog.
// Once Kafka has an example (or the dead-letter topic took it), the bridge confirms it to
// its device on edgeloop/v1/{project}/{device}/acks: the agent deletes an example from
// its outbox only then, since the broker's PUBACK is not durable.
// In the other direction, model releases on Kafka become retained MQTT messages that
// devices follow. The handlers are plain message.Handlers composed with the same
// middleware on both transports; none of them acks.
package bridge

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/retry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Options configure a Bridge; the zero value is a good default.
type Options struct {
	Limits Limits
	// ShareGroup names the MQTT shared subscription (default "bridge"); bridges of one
	// deployment share it so that each message goes to one of them ("-": a plain
	// subscription, for brokers without $share).
	ShareGroup string
	// Router bounds the messages in flight and the drain at shutdown.
	Router mqttbus.RouterOptions
	// ReleaseGroup is the Kafka consumer group of the release forwarder (default
	// "bridge-releases").
	ReleaseGroup string
	// NoConfirm sends no confirmations to the devices (agents run with -no-confirm).
	NoConfirm bool
}

// Bridge connects one MQTT client and one Kafka producer.
type Bridge struct {
	mq     *mqttbus.Client
	prod   *kafkabus.Producer
	kcfg   kafkabus.Config
	log    *zap.Logger
	m      *metrics
	o      Options
	router *mqttbus.Router
	conf   *confirmer
	clock  releaseClock
}

// New returns a Bridge; connect an MQTT client with its Subscriptions, Attach it, then
// Run.
func New(prod *kafkabus.Producer, kcfg kafkabus.Config, reg prometheus.Registerer, log *zap.Logger, o Options) *Bridge {
	if o.ShareGroup == "" {
		o.ShareGroup = "bridge"
	}
	if o.ReleaseGroup == "" {
		o.ReleaseGroup = "bridge-releases"
	}
	b := &Bridge{prod: prod, kcfg: kcfg, log: log, m: newMetrics(reg), o: o, router: mqttbus.NewRouter(o.Router, log),
		conf: newConfirmer(reg, log)}
	b.conf.publish = publisher(func() *mqttbus.Client { return b.mq })
	return b
}

// Subscriptions are the MQTT subscriptions of the bridge; pass them in
// mqttbus.Config.Subscriptions so that nothing queued for the session is missed.
func (b *Bridge) Subscriptions() []mqttbus.Subscription {
	examples, status := contract.ExamplesFilter, contract.StatusFilter
	if b.o.ShareGroup != "-" {
		examples, status = contract.Shared(b.o.ShareGroup, examples), contract.Shared(b.o.ShareGroup, status)
	}
	forward := b.pipeline("examples", b.forwardExample)
	if !b.o.NoConfirm {
		forward = b.conf.middleware(forward)
	}
	return []mqttbus.Subscription{
		{Filter: examples, QoS: 1, Handler: b.router.Handler(forward)},
		{Filter: status, QoS: 1, Handler: b.router.Handler(b.pipeline("status", b.forwardStatus))},
		// Not shared: each bridge learns the retained releases, which never go backwards.
		{Filter: releaseFilter, QoS: 1, Handler: b.clock.retained},
		{Filter: siteReleaseFilter, QoS: 1, Handler: b.clock.retained},
	}
}

// pipeline composes a forwarding handler with the bridge's middleware: retry while
// Kafka is down (outermost, so that a dead letter that cannot be written is retried
// too), dead letter on a *message.Reject, and the metrics of kind.
func (b *Bridge) pipeline(kind string, h message.Handler) message.Handler {
	return message.Chain(h,
		b.count(kind),
		message.Retry(retry.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}, b.log),
		message.DeadLetter(b.prod, b.kcfg.Topic(contract.TopicDeadLetter), "bridge", b.log, func(reason string) {
			b.m.deadLettered.WithLabelValues(reason).Inc()
		}),
	)
}

// count is the middleware that keeps the bridge's message metrics.
func (b *Bridge) count(kind string) message.Middleware {
	return func(h message.Handler) message.Handler {
		return func(ctx context.Context, m *message.Message) error {
			b.m.received.WithLabelValues(kind).Inc()
			b.m.inFlight.Inc()
			defer b.m.inFlight.Dec()
			return h(ctx, m)
		}
	}
}

// Attach gives the bridge its MQTT client, connected with Subscriptions.
func (b *Bridge) Attach(mq *mqttbus.Client) { b.mq = mq }

// Run forwards until ctx ends, then drains what is in flight.
func (b *Bridge) Run(ctx context.Context) error {
	relCtx, relCancel := context.WithCancel(ctx)
	relDone := make(chan error, 1)
	go func() { relDone <- b.forwardReleases(relCtx) }()
	confStop, confDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(confDone)
		b.conf.run(context.WithoutCancel(ctx), confStop)
	}()

	var relErr error
	select {
	case <-ctx.Done():
	case relErr = <-relDone:
		relDone = nil
	}
	relCancel()
	b.router.Drain()
	close(confStop) // after the drain: what it forwarded is confirmed too
	<-confDone
	if relDone != nil {
		relErr = <-relDone
	}
	return relErr
}

// keyByProject keys m by the project its topic names ("unknown" when it names none),
// so that a dead letter lands in the project's partition.
func keyByProject(m *message.Message) {
	project := "unknown"
	if dt, err := contract.ParseDeviceTopic(m.Topic); err == nil {
		project = dt.Project
	}
	m.Key = []byte(project)
}

// forwardExample validates an example and writes it to edgeloop.examples.v1.
func (b *Bridge) forwardExample(ctx context.Context, m *message.Message) error {
	keyByProject(m)
	ex, rej := ValidateExample(m.Topic, m.Value, b.o.Limits)
	if rej != nil {
		return rej
	}
	return b.produce(ctx, "examples", contract.TopicExamples, &message.Message{Key: []byte(ex.GetProject()), Value: m.Value,
		Headers: map[string]string{"example-id": ex.GetId()}})
}

// forwardStatus validates a device status and writes it to edgeloop.devices.v1; an empty
// retained status (a device clearing it) has nothing to forward.
func (b *Bridge) forwardStatus(ctx context.Context, m *message.Message) error {
	keyByProject(m)
	if len(m.Value) == 0 {
		return nil
	}
	st, rej := ValidateStatus(m.Topic, m.Value, b.o.Limits)
	if rej != nil {
		return rej
	}
	return b.produce(ctx, "status", contract.TopicDevices, &message.Message{Key: []byte(st.GetProject()), Value: m.Value})
}

// produce writes out to topic with acks=all and keeps the produce metrics.
func (b *Bridge) produce(ctx context.Context, kind, topic string, out *message.Message) error {
	start := time.Now()
	if err := b.prod.Publish(ctx, b.kcfg.Topic(topic), out); err != nil {
		b.m.produceErrors.Inc()
		return err
	}
	b.m.produce.Observe(time.Since(start).Seconds())
	b.m.forwarded.WithLabelValues(kind).Inc()
	return nil
}

// forwardReleases turns each ModelRelease on Kafka into the retained MQTT release of its
// project, committing the offset only after the broker's PUBACK.
func (b *Bridge) forwardReleases(ctx context.Context) error {
	c, err := kafkabus.NewConsumer(b.kcfg, b.o.ReleaseGroup, b.kcfg.Topic(contract.TopicModels), kafkabus.ConsumerOptions{}, b.log)
	if err != nil {
		return err
	}
	defer c.Close()
	h := message.Chain(b.publishRelease,
		message.Retry(retry.Backoff{Max: 5 * time.Second}, b.log),
		message.DeadLetter(b.prod, b.kcfg.Topic(contract.TopicDeadLetter), "bridge", b.log, func(reason string) {
			b.m.deadLettered.WithLabelValues(reason).Inc()
		}),
	)
	err = c.Run(ctx, h)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (b *Bridge) publishRelease(ctx context.Context, m *message.Message) error {
	rel := &edgeloopv1.ModelRelease{}
	if err := proto.Unmarshal(m.Value, rel); err != nil {
		return message.Rejectf(contract.ReasonBadProtobuf, "not an edgeloop.v1.ModelRelease: %w", err)
	}
	if err := contract.CheckID("project", rel.GetProject()); err != nil {
		return &message.Reject{Reason: contract.ReasonBadID, Err: err}
	}
	if rel.GetSite() != "" {
		if err := contract.CheckID("site (device)", rel.GetSite()); err != nil {
			return &message.Reject{Reason: contract.ReasonBadID, Err: err}
		}
	}
	if b.clock.stale(rel) {
		b.m.staleReleases.Inc()
		b.log.Warn("release older than the retained one not published", zap.String("project", rel.GetProject()),
			zap.Int64("version", rel.GetVersion()), zap.Time("released_at", rel.GetReleasedAt().AsTime()))
		return nil
	}
	if err := b.mq.Publish(ctx, releaseTopic(rel), 1, true, m.Value); err != nil {
		return err
	}
	b.clock.saw(rel)
	b.m.releases.Inc()
	b.log.Info("release published", zap.String("project", rel.GetProject()), zap.Int64("version", rel.GetVersion()),
		zap.Bool("rollback", rel.GetRollback()), zap.String("site", rel.GetSite()))
	return nil
}
