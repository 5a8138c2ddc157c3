package project

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// TestNoModelKeepsTheBuiltInNetworks: a project without a model trains the networks
// every project trained before the setting (28×28 grey classifier, 64×64 grey
// detector, stretched, not normalised), and its project.json gains no field.
func TestNoModelKeepsTheBuiltInNetworks(t *testing.T) {
	for task, want := range map[string]nn.Arch{"classify": nn.ClassifierArch(2), "detect": nn.DetectorArch(2)} {
		p := Project{ID: "p", Task: task, Classes: []string{"a", "b"}}
		p.Defaults()
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		a, err := p.Arch()
		if err != nil {
			t.Fatal(err)
		}
		aj, _ := json.Marshal(a)
		wj, _ := json.Marshal(want)
		if !bytes.Equal(aj, wj) {
			t.Fatalf("%s: %s, want %s", task, aj, wj)
		}
		if pj, _ := json.Marshal(p); bytes.Contains(pj, []byte(`"model"`)) || p.Model != nil {
			t.Fatalf("%s: a model appeared: %s", task, pj)
		}
	}
}

// TestModelDefaultsAndBuild: a model naming only its family gets the task's defaults
// (size n, RGB, letterboxed, 96×96 for classification) and builds that network with
// its preprocessing.
func TestModelDefaultsAndBuild(t *testing.T) {
	var p Project
	if err := json.Unmarshal([]byte(`{"id":"shelf","task":"classify","classes":["can","box","bag"],"model":{"family":"mobilenetv2"}}`), &p); err != nil {
		t.Fatal(err)
	}
	p.Defaults()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	want := nn.Spec{Family: nn.MobileNetV2, Size: "n", Input: [2]int{96, 96}, Channels: 3, Resize: nn.Letterbox, Normalize: nn.NormNone}
	if *p.Model != want {
		t.Fatalf("model %+v, want %+v", *p.Model, want)
	}
	a, err := p.Arch()
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "mobilenetv2-n" || a.InW != 96 || a.InH != 96 || a.InC != 3 || a.Classes != 3 || !a.Preprocess.Letterboxed() || len(a.Preprocess.Mean) != 0 {
		t.Fatalf("arch %s %dx%dx%d, %d classes, preprocess %+v", a.Name, a.InW, a.InH, a.InC, a.Classes, a.Preprocess)
	}
	p.Model.Input, p.Model.Channels, p.Model.Normalize, p.Model.Resize = [2]int{160, 128}, 1, nn.NormImageNet, nn.Stretch
	if a, err = p.Arch(); err != nil || a.InW != 160 || a.InH != 128 || a.InC != 1 || a.Preprocess.Letterboxed() || len(a.Preprocess.Mean) != 1 {
		t.Fatalf("grey 160×128 ImageNet-normalised: %v, arch %dx%dx%d preprocess %+v", err, a.InW, a.InH, a.InC, a.Preprocess)
	}
}

// TestModelValidated: each bad field is refused with an error that names it.
func TestModelValidated(t *testing.T) {
	for _, c := range []struct {
		name, task string
		spec       nn.Spec
		want       string
	}{
		{"family", "classify", nn.Spec{Family: "resnet"}, `family "resnet" unknown`},
		{"size", "classify", nn.Spec{Size: "xl"}, `size "xl" unknown`},
		{"not a multiple of 32", "classify", nn.Spec{Input: [2]int{100, 96}}, "width 100: want a multiple of 32 from 64 to 640"},
		{"too small", "classify", nn.Spec{Input: [2]int{96, 32}}, "height 32"},
		{"too large", "classify", nn.Spec{Input: [2]int{672, 640}}, "width 672"},
		{"channels", "classify", nn.Spec{Channels: 4}, "channels 4: want 1 (grey) or 3 (RGB)"},
		{"resize", "classify", nn.Spec{Resize: "crop"}, `resize "crop"`},
		{"normalize", "classify", nn.Spec{Normalize: "coco"}, `normalize "coco"`},
	} {
		spec := c.spec
		p := Project{ID: "p", Task: c.task, Classes: []string{"a", "b"}, Model: &spec}
		p.Defaults()
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

// TestDetectModelIsMultiScale: a detection project with a model setting gets the
// multi-scale family detector at its input and channels.
func TestDetectModelIsMultiScale(t *testing.T) {
	p := Project{ID: "p", Task: "detect", Classes: []string{"a", "b"}, Model: &nn.Spec{Input: [2]int{320, 256}, Channels: 3}}
	p.Defaults()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := p.Arch()
	if err != nil || len(a.Levels) != 3 || a.InW != 320 || a.InH != 256 || a.InC != 3 {
		t.Fatalf("arch %dx%dx%d with %d levels, %v", a.InW, a.InH, a.InC, len(a.Levels), err)
	}
}
