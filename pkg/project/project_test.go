package project

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestOldProjectLoadsWithGateDefaults: a project.json written before the paired gate
// (tolerance and min_gain only) loads, gets the gate's defaults and validates.
func TestOldProjectLoadsWithGateDefaults(t *testing.T) {
	old := `{"id":"digits","task":"classify","classes":["0","1"],"batch":{"min":30,"max":50},
		"split":{"train":0.8,"val":0.1,"test":0.1,"val_cap":100,"test_cap":100},
		"retrain":{"trigger":"batch","tolerance":0.02,"min_gain":0,"epochs":8,"lr":0.0005}}`
	var p Project
	if err := json.Unmarshal([]byte(old), &p); err != nil {
		t.Fatal(err)
	}
	p.Defaults()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	r := p.Retrain
	if r.Confidence != 0.95 || r.MinTest != 30 || r.Require != "better" || r.PerClass != "significant" || r.Tolerance != 0.02 {
		t.Fatalf("retrain policy %+v", r)
	}
}

func TestGateSettingsValidated(t *testing.T) {
	cases := []struct {
		name string
		set  func(r *RetrainPolicy)
		want string
	}{
		{"confidence", func(r *RetrainPolicy) { r.Confidence = 1 }, "confidence"},
		{"min test", func(r *RetrainPolicy) { r.MinTest = -3 }, "min_test"},
		{"require", func(r *RetrainPolicy) { r.Require = "best" }, "require"},
		{"margin", func(r *RetrainPolicy) { r.Require, r.Margin = "not_worse", -0.1 }, "margin"},
		{"per class", func(r *RetrainPolicy) { r.PerClass = "strict" }, "per_class"},
		{"class max loss", func(r *RetrainPolicy) { r.PerClass, r.ClassMaxLoss = "count", -1 }, "class_max_loss"},
		{"epochs", func(r *RetrainPolicy) { r.Epochs = -2 }, "epochs"},
		{"negative lr", func(r *RetrainPolicy) { r.LR = -1e-3 }, "lr"},
	}
	for _, c := range cases {
		p := Project{ID: "p", Task: "classify", Classes: []string{"a"}}
		p.Defaults()
		c.set(&p.Retrain)
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %s", c.name, err, c.want)
		}
	}
}

// The mirror and decode settings are read from project.json by their documented names
// and refused, naming the setting and the class or value, when they do not fit.
func TestMirrorAndDecodeSettingsValidated(t *testing.T) {
	js := `{"id":"signs","task":"detect","classes":["circle","K","left-arrow","right-arrow"],
		"augment":{"flip_h":{"p":0.5}},
		"mirror":{"never":["K"],"pairs":[["left-arrow","right-arrow"]]},
		"decode":{"class_agnostic":true,"iou":0.6,"min_score":0.3,"max_detections":50}}`
	var p Project
	if err := json.Unmarshal([]byte(js), &p); err != nil {
		t.Fatal(err)
	}
	p.Defaults()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(p.Mirror.Never) != 1 || p.Mirror.Pairs[0] != [2]string{"left-arrow", "right-arrow"} ||
		p.Decode == nil || !p.Decode.ClassAgnostic || p.Decode.IoU != 0.6 || p.Decode.MinScore != 0.3 || p.Decode.MaxDetections != 50 {
		t.Fatalf("mirror %+v decode %+v", p.Mirror, p.Decode)
	}
	if b, _ := json.Marshal(Project{ID: "x"}); strings.Contains(string(b), "mirror") || strings.Contains(string(b), "decode") {
		t.Fatalf("a project without the settings writes them: %s", b)
	}
	cases := []struct {
		name string
		set  func(p *Project)
		want string
	}{
		{"unknown never", func(p *Project) { p.Mirror.Never = []string{"Q"} }, `mirror.never: class "Q" is not one of the project's classes`},
		{"unknown pair", func(p *Project) { p.Mirror.Pairs = [][2]string{{"left-arrow", "up"}} }, `mirror.pairs: class "up"`},
		{"self pair", func(p *Project) { p.Mirror.Pairs = [][2]string{{"circle", "circle"}} }, `class "circle" is paired with itself`},
		{"two pairs", func(p *Project) { p.Mirror.Pairs = append(p.Mirror.Pairs, [2]string{"circle", "right-arrow"}) }, `class "right-arrow" is in two pairs`},
		{"min score", func(p *Project) { p.Decode.MinScore = 1 }, "decode.min_score 1"},
		{"iou", func(p *Project) { p.Decode.IoU = -0.1 }, "decode.iou -0.1"},
		{"max detections", func(p *Project) { p.Decode.MaxDetections = -1 }, "decode.max_detections -1"},
		{"classify", func(p *Project) { p.Task = "classify" }, "decode is for detection projects"},
	}
	for _, c := range cases {
		q := p
		d := *p.Decode
		q.Decode = &d
		c.set(&q)
		if err := q.Validate(); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "project signs") {
			t.Errorf("%s: %v, want an error naming project signs and %s", c.name, err, c.want)
		}
	}
}
