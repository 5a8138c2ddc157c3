package retrain_test

import (
	"context"
	"crypto/ed25519"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/agent"
	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/curator"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
	"github.com/edgeloop/edgeloop/pkg/retrain"
	"github.com/edgeloop/edgeloop/pkg/sampling"
	"github.com/edgeloop/edgeloop/pkg/simannotator"
)

// TestColourDetectionLoop is issue 14's loop at its smallest: a colour detection project
// — the multi-scale detector (MobileNetV2 n at 160×128 RGB, letterboxed), seeded through
// the bootstrap as the colour-detect demo seeds it, 160×128 scenes of 1–12 objects of 4
// classes over photographs — trains v1; an agent, through a real Mosquitto and the
// bridge, detects on scenes meeting white-balance drift, samples them per box (the share
// of unsure boxes, the least sure box, an odd or empty box count; random only as a
// fallback) and
// uploads them; simulated annotators correct the batches with the scenes' boxes;
// retrain fine-tunes the detector; the gate releases v2 and the agent serves it.
func TestColourDetectionLoop(t *testing.T) {
	start := time.Now()
	e := newEnv(t)
	e.retrainer("r1", time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ds = "colour-scenes:size=160x128,classes=4"
	decoding := &nn.Decoding{MinScore: 0.2, IoU: 0.5, ClassAgnostic: true, MaxDetections: 20}
	spec, err := datasets.Parse(ds)
	if err != nil {
		t.Fatal(err)
	}
	classes := spec.ClassNames()
	want := nn.Spec{Family: nn.MobileNetV2, Size: "n", Input: [2]int{160, 128}, Channels: 3, Resize: nn.Letterbox, Normalize: nn.NormNone}
	if err := retrain.Bootstrap(ctx, &retrain.BootstrapOptions{API: e.api, Token: "admin-token-00001", Project: "aisle", Dataset: ds,
		Limit: 48, Seed: 1, BatchMin: 8, BatchMax: 12, MaxWait: time.Second, Epochs: 1, Model: &want}, e.log); err != nil {
		t.Fatal(err)
	}
	ps := &project.Store{S: e.store}
	p, err := ps.UpdateProject(ctx, "aisle", func(pr *project.Project) error {
		// Any candidate not worse by 100 points on any test split is released: the test is
		// about the loop, not about the gate.
		pr.Retrain.Debounce, pr.Retrain.Require, pr.Retrain.Margin, pr.Retrain.MinTest = config.Duration(time.Millisecond), "not_worse", 1, 1
		// The agents keep at most 20 boxes a frame, one per object whatever its class.
		pr.Decode = decoding
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Task != "detect" || p.Model == nil || !p.Model.Equal(&want) {
		t.Fatalf("project: task %s, model %+v, want %+v", p.Task, p.Model, want)
	}
	// The bootstrap gave the project its dataset's mirror setting (the demo's four
	// classes are shapes, all mirror-safe: nothing is listed as never mirrored).
	if m := spec.Mirroring(); !slices.Equal(p.Mirror.Never, m.Never) || len(p.Mirror.Pairs) != 0 {
		t.Fatalf("project mirror setting %+v, want never %v of %v", p.Mirror, m.Never, classes)
	}
	e.waitFor("v1 released", 120*time.Second, func() bool { return e.release("aisle") == 1 })
	t.Logf("v1 released after %v", time.Since(start).Round(time.Millisecond))
	reg := registry.New(e.store, nil, e.kafka, e.api)
	v1, err := reg.Model(ctx, "aisle", 1)
	if err != nil {
		t.Fatal(err)
	}
	if a := v1.Header.Arch; a.Task != nn.Detect || len(a.Levels) != 3 || a.InW != 160 || a.InH != 128 || a.InC != 3 || !a.Preprocess.Letterboxed() {
		t.Fatalf("v1: %s task %s, %d levels, %dx%dx%d, preprocess %+v; want the multi-scale detector at 160x128x3, letterboxed",
			a.Name, a.Task, len(a.Levels), a.InW, a.InH, a.InC, a.Preprocess)
	}

	mq := servertest.StartDedicated(t, "mosquitto")
	go func() {
		_ = bridge.RunService(ctx, bridge.ServiceConfig{Kafka: e.kafka, OpsAddr: "127.0.0.1:0", Partitions: 3,
			MQTT: mqttbus.Config{URL: "tcp://" + mq.Addr, ClientID: "bridge-" + servertest.RandomID(4)}}, e.log)
	}()
	pub := e.key.Public().(ed25519.PublicKey)
	perBox := []string{"uncertain-boxes", "least-sure-box", "odd-count", "nothing-found"}
	a, err := agent.New(agent.Config{Project: "aisle", Device: "cam-1", DataDir: t.TempDir(), MQTT: mqttbus.Config{URL: "tcp://" + mq.Addr},
		PublicKeys: map[string]ed25519.PublicKey{artifact.KeyID(pub): pub}, DeviceToken: "device-token-0001", RegistryURL: e.api,
		Sampling: sampling.Config{DedupDistance: -1, Strategies: []sampling.StrategyConfig{
			{Name: perBox[0], Kind: sampling.LowConfidence, Measure: sampling.MidShare, Min: 0.25, Max: 0.75, Share: 0.2},
			{Name: perBox[1], Kind: sampling.LowConfidence, Measure: "margin", Max: 0.5},
			{Name: perBox[2], Kind: sampling.DetectionCount},
			{Name: perBox[3], Kind: sampling.DetectionCount, MinBoxes: 1},
			{Kind: sampling.Random, Probability: 1},
		}}}, nil, e.log)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.Run(ctx) }()
	e.waitFor("the agent on v1", 60*time.Second, func() bool { return a.ModelVersion() == 1 })
	cur := curator.New(e.store, e.prod, e.kafka, curator.NewMetrics(opshttp.NewRegistry()), e.log)
	go func() {
		_ = simannotator.Run(ctx, cur, simannotator.Config{Poll: 200 * time.Millisecond, Seed: 1}, e.log)
	}()
	sim, err := agent.NewSimulator(agent.SimConfig{Dataset: ds, Drift: "white-balance", Seed: 7}, e.log)
	if err != nil {
		t.Fatal(err)
	}

	// Drifted scenes at the edge until v2 is released.
	byBox, boxes := 0, 0
	for i := 0; e.release("aisle") < 2; i++ {
		if time.Since(start) > 170*time.Second || i == 1000 {
			t.Fatalf("no v2 after %d frames; versions %d", i, len(e.versions("aisle")))
		}
		im, truth, err := sim.Next()
		if err != nil {
			t.Fatal(err)
		}
		res, err := a.Infer(ctx, "", im, truth)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Sampled || res.ModelVersion != 1 {
			t.Fatalf("frame %d: %+v", i, res)
		}
		for _, pr := range res.Predictions {
			if pr.Box == nil || !slices.Contains(classes, pr.ClassName) || pr.Box.X0 < 0 || pr.Box.X1 > 1 || pr.Box.X0 > pr.Box.X1 {
				t.Fatalf("frame %d: prediction %+v", i, pr)
			}
		}
		boxes += len(res.Predictions)
		if slices.ContainsFunc(res.Reasons, func(r string) bool { return slices.Contains(perBox, r) }) {
			byBox++
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("v2 released after %v; %d boxes detected, %d frames sampled by a per-box strategy", time.Since(start).Round(time.Millisecond), boxes, byBox)
	if byBox == 0 {
		t.Error("no frame was sampled by a per-box strategy")
	}

	// The approved examples are the agent's scenes at their size, in colour, labelled
	// with their boxes.
	d, err := cur.Store().Dataset(ctx, "aisle")
	if err != nil {
		t.Fatal(err)
	}
	uploaded, labelled := 0, 0
	for _, en := range d.Entries {
		r, err := cur.Store().Example(ctx, "aisle", en.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Device != "cam-1" {
			continue
		}
		uploaded++
		if r.Width != 160 || r.Height != 128 || r.Channels != 3 || len(r.Truth) == 0 {
			t.Fatalf("example %s: %dx%dx%d with %d true boxes, want a 160x128 colour scene with its boxes", r.ID, r.Width, r.Height, r.Channels, len(r.Truth))
		}
		if len(r.Reasons) == 0 {
			t.Fatalf("example %s has no sampling reason", r.ID)
		}
		for _, l := range en.Labels {
			if l.Box == nil {
				t.Fatalf("example %s: a label without a box: %+v", r.ID, l)
			}
			labelled++
		}
	}
	if uploaded == 0 || labelled == 0 {
		t.Fatalf("%d of the agent's examples in the dataset with %d boxes", uploaded, labelled)
	}
	v2, err := reg.Model(ctx, "aisle", 2)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Header.Lineage.ParentVersion != 1 || !v2.Header.Model.Equal(p.Model) || len(v2.Header.Arch.Levels) != 3 {
		t.Fatalf("v2: lineage %+v, model %+v, %d levels; want a fine-tune of v1's multi-scale detector", v2.Header.Lineage, v2.Header.Model, len(v2.Header.Arch.Levels))
	}
	if !reflect.DeepEqual(v2.Header.Lineage.Mirror, p.Mirror) {
		t.Fatalf("v2's lineage records mirror setting %+v, want the project's %+v", v2.Header.Lineage.Mirror, p.Mirror)
	}
	if v2.Header.Decode == nil || *v2.Header.Decode != *decoding {
		t.Fatalf("v2's decode setting %+v, want the project's %+v", v2.Header.Decode, decoding)
	}
	e.waitFor("the agent on v2 or later", 60*time.Second, func() bool { return a.ModelVersion() >= 2 })
	// The agent decodes as the project says: at most 20 boxes scoring 0.2 or more, no two
	// overlapping by more than 0.5 whatever their classes.
	for range 20 {
		im, _, err := sim.Next()
		if err != nil {
			t.Fatal(err)
		}
		res, err := a.Infer(ctx, "", im, nil)
		if err != nil || res.ModelVersion < 2 || len(res.Predictions) > decoding.MaxDetections {
			t.Fatalf("the agent on v2: %v, %+v", err, res)
		}
		for i, pr := range res.Predictions {
			if pr.Confidence < decoding.MinScore {
				t.Fatalf("the agent on v2 kept a box scoring %.3f under the project's %.2f", pr.Confidence, decoding.MinScore)
			}
			for _, q := range res.Predictions[:i] {
				if iou := nn.IoU(*pr.Box, *q.Box); iou > decoding.IoU {
					t.Fatalf("the agent on v2 kept two boxes (%s, %s) overlapping by %.2f, above the project's class-agnostic %.2f", pr.ClassName, q.ClassName, iou, decoding.IoU)
				}
			}
		}
	}
	t.Logf("%d of the agent's examples approved with %d boxes; done in %v", uploaded, labelled, time.Since(start).Round(time.Millisecond))
}
