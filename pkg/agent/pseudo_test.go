package agent

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/sampling"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// TestPseudoFlagsGovernTheConfidentStrategy: by default the agent sends pseudo-labels
// (the confident strategy, 2 % at ≥ 0.9, ≤ 6 a minute); the -pseudo-* flags (also
// EDGELOOP_PSEUDO_*) change it, in a sampling file's config too, and a share of 0 turns
// it off; a bad value is an error naming the flags.
func TestPseudoFlagsGovernTheConfidentStrategy(t *testing.T) {
	parse := func(args ...string) (Config, error) {
		fs := flag.NewFlagSet("agent", flag.ContinueOnError)
		f := RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f.Config()
	}
	confident := func(c Config) *sampling.StrategyConfig {
		i := slices.IndexFunc(c.Sampling.Strategies, func(s sampling.StrategyConfig) bool { return s.Kind == sampling.Confident })
		if i < 0 {
			return nil
		}
		return &c.Sampling.Strategies[i]
	}
	c, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	if s := confident(c); s == nil || s.Probability != 0.02 || s.Min != 0.9 || s.Limits.PerMinute != 6 {
		t.Fatalf("default confident strategy %+v", s)
	}
	file := filepath.Join(t.TempDir(), "sampling.json")
	if err := os.WriteFile(file, []byte(`{"strategies": [{"kind": "operator_flagged"}, {"kind": "random", "probability": 0.1}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = parse("-sampling", file, "-pseudo-share", "0.1", "-pseudo-per-minute", "2", "-pseudo-min-confidence", "0.97")
	if err != nil {
		t.Fatal(err)
	}
	if s := confident(c); s == nil || s.Probability != 0.1 || s.Min != 0.97 || s.Limits.PerMinute != 2 || len(c.Sampling.Strategies) != 3 {
		t.Fatalf("a sampling file with -pseudo-*: %+v", c.Sampling.Strategies)
	}
	if c, err = parse("-pseudo-share", "0"); err != nil || confident(c) != nil {
		t.Fatalf("-pseudo-share 0: %+v, %v", c.Sampling.Strategies, err)
	}
	if _, err := parse("-pseudo-share", "0.1", "-pseudo-min-confidence", "1.5"); err == nil {
		t.Fatal("-pseudo-min-confidence 1.5 accepted")
	}
}

// TestConfidentFrameIsAPseudoLabelNotAnExampleToCorrect: a frame the confident
// strategy takes is queued with its predictions as SAMPLING_KIND_CONFIDENT (no
// correction), and an operator's feedback on the same frame is an example of its own,
// for annotation, instead of replacing the pseudo-label.
func TestConfidentFrameIsAPseudoLabelNotAnExampleToCorrect(t *testing.T) {
	f := newFixture(t)
	a := newAgent(t, f, func(c *Config) {
		// Random weights are sure of nothing: any top-1 passes.
		c.Sampling = sampling.Config{DedupDistance: -1, Strategies: []sampling.StrategyConfig{{Kind: sampling.OperatorFlagged},
			{Kind: sampling.Confident, Min: 0.01, Probability: 1}}}
	})
	ctx := context.Background()
	if err := a.Apply(ctx, f.release(1, modelFile(t, 1, 1))); err != nil {
		t.Fatal(err)
	}
	res, err := a.Infer(ctx, "frame-3", digit(t), nil)
	if err != nil || !res.Sampled || res.Reasons[0] != sampling.Confident {
		t.Fatalf("infer: %+v, %v", res, err)
	}
	id, err := a.Feedback("frame-3", &edgeloopv1.Annotation{Labels: []*edgeloopv1.Label{{ClassName: "3"}}})
	if err != nil {
		t.Fatal(err)
	}
	es, err := a.ob.Next(10, nil)
	if err != nil || len(es) != 2 {
		t.Fatalf("outbox holds %d examples (%v), want the pseudo-label and the correction", len(es), err)
	}
	byKind := map[edgeloopv1.SamplingKind]*edgeloopv1.Example{}
	for _, e := range es {
		ex := &edgeloopv1.Example{}
		if err := proto.Unmarshal(e.Payload, ex); err != nil {
			t.Fatal(err)
		}
		byKind[ex.TakenBy] = ex
	}
	ps, fix := byKind[edgeloopv1.SamplingKind_SAMPLING_KIND_CONFIDENT], byKind[edgeloopv1.SamplingKind_SAMPLING_KIND_OPERATOR_FLAGGED]
	if ps == nil || ps.Correction != nil || len(ps.Predictions) == 0 || ps.FrameId != "frame-3" {
		t.Fatalf("pseudo-label %v", ps)
	}
	if fix == nil || fix.Id != id || fix.Id == ps.Id || fix.Correction.GetLabels()[0].GetClassName() != "3" {
		t.Fatalf("correction %v (id %s), pseudo-label id %s", fix, id, ps.Id)
	}
}
