package nn

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestDetectorFamilyShapes: every size builds at square and non-square inputs, grey
// and RGB, with levels at strides 8, 16, 32 whose maps tile the output; bad settings
// are refused with a reason.
func TestDetectorFamilyShapes(t *testing.T) {
	for _, size := range FamilySizes() {
		for _, in := range [][3]int{{160, 160, 3}, {320, 256, 1}, {640, 480, 3}, {64, 64, 1}} {
			a, err := DetectorFamily(MobileNetV2, size, in[0], in[1], in[2], 7)
			if err != nil {
				t.Fatalf("%s %v: %v", size, in, err)
			}
			maps := a.LevelMaps()
			if len(maps) != 3 || a.Grid() != 0 {
				t.Fatalf("%s: %d levels, grid %d", a.Name, len(maps), a.Grid())
			}
			total := 0
			for i, m := range maps {
				if m.Stride != DetectorStrides()[i] || m.W != in[0]/m.Stride || m.H != in[1]/m.Stride || m.Offset != total {
					t.Fatalf("%s %v level %d: %+v", a.Name, in, i, m)
				}
				total += DetectOut(7) * m.H * m.W
			}
			if a.OutputSize() != total {
				t.Fatalf("%s %v: output %d, levels hold %d", a.Name, in, a.OutputSize(), total)
			}
			// The backbone is the family's trunk, layer for layer.
			cls, _ := Family(MobileNetV2, size, in[0], in[1], in[2], 7)
			if !reflect.DeepEqual(a.Layers[:a.HeadFrom], cls.Layers[:a.HeadFrom]) {
				t.Fatalf("%s: the backbone differs from the family's trunk", a.Name)
			}
		}
	}
	for _, c := range []struct {
		size          string
		w, h, ch, cls int
		want          string
	}{
		{"n", 100, 160, 3, 2, "multiples of 32"},
		{"n", 672, 640, 3, 2, "multiples of 32 from 64 to 640"},
		{"n", 160, 160, 2, 2, "channels"},
		{"x", 160, 160, 3, 2, "size"},
		{"n", 160, 160, 3, 0, "classes"},
	} {
		if _, err := DetectorFamily(MobileNetV2, c.size, c.w, c.h, c.ch, c.cls); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", c, err, c.want)
		}
	}
	if _, err := DetectorFamily("resnet", "n", 160, 160, 3, 2); err == nil {
		t.Error("an unknown family was accepted")
	}
}

// TestDetectorFamilyJSON: a multi-scale detector's arch survives the model file's JSON,
// and a broken level is refused by Graph.
func TestDetectorFamilyJSON(t *testing.T) {
	a, err := DetectorFamily(MobileNetV2, "n", 160, 128, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var back Arch
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, back) {
		t.Fatal("arch changed through JSON")
	}
	bad := back
	bad.Levels = append([]Level(nil), back.Levels...)
	bad.Levels[1].Cls = bad.Levels[1].Obj
	if _, _, err := bad.Graph(); err == nil || !strings.Contains(err.Error(), "class layer") {
		t.Fatalf("a level whose class layer makes 4 channels: %v", err)
	}
	bad.Levels = back.Levels[:2]
	if _, _, err := bad.Graph(); err == nil || !strings.Contains(err.Error(), "output") {
		t.Fatalf("levels not covering the output: %v", err)
	}
}

// TestGIoULossGradient: the analytic gradient of 1 − GIoU against central differences,
// for overlapping, disjoint and nested boxes and a target whose point lies outside it
// (negative distances).
func TestGIoULossGradient(t *testing.T) {
	cases := [][2][4]float64{
		{{1, 1, 1, 1}, {1.5, 0.7, 0.8, 2}},
		{{0.3, 2, 4, 0.5}, {1, 1, 1, 1}},
		{{0.5, 0.5, 0.5, 0.5}, {3, 3, 3, 3}},
		{{2, 1, 0.1, 0.1}, {-0.5, 0.2, 1.5, 0.4}},
	}
	r := rand.New(rand.NewPCG(1, 1))
	for k := 0; k < 40; k++ {
		var p, g [4]float64
		for i := range p {
			p[i], g[i] = 0.05+3*r.Float64(), 0.05+3*r.Float64()
		}
		cases = append(cases, [2][4]float64{p, g})
	}
	for _, c := range cases {
		p, g := c[0], c[1]
		l, grad := GIoULoss(p, g)
		if l < 0 || l > 2 {
			t.Fatalf("%v %v: loss %v outside [0, 2]", p, g, l)
		}
		for i := range p {
			const h = 1e-6
			q := p
			q[i] += h
			lp, _ := GIoULoss(q, g)
			q[i] -= 2 * h
			lm, _ := GIoULoss(q, g)
			if num := (lp - lm) / (2 * h); math.Abs(num-grad[i]) > 1e-5 {
				t.Fatalf("%v %v: d/dp%d analytic %v, numeric %v", p, g, i, grad[i], num)
			}
		}
	}
	if l, _ := GIoULoss([4]float64{1, 2, 3, 4}, [4]float64{1, 2, 3, 4}); math.Abs(l) > 1e-12 {
		t.Fatalf("identical boxes: loss %v", l)
	}
}

// TestMultiScaleLossGradient: MultiScaleLoss's gradient against central differences of
// its value, element by element, at the assigned and background points of every level.
func TestMultiScaleLossGradient(t *testing.T) {
	a, err := DetectorFamily(MobileNetV2, "n", 128, 96, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	boxes := [][]Box{
		{{X0: .1, Y0: .1, X1: .3, Y1: .4, Class: 0}, {X0: .05, Y0: .05, X1: .95, Y1: .9, Class: 2}, {X0: .6, Y0: .6, X1: .68, Y1: .7, Class: 1}},
		{},
	}
	tg := EncodeTargets(a, boxes)
	r := rand.New(rand.NewPCG(2, 2))
	z := make([]float32, len(tg.W))
	for i := range z {
		z[i] = float32(r.NormFloat64())
	}
	dz := make([]float32, len(z))
	loss, err := MultiScaleLoss(a, z, tg, 2, dz)
	if err != nil {
		t.Fatal(err)
	}
	if loss <= 0 || math.IsNaN(loss) {
		t.Fatalf("loss %v", loss)
	}
	// The assigned class's target is the IoU of the predicted box, held constant: the
	// frozen targets give the same loss and gradient, and the finite differences below
	// are of the loss against them.
	frozen := QualityTargets(a, z, tg, 2)
	dzFrozen := make([]float32, len(z))
	if l, _ := MultiScaleLoss(a, z, frozen, 2, dzFrozen); math.Abs(l-loss) > 1e-6*loss {
		t.Fatalf("frozen quality targets: loss %v, want %v", l, loss)
	}
	for i := range dz {
		if math.Abs(float64(dz[i]-dzFrozen[i])) > 1e-6 {
			t.Fatalf("frozen quality targets: dz[%d] %v, want %v", i, dzFrozen[i], dz[i])
		}
	}
	soft := 0
	for _, m := range a.LevelMaps() {
		hw := m.H * m.W
		for i := 0; i < hw; i++ {
			o := m.Offset + i
			if tg.M[o+hw] == 0 {
				continue
			}
			var pd, gd [4]float64
			for k := range pd {
				pd[k], gd[k] = math.Exp(float64(z[o+(k+1)*hw])), float64(tg.B[o+(k+1)*hw])
			}
			q := BoxIoU(pd, gd)
			for c := 0; c < a.Classes; c++ {
				j := o + (5+c)*hw
				want := float64(tg.T[j])
				if want == 1 {
					want, soft = q, soft+1
				}
				if got := float64(frozen.T[j]); math.Abs(got-want) > 1e-6 {
					t.Fatalf("class target %d: %v, want %v (IoU %v)", j, got, want, q)
				}
				sg := 1 / (1 + math.Exp(-float64(z[j])))
				if g := float64(tg.W[j]) * (sg - want); math.Abs(g-float64(dz[j])) > 1e-6 {
					t.Fatalf("class gradient %d: %v, want %v", j, dz[j], g)
				}
			}
		}
	}
	if soft == 0 {
		t.Fatal("no assigned point: the IoU-aware class target is not checked")
	}
	tg = frozen
	// The points to check: every box channel with a weight, and a sample of the rest.
	var idx []int
	for _, m := range a.LevelMaps() {
		hw := m.H * m.W
		for i := 0; i < hw; i++ {
			if tg.M[m.Offset+hw+i] != 0 {
				for c := 1; c <= 4; c++ {
					idx = append(idx, m.Offset+c*hw+i)
				}
				idx = append(idx, m.Offset+i, m.Offset+5*hw+i)
			}
		}
	}
	for k := 0; k < 200; k++ {
		idx = append(idx, r.IntN(len(z)))
	}
	other := make([]float32, len(z))
	for _, i := range idx {
		const h = 1e-3 // GIoU has kinks (min, max) within 1e-2 of some points here
		v := z[i]
		z[i] = v + h
		lp, _ := MultiScaleLoss(a, z, tg, 2, other)
		z[i] = v - h
		lm, _ := MultiScaleLoss(a, z, tg, 2, other)
		z[i] = v
		num := (lp - lm) / (2 * h)
		if math.Abs(num-float64(dz[i])) > 1e-3*math.Max(1, math.Abs(num)) {
			t.Fatalf("dz[%d]: analytic %v, numeric %v", i, dz[i], num)
		}
	}
}

// TestEncodeLevels: label assignment over the levels — small boxes on stride 8, the
// whole frame on stride 32, each of 100 boxes with assigned points, the smallest box
// winning a shared point, a box that lost all its points rescued, and perfect
// predictions decoding to the boxes.
func TestEncodeLevels(t *testing.T) {
	a, err := DetectorFamily(MobileNetV2, "n", 320, 320, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	maps := a.LevelMaps()
	// assigned counts, per level, the points whose class target is class c.
	assigned := func(tg *DetTargets, img, c int) [3]int {
		var n [3]int
		for l, m := range maps {
			hw := m.H * m.W
			base := img*a.OutputSize() + m.Offset
			for p := 0; p < hw; p++ {
				if tg.T[base+p] == 1 && tg.T[base+(5+c)*hw+p] == 1 {
					n[l]++
				}
			}
		}
		return n
	}
	px := func(x0, y0, x1, y1 float32, c int) Box {
		return Box{X0: x0 / 320, Y0: y0 / 320, X1: x1 / 320, Y1: y1 / 320, Class: c}
	}
	tg := EncodeTargets(a, [][]Box{
		{px(100, 100, 108, 108, 0)},                      // 8 px
		{px(0, 0, 320, 320, 1)},                          // the whole frame
		{px(64, 64, 160, 128, 2)},                        // 96×64: largest distance 48 at the centre
		{px(4, 4, 12, 12, 0), px(180, 180, 190, 183, 3)}, // 8 px at the corner; a 10×3 sliver
	})
	if n := assigned(tg, 0, 0); n[0] < 1 || n[1]+n[2] != 0 {
		t.Errorf("8 px box assigned %v, want stride 8 only", n)
	}
	if n := assigned(tg, 1, 1); n[2] < 9 || n[0]+n[1] != 0 {
		t.Errorf("whole frame assigned %v, want stride 32 only, several points", n)
	}
	if n := assigned(tg, 2, 2); n[0] < 9 {
		t.Errorf("96×64 box assigned %v, want points on stride 8", n)
	}
	if n := assigned(tg, 3, 0); n[0] < 1 {
		t.Errorf("corner box assigned %v", n)
	}
	if n := assigned(tg, 3, 3); n[0]+n[1]+n[2] < 1 {
		t.Errorf("sliver assigned %v", n)
	}

	// 100 boxes of 8 to 24 px on a grid: each gets points, and perfect predictions
	// decode back to every box.
	var many []Box
	r := rand.New(rand.NewPCG(3, 3))
	for i := 0; i < 10; i++ {
		for j := 0; j < 10; j++ {
			w, h := 8+r.Float32()*16, 8+r.Float32()*16
			x, y := float32(j*32)+r.Float32()*(31-w), float32(i*32)+r.Float32()*(31-h)
			many = append(many, px(x, y, x+w, y+h, r.IntN(4)))
		}
	}
	tg = EncodeTargets(a, [][]Box{many})
	out := perfect(a, tg)
	dets := Suppression{IoU: 0.5, MaxDetections: 300}.Apply(Decode(a, out, 0.5))
	if len(dets) != 100 {
		t.Fatalf("decoded %d boxes from 100", len(dets))
	}
	for _, b := range many {
		best := float32(0)
		for _, d := range dets {
			if d.Class == b.Class {
				best = max(best, IoU(d.Box, b))
			}
		}
		if best < 0.9 {
			t.Errorf("box %+v: best decoded IoU %v", b, best)
		}
	}

	// NaN outputs (a diverged model) decode to no box.
	nan := make([]float32, len(out))
	for i := range nan {
		nan[i] = float32(math.NaN())
	}
	if d := Decode(a, nan, 0.01); len(d) != 0 {
		t.Fatalf("NaN outputs decoded to %d boxes", len(d))
	}

	// A point inside two boxes belongs to the smaller.
	big, small := px(100, 100, 200, 200, 0), px(140, 140, 160, 160, 1)
	tg = EncodeTargets(a, [][]Box{{big, small}})
	m := maps[0]
	hw := m.H * m.W
	p := 18*m.W + 18 // the point at (148, 148), inside both
	if tg.T[m.Offset+6*hw+p] != 1 || tg.T[m.Offset+5*hw+p] != 0 {
		t.Errorf("shared point: class targets %v %v, want the small box's class", tg.T[m.Offset+5*hw+p], tg.T[m.Offset+6*hw+p])
	}
	// Rescue: a 10×10 box whose one point (108, 108) goes to a smaller box takes it back
	// when the smaller box keeps another, (108, 116); a 9×9 box whose one point goes to
	// an 8×8 box with no other takes the free point nearest its centre, (108, 100).
	tg = EncodeTargets(a, [][]Box{{px(100, 100, 110, 110, 1), px(106, 104, 111, 117, 2)}, {px(100, 100, 109, 109, 1), px(104, 104, 112, 112, 2)}})
	at := func(img, x, y int) int { return img*a.OutputSize() + m.Offset + (y/8)*m.W + x/8 }
	if tg.T[at(0, 108, 108)+6*hw] != 1 || tg.T[at(0, 108, 116)+7*hw] != 1 || assigned(tg, 0, 2) != [3]int{1, 0, 0} {
		t.Errorf("stolen back: 10×10 box %v, smaller box %v; want (108, 108) and (108, 116)", assigned(tg, 0, 1), assigned(tg, 0, 2))
	}
	if tg.T[at(1, 108, 108)+7*hw] != 1 || tg.T[at(1, 108, 100)+6*hw] != 1 || assigned(tg, 1, 1) != [3]int{1, 0, 0} {
		t.Errorf("free point: 9×9 box %v, 8×8 box %v; want (108, 100) and (108, 108)", assigned(tg, 1, 1), assigned(tg, 1, 2))
	}
	// Bad boxes (unknown class, empty) are left out, not a panic.
	tg = EncodeTargets(a, [][]Box{{{X0: .5, Y0: .5, X1: .4, Y1: .6}, {X0: .1, Y0: .1, X1: .2, Y1: .2, Class: 9}}})
	for i, v := range tg.T {
		if v != 0 {
			t.Fatalf("target %d set for bad boxes", i)
		}
	}
}

// perfect is the output a perfect model gives for targets tg of one image: confident
// objectness and class at the assigned points, the target distances.
func perfect(a Arch, tg *DetTargets) []float32 {
	out := make([]float32, a.OutputSize())
	for _, m := range a.LevelMaps() {
		hw := m.H * m.W
		for p := 0; p < hw; p++ {
			o := m.Offset + p
			for c := 0; c < DetectOut(a.Classes); c++ {
				out[o+c*hw] = -12
			}
			if tg.T[o] != 1 {
				continue
			}
			out[o] = 12
			for c := 0; c < a.Classes; c++ {
				if tg.T[o+(5+c)*hw] == 1 {
					out[o+(5+c)*hw] = 12
				}
			}
			for k := 1; k <= 4; k++ {
				out[o+k*hw] = float32(math.Log(max(1e-3, float64(tg.B[o+k*hw]))))
			}
		}
	}
	return out
}

// TestSuppressionOptions: class-wise by default, class-agnostic when asked, and at most
// MaxDetections boxes, the best.
func TestSuppressionOptions(t *testing.T) {
	d := func(x0, score float32, class int) Detection {
		return Detection{Box: Box{X0: x0, Y0: 0, X1: x0 + .4, Y1: .4, Class: class}, Score: score}
	}
	dets := []Detection{d(0, .9, 0), d(.01, .8, 1), d(.5, .7, 0), d(.6, .6, 2)}
	if got := (Suppression{IoU: .5}).Apply(dets); len(got) != 4 {
		t.Errorf("class-wise kept %d, want 4", len(got))
	}
	if got := (Suppression{IoU: .5, ClassAgnostic: true}).Apply(dets); len(got) != 2 || got[0].Score != .9 || got[1].Score != .7 {
		t.Errorf("class-agnostic kept %+v", got)
	}
	if got := (Suppression{IoU: .5, MaxDetections: 2}).Apply(dets); len(got) != 2 || got[1].Score != .8 {
		t.Errorf("max 2 kept %+v", got)
	}
}

// TestRemapClassesMultiScale: growing a multi-scale detector's classes keeps the old
// classes' units at every level and adds new ones at the prior's bias.
func TestRemapClassesMultiScale(t *testing.T) {
	a, _ := DetectorFamily(MobileNetV2, "n", 64, 64, 1, 2)
	p, _ := InitParams(a, 1)
	b, q, err := RemapClasses(a, p, []string{"cat", "dog"}, []string{"dog", "cow", "cat"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if b.Classes != 3 || b.OutputSize() != a.OutputSize()/7*8 {
		t.Fatalf("remapped: %d classes, output %d", b.Classes, b.OutputSize())
	}
	for _, l := range b.Levels {
		for ti, s := range q.Specs {
			if s.Layer != l.Cls {
				continue
			}
			old := p.Values[ti]
			if s.Bias {
				if q.Values[ti][0] != old[1] || q.Values[ti][2] != old[0] || math.Abs(float64(q.Values[ti][1]-priorBias())) > 1e-6 {
					t.Fatalf("level %d class biases %v from %v", l.Stride, q.Values[ti], old)
				}
				continue
			}
			per := len(old) / 2
			if !reflect.DeepEqual(q.Values[ti][:per], old[per:]) || !reflect.DeepEqual(q.Values[ti][2*per:], old[:per]) {
				t.Fatalf("level %d class weights not carried over", l.Stride)
			}
		}
	}
}

// TestFamilyFor: the model setting gives the classifier or the detector of a family.
func TestFamilyFor(t *testing.T) {
	c, err := FamilyFor(Classify, MobileNetV2, "s", "", 160, 160, 3, 5)
	if err != nil || c.Task != Classify || len(c.Levels) != 0 {
		t.Fatalf("classify: %v %v", c.Name, err)
	}
	d, err := FamilyFor(Detect, MobileNetV2, "s", "", 320, 256, 3, 5)
	if err != nil || d.Task != Detect || len(d.Levels) != 3 || d.InW != 320 || d.InH != 256 {
		t.Fatalf("detect: %v %v", d.Name, err)
	}
	if _, err := FamilyFor("segment", MobileNetV2, "s", "", 320, 256, 3, 5); err == nil {
		t.Fatal("unknown task accepted")
	}
}

// TestDetectorPyramidP2: the P2 pyramid adds a stride-4 level before the P3 levels,
// its maps tile the output, its trunk is the family's, it keeps its pyramid in its name
// and JSON, and it gives an 8-px box four points where P3 gives one; the P3 network is
// the one models were saved with before P2, and an unknown pyramid is refused.
func TestDetectorPyramidP2(t *testing.T) {
	p3, err := DetectorFamily(MobileNetV2, "n", 320, 256, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	// The P3 networks are those saved before P2 existed, layer for layer (the sha256 of
	// their JSON then, at 320×256 RGB with 8 classes), so old model files still load.
	for size, want := range map[string]string{
		"n": "130529933e8973102c29d8af3f8dc651d4f614362deb3f42122e2d5d283b90c2",
		"s": "4b61d63afcd1b51cc84c3bc9c6a232038eb85665248d8b0969ee15d17e8c56e8",
		"m": "7b903417c6f8ea40c3ee763e68e764b6052e60b23fd17e8798542c853061c036",
	} {
		for _, pyr := range []string{"", PyramidP3} {
			a, err := DetectorPyramid(MobileNetV2, size, pyr, 320, 256, 3, 8)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(a)
			if got := fmt.Sprintf("%x", sha256.Sum256(raw)); got != want {
				t.Fatalf("%s pyramid %q: JSON sha256 %s, want %s (the P3 layout changed)", size, pyr, got, want)
			}
		}
	}
	a, err := DetectorPyramid(MobileNetV2, "n", PyramidP2, 320, 256, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "mobilenetv2-n-det-p2" {
		t.Fatalf("name %q", a.Name)
	}
	total := 0
	for i, m := range a.LevelMaps() {
		if want := []int{4, 8, 16, 32}[i]; m.Stride != want || m.W != 320/want || m.H != 256/want || m.Offset != total {
			t.Fatalf("level %d: %+v", i, m)
		}
		total += DetectOut(4) * m.H * m.W
	}
	if len(a.Levels) != 4 || a.OutputSize() != total {
		t.Fatalf("%d levels, output %d, levels hold %d", len(a.Levels), a.OutputSize(), total)
	}
	if a.HeadFrom != p3.HeadFrom || !reflect.DeepEqual(a.Layers[:a.HeadFrom], p3.Layers[:p3.HeadFrom]) {
		t.Fatal("the P2 trunk differs from the P3 one")
	}
	_, p2MACs, _ := a.Cost()
	_, p3MACs, _ := p3.Cost()
	if p2MACs <= p3MACs || p2MACs > 2*p3MACs {
		t.Errorf("P2 %d MACs against P3 %d", p2MACs, p3MACs)
	}
	t.Logf("P2 %.0fM MACs, P3 %.0fM", float64(p2MACs)/1e6, float64(p3MACs)/1e6)
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var back Arch
	if err := json.Unmarshal(data, &back); err != nil || !reflect.DeepEqual(back.Levels, a.Levels) {
		t.Fatalf("JSON round trip: %v", err)
	}
	if _, _, err := back.Graph(); err != nil {
		t.Fatal(err)
	}
	// Points per 8-px box, by level.
	points := func(a Arch) []int {
		box := Box{X0: 100.0 / 320, Y0: 100.0 / 256, X1: 108.0 / 320, Y1: 108.0 / 256, Class: 1}
		tg := EncodeTargets(a, [][]Box{{box}})
		var n []int
		for _, m := range a.LevelMaps() {
			k := 0
			for p := 0; p < m.H*m.W; p++ {
				k += int(tg.T[m.Offset+p])
			}
			n = append(n, k)
		}
		return n
	}
	if n := points(p3); !reflect.DeepEqual(n, []int{1, 0, 0}) {
		t.Errorf("P3 assigned the 8-px box %v", n)
	}
	if n := points(a); !reflect.DeepEqual(n, []int{4, 0, 0, 0}) {
		t.Errorf("P2 assigned the 8-px box %v, want 4 points at stride 4", n)
	}
	if _, err := DetectorPyramid(MobileNetV2, "n", "p1", 320, 256, 3, 4); err == nil || !strings.Contains(err.Error(), `pyramid "p1" unknown`) {
		t.Errorf("pyramid p1: %v", err)
	}
}
