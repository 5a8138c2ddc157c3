// Package colourscenes generates colour data for tests and benchmarks without downloads
// at run time: objects of N classes — filled shapes and letters of the Go Bold font, in
// random colours with shading and drop shadows — drawn over crops of real photographs
// (scikit-image's bundled pictures and Debian wallpapers, which deploy/local/photos.sh
// installs once into the cache) or, when those are absent, over procedural gradients and
// noise. It makes classification sets (one object per image, any input size) and
// detection scenes (several objects from about 8 px to most of the frame, partly
// occluded, with their boxes), each reproducible from a seed and shifted by drift presets
// (pkg/drift: a new site, white balance, low light, motion blur, JPEG, scale).
package colourscenes

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"

	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// Generator draws colour objects over backgrounds. It is safe for concurrent use.
type Generator struct {
	photos   *Photos
	outlines outlines
}

// New returns a generator over the photographs (nil: procedural backgrounds only).
func New(photos *Photos) (*Generator, error) {
	o, err := newOutlines()
	if err != nil {
		return nil, err
	}
	if photos == nil {
		photos = &Photos{}
	}
	return &Generator{photos: photos, outlines: o}, nil
}

// ClassifyConfig lays out classification images.
type ClassifyConfig struct {
	// W and H are the image size (default 96×96).
	W, H int
	// Classes is how many classes of the catalogue to use (default 8).
	Classes int
	// MinFill and MaxFill bound the object's larger side as a share of the image's
	// smaller side (default 0.4–0.85).
	MinFill, MaxFill float64
}

func (c ClassifyConfig) withDefaults() ClassifyConfig {
	if c.W == 0 && c.H == 0 {
		c.W, c.H = 96, 96
	}
	if c.Classes == 0 {
		c.Classes = 8
	}
	if c.MinFill == 0 && c.MaxFill == 0 {
		c.MinFill, c.MaxFill = 0.4, 0.85
	}
	return c
}

func (c ClassifyConfig) validate() error {
	if c.W < 16 || c.H < 16 || c.W > 4096 || c.H > 4096 {
		return fmt.Errorf("colour classification: size %dx%d, want 16–4096 a side", c.W, c.H)
	}
	if _, err := ClassNames(c.Classes); err != nil {
		return err
	}
	if c.MinFill <= 0 || c.MaxFill > 1 || c.MaxFill < c.MinFill {
		return fmt.Errorf("colour classification: fill %v–%v, want 0 < min <= max <= 1", c.MinFill, c.MaxFill)
	}
	return nil
}

// Sample is one classification image.
type Sample struct {
	Image *raster.Image
	Label int
	// Box is where the object is (normalised), for inspection.
	Box nn.Box
}

// Classification makes n images, image i of class i mod Classes (so every class has
// n/Classes ± 1), each from its own random stream of seed: the same seed gives the same
// images.
func (g *Generator) Classification(c ClassifyConfig, n int, seed uint64, d drift.Preset) ([]Sample, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	out := make([]Sample, n)
	parallel(n, func(i int) {
		out[i] = g.classifyAt(c, seed, i, d)
	})
	return out, nil
}

// ClassificationAt makes image i of the set Classification(c, …, seed, d) makes, alone
// (a simulated camera draws frames of random classes this way).
func (g *Generator) ClassificationAt(c ClassifyConfig, seed uint64, i int, d drift.Preset) (Sample, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return Sample{}, err
	}
	return g.classifyAt(c, seed, i, d), nil
}

// Frame makes one classification image of a random class from r (a camera's stream of
// frames: each call draws its class and everything else from r).
func (g *Generator) Frame(c ClassifyConfig, r *rand.Rand, d drift.Preset) (Sample, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return Sample{}, err
	}
	return g.classify(c, r.IntN(c.Classes), site(d), r, d), nil
}

func (g *Generator) classifyAt(c ClassifyConfig, seed uint64, i int, d drift.Preset) Sample {
	return g.classify(c, i%c.Classes, site(d), rand.New(rand.NewPCG(seed, uint64(i))), d)
}

func (g *Generator) classify(c ClassifyConfig, class int, site string, r *rand.Rand, d drift.Preset) Sample {
	im := g.photos.Background(site, c.W, c.H, r)
	fill := c.MinFill + (c.MaxFill-c.MinFill)*r.Float64()
	size := math.Max(6, fill*objectScale(d, r)*float64(min(c.W, c.H)))
	var o placed
	for tries := 0; tries < 8; tries++ { // a rare degenerate draw (no ink) is drawn again
		if o = g.object(class, size, r); o.full > 0 {
			break
		}
	}
	o.x = r.IntN(max(1, c.W-(o.x1-o.x0)+1)) - o.x0
	o.y = r.IntN(max(1, c.H-(o.y1-o.y0)+1)) - o.y0
	g.paint(im, o, r)
	return Sample{Image: d.ApplyFrame(im, r), Label: class, Box: o.box(c.W, c.H)}
}

// SceneConfig lays out detection scenes.
type SceneConfig struct {
	// W and H are the scene size (default 320×240; 320×240 to 640×480 is the design range).
	W, H int
	// Classes is how many classes of the catalogue to use (default 8).
	Classes int
	// MinObjects and MaxObjects per scene (default 1–12; objects that do not fit are
	// drawn smaller, and those that fit nowhere are counted in Scene.Dropped).
	MinObjects, MaxObjects int
	// MinSize and MaxSize bound an object's larger side in pixels, drawn log-uniformly
	// (default 8 to 80 % of the scene's smaller side). An object that finds no place in
	// a crowded scene is drawn again at 0.7 times its size, down to MinSize, so crowded
	// scenes skew smaller than the draw.
	MinSize, MaxSize int
	// MaxHidden is the largest share of an object that later objects may cover (default
	// 0.5).
	MaxHidden float64
}

// LeastObjects is the fewest objects a scene of c is asked for, its defaults applied
// (1 unless told): a scene that holds fewer could not place them all (Scene.Dropped).
func (c SceneConfig) LeastObjects() int { return c.withDefaults().MinObjects }

func (c SceneConfig) withDefaults() SceneConfig {
	if c.W == 0 && c.H == 0 {
		c.W, c.H = 320, 240
	}
	if c.Classes == 0 {
		c.Classes = 8
	}
	if c.MinObjects == 0 && c.MaxObjects == 0 {
		c.MinObjects, c.MaxObjects = 1, 12
	}
	if c.MinSize == 0 {
		c.MinSize = 8
	}
	if c.MaxSize == 0 {
		c.MaxSize = int(0.8 * float64(min(c.W, c.H)))
	}
	if c.MaxHidden == 0 {
		c.MaxHidden = 0.5
	}
	return c
}

func (c SceneConfig) validate() error {
	if c.W < 64 || c.H < 64 || c.W > 4096 || c.H > 4096 {
		return fmt.Errorf("colour scenes: size %dx%d, want 64–4096 a side", c.W, c.H)
	}
	if _, err := ClassNames(c.Classes); err != nil {
		return err
	}
	if c.MinObjects < 0 || c.MaxObjects < c.MinObjects || c.MaxObjects > 100 {
		return fmt.Errorf("colour scenes: %d–%d objects, want 0 <= min <= max <= 100", c.MinObjects, c.MaxObjects)
	}
	if c.MinSize < 4 || c.MaxSize < c.MinSize || c.MaxSize > min(c.W, c.H) {
		return fmt.Errorf("colour scenes: object sizes %d–%d px, want 4 <= min <= max <= %d", c.MinSize, c.MaxSize, min(c.W, c.H))
	}
	if c.MaxHidden < 0 || c.MaxHidden >= 1 {
		return fmt.Errorf("colour scenes: max hidden %v, want [0, 1)", c.MaxHidden)
	}
	return nil
}

// Scene is one detection image and its ground truth.
type Scene struct {
	Image *raster.Image
	// Boxes are the objects' whole extents (normalised), also where later objects hide
	// part of them.
	Boxes []nn.Box
	// Visible is the share of each object not hidden by later ones.
	Visible []float32
	// Dropped counts the objects drawn for the scene that fitted nowhere, even at
	// MinSize, without hiding an earlier one beyond MaxHidden: the scene holds
	// len(Boxes) objects of the MinObjects–MaxObjects it drew len(Boxes)+Dropped.
	Dropped int
}

// Scenes makes n scenes, scene i from its own random stream of seed: the same seed gives
// the same scenes.
func (g *Generator) Scenes(c SceneConfig, n int, seed uint64, d drift.Preset) ([]Scene, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	out := make([]Scene, n)
	parallel(n, func(i int) {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		im, objs, dropped := g.layout(c, site(d), r, d)
		sc := Scene{Image: d.ApplyFrame(im, r), Dropped: dropped}
		for _, o := range objs {
			sc.Boxes = append(sc.Boxes, o.box(c.W, c.H))
			sc.Visible = append(sc.Visible, float32(o.visible)/float32(o.full))
		}
		out[i] = sc
	})
	return out, nil
}

// placed is one object: its coverage mask, where the mask's corner lies in the scene,
// the box of its ink (coverage >= 0.5) in mask pixels, and its ink pixel counts.
type placed struct {
	class          int
	m              *raster.Image
	x, y           int
	x0, y0, x1, y1 int
	full, visible  int
}

// box is the object's ink box in the scene, normalised.
func (o placed) box(w, h int) nn.Box {
	return nn.Box{X0: float32(o.x+o.x0) / float32(w), Y0: float32(o.y+o.y0) / float32(h),
		X1: float32(o.x+o.x1) / float32(w), Y1: float32(o.y+o.y1) / float32(h), Class: o.class}
}

// object draws a class's mask at size (larger side, px), with a random aspect (0.8–1.25,
// letters keep theirs ±10 %) and rotation (±15°, so that a square stays no diamond).
func (g *Generator) object(class int, size float64, r *rand.Rand) placed {
	aspect := math.Exp((r.Float64()*2 - 1) * math.Log(1.25))
	if len([]rune(Catalogue()[class])) == 1 {
		aspect = 1 + (r.Float64()*2-1)*0.1
	}
	m := mask(g.outlines[class], size, aspect, (r.Float64()*2-1)*15)
	o := placed{class: class, m: m, x0: m.W, y0: m.H}
	for y := 0; y < m.H; y++ {
		for x := 0; x < m.W; x++ {
			if m.Pix[y*m.W+x] >= 0.5 {
				o.x0, o.y0 = min(o.x0, x), min(o.y0, y)
				o.x1, o.y1 = max(o.x1, x+1), max(o.y1, y+1)
				o.full++
			}
		}
	}
	o.visible = o.full
	return o
}

// layout draws a scene's background and objects, largest first, each at a place where
// it hides no earlier object beyond MaxHidden. An object that finds no place in a few
// tries is drawn again at 0.7 times its size, down to MinSize (a crowded scene trades
// its largest objects for their number); one that fits nowhere even then is left out,
// and layout returns how many were.
func (g *Generator) layout(c SceneConfig, site string, r *rand.Rand, d drift.Preset) (*raster.Image, []placed, int) {
	im := g.photos.Background(site, c.W, c.H, r)
	k := c.MinObjects + r.IntN(c.MaxObjects-c.MinObjects+1)
	sizes := make([]float64, k)
	lo, hi := math.Log(float64(c.MinSize)), math.Log(float64(c.MaxSize))
	for i := range sizes {
		s := math.Exp(lo+(hi-lo)*r.Float64()) * objectScale(d, r)
		sizes[i] = math.Min(float64(min(c.W, c.H)), math.Max(5, s))
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(sizes)))
	owner := make([]int16, c.W*c.H)
	for i := range owner {
		owner[i] = -1
	}
	var objs []placed
	hidden := make([]int, k)
	dropped := 0
	for _, size := range sizes {
		class := r.IntN(c.Classes)
		least := math.Min(size, float64(c.MinSize))
		for {
			o := g.object(class, size, r)
			if o.full > 0 && o.x1-o.x0 <= c.W && o.y1-o.y0 <= c.H && place(c, &o, objs, owner, hidden, r) {
				g.paint(im, o, r)
				objs = append(objs, o)
				break
			}
			if size <= least {
				dropped++
				break
			}
			size = math.Max(least, 0.7*size)
		}
	}
	return im, objs, dropped
}

// place tries a few random places for o where it hides no earlier object beyond
// MaxHidden; at the first, it claims o's pixels in owner, takes them from the objects it
// covers and reports true. hidden is scratch space, one count per object.
func place(c SceneConfig, o *placed, objs []placed, owner []int16, hidden []int, r *rand.Rand) bool {
	for tries := 0; tries < 12; tries++ {
		o.x = r.IntN(c.W-(o.x1-o.x0)+1) - o.x0
		o.y = r.IntN(c.H-(o.y1-o.y0)+1) - o.y0
		clear(hidden)
		o.each(c.W, c.H, func(i int, a float32) {
			if a >= 0.5 && owner[i] >= 0 {
				hidden[owner[i]]++
			}
		})
		ok := true
		for j := range objs {
			if float64(objs[j].visible-hidden[j]) < (1-c.MaxHidden)*float64(objs[j].full) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		for j := range objs {
			objs[j].visible -= hidden[j]
		}
		id := int16(len(objs))
		o.each(c.W, c.H, func(i int, a float32) {
			if a >= 0.5 {
				owner[i] = id
			}
		})
		return true
	}
	return false
}

// each calls f with the scene index and coverage of every inked mask pixel inside the
// w×h scene.
func (o placed) each(w, h int, f func(i int, a float32)) {
	for y := max(0, -o.y); y < o.m.H && o.y+y < h; y++ {
		for x := max(0, -o.x); x < o.m.W && o.x+x < w; x++ {
			if a := o.m.Pix[y*o.m.W+x]; a > 0 {
				f((o.y+y)*w+o.x+x, a)
			}
		}
	}
}

// paint draws the object into im: a soft drop shadow half the time, then its colour —
// chosen from a few random ones as the farthest from the background under it — shaded
// by a gentle gradient across the object.
func (g *Generator) paint(im *raster.Image, o placed, r *rand.Rand) {
	w, h := im.W, im.H
	n := w * h
	var mean [3]float64
	cnt := 0
	o.each(w, h, func(i int, a float32) {
		for c := 0; c < 3; c++ {
			mean[c] += float64(im.Pix[c*n+i])
		}
		cnt++
	})
	for c := range mean {
		mean[c] /= float64(max(cnt, 1))
	}
	var col [3]float32
	best := -1.0
	for k := 0; k < 6; k++ {
		cand := randomColour(r, 0.45, 1)
		var dist float64
		for c := 0; c < 3; c++ {
			dist += (float64(cand[c]) - mean[c]) * (float64(cand[c]) - mean[c])
		}
		if dist > best {
			best, col = dist, cand
		}
	}
	size := max(o.x1-o.x0, o.y1-o.y0)
	if r.IntN(2) == 0 {
		sh := o
		off := max(1, size/20)
		sh.x, sh.y = o.x+off, o.y+off
		strength := float32(0.3 + 0.25*r.Float64())
		sh.each(w, h, func(i int, a float32) {
			for c := 0; c < 3; c++ {
				im.Pix[c*n+i] *= 1 - strength*a
			}
		})
	}
	angle := r.Float64() * 2 * math.Pi
	gx, gy := float32(math.Cos(angle)), float32(math.Sin(angle))
	depth := float32(0.45 * r.Float64())
	cx, cy := float32(o.x+(o.x0+o.x1)/2), float32(o.y+(o.y0+o.y1)/2)
	inv := 1 / float32(max(size, 1))
	o.each(w, h, func(i int, a float32) {
		x, y := float32(i%w), float32(i/w)
		shade := 1 + depth*((x-cx)*gx+(y-cy)*gy)*inv
		for c := 0; c < 3; c++ {
			v := min(1, col[c]*shade)
			im.Pix[c*n+i] = im.Pix[c*n+i]*(1-a) + v*a
		}
	})
}

// SiteOf is the site whose backgrounds data under the drift preset shows.
func SiteOf(d drift.Preset) string { return site(d) }

// site is where a drift preset puts the camera.
func site(d drift.Preset) string {
	if d.Site != "" {
		return d.Site
	}
	return SiteHome
}

// objectScale draws the drift preset's object size factor (1 without one).
func objectScale(d drift.Preset, r *rand.Rand) float64 {
	if d.ObjectScale[1] <= 0 {
		return 1
	}
	return d.ObjectScale[0] + (d.ObjectScale[1]-d.ObjectScale[0])*r.Float64()
}

// parallel calls f(i) for i in [0, n) on every core.
func parallel(n int, f func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}
