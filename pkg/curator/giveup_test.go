package curator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/retry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// TestFailingExampleDeadLetteredAndOtherProjectsGoOn is the wiring of message.GiveUp
// and the isolated Tick in the curator service, end to end on real Kafka and MinIO.
// Project "broken" has a corrupt ledger, so each of its examples fails for reasons of
// its own while S3 and Kafka answer; it sits in front of project "fine"'s examples in
// the one partition. The broken example is retried, then dead-lettered as
// retry_exhausted with its last error, the partition moves on, "fine"'s examples are
// queued, and the tick closes "fine"'s batch although the tick of "broken" fails
// every time.
func TestFailingExampleDeadLetteredAndOtherProjectsGoOn(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- curator.RunService(ctx, curator.ServiceConfig{Kafka: e.kafka, S3: e.s3, Tokens: tokens, Addr: "127.0.0.1:0",
			Partitions: 1, Tick: 200 * time.Millisecond, GiveUp: curator.GiveUpPolicy{Attempts: 4, Backoff: retry.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}},
			Ready: func(a string) { addr <- a }}, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	}()
	t.Cleanup(func() { cancel(); <-done })
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("curator did not start: %v", err)
	}
	short := func(p *project.Project) {
		p.Batch.Min, p.Batch.Max, p.Batch.MaxWait = 1, 50, config.Duration(500*time.Millisecond)
	}
	createProject(t, base, "broken", "classify", short)
	createProject(t, base, "fine", "classify", short)
	store, err := s3store.Open(ctx, e.s3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, project.LedgerKey("broken"), []byte("{corrupt"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	prod, err := kafkabus.NewProducer(e.kafka, kafkabus.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	bad, _ := example("broken", 0, edgeloopv1.Task_TASK_CLASSIFY)
	msgs := []kafka.Message{marshal(t, e.kafka, bad)}
	var fine []string
	for i := 1; i <= 3; i++ {
		ex, _ := example("fine", i, edgeloopv1.Task_TASK_CLASSIFY)
		fine = append(fine, ex.Id)
		msgs = append(msgs, marshal(t, e.kafka, ex))
	}
	if err := prod.Produce(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	var dl *edgeloopv1.DeadLetter
	if !servertest.Collect(t, e.kafka, contract.TopicDeadLetter, 60*time.Second, func(m kafka.Message) {
		d := &edgeloopv1.DeadLetter{}
		if proto.Unmarshal(m.Value, d) == nil && d.Service == "curator" {
			dl = d
		}
	}, func() bool { return dl != nil }) {
		t.Fatal("no dead letter for the example that keeps failing")
	}
	if dl.Reason != contract.ReasonRetryExhausted || !strings.Contains(dl.Detail, "4 times") || !strings.Contains(dl.Detail, "ledger") {
		t.Fatalf("dead letter %s: %q; want %s with the attempts and the last error (the ledger)", dl.Reason, dl.Detail, contract.ReasonRetryExhausted)
	}
	got := &edgeloopv1.Example{}
	if err := proto.Unmarshal(dl.Payload, got); err != nil || got.Id != bad.Id {
		t.Fatalf("dead letter's payload is not the failing example %s: %v", bad.Id, err)
	}

	// Behind it in the partition, "fine"'s examples are queued, and the tick, which
	// fails for "broken" every time, closes "fine"'s batch.
	st := &project.Store{S: store}
	deadline := time.Now().Add(30 * time.Second)
	for {
		bs, _ := st.Batches(ctx, "fine")
		var items []string
		for _, b := range bs {
			if b.State == project.StateReady {
				for _, it := range b.Items {
					items = append(items, it.ExampleID)
				}
			}
		}
		if len(items) == len(fine) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("project fine's ready batches hold %v, want %v", items, fine)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func marshal(t *testing.T, k kafkabus.Config, ex *edgeloopv1.Example) kafka.Message {
	t.Helper()
	b, err := proto.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Topic: k.Topic(contract.TopicExamples), Key: []byte(ex.Project), Value: b}
}
