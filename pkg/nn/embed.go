package nn

import (
	"fmt"
	"slices"
)

// DenseHead is a classifier's last dense layer computed outside an engine: logits =
// x·W + b for an embedding x of In floats (W is In×Out, row-major, as ParamSpec has it).
type DenseHead struct {
	In, Out int
	W, B    []float32
}

// Logits of one embedding.
func (h DenseHead) Logits(x []float32) []float32 {
	out := slices.Clone(h.B)
	for i, v := range x[:h.In] {
		if v == 0 {
			continue // ReLU features are mostly zero
		}
		row := h.W[i*h.Out : (i+1)*h.Out]
		for j, w := range row {
			out[j] += v * w
		}
	}
	return out
}

// SplitHead splits a classifier at its last dense layer: the trunk, whose output is the
// penultimate features (the embedding active learning compares frames by: 128 floats
// for ClassifierArch, the 1280 pooled features for the MobileNetV2 family), its
// parameters, and the dense head that turns an embedding into logits. Running the
// trunk in an engine and the head in Go gives both from one forward pass. The trunk's
// Classes is the embedding's length (Graph checks a classifier's output against it).
func SplitHead(a Arch, p *Params) (Arch, *Params, DenseHead, error) {
	last := len(a.Layers) - 1
	if a.Task != Classify || last < 1 || a.Layers[last].Kind != Dense || !slices.Equal(a.Layers[last].Inputs(last), []int{last - 1}) {
		return Arch{}, nil, DenseHead{}, fmt.Errorf("split head: arch %s is not a classifier ending in a dense layer on the layer before it", a.Name)
	}
	nodes, specs, err := a.Graph()
	if err != nil {
		return Arch{}, nil, DenseHead{}, err
	}
	if p == nil || len(p.Values) != len(specs) {
		return Arch{}, nil, DenseHead{}, fmt.Errorf("split head: params do not match arch %s", a.Name)
	}
	in := nodes[last].InShapes[0]
	if len(in) != 1 {
		return Arch{}, nil, DenseHead{}, fmt.Errorf("split head: arch %s: the head reads %v, want a vector", a.Name, in)
	}
	wi := nodes[last].Params[0]
	trunk := a
	trunk.Name = a.Name + "-trunk"
	trunk.Layers = slices.Clone(a.Layers[:last])
	trunk.Classes = in[0]
	trunk.HeadFrom = min(a.HeadFrom, last-1)
	tp := &Params{Specs: slices.Clone(p.Specs[:wi]), Values: p.Values[:wi]}
	head := DenseHead{In: in[0], Out: a.Layers[last].Out, W: p.Values[wi], B: p.Values[wi+1]}
	return trunk, tp, head, nil
}
