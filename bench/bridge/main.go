// Command bridge measures the bridge: throughput and latency of 50 KB examples from an
// MQTT QoS 1 publish until they are in Kafka (written with acks=all, read back by a
// consumer), beside a plain kafka-go producer (acks=all) writing the same messages to
// the same broker in the same run, timed the same way.
//
//	go run ./bench/bridge -kafka 127.0.0.1:19092 -mqtt tcp://127.0.0.1:11883
//	go run ./bench/bridge -embedded
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/internal/fixture"
	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/embedded"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

type result struct {
	name       string
	n          int
	bytes      int
	wall       time.Duration
	latencies  []time.Duration
	concurrent int
	mode       string
}

// arrivals reads a topic and records when each example id appears.
type arrivals struct {
	mu   sync.Mutex
	at   map[string]time.Time
	all  chan struct{}
	want int
}

// partitions of the benchmark's topics.
const partitions = 6

func watch(ctx context.Context, kcfg kafkabus.Config, topic, tag string, want int) *arrivals {
	a := &arrivals{at: map[string]time.Time{}, all: make(chan struct{}), want: want}
	// One reader per partition from its current end, rather than a consumer group
	// from the start: a group's join and re-reading earlier runs' messages (slow on
	// the embedded broker) would count as the bridge's latency.
	for p := 0; p < partitions; p++ {
		conn, err := kafka.DialLeader(ctx, "tcp", kcfg.Brokers[0], topic, p)
		check(err)
		end, err := conn.ReadLastOffset()
		check(err)
		check(conn.Close())
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: kcfg.Brokers, Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 2 << 20, MaxWait: 5 * time.Millisecond,
		})
		check(r.SetOffset(end))
		go func() {
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				now := time.Now()
				ex := &edgeloopv1.Example{}
				if proto.Unmarshal(m.Value, ex) != nil || !strings.HasPrefix(ex.Id, tag+"-") {
					continue
				}
				a.mu.Lock()
				if _, dup := a.at[ex.Id]; !dup {
					a.at[ex.Id] = now
					if len(a.at) == a.want {
						close(a.all)
					}
				}
				a.mu.Unlock()
			}
		}()
	}
	return a
}

func (r result) row() string {
	sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(r.latencies)))) - 1
		return float64(r.latencies[max(i, 0)].Microseconds()) / 1000
	}
	rate := float64(r.n) / r.wall.Seconds()
	return fmt.Sprintf("| %-44s | %-19s | %5d | %5.0f KB | %8.0f | %6.1f | %7.2f | %7.2f |",
		r.name, r.mode, r.n, float64(r.bytes)/float64(r.n)/1000, rate, rate*float64(r.bytes)/float64(r.n)/1e6, q(0.5), q(0.99))
}

func main() {
	kafkaAddr := flag.String("kafka", "127.0.0.1:19092", "Kafka broker (real servers)")
	mqttURL := flag.String("mqtt", "tcp://127.0.0.1:11883", "MQTT broker (real servers)")
	useEmbedded := flag.Bool("embedded", false, "benchmark against the standalone's embedded servers instead")
	n := flag.Int("n", 2000, "messages per run")
	size := flag.Int("size", 50_000, "approximate example size in bytes")
	conc := flag.Int("concurrency", 32, "publishers in flight")
	noConfirm := flag.Bool("no-confirm", false, "the bridge sends no confirmations to the devices (to measure what they cost)")
	flag.Parse()

	env := "real Kafka 4.1 + Mosquitto"
	if *useEmbedded {
		dir, err := os.MkdirTemp("", "bench-bridge")
		check(err)
		defer os.RemoveAll(dir)
		srv, err := embedded.Start(embedded.Config{Dir: dir}, logger())
		check(err)
		defer srv.Close()
		*kafkaAddr, *mqttURL, env = srv.KafkaAddr, srv.MQTTURL, "embedded kfake + mochi-mqtt"
	}
	kcfg := kafkabus.Config{Brokers: []string{*kafkaAddr}, ClientID: "bench", TopicPrefix: fmt.Sprintf("bench%d.", time.Now().UnixNano()%1e6)}
	payloads := makePayloads(*n, *size)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	share := fmt.Sprintf("bench%d", time.Now().UnixNano()%1e6)
	done := make(chan error, 1)
	go func() {
		done <- bridge.RunService(ctx, bridge.ServiceConfig{
			Kafka: kcfg, OpsAddr: "127.0.0.1:0", Partitions: partitions,
			MQTT:    mqttbus.Config{URL: *mqttURL, ClientID: share},
			Options: bridge.Options{ShareGroup: share, ReleaseGroup: share, NoConfirm: *noConfirm},
		}, logger())
	}()
	check(kafkabus.EnsureTopics(ctx, kcfg, partitions, kcfg.Topic(contract.TopicExamples), kcfg.Topic("plain")))
	time.Sleep(time.Second) // let the bridge subscribe

	// Saturated: as fast as conc senders go (throughput). Paced: 100 messages a second
	// (latency without queueing).
	type pair struct{ bridge, plain result }
	var runs []pair
	for i, sc := range []struct{ n, conc, rate int }{{*n, *conc, 0}, {min(*n, 300), 4, 100}} {
		ps := payloads[:sc.n]
		tag := fmt.Sprintf("r%d", i)
		runs = append(runs, pair{
			bridge: runBridge(ctx, *mqttURL, watch(ctx, kcfg, kcfg.Topic(contract.TopicExamples), tag, sc.n), retag(ps, tag), sc.conc, sc.rate),
			plain:  runPlain(ctx, kcfg, watch(ctx, kcfg, kcfg.Topic("plain"), tag, sc.n), retag(ps, tag), sc.conc, sc.rate),
		})
	}
	cancel()
	<-done

	fmt.Printf("\nBridge benchmark on %s: examples of ~%d KB\n", env, *size/1000)
	fmt.Println("Latency: from the send until a consumer reads the message back from Kafka.")
	fmt.Println()
	fmt.Println("| path                                         | load                |     n |  size    | msg/s    |  MB/s  | p50 ms  | p99 ms  |")
	fmt.Println("|----------------------------------------------|---------------------|-------|----------|----------|--------|---------|---------|")
	for _, r := range runs {
		fmt.Println(r.bridge.row())
		fmt.Println(r.plain.row())
	}
	fmt.Println()
	for _, r := range runs {
		fmt.Printf("bridge / plain producer, %-22s throughput %.2fx, p50 latency %.2fx\n", r.bridge.mode+":",
			(float64(r.bridge.n)/r.bridge.wall.Seconds())/(float64(r.plain.n)/r.plain.wall.Seconds()),
			median(r.bridge.latencies).Seconds()/median(r.plain.latencies).Seconds())
	}
}

// retag gives the payloads of one run ids of their own, so runs do not mix.
func retag(ps []payload, tag string) []payload {
	out := make([]payload, len(ps))
	for i, p := range ps {
		ex := &edgeloopv1.Example{}
		check(proto.Unmarshal(p.data, ex))
		ex.Id = tag + "-" + ex.Id
		b, err := proto.Marshal(ex)
		check(err)
		out[i] = payload{id: ex.Id, topic: p.topic, key: p.key, data: b}
	}
	return out
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

type payload struct {
	id    string
	topic string
	key   string
	data  []byte
}

func makePayloads(n, size int) []payload {
	side := 64
	for len(fixture.JPEG(side, side, 0)) < size {
		side += 8
	}
	out := make([]payload, n)
	imgs := make([][]byte, 16)
	for i := range imgs {
		imgs[i] = fixture.JPEG(side, side, uint64(i))
	}
	for i := range out {
		ex := fixture.Example("bench", fmt.Sprintf("cam-%d", i%8), fmt.Sprintf("ex-%d", i))
		ex.Image = &edgeloopv1.Image{Data: imgs[i%len(imgs)], ContentType: "image/jpeg", Width: int32(side), Height: int32(side)}
		b, err := proto.Marshal(ex)
		check(err)
		out[i] = payload{id: ex.Id, topic: contract.ExamplesTopic(ex.Project, ex.Device), key: ex.Project, data: b}
	}
	return out
}

// run sends every payload with conc workers, waits until all are read back from Kafka,
// and records each one's latency from send to arrival.
func run(name string, payloads []payload, arr *arrivals, conc, rate int, send func(payload) error) result {
	var mu sync.Mutex
	sent := make(map[string]time.Time, len(payloads))
	r := result{name: name, n: len(payloads), concurrent: conc, mode: fmt.Sprintf("saturated, %d sends", conc)}
	var tick <-chan time.Time
	if rate > 0 {
		r.mode = fmt.Sprintf("paced, %d msg/s", rate)
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		tick = t.C
	}
	work := make(chan payload)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				mu.Lock()
				sent[p.id] = time.Now()
				r.bytes += len(p.data)
				mu.Unlock()
				check(send(p))
			}
		}()
	}
	for _, p := range payloads {
		if tick != nil {
			<-tick
		}
		work <- p
	}
	close(work)
	wg.Wait()
	select {
	case <-arr.all:
	case <-time.After(2 * time.Minute):
		check(fmt.Errorf("%s: only %d of %d messages reached Kafka", name, len(arr.at), len(payloads)))
	}
	arr.mu.Lock()
	defer arr.mu.Unlock()
	last := start
	for id, t := range arr.at {
		r.latencies = append(r.latencies, t.Sub(sent[id]))
		if t.After(last) {
			last = t
		}
	}
	r.wall = last.Sub(start)
	return r
}

func runBridge(ctx context.Context, url string, arr *arrivals, payloads []payload, conc, rate int) result {
	pub, err := mqttbus.Connect(ctx, mqttbus.Config{URL: url, ClientID: fmt.Sprintf("bench-pub-%d", time.Now().UnixNano())}, zap.NewNop())
	check(err)
	defer pub.Disconnect(0)
	return run("bridge: MQTT QoS1 → bridge → Kafka acks=all", payloads, arr, conc, rate, func(p payload) error {
		return pub.Publish(ctx, p.topic, 1, false, p.data)
	})
}

func runPlain(ctx context.Context, kcfg kafkabus.Config, arr *arrivals, payloads []payload, conc, rate int) result {
	prod, err := kafkabus.NewProducer(kcfg, kafkabus.ProducerOptions{})
	check(err)
	defer prod.Close()
	topic := kcfg.Topic("plain")
	return run("plain kafka-go producer, acks=all", payloads, arr, conc, rate, func(p payload) error {
		return prod.Produce(ctx, kafka.Message{Topic: topic, Key: []byte(p.key), Value: p.data})
	})
}

func logger() *zap.Logger {
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	l, err := cfg.Build()
	check(err)
	return l
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
