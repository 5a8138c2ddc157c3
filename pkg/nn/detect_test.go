package nn

import (
	"math"
	"testing"
)

func TestIoUEdgeCases(t *testing.T) {
	b := func(x0, y0, x1, y1 float32) Box { return Box{X0: x0, Y0: y0, X1: x1, Y1: y1} }
	cases := []struct {
		name string
		a, b Box
		want float32
	}{
		{"identical", b(.1, .1, .5, .5), b(.1, .1, .5, .5), 1},
		{"disjoint", b(0, 0, .2, .2), b(.5, .5, .7, .7), 0},
		{"touching edges", b(0, 0, .5, .5), b(.5, 0, 1, .5), 0},
		{"contained quarter", b(0, 0, 1, 1), b(0, 0, .5, .5), .25},
		{"half overlap", b(0, 0, .4, .2), b(.2, 0, .6, .2), 1.0 / 3},
		{"zero-area box", b(.3, .3, .3, .6), b(0, 0, 1, 1), 0},
		{"inverted box", b(.5, .5, .1, .1), b(0, 0, 1, 1), 0},
	}
	for _, c := range cases {
		if got := IoU(c.a, c.b); math.Abs(float64(got-c.want)) > 1e-6 {
			t.Errorf("%s: IoU %v, want %v", c.name, got, c.want)
		}
		if IoU(c.a, c.b) != IoU(c.b, c.a) {
			t.Errorf("%s: not symmetric", c.name)
		}
	}
}

func TestNMS(t *testing.T) {
	d := func(x0 float32, score float32, class int) Detection {
		return Detection{Box: Box{X0: x0, Y0: 0, X1: x0 + .4, Y1: .4, Class: class}, Score: score}
	}
	t.Run("suppresses overlaps of the same class only", func(t *testing.T) {
		got := NMS([]Detection{d(0, .6, 0), d(.02, .9, 0), d(.01, .8, 1), d(.5, .5, 0)}, .5)
		if len(got) != 3 || got[0].Score != .9 || got[1].Class != 1 || got[2].X0 != .5 {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("ties keep the earlier box", func(t *testing.T) {
		got := NMS([]Detection{d(.02, .7, 0), d(0, .7, 0)}, .5)
		if len(got) != 1 || got[0].X0 != .02 {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("threshold is exclusive", func(t *testing.T) {
		// IoU of these two is exactly 1/3: kept at threshold 1/3.
		a := Detection{Box: Box{X0: 0, Y0: 0, X1: .4, Y1: .2}, Score: .9}
		b := Detection{Box: Box{X0: .2, Y0: 0, X1: .6, Y1: .2}, Score: .8}
		if got := NMS([]Detection{a, b}, IoU(a.Box, b.Box)); len(got) != 2 {
			t.Fatalf("%+v", got)
		}
	})
}

// TestEncodeDecodeRoundTrip: targets decoded as if they were perfect predictions give
// back the boxes.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	a := DetectorArch(10)
	boxes := []Box{{X0: .1, Y0: .15, X1: .3, Y1: .45, Class: 3}, {X0: .6, Y0: .5, X1: .9, Y1: .95, Class: 7}}
	tg := EncodeTargets(a, [][]Box{boxes})
	s := a.Grid()
	out := make([]float32, len(tg.T))
	logit := func(p float32) float32 { return float32(math.Log(float64(p) / float64(1-p))) }
	for i := range out {
		ch := i / (s * s)
		switch {
		case ch == 0 || ch >= 5:
			out[i] = -12
			if tg.T[i] == 1 {
				out[i] = 12
			}
		default:
			out[i] = logit(min(0.999, max(0.001, tg.B[i])))
		}
	}
	dets := NMS(Decode(a, out, 0.5), 0.5)
	if len(dets) != 2 {
		t.Fatalf("decoded %d boxes: %+v", len(dets), dets)
	}
	for _, want := range boxes {
		found := false
		for _, d := range dets {
			if d.Class == want.Class && IoU(d.Box, want) > 0.98 {
				found = true
			}
		}
		if !found {
			t.Errorf("box %+v not recovered from %+v", want, dets)
		}
	}
}

func TestArchitectures(t *testing.T) {
	for _, a := range []Arch{ClassifierArch(10), DetectorArch(10)} {
		specs, out, err := a.Analyse()
		if err != nil {
			t.Fatal(err)
		}
		p, _ := InitParams(a, 1)
		t.Logf("%s: %d tensors, %d weights, output %v", a.Name, len(specs), p.Count(), out)
	}
	bad := ClassifierArch(10)
	bad.Layers = bad.Layers[:6] // no flatten/dense: output is a map
	if _, _, err := bad.Analyse(); err == nil {
		t.Fatal("a classifier without its dense layers was accepted")
	}
}
