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
