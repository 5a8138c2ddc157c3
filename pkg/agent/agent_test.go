package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/sampling"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

type fixture struct {
	pub    ed25519.PublicKey
	priv   ed25519.PrivateKey
	srv    *httptest.Server
	mu     sync.Mutex
	files  map[string][]byte
	served atomic.Int64
	seq    atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	pub, priv, _ := artifact.GenerateKey()
	f := &fixture{pub: pub, priv: priv, files: map[string][]byte{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer device-secret" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		b, ok := f.files[r.URL.Path]
		f.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		f.served.Add(1)
		http.ServeContent(w, r, "model.elm", time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// modelFile encodes a classifier (random weights) of the given version of digits.
func modelFile(t *testing.T, version int64, seed uint64) []byte {
	return modelFileOf(t, "digits", version, seed)
}

// modelFileOf encodes a classifier (random weights) of a project's version.
func modelFileOf(t *testing.T, project string, version int64, seed uint64) []byte {
	a := nn.ClassifierArch(10)
	p, err := nn.InitParams(a, seed)
	if err != nil {
		t.Fatal(err)
	}
	b, err := artifact.Encode(&artifact.Model{Header: artifact.Header{Arch: a, Classes: datasets.Classes(), Project: project, Version: version}, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// artifactPath is where the fixture's registry serves version's artifact.
func artifactPath(version int64) string {
	return fmt.Sprintf("/api/v1/projects/digits/models/%d/artifact", version)
}

// release serves data and returns a release signed by the fixture's key, with the next
// release sequence; mods change its manifest before it is signed.
func (f *fixture) release(version int64, data []byte, mods ...func(*artifact.ReleaseManifest)) *edgeloopv1.ModelRelease {
	f.mu.Lock()
	f.files[artifactPath(version)] = data
	f.mu.Unlock()
	man := &artifact.ReleaseManifest{Project: "digits", Version: version, SHA256: artifact.SHA256(data), SizeBytes: int64(len(data)),
		Created: time.Now().UTC(), Seq: f.seq.Add(1)}
	for _, mod := range mods {
		mod(man)
	}
	mb, ms, err := artifact.SignManifest(f.priv, man)
	if err != nil {
		panic(err)
	}
	return &edgeloopv1.ModelRelease{Project: "digits", Version: version, ArtifactUrl: f.srv.URL + artifactPath(version),
		Sha256: artifact.SHA256(data), Signature: artifact.Sign(f.priv, data), KeyId: artifact.KeyID(f.pub), SizeBytes: int64(len(data)),
		Rollback: man.Rollback, Manifest: mb, ManifestSignature: ms, ManifestKeyId: artifact.KeyID(f.pub)}
}

// rollback marks a manifest as a rollback.
func rollback(m *artifact.ReleaseManifest) { m.Rollback = true }

func newAgent(t *testing.T, f *fixture, mod func(*Config)) *Agent {
	t.Helper()
	cfg := Config{Project: "digits", Device: "cam-1", DataDir: t.TempDir(), DeviceToken: "device-secret", RegistryURL: f.srv.URL,
		PublicKeys: map[string]ed25519.PublicKey{artifact.KeyID(f.pub): f.pub}}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg, nil, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func digit(t *testing.T) *raster.Image {
	im := raster.New(28, 28)
	for y := 6; y < 22; y++ {
		im.Pix[y*28+14] = 1
	}
	return im
}

func TestUpdateRefusals(t *testing.T) {
	f := newFixture(t)
	a := newAgent(t, f, nil)
	ctx := context.Background()
	if err := a.Apply(ctx, f.release(2, modelFile(t, 2, 1))); err != nil {
		t.Fatal(err)
	}
	good := modelFile(t, 3, 2)
	cases := []struct {
		name string
		rel  func() *edgeloopv1.ModelRelease
		want string
	}{
		{"tampered weights", func() *edgeloopv1.ModelRelease {
			r := f.release(3, good)
			bad := append([]byte(nil), good...)
			bad[len(bad)-3] ^= 0x40
			f.files[artifactPath(3)] = bad
			return r
		}, "signature does not verify"},
		{"signature by another key", func() *edgeloopv1.ModelRelease {
			r := f.release(3, good)
			_, other, _ := artifact.GenerateKey()
			r.Signature = artifact.Sign(other, good)
			return r
		}, "signature does not verify"},
		{"unknown key", func() *edgeloopv1.ModelRelease {
			r := f.release(3, good)
			r.KeyId = "0000"
			return r
		}, "unknown key"},
		{"manifest by an unknown key", func() *edgeloopv1.ModelRelease {
			r := f.release(3, good)
			r.ManifestKeyId = "0000"
			return r
		}, "unknown key"},
		{"no manifest", func() *edgeloopv1.ModelRelease {
			r := f.release(3, good)
			r.Manifest, r.ManifestSignature = nil, nil
			return r
		}, "no signed manifest"},
		{"forged manifest", func() *edgeloopv1.ModelRelease {
			r := f.release(3, good)
			r.Manifest = bytes.Replace(r.Manifest, []byte(`"version":3`), []byte(`"version":9`), 1)
			return r
		}, "signature does not verify"},
		{"manifest signed by another key", func() *edgeloopv1.ModelRelease {
			r := f.release(3, good)
			_, other, _ := artifact.GenerateKey()
			var m artifact.ReleaseManifest
			_ = json.Unmarshal(r.Manifest, &m)
			r.Manifest, r.ManifestSignature, _ = artifact.SignManifest(other, &m)
			return r
		}, "signature does not verify"},
		{"artifact of another project", func() *edgeloopv1.ModelRelease {
			return f.release(3, modelFileOf(t, "cats", 3, 2))
		}, "project"},
		{"downgrade", func() *edgeloopv1.ModelRelease { return f.release(1, modelFile(t, 1, 3)) }, "downgrade refused"},
		{"not a model", func() *edgeloopv1.ModelRelease { return f.release(3, []byte("GIF89a not a model at all")) }, "invalid model file"},
		{"version mismatch", func() *edgeloopv1.ModelRelease { return f.release(4, modelFile(t, 5, 3)) }, "artifact says v5"},
		{"too large", func() *edgeloopv1.ModelRelease {
			return f.release(3, good, func(m *artifact.ReleaseManifest) { m.SizeBytes = 1 << 40 })
		}, "exceeds"},
		{"other project", func() *edgeloopv1.ModelRelease {
			return f.release(3, good, func(m *artifact.ReleaseManifest) { m.Project = "cats" })
		}, "project"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := a.Apply(ctx, c.rel())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
			if a.ModelVersion() != 2 {
				t.Fatalf("running v%d after a refused update, want v2", a.ModelVersion())
			}
			if res, err := a.Infer(ctx, "", digit(t), nil); err != nil || res.ModelVersion != 2 {
				t.Fatalf("inference after refusal: %+v %v", res, err)
			}
		})
	}
	// A rollback to an older version is accepted when its signed manifest says so.
	v2 := f.release(2, modelFile(t, 2, 1))
	rb := f.release(1, modelFile(t, 1, 4), rollback)
	if err := a.Apply(ctx, rb); err != nil || a.ModelVersion() != 1 {
		t.Fatalf("rollback: %v, running v%d", err, a.ModelVersion())
	}
	// A release older than the trusted rollback is a replay, also after a restart.
	b := newAgent(t, f, func(c *Config) { c.DataDir = a.cfg.DataDir })
	for _, ag := range []*Agent{a, b} {
		if err := ag.Apply(ctx, v2); !errors.Is(err, ErrStaleRelease) || ag.ModelVersion() != 1 {
			t.Fatalf("replayed v2 after the rollback: %v, running v%d", err, ag.ModelVersion())
		}
	}
}

// TestSwapUnderLoad: inferences run without pause while a new model is swapped in;
// none fails, and afterwards they all run the new version.
func TestSwapUnderLoad(t *testing.T) {
	f := newFixture(t)
	a := newAgent(t, f, func(c *Config) {
		c.Sampling = sampling.Config{Strategies: []sampling.StrategyConfig{{Kind: sampling.OperatorFlagged}}}
	})
	ctx := context.Background()
	if err := a.Apply(ctx, f.release(1, modelFile(t, 1, 1))); err != nil {
		t.Fatal(err)
	}
	var failed, total atomic.Int64
	var seen2 atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := a.Infer(ctx, "", digit(t), nil)
				total.Add(1)
				if err != nil {
					failed.Add(1)
				} else if res.ModelVersion == 2 {
					seen2.Store(true)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	for v := int64(2); v <= 4; v++ { // three swaps: the retired models must not break anyone
		if err := a.Apply(ctx, f.release(v, modelFile(t, v, uint64(v)))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d inferences during 3 swaps, %d failed", total.Load(), failed.Load())
	if failed.Load() > 0 || total.Load() < 50 {
		t.Fatalf("%d of %d inferences failed", failed.Load(), total.Load())
	}
	if a.ModelVersion() != 4 || !seen2.Load() {
		t.Fatalf("running v%d, saw v2: %v", a.ModelVersion(), seen2.Load())
	}
	// The new model survives a restart.
	b := newAgent(t, f, func(c *Config) { c.DataDir = a.cfg.DataDir })
	if b.ModelVersion() != 4 {
		t.Fatalf("after restart: v%d", b.ModelVersion())
	}
}

func TestResumedDownload(t *testing.T) {
	f := newFixture(t)
	a := newAgent(t, f, nil)
	data := modelFile(t, 1, 1)
	rel := f.release(1, data)
	// A previous attempt left the first half on disk.
	man, err := artifact.VerifyManifest(f.pub, rel.Manifest, rel.ManifestSignature)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileSync(a.partPath(man), data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
	var ranged atomic.Bool
	inner := f.srv.Config.Handler
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ranged.Store(ranged.Load() || r.Header.Get("Range") != "")
		inner.ServeHTTP(w, r)
	})
	if err := a.Apply(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	if !ranged.Load() || a.ModelVersion() != 1 {
		t.Fatalf("resumed %v, running v%d", ranged.Load(), a.ModelVersion())
	}
}

func TestFeedbackAndBadInput(t *testing.T) {
	f := newFixture(t)
	a := newAgent(t, f, nil)
	ctx := context.Background()
	if _, err := a.Infer(ctx, "", digit(t), nil); !errors.Is(err, ErrNoModel) {
		t.Fatalf("inference without a model: %v", err)
	}
	if err := a.Apply(ctx, f.release(1, modelFile(t, 1, 1))); err != nil {
		t.Fatal(err)
	}
	res, err := a.Infer(ctx, "frame-1", digit(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Feedback("nope", &edgeloopv1.Annotation{Labels: []*edgeloopv1.Label{{ClassName: "1"}}}); !errors.Is(err, ErrUnknownFrame) {
		t.Fatalf("unknown frame: %v", err)
	}
	if _, err := a.Feedback(res.FrameID, &edgeloopv1.Annotation{Labels: []*edgeloopv1.Label{{ClassName: "cat"}}}); err == nil {
		t.Fatal("an unknown class was accepted")
	}
	id, err := a.Feedback(res.FrameID, &edgeloopv1.Annotation{Labels: []*edgeloopv1.Label{{ClassName: "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	es, _ := a.ob.Next(10, nil)
	ex := &edgeloopv1.Example{}
	if len(es) == 0 || proto.Unmarshal(es[0].Payload, ex) != nil || ex.Id != id {
		t.Fatalf("flagged example not first in the outbox: %d entries", len(es))
	}
	if ex.Correction.GetLabels()[0].ClassName != "1" || ex.TakenBy != edgeloopv1.SamplingKind_SAMPLING_KIND_OPERATOR_FLAGGED ||
		ex.Project != "digits" || ex.Device != "cam-1" || ex.FrameId != "frame-1" || ex.ModelVersion != 1 {
		t.Fatalf("example %+v", ex)
	}
	if acc := a.Status().AccuracyByModel[1]; acc == nil || acc.Frames != 1 || acc.Correct != 0 {
		t.Fatalf("a flagged frame counts as wrong: %+v", acc)
	}
	// HTTP: a non-image body is a 400 with a JSON error.
	h := a.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/infer", strings.NewReader("not an image")))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Fatalf("bad image: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/infer", bytes.NewReader(digit(t).EncodePNG())))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"predictions"`) {
		t.Fatalf("good image: %d %s", rec.Code, rec.Body)
	}
}

// TestFeedbackKeepsOneExamplePerFrame: feedback on a frame Infer already queued makes
// no second example: while it waits in the outbox the correction replaces it (same id,
// the operator's correction, high priority, both reasons); once it was sent, the
// correction follows under the same id; a later correction wins.
func TestFeedbackKeepsOneExamplePerFrame(t *testing.T) {
	f := newFixture(t)
	a := newAgent(t, f, func(c *Config) {
		c.Sampling = sampling.Config{Strategies: []sampling.StrategyConfig{{Kind: sampling.OperatorFlagged}, {Name: "all", Kind: sampling.Random, Probability: 1}}}
	})
	ctx := context.Background()
	if err := a.Apply(ctx, f.release(1, modelFile(t, 1, 1))); err != nil {
		t.Fatal(err)
	}
	res, err := a.Infer(ctx, "frame-7", digit(t), nil)
	if err != nil || !res.Sampled {
		t.Fatalf("infer: sampled %v, %v", res.Sampled, err)
	}
	queued := func() []*edgeloopv1.Example {
		t.Helper()
		es, err := a.ob.Next(10, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []*edgeloopv1.Example
		for _, e := range es {
			ex := &edgeloopv1.Example{}
			if err := proto.Unmarshal(e.Payload, ex); err != nil || e.ID != ex.Id {
				t.Fatalf("entry %s: %v", e.ID, err)
			}
			out = append(out, ex)
		}
		return out
	}
	first := queued()
	if len(first) != 1 || first[0].TakenBy != edgeloopv1.SamplingKind_SAMPLING_KIND_RANDOM || first[0].Correction != nil {
		t.Fatalf("after infer: %v", first)
	}
	id, err := a.Feedback("frame-7", &edgeloopv1.Annotation{Labels: []*edgeloopv1.Label{{ClassName: "1"}}})
	if err != nil || id != first[0].Id {
		t.Fatalf("feedback: example %q, %v; want the queued example's id %s", id, err, first[0].Id)
	}
	got := queued()
	if len(got) != 1 || got[0].Id != id || got[0].FrameId != "frame-7" || got[0].Correction.GetLabels()[0].GetClassName() != "1" ||
		got[0].TakenBy != edgeloopv1.SamplingKind_SAMPLING_KIND_OPERATOR_FLAGGED || len(got[0].Reasons) != 2 ||
		got[0].Reasons[1].Strategy != "all" {
		t.Fatalf("after feedback the outbox holds %v; want the one example, corrected, taken by the operator, with both reasons", got)
	}
	if s := a.ob.Stats(); s.Depth != 1 || s.ByPriority[contract.PriorityHigh] != 1 {
		t.Fatalf("outbox %+v: want the one example at high priority", s)
	}
	// Sent (the broker acknowledged it): a second correction follows under the same id.
	es, _ := a.ob.Next(1, nil)
	if err := a.ob.Delete(es[0]); err != nil {
		t.Fatal(err)
	}
	id2, err := a.Feedback("frame-7", &edgeloopv1.Annotation{Labels: []*edgeloopv1.Label{{ClassName: "7"}}})
	if err != nil || id2 != id {
		t.Fatalf("second feedback: %q, %v; want %s", id2, err, id)
	}
	if got := queued(); len(got) != 1 || got[0].Id != id || got[0].Correction.GetLabels()[0].GetClassName() != "7" || len(got[0].Reasons) != 2 {
		t.Fatalf("after the second feedback: %v", got)
	}
}

// TestOfflineOutboxDeliveredWhenBrokerReturns: frames keep being served and queued while
// the broker is down; when it comes back every queued example reaches the broker,
// checked by id, and the outbox empties once the bridge confirms them (not on the
// broker's PUBACK). The agent also follows the retained release.
func TestOfflineOutboxDeliveredWhenBrokerReturns(t *testing.T) {
	broker := servertest.StartDedicated(t, "mosquitto")
	url := "tcp://" + broker.Addr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))

	// A persistent subscriber stands in for the bridge: the broker queues for it while
	// it is away.
	var mu sync.Mutex
	got := map[string]bool{}
	sub := func() *mqttbus.Client {
		c, err := mqttbus.Connect(ctx, mqttbus.Config{URL: url, ClientID: "sub-" + servertest.RandomID(4), Subscriptions: []mqttbus.Subscription{{
			Filter: contract.ExamplesTopic("digits", "cam-9"), QoS: 1, Handler: func(m mqttbus.Message) {
				ex := &edgeloopv1.Example{}
				if proto.Unmarshal(m.Payload(), ex) == nil {
					mu.Lock()
					got[ex.Id] = true
					mu.Unlock()
				}
			}}}}, log)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	s := sub()
	defer s.Disconnect(0)
	broker.Stop()

	f := newFixture(t)
	a := newAgent(t, f, func(c *Config) {
		c.Device = "cam-9"
		c.MQTT = mqttbus.Config{URL: url}
		c.StatusInterval = 200 * time.Millisecond
		c.Sampling = sampling.Config{DedupDistance: -1, Strategies: []sampling.StrategyConfig{{Kind: sampling.Random, Probability: 1}}}
	})
	if err := a.Apply(ctx, f.release(1, modelFile(t, 1, 1))); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	const n = 150
	for i := 0; i < n; i++ {
		if _, err := a.Infer(ctx, "", digit(t), nil); err != nil {
			t.Fatal(err)
		}
	}
	es, _ := a.ob.Next(1000, nil)
	queued := map[string]bool{}
	for _, e := range es {
		queued[e.ID] = true
	}
	if len(queued) != n {
		t.Fatalf("outbox holds %d of %d examples while offline", len(queued), n)
	}
	broker.Start()
	// Publish a release (retained) that the agent must follow once connected.
	pub, err := mqttbus.Connect(ctx, mqttbus.Config{URL: url, ClientID: "releaser"}, log)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := proto.Marshal(f.release(2, modelFile(t, 2, 2)))
	if err := pub.Publish(ctx, contract.ReleaseTopic("digits"), 1, true, rb); err != nil {
		t.Fatal(err)
	}
	pub.Disconnect(0)

	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitUntil("every example at the broker", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= n
	})
	mu.Lock()
	missing := 0
	for id := range queued {
		if !got[id] {
			missing++
		}
	}
	mu.Unlock()
	if missing > 0 {
		t.Fatalf("%d of %d queued examples never reached the broker", missing, n)
	}
	// A PUBACK is not durable: the outbox keeps every example until it is confirmed.
	time.Sleep(300 * time.Millisecond)
	if d := a.ob.Stats().Depth; d != n {
		t.Fatalf("outbox depth %d before any confirmation, want %d", d, n)
	}
	// The bridge's confirmations (sent here by hand) empty it; half are confirmed twice.
	conf, err := mqttbus.Connect(ctx, mqttbus.Config{URL: url, ClientID: "confirmer"}, log)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, n)
	for id := range queued {
		ids = append(ids, id)
	}
	for _, part := range [][]string{ids[:n/2], ids, {"not-queued"}} {
		b, _ := proto.Marshal(&edgeloopv1.ExampleAck{Ids: part})
		if err := conf.Publish(ctx, contract.AcksTopic("digits", "cam-9"), 1, false, b); err != nil {
			t.Fatal(err)
		}
	}
	conf.Disconnect(0)
	waitUntil("the outbox emptied by the confirmations and v2 followed", func() bool {
		return a.ob.Stats().Depth == 0 && a.ModelVersion() == 2
	})
	if a.ModelVersion() != 2 {
		t.Fatalf("release not followed: running v%d", a.ModelVersion())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
