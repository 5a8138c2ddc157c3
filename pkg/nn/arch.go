// Package nn describes edgeloop's vision networks independently of what computes them:
// the architecture (a graph of layers), the parameters (named float32 tensors), the
// losses, the detection head's target encoding and decoding, Adam, and the Engine
// interface that the Gorgonia CPU engine and the CUDA engine both implement with the
// same numbers.
package nn

import (
	"fmt"
	"slices"
)

// Task is what a network does.
type Task string

// Tasks.
const (
	Classify Task = "classify"
	Detect   Task = "detect"
)

// Layer kinds.
const (
	// Conv is a 2-D convolution: Out filters of K×K over Groups groups of channels
	// (Groups == input channels == Out is depthwise), Pad zeros each side, Stride, with
	// a bias unless NoBias.
	Conv = "conv"
	// ReLU is max(0, x).
	ReLU = "relu"
	// MaxPool is max pooling: 2×2 stride 2 when K is 0 (the original layer); else K×K
	// windows, Stride (default K) and Pad, padding never winning (PyTorch's MaxPool2d).
	MaxPool = "maxpool"
	// Flatten is (N, C, H, W) -> (N, C·H·W).
	Flatten = "flatten"
	// Dense is fully connected with bias: Out units.
	Dense = "dense"
	// BatchNorm normalises each channel of (N, C, H, W): with the batch's statistics in
	// training, with its running statistics (non-trainable buffers saved with the
	// weights) in inference and when frozen (EngineConfig.FreezeBN); then scales and
	// shifts (γ, β). Eps defaults to DefaultBNEps.
	BatchNorm = "bn"
	// ReLU6 is min(max(0, x), 6) (MobileNet).
	ReLU6 = "relu6"
	// SiLU is x·σ(x) (YOLO, EfficientNet).
	SiLU = "silu"
	// Add is the element-wise sum of two or more inputs of one shape (a residual).
	Add = "add"
	// Concat joins two or more (C, H, W) inputs of one H×W along the channels, or two or
	// more vectors (flattened maps) end to end.
	Concat = "concat"
	// GlobalAvgPool averages each channel: (N, C, H, W) -> (N, C).
	GlobalAvgPool = "gap"
	// Upsample is 2× nearest-neighbour upsampling: (N, C, H, W) -> (N, C, 2H, 2W).
	Upsample = "upsample"
)

// DefaultBNEps is batch normalisation's ε when a layer leaves Eps at 0 (PyTorch's).
const DefaultBNEps = 1e-5

// Input names the network's input in Layer.From.
const Input = -1

// Layer is one step of a network. Every field but Kind is optional; zero values give
// the behaviour of the original sequential layers, so model files written before the
// graph fields existed read unchanged.
type Layer struct {
	Kind string `json:"kind"`
	Out  int    `json:"out,omitempty"`
	K    int    `json:"k,omitempty"`
	Pad  int    `json:"pad,omitempty"`
	// Stride of a conv or a max pooling (0: 1 for conv, K for pooling).
	Stride int `json:"stride,omitempty"`
	// Groups of a conv (0: 1).
	Groups int `json:"groups,omitempty"`
	// NoBias drops a conv's bias (before batch normalisation, whose β replaces it).
	NoBias bool `json:"no_bias,omitempty"`
	// Eps is batch normalisation's ε (0: DefaultBNEps).
	Eps float32 `json:"eps,omitempty"`
	// From lists the layers this one reads, by index (Input, -1, is the network's
	// input); empty means the previous layer (the input for the first). Add and Concat
	// read two or more, every other kind one.
	From []int `json:"from,omitempty"`
}

// ConvStride is the conv's or pooling's stride with its default.
func (l Layer) ConvStride() int {
	switch {
	case l.Stride > 0:
		return l.Stride
	case l.Kind == MaxPool && l.K > 0:
		return l.K
	}
	return 1
}

// ConvGroups is the conv's number of groups with its default.
func (l Layer) ConvGroups() int { return max(l.Groups, 1) }

// BNEps is the layer's ε with its default.
func (l Layer) BNEps() float32 {
	if l.Eps > 0 {
		return l.Eps
	}
	return DefaultBNEps
}

// Inputs are the indices of the layers layer i reads (Input for the network's input).
func (l Layer) Inputs(i int) []int {
	if len(l.From) == 0 {
		return []int{i - 1}
	}
	return l.From
}

// Arch is a network: input shape, layers, and what its output means. The layers form
// a graph: each reads the outputs of earlier layers (Layer.From, by default the
// previous one) and the last layer's output is the network's.
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
	// Preprocess is how images become the input (nil: stretched to InW×InH, pixels in
	// [0, 1], as every network before it had).
	Preprocess *Preprocess `json:"preprocess,omitempty"`
	// Levels are the pyramid levels of a multi-scale detector (DetectorFamily), finest
	// first; empty for the grid detector and classifiers. The output is each level's
	// (5+C, H/stride, W/stride) map, flattened, end to end (see LevelMaps).
	Levels []Level `json:"levels,omitempty"`
}

// Level is one pyramid level of a multi-scale detector: its stride in input pixels
// and the layers whose outputs are its objectness (1 channel), box (4) and class
// (Classes) maps.
type Level struct {
	Stride int `json:"stride"`
	Obj    int `json:"obj"`
	Box    int `json:"box"`
	Cls    int `json:"cls"`
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
	// Bias tensors start at zero.
	Bias bool
	// Ones tensors start at one (batch norm's γ and running variance).
	Ones bool `json:"ones,omitempty"`
	// Buffer tensors are state, not weights: batch norm's running statistics. They are
	// saved with the weights, never trained, and their gradient is zero.
	Buffer bool `json:"buffer,omitempty"`
}

// Node is one layer of an analysed architecture: what it reads and what it makes.
type Node struct {
	Layer
	// In are the indices of the layers it reads (Input: the network's input), InShapes
	// their shapes.
	In       []int
	InShapes []Shape
	Out      Shape
	// Params are the indices of its tensors in the ParamSpec list: conv and dense
	// [w, b] or [w] (NoBias), batch norm [γ, β, running mean, running variance].
	Params []int
	// MACs is the number of multiply-adds of one image (conv and dense).
	MACs int64
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
	nodes, specs, err := a.Graph()
	if err != nil {
		return nil, nil, err
	}
	return specs, nodes[len(nodes)-1].Out, nil
}

// Graph checks the architecture and returns its layers with their inputs and shapes,
// and its parameters. Errors name the layer and say what does not fit.
func (a Arch) Graph() ([]Node, []ParamSpec, error) {
	if a.InC < 1 || a.InH < 1 || a.InW < 1 {
		return nil, nil, fmt.Errorf("arch %s: input shape %dx%dx%d", a.Name, a.InC, a.InH, a.InW)
	}
	if a.Classes < 1 {
		return nil, nil, fmt.Errorf("arch %s: %d classes", a.Name, a.Classes)
	}
	if a.HeadFrom < 0 || a.HeadFrom >= len(a.Layers) {
		return nil, nil, fmt.Errorf("arch %s: head_from %d outside %d layers", a.Name, a.HeadFrom, len(a.Layers))
	}
	if err := a.Preprocess.Check(a.InC); err != nil {
		return nil, nil, fmt.Errorf("arch %s: %w", a.Name, err)
	}
	in := Shape{a.InC, a.InH, a.InW}
	nodes := make([]Node, len(a.Layers))
	used := make([]bool, len(a.Layers))
	var ps []ParamSpec
	for i, l := range a.Layers {
		fail := func(format string, args ...any) ([]Node, []ParamSpec, error) {
			return nil, nil, fmt.Errorf("arch %s layer %d (%s): %s", a.Name, i, l.Kind, fmt.Sprintf(format, args...))
		}
		nd := Node{Layer: l, In: l.Inputs(i)}
		for _, j := range nd.In {
			if j < Input || j >= i {
				return fail("reads layer %d, which is not an earlier layer or the input (%d)", j, Input)
			}
			if j == Input {
				nd.InShapes = append(nd.InShapes, in)
			} else {
				nd.InShapes = append(nd.InShapes, nodes[j].Out)
				used[j] = true
			}
		}
		if (l.Kind == Add || l.Kind == Concat) != (len(nd.In) > 1) {
			if l.Kind == Add || l.Kind == Concat {
				return fail("needs two or more inputs, has %d", len(nd.In))
			}
			return fail("reads one input, has %d (%v)", len(nd.In), nd.In)
		}
		if l.Stride < 0 || l.Groups < 0 || l.Pad < 0 || l.K < 0 || l.Out < 0 || l.Eps < 0 {
			return fail("negative field in %+v", l)
		}
		shape := nd.InShapes[0]
		name := fmt.Sprintf("%s%d", l.Kind, i)
		param := func(s ParamSpec) {
			s.Layer = i
			nd.Params = append(nd.Params, len(ps))
			ps = append(ps, s)
		}
		switch l.Kind {
		case Conv:
			g, s := l.ConvGroups(), l.ConvStride()
			if len(shape) != 3 || l.Out < 1 || l.K < 1 {
				return fail("conv of %d %dx%d filters on %v", l.Out, l.K, l.K, shape)
			}
			if shape[0]%g != 0 || l.Out%g != 0 {
				return fail("%d groups do not divide %d input and %d output channels", g, shape[0], l.Out)
			}
			h, w := (shape[1]+2*l.Pad-l.K)/s+1, (shape[2]+2*l.Pad-l.K)/s+1
			if shape[1]+2*l.Pad < l.K || shape[2]+2*l.Pad < l.K {
				return fail("%dx%d kernel larger than the padded %dx%d input", l.K, l.K, shape[1]+2*l.Pad, shape[2]+2*l.Pad)
			}
			cg := shape[0] / g
			fan := cg * l.K * l.K
			param(ParamSpec{Name: name + ".w", Shape: Shape{l.Out, cg, l.K, l.K}, FanIn: fan})
			if !l.NoBias {
				param(ParamSpec{Name: name + ".b", Shape: Shape{l.Out}, FanIn: fan, Bias: true})
			}
			nd.Out = Shape{l.Out, h, w}
			nd.MACs = int64(l.Out) * int64(h*w) * int64(fan)
		case ReLU, ReLU6, SiLU:
			nd.Out = shape
		case MaxPool:
			if len(shape) != 3 {
				return fail("pooling on %v, want (C, H, W)", shape)
			}
			if l.K == 0 {
				if shape[1]%2 != 0 || shape[2]%2 != 0 {
					return fail("2×2 pooling needs even sides, got %v", shape)
				}
				nd.Out = Shape{shape[0], shape[1] / 2, shape[2] / 2}
				break
			}
			s := l.ConvStride()
			if l.Pad >= l.K || shape[1]+2*l.Pad < l.K || shape[2]+2*l.Pad < l.K {
				return fail("%dx%d pooling with padding %d on %v", l.K, l.K, l.Pad, shape)
			}
			nd.Out = Shape{shape[0], (shape[1]+2*l.Pad-l.K)/s + 1, (shape[2]+2*l.Pad-l.K)/s + 1}
		case Flatten:
			nd.Out = Shape{shape.Size()}
		case Dense:
			if len(shape) != 1 || l.Out < 1 {
				return fail("dense of %d units on %v (flatten or pool first)", l.Out, shape)
			}
			param(ParamSpec{Name: name + ".w", Shape: Shape{shape[0], l.Out}, FanIn: shape[0]})
			param(ParamSpec{Name: name + ".b", Shape: Shape{l.Out}, FanIn: shape[0], Bias: true})
			nd.Out = Shape{l.Out}
			nd.MACs = int64(shape[0]) * int64(l.Out)
		case BatchNorm:
			if len(shape) != 3 {
				return fail("batch norm on %v, want (C, H, W)", shape)
			}
			c := Shape{shape[0]}
			param(ParamSpec{Name: name + ".w", Shape: c, Ones: true})
			param(ParamSpec{Name: name + ".b", Shape: c, Bias: true})
			param(ParamSpec{Name: name + ".mean", Shape: c, Buffer: true})
			param(ParamSpec{Name: name + ".var", Shape: c, Buffer: true, Ones: true})
			nd.Out = shape
		case Add:
			for k, s := range nd.InShapes[1:] {
				if !slices.Equal(s, shape) {
					return fail("input %d (layer %d) is %v, input 0 (layer %d) is %v", k+1, nd.In[k+1], s, nd.In[0], shape)
				}
			}
			nd.Out = shape
		case Concat:
			if len(shape) == 1 {
				n := 0
				for k, s := range nd.InShapes {
					if len(s) != 1 {
						return fail("input %d (layer %d) is %v; joining vectors needs vectors", k, nd.In[k], s)
					}
					n += s[0]
				}
				nd.Out = Shape{n}
				break
			}
			c := 0
			for k, s := range nd.InShapes {
				if len(s) != 3 || s[1] != shape[1] || s[2] != shape[2] {
					return fail("input %d (layer %d) is %v; concatenation needs (C, %d, %d)", k, nd.In[k], s, shape[1], shape[2])
				}
				c += s[0]
			}
			nd.Out = Shape{c, shape[1], shape[2]}
		case GlobalAvgPool:
			if len(shape) != 3 {
				return fail("global average pooling on %v, want (C, H, W)", shape)
			}
			nd.Out = Shape{shape[0]}
		case Upsample:
			if len(shape) != 3 {
				return fail("upsampling %v, want (C, H, W)", shape)
			}
			nd.Out = Shape{shape[0], 2 * shape[1], 2 * shape[2]}
		default:
			return fail("unknown kind %q", l.Kind)
		}
		nodes[i] = nd
	}
	for i, u := range used[:len(used)-1] {
		if !u {
			return nil, nil, fmt.Errorf("arch %s layer %d (%s): its output is never read", a.Name, i, a.Layers[i].Kind)
		}
	}
	shape := nodes[len(nodes)-1].Out
	switch a.Task {
	case Classify:
		if len(shape) != 1 || shape[0] != a.Classes {
			return nil, nil, fmt.Errorf("arch %s: classifier output %v, want [%d]", a.Name, shape, a.Classes)
		}
	case Detect:
		if len(a.Levels) > 0 {
			if err := a.checkLevels(nodes); err != nil {
				return nil, nil, err
			}
			break
		}
		if len(shape) != 3 || shape[0] != DetectOut(a.Classes) || shape[1] != shape[2] {
			return nil, nil, fmt.Errorf("arch %s: detector output %v, want [%d S S]", a.Name, shape, DetectOut(a.Classes))
		}
	default:
		return nil, nil, fmt.Errorf("arch %s: unknown task %q", a.Name, a.Task)
	}
	return nodes, ps, nil
}

// Cost is the network's size: trainable weights (buffers excluded) and multiply-adds
// of one image's forward pass in its convolutions and dense layers.
func (a Arch) Cost() (params int, macs int64, err error) {
	nodes, specs, err := a.Graph()
	if err != nil {
		return 0, 0, err
	}
	for _, s := range specs {
		if !s.Buffer {
			params += s.Shape.Size()
		}
	}
	for _, n := range nodes {
		macs += n.MACs
	}
	return params, macs, nil
}

// Grid is the grid detector's grid side (cells per row); 0 for a classifier or a
// multi-scale detector.
func (a Arch) Grid() int {
	_, out, err := a.Analyse()
	if err != nil || a.Task != Detect || len(a.Levels) > 0 {
		return 0
	}
	return out[1]
}

// LevelMap is where one pyramid level's map lies in a multi-scale detector's output
// of one image: (5+C) channels of H×W values from Offset, channel-major.
type LevelMap struct {
	Stride, H, W, Offset int
}

// LevelMaps are the levels' maps in the output of one image, finest first (nil for a
// network without levels).
func (a Arch) LevelMaps() []LevelMap {
	var out []LevelMap
	off, ch := 0, DetectOut(a.Classes)
	for _, l := range a.Levels {
		if l.Stride < 1 {
			return nil
		}
		m := LevelMap{Stride: l.Stride, H: a.InH / l.Stride, W: a.InW / l.Stride, Offset: off}
		out = append(out, m)
		off += ch * m.H * m.W
	}
	return out
}

// checkLevels checks a multi-scale detector: input sides divisible by every stride,
// each level's objectness, box and class layers of 1, 4 and Classes channels at its
// resolution, and an output that holds every level's map.
func (a Arch) checkLevels(nodes []Node) error {
	want := 0
	for i, l := range a.Levels {
		if l.Stride < 1 || a.InH%l.Stride != 0 || a.InW%l.Stride != 0 {
			return fmt.Errorf("arch %s level %d: stride %d does not divide the %dx%d input", a.Name, i, l.Stride, a.InW, a.InH)
		}
		h, w := a.InH/l.Stride, a.InW/l.Stride
		for _, c := range []struct {
			what  string
			layer int
			ch    int
		}{{"objectness", l.Obj, 1}, {"box", l.Box, 4}, {"class", l.Cls, a.Classes}} {
			if c.layer < 0 || c.layer >= len(nodes) {
				return fmt.Errorf("arch %s level %d: %s layer %d outside %d layers", a.Name, i, c.what, c.layer, len(nodes))
			}
			got := nodes[c.layer].Out
			if nodes[c.layer].Kind != Conv || !slices.Equal(got, Shape{c.ch, h, w}) {
				return fmt.Errorf("arch %s level %d: %s layer %d is a %s making %v, want a conv making %v", a.Name, i, c.what, c.layer,
					nodes[c.layer].Kind, got, Shape{c.ch, h, w})
			}
		}
		want += DetectOut(a.Classes) * h * w
	}
	if out := nodes[len(nodes)-1].Out; len(out) != 1 || out[0] != want {
		return fmt.Errorf("arch %s: multi-scale detector output %v, want [%d] (every level's map, flattened)", a.Name, out, want)
	}
	return nil
}
