package curator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
	"github.com/edgeloop/edgeloop/pkg/retry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// ServiceConfig is everything the curator service needs.
type ServiceConfig struct {
	Kafka  kafkabus.Config
	S3     s3store.Config
	Tokens *httpapi.Tokens
	// Addr serves the UI and the API.
	Addr string
	// OpsAddr serves /healthz, /readyz and /metrics, which need no token: keep it off
	// the public network (empty: none).
	OpsAddr string
	// TLS, when set, makes both servers HTTPS only.
	TLS *tls.Config
	// Group is the Kafka consumer group (default "curator").
	Group string
	// Partitions of the topics created when missing (default 6).
	Partitions int
	// Intake bounds the group commit of ingestion: how many examples one poll gathers
	// and queues with one ledger update per project (default 500, waiting 10ms for them;
	// MaxSize 1 queues them one by one).
	Intake kafkabus.BatchOptions
	// Tick is how often open batches are checked for closing (default 2s).
	Tick time.Duration
	// GiveUp is how an example that keeps failing is retried before it is dead-lettered
	// (zero fields: 20 attempts, backoff up to 5s — about a minute).
	GiveUp GiveUpPolicy
	// Extend, when set, adds routes and background work (the model registry, the
	// dashboard) to the service; the returned function, when not nil, runs alongside.
	Extend func(e Extension) func(ctx context.Context) error
	// Ready, when set, is told the bound address.
	Ready func(addr string)
}

// Extension is what an extension of the curator service gets.
type Extension struct {
	API      *httpapi.Mux
	Curator  *Curator
	Producer *kafkabus.Producer
	Kafka    kafkabus.Config
	Log      *zap.Logger
}

// RunService runs ingestion, batching, the API and the UI until ctx ends.
func RunService(ctx context.Context, c ServiceConfig, log *zap.Logger) error {
	reg := opshttp.NewRegistry() // metrics first: every part below registers its own
	if c.Group == "" {
		c.Group = "curator"
	}
	config.Default(&c.Tick, 2*time.Second)
	config.Default(&c.Partitions, 6)
	var store *s3store.Store
	if err := retry.Wait(ctx, log, "the object store", func(ctx context.Context) (err error) {
		store, err = s3store.Open(ctx, c.S3)
		return err
	}); err != nil {
		return err
	}
	if err := retry.Wait(ctx, log, "kafka", func(ctx context.Context) error {
		return kafkabus.EnsureTopics(ctx, c.Kafka, c.Partitions, c.Kafka.Topic(contract.TopicExamples), c.Kafka.Topic(contract.TopicBatchesApproved), c.Kafka.Topic(contract.TopicDeadLetter))
	}); err != nil {
		return err
	}
	prod, err := kafkabus.NewProducer(c.Kafka, kafkabus.ProducerOptions{})
	if err != nil {
		return err
	}
	defer prod.Close()
	cur := New(store, prod, c.Kafka, NewMetrics(reg), log)
	api := httpapi.NewMux(c.Tokens)
	Mount(api, cur)
	var extra func(ctx context.Context) error
	if c.Extend != nil {
		extra = c.Extend(Extension{API: api, Curator: cur, Producer: prod, Kafka: c.Kafka, Log: log})
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/", UI())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return opshttp.Serve(gctx, c.Addr, mux, log, c.Ready, opshttp.WithTLS(c.TLS)) })
	if c.OpsAddr != "" {
		ops := http.NewServeMux()
		opshttp.Mount(ops, reg,
			opshttp.Check{Name: "s3", Fn: store.Ping},
			opshttp.Check{Name: "kafka", Fn: func(ctx context.Context) error { return kafkabus.Ping(ctx, c.Kafka) }})
		g.Go(func() error { return opshttp.Serve(gctx, c.OpsAddr, ops, log, nil, opshttp.WithTLS(c.TLS)) })
	}
	g.Go(func() error { return cur.Consume(gctx, c.Kafka, c.Group, c.Intake, c.GiveUp, prod, reg) })
	if extra != nil {
		g.Go(func() error { return extra(gctx) })
	}
	g.Go(func() error {
		t := time.NewTicker(c.Tick)
		defer t.Stop()
		for {
			if err := cur.Tick(gctx); err != nil && gctx.Err() == nil {
				log.Warn("batch tick failed", zap.Error(err))
			}
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	return g.Wait()
}

// GiveUpPolicy is how ingestion retries an example whose failure is its own (S3 takes
// writes and Kafka answers) before it dead-letters it as retry_exhausted.
type GiveUpPolicy struct {
	// Attempts before it gives up.
	Attempts int
	// Backoff between attempts.
	Backoff retry.Backoff
}

// healthKey is the object the curator writes to check that the object store takes writes.
const healthKey = "health/curator.json"

// healthy reports whether the curator's dependencies work: the object store takes a
// write (a read-only or full store fails this, not only an unreachable one) and Kafka
// answers.
func (c *Curator) healthy(ctx context.Context, k kafkabus.Config) error {
	if _, err := objstore.PutJSON(ctx, c.st.S, healthKey, map[string]time.Time{"at": c.now().UTC()}, objstore.PutOptions{}); err != nil {
		return fmt.Errorf("object store: %w", err)
	}
	if err := kafkabus.Ping(ctx, k); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	return nil
}

// Consume ingests edgeloop.examples.v1 in batches of what one poll gathers (o):
// store, queue with one ledger update per project, then commit the offsets. Examples
// that can never be accepted go to the dead-letter topic with their reason, and so does
// one that failed gu.Attempts times while the dependencies answer; the others of their
// batch go on.
func (c *Curator) Consume(ctx context.Context, k kafkabus.Config, group string, o kafkabus.BatchOptions, gu GiveUpPolicy, prod *kafkabus.Producer, reg prometheus.Registerer) error {
	config.Default(&gu.Attempts, 20)
	config.Default(&gu.Backoff.Max, 5*time.Second)
	cons, err := kafkabus.NewConsumer(k, group, k.Topic(contract.TopicExamples), kafkabus.ConsumerOptions{}, c.log)
	if err != nil {
		return err
	}
	defer cons.Close()
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgeloop_curator_rejected_total", Help: "Examples dead-lettered by the curator, by reason."}, []string{"reason"})
	if err := reg.Register(rejected); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return err
		}
		rejected = are.ExistingCollector.(*prometheus.CounterVec)
	}
	h := message.Settle(c.ingestMessages, gu.Backoff, c.log,
		message.DeadLetter(prod, k.Topic(contract.TopicDeadLetter), "curator", c.log, func(r string) { rejected.WithLabelValues(r).Inc() }),
		// An example that fails gu.Attempts times while S3 takes writes and Kafka answers
		// is set aside (retry_exhausted) rather than blocking its partition; during an
		// outage every example fails and is retried until the outage ends.
		message.GiveUp(gu.Attempts, func(ctx context.Context) error { return c.healthy(ctx, k) }, contract.ReasonRetryExhausted, c.log),
	)
	err = cons.RunBatch(ctx, o, h)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// ingestMessages is IngestBatch for messages of edgeloop.examples.v1: one outcome each.
func (c *Curator) ingestMessages(ctx context.Context, ms []*message.Message) []error {
	outs := make([]error, len(ms))
	exs := make([]*edgeloopv1.Example, 0, len(ms))
	at := make([]int, 0, len(ms))
	for i, m := range ms {
		ex := &edgeloopv1.Example{}
		if err := proto.Unmarshal(m.Value, ex); err != nil {
			outs[i] = message.Rejectf(contract.ReasonBadProtobuf, "not an edgeloop.v1.Example: %w", err)
			continue
		}
		exs, at = append(exs, ex), append(at, i)
	}
	for j, err := range c.IngestBatch(ctx, exs) {
		outs[at[j]] = err
	}
	return outs
}
