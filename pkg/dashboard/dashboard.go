// Package dashboard shows the loop at work: it follows the devices' status heartbeats
// (edgeloop.devices.v1) for the accuracy at the edge per model version, and gathers
// examples by sampling reason, batches by state, trainings with their curves and
// releases into one JSON document for the UI's dashboard page.
package dashboard

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Tracker keeps the latest status of every device and a time series of the accuracy at
// the edge per model version.
type Tracker struct {
	mu      sync.Mutex
	devices map[string]map[string]*edgeloopv1.DeviceStatus // project -> device -> status
	series  map[string]*series
	start   time.Time
	window  time.Duration
	log     *zap.Logger
	curves  map[string]curve // project/version -> training curve (immutable once written)
}

type series struct {
	last   time.Time
	totals map[int64]*edgeloopv1.EdgeAccuracy // cumulative at the last point
	points map[int64][][2]float64             // version -> (minutes since start, accuracy of the window)
}

type curve struct{ loss, val []float64 }

// NewTracker returns a tracker that plots a point per version every window.
func NewTracker(window time.Duration, log *zap.Logger) *Tracker {
	if window <= 0 {
		window = 10 * time.Second
	}
	return &Tracker{devices: map[string]map[string]*edgeloopv1.DeviceStatus{}, series: map[string]*series{}, start: time.Now(),
		window: window, log: log, curves: map[string]curve{}}
}

// Observe records one status heartbeat.
func (t *Tracker) Observe(st *edgeloopv1.DeviceStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ds := t.devices[st.Project]
	if ds == nil {
		ds = map[string]*edgeloopv1.DeviceStatus{}
		t.devices[st.Project] = ds
	}
	if prev := ds[st.Device]; prev != nil && prev.At.AsTime().After(st.At.AsTime()) {
		return // an older heartbeat arriving late
	}
	ds[st.Device] = st
	s := t.series[st.Project]
	if s == nil {
		s = &series{totals: map[int64]*edgeloopv1.EdgeAccuracy{}, points: map[int64][][2]float64{}}
		t.series[st.Project] = s
	}
	now := time.Now()
	if now.Sub(s.last) < t.window {
		return
	}
	totals := t.totals(st.Project)
	for v, a := range totals {
		prev := s.totals[v]
		df, dc := a.Frames, a.Correct
		if prev != nil && a.Frames >= prev.Frames {
			df, dc = a.Frames-prev.Frames, a.Correct-prev.Correct
		}
		if df >= 5 {
			s.points[v] = append(s.points[v], [2]float64{now.Sub(t.start).Minutes(), float64(dc) / float64(df)})
		}
	}
	s.totals, s.last = totals, now
}

// totals sums the devices' counts per model version; the lock is held.
func (t *Tracker) totals(project string) map[int64]*edgeloopv1.EdgeAccuracy {
	out := map[int64]*edgeloopv1.EdgeAccuracy{}
	for _, st := range t.devices[project] {
		for v, a := range st.AccuracyByModel {
			o := out[v]
			if o == nil {
				o = &edgeloopv1.EdgeAccuracy{}
				out[v] = o
			}
			o.Frames += a.Frames
			o.Correct += a.Correct
		}
	}
	return out
}

// Consume follows edgeloop.devices.v1 until ctx ends.
func (t *Tracker) Consume(ctx context.Context, k kafkabus.Config, group string) error {
	c, err := kafkabus.NewConsumer(k, group, k.Topic(contract.TopicDevices), kafkabus.ConsumerOptions{StartAtEnd: true}, t.log)
	if err != nil {
		return err
	}
	defer c.Close()
	err = c.Run(ctx, func(_ context.Context, m *message.Message) error {
		st := &edgeloopv1.DeviceStatus{}
		if err := proto.Unmarshal(m.Value, st); err != nil {
			t.log.Warn("device status does not decode; skipped", zap.Error(err))
			return nil
		}
		t.Observe(st)
		return nil
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Accuracy is one model version's accuracy at the edge.
type Accuracy struct {
	Version  int64   `json:"version"`
	Frames   uint64  `json:"frames"`
	Accuracy float64 `json:"accuracy"`
}

// Series is one line of the edge accuracy chart.
type Series struct {
	Name   string       `json:"name"`
	Points [][2]float64 `json:"points"`
}

// Training is one training for the dashboard, with the gate's decision: its verdict,
// its reasons in words and the paired evidence behind them.
type Training struct {
	Version int64 `json:"version"`
	Parent  int64 `json:"parent"`
	// Site is the device a site candidate was adapted for ("" for the project).
	Site      string  `json:"site,omitempty"`
	Published bool    `json:"published"`
	Verdict   string  `json:"verdict"`
	Metric    string  `json:"metric"`
	Candidate float64 `json:"candidate"`
	Current   float64 `json:"current"`
	// TestExamples is the size of the test split the two were compared on.
	TestExamples int                `json:"test_examples"`
	Reasons      []string           `json:"reasons"`
	Evidence     *registry.Evidence `json:"evidence,omitempty"`
	Loss         []float64          `json:"loss"`
	ValLoss      []float64          `json:"val_loss"`
	At           time.Time          `json:"at"`
	Seconds      float64            `json:"seconds"`
}

// LabelPoint is one released model on the "labels spent → accuracy at the edge"
// chart: the corrected labels approved since the first model's dataset when it was
// trained, and its accuracy on the frames the devices saw.
type LabelPoint struct {
	Version  int64   `json:"version"`
	Labels   int     `json:"labels"`
	Accuracy float64 `json:"accuracy"`
	Frames   uint64  `json:"frames"`
}

// Candidates are the examples waiting in a project's pool for a batch, and those that
// expired there without being picked (the batch TTL).
type Candidates struct {
	Waiting int `json:"waiting"`
	Expired int `json:"expired"`
}

// View is the dashboard document.
type View struct {
	Release          int64                    `json:"release"`
	Devices          int                      `json:"devices"`
	DevicesOnline    int                      `json:"devices_online"`
	EdgeAccuracy     []Accuracy               `json:"edge_accuracy"`
	EdgeSeries       []Series                 `json:"edge_series"`
	ExamplesByReason map[string]int           `json:"examples_by_reason"`
	BatchesByState   map[string]int           `json:"batches_by_state"`
	Trainings        []Training               `json:"trainings"`
	Releases         []registry.ReleaseChange `json:"releases"`
	// Sites are the site releases: a model adapted to one device, which only it runs.
	Sites      []registry.SiteView       `json:"sites"`
	Dataset    map[string]int            `json:"dataset"`
	Status     map[string]*DeviceSummary `json:"status"`
	LabelCurve []LabelPoint              `json:"label_curve"`
	Candidates Candidates                `json:"candidates"`
	// Training is the project's retraining now (nil before its first approval).
	Training *TrainingStatus `json:"training,omitempty"`
}

// TrainingStatus is what the dashboard shows of a project's retraining, read from the
// state the retrain service keeps (project.RetrainKey, retrain.State's JSON): the
// training under way, whether one is due (approvals counted since the last, or an
// admin's request), the failures in a row with the time of the next try, and the
// latest outcome.
type TrainingStatus struct {
	Running     *TrainingRun     `json:"running,omitempty"`
	Due         bool             `json:"due"`
	Manual      bool             `json:"manual"`
	NewExamples int              `json:"new_examples"`
	Failures    int              `json:"failures,omitempty"`
	RetryAt     time.Time        `json:"retry_at,omitzero"`
	Last        *TrainingOutcome `json:"last,omitempty"`
}

// TrainingRun is a training under way: which trainer, since when, why and how, and
// until when its lease holds (past it, the trainer stopped without finishing: the next
// trainer to look resumes it).
type TrainingRun struct {
	Owner   string    `json:"owner"`
	Started time.Time `json:"started"`
	Until   time.Time `json:"until"`
	Trigger string    `json:"trigger"`
	Mode    string    `json:"mode,omitempty"`
}

// TrainingOutcome is how the latest training ended: the version it stored, whether it
// was released, or its error.
type TrainingOutcome struct {
	At        time.Time `json:"at"`
	Version   int64     `json:"version"`
	Published bool      `json:"published"`
	Error     string    `json:"error,omitempty"`
}

// DeviceSummary is what the dashboard shows of a device.
type DeviceSummary struct {
	Online       bool   `json:"online"`
	ModelVersion int64  `json:"model_version"`
	Frames       uint64 `json:"frames"`
	OutboxDepth  uint64 `json:"outbox_depth"`
	Dropped      uint64 `json:"dropped"`
	Refused      string `json:"refused,omitempty"`
}

// Build gathers the dashboard of a project.
func (t *Tracker) Build(ctx context.Context, cur *curator.Curator, reg *registry.Registry, project string) (*View, error) {
	v := &View{ExamplesByReason: map[string]int{}, BatchesByState: map[string]int{}, Status: map[string]*DeviceSummary{}}
	batches, err := cur.List(ctx, project, curator.Filter{})
	if err != nil {
		return nil, err
	}
	for _, b := range batches {
		v.BatchesByState[b.State]++
		for r, n := range b.Reasons {
			if r != "" && r != "import" {
				v.ExamplesByReason[r] += n
			}
		}
	}
	ds, err := cur.Store().Dataset(ctx, project)
	if err == nil {
		v.Dataset, _ = ds.Counts()
	}
	if l, err := cur.Store().Ledger(ctx, project); err == nil {
		v.Candidates = Candidates{Waiting: len(l.Pending), Expired: l.Expired}
	}
	v.Training = readTraining(ctx, cur.Store(), project)
	if o, err := reg.Overview(ctx, project); err == nil {
		v.Release, v.Releases, v.Sites = o.Version, o.History, o.Sites
	}
	vs, err := reg.Versions(ctx, project)
	if err != nil {
		return nil, err
	}
	untested := map[int64]bool{}
	for _, ver := range vs {
		d := ver.Decision
		untested[ver.Version] = d.TestExamples == 0
		tr := Training{Version: ver.Version, Parent: ver.Parent, Site: ver.Site, Published: d.Published, Verdict: verdict(d), Metric: d.Metric,
			Candidate: d.Candidate, Current: d.Current, TestExamples: d.TestExamples, Reasons: d.Reasons, Evidence: d.Evidence,
			At: ver.CreatedAt, Seconds: ver.Seconds}
		tr.Loss, tr.ValLoss = t.curve(ctx, reg, project, ver.Version)
		v.Trainings = append(v.Trainings, tr)
	}
	for i, r := range v.Releases { // releases recorded before said "accuracy 0.000"
		if untested[r.Version] {
			v.Releases[i].Metric = "no test split yet"
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, st := range t.devices[project] {
		v.Devices++
		online := st.Online && time.Since(st.At.AsTime()) < time.Minute
		if online {
			v.DevicesOnline++
		}
		v.Status[name] = &DeviceSummary{Online: online, ModelVersion: st.ModelVersion, Frames: st.Frames, OutboxDepth: st.OutboxDepth,
			Dropped: st.Dropped, Refused: st.LastRefusedUpdate}
	}
	for ver, a := range t.totals(project) {
		if a.Frames > 0 {
			v.EdgeAccuracy = append(v.EdgeAccuracy, Accuracy{Version: ver, Frames: a.Frames, Accuracy: float64(a.Correct) / float64(a.Frames)})
		}
	}
	sort.Slice(v.EdgeAccuracy, func(i, j int) bool { return v.EdgeAccuracy[i].Version < v.EdgeAccuracy[j].Version })
	v.LabelCurve = labelCurve(vs, ds, v.EdgeAccuracy)
	if s := t.series[project]; s != nil {
		for ver, pts := range s.points {
			v.EdgeSeries = append(v.EdgeSeries, Series{Name: fmt.Sprintf("v%d", ver), Points: pts})
		}
		sort.Slice(v.EdgeSeries, func(i, j int) bool { return v.EdgeSeries[i].Name < v.EdgeSeries[j].Name })
	}
	return v, nil
}

// readTraining reads project pid's retraining status; nil when there is none yet or it
// cannot be read (the rest of the dashboard does not depend on it; a corrupt one is
// reported to st.Corrupt).
func readTraining(ctx context.Context, st *project.Store, pid string) *TrainingStatus {
	var ts TrainingStatus
	_, err := objstore.GetJSON(ctx, st.S, project.RetrainKey(pid), &ts)
	if errors.Is(err, objstore.ErrCorrupt) {
		st.Corrupt.Report(project.RetrainKey(pid), err)
	}
	if err != nil {
		return nil
	}
	return &ts
}

// labelCurve places each version the devices ran on the labels it was trained with:
// the dataset entries of its snapshot less those of the first version's (the seed).
func labelCurve(vs []*registry.Version, ds *project.Dataset, acc []Accuracy) []LabelPoint {
	if ds == nil || len(vs) == 0 {
		return nil
	}
	labels := func(snapshot string) (int, bool) {
		seq, err := strconv.Atoi(strings.TrimPrefix(snapshot, "ds-"))
		if err != nil || !strings.HasPrefix(snapshot, "ds-") {
			return 0, false
		}
		n := 0
		for _, e := range ds.Entries {
			if e.Seq <= seq {
				n++
			}
		}
		return n, true
	}
	byVersion := map[int64]*registry.Version{}
	first := vs[0]
	for _, ver := range vs {
		byVersion[ver.Version] = ver
		if ver.Version < first.Version {
			first = ver
		}
	}
	base, _ := labels(first.Snapshot)
	var out []LabelPoint
	for _, a := range acc {
		ver := byVersion[a.Version]
		if ver == nil {
			continue
		}
		if n, ok := labels(ver.Snapshot); ok {
			out = append(out, LabelPoint{Version: a.Version, Labels: max(0, n-base), Accuracy: a.Accuracy, Frames: a.Frames})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Labels < out[j].Labels })
	return out
}

// verdict names a decision's outcome; versions stored before the paired gate have none.
func verdict(d registry.Decision) string {
	switch {
	case d.Verdict != "":
		return d.Verdict
	case d.Published:
		return "published"
	}
	return "refused"
}

// curve returns a version's loss and val loss per epoch, read once.
func (t *Tracker) curve(ctx context.Context, reg *registry.Registry, project string, version int64) ([]float64, []float64) {
	key := fmt.Sprintf("%s/%d", project, version)
	t.mu.Lock()
	c, ok := t.curves[key]
	t.mu.Unlock()
	if ok {
		return c.loss, c.val
	}
	var m struct {
		TrainLoss []float64 `json:"train_loss"`
		ValLoss   []float64 `json:"val_loss"`
	}
	if err := reg.Metrics(ctx, project, version, &m); err != nil {
		return nil, nil
	}
	t.mu.Lock()
	t.curves[key] = curve{loss: m.TrainLoss, val: m.ValLoss}
	t.mu.Unlock()
	return m.TrainLoss, m.ValLoss
}

// Mount adds GET /api/v1/projects/{p}/dashboard to the curator API.
func Mount(api *httpapi.Mux, cur *curator.Curator, reg *registry.Registry, t *Tracker) {
	api.Handle("GET /api/v1/projects/{p}/dashboard", "", func(w http.ResponseWriter, r *http.Request) error {
		v, err := t.Build(r.Context(), cur, reg, r.PathValue("p"))
		if err != nil {
			return err
		}
		return httpapi.WriteJSON(w, http.StatusOK, v)
	})
}

// Extend adds the model registry's and the dashboard's endpoints to a curator service
// and follows the devices' heartbeats alongside. publicURL is how devices reach the API;
// key signs the releases an admin promotes or rolls back (nil: those are refused).
func Extend(publicURL, group string, key ed25519.PrivateKey) func(curator.Extension) func(ctx context.Context) error {
	return func(e curator.Extension) func(ctx context.Context) error {
		reg := registry.New(e.Curator.Store().S, e.Producer, e.Kafka, publicURL)
		reg.Key = key
		reg.Corrupt = e.Curator.Store().Corrupt
		t := NewTracker(10*time.Second, e.Log.Named("dashboard"))
		registry.Mount(e.API, reg)
		Mount(e.API, e.Curator, reg, t)
		return func(ctx context.Context) error { return t.Consume(ctx, e.Kafka, group) }
	}
}
