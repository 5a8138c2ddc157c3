package deadletter_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/deadletter"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/servicemain"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// refusal is a message a service refused: where it came from, its key and payload, and
// the reason.
type refusal struct {
	service, origin, key, reason string
	payload                      proto.Message
	raw                          []byte // instead of payload: bytes that never decoded
}

// TestListAndReplayOnRealKafka: letters written by the services' own DeadLetter
// middleware are listed and filtered by service, reason and time; replaying sends the
// examples and approvals consumed from Kafka back to their topics with their keys, and
// counts apart what came over MQTT and what was cut to the size limit. The command
// prints them and replays what its flags select.
func TestListAndReplayOnRealKafka(t *testing.T) {
	ctx := context.Background()
	cfg := servertest.Kafka(t)
	cfg.TopicPrefix = "dl-" + servertest.RandomID(6) + "."
	if err := kafkabus.EnsureTopics(ctx, cfg, 2, cfg.Topic(contract.TopicDeadLetter), cfg.Topic(contract.TopicExamples),
		cfg.Topic(contract.TopicBatchesApproved)); err != nil {
		t.Fatal(err)
	}
	prod, err := kafkabus.NewProducer(cfg, kafkabus.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	examples := "kafka:" + cfg.Topic(contract.TopicExamples) + "[1]@17"
	whole := &edgeloopv1.Example{Id: "ex-1", Project: "p1", Device: "cam-1", Image: &edgeloopv1.Image{Data: []byte("png")}}
	cut := &edgeloopv1.Example{Id: "ex-2", Project: "p1", Device: "cam-1", Image: &edgeloopv1.Image{Data: bytes.Repeat([]byte{7}, 300<<10)}}
	approval := &edgeloopv1.BatchApproved{Project: "p2", BatchId: "b000003"}
	for _, r := range []refusal{
		{"curator", examples, "p1", contract.ReasonRetryExhausted, whole, nil},
		{"curator", examples, "p1", contract.ReasonRetryExhausted, cut, nil},
		{"curator", examples, "p9", contract.ReasonUnknownProject, &edgeloopv1.Example{Id: "ex-3", Project: "p9"}, nil},
		{"bridge", "mqtt:edgeloop/v1/p1/cam-1/examples", "p1", contract.ReasonBadImage, &edgeloopv1.Example{Id: "ex-4"}, nil},
		{"retrain", "kafka:" + cfg.Topic(contract.TopicBatchesApproved) + "[0]@3", "p2", contract.ReasonCorruptState, approval, nil},
		{"curator", examples, "p1", contract.ReasonBadProtobuf, nil, []byte{0xff, 0xff, 0x01}},
	} {
		v := r.raw
		if r.payload != nil {
			if v, err = proto.Marshal(r.payload); err != nil {
				t.Fatal(err)
			}
		}
		h := message.DeadLetter(prod, cfg.Topic(contract.TopicDeadLetter), r.service, zap.NewNop(), nil)(func(context.Context, *message.Message) error {
			return &message.Reject{Reason: r.reason, Err: errors.New("refused for the test")}
		})
		if err := h(ctx, &message.Message{Key: []byte(r.key), Value: v, Origin: r.origin}); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Publish(ctx, cfg.Topic(contract.TopicDeadLetter), &message.Message{Value: []byte{0xff, 0x01}}); err != nil {
		t.Fatal(err)
	}

	count := func(f deadletter.Filter) int {
		t.Helper()
		ls, _, err := deadletter.List(ctx, cfg, f)
		if err != nil {
			t.Fatal(err)
		}
		return len(ls)
	}
	all, bad, err := deadletter.List(ctx, cfg, deadletter.Filter{})
	if err != nil || len(all) != 6 || bad != 1 {
		t.Fatalf("listed %d letters and %d others, %v; want 6 and 1", len(all), bad, err)
	}
	if n := count(deadletter.Filter{Reason: contract.ReasonRetryExhausted}); n != 2 {
		t.Fatalf("%d retry_exhausted, want 2", n)
	}
	if n := count(deadletter.Filter{Service: "retrain"}); n != 1 {
		t.Fatalf("%d of retrain, want 1", n)
	}
	if n := count(deadletter.Filter{Since: time.Now().Add(time.Minute)}); n != 0 {
		t.Fatalf("%d from the future", n)
	}

	r, err := deadletter.Replay(ctx, cfg, prod, all)
	if err != nil || r.Replayed != 3 || r.Skipped[deadletter.ErrNotKafka.Error()] != 1 || r.Skipped[deadletter.ErrCut.Error()] != 1 ||
		r.Skipped[deadletter.ErrUnreadable.Error()] != 1 {
		t.Fatalf("replay: %+v, %v; want 3 replayed, one from MQTT, one cut and one unreadable skipped", r, err)
	}
	got := map[string]string{} // payload id → key
	read := func(topic string, into proto.Message, id func() string) {
		t.Helper()
		if err := kafkabus.ReadTopic(ctx, cfg, cfg.Topic(topic), func(m kafka.Message) error {
			if err := proto.Unmarshal(m.Value, into); err != nil {
				return err
			}
			got[id()] = string(m.Key)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	ex, ap := &edgeloopv1.Example{}, &edgeloopv1.BatchApproved{}
	read(contract.TopicExamples, ex, func() string { return ex.Id })
	read(contract.TopicBatchesApproved, ap, func() string { return ap.BatchId })
	if len(got) != 3 || got["ex-1"] != "p1" || got["ex-3"] != "p9" || got["b000003"] != "p2" {
		t.Fatalf("replayed (id → key) %v; want ex-1 and ex-3 on the examples topic, b000003 on the approvals one, with their keys", got)
	}

	var out bytes.Buffer
	for _, bad := range [][]string{{"-replay"}, {"-service", "curatr"}} { // what to replay unsaid; a mistyped service
		if code := servicemain.Run("deadletters", append(servertest.KafkaArgs(cfg), bad...), deadletter.Command(&out)); code == 0 {
			t.Fatalf("%v exited 0", bad)
		}
	}
	args := append(servertest.KafkaArgs(cfg), "-reason", contract.ReasonRetryExhausted, "-replay")
	if code := servicemain.Run("deadletters", args, deadletter.Command(&out)); code != 0 {
		t.Fatalf("command exited %d: %s", code, out.String())
	}
	t.Logf("the command printed:\n%s", out.String())
	for _, want := range []string{"2 dead letters; retry_exhausted 2", "replayed 1; skipped 1: payload cut to the size limit", examples} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("command output lacks %q:\n%s", want, out.String())
		}
	}
}
