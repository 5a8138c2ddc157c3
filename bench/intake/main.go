// Command intake measures the curator's intake on real Kafka and MinIO, each figure
// beside its peer from the same run: the curator queueing one example at a time (one
// ledger compare-and-swap each: what it did before the group commit, -batch 1) and
// with the group commit (one ledger update per project per consumer poll).
//
//	go run ./bench/intake -mode curator -n 3000
//	go run ./bench/intake -mode fleet -devices 1000 -rate 1000 -duration 15s
//
// curator: n small examples of one project are in Kafka before the curator starts; it
// reports examples queued per second (sustained: first to last queued) and CPU per
// 1,000 examples. fleet: devices light MQTT clients (paho, one connection each) publish
// QoS 1 at a paced total rate for a while, through a bridge and a curator running as
// processes of their own; it reports the examples queued per second and the latency
// from each example's PUBACK to its queueing (its project's ledger write returned),
// with the CPU-seconds of every component. "Queued" is observed inside the curator
// process: its object store is wrapped to note when each example id first appears in
// a ledger write that succeeded.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/embedded"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// partitions of the benchmark's topics.
const partitions = 6

// pid is the benchmark's one project.
const pid = "fleet"

type opts struct {
	env               string
	kafka, s3, mqtt   string
	s3Key, s3Secret   string
	batch             int
	wait              time.Duration
	n                 int
	devices, rate     int
	duration, drain   time.Duration
	prefix, bucket    string
	group, cpuprofile string
}

func main() {
	var o opts
	mode := flag.String("mode", "curator", "curator (intake alone) or fleet (devices → bridge → Kafka → curator)")
	role := flag.String("role", "", "internal: run one component (bridge or curator) as a process of its own")
	flag.StringVar(&o.kafka, "kafka", "127.0.0.1:19092", "Kafka broker")
	flag.StringVar(&o.s3, "s3", "127.0.0.1:19000", "MinIO endpoint")
	flag.StringVar(&o.s3Key, "s3-access-key", "edgeloop", "MinIO access key")
	flag.StringVar(&o.s3Secret, "s3-secret-key", "edgeloop-secret", "MinIO secret key")
	flag.StringVar(&o.mqtt, "mqtt", "tcp://127.0.0.1:11883", "MQTT broker")
	flag.IntVar(&o.batch, "batch", 500, "the group commit's most examples per poll (its peer runs with 1)")
	flag.DurationVar(&o.wait, "wait", 10*time.Millisecond, "how long a poll waits for more examples after its first")
	flag.IntVar(&o.n, "n", 3000, "curator: examples in Kafka before the curator starts")
	flag.IntVar(&o.devices, "devices", 1000, "fleet: simulated devices, one MQTT connection each")
	flag.IntVar(&o.rate, "rate", 1000, "fleet: examples per second, all devices together, paced")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "fleet: how long the devices publish")
	flag.DurationVar(&o.drain, "drain", 30*time.Second, "how long to wait for the last examples to be queued")
	flag.StringVar(&o.prefix, "prefix", "", "internal: topic prefix")
	flag.StringVar(&o.bucket, "bucket", "", "internal: bucket")
	flag.StringVar(&o.group, "group", "", "internal: consumer group")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write the curator's CPU profile of the group-commit run here")
	useEmbedded := flag.Bool("embedded", false, "run against the standalone's embedded servers (a smoke run: their figures are not MinIO's)")
	flag.Parse()
	o.env = "real Kafka + MinIO"
	if *useEmbedded && *role == "" {
		o.env = "the embedded servers (smoke run)"
		dir, err := os.MkdirTemp("", "bench-intake")
		check(err)
		defer os.RemoveAll(dir)
		srv, err := embedded.Start(embedded.Config{Dir: dir}, logger())
		check(err)
		defer srv.Close()
		o.kafka, o.s3, o.mqtt, o.s3Key, o.s3Secret = srv.KafkaAddr, srv.S3Addr, srv.MQTTURL, srv.S3AccessKey, srv.S3SecretKey
	}
	switch {
	case *role == "bridge":
		runBridge(o)
	case *role == "curator":
		runCuratorProcess(o)
	case *mode == "curator":
		benchCurator(o)
	case *mode == "fleet":
		benchFleet(o)
	default:
		check(fmt.Errorf("unknown mode %q (want curator or fleet)", *mode))
	}
}

// ---- the queue clock: when each example id was queued -------------------------------

// queueClock is an object store that tells onQueued the ids that appear for the first
// time in a ledger write that succeeded, with the time the write returned.
type queueClock struct {
	objstore.Store
	mu       sync.Mutex
	seen     map[string]bool
	onQueued func(ids []string, at time.Time)
	ledgers  atomic.Int64
}

func newQueueClock(s objstore.Store, onQueued func([]string, time.Time)) *queueClock {
	return &queueClock{Store: s, seen: map[string]bool{}, onQueued: onQueued}
}

func (q *queueClock) Put(ctx context.Context, key string, data []byte, o objstore.PutOptions) (string, error) {
	etag, err := q.Store.Put(ctx, key, data, o)
	if err != nil || !strings.HasSuffix(key, "/ledger.json") {
		return etag, err
	}
	at := time.Now()
	q.ledgers.Add(1)
	var l struct {
		Recent []string `json:"recent"`
	}
	if json.Unmarshal(data, &l) != nil {
		return etag, err
	}
	q.mu.Lock()
	var fresh []string
	for _, id := range l.Recent {
		if !q.seen[id] {
			q.seen[id] = true
			fresh = append(fresh, id)
		}
	}
	q.mu.Unlock()
	if len(fresh) > 0 {
		q.onQueued(fresh, at)
	}
	return etag, err
}

// ---- shared set-up ------------------------------------------------------------------

func kafkaConfig(o opts, prefix string) kafkabus.Config {
	return kafkabus.Config{Brokers: []string{o.kafka}, ClientID: "bench-intake", TopicPrefix: prefix}
}

func s3Config(o opts, bucket string) s3store.Config {
	return s3store.Config{Endpoint: o.s3, Bucket: bucket, AccessKey: o.s3Key, SecretKey: o.s3Secret}
}

// setUp makes a run's topics and its bucket with the project.
func setUp(ctx context.Context, o opts, prefix, bucket string) {
	k := kafkaConfig(o, prefix)
	check(kafkabus.EnsureTopics(ctx, k, partitions, k.Topic(contract.TopicExamples), k.Topic(contract.TopicDeadLetter), k.Topic(contract.TopicBatchesApproved)))
	s, err := s3store.Open(ctx, s3Config(o, bucket))
	check(err)
	p := &project.Project{ID: pid, Task: "classify", Classes: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}}
	p.Defaults()
	check((&project.Store{S: s}).CreateProject(ctx, p))
}

// example is example i of device dev: a distinct 28×28 noise picture (no two look
// alike), its own frame.
func example(run string, dev, i int) *edgeloopv1.Example {
	r := rand.New(rand.NewPCG(uint64(dev), uint64(i)))
	im := raster.New(28, 28)
	for j := range im.Pix {
		im.Pix[j] = r.Float32()
	}
	device := fmt.Sprintf("cam-%04d", dev)
	return &edgeloopv1.Example{
		Id: fmt.Sprintf("%s-%04d-%06d", run, dev, i), Project: pid, Device: device, CapturedAt: timestamppb.Now(),
		FrameId: fmt.Sprintf("f%d", i), Task: edgeloopv1.Task_TASK_CLASSIFY, ModelVersion: 1, AgentVersion: "bench",
		Image:       &edgeloopv1.Image{Data: im.EncodePNG(), ContentType: "image/png", Width: 28, Height: 28},
		Predictions: []*edgeloopv1.Prediction{{ClassName: strconv.Itoa(r.IntN(10)), Confidence: 0.3 + 0.4*r.Float32()}},
		Reasons:     []*edgeloopv1.SamplingReason{{Kind: edgeloopv1.SamplingKind_SAMPLING_KIND_CLOSE_TO_THRESHOLD, Strategy: "near-threshold", Score: 0.05}},
		TakenBy:     edgeloopv1.SamplingKind_SAMPLING_KIND_CLOSE_TO_THRESHOLD,
	}
}

func runID() string { return fmt.Sprintf("b%06d", time.Now().UnixNano()%1e6) }

// ---- curator alone --------------------------------------------------------------------

type intakeResult struct {
	name        string
	n, queued   int
	start, last time.Time
	cpu, minio  float64
	ledgers     int64
}

func benchCurator(o opts) {
	ctx := context.Background()
	run := runID()
	minio := pidOnPort(o.s3)
	var rs []intakeResult
	for _, v := range []struct {
		name  string
		batch int
	}{{"one by one (before): a ledger CAS per example", 1}, {fmt.Sprintf("group commit (after): up to %d per poll", o.batch), o.batch}} {
		prefix := fmt.Sprintf("%s-%d.", run, v.batch)
		bucket := fmt.Sprintf("%s-%d", run, v.batch)
		setUp(ctx, o, prefix, bucket)
		k := kafkaConfig(o, prefix)
		prod, err := kafkabus.NewProducer(k, kafkabus.ProducerOptions{})
		check(err)
		s, err := s3store.Open(ctx, s3Config(o, bucket))
		check(err)
		r := intakeResult{name: v.name, n: o.n}
		var mu sync.Mutex
		probed := make(chan struct{})
		qc := newQueueClock(s, func(ids []string, at time.Time) {
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if strings.HasPrefix(id, "probe-") {
					close(probed)
					continue
				}
				r.queued++
				r.last = at
			}
		})
		cur := curator.New(qc, prod, k, curator.NewMetrics(prometheus.NewRegistry()), logger())
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- cur.Consume(cctx, k, "bench-"+bucket, kafkabus.BatchOptions{MaxSize: v.batch, MaxWait: o.wait}, curator.GiveUpPolicy{}, prod, prometheus.NewRegistry())
		}()
		// The consumer has joined its group once a probe is queued; then the examples.
		produce(ctx, prod, k, example("probe", 9999, 0))
		select {
		case <-probed:
		case <-time.After(2 * time.Minute):
			check(errors.New("the curator did not queue the probe within 2 minutes"))
		}
		var exs []*edgeloopv1.Example
		for i := 0; i < o.n; i++ {
			exs = append(exs, example(run, i%100, i))
		}
		cpu0, minio0 := cpuSeconds(os.Getpid()), cpuSeconds(minio)
		var stopProfile func()
		if o.cpuprofile != "" && v.batch > 1 {
			stopProfile = startProfile(o.cpuprofile)
		}
		r.start = time.Now()
		go produce(ctx, prod, k, exs...)
		deadline := time.Now().Add(o.drain + time.Duration(o.n)*20*time.Millisecond)
		for {
			mu.Lock()
			q := r.queued
			mu.Unlock()
			if q >= o.n || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		r.cpu, r.minio = cpuSeconds(os.Getpid())-cpu0, cpuSeconds(minio)-minio0
		if stopProfile != nil {
			stopProfile()
		}
		cancel()
		check(<-done)
		check(prod.Close())
		r.ledgers = qc.ledgers.Load()
		rs = append(rs, r)
	}
	fmt.Printf("\nCurator intake on %s: %d small examples (28×28 PNG, ~1 KB) of one project, produced to Kafka as fast as it takes them once the curator is up\n", o.env, o.n)
	fmt.Println("Examples/s: examples queued over the time from the first produced to the last queued; CPU-seconds per 1,000 examples queued (the producer runs in the curator's process and counts in its CPU; MinIO's includes whatever else used it meanwhile).")
	fmt.Println()
	fmt.Println("| curator | examples queued | ledger writes | examples/s | first produced → all queued | curator CPU s / 1k | MinIO CPU s / 1k |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, r := range rs {
		fmt.Printf("| %s | %d of %d | %d | %.0f | %.1f s | %.2f | %.2f |\n", r.name, r.queued, r.n, r.ledgers, r.rate(),
			r.last.Sub(r.start).Seconds(), 1000*r.cpu/float64(max(r.queued, 1)), 1000*r.minio/float64(max(r.queued, 1)))
	}
	fmt.Printf("\ngroup commit / one by one: examples/s %.1fx (target: ≥ 1,000 examples/s for the project)\n", rs[1].rate()/rs[0].rate())
}

func (r intakeResult) rate() float64 {
	if r.queued == 0 {
		return 0
	}
	return float64(r.queued) / r.last.Sub(r.start).Seconds()
}

// produce writes examples to the examples topic, keyed by project, 500 at a time.
func produce(ctx context.Context, prod *kafkabus.Producer, k kafkabus.Config, exs ...*edgeloopv1.Example) {
	for len(exs) > 0 {
		n := min(500, len(exs))
		msgs := make([]kafka.Message, n)
		for i, ex := range exs[:n] {
			b, err := proto.Marshal(ex)
			check(err)
			msgs[i] = kafka.Message{Topic: k.Topic(contract.TopicExamples), Key: []byte(ex.Project), Value: b}
		}
		check(prod.Produce(ctx, msgs...))
		exs = exs[n:]
	}
}

// ---- the fleet ------------------------------------------------------------------------

// child is a component running as a process of its own.
type child struct {
	name string
	cmd  *exec.Cmd
}

func spawn(name string, args ...string) (*child, io.Reader) {
	exe, err := os.Executable()
	check(err)
	cmd := exec.Command(exe, append([]string{"-role", name}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	return &child{name: name, cmd: cmd}, out
}

func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	_ = c.cmd.Wait()
}

type fleetResult struct {
	name                  string
	sent, acked, queued   int
	start, firstAck, last time.Time
	lat, ackLat           []time.Duration
	cpu                   map[string]float64
}

func benchFleet(o opts) {
	servers := map[string]int{"minio": pidOnPort(o.s3), "kafka": pidOnPort(o.kafka), "mosquitto": pidOnPort(strings.TrimPrefix(o.mqtt, "tcp://"))}
	var rs []fleetResult
	for _, batch := range []int{1, o.batch} {
		rs = append(rs, fleetRun(o, batch, servers))
	}
	fmt.Printf("\nFleet on %s + Mosquitto: %d devices (paho, one MQTT connection each, loopback) publishing small examples (28×28 PNG, ~1 KB) QoS 1 at %d/s together for %s, one project; a bridge and a curator, each a process of its own\n",
		o.env, o.devices, o.rate, o.duration)
	fmt.Println("Latency: PUBACK → queued (the project's ledger write that holds the example returned); PUBACK: publish → PUBACK. CPU: seconds over the whole run (the servers are shared with other work on this machine).")
	fmt.Println()
	fmt.Println("| curator | sent | PUBACKed | queued | queued/s sustained | PUBACK → queued p50 / p99 | publish → PUBACK p50 / p99 | CPU s: devices / bridge / curator / Mosquitto / Kafka / MinIO |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		rate := 0.0
		if r.queued > 1 {
			rate = float64(r.queued) / r.last.Sub(r.firstAck).Seconds()
		}
		c := r.cpu
		fmt.Printf("| %s | %d | %d | %d | %.0f | %s / %s | %s / %s | %.1f / %.1f / %.1f / %.1f / %.1f / %.1f |\n", r.name, r.sent, r.acked, r.queued, rate,
			ms(q(r.lat, 0.5)), ms(q(r.lat, 0.99)), ms(q(r.ackLat, 0.5)), ms(q(r.ackLat, 0.99)),
			c["devices"], c["bridge"], c["curator"], c["mosquitto"], c["kafka"], c["minio"])
	}
	fmt.Println()
	fmt.Println("CPU-seconds per 1,000 examples queued:")
	fmt.Println()
	fmt.Println("| curator | devices | bridge | curator | Mosquitto | Kafka | MinIO |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, r := range rs {
		per := func(k string) float64 { return 1000 * r.cpu[k] / float64(max(r.queued, 1)) }
		fmt.Printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", r.name, per("devices"), per("bridge"), per("curator"), per("mosquitto"), per("kafka"), per("minio"))
	}
	if len(rs) == 2 && len(rs[0].lat) > 0 && len(rs[1].lat) > 0 {
		fmt.Printf("\ngroup commit / one by one: queued %d vs %d of %d sent; PUBACK → queued p50 %.3fx\n", rs[1].queued, rs[0].queued, rs[1].sent,
			q(rs[1].lat, 0.5).Seconds()/q(rs[0].lat, 0.5).Seconds())
	}
}

func fleetRun(o opts, batch int, servers map[string]int) fleetResult {
	ctx := context.Background()
	run := runID()
	prefix, bucket := run+".", run
	setUp(ctx, o, prefix, bucket)
	common := []string{"-kafka", o.kafka, "-s3", o.s3, "-s3-access-key", o.s3Key, "-s3-secret-key", o.s3Secret, "-mqtt", o.mqtt, "-prefix", prefix, "-bucket", bucket}
	br, brOut := spawn("bridge", append(common, "-group", run)...)
	args := append(common, "-group", "curator-"+run, "-batch", strconv.Itoa(batch), "-wait", o.wait.String())
	if o.cpuprofile != "" && batch > 1 {
		args = append(args, "-cpuprofile", o.cpuprofile)
	}
	cu, cuOut := spawn("curator", args...)
	ready := func(r io.Reader, name string) *bufio.Scanner {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if sc.Text() == "ready" {
				return sc
			}
		}
		check(fmt.Errorf("%s ended before it was ready", name))
		return nil
	}
	ready(brOut, "bridge")
	go io.Copy(io.Discard, brOut)
	cuLines := ready(cuOut, "curator")

	name := "one by one (before)"
	if batch > 1 {
		name = fmt.Sprintf("group commit (after), ≤ %d per poll", batch)
	}
	r := fleetResult{name: name, cpu: map[string]float64{}}
	var mu sync.Mutex
	acked := map[string]time.Time{}
	queuedAt := map[string]time.Time{}
	go func() {
		for cuLines.Scan() { // "q <unix ns> <id> <id> …"
			f := strings.Fields(cuLines.Text())
			if len(f) < 3 || f[0] != "q" {
				continue
			}
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			at := time.Unix(0, ns)
			mu.Lock()
			for _, id := range f[2:] {
				queuedAt[id] = at
			}
			mu.Unlock()
		}
	}()

	// The devices: connect, then publish paced, each on its own phase.
	perDevice := int(math.Ceil(float64(o.rate) * o.duration.Seconds() / float64(o.devices)))
	payloads := make([][][]byte, o.devices)
	for d := range payloads {
		for i := 0; i < perDevice; i++ {
			b, err := proto.Marshal(example(run, d, i))
			check(err)
			payloads[d] = append(payloads[d], b)
		}
	}
	clients := make([]mqtt.Client, o.devices)
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for d := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			opts := mqtt.NewClientOptions().AddBroker(o.mqtt).SetClientID(fmt.Sprintf("%s-dev-%04d", run, d)).
				SetCleanSession(true).SetAutoReconnect(true).SetMaxResumePubInFlight(10).SetWriteTimeout(10 * time.Second)
			c := mqtt.NewClient(opts)
			t := c.Connect()
			t.Wait()
			check(t.Error())
			clients[d] = c
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range clients {
			c.Disconnect(0)
		}
	}()
	cpu := map[string]float64{"devices": cpuSeconds(os.Getpid()), "bridge": cpuSeconds(br.cmd.Process.Pid), "curator": cpuSeconds(cu.cmd.Process.Pid)}
	for k, p := range servers {
		cpu[k] = cpuSeconds(p)
	}
	interval := time.Duration(float64(o.devices) / float64(o.rate) * float64(time.Second))
	r.start = time.Now()
	var sent atomic.Int64
	var pubs sync.WaitGroup
	for d, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			phase := time.Duration(d) * interval / time.Duration(o.devices)
			topic := contract.ExamplesTopic(pid, fmt.Sprintf("cam-%04d", d))
			for i, p := range payloads[d] {
				at := r.start.Add(phase + time.Duration(i)*interval)
				if at.Sub(r.start) >= o.duration {
					return
				}
				time.Sleep(time.Until(at))
				sentAt := time.Now()
				tok := c.Publish(topic, 1, false, p)
				sent.Add(1)
				id := fmt.Sprintf("%s-%04d-%06d", run, d, i)
				pubs.Add(1)
				go func() {
					defer pubs.Done()
					if !tok.WaitTimeout(o.duration+o.drain) || tok.Error() != nil {
						return
					}
					now := time.Now()
					mu.Lock()
					acked[id] = now
					r.ackLat = append(r.ackLat, now.Sub(sentAt))
					mu.Unlock()
				}()
			}
		}()
	}
	wg.Wait()
	pubs.Wait()
	r.sent = int(sent.Load())
	// Until every PUBACKed example is queued, or the drain runs out.
	deadline := time.Now().Add(o.drain)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := 0
		for id := range acked {
			if _, ok := queuedAt[id]; ok {
				n++
			}
		}
		all := n == len(acked)
		mu.Unlock()
		if all {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for k, v := range map[string]float64{"devices": cpuSeconds(os.Getpid()), "bridge": cpuSeconds(br.cmd.Process.Pid), "curator": cpuSeconds(cu.cmd.Process.Pid)} {
		r.cpu[k] = v - cpu[k]
	}
	for k, p := range servers {
		r.cpu[k] = cpuSeconds(p) - cpu[k]
	}
	mu.Lock()
	r.acked = len(acked)
	r.firstAck = r.start
	for id, a := range acked {
		if a.Before(r.firstAck) || r.firstAck == r.start {
			r.firstAck = a
		}
		if qa, ok := queuedAt[id]; ok {
			r.queued++
			r.lat = append(r.lat, qa.Sub(a))
			if qa.After(r.last) {
				r.last = qa
			}
		}
	}
	mu.Unlock()
	cu.stop()
	br.stop()
	return r
}

// runBridge is the bridge's process.
func runBridge(o opts) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		time.Sleep(2 * time.Second) // its shared subscription is in place
		fmt.Println("ready")
	}()
	check(bridge.RunService(ctx, bridge.ServiceConfig{
		Kafka: kafkaConfig(o, o.prefix), OpsAddr: "127.0.0.1:0", Partitions: partitions,
		MQTT:    mqttbus.Config{URL: o.mqtt, ClientID: o.group},
		Options: bridge.Options{ShareGroup: o.group, ReleaseGroup: o.group},
	}, logger()))
}

// runCuratorProcess is the curator's intake as a process: it prints "ready" once its
// consumer group took the topic, then "q <unix ns> <ids…>" for every ledger write that
// queued examples.
func runCuratorProcess(o opts) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	k := kafkaConfig(o, o.prefix)
	s, err := s3store.Open(ctx, s3Config(o, o.bucket))
	check(err)
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	flush := time.NewTicker(10 * time.Millisecond)
	defer flush.Stop()
	go func() {
		for range flush.C {
			mu.Lock()
			out.Flush()
			mu.Unlock()
		}
	}()
	qc := newQueueClock(s, func(ids []string, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "q %d %s\n", at.UnixNano(), strings.Join(ids, " "))
	})
	prod, err := kafkabus.NewProducer(k, kafkabus.ProducerOptions{})
	check(err)
	defer prod.Close()
	cur := curator.New(qc, prod, k, curator.NewMetrics(prometheus.NewRegistry()), logger())
	if o.cpuprofile != "" {
		defer startProfile(o.cpuprofile)()
	}
	go func() {
		// A probe: the consumer has joined its group once the probe is queued.
		produce(ctx, prod, k, example("probe", 9999, 0)) // a picture of its own: no look-alike of a device's
		for {
			time.Sleep(50 * time.Millisecond)
			qc.mu.Lock()
			ok := qc.seen["probe-9999-000000"]
			qc.mu.Unlock()
			if ok {
				mu.Lock()
				fmt.Fprintln(out, "ready")
				out.Flush()
				mu.Unlock()
				return
			}
		}
	}()
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = cur.Tick(ctx)
			}
		}
	}()
	err = cur.Consume(ctx, k, o.group, kafkabus.BatchOptions{MaxSize: o.batch, MaxWait: o.wait}, curator.GiveUpPolicy{}, prod, prometheus.NewRegistry())
	if !errors.Is(err, context.Canceled) {
		check(err)
	}
	mu.Lock()
	out.Flush()
	mu.Unlock()
}

// ---- measuring ------------------------------------------------------------------------

// cpuSeconds is a process's user + system CPU time (0 when it cannot be read).
func cpuSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // after "pid (comm) "
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// pidOnPort finds the process listening on addr's port (0 when none can be seen).
func pidOnPort(addr string) int {
	_, port, _ := strings.Cut(addr, ":")
	p, err := strconv.Atoi(port)
	if err != nil {
		return 0
	}
	hex := fmt.Sprintf(":%04X", p)
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			x := strings.Fields(line)
			if len(x) > 9 && strings.HasSuffix(x[1], hex) && x[3] == "0A" {
				inodes["socket:["+x[9]+"]"] = true
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		if l, err := os.Readlink(fd); err == nil && inodes[l] {
			n, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			return n
		}
	}
	return 0
}

// startProfile writes this process's CPU profile to path until the returned function
// is called.
func startProfile(path string) func() {
	f, err := os.Create(path)
	check(err)
	check(pprof.StartCPUProfile(f))
	return func() {
		pprof.StopCPUProfile()
		check(f.Close())
	}
}

func q(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[max(int(math.Ceil(p*float64(len(s))))-1, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

func logger() *zap.Logger {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
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
