// Package agent is what runs on an edge device: it serves the project's model to the
// line (HTTP, a watched directory or a simulator), decides which frames are worth a
// human's correction, keeps them in a durable outbox until the broker has them, reports
// its status, and follows the project's release with verified, atomic model updates.
// It pulls in no server-side code: no Kafka, no object storage.
package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/outbox"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/sampling"
	"github.com/edgeloop/edgeloop/pkg/vision"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// recentFrames is how many frames are kept for operator feedback and smoke tests.
const recentFrames = 512

// Agent is one edge agent.
type Agent struct {
	cfg     Config
	log     *zap.Logger
	sampler *sampling.Sampler
	ob      *outbox.Outbox
	m       *metrics
	reg     *prometheus.Registry

	current  atomic.Pointer[model]
	previous atomic.Pointer[model]
	mq       atomic.Pointer[mqttbus.Client]

	// applyMu serialises Apply; trusted is the last project release it accepted and
	// trustedSite the last site release of this device (man nil before the first),
	// kept on disk in models/trusted.json and models/trusted-site.json.
	applyMu     sync.Mutex
	trusted     trustedRelease
	trustedSite trustedRelease

	mu     sync.Mutex
	frames map[string]*frame
	order  []string
	stats  status
	// releases and siteReleases hold the latest project and site release not yet applied.
	releases, siteReleases chan *edgeloopv1.ModelRelease
	// confirmed is signalled after a confirmation deleted uploads.
	confirmed chan struct{}
}

// frame is a recent inference, kept for feedback.
type frame struct {
	id    string
	at    time.Time
	img   *raster.Image
	preds []vision.Prediction
	// emb is the model's embedding of the frame (nil: the model has none).
	emb     []float32
	version int64
	truth   *edgeloopv1.Annotation
	// counted says the frame's correctness is already in the accuracy figures.
	counted bool
	flagged bool
	// example is the id the frame was queued under ("" while it was not) and reasons
	// why: feedback on it replaces that example instead of making a second one.
	example string
	reasons []*edgeloopv1.SamplingReason
}

type status struct {
	frames     uint64
	sampled    map[string]uint64
	confSum    float64
	confN      int
	accuracy   map[int64]*edgeloopv1.EdgeAccuracy
	refused    string
	duplicates uint64
}

// New prepares an agent: its outbox, its sampler and the last model it ran.
func New(cfg Config, reg *prometheus.Registry, log *zap.Logger) (*Agent, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s, err := sampling.New(cfg.Sampling, uint64(time.Now().UnixNano()), nil)
	if err != nil {
		return nil, err
	}
	ob, err := outbox.Open(filepath.Join(cfg.DataDir, "outbox"), outbox.Options{MaxBytes: cfg.OutboxBytes})
	if err != nil {
		return nil, err
	}
	if c := ob.Stats().Corrupt; c > 0 {
		log.Warn("outbox entries were corrupt and set aside", zap.Int("count", c), zap.String("dir", filepath.Join(cfg.DataDir, "outbox", "corrupt")))
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	a := &Agent{
		cfg: cfg, log: log.With(zap.String("project", cfg.Project), zap.String("device", cfg.Device)),
		sampler: s, ob: ob, m: newMetrics(reg), reg: reg, frames: map[string]*frame{},
		stats:    status{sampled: map[string]uint64{}, accuracy: map[int64]*edgeloopv1.EdgeAccuracy{}},
		releases: make(chan *edgeloopv1.ModelRelease, 1), siteReleases: make(chan *edgeloopv1.ModelRelease, 1), confirmed: make(chan struct{}, 1),
	}
	if err := a.loadInitialModel(); err != nil {
		return nil, err
	}
	return a, nil
}

// Registry holds the agent's metrics.
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// ModelVersion is the version being served (0: none).
func (a *Agent) ModelVersion() int64 {
	if m := a.current.Load(); m != nil {
		return m.version
	}
	return 0
}

// Run connects to the broker and runs the sender, the heartbeat, the updater and the
// configured frame sources until ctx ends. The first of them to fail stops the others,
// and Run returns its error (not logged here: the caller handles it).
func (a *Agent) Run(ctx context.Context) error {
	will, _ := proto.Marshal(&edgeloopv1.DeviceStatus{Project: a.cfg.Project, Device: a.cfg.Device, Online: false, AgentVersion: a.cfg.Version})
	mc := a.cfg.MQTT
	mc.CleanSession = false
	mc.Will = &mqttbus.Will{Topic: contract.StatusTopic(a.cfg.Project, a.cfg.Device), Payload: will, QoS: 1, Retained: true}
	mc.Subscriptions = []mqttbus.Subscription{{Filter: contract.ReleaseTopic(a.cfg.Project), QoS: 1, Handler: a.onRelease},
		{Filter: contract.SiteReleaseTopic(a.cfg.Project, a.cfg.Device), QoS: 1, Handler: a.onRelease}}
	if !a.cfg.NoConfirm {
		// The persistent session queues the confirmations sent while the agent is away.
		mc.Subscriptions = append(mc.Subscriptions, mqttbus.Subscription{Filter: contract.AcksTopic(a.cfg.Project, a.cfg.Device), QoS: 1, Handler: a.onAcks})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	// Frames are served and queued even while the broker is unreachable.
	start := func(name string, f func(context.Context) error) {
		g.Go(func() error {
			if err := f(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	if a.cfg.HTTPAddr != "" {
		start("http", a.serveHTTP)
	}
	if a.cfg.WatchDir != "" {
		start("watch", a.watch)
	}
	if a.cfg.Sim.Dataset != "" {
		start("simulator", a.simulate)
	}
	start("updater", a.updater)
	mq, err := mqttbus.Connect(gctx, mc, a.log)
	if err != nil {
		stopped := gctx.Err() != nil // ctx ended or a source failed while connecting
		cancel()
		werr := g.Wait()
		if stopped {
			return werr
		}
		return errors.Join(fmt.Errorf("mqtt: %w", err), werr)
	}
	a.mq.Store(mq)
	start("sender", a.send)
	start("status", a.heartbeat)
	<-gctx.Done()
	err = g.Wait()
	// A clean goodbye: offline status, then disconnect (the will covers crashes).
	sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
	_ = mq.Publish(sctx, contract.StatusTopic(a.cfg.Project, a.cfg.Device), 1, true, will)
	c()
	mq.Disconnect(500 * time.Millisecond)
	return err
}

// Result is what the agent answers for one frame.
type Result struct {
	FrameID      string              `json:"frame_id"`
	ModelVersion int64               `json:"model_version"`
	Predictions  []vision.Prediction `json:"predictions"`
	Sampled      bool                `json:"sampled"`
	Reasons      []string            `json:"reasons,omitempty"`
}

// ErrMessageTooLarge says an example is over the MQTT broker's message size limit, so
// it is not queued.
var ErrMessageTooLarge = errors.New("example too large for the broker")

// ErrNoModel says the agent has no model to run yet.
var ErrNoModel = errors.New("no model loaded yet")

// Infer runs the current model on an image, samples it and queues it when chosen.
// truth, known only to the simulator, is kept with the frame.
func (a *Agent) Infer(ctx context.Context, frameID string, im *raster.Image, truth *edgeloopv1.Annotation) (Result, error) {
	start := time.Now()
	if im == nil || im.W < 1 || im.H < 1 || im.W > 8192 || im.H > 8192 {
		return Result{}, fmt.Errorf("image size out of range")
	}
	var preds [][]vision.Prediction
	var embs [][]float32
	var m *model
	for {
		m = a.current.Load()
		if m == nil {
			return Result{}, ErrNoModel
		}
		var err error
		preds, embs, err = m.predict(ctx, []*raster.Image{im})
		if errors.Is(err, errRetired) {
			continue // swapped while we started: use the new one
		}
		if err != nil {
			return Result{}, err
		}
		break
	}
	if frameID == "" {
		frameID = uuid.NewString()
	}
	f := &frame{id: frameID, at: time.Now(), img: im, preds: preds[0], version: m.version, truth: truth}
	if embs != nil {
		f.emb = embs[0]
	}
	detect := m.header.Arch.Task == nn.Detect
	a.remember(f, detect)
	res := Result{FrameID: frameID, ModelVersion: m.version, Predictions: f.preds}
	d := a.sampler.Decide(sampling.Frame{Predictions: f.preds, Detect: detect, Thumb: raster.Thumbnail(im), Embedding: f.emb})
	a.m.infer.Observe(time.Since(start).Seconds())
	if d.Duplicate {
		a.noteDuplicate()
	}
	if d.Taken() {
		if _, err := a.queue(f, m, d, nil); err != nil {
			a.log.Warn("frame not queued", zap.String("frame", frameID), zap.Error(err))
		} else {
			res.Sampled = true
			for _, r := range d.Reasons {
				res.Reasons = append(res.Reasons, r.Strategy)
			}
		}
	}
	return res, nil
}

// ErrUnknownFrame says feedback named a frame the agent no longer holds.
var ErrUnknownFrame = errors.New("unknown or expired frame id")

// Feedback records an operator's correction of a frame: it is sampled as
// operator_flagged with the correction, ahead of everything else in the outbox. One
// frame makes one example: a frame already queued keeps its example id, and the
// correction replaces that example in the outbox (or, once sent, follows it under the
// same id, and the curator joins them), with the reasons of both.
func (a *Agent) Feedback(frameID string, correction *edgeloopv1.Annotation) (string, error) {
	a.mu.Lock()
	f := a.frames[frameID]
	if f != nil && !f.counted {
		a.countAccuracy(f.version, false)
		f.counted = true
	}
	if f != nil {
		f.flagged = true
	}
	a.mu.Unlock()
	if f == nil {
		return "", fmt.Errorf("%w: %s", ErrUnknownFrame, frameID)
	}
	m := a.current.Load()
	if m == nil {
		return "", ErrNoModel
	}
	if err := checkCorrection(m.header.Classes, m.header.Arch.Task == nn.Detect, correction); err != nil {
		return "", err
	}
	d := a.sampler.Decide(sampling.Frame{Predictions: f.preds, Detect: m.header.Arch.Task == nn.Detect, Flagged: true, Thumb: raster.Thumbnail(f.img)})
	if !d.Taken() {
		return "", errors.New("the sampling config has no operator_flagged strategy")
	}
	return a.queue(f, m, d, correction)
}

// mergeReasons is a's reasons followed by those of b that a lacks (by strategy).
func mergeReasons(a, b []*edgeloopv1.SamplingReason) []*edgeloopv1.SamplingReason {
	out := append([]*edgeloopv1.SamplingReason(nil), a...)
	for _, r := range b {
		if !slices.ContainsFunc(out, func(o *edgeloopv1.SamplingReason) bool { return o.Strategy == r.Strategy && o.Kind == r.Kind }) {
			out = append(out, r)
		}
	}
	return out
}

func checkCorrection(classes []string, detect bool, c *edgeloopv1.Annotation) error {
	if c == nil || len(c.Labels) == 0 {
		return errors.New("a correction needs at least one label")
	}
	known := map[string]bool{}
	for _, n := range classes {
		known[n] = true
	}
	for i, l := range c.Labels {
		if !known[l.ClassName] {
			return fmt.Errorf("label %d: class %q is not one of the model's %v", i, l.ClassName, classes)
		}
		if detect {
			b := l.Box
			if b == nil || !(b.XMin >= 0 && b.YMin >= 0 && b.XMax <= 1 && b.YMax <= 1 && b.XMin < b.XMax && b.YMin < b.YMax) {
				return fmt.Errorf("label %d: a detection label needs a box inside [0,1] with min < max", i)
			}
		} else if l.Box != nil {
			return fmt.Errorf("label %d: a classification label has no box", i)
		}
	}
	return nil
}

// remember keeps the frame for feedback and counts it.
func (a *Agent) remember(f *frame, detect bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.frames[f.id] = f
	a.order = append(a.order, f.id)
	if len(a.order) > recentFrames {
		delete(a.frames, a.order[0])
		a.order = a.order[1:]
	}
	a.stats.frames++
	a.m.frames.Inc()
	if len(f.preds) > 0 {
		a.stats.confSum += float64(f.preds[0].Confidence)
		a.stats.confN++
	}
	if f.truth != nil {
		ok := correct(f.preds, f.truth, detect)
		a.countAccuracy(f.version, ok)
		f.counted = true
	}
}

func (a *Agent) countAccuracy(version int64, ok bool) {
	acc := a.stats.accuracy[version]
	if acc == nil {
		acc = &edgeloopv1.EdgeAccuracy{}
		a.stats.accuracy[version] = acc
	}
	acc.Frames++
	if ok {
		acc.Correct++
	}
}

// correct says whether predictions match the truth: the top class (classification),
// or every object found with IoU ≥ 0.5 and the right class, and nothing else
// (detection).
func correct(preds []vision.Prediction, truth *edgeloopv1.Annotation, detect bool) bool {
	if !detect {
		return len(preds) > 0 && len(truth.Labels) > 0 && preds[0].ClassName == truth.Labels[0].ClassName
	}
	if len(preds) != len(truth.Labels) {
		return false
	}
	used := make([]bool, len(preds))
	for _, l := range truth.Labels {
		gt := *vision.BoxFromProto(l.Box)
		found := false
		for i, p := range preds {
			if !used[i] && p.Box != nil && p.ClassName == l.ClassName && nn.IoU(gt, *p.Box) >= 0.5 {
				used[i], found = true, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (a *Agent) noteDuplicate() {
	a.mu.Lock()
	a.stats.duplicates++
	a.mu.Unlock()
	a.m.duplicates.Inc()
}

// queue wraps the frame in an Example and puts it in the outbox, under the frame's
// example id when it was queued before (replacing that example if it is still there)
// and with its earlier reasons; it returns the example id.
func (a *Agent) queue(f *frame, m *model, d sampling.Decision, correction *edgeloopv1.Annotation) (string, error) {
	im := f.img
	if side := max(im.W, im.H); side > a.cfg.MaxImageSide {
		// Keep the aspect ratio; normalised boxes need no change.
		s := float64(a.cfg.MaxImageSide) / float64(side)
		im = raster.Resize(im, max(1, int(float64(im.W)*s+0.5)), max(1, int(float64(im.H)*s+0.5)))
	}
	task := edgeloopv1.Task_TASK_CLASSIFY
	if m.header.Arch.Task == nn.Detect {
		task = edgeloopv1.Task_TASK_DETECT
	}
	a.mu.Lock()
	id, reasons := f.example, mergeReasons(d.Reasons, f.reasons)
	a.mu.Unlock()
	again := id != ""
	if !again {
		id = uuid.NewString()
	}
	if correction != nil {
		correction.Author = "operator@" + a.cfg.Device
	}
	ex := &edgeloopv1.Example{
		Id: id, Project: a.cfg.Project, Device: a.cfg.Device, CapturedAt: timestamppb.New(f.at),
		Image: &edgeloopv1.Image{Data: im.EncodeJPEG(a.cfg.JPEGQuality), ContentType: "image/jpeg", Width: int32(im.W), Height: int32(im.H)},
		Task:  task, ModelVersion: f.version, Predictions: toProto(f.preds), Reasons: reasons, TakenBy: d.TakenBy(),
		Correction: correction, AgentVersion: a.cfg.Version, FrameId: f.id, SimulationTruth: f.truth, Embedding: f.emb,
	}
	b, err := proto.Marshal(ex)
	if err != nil {
		return "", err
	}
	if len(b) > a.cfg.MaxMessageBytes {
		// The broker would close the connection on it, without a dead letter, and the
		// outbox would retry it for ever.
		a.m.dropped.Inc()
		return "", fmt.Errorf("%w: example of frame %s is %d bytes, over the broker's %d-byte limit (-max-message-bytes); lower -max-image-side or -jpeg-quality",
			ErrMessageTooLarge, f.id, len(b), a.cfg.MaxMessageBytes)
	}
	dropped, err := a.ob.Replace(sampling.Priority(d.Kind), id, b)
	for range dropped {
		a.m.dropped.Inc()
	}
	if len(dropped) > 0 {
		a.log.Warn("outbox full: dropped the oldest low-priority examples", zap.Int("dropped", len(dropped)))
	}
	if err != nil {
		if errors.Is(err, outbox.ErrFull) {
			a.m.dropped.Inc()
		}
		return "", err
	}
	a.mu.Lock()
	if d.Kind != sampling.Confident {
		// A pseudo-label is no example to correct: an operator's feedback on its frame
		// makes an example of its own, for annotation.
		f.example, f.reasons = id, reasons
	}
	a.stats.sampled[d.Kind]++
	a.mu.Unlock()
	a.m.sampled.WithLabelValues(d.Kind).Inc()
	if again {
		a.log.Debug("frame queued again under its example id", zap.String("frame", f.id), zap.String("example", id), zap.String("taken_by", d.Kind))
	}
	return id, nil
}

func toProto(ps []vision.Prediction) []*edgeloopv1.Prediction {
	out := make([]*edgeloopv1.Prediction, 0, len(ps))
	for i, p := range ps {
		if p.Box == nil && i >= 3 {
			break // classification: the three best classes are enough
		}
		q := &edgeloopv1.Prediction{ClassName: p.ClassName, Confidence: float32(math.Min(1, math.Max(0, float64(p.Confidence))))}
		q.Box = vision.BoxProto(p.Box)
		out = append(out, q)
	}
	return out
}

// Status is the agent's current DeviceStatus.
func (a *Agent) Status() *edgeloopv1.DeviceStatus {
	ob := a.ob.Stats()
	a.mu.Lock()
	defer a.mu.Unlock()
	st := &edgeloopv1.DeviceStatus{
		Project: a.cfg.Project, Device: a.cfg.Device, Online: true, At: timestamppb.Now(), AgentVersion: a.cfg.Version,
		ModelVersion: a.ModelVersion(), Frames: a.stats.frames, SampledByReason: map[string]uint64{},
		OutboxDepth: uint64(ob.Depth), OutboxBytes: uint64(ob.Bytes), Dropped: ob.Dropped,
		AccuracyByModel: map[int64]*edgeloopv1.EdgeAccuracy{}, LastRefusedUpdate: a.stats.refused,
	}
	for k, v := range a.stats.sampled {
		st.SampledByReason[k] = v
	}
	for k, v := range a.stats.accuracy {
		st.AccuracyByModel[k] = proto.Clone(v).(*edgeloopv1.EdgeAccuracy)
	}
	if a.stats.confN > 0 {
		st.MeanConfidence = float32(a.stats.confSum / float64(a.stats.confN))
		a.stats.confSum, a.stats.confN = 0, 0
	}
	return st
}

// heartbeat publishes the retained status every StatusInterval.
func (a *Agent) heartbeat(ctx context.Context) error {
	t := time.NewTicker(a.cfg.StatusInterval)
	defer t.Stop()
	for {
		if mq := a.mq.Load(); mq != nil && mq.Connected() {
			b, _ := proto.Marshal(a.Status())
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := mq.Publish(pctx, contract.StatusTopic(a.cfg.Project, a.cfg.Device), 1, true, b); err != nil && ctx.Err() == nil {
				a.log.Debug("status not published", zap.Error(err))
			}
			cancel()
		}
		a.m.outboxDepth.Set(float64(a.ob.Stats().Depth))
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Outbox exposes the outbox's figures.
func (a *Agent) Outbox() outbox.Stats { return a.ob.Stats() }
