package colourscenes

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/atomicfile"
	"github.com/edgeloop/edgeloop/pkg/raster"
)

// Sites: the backgrounds a camera sees. Training data comes from SiteHome; the drift
// preset "new-site" moves the camera to SiteNew, whose photographs share none with home.
const (
	SiteHome = "home"
	SiteNew  = "new"
)

// sitePhotos names the photographs of each site, as deploy/local/photos.sh lays them
// out: scikit-image's bundled pictures (PyPI) and the photographs among Debian's
// lomiri-wallpapers-20.04.
func sitePhotos(site string) []string {
	if site == SiteNew {
		return []string{"gravel.png", "hubble_deep_field.jpg", "retina.jpg", "moon.png",
			"Kleiber_by_Lukas_Baubkus.jpg", "Infinite-Sea_by_Aury88.jpg", "Fossa_by_Jasper_Roks.jpg",
			"Painting-Colors_by__herobrine7gamer.jpg"}
	}
	return []string{"astronaut.png", "coffee.png", "chelsea.png", "motorcycle_left.png", "rocket.jpg",
		"camera.png", "brick.png", "grass.png", "coins.png", "ihc.png"}
}

// maxPhotoSide is the long side photographs are scaled down to when loaded (the
// wallpapers are 4–6k wide; a 640×480 scene needs no more).
const maxPhotoSide = 1024

// PhotoDir is where the background photographs are: dir when given, else
// $EDGELOOP_PHOTOS_DIR, else photos/ under the project cache ($EDGELOOP_CACHE, or
// $XDG_CACHE_HOME/edgeloop, or ~/.cache/edgeloop) — where deploy/local/photos.sh puts them.
func PhotoDir(dir string) string {
	if dir != "" {
		return dir
	}
	if d := os.Getenv("EDGELOOP_PHOTOS_DIR"); d != "" {
		return d
	}
	cache := os.Getenv("EDGELOOP_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "edgeloop")
	}
	return filepath.Join(cache, "photos")
}

// Photos are the background photographs of each site, loaded once and shared read-only
// by generators. A site without photographs gets procedural backgrounds.
type Photos struct {
	// Dir is where they were looked for.
	Dir string
	// bySite holds each site's photographs as pyramids: the photograph, then halves of
	// it down to about 32 px, so that a crop of any size is resampled from a level at
	// most twice its output's resolution.
	bySite map[string][][]*raster.Image
}

// LoadPhotos reads the photographs of the given sites (none given: both) from
// PhotoDir(dir); a site not loaded gets procedural backgrounds. Both sites take about
// 125 MB, home alone 40 MB: a simulated camera loads the one it films (SiteOf). It never
// fails: a missing or unreadable photograph is logged and skipped, and a site left with
// none uses procedural backgrounds (gradients and noise textures), said once in the log
// with the command that installs the photographs. Photographs larger than 1024 px are
// scaled down once and the copy kept in dir/scaled/ (when dir is writable).
func LoadPhotos(dir string, log *zap.Logger, sites ...string) *Photos {
	if log == nil {
		log = zap.NewNop()
	}
	if len(sites) == 0 {
		sites = []string{SiteHome, SiteNew}
	}
	p := &Photos{Dir: PhotoDir(dir), bySite: map[string][][]*raster.Image{}}
	for _, site := range sites {
		var missing []string
		names := sitePhotos(site)
		ims := make([][]*raster.Image, len(names))
		errs := make([]error, len(names))
		parallel(len(names), func(i int) {
			var im *raster.Image
			if im, errs[i] = loadPhoto(p.Dir, names[i]); errs[i] == nil {
				ims[i] = pyramid(im)
			}
		})
		for i, name := range names {
			switch err := errs[i]; {
			case errors.Is(err, fs.ErrNotExist):
				missing = append(missing, name)
			case err != nil:
				log.Warn("colour backgrounds: photograph skipped", zap.String("file", filepath.Join(p.Dir, name)), zap.Error(err))
			default:
				p.bySite[site] = append(p.bySite[site], ims[i])
			}
		}
		switch {
		case len(p.bySite[site]) == 0:
			log.Info("colour backgrounds: no photographs, using procedural backgrounds (gradients and noise); run deploy/local/photos.sh install for real ones",
				zap.String("site", site), zap.String("dir", p.Dir))
		case len(missing) > 0:
			log.Info("colour backgrounds: some photographs missing", zap.String("site", site), zap.String("dir", p.Dir),
				zap.Strings("missing", missing), zap.Int("loaded", len(p.bySite[site])))
		}
	}
	return p
}

// Count is the number of photographs of a site (0: procedural backgrounds).
func (p *Photos) Count(site string) int {
	if p == nil {
		return 0
	}
	return len(p.bySite[site])
}

// loadPhoto reads one photograph as RGB, at most maxPhotoSide on its long side, through
// the scaled copy when there is one.
func loadPhoto(dir, name string) (*raster.Image, error) {
	scaled := filepath.Join(dir, "scaled", strings.TrimSuffix(name, filepath.Ext(name))+".png")
	if data, err := os.ReadFile(scaled); err == nil {
		if im, err := raster.DecodeChannels(data, 0, 3); err == nil {
			return im, nil
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	// The wallpapers reach 24 megapixels, past Decode's budget for untrusted uploads.
	im, err := raster.DecodeChannels(data, 64<<20, 3)
	if err != nil {
		return nil, fmt.Errorf("photograph %s: %w", name, err)
	}
	if long := max(im.W, im.H); long > maxPhotoSide {
		s := float64(maxPhotoSide) / float64(long)
		im = raster.Resize(im, max(1, int(float64(im.W)*s+0.5)), max(1, int(float64(im.H)*s+0.5)))
		writeCache(scaled, im.EncodePNG())
	}
	return im, nil
}

// pyramid is im and its successive halves (2×2 means) down to about 32 px.
func pyramid(im *raster.Image) []*raster.Image {
	levels := []*raster.Image{im}
	for im.W >= 64 && im.H >= 64 {
		im = raster.Resize(im, im.W/2, im.H/2)
		levels = append(levels, im)
	}
	return levels
}

// writeCache writes a cache file atomically (processes loading at once never read half
// of one); failing only costs time next load (a read-only dir).
func writeCache(path string, data []byte) {
	if os.MkdirAll(filepath.Dir(path), 0o755) == nil {
		_ = atomicfile.Write(path, data, 0o600)
	}
}

// Background returns a w×h RGB background of the site: a random crop of one of its
// photographs (40–100 % of the largest crop of that aspect), or a procedural one when the
// site has no photographs.
func (p *Photos) Background(site string, w, h int, r *rand.Rand) *raster.Image {
	if p.Count(site) == 0 {
		return Procedural(site, w, h, r)
	}
	levels := p.bySite[site][r.IntN(len(p.bySite[site]))]
	ph := levels[0]
	aspect := float64(w) / float64(h)
	cw, ch := float64(ph.W), float64(ph.W)/aspect
	if ch > float64(ph.H) {
		ch, cw = float64(ph.H), float64(ph.H)*aspect
	}
	f := 0.4 + 0.6*r.Float64()
	cw, ch = cw*f, ch*f
	x0 := r.Float64() * (float64(ph.W) - cw)
	y0 := r.Float64() * (float64(ph.H) - ch)
	return resample(levels, x0, y0, cw/float64(w), w, h)
}

// resample draws the w×h crop at (x0, y0) of the pyramid's photograph, step source
// pixels per output pixel, bilinearly from the level whose step is in [1, 2) (or the
// photograph itself when enlarging).
func resample(levels []*raster.Image, x0, y0, step float64, w, h int) *raster.Image {
	l := 0
	for l+1 < len(levels) && step >= 2 {
		step, x0, y0 = step/2, x0/2, y0/2
		l++
	}
	src := levels[l]
	out := raster.NewC(w, h, 3)
	n, sn := w*h, src.W*src.H
	xs := make([]int, w)
	fx := make([]float32, w)
	for x := range xs {
		sx := min(float64(src.W-1), max(0, x0+(float64(x)+0.5)*step-0.5))
		xs[x] = min(int(sx), src.W-2)
		fx[x] = float32(sx) - float32(xs[x])
	}
	for y := 0; y < h; y++ {
		sy := min(float64(src.H-1), max(0, y0+(float64(y)+0.5)*step-0.5))
		iy := min(int(sy), src.H-2)
		fy := float32(sy) - float32(iy)
		for c := 0; c < 3; c++ {
			top := src.Pix[c*sn+iy*src.W : c*sn+(iy+1)*src.W]
			bot := src.Pix[c*sn+(iy+1)*src.W : c*sn+(iy+2)*src.W]
			row := out.Pix[c*n+y*w : c*n+(y+1)*w]
			for x, ix := range xs {
				a := top[ix] + (top[ix+1]-top[ix])*fx[x]
				b := bot[ix] + (bot[ix+1]-bot[ix])*fx[x]
				row[x] = a + (b-a)*fy
			}
		}
	}
	return out
}

// crop copies the w×h rectangle at (x0, y0) of every channel.
func crop(im *raster.Image, x0, y0, w, h int) *raster.Image {
	out := raster.NewC(w, h, im.Channels())
	for c := 0; c < im.Channels(); c++ {
		src, dst := im.Plane(c), out.Plane(c)
		for y := 0; y < h; y++ {
			copy(dst.Pix[y*w:(y+1)*w], src.Pix[(y0+y)*im.W+x0:(y0+y)*im.W+x0+w])
		}
	}
	return out
}

// Procedural is a w×h RGB background made without photographs. Home: two-colour
// gradients under smooth colour noise, in muted tones. New site: saturated stripes or
// checks under finer noise — a different look, so that "new-site" drift still shifts the
// distribution.
func Procedural(site string, w, h int, r *rand.Rand) *raster.Image {
	out := raster.NewC(w, h, 3)
	n := w * h
	a, b := randomColour(r, 0.2, 0.6), randomColour(r, 0.2, 0.6)
	if site == SiteNew {
		a, b = randomColour(r, 0.7, 1), randomColour(r, 0.7, 1)
	}
	angle := r.Float64() * 2 * math.Pi
	ca, sa := math.Cos(angle), math.Sin(angle)
	period := 8 + r.Float64()*40
	checks := r.IntN(2) == 0
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			u := (float64(x)*ca + float64(y)*sa) / float64(max(w, h))
			var t float64
			if site == SiteNew {
				v := (-float64(x)*sa + float64(y)*ca) / period
				t = stripe(u * float64(max(w, h)) / period)
				if checks {
					t = math.Abs(t - stripe(v))
				}
			} else {
				t = 0.5 + 0.5*u
			}
			for c := 0; c < 3; c++ {
				out.Pix[c*n+y*w+x] = float32(float64(a[c])*(1-t) + float64(b[c])*t)
			}
		}
	}
	cell := 24
	if site == SiteNew {
		cell = 6
	}
	for c := 0; c < 3; c++ {
		noise := valueNoise(w, h, cell, r)
		pl := out.Plane(c)
		for i := range pl.Pix {
			pl.Pix[i] += 0.25 * (noise.Pix[i] - 0.5)
		}
	}
	return out.Clamp()
}

// stripe is a square wave of period 1 in [0, 1].
func stripe(v float64) float64 {
	if v-math.Floor(v) < 0.5 {
		return 0
	}
	return 1
}

// valueNoise is smooth noise in [0,1]: random values on a grid of the given cell size,
// interpolated.
func valueNoise(w, h, cell int, r *rand.Rand) *raster.Image {
	gw, gh := w/cell+2, h/cell+2
	grid := raster.New(gw, gh)
	for i := range grid.Pix {
		grid.Pix[i] = r.Float32()
	}
	up := raster.Resize(grid, gw*cell, gh*cell)
	return crop(up, 0, 0, w, h)
}

// randomColour is a random RGB colour with saturation and value in [lo, hi].
func randomColour(r *rand.Rand, lo, hi float64) [3]float32 {
	return hsv(r.Float64(), lo+(hi-lo)*r.Float64(), lo+(hi-lo)*r.Float64())
}

// hsv converts hue (turns), saturation and value to RGB.
func hsv(h, s, v float64) [3]float32 {
	h = (h - math.Floor(h)) * 6
	i := int(h)
	f := h - float64(i)
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	var rgb [3]float64
	switch i % 6 {
	case 0:
		rgb = [3]float64{v, t, p}
	case 1:
		rgb = [3]float64{q, v, p}
	case 2:
		rgb = [3]float64{p, v, t}
	case 3:
		rgb = [3]float64{p, q, v}
	case 4:
		rgb = [3]float64{t, p, v}
	default:
		rgb = [3]float64{v, p, q}
	}
	return [3]float32{float32(rgb[0]), float32(rgb[1]), float32(rgb[2])}
}
