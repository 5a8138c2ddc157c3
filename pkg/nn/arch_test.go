package nn

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestArchJSONUnchanged: the original archs encode exactly as before the graph fields
// existed, so model files written by either build read in the other.
func TestArchJSONUnchanged(t *testing.T) {
	golden := map[string]string{
		"cls": `{"name":"cnn-classifier-v1","task":"classify","in_c":1,"in_h":28,"in_w":28,"classes":10,"layers":[{"kind":"conv","out":32,"k":3,"pad":1},{"kind":"relu"},{"kind":"maxpool"},{"kind":"conv","out":64,"k":3,"pad":1},{"kind":"relu"},{"kind":"maxpool"},{"kind":"flatten"},{"kind":"dense","out":128},{"kind":"relu"},{"kind":"dense","out":10}],"head_from":7}`,
		"det": `{"name":"grid-detector-v1","task":"detect","in_c":1,"in_h":64,"in_w":64,"classes":3,"layers":[{"kind":"conv","out":16,"k":3,"pad":1},{"kind":"relu"},{"kind":"maxpool"},{"kind":"conv","out":32,"k":3,"pad":1},{"kind":"relu"},{"kind":"maxpool"},{"kind":"conv","out":64,"k":3,"pad":1},{"kind":"relu"},{"kind":"maxpool"},{"kind":"conv","out":64,"k":3,"pad":1},{"kind":"relu"},{"kind":"conv","out":8,"k":1}],"head_from":11}`,
	}
	for name, a := range map[string]Arch{"cls": ClassifierArch(10), "det": DetectorArch(3)} {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != golden[name] {
			t.Errorf("%s encodes as\n%s\nwant\n%s", name, b, golden[name])
		}
		var back Arch
		if err := json.Unmarshal([]byte(golden[name]), &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, a) {
			t.Errorf("%s: decoded %+v", name, back)
		}
		specs, _, err := back.Analyse()
		if err != nil || len(specs) == 0 {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// residualArch: conv → bn → relu6 → (depthwise conv → bn) + the relu6 output → concat
// with the upsampled pooled branch → gap → dense.
func residualArch() Arch {
	return Arch{Name: "graph", Task: Classify, InC: 3, InH: 8, InW: 8, Classes: 4, HeadFrom: 11, Layers: []Layer{
		{Kind: Conv, Out: 8, K: 3, Pad: 1, Stride: 2, NoBias: true}, // 0: 8×4×4
		{Kind: BatchNorm}, // 1
		{Kind: ReLU6},     // 2
		{Kind: Conv, Out: 8, K: 3, Pad: 1, Groups: 8, NoBias: true}, // 3: depthwise
		{Kind: BatchNorm},                        // 4
		{Kind: Add, From: []int{4, 2}},           // 5
		{Kind: MaxPool, K: 3, Stride: 2, Pad: 1}, // 6: 8×2×2
		{Kind: Upsample},                         // 7: 8×4×4
		{Kind: Concat, From: []int{5, 7}},        // 8: 16×4×4
		{Kind: SiLU},                             // 9
		{Kind: GlobalAvgPool},                    // 10
		{Kind: Dense, Out: 4},                    // 11
	}}
}

func TestGraphShapesAndCost(t *testing.T) {
	a := residualArch()
	nodes, specs, err := a.Graph()
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]Shape{0: {8, 4, 4}, 3: {8, 4, 4}, 6: {8, 2, 2}, 7: {8, 4, 4}, 8: {16, 4, 4}, 10: {16}, 11: {4}}
	for i, s := range want {
		if !reflect.DeepEqual(nodes[i].Out, s) {
			t.Errorf("layer %d: %v, want %v", i, nodes[i].Out, s)
		}
	}
	if !reflect.DeepEqual(nodes[5].In, []int{4, 2}) || !reflect.DeepEqual(nodes[0].In, []int{Input}) {
		t.Errorf("inputs %v %v", nodes[5].In, nodes[0].In)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "conv0.w bn1.w bn1.b bn1.mean bn1.var conv3.w bn4.w bn4.b bn4.mean bn4.var dense11.w dense11.b" {
		t.Errorf("params %s", got)
	}
	if specs[5].Shape.Size() != 8*1*3*3 {
		t.Errorf("depthwise filters %v", specs[5].Shape)
	}
	params, macs, err := a.Cost()
	if err != nil {
		t.Fatal(err)
	}
	// conv 8·27 + 2·bn 16 + dw 8·9 + dense 16·4+4; MACs: 8·16·27 + 8·16·9 + 64.
	if params != 216+32+72+68 || macs != 3456+1152+64 {
		t.Errorf("cost %d params, %d MACs", params, macs)
	}
	p, _ := InitParams(a, 1)
	tr := Trainable(a, p, false)
	for i, s := range specs {
		if tr[i] == s.Buffer {
			t.Errorf("%s trainable=%v", s.Name, tr[i])
		}
		if s.Ones && p.Values[i][0] != 1 || s.Buffer && !s.Ones && p.Values[i][0] != 0 {
			t.Errorf("%s starts at %v", s.Name, p.Values[i][0])
		}
	}
	b, _ := json.Marshal(a)
	var back Arch
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, a) {
		t.Fatalf("round trip: %v\n%s", err, b)
	}
}

// TestGraphErrors: each mistake is refused naming the layer and the reason.
func TestGraphErrors(t *testing.T) {
	for want, edit := range map[string]func(a *Arch){
		"layer 5 (add): input 1 (layer -1) is [3 8 8], input 0 (layer 4)": func(a *Arch) { a.Layers[5].From = []int{4, Input} },
		"layer 5 (add): reads layer 7":                                    func(a *Arch) { a.Layers[5].From = []int{4, 7} },
		"layer 5 (add): needs two or more inputs":                         func(a *Arch) { a.Layers[5].From = []int{4} },
		"layer 3 (conv): reads one input, has 2":                          func(a *Arch) { a.Layers[3].From = []int{2, 1} },
		"layer 3 (conv): 3 groups do not divide 8":                        func(a *Arch) { a.Layers[3].Groups = 3 },
		"layer 8 (concat): input 1 (layer 6) is [8 2 2]":                  func(a *Arch) { a.Layers[8].From = []int{5, 6} },
		"layer 7 (upsample): its output is never read":                    func(a *Arch) { a.Layers[8].From = []int{5, 5} },
		"layer 11 (bn): batch norm on [16]":                               func(a *Arch) { a.Layers[11] = Layer{Kind: BatchNorm} },
		"layer 0 (conv): reads layer -2":                                  func(a *Arch) { a.Layers[0].From = []int{-2} },
		`layer 9 (swish): unknown kind "swish"`:                           func(a *Arch) { a.Layers[9].Kind = "swish" },
	} {
		a := residualArch()
		a.Layers = append([]Layer(nil), a.Layers...)
		edit(&a)
		_, _, err := a.Graph()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
}
