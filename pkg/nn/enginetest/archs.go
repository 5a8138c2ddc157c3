package enginetest

import "github.com/edgeloop/edgeloop/pkg/nn"

// TinyClassifier is an 8×8, three-class network small enough for finite differences.
func TinyClassifier() nn.Arch {
	return nn.Arch{Name: "tiny-cls", Task: nn.Classify, InC: 1, InH: 8, InW: 8, Classes: 3,
		Layers: []nn.Layer{{Kind: nn.Conv, Out: 4, K: 3, Pad: 1}, {Kind: nn.ReLU}, {Kind: nn.MaxPool},
			{Kind: nn.Flatten}, {Kind: nn.Dense, Out: 3}}, HeadFrom: 4}
}

// TinyDetector is an 8×8, two-class grid detector small enough for finite differences.
func TinyDetector() nn.Arch {
	return nn.Arch{Name: "tiny-det", Task: nn.Detect, InC: 1, InH: 8, InW: 8, Classes: 2,
		Layers: []nn.Layer{{Kind: nn.Conv, Out: 4, K: 3, Pad: 1}, {Kind: nn.ReLU}, {Kind: nn.MaxPool},
			{Kind: nn.Conv, Out: nn.DetectOut(2), K: 1}}, HeadFrom: 3}
}

// AllLayers is a small classifier using every layer kind of the graph form: strided,
// grouped, depthwise and bias-free convs, batch norm, ReLU6, SiLU, a residual add,
// 3×3/2 max pooling, 2× upsampling, a concatenation, global average pooling.
func AllLayers() nn.Arch {
	return nn.Arch{Name: "all-layers", Task: nn.Classify, InC: 3, InH: 8, InW: 8, Classes: 4, HeadFrom: 13, Layers: []nn.Layer{
		{Kind: nn.Conv, Out: 6, K: 3, Pad: 1, Stride: 2, NoBias: true}, // 0: 6×4×4
		{Kind: nn.BatchNorm}, // 1
		{Kind: nn.ReLU6},     // 2
		{Kind: nn.Conv, Out: 6, K: 3, Pad: 1, Groups: 6, NoBias: true}, // 3: depthwise
		{Kind: nn.BatchNorm},                        // 4
		{Kind: nn.SiLU},                             // 5
		{Kind: nn.Conv, Out: 6, K: 1, Groups: 2},    // 6: grouped 1×1
		{Kind: nn.Add, From: []int{6, 2}},           // 7: residual
		{Kind: nn.MaxPool, K: 3, Stride: 2, Pad: 1}, // 8: 6×2×2
		{Kind: nn.Upsample},                         // 9: 6×4×4
		{Kind: nn.Concat, From: []int{7, 9}},        // 10: 12×4×4
		{Kind: nn.ReLU},                             // 11
		{Kind: nn.GlobalAvgPool},                    // 12
		{Kind: nn.Dense, Out: 4},                    // 13
	}}
}

// TinyMultiScale is a two-level multi-scale detector (strides 1 and 2) of 3×32×32
// images and two classes, small enough for finite differences; enginetest.Batch's
// boxes give both levels assigned points.
func TinyMultiScale() nn.Arch {
	head := func(from int) []nn.Layer {
		return []nn.Layer{
			{Kind: nn.Conv, Out: 1, K: 1, From: []int{from}},
			{Kind: nn.Conv, Out: 4, K: 1, From: []int{from}},
			{Kind: nn.Conv, Out: 2, K: 1, From: []int{from}},
		}
	}
	var l []nn.Layer
	l = append(l, nn.Layer{Kind: nn.Conv, Out: 4, K: 3, Pad: 1}, nn.Layer{Kind: nn.SiLU}) // 0, 1: 4×32×32
	l = append(l, head(1)...)                                                             // 2–4
	l = append(l, nn.Layer{Kind: nn.Concat, From: []int{2, 3, 4}}, nn.Layer{Kind: nn.Flatten})
	l = append(l, nn.Layer{Kind: nn.Conv, Out: 4, K: 3, Pad: 1, Stride: 2, From: []int{1}}, nn.Layer{Kind: nn.SiLU}) // 7, 8: 4×16×16
	l = append(l, head(8)...)                                                                                        // 9–11
	l = append(l, nn.Layer{Kind: nn.Concat, From: []int{9, 10, 11}}, nn.Layer{Kind: nn.Flatten})
	l = append(l, nn.Layer{Kind: nn.Concat, From: []int{6, 13}})
	return nn.Arch{Name: "tiny-multiscale", Task: nn.Detect, InC: 3, InH: 32, InW: 32, Classes: 2, HeadFrom: 2, Layers: l,
		Levels: []nn.Level{{Stride: 1, Obj: 2, Box: 3, Cls: 4}, {Stride: 2, Obj: 9, Box: 10, Cls: 11}}}
}
