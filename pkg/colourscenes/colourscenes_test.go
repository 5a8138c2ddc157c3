package colourscenes

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// photos are loaded once for the package's tests.
var photos = sync.OnceValue(func() *Photos { return LoadPhotos("", zap.NewNop()) })

// generator uses the installed photographs when there are (deploy/local/photos.sh), else
// procedural backgrounds: every test holds either way.
func generator(t testing.TB) *Generator {
	t.Helper()
	g, err := New(photos())
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func none() drift.Preset { return drift.Preset{Name: drift.None} }

func TestSameSeedSameData(t *testing.T) {
	g := generator(t)
	c := SceneConfig{W: 320, H: 240}
	a, err := g.Scenes(c, 6, 42, none())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := g.Scenes(c, 6, 42, none())
	other, _ := g.Scenes(c, 6, 43, none())
	for i := range a {
		if !slices.Equal(a[i].Image.Pix, b[i].Image.Pix) || !slices.Equal(a[i].Boxes, b[i].Boxes) {
			t.Fatalf("scene %d differs between two runs of seed 42", i)
		}
		if slices.Equal(a[i].Image.Pix, other[i].Image.Pix) {
			t.Fatalf("scene %d is the same for seeds 42 and 43", i)
		}
	}
	ca, _ := g.Classification(ClassifyConfig{}, 5, 7, none())
	cb, _ := g.Classification(ClassifyConfig{}, 5, 7, none())
	for i := range ca {
		if !slices.Equal(ca[i].Image.Pix, cb[i].Image.Pix) || ca[i].Label != cb[i].Label {
			t.Fatalf("classification image %d differs between two runs of one seed", i)
		}
	}
}

// Every box lies in the frame, holds all of its object's ink and touches it on each
// side; no object is hidden beyond MaxHidden. Dense scenes place all of their 100
// objects: small ones (8–40 px) at 640×480, and ones of the default sizes (up to 80 %
// of the frame), which the crowd makes smaller, at 640×480 and 320×240.
func TestBoxesInsideFrameAndCoverTheirObject(t *testing.T) {
	g := generator(t)
	for _, tc := range []struct {
		c      SceneConfig
		scenes int
	}{
		{SceneConfig{W: 320, H: 240}, 20},
		{SceneConfig{W: 640, H: 480, MaxObjects: 30}, 20},
		{SceneConfig{W: 640, H: 480, MinObjects: 100, MaxObjects: 100, MinSize: 8, MaxSize: 40}, 20},
		{SceneConfig{W: 640, H: 480, MinObjects: 100, MaxObjects: 100}, 3},
		{SceneConfig{W: 320, H: 240, MinObjects: 100, MaxObjects: 100}, 3},
	} {
		c := tc.c.withDefaults()
		for s := 0; s < tc.scenes; s++ {
			r := rand.New(rand.NewPCG(9, uint64(s)))
			im, objs, dropped := g.layout(c, SiteHome, r, none())
			if im.W != c.W || im.H != c.H || im.Channels() != 3 {
				t.Fatalf("scene is %dx%dx%d, want %dx%dx3", im.W, im.H, im.Channels(), c.W, c.H)
			}
			if c.MinObjects == 100 && (len(objs) != 100 || dropped != 0) {
				t.Fatalf("%dx%d, %d–%d px, scene %d: %d of 100 objects placed, %d dropped",
					c.W, c.H, c.MinSize, c.MaxSize, s, len(objs), dropped)
			}
			for k, o := range objs {
				b := o.box(c.W, c.H)
				if b.X0 < 0 || b.Y0 < 0 || b.X1 > 1 || b.Y1 > 1 || b.X1 <= b.X0 || b.Y1 <= b.Y0 {
					t.Fatalf("scene %d object %d: box %+v outside the frame", s, k, b)
				}
				bx0, by0, bx1, by1 := o.x+o.x0, o.y+o.y0, o.x+o.x1, o.y+o.y1
				var left, right, top, bottom bool
				o.each(c.W, c.H, func(i int, a float32) {
					if a < 0.5 {
						return
					}
					x, y := i%c.W, i/c.W
					if x < bx0 || x >= bx1 || y < by0 || y >= by1 {
						t.Fatalf("scene %d object %d: ink at (%d,%d) outside its box [%d,%d)x[%d,%d)", s, k, x, y, bx0, bx1, by0, by1)
					}
					left, right, top, bottom = left || x == bx0, right || x == bx1-1, top || y == by0, bottom || y == by1-1
				})
				if !left || !right || !top || !bottom {
					t.Fatalf("scene %d object %d: box not tight (ink on left %v right %v top %v bottom %v)", s, k, left, right, top, bottom)
				}
				if float64(o.visible) < (1-c.MaxHidden)*float64(o.full)-1e-9 {
					t.Fatalf("scene %d object %d: %d of %d pixels visible, more hidden than %v", s, k, o.visible, o.full, c.MaxHidden)
				}
			}
		}
	}
}

// TestDenseScenesReportWhatDidNotFit: 100 objects of 8–40 px fill a 640×480 scene whole,
// with their boxes and visible shares; 100 objects of 48–64 px cannot all fit in a
// 64×64 scene, and the scene counts those left out.
func TestDenseScenesReportWhatDidNotFit(t *testing.T) {
	g := generator(t)
	sc, err := g.Scenes(SceneConfig{W: 640, H: 480, MinObjects: 100, MaxObjects: 100, MinSize: 8, MaxSize: 40}, 4, 3, none())
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sc {
		if len(s.Boxes) != 100 || len(s.Visible) != 100 || s.Dropped != 0 {
			t.Fatalf("dense scene %d: %d boxes, %d visible shares, %d dropped; want 100, 100, 0", i, len(s.Boxes), len(s.Visible), s.Dropped)
		}
		for k, b := range s.Boxes {
			side := max((b.X1-b.X0)*640, (b.Y1-b.Y0)*480)
			if b.X0 < 0 || b.Y0 < 0 || b.X1 > 1 || b.Y1 > 1 || side < 5 || side > 57 || s.Visible[k] < 0.5 {
				t.Fatalf("dense scene %d object %d: box %+v (%.0f px), visible %v", i, k, b, side, s.Visible[k])
			}
		}
	}
	sc, err = g.Scenes(SceneConfig{W: 64, H: 64, MinObjects: 100, MaxObjects: 100, MinSize: 48, MaxSize: 64}, 2, 3, none())
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sc {
		if s.Dropped == 0 || len(s.Boxes) == 0 || len(s.Boxes)+s.Dropped != 100 {
			t.Fatalf("crowded scene %d: %d placed, %d dropped; want some of each, 100 in all", i, len(s.Boxes), s.Dropped)
		}
	}
}

// The scene reports what layout placed, and an object's pixels carry its colour.
func TestScenesReportTheirObjects(t *testing.T) {
	g := generator(t)
	sc, err := g.Scenes(SceneConfig{W: 320, H: 240, MinObjects: 3, MaxObjects: 3, MinSize: 30, MaxSize: 60}, 10, 5, none())
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sc {
		if len(s.Boxes) == 0 || len(s.Boxes) != len(s.Visible) {
			t.Fatalf("scene %d: %d boxes, %d visibilities", i, len(s.Boxes), len(s.Visible))
		}
		for _, v := range s.Visible {
			if v < 0.5 || v > 1 {
				t.Fatalf("scene %d: visible share %v outside [0.5, 1]", i, v)
			}
		}
	}
}

func TestClassesBalanced(t *testing.T) {
	g := generator(t)
	cls, err := g.Classification(ClassifyConfig{W: 64, H: 48, Classes: 8}, 84, 3, none())
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, 8)
	for _, s := range cls {
		counts[s.Label]++
	}
	for c, n := range counts {
		if n < 10 || n > 11 {
			t.Fatalf("class %d has %d of 84 images, want 10–11: %v", c, n, counts)
		}
	}
	sc, err := g.Scenes(SceneConfig{W: 320, H: 240, Classes: 6}, 150, 3, none())
	if err != nil {
		t.Fatal(err)
	}
	counts = make([]int, 6)
	total := 0
	for _, s := range sc {
		for _, b := range s.Boxes {
			counts[b.Class]++
			total++
		}
	}
	for c, n := range counts {
		if mean := float64(total) / 6; math.Abs(float64(n)-mean) > 0.25*mean {
			t.Fatalf("class %d has %d of %d boxes, more than 25%% off the mean: %v", c, n, total, counts)
		}
	}
}

// Scenes hold objects from about 8 px to most of the frame, several per scene.
func TestSizesAndScales(t *testing.T) {
	g := generator(t)
	for _, sz := range [][2]int{{320, 240}, {640, 480}, {480, 360}} {
		sc, err := g.Scenes(SceneConfig{W: sz[0], H: sz[1]}, 30, 11, none())
		if err != nil {
			t.Fatal(err)
		}
		smallest, largest, objects := math.Inf(1), 0.0, 0
		for _, s := range sc {
			if s.Image.W != sz[0] || s.Image.H != sz[1] || s.Image.Channels() != 3 {
				t.Fatalf("scene %dx%dx%d, want %dx%dx3", s.Image.W, s.Image.H, s.Image.Channels(), sz[0], sz[1])
			}
			for _, b := range s.Boxes {
				side := math.Max(float64(b.X1-b.X0)*float64(sz[0]), float64(b.Y1-b.Y0)*float64(sz[1]))
				smallest, largest = math.Min(smallest, side), math.Max(largest, side)
				objects++
			}
		}
		short := float64(min(sz[0], sz[1]))
		if smallest > 12 || largest < 0.5*short || objects < 30*4 {
			t.Fatalf("%dx%d: objects %.0f–%.0f px, %d in 30 scenes; want some ≤ 12 px, some ≥ %.0f px, ≥ 4 a scene",
				sz[0], sz[1], smallest, largest, objects, 0.5*short)
		}
	}
	for _, sz := range [][2]int{{32, 32}, {96, 64}, {224, 224}} {
		cls, err := g.Classification(ClassifyConfig{W: sz[0], H: sz[1]}, 4, 1, none())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range cls {
			if s.Image.W != sz[0] || s.Image.H != sz[1] || s.Image.Channels() != 3 {
				t.Fatalf("classification image %dx%dx%d, want %dx%dx3", s.Image.W, s.Image.H, s.Image.Channels(), sz[0], sz[1])
			}
			if s.Box.X0 < 0 || s.Box.Y0 < 0 || s.Box.X1 > 1 || s.Box.Y1 > 1 {
				t.Fatalf("classification object outside the image: %+v", s.Box)
			}
		}
	}
}

// Frame draws classes at random and repeats with the random source.
func TestFrameDrawsRandomClasses(t *testing.T) {
	g := generator(t)
	seen := map[int]int{}
	r1, r2 := rand.New(rand.NewPCG(4, 4)), rand.New(rand.NewPCG(4, 4))
	for i := 0; i < 40; i++ {
		a, err := g.Frame(ClassifyConfig{W: 48, H: 48, Classes: 4}, r1, none())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := g.Frame(ClassifyConfig{W: 48, H: 48, Classes: 4}, r2, none())
		if a.Label != b.Label || !slices.Equal(a.Image.Pix, b.Image.Pix) {
			t.Fatal("the same random source gave another frame")
		}
		seen[a.Label]++
	}
	if len(seen) != 4 {
		t.Fatalf("40 frames of %d of 4 classes: %v", len(seen), seen)
	}
}

func TestBadConfigsAreRefused(t *testing.T) {
	g := generator(t)
	for _, c := range []SceneConfig{{W: 20, H: 20}, {Classes: 17}, {MinSize: 50, MaxSize: 20}, {MaxHidden: 1}, {MinObjects: 5, MaxObjects: 2}} {
		if _, err := g.Scenes(c, 1, 1, none()); err == nil {
			t.Errorf("scene config %+v accepted", c)
		}
	}
	if _, err := g.Classification(ClassifyConfig{W: 8, H: 8}, 1, 1, none()); err == nil {
		t.Error("an 8×8 classification image accepted")
	}
}

// Without photographs the generator draws procedural backgrounds and says so.
func TestProceduralBackgroundsWithoutPhotographs(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	p := LoadPhotos(t.TempDir(), zap.New(core))
	if p.Count(SiteHome) != 0 || p.Count(SiteNew) != 0 {
		t.Fatalf("photographs found in an empty dir: %d, %d", p.Count(SiteHome), p.Count(SiteNew))
	}
	if n := logs.FilterMessageSnippet("procedural backgrounds").Len(); n != 2 {
		t.Fatalf("%d log lines about procedural backgrounds, want one per site", n)
	}
	if LoadPhotos(t.TempDir(), zap.New(core), SiteNew); logs.FilterMessageSnippet("procedural backgrounds").Len() != 3 {
		t.Fatal("loading one site did not say that site alone lacks photographs")
	}
	if LoadPhotos("", nil, SiteHome).Count(SiteNew) != 0 {
		t.Fatal("loading the home site loaded the new one too")
	}
	g, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := g.Scenes(SceneConfig{}, 3, 1, none())
	if err != nil || len(sc[0].Boxes) == 0 {
		t.Fatalf("scenes without photographs: %v, %d boxes", err, len(sc[0].Boxes))
	}
	// The sites look different: the new one is more saturated.
	home, newSite := meanSaturation(Procedural(SiteHome, 64, 64, rand.New(rand.NewPCG(1, 1)))), 0.0
	for i := 0; i < 8; i++ {
		newSite += meanSaturation(Procedural(SiteNew, 64, 64, rand.New(rand.NewPCG(1, uint64(i))))) / 8
	}
	if newSite < home {
		t.Fatalf("new site's procedural backgrounds (saturation %.2f) are not more saturated than home's (%.2f)", newSite, home)
	}
}

// A photograph larger than 1024 px is scaled down once and the copy reused.
func TestLargePhotographScaledAndCached(t *testing.T) {
	dir := t.TempDir()
	big := Procedural(SiteHome, 1100, 700, rand.New(rand.NewPCG(1, 2)))
	if err := os.WriteFile(filepath.Join(dir, "astronaut.png"), big.EncodePNG(), 0o644); err != nil {
		t.Fatal(err)
	}
	p := LoadPhotos(dir, zap.NewNop())
	if p.Count(SiteHome) != 1 {
		t.Fatalf("%d home photographs, want 1", p.Count(SiteHome))
	}
	if im := p.bySite[SiteHome][0][0]; im.W != 1024 || im.H != 652 || im.Channels() != 3 {
		t.Fatalf("loaded as %dx%dx%d, want 1024x652x3", im.W, im.H, im.Channels())
	}
	if _, err := os.Stat(filepath.Join(dir, "scaled", "astronaut.png")); err != nil {
		t.Fatalf("no scaled copy: %v", err)
	}
	bg := p.Background(SiteHome, 320, 240, rand.New(rand.NewPCG(3, 3)))
	if bg.W != 320 || bg.H != 240 || bg.Channels() != 3 {
		t.Fatalf("background %dx%dx%d", bg.W, bg.H, bg.Channels())
	}
}

func meanSaturation(im *raster.Image) float64 {
	n := im.W * im.H
	var s float64
	for i := 0; i < n; i++ {
		r, g, b := im.Pix[i], im.Pix[n+i], im.Pix[2*n+i]
		mx, mn := max(r, g, b), min(r, g, b)
		if mx > 0 {
			s += float64((mx - mn) / mx)
		}
	}
	return s / float64(n)
}

func TestCatalogue(t *testing.T) {
	if _, err := ClassNames(0); err == nil {
		t.Fatal("0 classes accepted")
	}
	names, err := ClassNames(16)
	if err != nil || len(names) != 16 {
		t.Fatalf("16 classes: %v %v", names, err)
	}
	g := generator(t)
	for c := range names {
		o := g.object(c, 40, rand.New(rand.NewPCG(1, uint64(c))))
		if o.full < 100 || o.x1-o.x0 < 20 || o.y1-o.y0 < 20 {
			t.Fatalf("class %s at 40 px: %d ink pixels in %dx%d", names[c], o.full, o.x1-o.x0, o.y1-o.y0)
		}
	}
	// The ring has a hole: its centre is empty, a circle's is not.
	ring := mask(g.outlines[6], 40, 1, 0)
	circle := mask(g.outlines[0], 40, 1, 0)
	if ring.At(ring.W/2, ring.H/2) > 0.1 || circle.At(circle.W/2, circle.H/2) < 0.9 {
		t.Fatalf("ring centre %v, circle centre %v", ring.At(ring.W/2, ring.H/2), circle.At(circle.W/2, circle.H/2))
	}
}

func BenchmarkScene320(b *testing.B) {
	g := generator(b)
	c := SceneConfig{W: 320, H: 240}.withDefaults()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g.layout(c, SiteHome, rand.New(rand.NewPCG(1, uint64(i))), none())
	}
}

func BenchmarkScene640(b *testing.B) {
	g := generator(b)
	c := SceneConfig{W: 640, H: 480}.withDefaults()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g.layout(c, SiteHome, rand.New(rand.NewPCG(1, uint64(i))), none())
	}
}

// TestWritePreview writes a contact sheet of scenes with their boxes when
// EDGELOOP_PREVIEW names a file (for looking at the data, not a check).
func TestWritePreview(t *testing.T) {
	out := os.Getenv("EDGELOOP_PREVIEW")
	if out == "" {
		t.Skip("set EDGELOOP_PREVIEW=file.png to write a preview")
	}
	g := generator(t)
	sc, err := g.Scenes(SceneConfig{W: 320, H: 240}, 6, 1, none())
	if err != nil {
		t.Fatal(err)
	}
	cls, _ := g.Classification(ClassifyConfig{W: 96, H: 96}, 12, 1, none())
	sheet := raster.NewC(3*320, 2*240+96+128, 3)
	for i, s := range sc {
		drawBoxes(s.Image, s.Boxes)
		paste(sheet, s.Image, (i%3)*320, (i/3)*240)
	}
	for i, s := range cls {
		paste(sheet, raster.Resize(s.Image, 80, 80), i*80, 480+8)
	}
	for i, name := range drift.NamesFor(true)[1:] {
		d, _ := drift.Get(name)
		s, _ := g.Scenes(SceneConfig{W: 320, H: 240}, 1, 2, d)
		paste(sheet, raster.Resize(s[0].Image, 160, 120), i*160, 480+96+8)
	}
	if err := os.WriteFile(out, sheet.EncodePNG(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func paste(dst, src *raster.Image, x0, y0 int) {
	for c := 0; c < 3; c++ {
		for y := 0; y < src.H && y0+y < dst.H; y++ {
			for x := 0; x < src.W && x0+x < dst.W; x++ {
				dst.Plane(c).Pix[(y0+y)*dst.W+x0+x] = src.Plane(c).Pix[y*src.W+x]
			}
		}
	}
}

func drawBoxes(im *raster.Image, boxes []nn.Box) {
	for _, b := range boxes {
		x0, y0 := int(b.X0*float32(im.W)), int(b.Y0*float32(im.H))
		x1, y1 := int(b.X1*float32(im.W))-1, int(b.Y1*float32(im.H))-1
		set := func(x, y int) {
			if x >= 0 && y >= 0 && x < im.W && y < im.H {
				im.Plane(0).Pix[y*im.W+x], im.Plane(1).Pix[y*im.W+x], im.Plane(2).Pix[y*im.W+x] = 0, 1, 0
			}
		}
		for x := x0; x <= x1; x++ {
			set(x, y0)
			set(x, y1)
		}
		for y := y0; y <= y1; y++ {
			set(x0, y)
			set(x1, y)
		}
	}
}

// "far" shrinks the objects; "new-site" draws other backgrounds; frame presets change
// the pixels of every image; the same seed under a preset still gives the same data.
func TestDriftPresetsShiftTheData(t *testing.T) {
	g := generator(t)
	c := SceneConfig{W: 320, H: 240}
	size := func(sc []Scene) float64 {
		var s float64
		n := 0
		for _, x := range sc {
			for _, b := range x.Boxes {
				s += float64(max(b.X1-b.X0, b.Y1-b.Y0))
				n++
			}
		}
		return s / float64(n)
	}
	base, _ := g.Scenes(c, 40, 4, none())
	far, _ := drift.Get("far")
	small, _ := g.Scenes(c, 40, 4, far)
	if size(small) > 0.6*size(base) {
		t.Fatalf("far: mean object side %.3f, not well below %.3f", size(small), size(base))
	}
	home := meanSaturation(g.photos.Background(SiteHome, 64, 64, rand.New(rand.NewPCG(1, 1))))
	newSite, _ := drift.Get("new-site")
	if site(newSite) != SiteNew || site(none()) != SiteHome {
		t.Fatalf("sites: new-site → %s, none → %s", site(newSite), site(none()))
	}
	other := g.photos.Background(SiteNew, 64, 64, rand.New(rand.NewPCG(1, 1)))
	if slices.Equal(other.Pix, g.photos.Background(SiteHome, 64, 64, rand.New(rand.NewPCG(1, 1))).Pix) || home < 0 {
		t.Fatal("new-site draws the home site's backgrounds")
	}
	for _, name := range []string{"white-balance", "low-light", "motion-blur", "jpeg"} {
		d, _ := drift.Get(name)
		a, _ := g.Classification(ClassifyConfig{W: 64, H: 64}, 3, 8, d)
		b, _ := g.Classification(ClassifyConfig{W: 64, H: 64}, 3, 8, d)
		clean, _ := g.Classification(ClassifyConfig{W: 64, H: 64}, 3, 8, none())
		if !slices.Equal(a[1].Image.Pix, b[1].Image.Pix) {
			t.Fatalf("%s: the same seed gave other pixels", name)
		}
		if slices.Equal(a[1].Image.Pix, clean[1].Image.Pix) || a[1].Label != clean[1].Label {
			t.Fatalf("%s: image unchanged, or its label moved (%d vs %d)", name, a[1].Label, clean[1].Label)
		}
	}
}

func BenchmarkLoadPhotos(b *testing.B) {
	for i := 0; i < b.N; i++ {
		LoadPhotos("", nil)
	}
}

func BenchmarkClassification96(b *testing.B) {
	g := generator(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g.classifyAt(ClassifyConfig{}.withDefaults(), 1, i, none())
	}
}

// MirrorSafe says of a class what its drawing shows: a mirror-safe class's outline
// covers nearly the same pixels mirrored left to right (overlap over union > 0.9; the
// half-pixel grid costs a thin diamond some), any other's does not (a letter: at most
// 0.82, for A).
func TestMirrorSafeClassesLookTheSameMirrored(t *testing.T) {
	o, err := newOutlines()
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range Catalogue() {
		m := mask(o[i], 64, 1, 0)
		var inter, union float64
		for y := 0; y < m.H; y++ {
			for x := 0; x < m.W; x++ {
				a, b := float64(m.Pix[y*m.W+x]), float64(m.Pix[y*m.W+m.W-1-x])
				inter, union = inter+math.Min(a, b), union+math.Max(a, b)
			}
		}
		if sym := inter / union; MirrorSafe(name) != (sym > 0.9) {
			t.Errorf("class %s: mirror-safe %v, yet its mirror overlaps it %.3f", name, MirrorSafe(name), sym)
		}
	}
}
