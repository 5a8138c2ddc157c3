package nn

import "fmt"

// DetectorStrides are the multi-scale detector's pyramid levels (PyramidP3).
func DetectorStrides() []int { return []int{8, 16, 32} }

// Pyramids of the multi-scale detector (Spec.Pyramid).
const (
	// PyramidP3 has levels at strides 8, 16 and 32 (YOLOv8's P3–P5): the default.
	PyramidP3 = "p3"
	// PyramidP2 adds a level at stride 4 (Ultralytics' yolov8-p2): four points on an
	// 8-px object where stride 8 has one, for scenes of small objects, at about half
	// as much compute again (1.5× the multiply-adds at n and s, 1.4× at m).
	PyramidP2 = "p2"
)

// PyramidSuffix is what a detector's name carries of its pyramid: nothing for P3 (""
// or PyramidP3: the names networks had before P2), else "-" and the pyramid.
func PyramidSuffix(pyramid string) string {
	if pyramid == "" || pyramid == PyramidP3 {
		return ""
	}
	return "-" + pyramid
}

// Pyramids are the pyramids DetectorPyramid builds, the default first.
func Pyramids() []string { return []string{PyramidP3, PyramidP2} }

// PyramidStrides are the strides of pyramid's levels, finest first, and whether the
// pyramid is known ("" is PyramidP3).
func PyramidStrides(pyramid string) ([]int, bool) {
	switch pyramid {
	case "", PyramidP3:
		return DetectorStrides(), true
	case PyramidP2:
		return []int{4, 8, 16, 32}, true
	}
	return nil, false
}

// neckWidth is the channels of the feature pyramid and heads at each family size.
func neckWidth(size string) int {
	switch size {
	case "n":
		return 48
	case "s":
		return 64
	}
	return 96
}

// DetectorFamily returns the multi-scale anchor-free detector of family name
// (MobileNetV2) at size (n, s, m) for inW×inH images (sides multiples of 32 from 64 to
// 640) of channels channels (1 grey, 3 RGB) and classes classes, with levels at
// strides 8, 16 and 32: DetectorPyramid with PyramidP3.
func DetectorFamily(name, size string, inW, inH, channels, classes int) (Arch, error) {
	return DetectorPyramid(name, size, PyramidP3, inW, inH, channels, classes)
}

// DetectorPyramid returns the multi-scale anchor-free detector of family name
// (MobileNetV2) at size (n, s, m) with the levels of pyramid (PyramidStrides) for
// inW×inH images (sides multiples of 32 from 64 to 640) of channels channels (1 grey,
// 3 RGB) and classes classes:
//
//   - the family's trunk (Family without its 1280-channel conv and classifier), tapped
//     at the pyramid's strides;
//   - a small feature pyramid (PAN, as YOLOv8's neck, with depthwise-separable convs):
//     top-down, the coarser map upsampled and concatenated with the finer trunk map;
//     bottom-up, the finer map downsampled by a stride-2 depthwise conv and
//     concatenated with the coarser one; every merge a 3×3 depthwise and a 1×1 conv
//     with batch norm and SiLU;
//   - a decoupled head per level (YOLOX): a class branch and a box branch, each a
//     depthwise-separable conv, then 1×1 convs to the class logits, and from the box
//     branch to the four side distances and the objectness logit;
//   - each level's [objectness, box, classes] maps concatenated, flattened, and the
//     levels joined end to end (Arch.Levels, LevelMaps).
//
// The backbone (HeadFrom) is the trunk; the pyramid and heads train from scratch. The
// signature is the project's model setting {family, size, pyramid, input, channels}.
// The P3 network is named NAME-SIZE-det, the others NAME-SIZE-det-PYRAMID.
func DetectorPyramid(name, size, pyramid string, inW, inH, channels, classes int) (Arch, error) {
	alpha, err := familyCheck(name, size, name+" detector", channels, classes)
	if err != nil {
		return Arch{}, err
	}
	strides, ok := PyramidStrides(pyramid)
	if !ok {
		return Arch{}, fmt.Errorf("%s detector pyramid %q unknown: want one of %v", name, pyramid, Pyramids())
	}
	for _, v := range []int{inW, inH} {
		if v < 64 || v > 640 || v%32 != 0 {
			return Arch{}, fmt.Errorf("%s detector input %dx%d: sides must be multiples of 32 from 64 to 640", name, inW, inH)
		}
	}
	a := Arch{Name: fmt.Sprintf("%s-%s-det%s", name, size, PyramidSuffix(pyramid)), Task: Detect, InC: channels, InH: inH, InW: inW, Classes: classes}
	b := &builder{a: &a}
	b.trunk(alpha)
	buildPyramid(b, strides, neckWidth(size), classes)
	if _, _, err := a.Graph(); err != nil {
		return Arch{}, err
	}
	return a, nil
}

// buildPyramid appends the feature pyramid and the heads at strides (finest first) to
// a trunk built by b, with neck channels h, and sets the arch's head and levels. The
// layers of strides 8, 16, 32 come in the order the first detectors were saved in.
func buildPyramid(b *builder, strides []int, h, classes int) {
	a := b.a
	// dwsep is a 3×3 depthwise conv of in channels reading from, then a 1×1 conv to
	// out; each with batch norm and SiLU.
	dwsep := func(from, in, out, stride int) int {
		b.convBNFrom(from, in, 3, stride, in, SiLU)
		return b.convBN(out, 1, 1, 1, SiLU)
	}
	merge := func(x, xc, y, yc int) int { // concat(x, y) → dwsep to h
		cat := b.add(Layer{Kind: Concat, From: []int{x, y}})
		return dwsep(cat, xc+yc, h, 1)
	}
	last := len(strides) - 1
	// Top-down: td[i] is level i's map, the coarser one upsampled and merged with the
	// trunk's.
	a.HeadFrom = len(a.Layers)
	td := make([]int, len(strides))
	td[last] = b.convBNFrom(b.taps[strides[last]], h, 1, 1, 1, SiLU)
	for i := last - 1; i >= 0; i-- {
		up := b.add(Layer{Kind: Upsample, From: []int{td[i+1]}})
		td[i] = merge(up, h, b.taps[strides[i]], b.tapCh[strides[i]])
	}
	// Bottom-up: feats[i] is the finer output downsampled and merged with td[i].
	feats := []int{td[0]}
	for i := 1; i <= last; i++ {
		d := b.convBNFrom(feats[i-1], h, 3, 2, h, SiLU)
		feats = append(feats, merge(d, h, td[i], h))
	}
	var flats []int
	for i, feat := range feats {
		cls := dwsep(feat, h, h, 1)
		clsOut := b.add(Layer{Kind: Conv, Out: classes, K: 1, From: []int{cls}})
		reg := dwsep(feat, h, h, 1)
		box := b.add(Layer{Kind: Conv, Out: 4, K: 1, From: []int{reg}})
		obj := b.add(Layer{Kind: Conv, Out: 1, K: 1, From: []int{reg}})
		cat := b.add(Layer{Kind: Concat, From: []int{obj, box, clsOut}})
		flats = append(flats, b.add(Layer{Kind: Flatten, From: []int{cat}}))
		a.Levels = append(a.Levels, Level{Stride: strides[i], Obj: obj, Box: box, Cls: clsOut})
	}
	b.add(Layer{Kind: Concat, From: flats})
}

// FamilyFor is the family network for a task, from the project's model setting
// {family, size, pyramid, input, channels}: Family for classification (which has no
// pyramid: only "" or PyramidP3), DetectorPyramid for detection.
func FamilyFor(task Task, name, size, pyramid string, inW, inH, channels, classes int) (Arch, error) {
	switch task {
	case Classify:
		if PyramidSuffix(pyramid) != "" {
			return Arch{}, fmt.Errorf("model pyramid %q: only a detector has one", pyramid)
		}
		return Family(name, size, inW, inH, channels, classes)
	case Detect:
		return DetectorPyramid(name, size, pyramid, inW, inH, channels, classes)
	}
	return Arch{}, fmt.Errorf("model family for task %q: want %s or %s", task, Classify, Detect)
}

// ScratchLR is Adam's learning rate for training a from scratch: 1e-2 for a
// multi-scale detector, whose batch-normed MobileNetV2 trunk learns slowly at less (on
// 400 digit scenes, train mAP@0.5 after 200 steps of 16 was 0.09 at 3e-3, 0.25 at 1e-2
// and 0.35 at 2e-2), 1e-3 for the other networks.
func (a Arch) ScratchLR() float32 {
	if len(a.Levels) > 0 {
		return 1e-2
	}
	return 1e-3
}
