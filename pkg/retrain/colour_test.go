package retrain_test

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/agent"
	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/dataformat"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/registry"
	"github.com/edgeloop/edgeloop/pkg/sampling"
	"github.com/edgeloop/edgeloop/pkg/simannotator"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// TestColourProjectEndToEnd: a colour classification project — MobileNetV2 n at 96×64
// RGB, letterboxed — trains v1 from a seed of 128×96 colour JPEGs; an agent, through a
// real Mosquitto and the bridge, serves it on colour frames, samples them and uploads
// them in colour; the curator keeps them at their size and colour; simulated
// annotators correct the batches from the frames' truth; retrain fine-tunes; the gate
// releases v2 and the agent serves it.
func TestColourProjectEndToEnd(t *testing.T) {
	start := time.Now()
	e := newEnv(t)
	e.retrainer("r1", time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, err := colourscenes.New(colourscenes.LoadPhotos("", e.log))
	if err != nil {
		t.Fatal(err)
	}
	classes, _ := colourscenes.ClassNames(4)
	none, _ := drift.Get(drift.None)
	frames := func(n int, seed uint64) []colourscenes.Sample {
		set, err := g.Classification(colourscenes.ClassifyConfig{W: 128, H: 96, Classes: len(classes)}, n, seed, none)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	seedSet, edge := frames(64, 1), frames(400, 2)
	spec := nn.Spec{Family: nn.MobileNetV2, Size: "n", Input: [2]int{96, 64}, Channels: 3}
	body := mustJSON(project.Project{ID: "shelf", Task: "classify", Classes: classes, Model: &spec,
		Batch: project.BatchSettings{Min: 10, Max: 20, MaxWait: config.Duration(time.Second)},
		// Any candidate not worse by 100 points on any test split is released: the test
		// is about the colour path, not about the gate.
		Retrain: project.RetrainPolicy{Epochs: 1, Debounce: config.Duration(time.Millisecond), Require: "not_worse", Margin: 1, MinTest: 1}})
	bad := mustJSON(project.Project{ID: "odd", Task: "classify", Classes: classes, Model: &nn.Spec{Family: nn.MobileNetV2, Input: [2]int{100, 96}}})
	if code, out := e.call("POST", "/api/v1/projects", "application/json", bad); code != http.StatusBadRequest {
		t.Fatalf("a 100 px wide model: %d %s, want 400", code, out)
	}
	if code, out := e.call("POST", "/api/v1/projects", "application/json", body); code != http.StatusCreated {
		t.Fatalf("create project: %d %s", code, out)
	}
	p, err := (&project.Store{S: e.store}).Project(ctx, "shelf")
	if err != nil {
		t.Fatal(err)
	}
	var seeds []dataformat.SeedImage
	for i, s := range seedSet {
		seeds = append(seeds, dataformat.SeedImage{ID: fmt.Sprintf("seed-%03d", i), Data: s.Image.EncodeJPEG(90), ContentType: "image/jpeg",
			Width: s.Image.W, Height: s.Image.H, Split: "train", Labels: []project.Label{{Class: classes[s.Label]}}})
	}
	zipData, err := dataformat.SeedArchive(p, seeds)
	if err != nil {
		t.Fatal(err)
	}
	if code, out := e.call("POST", "/api/v1/projects/shelf/dataset/import?format=coco", "application/zip", zipData); code != http.StatusCreated {
		t.Fatalf("import seed: %d %s", code, out)
	}
	e.waitFor("v1 released", 120*time.Second, func() bool { return e.release("shelf") == 1 })
	t.Logf("v1 released after %v", time.Since(start).Round(time.Millisecond))
	reg := registry.New(e.store, nil, e.kafka, e.api)
	v1, err := reg.Model(ctx, "shelf", 1)
	if err != nil {
		t.Fatal(err)
	}
	h := v1.Header
	if !h.Model.Equal(p.Model) || h.Arch.Name != "mobilenetv2-n" || h.Arch.InW != 96 || h.Arch.InH != 64 || h.Arch.InC != 3 || !h.Arch.Preprocess.Letterboxed() {
		t.Fatalf("v1: model %+v, arch %s %dx%dx%d, preprocess %+v", h.Model, h.Arch.Name, h.Arch.InW, h.Arch.InH, h.Arch.InC, h.Arch.Preprocess)
	}
	mb, err := reg.File(ctx, "shelf", 1, "model.elm")
	if err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(mb[len(artifact.Magic):]); v != artifact.FormatVersion {
		t.Fatalf("v1 is a format %d file, want %d", v, artifact.FormatVersion)
	}

	mq := servertest.StartDedicated(t, "mosquitto")
	go func() {
		_ = bridge.RunService(ctx, bridge.ServiceConfig{Kafka: e.kafka, OpsAddr: "127.0.0.1:0", Partitions: 3,
			MQTT: mqttbus.Config{URL: "tcp://" + mq.Addr, ClientID: "bridge-" + servertest.RandomID(4)}}, e.log)
	}()
	pub := e.key.Public().(ed25519.PublicKey)
	a, err := agent.New(agent.Config{Project: "shelf", Device: "cam-1", DataDir: t.TempDir(), MQTT: mqttbus.Config{URL: "tcp://" + mq.Addr},
		PublicKeys: map[string]ed25519.PublicKey{artifact.KeyID(pub): pub}, DeviceToken: "device-token-0001", RegistryURL: e.api,
		Sampling: sampling.Config{Strategies: []sampling.StrategyConfig{{Kind: sampling.Random, Probability: 1}}}}, nil, e.log)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.Run(ctx) }()
	e.waitFor("the agent on v1", 60*time.Second, func() bool { return a.ModelVersion() == 1 })
	cur := curator.New(e.store, e.prod, e.kafka, curator.NewMetrics(opshttp.NewRegistry()), e.log)
	go func() {
		_ = simannotator.Run(ctx, cur, simannotator.Config{Poll: 200 * time.Millisecond, Seed: 1}, e.log)
	}()

	// Colour frames at the edge: at least 40, and until the test split holds one to
	// compare on (splits are drawn per example); then wait for v2.
	sent := 0
	for e.release("shelf") < 2 {
		if time.Since(start) > 150*time.Second || sent == len(edge) {
			t.Fatalf("no v2 after %d frames; versions %d", sent, len(e.versions("shelf")))
		}
		if sent >= 40 && e.testExamples("shelf") > 0 {
			time.Sleep(250 * time.Millisecond)
			continue
		}
		f := edge[sent]
		sent++
		res, err := a.Infer(ctx, "", f.Image, &edgeloopv1.Annotation{Author: "simulator", Labels: []*edgeloopv1.Label{{ClassName: classes[f.Label]}}})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Sampled || res.ModelVersion != 1 || len(res.Predictions) != len(classes) || !slices.Contains(classes, res.Predictions[0].ClassName) {
			t.Fatalf("frame %d: %+v", sent, res)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("v2 released after %v", time.Since(start).Round(time.Millisecond))

	// The curator kept the approved frames at their size, in colour.
	d, err := cur.Store().Dataset(ctx, "shelf")
	if err != nil {
		t.Fatal(err)
	}
	uploaded := 0
	for _, en := range d.Entries {
		r, err := cur.Store().Example(ctx, "shelf", en.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Device != "cam-1" {
			continue
		}
		uploaded++
		if r.Width != 128 || r.Height != 96 || r.ContentType != "image/jpeg" {
			t.Fatalf("example %s stored as %dx%d %s, want the frame's 128x96 JPEG", r.ID, r.Width, r.Height, r.ContentType)
		}
		if uploaded == 1 {
			o, err := e.store.Get(ctx, r.Image)
			if err != nil {
				t.Fatal(err)
			}
			im, err := raster.DecodeChannels(o.Data, 0, 0)
			if err != nil || im.Channels() != 3 || im.W != 128 || im.H != 96 {
				t.Fatalf("the stored image of %s: %v, %dx%dx%d, want 128x96 RGB", r.ID, err, im.W, im.H, im.Channels())
			}
		}
	}
	if uploaded == 0 {
		t.Fatal("no example of the agent in the dataset")
	}
	v2, err := reg.Model(ctx, "shelf", 2)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Header.Lineage.ParentVersion != 1 || v2.Header.Lineage.Mode != "replay" || !v2.Header.Model.Equal(p.Model) || !v2.Header.Arch.Preprocess.Letterboxed() {
		t.Fatalf("v2: lineage %+v, model %+v, preprocess %+v", v2.Header.Lineage, v2.Header.Model, v2.Header.Arch.Preprocess)
	}
	e.waitFor("the agent on v2 or later", 60*time.Second, func() bool { return a.ModelVersion() >= 2 })
	res, err := a.Infer(ctx, "", edge[len(edge)-1].Image, nil)
	if err != nil || res.ModelVersion < 2 || len(res.Predictions) != len(classes) {
		t.Fatalf("the agent on v2: %v, %+v", err, res)
	}
	t.Logf("%d of the agent's examples approved; done in %v", uploaded, time.Since(start).Round(time.Millisecond))
}
