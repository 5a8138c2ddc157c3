package agent

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/scenes"
	"github.com/edgeloop/edgeloop/pkg/vision"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// watch infers every image a camera application drops into WatchDir, then moves it to
// done/ (or rejected/, with a .reason file, when it is no image).
func (a *Agent) watch(ctx context.Context) error {
	dir := a.cfg.WatchDir
	for _, d := range []string{dir, filepath.Join(dir, "done"), filepath.Join(dir, "rejected")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	sizes := map[string]int64{}
	return every(ctx, 250*time.Millisecond, func() error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			name := e.Name()
			ext := strings.ToLower(filepath.Ext(name))
			if e.IsDir() || (ext != ".jpg" && ext != ".jpeg" && ext != ".png") {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			// Only files whose size held still for a tick: the writer is done.
			if prev, ok := sizes[name]; !ok || prev != info.Size() {
				sizes[name] = info.Size()
				continue
			}
			delete(sizes, name)
			a.inferFile(ctx, filepath.Join(dir, name))
		}
		return nil
	})
}

// every calls fn every d until ctx ends (nil) or fn fails (its error).
func every(ctx context.Context, d time.Duration, fn func() error) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := fn(); err != nil {
			return err
		}
	}
}

// inferFile runs the model on the image file at path and moves it to done/, or to
// rejected/ with a .reason file beside it when it cannot: too large, unreadable or not
// an image.
func (a *Agent) inferFile(ctx context.Context, path string) {
	dir, name := filepath.Split(path)
	data, err := readFrame(path)
	var im *raster.Image
	if err == nil {
		im, err = a.decode(data)
	}
	if err == nil {
		_, err = a.Infer(ctx, name, im, nil)
	}
	if err != nil {
		a.log.Warn("frame rejected", zap.String("file", path), zap.Error(err))
		_ = os.Rename(path, filepath.Join(dir, "rejected", name))
		_ = os.WriteFile(filepath.Join(dir, "rejected", name+".reason"), []byte(err.Error()+"\n"), 0o644)
		return
	}
	_ = os.Rename(path, filepath.Join(dir, "done", name))
}

// SimConfig drives the simulator: frames from MNIST's test digits (unseen in training)
// or generated colour data under a drift preset, with their ground truth, and an
// operator who flags a share of the wrong predictions.
type SimConfig struct {
	// Dataset is a built-in dataset (see package datasets: "mnist", "digit-scenes",
	// "colour-objects:size=96x96", "colour-scenes", …); its own drift option is ignored.
	Dataset string
	Drift   string
	// Rate is frames per second.
	Rate float64
	// OperatorShare is the share of wrong predictions flagged with the right answer.
	OperatorShare float64
	Seed          uint64
	// MNISTDir overrides where the MNIST files are.
	MNISTDir string
	// PhotoDir overrides where the colour backgrounds are (see colourscenes.PhotoDir).
	PhotoDir string
}

// Simulator makes frames with known truth.
type Simulator struct {
	cfg    SimConfig
	spec   datasets.Spec
	set    *mnist.Set
	colour *colourscenes.Generator
	drift  drift.Preset
	r      *rand.Rand
}

// NewSimulator prepares a frame generator; log hears how colour backgrounds are made.
func NewSimulator(c SimConfig, log *zap.Logger) (*Simulator, error) {
	spec, err := datasets.Parse(c.Dataset)
	if err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	spec.Drift = c.Drift
	if _, err := datasets.Parse(spec.String()); err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	d, err := drift.Get(c.Drift)
	if err != nil {
		return nil, err
	}
	s := &Simulator{cfg: c, spec: spec, drift: d, r: rand.New(rand.NewPCG(c.Seed, 99))}
	if spec.Colour() {
		s.colour, err = colourscenes.New(colourscenes.LoadPhotos(c.PhotoDir, log, colourscenes.SiteOf(d)))
		return s, err
	}
	if s.set, err = mnist.LoadTest(c.MNISTDir); err != nil {
		return nil, err
	}
	return s, nil
}

// Next returns a frame and its truth.
func (s *Simulator) Next() (*raster.Image, *edgeloopv1.Annotation, error) {
	if s.colour != nil {
		return s.nextColour()
	}
	if s.spec.Name == datasets.MNIST {
		i := s.r.IntN(s.set.Len())
		im := datasets.Digits(s.set, i, 1, "sim", s.drift, s.r.Uint64())[0]
		return im.Image, &edgeloopv1.Annotation{Author: "simulator", Labels: []*edgeloopv1.Label{{ClassName: fmt.Sprint(im.Label)}}}, nil
	}
	sc, err := scenes.Generate(s.set, 1, s.r.Uint64(), scenes.Config{}, s.drift)
	if err != nil {
		return nil, nil, err
	}
	truth := &edgeloopv1.Annotation{Author: "simulator"}
	for _, b := range sc[0].Boxes {
		truth.Labels = append(truth.Labels, &edgeloopv1.Label{ClassName: fmt.Sprint(b.Class),
			Box: vision.BoxProto(&b)})
	}
	return sc[0].Image, truth, nil
}

// nextColour draws a colour frame: an object of a random class, or a scene.
func (s *Simulator) nextColour() (*raster.Image, *edgeloopv1.Annotation, error) {
	names := s.spec.ClassNames()
	w, h := s.spec.Size()
	truth := &edgeloopv1.Annotation{Author: "simulator"}
	if s.spec.Task() == nn.Classify {
		sm, err := s.colour.Frame(colourscenes.ClassifyConfig{W: w, H: h, Classes: len(names)}, s.r, s.drift)
		if err != nil {
			return nil, nil, err
		}
		truth.Labels = []*edgeloopv1.Label{{ClassName: names[sm.Label]}}
		return sm.Image, truth, nil
	}
	sc, err := s.spec.Scenes(s.colour, 1, s.r.Uint64(), s.drift, "simulator")
	if err != nil {
		return nil, nil, err
	}
	for _, b := range sc[0].Boxes {
		truth.Labels = append(truth.Labels, &edgeloopv1.Label{ClassName: names[b.Class], Box: vision.BoxProto(&b)})
	}
	return sc[0].Image, truth, nil
}

// simulate feeds simulated frames at the configured rate; the simulated operator flags
// a share of the wrong predictions.
func (a *Agent) simulate(ctx context.Context) error {
	sim, err := NewSimulator(a.cfg.Sim, a.log)
	if err != nil {
		return err
	}
	rate := a.cfg.Sim.Rate
	if rate <= 0 {
		rate = 5
	}
	return every(ctx, time.Duration(float64(time.Second)/rate), func() error {
		if a.current.Load() == nil {
			return nil
		}
		im, truth, err := sim.Next()
		if err != nil {
			return err
		}
		res, err := a.Infer(ctx, "", im, truth)
		if err != nil {
			a.log.Warn("simulated frame failed", zap.Error(err))
			return nil
		}
		m := a.current.Load()
		if m == nil || correct(res.Predictions, truth, m.header.Arch.Task == nn.Detect) || sim.r.Float64() >= a.cfg.Sim.OperatorShare {
			return nil
		}
		if _, err := a.Feedback(res.FrameID, proto.Clone(truth).(*edgeloopv1.Annotation)); err != nil {
			a.log.Warn("simulated operator feedback failed", zap.Error(err))
		}
		return nil
	})
}

// readFrame reads an image file of at most maxUpload bytes, as /v1/infer takes: a larger
// one (a video saved under an image's name) is refused from its size, unread.
func readFrame(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Size() > maxUpload {
		return nil, fmt.Errorf("%s: %d bytes, over the %d bytes a frame may have", path, info.Size(), maxUpload)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxUpload+1)) // it may have grown since
	if err != nil {
		return nil, err
	}
	if len(data) > maxUpload {
		return nil, fmt.Errorf("%s: over the %d bytes a frame may have", path, maxUpload)
	}
	return data, nil
}
