package bridge_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgeloop/edgeloop/internal/fixture"
	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/embedded"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// env is where a contract test runs: real servers or the standalone's embedded ones.
type env struct {
	kafka      kafkabus.Config
	mqttURL    string
	stopKafka  func()
	startKafka func()
}

// realEnv uses a dedicated Kafka (the tests stop it) and a dedicated Mosquitto.
func realEnv(t *testing.T) env {
	k := servertest.StartDedicated(t, "kafka")
	m := servertest.StartDedicated(t, "mosquitto")
	return env{
		kafka:   kafkabus.Config{Brokers: []string{k.Addr}, ClientID: "test", TopicPrefix: "t" + servertest.RandomID(6) + "."},
		mqttURL: "tcp://" + m.Addr, stopKafka: k.Stop, startKafka: k.Start,
	}
}

func embeddedEnv(t *testing.T) env {
	srv, err := embedded.Start(embedded.Config{Dir: t.TempDir()}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return env{
		kafka:     kafkabus.Config{Brokers: []string{srv.KafkaAddr}, ClientID: "test", TopicPrefix: "t" + servertest.RandomID(6) + "."},
		mqttURL:   srv.MQTTURL,
		stopKafka: srv.StopKafka,
		startKafka: func() {
			if err := srv.StartKafka(); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func TestContractReal(t *testing.T)     { runContract(t, realEnv(t)) }
func TestContractEmbedded(t *testing.T) { runContract(t, embeddedEnv(t)) }

func runContract(t *testing.T, e env) {
	t.Run("ValidExampleReachesKafka", func(t *testing.T) { testValid(t, e) })
	t.Run("BadInputDeadLettered", func(t *testing.T) { testBadInput(t, e) })
	t.Run("ReleaseBecomesRetainedMQTT", func(t *testing.T) { testRelease(t, e) })
	t.Run("KafkaOutageLosesNothing", func(t *testing.T) { testKafkaOutage(t, e) })
	t.Run("BridgeKilledLosesNothing", func(t *testing.T) { testBridgeKilled(t, e) })
}

// startBridge runs the bridge in-process until the test ends.
func startBridge(t *testing.T, e env, share string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := bridge.ServiceConfig{
		Kafka: e.kafka, OpsAddr: "127.0.0.1:0", Partitions: 3,
		MQTT:    mqttbus.Config{URL: e.mqttURL, ClientID: "bridge-" + share},
		Options: bridge.Options{ShareGroup: share, ReleaseGroup: "rel-" + share},
	}
	go func() { done <- bridge.RunService(ctx, cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bridge: %v", err)
		}
	})
	waitSubscribed(t, e)
}

// waitSubscribed returns once the bridge carries MQTT to Kafka: QoS 1 messages published
// before its subscription exists are not queued for it, so it publishes a probe example
// until the probe shows up in the examples topic.
func waitSubscribed(t *testing.T, e env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafkabus.EnsureTopics(ctx, e.kafka, 3, e.kafka.Topic(contract.TopicExamples)); err != nil {
		t.Fatal(err)
	}
	pub := publisher(t, e)
	probe := fixture.Example("probe", "cam-probe", "probe-"+servertest.RandomID(8))
	payload, err := proto.Marshal(probe)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			_ = pub.Publish(ctx, contract.ExamplesTopic(probe.Project, probe.Device), 1, false, payload)
			select {
			case <-done:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	seen := false
	if !servertest.Collect(t, e.kafka, contract.TopicExamples, 60*time.Second, func(m kafka.Message) {
		seen = seen || exampleID(t, m) == probe.Id
	}, func() bool { return seen }) {
		t.Fatal("the bridge did not carry a probe example from MQTT to Kafka within 60 s")
	}
}

func publisher(t *testing.T, e env) *mqttbus.Client {
	t.Helper()
	c, err := mqttbus.Connect(context.Background(), mqttbus.Config{URL: e.mqttURL, ClientID: "pub-" + servertest.RandomID(6)}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func publish(t *testing.T, c *mqttbus.Client, topic string, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Publish(ctx, topic, 1, false, payload); err != nil {
		t.Fatal(err)
	}
}

func publishExample(t *testing.T, c *mqttbus.Client, ex *edgeloopv1.Example) {
	t.Helper()
	b, err := proto.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, c, contract.ExamplesTopic(ex.Project, ex.Device), b)
}

func exampleID(t *testing.T, m kafka.Message) string {
	ex := &edgeloopv1.Example{}
	if err := proto.Unmarshal(m.Value, ex); err != nil {
		t.Fatalf("examples topic holds a non-Example: %v", err)
	}
	return ex.Id
}

func testValid(t *testing.T, e env) {
	startBridge(t, e, "s"+servertest.RandomID(6))
	pub := publisher(t, e)
	ex := fixture.DetectExample("acme", "cam-1", "valid-1")
	publishExample(t, pub, ex)
	var got *edgeloopv1.Example
	var key string
	_ = servertest.Collect(t, e.kafka, contract.TopicExamples, 60*time.Second, func(m kafka.Message) {
		x := &edgeloopv1.Example{}
		if proto.Unmarshal(m.Value, x) == nil && x.Id == ex.Id {
			got, key = x, string(m.Key)
		}
	}, func() bool { return got != nil })
	if got == nil {
		t.Fatal("valid example never reached Kafka")
	}
	if key != "acme" {
		t.Errorf("key %q, want the project id", key)
	}
	if !proto.Equal(got, ex) {
		t.Errorf("example changed on the way:\n got %v\nwant %v", got, ex)
	}
}

func testBadInput(t *testing.T, e env) {
	startBridge(t, e, "s"+servertest.RandomID(6))
	pub := publisher(t, e)
	want := map[string]bool{}
	for i, c := range bridge.BadExamples() {
		topic, payload := c.Break(fixture.Example("acme", "cam-2", fmt.Sprintf("bad-%d", i)))
		publish(t, pub, topic, payload)
		want[c.Reason] = true
	}
	// The bridge keeps going: a valid example after all the bad ones arrives.
	publishExample(t, pub, fixture.Example("acme", "cam-2", "after-bad"))
	got := map[string]*edgeloopv1.DeadLetter{}
	_ = servertest.Collect(t, e.kafka, contract.TopicDeadLetter, 60*time.Second, func(m kafka.Message) {
		dl := &edgeloopv1.DeadLetter{}
		if err := proto.Unmarshal(m.Value, dl); err != nil {
			t.Fatalf("dead letter does not decode: %v", err)
		}
		got[dl.Reason] = dl
	}, func() bool { return len(got) >= len(want) })
	if got == nil {
		t.Fatal("no dead letters")
	}
	for r := range want {
		dl := got[r]
		if dl == nil {
			t.Errorf("no dead letter with reason %s (got %v)", r, keys(got))
			continue
		}
		if dl.Service != "bridge" || dl.Detail == "" || len(dl.Source) < len("mqtt:edgeloop/v1/") {
			t.Errorf("dead letter %s lacks service, detail or source: %+v", r, dl)
		}
	}
	found := false
	if !servertest.Collect(t, e.kafka, contract.TopicExamples, 60*time.Second, func(m kafka.Message) {
		found = found || exampleID(t, m) == "after-bad"
	}, func() bool { return found }) {
		t.Fatal("the valid example after the bad ones never reached Kafka")
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func testRelease(t *testing.T, e env) {
	startBridge(t, e, "s"+servertest.RandomID(6))
	prod, err := kafkabus.NewProducer(e.kafka, kafkabus.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx := context.Background()
	project := "rel-" + servertest.RandomID(4)
	rel := &edgeloopv1.ModelRelease{Project: project, Version: 3, Sha256: "ab", ArtifactUrl: "http://x/y"}
	b, _ := proto.Marshal(rel)
	bad := kafka.Message{Topic: e.kafka.Topic(contract.TopicModels), Key: []byte(project), Value: []byte("\xff junk")}
	good := kafka.Message{Topic: e.kafka.Topic(contract.TopicModels), Key: []byte(project), Value: b}
	if err := prod.Produce(ctx, bad, good); err != nil {
		t.Fatal(err)
	}
	// A device that connects later still gets the release: it is retained.
	if r := retained(t, e, project, func(r *edgeloopv1.ModelRelease) bool { return r.Version == 3 }); r.Version != 3 {
		t.Fatalf("retained release v%d, want v3", r.Version)
	}
	// The retained release never goes backwards: releases set at once may reach Kafka
	// in the other order, and a rollback is a newer release of an older version.
	t0 := time.Now()
	at := func(v int64, d time.Duration, rollback bool) kafka.Message {
		b, _ := proto.Marshal(&edgeloopv1.ModelRelease{Project: project, Version: v, Sha256: "ab", ArtifactUrl: "http://x/y",
			Rollback: rollback, ReleasedAt: timestamppb.New(t0.Add(d))})
		return kafka.Message{Topic: e.kafka.Topic(contract.TopicModels), Key: []byte(project), Value: b}
	}
	if err := prod.Produce(ctx, at(5, 2*time.Second, false), at(4, time.Second, false), at(2, 3*time.Second, true), at(6, 2500*time.Millisecond, false)); err != nil {
		t.Fatal(err)
	}
	r := retained(t, e, project, func(r *edgeloopv1.ModelRelease) bool { return r.Version == 2 })
	time.Sleep(time.Second) // the stale v6 after it must not replace it
	if r = retained(t, e, project, func(*edgeloopv1.ModelRelease) bool { return true }); r.Version != 2 || !r.Rollback {
		t.Fatalf("retained release v%d (rollback %v), want the newest: the rollback to v2", r.Version, r.Rollback)
	}
}

// retained returns the retained release of project once ok accepts it (or the last one
// seen after 60 s).
func retained(t *testing.T, e env, project string, ok func(*edgeloopv1.ModelRelease) bool) *edgeloopv1.ModelRelease {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	last := &edgeloopv1.ModelRelease{}
	for {
		got := make(chan []byte, 1)
		sub := publisher(t, e)
		if err := sub.Subscribe(ctx, contract.ReleaseTopic(project), 1, func(m mqttbus.Message) {
			select {
			case got <- m.Payload():
			default:
			}
		}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-got:
			r := &edgeloopv1.ModelRelease{}
			if err := proto.Unmarshal(p, r); err != nil {
				t.Fatalf("retained release does not decode: %v", err)
			}
			if ok(r) {
				sub.Disconnect(0)
				return r
			}
			last = r
		case <-time.After(time.Second):
		}
		sub.Disconnect(0)
		if time.Now().After(deadline) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// publishMany publishes n examples of ~2 KB with ids prefix-0..n-1, calling at(i) before
// each.
func publishMany(t *testing.T, e env, prefix string, n int, at func(i int)) {
	pub := publisher(t, e)
	for i := 0; i < n; i++ {
		at(i)
		ex := fixture.Example("load", "cam-"+fmt.Sprint(i%4), fmt.Sprintf("%s-%d", prefix, i))
		ex.Image = &edgeloopv1.Image{Data: fixture.JPEG(40, 40, uint64(i)), ContentType: "image/jpeg", Width: 40, Height: 40}
		publishExample(t, pub, ex)
	}
}

// expectAll reads the examples topic until every id prefix-0..n-1 arrived, and reports
// duplicates (allowed: at-least-once) and losses (not allowed).
func expectAll(t *testing.T, e env, prefix string, n int, timeout time.Duration) {
	t.Helper()
	seen := map[string]int{}
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		want[fmt.Sprintf("%s-%d", prefix, i)] = true
	}
	missing := n
	servertest.Collect(t, e.kafka, contract.TopicExamples, timeout, func(m kafka.Message) {
		id := exampleID(t, m)
		if want[id] {
			if seen[id] == 0 {
				missing--
			}
			seen[id]++
		}
	}, func() bool { return missing == 0 })
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("%d of %d examples in Kafka, %d duplicates (at-least-once), %d lost", n-missing, n, dups, missing)
	if missing > 0 {
		var lost []string
		for id := range want {
			if seen[id] == 0 && len(lost) < 40 {
				lost = append(lost, id)
			}
		}
		t.Fatalf("%d examples lost, e.g. %v", missing, lost)
	}
}

func testKafkaOutage(t *testing.T, e env) {
	startBridge(t, e, "s"+servertest.RandomID(6))
	const n = 2000
	var restarted sync.WaitGroup
	publishMany(t, e, "outage", n, func(i int) {
		if i == 500 {
			e.stopKafka()
			restarted.Add(1)
			go func() {
				defer restarted.Done()
				time.Sleep(3 * time.Second)
				e.startKafka()
			}()
		}
	})
	restarted.Wait()
	expectAll(t, e, "outage", n, 120*time.Second)
}

// testBridgeKilled runs the bridge binary, kills it with SIGKILL mid-stream and starts it
// again with the same MQTT client id: the broker redelivers what it never acked.
func testBridgeKilled(t *testing.T, e env) {
	bin := bridgeBinary(t)
	share := "s" + servertest.RandomID(6)
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, append(servertest.KafkaArgs(e.kafka),
			"-mqtt-url", e.mqttURL, "-bridge-mqtt-client-id", "bridge-"+share, "-share-group", share,
			"-bridge-ops-addr", "127.0.0.1:0", "-partitions", "3", "-log-level", "warn")...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	cmd := start()
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	waitSubscribed(t, e)
	publishMany(t, e, "killed", 2000, func(i int) {
		if i == 700 {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			time.Sleep(500 * time.Millisecond)
			cmd = start()
		}
	})
	expectAll(t, e, "killed", 2000, 120*time.Second)
}

var buildOnce sync.Once
var builtBin string

func bridgeBinary(t *testing.T) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bridge-bin")
		if err != nil {
			t.Fatal(err)
		}
		builtBin = servertest.Build(t, dir, "github.com/edgeloop/edgeloop/services/bridge")
	})
	return builtBin
}
