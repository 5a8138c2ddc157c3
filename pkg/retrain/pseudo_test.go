package retrain

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/internal/fixture"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// TestPseudoPlanRules: a fine-tune of a classifier trains on the newest pseudo-labels
// at or above pseudo_min_confidence, of known classes, that are not human-labelled
// examples, at most pseudo_max; a first model, batch-norm adaptation, a detector and
// pseudo_weight < 0 take none. They load as train samples of pseudo_weight, and a
// pseudo-label in val or test is an error.
func TestPseudoPlanRules(t *testing.T) {
	p := &project.Project{ID: "p", Task: "classify", Classes: []string{"a", "b"}}
	p.Defaults()
	p.Retrain.PseudoMax = 3
	ps := &project.PseudoSet{}
	for i, e := range []struct {
		class string
		conf  float32
	}{{"a", 0.99}, {"b", 0.96}, {"a", 0.94}, {"zebra", 0.99}, {"b", 0.97}, {"a", 0.98}, {"b", 0.99}} {
		ps.Add(project.PseudoEntry{ID: fmt.Sprint("ps-", i), Class: e.class, Confidence: e.conf})
	}
	labelled := map[string]bool{"ps-6": true} // an example an operator also corrected
	ids := func(es []project.PseudoEntry) string {
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return strings.Join(out, ",")
	}
	for _, mode := range []string{ModeReplay, ModeFull} {
		// ps-6 is labelled, ps-3 of an unknown class, ps-2 under 0.95: ps-5, ps-4, ps-1.
		if got := ids(PseudoPlan(p, mode, ps, labelled)); got != "ps-5,ps-4,ps-1" {
			t.Errorf("%s: pseudo-labels %s, want ps-5,ps-4,ps-1", mode, got)
		}
	}
	for _, mode := range []string{ModeScratch, ModeAdaptBN} {
		if got := PseudoPlan(p, mode, ps, labelled); len(got) != 0 {
			t.Errorf("%s: %d pseudo-labels, want none", mode, len(got))
		}
	}
	off := *p
	off.Retrain.PseudoWeight = -1
	det := *p
	det.Task = "detect"
	if len(PseudoPlan(&off, ModeReplay, ps, nil)) != 0 || len(PseudoPlan(&det, ModeReplay, ps, nil)) != 0 {
		t.Error("pseudo-labels with pseudo_weight < 0 or for a detector")
	}

	ctx := context.Background()
	st := memstore.New()
	key, _, err := objstore.PutContent(ctx, st, project.ImagePrefix("p"), fixture.PNG(40, 30), "image/png")
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{cfg: ServiceConfig{CacheDir: t.TempDir()}, cur: &project.Store{S: st}, log: zap.NewNop()}
	a := nn.ClassifierArch(2)
	smps, skipped, err := s.loadPseudo(ctx, p, a, []project.PseudoEntry{{ID: "ps-1", Image: key, Class: "b"}, {ID: "ps-9", Image: project.ImagePrefix("p") + "missing", Class: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(smps) != 1 || smps[0].Label != 1 || smps[0].Weight != float32(project.DefaultPseudoWeight) || smps[0].Image.W != a.InW || smps[0].Image.H != a.InH {
		t.Fatalf("loaded %+v", smps)
	}
	if len(skipped) != 1 || skipped[0].ID != "ps-9" {
		t.Fatalf("skipped %+v, want ps-9", skipped)
	}

	data := train.Split{Train: smps, Val: []train.Sample{{ID: "v-1"}}, Test: []train.Sample{{ID: "t-1"}}}
	if err := HumanLabelledOnly(data, ps.Entries); err != nil {
		t.Fatal(err)
	}
	data.Test = append(data.Test, smps[0])
	if err := HumanLabelledOnly(data, ps.Entries); err == nil || !strings.Contains(err.Error(), "ps-1 in the test split") {
		t.Fatalf("a pseudo-label in test: %v", err)
	}
}
