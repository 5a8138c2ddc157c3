package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

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

func (a *Agent) inferFile(ctx context.Context, path string) {
	dir, name := filepath.Split(path)
	data, err := os.ReadFile(path)
	var im *raster.Image
	if err == nil {
		im, err = raster.DecodeLimited(data, a.cfg.MaxPixels)
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
// under a drift preset, with their ground truth, and an operator who flags a share of
// the wrong predictions.
type SimConfig struct {
	// Dataset is "mnist" or "digit-scenes".
	Dataset string
	Drift   string
	// Rate is frames per second.
	Rate float64
	// OperatorShare is the share of wrong predictions flagged with the right answer.
	OperatorShare float64
	Seed          uint64
	// MNISTDir overrides where the MNIST files are.
	MNISTDir string
}

// Simulator makes frames with known truth.
type Simulator struct {
	cfg   SimConfig
	set   *mnist.Set
	drift drift.Preset
	r     *rand.Rand
}

// NewSimulator prepares a frame generator.
func NewSimulator(c SimConfig) (*Simulator, error) {
	if c.Dataset != datasets.MNIST && c.Dataset != datasets.DigitScenes {
		return nil, fmt.Errorf("simulator: dataset %q: want mnist or digit-scenes", c.Dataset)
	}
	d, err := drift.Get(c.Drift)
	if err != nil {
		return nil, err
	}
	test, err := mnist.LoadTest(c.MNISTDir)
	if err != nil {
		return nil, err
	}
	return &Simulator{cfg: c, set: test, drift: d, r: rand.New(rand.NewPCG(c.Seed, 99))}, nil
}

// Next returns a frame and its truth.
func (s *Simulator) Next() (*raster.Image, *edgeloopv1.Annotation, error) {
	if s.cfg.Dataset == datasets.MNIST {
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

// simulate feeds simulated frames at the configured rate; the simulated operator flags
// a share of the wrong predictions.
func (a *Agent) simulate(ctx context.Context) error {
	sim, err := NewSimulator(a.cfg.Sim)
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
