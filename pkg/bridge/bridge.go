// Package bridge moves edge traffic between MQTT and Kafka without losing any of it.
//
// Examples and device status arrive on MQTT (QoS 1, shared subscription, manual
// acknowledgement). Each is validated; a valid one is written to Kafka with acks=all and
// only then acked on MQTT, an invalid one is written to the dead-letter topic with its
// reason and then acked. While Kafka is down nothing is acked, so the broker keeps the
// messages. In the other direction, model releases on Kafka become retained MQTT
// messages that devices follow.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/retry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Options configure a Bridge; the zero value is a good default.
type Options struct {
	Limits Limits
	// ShareGroup names the MQTT shared subscription (default "bridge"); bridges of one
	// deployment share it so that each message goes to one of them.
	ShareGroup string
	// MaxInFlight caps messages being handled at once (default 512).
	MaxInFlight int
	// DrainTimeout bounds how long shutdown waits for messages in flight (default 15s);
	// what is still unacked then is redelivered by the broker later.
	DrainTimeout time.Duration
	// ReleaseGroup is the Kafka consumer group of the release forwarder (default
	// "bridge-releases").
	ReleaseGroup string
}

// Bridge connects one MQTT client and one Kafka producer.
type Bridge struct {
	mq      *mqttbus.Client
	prod    *kafkabus.Producer
	kcfg    kafkabus.Config
	log     *zap.Logger
	m       *metrics
	o       Options
	sem     chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	closing bool
	// handling is cancelled when the drain timeout passes.
	handling context.Context
	stop     context.CancelFunc
}

// New returns a Bridge; connect an MQTT client with its Subscriptions, Attach it, then
// Run.
func New(prod *kafkabus.Producer, kcfg kafkabus.Config, reg prometheus.Registerer, log *zap.Logger, o Options) *Bridge {
	if o.ShareGroup == "" {
		o.ShareGroup = "bridge"
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 512
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 15 * time.Second
	}
	if o.ReleaseGroup == "" {
		o.ReleaseGroup = "bridge-releases"
	}
	handling, stop := context.WithCancel(context.Background())
	return &Bridge{
		prod: prod, kcfg: kcfg, log: log, m: newMetrics(reg), o: o,
		sem: make(chan struct{}, o.MaxInFlight), handling: handling, stop: stop,
	}
}

// Subscriptions are the MQTT subscriptions of the bridge; pass them in
// mqttbus.Config.Subscriptions so that nothing queued for the session is missed.
func (b *Bridge) Subscriptions() []mqttbus.Subscription {
	prefix := ""
	if b.o.ShareGroup != "-" {
		prefix = "$share/" + b.o.ShareGroup + "/"
	}
	return []mqttbus.Subscription{
		{Filter: prefix + "edgeloop/v1/+/+/examples", QoS: 1, Handler: b.onExample},
		{Filter: prefix + "edgeloop/v1/+/+/status", QoS: 1, Handler: b.onStatus},
	}
}

// Attach gives the bridge its MQTT client, connected with Subscriptions.
func (b *Bridge) Attach(mq *mqttbus.Client) { b.mq = mq }

// Run forwards until ctx ends, then drains what is in flight.
func (b *Bridge) Run(ctx context.Context) error {
	relCtx, relCancel := context.WithCancel(ctx)
	relDone := make(chan error, 1)
	go func() { relDone <- b.forwardReleases(relCtx) }()

	var relErr error
	select {
	case <-ctx.Done():
	case relErr = <-relDone:
		relDone = nil
	}
	relCancel()
	b.drain()
	if relDone != nil {
		relErr = <-relDone
	}
	return relErr
}

// drain stops taking new messages and waits for those in flight.
func (b *Bridge) drain() {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		b.log.Info("bridge drained")
	case <-time.After(b.o.DrainTimeout):
		b.log.Warn("drain timeout: unacked messages will be redelivered", zap.Duration("timeout", b.o.DrainTimeout))
		b.stop()
		<-done
	}
}

// begin registers a message in flight; false when shutting down (the message stays
// unacked and is redelivered).
func (b *Bridge) begin() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return false
	}
	b.wg.Add(1)
	return true
}

func (b *Bridge) onExample(msg mqttbus.Message) { b.handle(msg, "examples") }
func (b *Bridge) onStatus(msg mqttbus.Message)  { b.handle(msg, "status") }

func (b *Bridge) handle(msg mqttbus.Message, kind string) {
	if !b.begin() {
		return
	}
	defer b.wg.Done()
	select {
	case b.sem <- struct{}{}:
	case <-b.handling.Done():
		return
	}
	defer func() { <-b.sem }()
	b.m.received.WithLabelValues(kind).Inc()
	b.m.inFlight.Inc()
	defer b.m.inFlight.Dec()

	out, project, rej := b.route(msg, kind)
	if out == nil && rej == nil {
		msg.Ack() // an empty retained status: a device clearing its status; nothing to forward
		return
	}
	if rej != nil {
		b.log.Warn("message refused", zap.String("topic", msg.Topic()), zap.String("reason", rej.Reason), zap.String("detail", rej.Detail))
		out = b.deadLetter(msg, project, rej)
	}
	err := b.produce(out)
	if rej == nil && errors.Is(err, kafka.MessageSizeTooLarge) {
		// Kafka will never take it: refuse it rather than retry forever.
		rej = &Rejection{Reason: ReasonTooLarge, Detail: fmt.Sprintf("Kafka refused %d bytes: %v", len(msg.Payload()), err)}
		b.log.Warn("message refused", zap.String("topic", msg.Topic()), zap.String("reason", rej.Reason), zap.String("detail", rej.Detail))
		err = b.produce(b.deadLetter(msg, project, rej))
	}
	if err != nil {
		// Only when draining timed out: leave it unacked for redelivery.
		b.log.Warn("not forwarded before shutdown; the broker will redeliver", zap.String("topic", msg.Topic()), zap.Error(err))
		return
	}
	if rej != nil {
		b.m.deadLettered.WithLabelValues(rej.Reason).Inc()
	} else {
		b.m.forwarded.WithLabelValues(kind).Inc()
	}
	msg.Ack()
}

// route validates msg and returns the Kafka message to write, or a rejection.
func (b *Bridge) route(msg mqttbus.Message, kind string) (*kafka.Message, string, *Rejection) {
	project := "unknown"
	if dt, err := contract.ParseDeviceTopic(msg.Topic()); err == nil {
		project = dt.Project
	}
	switch kind {
	case "examples":
		ex, rej := ValidateExample(msg.Topic(), msg.Payload(), b.o.Limits)
		if rej != nil {
			return nil, project, rej
		}
		return &kafka.Message{Topic: b.kcfg.Topic(contract.TopicExamples), Key: []byte(ex.GetProject()), Value: msg.Payload(),
			Headers: []kafka.Header{{Key: "example-id", Value: []byte(ex.GetId())}}}, project, nil
	default:
		if len(msg.Payload()) == 0 {
			return nil, project, nil
		}
		st, rej := ValidateStatus(msg.Topic(), msg.Payload(), b.o.Limits)
		if rej != nil {
			return nil, project, rej
		}
		return &kafka.Message{Topic: b.kcfg.Topic(contract.TopicDevices), Key: []byte(st.GetProject()), Value: msg.Payload()}, project, nil
	}
}

// maxDeadLetterPayload keeps a dead letter under Kafka's message size limit.
const maxDeadLetterPayload = 256 << 10

func (b *Bridge) deadLetter(msg mqttbus.Message, project string, rej *Rejection) *kafka.Message {
	payload := msg.Payload()
	if len(payload) > maxDeadLetterPayload {
		payload = payload[:maxDeadLetterPayload]
	}
	// Marshalling a message built here from valid strings and bytes cannot fail.
	v, _ := proto.Marshal(&edgeloopv1.DeadLetter{
		Service: "bridge", Source: "mqtt:" + msg.Topic(), Reason: rej.Reason, Detail: rej.Detail,
		Payload: payload, ReceivedAt: timestamppb.Now(),
	})
	return &kafka.Message{Topic: b.kcfg.Topic(contract.TopicDeadLetter), Key: []byte(project), Value: v}
}

// produce writes m, retrying with backoff for as long as it takes (Kafka down), unless
// the drain timeout passed.
func (b *Bridge) produce(m *kafka.Message) error {
	start := time.Now()
	err := retry.Do(b.handling, retry.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second},
		func(ctx context.Context) error {
			err := b.prod.Produce(ctx, *m)
			if errors.Is(err, kafka.MessageSizeTooLarge) {
				return retry.Permanent(err)
			}
			return err
		},
		func(err error, attempt int, d time.Duration) {
			b.m.produceErrors.Inc()
			if attempt%20 == 0 {
				b.log.Warn("kafka produce failed; holding the MQTT ack and retrying", zap.String("topic", m.Topic),
					zap.Int("attempt", attempt+1), zap.Duration("backoff", d), zap.Error(err))
			}
		})
	if err == nil {
		b.m.produce.Observe(time.Since(start).Seconds())
	}
	return err
}

// forwardReleases turns each ModelRelease on Kafka into the retained MQTT release of its
// project, committing the offset only after the broker's PUBACK.
func (b *Bridge) forwardReleases(ctx context.Context) error {
	c, err := kafkabus.NewConsumer(b.kcfg, b.o.ReleaseGroup, b.kcfg.Topic(contract.TopicModels), kafkabus.ConsumerOptions{}, b.log)
	if err != nil {
		return err
	}
	defer c.Close()
	h := kafkabus.Chain(b.publishRelease,
		kafkabus.Retry(retry.Backoff{Max: 5 * time.Second}, b.log),
		kafkabus.DeadLetter(b.prod, b.kcfg.Topic(contract.TopicDeadLetter), "bridge", b.log, func(reason string) {
			b.m.deadLettered.WithLabelValues(reason).Inc()
		}),
	)
	err = c.Run(ctx, h)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (b *Bridge) publishRelease(ctx context.Context, m kafka.Message) error {
	rel := &edgeloopv1.ModelRelease{}
	if err := proto.Unmarshal(m.Value, rel); err != nil {
		return kafkabus.Rejectf(ReasonBadProtobuf, err)
	}
	if err := contract.CheckID("project", rel.GetProject()); err != nil {
		return kafkabus.Rejectf(ReasonBadID, err)
	}
	if err := b.mq.Publish(ctx, contract.ReleaseTopic(rel.GetProject()), 1, true, m.Value); err != nil {
		return err
	}
	b.m.releases.Inc()
	b.log.Info("release published", zap.String("project", rel.GetProject()), zap.Int64("version", rel.GetVersion()),
		zap.Bool("rollback", rel.GetRollback()))
	return nil
}
