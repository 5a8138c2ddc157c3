package nn

import "fmt"

// MobileNetV2 is the family of inverted-residual networks (Sandler et al., 2018) that
// Family builds; docs/models.md says why this family.
const MobileNetV2 = "mobilenetv2"

// familyWidth is the width multiplier of a MobileNetV2 size: n (0.35, the smallest
// Keras publishes ImageNet weights for, what Edge Impulse's FOMO and classifiers start
// from), s (0.5) and m (1.0, the paper's and torchvision's model).
func familyWidth(size string) (float64, bool) {
	switch size {
	case "n":
		return 0.35, true
	case "s":
		return 0.5, true
	case "m":
		return 1.0, true
	}
	return 0, false
}

// FamilySizes lists the sizes Family builds, smallest first.
func FamilySizes() []string { return []string{"n", "s", "m"} }

// mobileNetV2Blocks are the paper's inverted-residual stages: expansion t, output
// channels c (before the width multiplier), repeats n, first stride s.
func mobileNetV2Blocks() [7][4]int {
	return [7][4]int{{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}}
}

// Family returns the classifier of family name (MobileNetV2) at size (n, s, m) for
// inW×inH images of channels channels (1 grey, 3 RGB) and classes classes: a 3×3
// stride-2 stem, the seven inverted-residual stages (1×1 expand, 3×3 depthwise, 1×1
// linear projection, each with batch norm, ReLU6 after the first two, a residual add
// where input and output shapes match), a 1×1 conv to 1280 channels, global average
// pooling and a dense head. Layer widths round as Keras's MobileNetV2 does, so its
// ImageNet weights map one to one. The head is the dense layer alone.
func Family(name, size string, inW, inH, channels, classes int) (Arch, error) {
	if name != MobileNetV2 {
		return Arch{}, fmt.Errorf("model family %q unknown (have %q)", name, MobileNetV2)
	}
	alpha, ok := familyWidth(size)
	if !ok {
		return Arch{}, fmt.Errorf("%s size %q unknown (have %v)", name, size, FamilySizes())
	}
	if inW < 32 || inH < 32 {
		return Arch{}, fmt.Errorf("%s input %dx%d: the network halves its input five times, use 32 px or more", name, inW, inH)
	}
	if channels != 1 && channels != 3 {
		return Arch{}, fmt.Errorf("%s input of %d channels, want 1 (grey) or 3 (RGB)", name, channels)
	}
	if classes < 1 {
		return Arch{}, fmt.Errorf("%s with %d classes", name, classes)
	}
	a := Arch{Name: fmt.Sprintf("%s-%s", name, size), Task: Classify, InC: channels, InH: inH, InW: inW, Classes: classes}
	add := func(l Layer) int {
		a.Layers = append(a.Layers, l)
		return len(a.Layers) - 1
	}
	convBN := func(out, k, stride, groups int, relu bool) int {
		add(Layer{Kind: Conv, Out: out, K: k, Pad: k / 2, Stride: stride, Groups: groups, NoBias: true})
		last := add(Layer{Kind: BatchNorm, Eps: 1e-3})
		if relu {
			last = add(Layer{Kind: ReLU6})
		}
		return last
	}
	in := makeDivisible(32*alpha, 8)
	last := convBN(in, 3, 2, 1, true)
	for _, b := range mobileNetV2Blocks() {
		t, c, n, s := b[0], b[1], b[2], b[3]
		out := makeDivisible(float64(int(float64(c)*alpha)), 8)
		for i := 0; i < n; i++ {
			stride := s
			if i > 0 {
				stride = 1
			}
			blockIn := last
			hidden := in * t
			if t != 1 {
				convBN(hidden, 1, 1, 1, true)
			}
			convBN(hidden, 3, stride, hidden, true)
			last = convBN(out, 1, 1, 1, false)
			if stride == 1 && in == out {
				last = add(Layer{Kind: Add, From: []int{last, blockIn}})
			}
			in = out
		}
	}
	top := 1280
	if alpha > 1 {
		top = makeDivisible(1280*alpha, 8)
	}
	convBN(top, 1, 1, 1, true)
	add(Layer{Kind: GlobalAvgPool})
	a.HeadFrom = add(Layer{Kind: Dense, Out: classes})
	if _, _, err := a.Graph(); err != nil {
		return Arch{}, err
	}
	return a, nil
}

// makeDivisible rounds v to a multiple of d, never below d nor 10% below v (the
// rounding of the MobileNet reference code).
func makeDivisible(v float64, d int) int {
	n := max(d, int(v+float64(d)/2)/d*d)
	if float64(n) < 0.9*v {
		n += d
	}
	return n
}
