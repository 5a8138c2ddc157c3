package retrain_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/agent"
	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/registry"
	"github.com/edgeloop/edgeloop/pkg/sampling"
)

// TestConfidentFramesTrainAsPseudoLabels: on the shared Mosquitto, Kafka and MinIO, an
// agent running v1 sends the frames it is sure of (the confident strategy) through the
// bridge; the curator keeps them as pseudo-labels, out of every batch and the dataset;
// the next training, started by an approved batch, trains on them and is gated on the
// human-labelled test split only.
func TestConfidentFramesTrainAsPseudoLabels(t *testing.T) {
	e := newEnv(t)
	e.retrainer("r1", time.Minute)
	p := "pseudo-" + strings.ToLower(servertest.RandomID(6))
	// Every training is released: the test is about what it trains on.
	e.bootstrap(p, 300, func(pr *project.Project) {
		pr.Retrain.Require, pr.Retrain.Margin, pr.Retrain.MinTest = "not_worse", 1, 1
	})
	e.waitFor("v1 released", 120*time.Second, func() bool { return e.release(p) == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mq := servertest.MQTT(t)
	share := "b-" + strings.ToLower(servertest.RandomID(6))
	go func() {
		_ = bridge.RunService(ctx, bridge.ServiceConfig{Kafka: e.kafka, OpsAddr: "127.0.0.1:0", Partitions: 3,
			MQTT: mqttbus.Config{URL: mq, ClientID: "bridge-" + share}, Options: bridge.Options{ShareGroup: share, ReleaseGroup: "rel-" + share}}, e.log)
	}()
	pub := e.key.Public().(ed25519.PublicKey)
	conf := sampling.DefaultConfident()
	conf.Probability, conf.Limits = 1, sampling.Limits{} // every sure frame, for a short test
	a, err := agent.New(agent.Config{Project: p, Device: "cam-1", DataDir: t.TempDir(), MQTT: mqttbus.Config{URL: mq},
		Sampling:   sampling.WithConfident(sampling.Config{DedupDistance: -1, Strategies: []sampling.StrategyConfig{{Kind: sampling.OperatorFlagged}}}, conf),
		PublicKeys: map[string]ed25519.PublicKey{artifact.KeyID(pub): pub}, DeviceToken: "device-token-0001", RegistryURL: e.api}, nil, e.log)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.Run(ctx) }()
	e.waitFor("the agent on v1", 60*time.Second, func() bool { return a.ModelVersion() == 1 })

	none, _ := drift.Get(drift.None)
	// Digits until 10 went at the project's threshold (v1, from 300 digits, is sure of
	// a tenth to a quarter of them at 0.9).
	sent, sure, k := 0, 0, 5000
	for ; sure < 10 && k < 7000; k++ {
		s := datasets.Digits(e.testDigits(), k, 1, "t", none, 1)[0]
		res, err := a.Infer(ctx, fmt.Sprint("frame-", k), s.Image, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Sampled {
			sent++
			if float64(res.Predictions[0].Confidence) >= project.DefaultPseudoMinConfidence {
				sure++
			}
		}
	}
	if sure < 10 {
		t.Fatalf("the agent sent %d of %d digits as pseudo-labels, %d at ≥ %.2f; v1 is sure of too few", sent, k-5000, sure, project.DefaultPseudoMinConfidence)
	}
	cs := &project.Store{S: e.store}
	var ps *project.PseudoSet
	e.waitFor("the pseudo-labels at the curator", 60*time.Second, func() bool {
		ps, err = cs.Pseudo(ctx, p)
		return err == nil && len(ps.Entries) == sent
	})
	pseudo := map[string]bool{}
	for _, en := range ps.Entries {
		pseudo[en.ID] = true
		if en.Confidence < float32(conf.Min) || en.Device != "cam-1" || en.Model != 1 {
			t.Fatalf("pseudo-label %+v", en)
		}
	}

	// An approved batch (of human labels only: approveDigits fails on an example it did
	// not send) starts a fine-tune of v1.
	e.approveBatch(p, 0, 20, "")
	var v2 *registry.Version
	e.waitFor("the fine-tune after the batch", 180*time.Second, func() bool {
		for _, v := range e.versions(p) {
			if v.Parent == 1 {
				v2 = v
			}
		}
		return v2 != nil
	})
	d, err := cs.Dataset(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	bySplit, _ := d.Counts()
	for _, en := range d.Entries {
		if pseudo[en.ID] {
			t.Fatalf("pseudo-label %s in the dataset's %s split", en.ID, en.Split)
		}
	}
	bs, err := cs.Batches(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		for _, it := range b.Items {
			if pseudo[it.ExampleID] {
				t.Fatalf("pseudo-label %s in batch %s", it.ExampleID, b.ID)
			}
		}
	}
	// At the default pseudo_min_confidence (0.95) of the project, those the agent sent
	// at 0.95 or more train; the test split is the dataset's, human-labelled.
	want := 0
	for _, en := range ps.Entries {
		if en.Confidence >= project.DefaultPseudoMinConfidence {
			want++
		}
	}
	if v2.Examples["pseudo"] != want || want == 0 {
		t.Fatalf("v%d trained on %d pseudo-labels, want the %d at ≥ %.2f (examples %v)", v2.Version, v2.Examples["pseudo"], want, project.DefaultPseudoMinConfidence, v2.Examples)
	}
	if v2.Examples["test"] != bySplit["test"] || v2.Examples["train"] < v2.Examples["pseudo"]+v2.Examples["new"] {
		t.Fatalf("v%d examples %v; the dataset's test split holds %d", v2.Version, v2.Examples, bySplit["test"])
	}
	t.Logf("v%d: %d pseudo-labels of %d sent, test %d (human), examples %v", v2.Version, v2.Examples["pseudo"], sent, bySplit["test"], v2.Examples)
}
