// Command bridge measures the bridge near the broker's limit. In one run, on the same
// broker and with the same publishers and payloads (~51 KB examples), it measures
//
//   - the broker's own limit: MQTT QoS 1 publish → a subscriber (no Kafka);
//   - a bare kafka-go producer (acks=all), the bridge's Kafka client without the bridge;
//   - the bridge: MQTT QoS 1 publish → bridge → Kafka acks=all → the device's
//     confirmation (edgeloopv1.ExampleAck, which the bridge sends only after Kafka's ack);
//
// each as examples/s, p50/p99 latency and the CPU seconds per 1,000 examples of every
// process involved (the bridge and the embedded servers run as child processes; the
// real servers are found by their listening port), read from /proc/PID/stat.
//
//	go run ./bench/bridge -kafka 127.0.0.1:19092 -mqtt tcp://127.0.0.1:11883
//	go run ./bench/bridge -embedded
//	go run ./bench/bridge -profile bridge.pprof    # CPU profile of the bridge process
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/internal/fixture"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// partitions of the benchmark's topics.
const partitions = 6

// farEndTimeout bounds the wait for one example to reach its far end.
const farEndTimeout = 2 * time.Minute

func main() {
	role := flag.String("role", "", "internal: run as the bridge or servers child process")
	kafkaAddr := flag.String("kafka", "127.0.0.1:19092", "Kafka broker (real servers)")
	mqttURL := flag.String("mqtt", "tcp://127.0.0.1:11883", "MQTT broker (real servers)")
	useEmbedded := flag.Bool("embedded", false, "benchmark against the standalone's embedded servers instead")
	n := flag.Int("n", 2000, "examples per run")
	size := flag.Int("size", 50_000, "approximate example size in bytes")
	pubs := flag.Int("publishers", 32, "publishers (devices, one MQTT connection each; concurrent Produce calls for the bare producer)")
	warmup := flag.Int("warmup", 200, "examples sent through each path before measuring")
	rounds := flag.Int("rounds", 1, "rounds of every path and load")
	profile := flag.String("profile", "", "write the bridge process's CPU profile to this file")
	bridgeGOGC := flag.String("bridge-gogc", "", "GOGC of the bridge process (default: the environment's, else the bridge binary's, bridge.TuneGC)")
	prefix := flag.String("prefix", "", "internal: Kafka topic prefix (bridge child)")
	clientID := flag.String("client-id", "", "internal: MQTT client id (bridge child)")
	flag.Parse()

	switch *role {
	case "bridge":
		runBridgeChild(*kafkaAddr, *mqttURL, *prefix, *clientID, *profile)
		return
	case "servers":
		runServersChild()
		return
	case "":
	default:
		check(fmt.Errorf("unknown -role %q", *role))
	}

	b := &bench{n: *n, pubs: *pubs}
	env := "real Kafka 4.1 + Mosquitto"
	if *useEmbedded {
		srv := startChild("-role", "servers")
		defer srv.stop()
		for _, f := range strings.Fields(srv.line()) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "kafka":
				*kafkaAddr = v
			case "mqtt":
				*mqttURL = v
			}
		}
		env = "embedded kfake + mochi-mqtt (one process)"
		b.servers = []component{{name: "servers", pid: srv.pid()}}
	} else {
		b.servers = []component{{name: "Mosquitto", pid: listenerPID(port(*mqttURL))}, {name: "Kafka", pid: listenerPID(port(*kafkaAddr))}}
	}
	id := time.Now().UnixNano() % 1e6
	b.project = fmt.Sprintf("bench%d", id)
	b.kcfg = kafkabus.Config{Brokers: []string{*kafkaAddr}, ClientID: "bench", TopicPrefix: fmt.Sprintf("bench%d.", id)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	check(kafkabus.EnsureTopics(ctx, b.kcfg, partitions, b.kcfg.Topic(contract.TopicExamples), b.kcfg.Topic("plain")))

	// The bridge: its own process, its own persistent MQTT session, dropped at the end
	// so that the broker does not keep queueing examples for it.
	bridgeID := fmt.Sprintf("bench-bridge-%d", id)
	if *bridgeGOGC != "" {
		check(os.Setenv("GOGC", *bridgeGOGC)) // inherited by the bridge only: this process's GC is set at start
	}
	br := startChild("-role", "bridge", "-kafka", *kafkaAddr, "-mqtt", *mqttURL, "-prefix", b.kcfg.TopicPrefix,
		"-client-id", bridgeID, "-profile", *profile)
	bridgeStopped := false
	stopBridge := func() {
		if !bridgeStopped {
			bridgeStopped = true
			br.stop()
			dropSession(ctx, *mqttURL, bridgeID)
		}
	}
	defer stopBridge()
	b.bridge = component{name: "bridge", pid: br.pid()}

	b.connect(ctx, *mqttURL, *size)
	defer b.close()
	b.waitForBridge(ctx)

	if *warmup > 0 {
		b.n = *warmup
		b.runBroker(ctx, "w", closedLoad)
		b.runProducer(ctx, "w", closedLoad)
		b.runBridge(ctx, "w", closedLoad)
		b.n = *n
	}
	var results []result
	for r := 0; r < *rounds; r++ {
		var round []result
		for _, l := range []load{closedLoad, backlogLoad} {
			tag := fmt.Sprintf("%s%d", l.name()[:1], r)
			round = append(round, b.runBroker(ctx, tag, l))
			if l.kind == closedLoad.kind {
				round = append(round, b.runProducer(ctx, tag, l))
			}
			round = append(round, b.runBridge(ctx, tag, l))
		}
		// Paced at 0.8x the lower of the broker's limit and the bare producer's rate,
		// as publishers that wait only for the PUBACK (as agents do): the latency the
		// goal asks for at that rate.
		lower := min(best(round, "broker"), best(round, "bare"))
		paced := load{kind: pacedKind, rate: 0.8 * lower}
		tag := fmt.Sprintf("p%d", r)
		round = append(round, b.runBroker(ctx, tag, paced), b.runProducer(ctx, tag, paced), b.runBridge(ctx, tag, paced))
		results = append(results, round...)
	}
	stopBridge()
	b.print(env, results)
}

func port(addr string) int {
	if u, err := url.Parse(addr); err == nil && u.Port() != "" {
		addr = u.Host
	}
	_, p, _ := strings.Cut(addr, ":")
	v, _ := strconv.Atoi(p)
	return v
}

// bench holds the clients and settings shared by every run.
type bench struct {
	n, pubs int
	project string
	kcfg    kafkabus.Config
	servers []component
	bridge  component

	base    [][]byte // each publisher's example without its id
	devices []*mqttbus.Client
	sub     *mqttbus.Client
	subID   string
	mqttURL string
	prod    *kafkabus.Producer
	// cur is the run in progress; the subscribers' handlers report arrivals to it.
	cur atomic.Pointer[tracker]
}

func (b *bench) device(i int) string { return fmt.Sprintf("dev-%d", i) }

// connect builds the payloads and connects the publishers, the broker run's
// subscriber and the bare producer.
func (b *bench) connect(ctx context.Context, mqttURL string, size int) {
	side := 64
	for len(fixture.JPEG(side, side, 0)) < size {
		side += 8
	}
	for i := 0; i < b.pubs; i++ {
		ex := fixture.Example(b.project, b.device(i), "")
		ex.Image = &edgeloopv1.Image{Data: fixture.JPEG(side, side, uint64(i)), ContentType: "image/jpeg", Width: int32(side), Height: int32(side)}
		raw, err := proto.Marshal(ex)
		check(err)
		b.base = append(b.base, raw)
	}
	confirmations := func(m mqttbus.Message) {
		ack := &edgeloopv1.ExampleAck{}
		if proto.Unmarshal(m.Payload(), ack) != nil {
			return
		}
		if tr := b.cur.Load(); tr != nil {
			now := time.Now()
			for _, id := range ack.Ids {
				tr.arrive(id, now)
			}
		}
	}
	run := time.Now().UnixNano()
	for i := 0; i < b.pubs; i++ {
		c, err := mqttbus.Connect(ctx, mqttbus.Config{
			URL: mqttURL, ClientID: fmt.Sprintf("bench-%d-%s", run, b.device(i)), CleanSession: true,
			Subscriptions: []mqttbus.Subscription{{Filter: contract.AcksTopic(b.project, b.device(i)), QoS: 1, Handler: confirmations}},
		}, zap.NewNop())
		check(err)
		b.devices = append(b.devices, c)
	}
	// The broker run's subscriber has a persistent session, as the bridge has: the
	// broker keeps (and persists) what is queued for it.
	var err error
	b.subID, b.mqttURL = fmt.Sprintf("bench-%d-sub", run), mqttURL
	b.sub, err = mqttbus.Connect(ctx, mqttbus.Config{
		URL: mqttURL, ClientID: b.subID,
		Subscriptions: []mqttbus.Subscription{{Filter: "bench/" + b.project + "/+/examples", QoS: 1, Handler: func(m mqttbus.Message) {
			if tr := b.cur.Load(); tr != nil {
				tr.arrive(exampleID(m.Payload()), time.Now())
			}
		}}},
	}, zap.NewNop())
	check(err)
	b.prod, err = kafkabus.NewProducer(b.kcfg, kafkabus.ProducerOptions{})
	check(err)
}

func (b *bench) close() {
	for _, c := range b.devices {
		c.Disconnect(0)
	}
	b.sub.Disconnect(0)
	dropSession(context.Background(), b.mqttURL, b.subID)
	check(b.prod.Close())
}

// payloads are the examples of one run: publisher i's are from device i.
func (b *bench) payloads(tag string) [][]payload {
	out := make([][]payload, b.pubs)
	for k := 0; k < b.n; k++ {
		i := k % b.pubs
		id := fmt.Sprintf("%s-%d", tag, k)
		// Field 1 (id) appended to the encoded example: protobuf takes fields in any order.
		data := protowire.AppendString(protowire.AppendTag(append([]byte(nil), b.base[i]...), 1, protowire.BytesType), id)
		out[i] = append(out[i], payload{id: id, data: data})
	}
	return out
}

type payload struct {
	id   string
	data []byte
}

// waitForBridge publishes probes until the bridge confirms one: it is subscribed and
// its Kafka producer works.
func (b *bench) waitForBridge(ctx context.Context) {
	deadline := time.Now().Add(time.Minute)
	for k := 0; ; k++ {
		tr := newTracker(1)
		b.cur.Store(tr)
		id := fmt.Sprintf("probe-%d", k)
		done := tr.begin(id)
		data := protowire.AppendString(protowire.AppendTag(append([]byte(nil), b.base[0]...), 1, protowire.BytesType), id)
		check(b.devices[0].Publish(ctx, contract.ExamplesTopic(b.project, b.device(0)), 1, false, data))
		select {
		case <-done:
			return
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			check(fmt.Errorf("the bridge did not confirm a probe example within a minute"))
		}
	}
}

// load is how the publishers send.
type load struct {
	kind int
	rate float64 // examples/s in all, for pacedKind
}

const (
	// closedKind: each publisher sends its next example once the last reached its far end.
	closedKind = iota
	// backlogKind: each publisher sends its next example once the broker PUBACKed the
	// last (for the producer, once Kafka acked it), so examples may queue in the broker.
	backlogKind
	// pacedKind: as backlogKind, at rate examples/s in all.
	pacedKind
)

var (
	closedLoad  = load{kind: closedKind}
	backlogLoad = load{kind: backlogKind}
)

func (l load) name() string {
	switch l.kind {
	case closedKind:
		return "closed"
	case backlogKind:
		return "backlog"
	}
	return fmt.Sprintf("paced %.0f/s", l.rate)
}

func (b *bench) runBroker(ctx context.Context, tag string, l load) result {
	return b.run("broker: MQTT QoS1 → subscriber", tag, l, func(i int, p payload) error {
		return b.devices[i].Publish(ctx, "bench/"+b.project+"/"+b.device(i)+"/examples", 1, false, p.data)
	}, "")
}

func (b *bench) runProducer(ctx context.Context, tag string, l load) result {
	topic := b.kcfg.Topic("plain")
	key := []byte(b.project)
	return b.run("bare kafka-go producer, acks=all", tag, l, func(_ int, p payload) error {
		if err := b.prod.Produce(ctx, kafka.Message{Topic: topic, Key: key, Value: p.data}); err != nil {
			return err
		}
		b.cur.Load().arrive(p.id, time.Now())
		return nil
	}, topic)
}

func (b *bench) runBridge(ctx context.Context, tag string, l load) result {
	return b.run("bridge: MQTT QoS1 → bridge → Kafka acks=all", tag, l, func(i int, p payload) error {
		return b.devices[i].Publish(ctx, contract.ExamplesTopic(b.project, b.device(i)), 1, false, p.data)
	}, b.kcfg.Topic(contract.TopicExamples))
}

// run sends every payload, publisher i's from its own goroutine, as load says, and
// waits until each reached its far end. topic, when set, is checked to have grown by at
// least the examples sent.
func (b *bench) run(name, tag string, l load, send func(i int, p payload) error, topic string) result {
	ps := b.payloads(tag)
	tr := newTracker(b.n)
	b.cur.Store(tr)
	var before int64
	if topic != "" {
		before = endOffsets(b.kcfg, topic)
	}
	comps := b.components()
	runtime.GC()
	cpu0 := sample(comps)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k, p := range ps[i] {
				if l.kind == pacedKind { // example k of publisher i is the (k*pubs+i)-th in all
					time.Sleep(time.Until(start.Add(time.Duration(float64(k*b.pubs+i) / l.rate * float64(time.Second)))))
				}
				done := tr.begin(p.id)
				check(send(i, p))
				if l.kind != closedKind {
					continue
				}
				select {
				case <-done:
				case <-time.After(farEndTimeout):
					check(fmt.Errorf("%s: example %s did not reach its far end in %s", name, p.id, farEndTimeout))
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-tr.all:
	case <-time.After(farEndTimeout):
		check(fmt.Errorf("%s: only %d of %d examples reached their far end", name, b.n-tr.left(), b.n))
	}
	cpu1 := sample(comps)
	r := result{name: name, load: l, n: b.n, bytes: len(ps[0][0].data), wall: tr.last.Sub(start), latencies: tr.lat,
		cpu: perThousand(comps, cpu0, cpu1, b.n)}
	if topic != "" {
		if got := endOffsets(b.kcfg, topic) - before; got < int64(b.n) {
			check(fmt.Errorf("%s: %s grew by %d messages, want %d", name, topic, got, b.n))
		}
	}
	return r
}

// best is the highest rate of the results whose name starts with prefix.
func best(rs []result, prefix string) float64 {
	v := 0.0
	for _, r := range rs {
		if strings.HasPrefix(r.name, prefix) {
			v = max(v, r.rate())
		}
	}
	return v
}

// components are the processes whose CPU a run reports: the bridge, the servers, and
// this process (the load generator).
func (b *bench) components() []component {
	return append(append([]component{b.bridge}, b.servers...), component{name: "load generator", pid: "self"})
}

// endOffsets sums topic's end offsets over its partitions.
func endOffsets(kcfg kafkabus.Config, topic string) int64 {
	var sum int64
	for p := 0; p < partitions; p++ {
		conn, err := kafka.DialLeader(context.Background(), "tcp", kcfg.Brokers[0], topic, p)
		check(err)
		end, err := conn.ReadLastOffset()
		check(err)
		check(conn.Close())
		sum += end
	}
	return sum
}

// tracker records when each example of a run was sent and when it reached its far end.
type tracker struct {
	mu    sync.Mutex
	start map[string]time.Time
	done  map[string]chan struct{}
	lat   []time.Duration
	last  time.Time
	want  int
	all   chan struct{}
}

func newTracker(n int) *tracker {
	return &tracker{start: make(map[string]time.Time, n), done: make(map[string]chan struct{}, n), want: n, all: make(chan struct{})}
}

// begin marks id as sent now; the channel closes when it arrives.
func (t *tracker) begin(id string) <-chan struct{} {
	ch := make(chan struct{})
	t.mu.Lock()
	t.start[id], t.done[id] = time.Now(), ch
	t.mu.Unlock()
	return ch
}

// arrive records id's arrival at its far end; repeats and unknown ids are ignored.
func (t *tracker) arrive(id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch, ok := t.done[id]
	if !ok {
		return
	}
	delete(t.done, id)
	close(ch)
	t.lat = append(t.lat, at.Sub(t.start[id]))
	if at.After(t.last) {
		t.last = at
	}
	if len(t.lat) == t.want {
		close(t.all)
	}
}

func (t *tracker) left() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.want - len(t.lat)
}

// exampleID reads field 1 (id) of an encoded edgeloopv1.Example (the last one wins).
func exampleID(b []byte) string {
	id := ""
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return id
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return id
		}
		if num == 1 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			id = string(v)
		}
		b = b[m:]
	}
	return id
}

type result struct {
	name      string
	load      load
	n, bytes  int
	wall      time.Duration
	latencies []time.Duration
	cpu       []string
}

func (r result) rate() float64 { return float64(r.n) / r.wall.Seconds() }

func (r result) quantile(p float64) time.Duration {
	s := append([]time.Duration(nil), r.latencies...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (b *bench) print(env string, results []result) {
	comps := b.components()
	avg, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nBridge benchmark on %s: %d publishers, examples of %d KB, %d per run (%s, %d CPUs, load average %s)\n",
		env, b.pubs, results[0].bytes/1000, b.n, time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(),
		strings.Join(strings.Fields(string(avg))[:3], " "))
	fmt.Println("Latency, from the publish (or Produce call) to the far end: the subscriber's receipt (broker); Kafka's ack")
	fmt.Println("(bare producer); the device's confirmation, which the bridge sends after Kafka's ack (bridge).")
	fmt.Println("closed: each publisher sends its next example once the last reached its far end. backlog: once the")
	fmt.Println("broker PUBACKed it (as agents do), so examples queue in the broker and latency grows with the run.")
	fmt.Println("paced: as backlog, at 0.8x the lower of the broker's limit and the bare producer's rate.")
	fmt.Println()
	head := "| path | load | examples/s | MB/s | p50 ms | p99 ms |"
	sep := "|---|---|---:|---:|---:|---:|"
	for _, c := range comps {
		head += " CPU-s/1k " + c.name + " |"
		sep += "---:|"
	}
	fmt.Println(head)
	fmt.Println(sep)
	for _, r := range results {
		fmt.Printf("| %s | %s | %.0f | %.1f | %.1f | %.1f | %s |\n", r.name, r.load.name(), r.rate(), r.rate()*float64(r.bytes)/1e6,
			ms(r.quantile(0.5)), ms(r.quantile(0.99)), strings.Join(r.cpu, " | "))
	}
	fmt.Println()
	// The goal, per round: the bridge's best rate ≥ 0.8x the lower of the broker's best
	// and the bare producer's, and its p50 under 100 ms paced at that rate.
	per := len(results) / max(1, countPrefix(results, "bridge")/3)
	for i := 0; i+per <= len(results); i += per {
		round := results[i : i+per]
		brk, prod, br := best(round, "broker"), best(round, "bare"), best(round, "bridge")
		lower := min(brk, prod)
		var paced result
		for _, r := range round {
			if r.load.kind == pacedKind && strings.HasPrefix(r.name, "bridge") {
				paced = r
			}
		}
		p50 := ms(paced.quantile(0.5))
		met := br >= 0.8*lower && paced.rate() >= 0.95*paced.load.rate && p50 < 100
		fmt.Printf("bridge %.0f/s = %.2fx the broker's limit (%.0f/s), %.2fx the bare producer (%.0f/s); paced at %.0f/s it forwards %.0f/s, p50 %.1f ms; goal (>= 0.8x the lower, p50 < 100 ms): %s\n",
			br, br/brk, brk, br/prod, prod, paced.load.rate, paced.rate(), p50, map[bool]string{true: "met", false: "NOT met"}[met])
	}
}

func countPrefix(rs []result, prefix string) int {
	n := 0
	for _, r := range rs {
		if strings.HasPrefix(r.name, prefix) {
			n++
		}
	}
	return n
}

// dropSession ends the persistent MQTT session of clientID: a clean-session connect
// discards it, so the broker stops queueing for it.
func dropSession(ctx context.Context, mqttURL, clientID string) {
	c, err := mqttbus.Connect(ctx, mqttbus.Config{URL: mqttURL, ClientID: clientID, CleanSession: true}, zap.NewNop())
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: dropping the bridge's MQTT session:", err)
		return
	}
	c.Disconnect(0)
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
