// Package message is edgeloop's one message pipeline for both of its transports, in the
// manner of ThreeDotsLabs/watermill: a transport-neutral Message, a Handler that returns
// an error instead of acknowledging, and Middleware (retry, dead letter) composed around
// it. The transports (mqttbus.Router for MQTT, kafkabus.Consumer for Kafka) acknowledge
// a message — MQTT PUBACK, Kafka offset commit — only when its handler returned nil, so
// a handler never acks and never needs to know which transport fed it.
package message

import (
	"context"
	"errors"
	"fmt"
)

// Message is one message from either transport.
type Message struct {
	// Topic is the MQTT topic or Kafka topic it came from, or goes to.
	Topic string
	// Key is the Kafka partition key (the project id in edgeloop's topics); empty for MQTT.
	Key []byte
	// Value is the payload: a protobuf message of edgeloop.v1.
	Value []byte
	// Headers are Kafka headers; empty for MQTT.
	Headers map[string]string
	// Origin names where it was read, for logs and dead letters: "mqtt:<topic>" or
	// "kafka:<topic>[<partition>]@<offset>".
	Origin string
}

// Handler processes one message. It returns nil only once the message's effect is
// durable; the transport then acknowledges it. An error leaves it unacknowledged, to
// be redelivered; a *Reject says it can never succeed.
type Handler func(ctx context.Context, m *Message) error

// Middleware wraps a Handler with one concern.
type Middleware func(Handler) Handler

// Chain applies middleware to h so that the first one listed is the outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Publisher writes messages to a topic, durably (Kafka: acks=all) when it returns nil.
type Publisher interface {
	Publish(ctx context.Context, topic string, msgs ...*Message) error
}

// Reject is a handler error for a message that can never succeed: it does not decode,
// or it breaks a rule. Reason is a stable machine-readable code (see pkg/contract's
// Reason constants); the dead letter carries it.
type Reject struct {
	Reason string
	Err    error
}

// Error implements error.
func (r *Reject) Error() string { return r.Reason + ": " + r.Err.Error() }

// Unwrap returns the cause.
func (r *Reject) Unwrap() error { return r.Err }

// Rejectf returns a *Reject with reason and a formatted cause.
func Rejectf(reason, format string, args ...any) error {
	return &Reject{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// AsReject returns err's *Reject, if it holds one.
func AsReject(err error) (*Reject, bool) {
	var r *Reject
	ok := errors.As(err, &r)
	return r, ok
}
