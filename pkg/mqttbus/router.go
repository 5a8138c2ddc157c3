package mqttbus

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/message"
)

// Router runs message.Handlers for MQTT subscriptions made with ManualAck: a message
// is acknowledged (PUBACK) only when its handler returned nil; otherwise it stays
// unacknowledged and the broker redelivers it after a reconnect. The Router bounds the
// messages in flight and drains them on shutdown. It is the MQTT twin of
// kafkabus.Consumer, so that both transports treat a handler's result the same way.
type Router struct {
	log          *zap.Logger
	sem          chan struct{}
	drainTimeout time.Duration

	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup
	// handling is the handlers' context; it ends when the drain timeout passes.
	handling context.Context
	stop     context.CancelFunc
}

// RouterOptions tune a Router; the zero value is a good default.
type RouterOptions struct {
	// MaxInFlight caps messages handled at once (default 512).
	MaxInFlight int
	// DrainTimeout bounds how long Drain waits for messages in flight (default 15s);
	// what is still unacknowledged then is redelivered by the broker later.
	DrainTimeout time.Duration
}

// NewRouter returns a Router.
func NewRouter(o RouterOptions, log *zap.Logger) *Router {
	config.Default(&o.MaxInFlight, 512)
	config.Default(&o.DrainTimeout, 15*time.Second)
	handling, stop := context.WithCancel(context.Background())
	return &Router{log: log, sem: make(chan struct{}, o.MaxInFlight), drainTimeout: o.DrainTimeout, handling: handling, stop: stop}
}

// Handler adapts h to a subscription's Handler.
func (r *Router) Handler(h message.Handler) Handler {
	return func(msg Message) {
		if !r.begin() {
			return // shutting down: left unacknowledged, redelivered later
		}
		defer r.wg.Done()
		select {
		case r.sem <- struct{}{}:
		case <-r.handling.Done():
			return
		}
		defer func() { <-r.sem }()
		m := &message.Message{Topic: msg.Topic(), Value: msg.Payload(), Origin: "mqtt:" + msg.Topic()}
		if err := h(r.handling, m); err != nil {
			if r.handling.Err() == nil {
				r.log.Warn("message not handled; the broker will redeliver it", zap.String("origin", m.Origin), zap.Error(err))
			}
			return
		}
		msg.Ack()
	}
}

// begin registers a message in flight; false once draining started.
func (r *Router) begin() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	r.wg.Add(1)
	return true
}

// Drain stops taking new messages and waits for those in flight, at most the drain
// timeout; then it cancels their handlers, whose messages stay unacknowledged.
func (r *Router) Drain() {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.drainTimeout):
		r.log.Warn("drain timeout: unacknowledged messages will be redelivered", zap.Duration("timeout", r.drainTimeout))
		r.stop()
		<-done
	}
	r.stop()
}
