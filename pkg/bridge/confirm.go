package bridge

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// A broker's PUBACK is not durable: Mosquitto acknowledges before it persists, and the
// backlog beyond the bridges' in-flight windows lives only in its memory. So the agent
// keeps an example in its outbox until the bridge confirms it, after Kafka acknowledged
// it (or the dead-letter topic took it), on the device's acks topic.

const (
	// confirmMaxIDs caps the ids of one confirmation message.
	confirmMaxIDs = 256
	// confirmPublishers bounds the confirmation publishes awaiting their PUBACK.
	confirmPublishers = 32
)

// confirmation is one example to confirm to the device that published it.
type confirmation struct {
	topic string // the device's acks topic
	id    string
}

// confirmer gathers confirmations per device and publishes them as
// edgeloopv1.ExampleAck, QoS 1, so that an agent's persistent session gets them even
// when it was away. A confirmation that cannot be published is dropped: the agent sends
// the example again after its confirmation timeout, and the curator is idempotent on the
// example id.
type confirmer struct {
	in      chan confirmation
	log     *zap.Logger
	sent    prometheus.Counter
	failed  prometheus.Counter
	publish func(ctx context.Context, topic string, payload []byte) error
}

func newConfirmer(reg prometheus.Registerer, log *zap.Logger) *confirmer {
	c := &confirmer{
		in:  make(chan confirmation, 4096),
		log: log,
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeloop_bridge_confirmations_total", Help: "Examples confirmed to their device after Kafka acknowledged them.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeloop_bridge_confirmation_errors_total", Help: "Confirmation messages not acknowledged by the broker (the device resends those examples).",
		}),
	}
	reg.MustRegister(c.sent, c.failed)
	return c
}

// middleware confirms each example whose handler succeeded: forwarded to Kafka with
// acks=all, or refused to the dead-letter topic (a refused example is not sent again).
func (c *confirmer) middleware(h message.Handler) message.Handler {
	return func(ctx context.Context, m *message.Message) error {
		if err := h(ctx, m); err != nil {
			return err
		}
		dt, err := contract.ParseDeviceTopic(m.Topic)
		id := exampleID(m.Value)
		if err != nil || id == "" {
			return nil // nobody to confirm to, or nothing to name
		}
		select {
		case c.in <- confirmation{topic: contract.AcksTopic(dt.Project, dt.Device), id: id}:
		case <-ctx.Done():
		}
		return nil
	}
}

// exampleID reads field 1 (id) of an edgeloopv1.Example without decoding the rest, so
// that a refused example is confirmed too; "" when the payload has none.
func exampleID(b []byte) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || len(v) > 1024 {
				return ""
			}
			return string(v)
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return ""
		}
		b = b[n:]
	}
	return ""
}

// run publishes what arrives on c.in until stop is closed, c.in is empty and every
// publish has ended. Each device has at most one confirmation publish in flight: ids
// that arrive meanwhile wait and go together in the next one. So a lone example is
// confirmed at once, and under load the confirmations of a device batch up by
// themselves, one message per round trip to the broker.
func (c *confirmer) run(ctx context.Context, stop <-chan struct{}) {
	sem := make(chan struct{}, confirmPublishers)
	done := make(chan string) // a topic whose publish ended
	pending := map[string][]string{}
	busy := map[string]bool{}
	send := func(topic string) {
		ids := pending[topic]
		n := min(len(ids), confirmMaxIDs)
		// Marshalling a list of strings cannot fail.
		payload, _ := proto.Marshal(&edgeloopv1.ExampleAck{Ids: ids[:n]})
		if n == len(ids) {
			delete(pending, topic)
		} else {
			pending[topic] = ids[n:]
		}
		busy[topic] = true
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := c.publish(pctx, topic, payload); err != nil {
				c.failed.Inc()
				c.log.Debug("confirmation not published; the device will resend", zap.String("topic", topic), zap.Error(err))
			} else {
				c.sent.Add(float64(n))
			}
			done <- topic
		}()
	}
	add := func(cf confirmation) {
		pending[cf.topic] = append(pending[cf.topic], cf.id)
		if !busy[cf.topic] {
			send(cf.topic)
		}
	}
	ended := func(topic string) {
		delete(busy, topic)
		if len(pending[topic]) > 0 {
			send(topic)
		}
	}
	for stop != nil {
		select {
		case cf := <-c.in:
			add(cf)
		case topic := <-done:
			ended(topic)
		case <-stop:
			stop = nil
		}
	}
	for { // stopping: what is queued, then the publishes in flight
		select {
		case cf := <-c.in:
			add(cf)
			continue
		default:
		}
		if len(busy) == 0 {
			return
		}
		ended(<-done)
	}
}

// publisher publishes on the bridge's MQTT client, QoS 1, not retained.
func publisher(mq func() *mqttbus.Client) func(ctx context.Context, topic string, payload []byte) error {
	return func(ctx context.Context, topic string, payload []byte) error {
		return mq().Publish(ctx, topic, 1, false, payload)
	}
}
