package train

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// TestBatchDoesNotDependOnCores: makeBatch prepares images in parallel, each from its
// own stream drawn from the batch's, so an augmented batch (mosaic, HSV, warps) and
// its targets are the same on one core and on four.
func TestBatchDoesNotDependOnCores(t *testing.T) {
	g, err := colourscenes.New(colourscenes.LoadPhotos(t.TempDir(), nil))
	if err != nil {
		t.Fatal(err)
	}
	none, _ := drift.Get(drift.None)
	sc, err := g.Scenes(colourscenes.SceneConfig{W: 64, H: 64, Classes: 4}, 12, 1, none)
	if err != nil {
		t.Fatal(err)
	}
	samples := make([]Sample, len(sc))
	for i, s := range sc {
		samples[i] = Sample{Image: s.Image, Boxes: s.Boxes}
	}
	a, err := nn.DetectorFamily(nn.MobileNetV2, "n", 64, 64, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	idx := []int{3, 0, 7, 11, 5, 2}
	batch := func(procs int, aug augment.Config, r *rand.Rand) *nn.Batch {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		return makeBatch(a, samples, idx, aug, aug, r)
	}
	aug := augment.Colour(nn.Detect)
	one := batch(1, aug, rand.New(rand.NewPCG(1, 2)))
	four := batch(4, aug, rand.New(rand.NewPCG(1, 2)))
	if !slices.Equal(one.X, four.X) || !slices.Equal(one.Det.T, four.Det.T) || !slices.Equal(one.Det.B, four.Det.B) {
		t.Fatal("the same augmented batch differs on 1 and 4 cores")
	}
	plain := batch(4, augment.None(), nil)
	if slices.Equal(plain.X, one.X) {
		t.Fatal("colour augmentation left the batch unchanged: the test compares nothing")
	}
	if n := a.InputSize(); !slices.Equal(plain.X[n:2*n], batch(1, augment.None(), nil).X[n:2*n]) {
		t.Fatal("an unaugmented image differs between runs")
	}
}

// A Sample.Strong example is augmented by the strong pipeline, the others by the
// pipeline: with augmentation off and a strong view on, only the strong one changes.
func TestStrongSamplesGetTheStrongView(t *testing.T) {
	a := nn.ClassifierArch(10)
	im := raster.New(28, 28)
	for i := range im.Pix {
		im.Pix[i] = float32(i%7) / 7
	}
	samples := []Sample{{Image: im, Label: 1}, {Image: im, Label: 2, Strong: true}}
	b := makeBatch(a, samples, []int{0, 1}, augment.None(), augment.Default().Strong(), rand.New(rand.NewPCG(1, 2)))
	plain := makeBatch(a, samples, []int{0, 1}, augment.None(), augment.None(), nil)
	n := a.InputSize()
	if !slices.Equal(b.X[:n], plain.X[:n]) {
		t.Fatal("a plain sample was augmented with augmentation off")
	}
	if slices.Equal(b.X[n:], plain.X[n:]) {
		t.Fatal("a strong sample was not augmented by the strong view")
	}
}

// mirrorFixture is a classifier of circle, left-arrow, right-arrow and K, an image that
// a mirror turns round (a left-to-right ramp), and the mirror setting that never
// mirrors K and swaps the arrows.
func mirrorFixture(t *testing.T) (nn.Arch, *raster.Image, augment.Mirror) {
	t.Helper()
	classes := []string{"circle", "left-arrow", "right-arrow", "K"}
	im := raster.New(28, 28)
	for i := range im.Pix {
		im.Pix[i] = float32(i%28) / 28
	}
	mirror, err := augment.Mirroring{Never: []string{"K"}, Pairs: [][2]string{{"left-arrow", "right-arrow"}}}.Resolve(classes)
	if err != nil {
		t.Fatal(err)
	}
	return nn.ClassifierArch(len(classes)), im, mirror
}

// A batch's labels are the images' as augmented: a horizontal flip mirrors a
// left-arrow into a right-arrow (the project's mirror pairs) and never mirrors a class
// the project's mirror.never names, in the strong view too.
func TestBatchLabelsFollowTheMirror(t *testing.T) {
	a, im, mirror := mirrorFixture(t)
	aug := augment.Config{FlipH: augment.Op{P: 1}, Mirror: mirror}
	samples := []Sample{{Image: im, Label: 0}, {Image: im, Label: 1}, {Image: im, Label: 2, Strong: true}, {Image: im, Label: 3}}
	b := makeBatch(a, samples, []int{0, 1, 2, 3}, aug, aug.Strong(), rand.New(rand.NewPCG(1, 2)))
	if !slices.Equal(b.Labels, []int{0, 2, 1, 3}) {
		t.Fatalf("labels of the flipped batch %v, want [0 2 1 3] (the arrows swapped)", b.Labels)
	}
	plain := makeBatch(a, samples, []int{0, 1, 2, 3}, augment.None(), augment.None(), nil)
	n := a.InputSize()
	if slices.Equal(b.X[:n], plain.X[:n]) || !slices.Equal(b.X[3*n:], plain.X[3*n:]) {
		t.Fatal("want the circle mirrored and the K left as it is")
	}
}

// A caller's own strong view flips as the Augment's mirror setting says: withDefaults
// gives it Augment.Mirror, and leaves the caller's Config as it was.
func TestCallersStrongViewKeepsTheMirror(t *testing.T) {
	a, im, mirror := mirrorFixture(t)
	strong := augment.Config{FlipH: augment.Op{P: 1}} // no mirror setting of its own
	cfg := Config{Augment: augment.Config{Mirror: mirror}, Strong: &strong}.withDefaults()
	samples := []Sample{{Image: im, Label: 1, Strong: true}, {Image: im, Label: 3, Strong: true}}
	b := makeBatch(a, samples, []int{0, 1}, cfg.Augment, *cfg.Strong, rand.New(rand.NewPCG(1, 2)))
	if !slices.Equal(b.Labels, []int{2, 3}) {
		t.Fatalf("labels of the strong view %v, want [2 3] (the arrow swapped, K kept)", b.Labels)
	}
	plain := makeBatch(a, samples, []int{0, 1}, augment.None(), augment.None(), nil)
	if n := a.InputSize(); !slices.Equal(b.X[n:], plain.X[n:]) {
		t.Fatal("the strong view mirrored a K")
	}
	if cfg.Strong == &strong {
		t.Fatal("withDefaults changed the caller's strong view")
	}
}
