// Package nn describes edgeloop's vision networks independently of what computes them:
// the architecture (a sequence of layers), the parameters (named float32 tensors), the
// losses, the detection head's target encoding and decoding, Adam, and the Engine
// interface that the Gorgonia CPU engine and the CUDA engine both implement with the
// same numbers.
package nn

import "fmt"

// Task is what a network does.
type Task string

// Tasks.
const (
	Classify Task = "classify"
	Detect   Task = "detect"
)

// Layer kinds.
const (
	Conv    = "conv"    // 2-D convolution with bias: Out filters of K×K, Pad, Stride 1
	ReLU    = "relu"    // max(0, x)
	MaxPool = "maxpool" // 2×2 max pooling, stride 2
	Flatten = "flatten" // (N, C, H, W) -> (N, C·H·W)
	Dense   = "dense"   // fully connected with bias: Out units
)

// Layer is one step of a network.
type Layer struct {
	Kind string `json:"kind"`
	Out  int    `json:"out,omitempty"`
	K    int    `json:"k,omitempty"`
	Pad  int    `json:"pad,omitempty"`
}

// Arch is a network: input shape, layers, and what its output means.
type Arch struct {
	Name    string  `json:"name"`
	Task    Task    `json:"task"`
	InC     int     `json:"in_c"`
	InH     int     `json:"in_h"`
	InW     int     `json:"in_w"`
	Classes int     `json:"classes"`
	Layers  []Layer `json:"layers"`
	// HeadFrom is the index of the first layer of the head; the layers before it are
	// the backbone, which fine-tuning may freeze.
	HeadFrom int `json:"head_from"`
}

// Shape is a tensor shape without the batch dimension.
type Shape []int

// Size is the number of elements.
func (s Shape) Size() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// ParamSpec names one parameter tensor and the layer it belongs to.
type ParamSpec struct {
	Name  string `json:"name"`
	Shape Shape  `json:"shape"`
	Layer int    `json:"layer"`
	// FanIn is the number of inputs of one output unit (for initialisation).
	FanIn int `json:"-"`
	Bias  bool
}

// DetectOut is the number of output channels per cell of the detection head:
// objectness, box (x, y, w, h) and one score per class.
func DetectOut(classes int) int { return 5 + classes }

// ClassifierArch is the MNIST-size classifier: two conv/ReLU/pool stages and two dense
// layers (1×28×28 → classes logits).
func ClassifierArch(classes int) Arch {
	return Arch{
		Name: "cnn-classifier-v1", Task: Classify, InC: 1, InH: 28, InW: 28, Classes: classes,
		Layers: []Layer{
			{Kind: Conv, Out: 32, K: 3, Pad: 1}, {Kind: ReLU}, {Kind: MaxPool},
			{Kind: Conv, Out: 64, K: 3, Pad: 1}, {Kind: ReLU}, {Kind: MaxPool},
			{Kind: Flatten}, {Kind: Dense, Out: 128}, {Kind: ReLU}, {Kind: Dense, Out: classes},
		},
		HeadFrom: 7,
	}
}

// DetectorArch is the single-stage grid detector: 1×64×64 in, an 8×8 grid of cells,
// each predicting objectness, a box and class scores.
func DetectorArch(classes int) Arch {
	return Arch{
		Name: "grid-detector-v1", Task: Detect, InC: 1, InH: 64, InW: 64, Classes: classes,
		Layers: []Layer{
			{Kind: Conv, Out: 16, K: 3, Pad: 1}, {Kind: ReLU}, {Kind: MaxPool},
			{Kind: Conv, Out: 32, K: 3, Pad: 1}, {Kind: ReLU}, {Kind: MaxPool},
			{Kind: Conv, Out: 64, K: 3, Pad: 1}, {Kind: ReLU}, {Kind: MaxPool},
			{Kind: Conv, Out: 64, K: 3, Pad: 1}, {Kind: ReLU},
			{Kind: Conv, Out: DetectOut(classes), K: 1},
		},
		HeadFrom: 11,
	}
}

// Analyse checks the architecture and returns its parameters and output shape.
func (a Arch) Analyse() ([]ParamSpec, Shape, error) {
	if a.InC < 1 || a.InH < 1 || a.InW < 1 {
		return nil, nil, fmt.Errorf("arch %s: input shape %dx%dx%d", a.Name, a.InC, a.InH, a.InW)
	}
	if a.Classes < 1 {
		return nil, nil, fmt.Errorf("arch %s: %d classes", a.Name, a.Classes)
	}
	if a.HeadFrom < 0 || a.HeadFrom >= len(a.Layers) {
		return nil, nil, fmt.Errorf("arch %s: head_from %d outside %d layers", a.Name, a.HeadFrom, len(a.Layers))
	}
	shape := Shape{a.InC, a.InH, a.InW}
	var ps []ParamSpec
	for i, l := range a.Layers {
		name := fmt.Sprintf("%s%d", l.Kind, i)
		switch l.Kind {
		case Conv:
			if len(shape) != 3 || l.Out < 1 || l.K < 1 || l.Pad < 0 {
				return nil, nil, fmt.Errorf("arch %s layer %d: conv %+v on %v", a.Name, i, l, shape)
			}
			h, w := shape[1]+2*l.Pad-l.K+1, shape[2]+2*l.Pad-l.K+1
			if h < 1 || w < 1 {
				return nil, nil, fmt.Errorf("arch %s layer %d: conv output %dx%d", a.Name, i, h, w)
			}
			fan := shape[0] * l.K * l.K
			ps = append(ps, ParamSpec{Name: name + ".w", Shape: Shape{l.Out, shape[0], l.K, l.K}, Layer: i, FanIn: fan},
				ParamSpec{Name: name + ".b", Shape: Shape{l.Out}, Layer: i, FanIn: fan, Bias: true})
			shape = Shape{l.Out, h, w}
		case ReLU:
		case MaxPool:
			if len(shape) != 3 || shape[1]%2 != 0 || shape[2]%2 != 0 {
				return nil, nil, fmt.Errorf("arch %s layer %d: 2×2 pooling needs even sides, got %v", a.Name, i, shape)
			}
			shape = Shape{shape[0], shape[1] / 2, shape[2] / 2}
		case Flatten:
			shape = Shape{shape.Size()}
		case Dense:
			if len(shape) != 1 || l.Out < 1 {
				return nil, nil, fmt.Errorf("arch %s layer %d: dense %+v on %v (flatten first)", a.Name, i, l, shape)
			}
			ps = append(ps, ParamSpec{Name: name + ".w", Shape: Shape{shape[0], l.Out}, Layer: i, FanIn: shape[0]},
				ParamSpec{Name: name + ".b", Shape: Shape{l.Out}, Layer: i, FanIn: shape[0], Bias: true})
			shape = Shape{l.Out}
		default:
			return nil, nil, fmt.Errorf("arch %s layer %d: unknown kind %q", a.Name, i, l.Kind)
		}
	}
	switch a.Task {
	case Classify:
		if len(shape) != 1 || shape[0] != a.Classes {
			return nil, nil, fmt.Errorf("arch %s: classifier output %v, want [%d]", a.Name, shape, a.Classes)
		}
	case Detect:
		if len(shape) != 3 || shape[0] != DetectOut(a.Classes) || shape[1] != shape[2] {
			return nil, nil, fmt.Errorf("arch %s: detector output %v, want [%d S S]", a.Name, shape, DetectOut(a.Classes))
		}
	default:
		return nil, nil, fmt.Errorf("arch %s: unknown task %q", a.Name, a.Task)
	}
	return ps, shape, nil
}

// Grid is the detector's grid side (cells per row); 0 for a classifier.
func (a Arch) Grid() int {
	_, out, err := a.Analyse()
	if err != nil || a.Task != Detect {
		return 0
	}
	return out[1]
}
