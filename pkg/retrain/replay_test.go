package retrain_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/retrain"
)

// manifest builds dataset entries: n per class (old ones at snapshot 1), plus extra.
func manifest(perClass map[string]int, seq int) []project.DatasetEntry {
	var es []project.DatasetEntry
	for _, c := range []string{"a", "b", "c", "d", "e"} {
		for i := 0; i < perClass[c]; i++ {
			es = append(es, project.DatasetEntry{ID: fmt.Sprintf("%s-%d-%d", c, seq, i), Split: "train", Seq: seq, Labels: []project.Label{{Class: c}}})
		}
	}
	return es
}

func countBy(es []project.DatasetEntry) map[string]int {
	m := map[string]int{}
	for _, e := range es {
		m[e.Labels[0].Class]++
	}
	return m
}

// TestPlanTrainingReplay: a replay fine-tune takes every new example and a sample of the
// old ones that is bounded by the budget: half of it the most recent, half spread evenly
// over the classes (what a small class cannot fill goes to the others), the same for
// the same seed; examples of classes the project dropped, and val/test examples, are
// never trained on.
func TestPlanTrainingReplay(t *testing.T) {
	classes := []string{"a", "b", "c", "d"}
	old := manifest(map[string]int{"a": 3000, "b": 400, "c": 400, "d": 20, "e": 50}, 1) // e: a removed class
	recent := manifest(map[string]int{"b": 300}, 2)
	fresh := manifest(map[string]int{"a": 5, "d": 45}, 3)
	es := append(append(append(recent, old...), fresh...), // not in approval order: the plan sorts by snapshot
		project.DatasetEntry{ID: "v", Split: "val", Seq: 2, Labels: []project.Label{{Class: "a"}}},
		project.DatasetEntry{ID: "t", Split: "test", Seq: 1, Labels: []project.Label{{Class: "b"}}})

	pl := retrain.PlanTraining(es, classes, retrain.ModeReplay, 2, 600, 7)
	if pl.New != 50 || pl.Replayed != 600 || pl.Recent != 300 || len(pl.Train) != 650 || pl.Available != 4170 {
		t.Fatalf("plan: new %d replayed %d (recent %d) train %d available %d; want 50, 600 (300), 650, 4170",
			pl.New, pl.Replayed, pl.Recent, len(pl.Train), pl.Available)
	}
	for _, e := range pl.Train[pl.New : pl.New+pl.Recent] {
		if e.Seq != 2 {
			t.Fatalf("recent example %s from snapshot %d, want 2", e.ID, e.Seq)
		}
	}
	got := countBy(pl.Train[pl.New+pl.Recent:])
	// d has 20 older examples: all of them; a, b, c share the other 280 evenly.
	want := map[string]int{"a": 93, "b": 93, "c": 94, "d": 20}
	for c, n := range want {
		if got[c] < n-1 || got[c] > n+1 {
			t.Fatalf("replayed per class %v, want about %v", got, want)
		}
	}
	if got["e"] != 0 {
		t.Fatalf("%d examples of the removed class e replayed", got["e"])
	}
	for _, e := range pl.Train {
		if e.Split != "train" {
			t.Fatalf("a %s example %s in the training", e.Split, e.ID)
		}
	}
	for _, e := range pl.Train[:pl.New] {
		if e.Seq != 3 {
			t.Fatalf("new example %s from snapshot %d", e.ID, e.Seq)
		}
	}
	ids := func(p retrain.Plan) []string {
		var s []string
		for _, e := range p.Train {
			s = append(s, e.ID)
		}
		slices.Sort(s)
		return s
	}
	if again := retrain.PlanTraining(es, classes, retrain.ModeReplay, 2, 600, 7); !slices.Equal(ids(pl), ids(again)) {
		t.Fatal("the same seed drew another sample")
	}
	if other := retrain.PlanTraining(es, classes, retrain.ModeReplay, 2, 600, 8); slices.Equal(ids(pl), ids(other)) {
		t.Fatal("another seed drew the same sample")
	}
	// A budget above the old examples, or a full training: every usable train example.
	for _, p := range []retrain.Plan{
		retrain.PlanTraining(es, classes, retrain.ModeReplay, 2, 10000, 7),
		retrain.PlanTraining(es, classes, retrain.ModeReplay, 2, -1, 7),
		retrain.PlanTraining(es, classes, retrain.ModeFull, 2, 600, 7),
	} {
		if len(p.Train) != 4170 {
			t.Fatalf("%s plan with budget %d: %d examples, want all 4170", p.Mode, p.Budget, len(p.Train))
		}
	}
	if retrain.SnapshotSeq("ds-12") != 12 || retrain.SnapshotSeq("mnist") != 0 {
		t.Fatal("snapshot ids")
	}
}

// A fine-tune keeps its last epoch by default, a project's fine_tune_keep "best" the
// lowest val loss's; a first model from scratch always the lowest val loss's.
func TestTrainConfigKeepsTheLastEpochOfFineTunes(t *testing.T) {
	p := &project.Project{ID: "p", Task: "classify", Classes: []string{"a", "b"}}
	p.Defaults()
	if !retrain.TrainConfig(p, true, 1).KeepLast || retrain.TrainConfig(p, false, 1).KeepLast {
		t.Fatal("by default a fine-tune should keep its last epoch and a first model its best")
	}
	p.Retrain.FineTuneKeep = project.FineTuneKeepBest
	if retrain.TrainConfig(p, true, 1).KeepLast {
		t.Fatal("fine_tune_keep best kept the last epoch")
	}
	p.Retrain.FineTuneKeep = "newest"
	if err := p.Validate(); err == nil {
		t.Fatal("fine_tune_keep newest was accepted")
	}
}

// A detection project's first model trains at the detector's scratch rate, from a
// pretrained backbone's trunk too (it scored better there than a third of it); a
// classifier's is 1e-3 either way.
func TestTrainConfigFirstModelRate(t *testing.T) {
	detScratch := float32(1e-2)
	for _, c := range []struct {
		task, backbone string
		want           float32
	}{
		{"detect", "", 1e-2},
		{"detect", "s3:backbones/n.safetensors", detScratch},
		{"classify", "", 1e-3},
		{"classify", "s3:backbones/n.safetensors", 1e-3},
	} {
		p := &project.Project{ID: "p", Task: c.task, Classes: []string{"a", "b"},
			Model: &nn.Spec{Family: nn.MobileNetV2, Size: "n", Input: [2]int{160, 128}, Channels: 3, Backbone: c.backbone}}
		p.Defaults()
		if got := retrain.TrainConfig(p, false, 1).LR; got != c.want {
			t.Errorf("%s first model with backbone %q: lr %g, want %g", c.task, c.backbone, got, c.want)
		}
		if got := retrain.TrainConfig(p, true, 1).LR; got != p.Retrain.LR {
			t.Errorf("%s fine-tune: lr %g, want the project's %g", c.task, got, p.Retrain.LR)
		}
	}
}

// Validation decodes a detection project's boxes with its decode setting's NMS, as the
// gate does: TrainConfig carries the setting.
func TestTrainConfigCarriesTheDecodeSetting(t *testing.T) {
	p := &project.Project{ID: "p", Task: "detect", Classes: []string{"a", "b"}, Decode: &nn.Decoding{IoU: 0.6, ClassAgnostic: true}}
	p.Defaults()
	for _, fineTune := range []bool{false, true} {
		if got := retrain.TrainConfig(p, fineTune, 1).Decode; got == nil || *got != *p.Decode {
			t.Fatalf("fine-tune %v: decode %+v, want the project's %+v", fineTune, got, p.Decode)
		}
	}
}
