package message_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/retry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// recorder is a Publisher that keeps what it was given and fails while fail > 0.
type recorder struct {
	mu   sync.Mutex
	fail int
	got  map[string][]*message.Message
}

func (r *recorder) Publish(_ context.Context, topic string, msgs ...*message.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("broker down")
	}
	if r.got == nil {
		r.got = map[string][]*message.Message{}
	}
	r.got[topic] = append(r.got[topic], msgs...)
	return nil
}

func fast() retry.Backoff { return retry.Backoff{Initial: time.Millisecond, Max: time.Millisecond} }

func TestChainOrderFirstIsOutermost(t *testing.T) {
	var order []string
	mw := func(name string) message.Middleware {
		return func(h message.Handler) message.Handler {
			return func(ctx context.Context, m *message.Message) error {
				order = append(order, name)
				return h(ctx, m)
			}
		}
	}
	h := message.Chain(func(context.Context, *message.Message) error { order = append(order, "h"); return nil }, mw("a"), mw("b"))
	if err := h(context.Background(), &message.Message{}); err != nil {
		t.Fatal(err)
	}
	if got := len(order); got != 3 || order[0] != "a" || order[1] != "b" || order[2] != "h" {
		t.Fatalf("order %v, want [a b h]", order)
	}
}

func TestRetryRetriesTransientErrorsButNotRejects(t *testing.T) {
	calls := 0
	h := message.Chain(func(context.Context, *message.Message) error {
		calls++
		if calls < 3 {
			return errors.New("kafka down")
		}
		return nil
	}, message.Retry(fast(), zap.NewNop()))
	if err := h(context.Background(), &message.Message{}); err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	h = message.Chain(func(context.Context, *message.Message) error {
		calls++
		return message.Rejectf("bad_protobuf", "junk")
	}, message.Retry(fast(), zap.NewNop()))
	err := h(context.Background(), &message.Message{})
	if rej, ok := message.AsReject(err); !ok || rej.Reason != "bad_protobuf" || calls != 1 {
		t.Fatalf("err %v after %d calls, want the reject after 1", err, calls)
	}
}

func TestDeadLetterWritesTheReasonAndReportsHandled(t *testing.T) {
	pub := &recorder{fail: 2}
	var reasons []string
	h := message.Chain(func(context.Context, *message.Message) error {
		return message.Rejectf("bad_image", "example %s: not a PNG", "ex-1")
	}, message.Retry(fast(), zap.NewNop()), message.DeadLetter(pub, "dlq", "curator", zap.NewNop(), func(r string) { reasons = append(reasons, r) }))
	payload := make([]byte, 300<<10)
	err := h(context.Background(), &message.Message{Key: []byte("p1"), Value: payload, Origin: "kafka:t[0]@7"})
	if err != nil {
		t.Fatalf("a rejected message whose dead letter was written is handled; got %v", err)
	}
	// The dead letter's write failed twice (Kafka down): Retry, outermost, kept trying.
	if len(pub.got["dlq"]) != 1 || len(reasons) != 1 || reasons[0] != "bad_image" {
		t.Fatalf("dead letters %d, reasons %v: want one bad_image", len(pub.got["dlq"]), reasons)
	}
	m := pub.got["dlq"][0]
	dl := &edgeloopv1.DeadLetter{}
	if err := proto.Unmarshal(m.Value, dl); err != nil {
		t.Fatal(err)
	}
	if string(m.Key) != "p1" || dl.Service != "curator" || dl.Reason != "bad_image" || dl.Source != "kafka:t[0]@7" ||
		dl.Detail != "example ex-1: not a PNG" || len(dl.Payload) != 256<<10 || dl.ReceivedAt == nil {
		t.Fatalf("dead letter %+v (key %q, payload %d bytes)", dl, m.Key, len(dl.Payload))
	}
}

func TestDeadLetterPassesOtherErrorsThrough(t *testing.T) {
	pub := &recorder{}
	boom := errors.New("s3 down")
	h := message.DeadLetter(pub, "dlq", "curator", zap.NewNop(), nil)(func(context.Context, *message.Message) error { return boom })
	if err := h(context.Background(), &message.Message{}); !errors.Is(err, boom) || len(pub.got) != 0 {
		t.Fatalf("err %v, dead letters %v: want the error and none", err, pub.got)
	}
}

func TestGiveUpDeadLettersAMessageThatKeepsFailingWhileTheServiceIsHealthy(t *testing.T) {
	pub := &recorder{}
	boom := errors.New("object store refuses this one")
	calls := 0
	h := message.Chain(func(_ context.Context, m *message.Message) error {
		calls++
		return boom
	}, message.Retry(fast(), zap.NewNop()), message.DeadLetter(pub, "dlq", "curator", zap.NewNop(), nil),
		message.GiveUp(5, func(context.Context) error { return nil }, "retry_exhausted", zap.NewNop()))
	if err := h(context.Background(), &message.Message{Key: []byte("p1"), Value: []byte("x"), Origin: "kafka:t[0]@1"}); err != nil {
		t.Fatalf("a message given up on is handled (dead-lettered); got %v", err)
	}
	if calls != 5 || len(pub.got["dlq"]) != 1 {
		t.Fatalf("%d attempts, %d dead letters: want 5 and 1", calls, len(pub.got["dlq"]))
	}
	dl := &edgeloopv1.DeadLetter{}
	if err := proto.Unmarshal(pub.got["dlq"][0].Value, dl); err != nil {
		t.Fatal(err)
	}
	if dl.Reason != "retry_exhausted" || !strings.Contains(dl.Detail, boom.Error()) || !strings.Contains(dl.Detail, "5") {
		t.Fatalf("dead letter reason %q detail %q: want retry_exhausted with the last error and the attempts", dl.Reason, dl.Detail)
	}
}

func TestGiveUpKeepsRetryingWhileADependencyIsDown(t *testing.T) {
	pub := &recorder{}
	calls := 0
	h := message.Chain(func(_ context.Context, m *message.Message) error {
		calls++
		if calls < 30 {
			return errors.New("s3 unreachable")
		}
		return nil
	}, message.Retry(fast(), zap.NewNop()), message.DeadLetter(pub, "dlq", "curator", zap.NewNop(), nil),
		message.GiveUp(5, func(context.Context) error {
			if calls < 30 {
				return errors.New("s3 unreachable")
			}
			return nil
		}, "retry_exhausted", zap.NewNop()))
	if err := h(context.Background(), &message.Message{Origin: "kafka:t[0]@2"}); err != nil || calls != 30 || len(pub.got["dlq"]) != 0 {
		t.Fatalf("err %v after %d calls, %d dead letters: want success after 30 and none (an outage is not the message's fault)", err, calls, len(pub.got["dlq"]))
	}
}

// TestSettleDeadLettersTheBadAndRetriesOnlyTheFailed: in a batch, a rejected message is
// dead-lettered with its reason, a failing one is tried again alone until it succeeds,
// and the batch is handled once every message is settled.
func TestSettleDeadLettersTheBadAndRetriesOnlyTheFailed(t *testing.T) {
	pub := &recorder{}
	var calls [][]string
	failures := 2
	h := message.Settle(func(_ context.Context, ms []*message.Message) []error {
		var names []string
		outs := make([]error, len(ms))
		for i, m := range ms {
			names = append(names, string(m.Value))
			switch string(m.Value) {
			case "bad":
				outs[i] = message.Rejectf("bad_image", "not a PNG")
			case "flaky":
				if failures > 0 {
					failures--
					outs[i] = errors.New("s3 timeout")
				}
			}
		}
		calls = append(calls, names)
		return outs
	}, fast(), zap.NewNop(), message.DeadLetter(pub, "dlq", "curator", zap.NewNop(), nil))
	ms := []*message.Message{{Value: []byte("a"), Origin: "o1"}, {Value: []byte("bad"), Origin: "o2"}, {Value: []byte("flaky"), Origin: "o3"}, {Value: []byte("b"), Origin: "o4"}}
	if err := h(context.Background(), ms); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 || len(calls[0]) != 4 || len(calls[1]) != 1 || calls[1][0] != "flaky" || len(calls[2]) != 1 {
		t.Fatalf("calls %v: want the whole batch, then the flaky message alone twice", calls)
	}
	dl := &edgeloopv1.DeadLetter{}
	if len(pub.got["dlq"]) != 1 || proto.Unmarshal(pub.got["dlq"][0].Value, dl) != nil || dl.Reason != "bad_image" || dl.Source != "o2" {
		t.Fatalf("dead letters %v: want the bad message's, bad_image", pub.got["dlq"])
	}
}

// TestSettleGivesUpOnAMessageThatKeepsFailing: GiveUp counts a message's attempts across
// Settle's tries; the message is dead-lettered and the batch handled.
func TestSettleGivesUpOnAMessageThatKeepsFailing(t *testing.T) {
	pub := &recorder{}
	tries := 0
	h := message.Settle(func(_ context.Context, ms []*message.Message) []error {
		tries++
		outs := make([]error, len(ms))
		for i, m := range ms {
			if string(m.Value) == "cursed" {
				outs[i] = errors.New("object store refuses this one")
			}
		}
		return outs
	}, fast(), zap.NewNop(), message.DeadLetter(pub, "dlq", "curator", zap.NewNop(), nil),
		message.GiveUp(4, func(context.Context) error { return nil }, "retry_exhausted", zap.NewNop()))
	if err := h(context.Background(), []*message.Message{{Value: []byte("ok"), Origin: "a"}, {Value: []byte("cursed"), Origin: "b"}}); err != nil {
		t.Fatal(err)
	}
	dl := &edgeloopv1.DeadLetter{}
	if tries != 4 || len(pub.got["dlq"]) != 1 || proto.Unmarshal(pub.got["dlq"][0].Value, dl) != nil || dl.Reason != "retry_exhausted" {
		t.Fatalf("%d tries, dead letters %v: want 4 and one retry_exhausted", tries, pub.got["dlq"])
	}
	// The context ends while a message still fails: the batch is not handled.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	h = message.Settle(func(_ context.Context, ms []*message.Message) []error {
		return []error{errors.New("s3 down")}
	}, fast(), zap.NewNop())
	if err := h(ctx, []*message.Message{{Origin: "c"}}); err == nil {
		t.Fatal("a batch whose message never succeeded was reported handled")
	}
}
