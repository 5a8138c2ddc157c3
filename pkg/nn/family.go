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
	alpha, err := familyCheck(name, size, name, channels, classes)
	if err != nil {
		return Arch{}, err
	}
	if inW < 32 || inH < 32 {
		return Arch{}, fmt.Errorf("%s input %dx%d: the network halves its input five times, use 32 px or more", name, inW, inH)
	}
	a := Arch{Name: fmt.Sprintf("%s-%s", name, size), Task: Classify, InC: channels, InH: inH, InW: inW, Classes: classes}
	b := &builder{a: &a}
	b.trunk(alpha)
	top := 1280
	if alpha > 1 {
		top = makeDivisible(1280*alpha, 8)
	}
	b.convBN(top, 1, 1, 1, ReLU6)
	b.add(Layer{Kind: GlobalAvgPool})
	a.HeadFrom = b.add(Layer{Kind: Dense, Out: classes})
	if _, _, err := a.Graph(); err != nil {
		return Arch{}, err
	}
	return a, nil
}

// familyCheck checks what every network of the family needs — a known family and size,
// 1 or 3 channels, a class — and returns the size's width; what names the network in
// errors.
func familyCheck(name, size, what string, channels, classes int) (float64, error) {
	if name != MobileNetV2 {
		return 0, fmt.Errorf("model family %q unknown (have %q)", name, MobileNetV2)
	}
	alpha, ok := familyWidth(size)
	if !ok {
		return 0, fmt.Errorf("%s size %q unknown (have %v)", name, size, FamilySizes())
	}
	if channels != 1 && channels != 3 {
		return 0, fmt.Errorf("%s input of %d channels, want 1 (grey) or 3 (RGB)", what, channels)
	}
	if classes < 1 {
		return 0, fmt.Errorf("%s with %d classes", what, classes)
	}
	return alpha, nil
}

// builder appends layers to an architecture.
type builder struct {
	a *Arch
	// taps[s] is the last layer of the trunk at stride s and tapCh[s] its channels
	// (trunk).
	taps, tapCh map[int]int
	// ch is the channels of the last layer added through convBN (trunk).
	ch int
}

// add appends l and returns its index.
func (b *builder) add(l Layer) int {
	b.a.Layers = append(b.a.Layers, l)
	return len(b.a.Layers) - 1
}

// convBN appends a bias-free conv reading the previous layer, its batch norm and the
// activation act ("" for none), and returns the last layer's index.
func (b *builder) convBN(out, k, stride, groups int, act string) int {
	return b.convBNFrom(-2, out, k, stride, groups, act)
}

// convBNFrom is convBN reading layer from (-2: the previous layer).
func (b *builder) convBNFrom(from, out, k, stride, groups int, act string) int {
	l := Layer{Kind: Conv, Out: out, K: k, Pad: k / 2, Stride: stride, Groups: groups, NoBias: true}
	if from != -2 {
		l.From = []int{from}
	}
	b.add(l)
	last := b.add(Layer{Kind: BatchNorm, Eps: 1e-3})
	if act != "" {
		last = b.add(Layer{Kind: act})
	}
	b.ch = out
	return last
}

// trunk appends MobileNetV2's stem and seven inverted-residual stages at width alpha,
// recording in taps the last layer at each stride (2 to 32).
func (b *builder) trunk(alpha float64) {
	b.taps, b.tapCh = map[int]int{}, map[int]int{}
	in := makeDivisible(32*alpha, 8)
	last := b.convBN(in, 3, 2, 1, ReLU6)
	stride := 2
	for _, blk := range mobileNetV2Blocks() {
		t, c, n, s := blk[0], blk[1], blk[2], blk[3]
		out := makeDivisible(float64(int(float64(c)*alpha)), 8)
		for i := 0; i < n; i++ {
			st := s
			if i > 0 {
				st = 1
			}
			blockIn := last
			hidden := in * t
			if t != 1 {
				b.convBN(hidden, 1, 1, 1, ReLU6)
			}
			b.convBN(hidden, 3, st, hidden, ReLU6)
			last = b.convBN(out, 1, 1, 1, "")
			if st == 1 && in == out {
				last = b.add(Layer{Kind: Add, From: []int{last, blockIn}})
			}
			in = out
			stride *= st
			b.taps[stride], b.tapCh[stride] = last, out
		}
	}
	b.ch = in
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
