package curator_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/project"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// instance is a curator service of the test, with its ops address for /metrics.
type instance struct {
	base, ops string
	stop      func()
}

// startInstance runs a curator service in group with its ops endpoints, until stop or
// the test's end.
func (e env) startInstance(t *testing.T, group string) *instance {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ops := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- curator.RunService(ctx, curator.ServiceConfig{Kafka: e.kafka, S3: e.s3, Tokens: tokens, Addr: "127.0.0.1:0", OpsAddr: ops,
			Group: group, Tick: 200 * time.Millisecond, Ready: func(a string) { addr <- a }}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	}()
	stopped := false
	in := &instance{ops: ops}
	in.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("curator: %v", err)
		}
	}
	t.Cleanup(in.stop)
	select {
	case a := <-addr:
		in.base = "http://" + a
	case err := <-done:
		t.Fatalf("curator did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("curator did not start in time")
	}
	return in
}

// ingested sums an instance's edgeloop_curator_examples_ingested_total over projects.
func (in *instance) ingested(t *testing.T) float64 {
	t.Helper()
	resp, err := http.Get("http://" + in.ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "edgeloop_curator_examples_ingested_total{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// TestCuratorsSharePartitions: two curators in one consumer group share the examples
// topic's partitions, each queueing what its partitions hold with the group commit.
// Project "shared" is written under many keys, so both curators queue its examples at
// once and meet on its ledger; halfway one curator stops and the other takes its
// partitions over, with what the first had queued but not committed. Every example is
// queued exactly once.
func TestCuratorsSharePartitions(t *testing.T) {
	e := newEnv(t)
	a := e.startInstance(t, "curators")
	b := e.startInstance(t, "curators")
	pids := []string{"shared", "p1", "p2", "p3", "p4", "p5"}
	for _, pid := range pids {
		createProject(t, a.base, pid, "classify", func(p *project.Project) { p.Batch.Min, p.Batch.Max = 30, 40 })
	}
	prod, err := kafkabus.NewProducer(e.kafka, kafkabus.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	want := map[string]int{}
	send := func(from, to int) {
		var msgs []kafka.Message
		for i := from; i < to; i++ {
			pid := pids[i%len(pids)]
			ex, _ := example(pid, i, edgeloopv1.Task_TASK_CLASSIFY)
			v, _ := proto.Marshal(ex)
			key := pid
			if pid == "shared" {
				key = fmt.Sprintf("shared-%d", i%12) // spread over the partitions
			}
			msgs = append(msgs, kafka.Message{Topic: e.kafka.Topic(contract.TopicExamples), Key: []byte(key), Value: v})
			want[pid]++
		}
		if err := prod.Produce(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	total := func() int {
		n := 0
		for _, pid := range pids {
			n += len(placement(t, a.base, pid)) + openCount(t, a.base, pid)
		}
		return n
	}
	// Until both have queued some (the second may join the group after the first took
	// every partition), then as much again with one curator stopped.
	sent := 0
	deadline := time.Now().Add(120 * time.Second)
	for a.ingested(t) == 0 || b.ingested(t) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d examples: curator a queued %v, b %v; want both at work", sent, a.ingested(t), b.ingested(t))
		}
		send(sent, sent+60)
		sent += 60
		time.Sleep(300 * time.Millisecond)
	}
	b.stop()
	send(sent, 2*sent)
	sent *= 2
	waitFor(t, fmt.Sprintf("%d examples queued", sent), 180*time.Second, func() bool { return total() >= sent })
	time.Sleep(time.Second) // anything queued twice would show up now
	for _, pid := range pids {
		where := placement(t, a.base, pid)
		for id, bs := range where {
			if len(bs) != 1 {
				t.Fatalf("project %s: example %s assigned to %v", pid, id, bs)
			}
		}
		if n := len(where) + openCount(t, a.base, pid); n != want[pid] {
			t.Fatalf("project %s: %d examples queued, want %d (no loss, no double queueing)", pid, n, want[pid])
		}
	}
}
