package augment

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

var mirrorClasses = []string{"circle", "K", "left-arrow", "right-arrow", "square"}

func resolve(t *testing.T, m Mirroring) Mirror {
	t.Helper()
	r, err := m.Resolve(mirrorClasses)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// mirrored reports whether out is im mirrored left to right (every pixel of every
// channel), as opposed to left as it was.
func mirrored(t *testing.T, c Config, label int, boxes []nn.Box, seed uint64) (bool, int, []nn.Box) {
	t.Helper()
	im := colourImage(12, 8)
	out, l, ob := c.ApplyLabelled(im, label, boxes, rand.New(rand.NewPCG(seed, 5)))
	if slices.Equal(out.Pix, im.Pix) {
		return false, l, ob
	}
	for ch := 0; ch < 3; ch++ {
		for y := 0; y < 8; y++ {
			for x := 0; x < 12; x++ {
				if !near(out.Plane(ch).Pix[y*12+x], im.Plane(ch).Pix[y*12+11-x], 1e-5) {
					t.Fatalf("seed %d: the image is neither itself nor its mirror", seed)
				}
			}
		}
	}
	return true, l, ob
}

// An image that shows a class of mirror.never — as its label or in any of its boxes —
// is never mirrored over many draws of a flip at p 0.5; the others are, about half the
// time.
func TestNeverMirroredClassIsNeverFlipped(t *testing.T) {
	c := Config{FlipH: Op{P: 0.5}, Mirror: resolve(t, Mirroring{Never: []string{"K"}})}
	withK := []nn.Box{{X0: 0.1, Y0: 0.1, X1: 0.4, Y1: 0.5, Class: 0}, {X0: 0.5, Y0: 0.5, X1: 0.9, Y1: 0.9, Class: 1}}
	withoutK := []nn.Box{{X0: 0.1, Y0: 0.1, X1: 0.4, Y1: 0.5, Class: 0}, {X0: 0.5, Y0: 0.5, X1: 0.9, Y1: 0.9, Class: 4}}
	flips := map[string]int{}
	for seed := range uint64(400) {
		for name, k := range map[string]struct {
			label int
			boxes []nn.Box
		}{"label K": {1, nil}, "box K": {-1, withK}, "label circle": {0, nil}, "boxes without K": {-1, withoutK}} {
			m, l, ob := mirrored(t, c, k.label, k.boxes, seed)
			if m {
				flips[name]++
			}
			if l != k.label || len(ob) != len(k.boxes) {
				t.Fatalf("%s: label %d boxes %+v, want the label and boxes kept", name, l, ob)
			}
		}
	}
	if flips["label K"] != 0 || flips["box K"] != 0 {
		t.Fatalf("a never-mirrored class was mirrored: %v of 400 draws", flips)
	}
	if n := flips["label circle"]; n < 150 || n > 250 {
		t.Fatalf("a symmetric class was mirrored %d of 400 times at p 0.5", n)
	}
	if n := flips["boxes without K"]; n < 150 || n > 250 {
		t.Fatalf("an image without a never-mirrored class was mirrored %d of 400 times at p 0.5", n)
	}
	// A vertical flip mirrors too: it leaves K alone, and turns a paired class upside
	// down as itself (a left-arrow upside down still points left).
	c = Config{FlipV: Op{P: 1}, Mirror: resolve(t, Mirroring{Never: []string{"K"}, Pairs: [][2]string{{"left-arrow", "right-arrow"}}})}
	im := colourImage(12, 8)
	if out, _, _ := c.ApplyLabelled(im, 1, nil, rng()); !slices.Equal(out.Pix, im.Pix) {
		t.Fatal("flip_v turned class K upside down")
	}
	for _, label := range []int{2, 3} {
		box := []nn.Box{{X0: 0.25, Y0: 0.125, X1: 0.5, Y1: 0.5, Class: label}}
		out, l, ob := c.ApplyLabelled(im, label, box, rng())
		if slices.Equal(out.Pix, im.Pix) || l != label || len(ob) != 1 || ob[0].Class != label || !near(ob[0].Y0, 0.5, 1e-5) || !near(ob[0].Y1, 0.875, 1e-5) {
			t.Fatalf("flip_v of %s: flipped %v, label %d, boxes %+v; want it upside down as itself, box at y 0.5–0.875",
				mirrorClasses[label], !slices.Equal(out.Pix, im.Pix), l, ob)
		}
	}
}

// A horizontal flip swaps a pair's classes, in a classification label and in boxes,
// the boxes' x-coordinates mirrored; classes outside the pair keep theirs.
func TestPairSwapsLabelsAndBoxes(t *testing.T) {
	c := Config{FlipH: Op{P: 1}, Mirror: resolve(t, Mirroring{Pairs: [][2]string{{"left-arrow", "right-arrow"}}})}
	for label, want := range map[int]int{2: 3, 3: 2, 0: 0} {
		if m, l, _ := mirrored(t, c, label, nil, 1); !m || l != want {
			t.Fatalf("label %s flipped: mirrored %v, label %d, want %s", mirrorClasses[label], m, l, mirrorClasses[want])
		}
	}
	boxes := []nn.Box{
		{X0: 0.125, Y0: 0.25, X1: 0.5, Y1: 0.75, Class: 2},
		{X0: 0.5, Y0: 0.125, X1: 0.75, Y1: 0.5, Class: 3},
		{X0: 0.25, Y0: 0.5, X1: 0.5, Y1: 1, Class: 0},
	}
	in := slices.Clone(boxes)
	m, _, ob := mirrored(t, c, -1, boxes, 1)
	if !m || len(ob) != 3 {
		t.Fatalf("mirrored %v, boxes %+v", m, ob)
	}
	want := []nn.Box{
		{X0: 0.5, Y0: 0.25, X1: 0.875, Y1: 0.75, Class: 3},
		{X0: 0.25, Y0: 0.125, X1: 0.5, Y1: 0.5, Class: 2},
		{X0: 0.5, Y0: 0.5, X1: 0.75, Y1: 1, Class: 0},
	}
	for i, w := range want {
		g := ob[i]
		if g.Class != w.Class || !near(g.X0, w.X0, 1e-5) || !near(g.X1, w.X1, 1e-5) || !near(g.Y0, w.Y0, 1e-5) || !near(g.Y1, w.Y1, 1e-5) {
			t.Fatalf("box %d flipped to %+v, want %+v", i, g, w)
		}
	}
	if !slices.Equal(boxes, in) {
		t.Fatalf("the flip changed the caller's boxes: %+v", boxes)
	}
	// Without a flip nothing swaps.
	c.FlipH = Op{}
	if _, l, ob := c.ApplyLabelled(colourImage(12, 8), 2, boxes, rng()); l != 2 || ob[0].Class != 2 || ob[1].Class != 3 {
		t.Fatalf("no flip, yet label %d boxes %+v", l, ob)
	}
}

// The mirror setting draws the same random numbers as no setting: the pipeline's other
// operations are the same whichever classes a project may mirror.
func TestMirrorDoesNotShiftTheRandomDraws(t *testing.T) {
	c := Colour(nn.Detect)
	c.FlipH = Op{P: 0.5}
	boxes := []nn.Box{{X0: 0.2, Y0: 0.2, X1: 0.6, Y1: 0.7, Class: 1}}
	never := c
	never.Mirror = resolve(t, Mirroring{Never: []string{"K"}})
	for seed := range uint64(20) {
		im := colourImage(32, 24)
		ra, rb := rand.New(rand.NewPCG(seed, 1)), rand.New(rand.NewPCG(seed, 1))
		c.ApplyLabelled(im, -1, boxes, ra)
		never.ApplyLabelled(im, -1, boxes, rb)
		if ra.Uint64() != rb.Uint64() {
			t.Fatalf("seed %d: the mirror setting changed the number of random draws", seed)
		}
	}
}

func TestMirroringRefusesBadSettings(t *testing.T) {
	for _, c := range []struct {
		m    Mirroring
		want string
	}{
		{Mirroring{Never: []string{"Q"}}, `mirror.never: class "Q" is not one`},
		{Mirroring{Pairs: [][2]string{{"left-arrow", "up-arrow"}}}, `mirror.pairs: class "up-arrow" is not one`},
		{Mirroring{Pairs: [][2]string{{"circle", "circle"}}}, `mirror.pairs: class "circle" is paired with itself`},
		{Mirroring{Pairs: [][2]string{{"left-arrow", "right-arrow"}, {"square", "left-arrow"}}}, `mirror.pairs: class "left-arrow" is in two pairs`},
		{Mirroring{Never: []string{"K"}, Pairs: [][2]string{{"K", "square"}}}, `mirror.pairs: class "K" is in a pair and in mirror.never`},
	} {
		if _, err := c.m.Resolve(mirrorClasses); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%+v: error %v, want %q", c.m, err, c.want)
		}
	}
	m := Mirroring{Never: []string{"K", "square"}, Pairs: [][2]string{{"left-arrow", "right-arrow"}}}
	if _, err := m.Resolve(mirrorClasses); err != nil {
		t.Fatal(err)
	}
	if w := m.Without("right-arrow").Without("K"); !slices.Equal(w.Never, []string{"square"}) || len(w.Pairs) != 0 {
		t.Fatalf("without right-arrow and K: %+v", w)
	}
}
