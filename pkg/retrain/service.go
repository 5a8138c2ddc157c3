package retrain

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/nn/backend"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
	"github.com/edgeloop/edgeloop/pkg/retry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// ServiceConfig is everything the retrain service needs.
type ServiceConfig struct {
	Kafka kafkabus.Config
	S3    s3store.Config
	// Key signs the models.
	Key ed25519.PrivateKey
	// PublicURL is where devices reach the API that serves artifacts.
	PublicURL string
	// Backend is auto, cpu or cuda.
	Backend string
	// CacheDir keeps downloaded images.
	CacheDir string
	// OpsAddr serves /healthz, /readyz and /metrics (empty: none).
	OpsAddr string
	// OpsTLS, when set, makes the ops server HTTPS only.
	OpsTLS *tls.Config
	// Group is the Kafka consumer group (default "retrain").
	Group string
	// Lease bounds how long a crashed trainer blocks its project (default 2m; renewed
	// every Lease/4 while training).
	Lease time.Duration
	// Owner names this instance in leases (default host:pid).
	Owner string
	// Reannounce is how often each project's release is produced again (default 1m),
	// so that a retained MQTT release a crashed broker lost (it acknowledges before it
	// persists) comes back without waiting for the next release. Devices ignore a
	// release they run; the bridge never lets the retained release go backwards.
	Reannounce time.Duration
}

// Service retrains projects as approved batches arrive.
type Service struct {
	cfg     ServiceConfig
	cur     *project.Store
	reg     *registry.Registry
	backend backend.Choice
	key     ed25519.PrivateKey
	log     *zap.Logger
	kcfg    kafkabus.Config
	m       *serviceMetrics

	mu     sync.Mutex
	wakeup map[string]chan struct{}
	// train serialises trainings in this process: they all want every core.
	train chan struct{}
	now   func() time.Time
}

type serviceMetrics struct {
	trainings *prometheus.CounterVec
	seconds   prometheus.Histogram
	running   prometheus.Gauge
}

// NewService prepares the service on store s.
func NewService(c ServiceConfig, s objstore.Store, prod *kafkabus.Producer, reg prometheus.Registerer, log *zap.Logger) (*Service, error) {
	if c.Group == "" {
		c.Group = "retrain"
	}
	if c.Lease <= 0 {
		c.Lease = 2 * time.Minute
	}
	if c.Reannounce <= 0 {
		c.Reannounce = time.Minute
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		c.Owner = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if c.CacheDir == "" {
		c.CacheDir = filepath.Join(os.TempDir(), "edgeloop-retrain")
	}
	choice, err := backend.Select(c.Backend, log)
	if err != nil {
		return nil, err
	}
	log.Info("training backend", zap.String("backend", choice.Name))
	m := &serviceMetrics{
		trainings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeloop_retrain_trainings_total", Help: "Trainings by outcome (published, kept, failed)."}, []string{"outcome"}),
		seconds:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "edgeloop_retrain_training_seconds", Help: "Time from trigger to decision.", Buckets: prometheus.ExponentialBuckets(1, 2, 14)}),
		running:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeloop_retrain_running", Help: "Trainings running in this process."}),
	}
	reg.MustRegister(m.trainings, m.seconds, m.running)
	models := registry.New(s, prod, c.Kafka, c.PublicURL)
	models.Key = c.Key
	models.Corrupt = objstore.LogCorrupt(log)
	return &Service{cfg: c, cur: &project.Store{S: s, Corrupt: models.Corrupt}, reg: models, backend: choice, key: c.Key,
		log: log, kcfg: c.Kafka, m: m, wakeup: map[string]chan struct{}{}, train: make(chan struct{}, 1), now: time.Now}, nil
}

// recordApproval counts a BatchApproved event m in its project's retraining state and
// returns the project. An event that can never be counted is a *message.Reject: not
// the message, a bad project id, or a state document that does not decode (retrying
// cannot repair it, and every project's approvals would wait behind it).
func (s *Service) recordApproval(ctx context.Context, m *message.Message) (string, error) {
	ev := &edgeloopv1.BatchApproved{}
	if err := proto.Unmarshal(m.Value, ev); err != nil {
		return "", message.Rejectf(contract.ReasonBadProtobuf, "not an edgeloop.v1.BatchApproved: %w", err)
	}
	if err := contract.CheckID("project", ev.Project); err != nil {
		return "", &message.Reject{Reason: contract.ReasonBadID, Err: err}
	}
	if err := s.record(ctx, ev); err != nil {
		if errors.Is(err, objstore.ErrCorrupt) {
			return "", &message.Reject{Reason: contract.ReasonCorruptState, Err: err}
		}
		return "", err
	}
	return ev.Project, nil
}

// Registry is the service's model registry.
func (s *Service) Registry() *registry.Registry { return s.reg }

// RunService runs the retrain service until ctx ends.
func RunService(ctx context.Context, c ServiceConfig, log *zap.Logger) error {
	reg := opshttp.NewRegistry() // metrics first: every part below registers its own
	var store *s3store.Store
	if err := retry.Wait(ctx, log, "the object store", func(ctx context.Context) (err error) {
		store, err = s3store.Open(ctx, c.S3)
		return err
	}); err != nil {
		return err
	}
	prod, err := kafkabus.NewProducer(c.Kafka, kafkabus.ProducerOptions{})
	if err != nil {
		return err
	}
	defer prod.Close()
	s, err := NewService(c, store, prod, reg, log)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	if c.OpsAddr != "" {
		mux := http.NewServeMux()
		opshttp.Mount(mux, reg, opshttp.Check{Name: "s3", Fn: store.Ping},
			opshttp.Check{Name: "kafka", Fn: func(ctx context.Context) error { return kafkabus.Ping(ctx, c.Kafka) }})
		g.Go(func() error { return opshttp.Serve(gctx, c.OpsAddr, mux, log, nil, opshttp.WithTLS(c.OpsTLS)) })
	}
	g.Go(func() error { return s.Run(gctx, prod) })
	return g.Wait()
}

// Run consumes approvals and runs the per-project schedulers until ctx ends.
func (s *Service) Run(ctx context.Context, prod *kafkabus.Producer) error {
	k := s.kcfg
	if err := retry.Wait(ctx, s.log, "kafka", func(ctx context.Context) error {
		return kafkabus.EnsureTopics(ctx, k, 6, k.Topic(contract.TopicBatchesApproved), k.Topic(contract.TopicModels), k.Topic(contract.TopicDeadLetter))
	}); err != nil {
		return err
	}
	cons, err := kafkabus.NewConsumer(s.kcfg, s.cfg.Group, s.kcfg.Topic(contract.TopicBatchesApproved), kafkabus.ConsumerOptions{}, s.log)
	if err != nil {
		return err
	}
	defer cons.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	// Projects whose state says a training is due or was cut short (a crash) resume, and
	// every release is announced again (devices ignore a release they run already). The
	// goroutine is counted before Run can wait, so its wg.Add calls never race wg.Wait.
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ps []*project.Project
		if err := retry.Wait(ctx, s.log, "the object store to list the projects", func(ctx context.Context) (err error) {
			ps, err = s.cur.Projects(ctx)
			return err
		}); err != nil {
			return // shutting down
		}
		for _, p := range ps {
			if err := s.reg.AnnounceAll(ctx, p.ID); err != nil && !errors.Is(err, registry.ErrNotFound) {
				s.log.Warn("announcing the release at start", zap.String("project", p.ID), zap.Error(err))
			}
			s.wake(ctx, &wg, p.ID)
		}
	}()
	h := message.Chain(func(ctx context.Context, m *message.Message) error {
		pid, err := s.recordApproval(ctx, m)
		if err != nil {
			return err
		}
		s.wake(ctx, &wg, pid)
		return nil
	},
		message.Retry(retry.Backoff{Max: 5 * time.Second}, s.log),
		message.DeadLetter(prod, s.kcfg.Topic(contract.TopicDeadLetter), "retrain", s.log, nil),
	)
	err = cons.Run(ctx, h)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// wake signals the project's scheduler, starting it on first use.
func (s *Service) wake(ctx context.Context, wg *sync.WaitGroup, project string) {
	s.mu.Lock()
	ch, ok := s.wakeup[project]
	if !ok {
		ch = make(chan struct{}, 1)
		s.wakeup[project] = ch
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.schedule(ctx, project, ch)
		}()
	}
	s.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

// IsManual reports whether an approval event is a manual training request.
func IsManual(ev *edgeloopv1.BatchApproved) bool { return strings.HasPrefix(ev.BatchId, "manual-") }

// ManualMode is the training mode a manual request asks for ("manual-full-…",
// "manual-scratch-…", "manual-adapt-bn.SITE-…" for SiteMode(SITE); "" for the
// policy's).
func ManualMode(ev *edgeloopv1.BatchApproved) string {
	if rest, ok := strings.CutPrefix(ev.BatchId, "manual-"+ModeAdaptBN+"."); ok {
		if i := strings.LastIndex(rest, "-"); i > 0 && CheckMode(SiteMode(rest[:i])) == nil {
			return SiteMode(rest[:i])
		}
	}
	for _, m := range []string{ModeFull, ModeScratch, ModeReplay, ModeAdaptBN} {
		if strings.HasPrefix(ev.BatchId, "manual-"+m+"-") {
			return m
		}
	}
	return ""
}
