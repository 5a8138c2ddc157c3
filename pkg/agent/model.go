package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/nn/gorgoniaengine"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/vision"
)

// model is one loaded model version. Inferences hold its read lock, so that retiring
// it (closing its engines) waits for those in flight: a swap never fails an inference.
type model struct {
	version int64
	sha256  string
	header  artifact.Header
	pred    *vision.Predictor

	mu     sync.RWMutex
	closed bool
}

var errRetired = errors.New("model retired")

func loadModel(data []byte, workers int) (*model, error) {
	m, err := artifact.Decode(data)
	if err != nil {
		return nil, err
	}
	// A detector decodes as its project said when it trained it (defaults without).
	// A classifier also gives each frame's embedding, for diverse sampling; a model
	// whose head cannot be split off runs whole.
	opts := vision.Options{}.WithDecoding(m.Header.Decode)
	embed := opts
	embed.Embed = true
	pred, err := vision.NewPredictor(m.Header.Arch, m.Params, m.Header.Classes, gorgoniaengine.Factory, workers, embed)
	if err != nil {
		pred, err = vision.NewPredictor(m.Header.Arch, m.Params, m.Header.Classes, gorgoniaengine.Factory, workers, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("model v%d: %w", m.Header.Version, err)
	}
	return &model{version: m.Header.Version, sha256: artifact.SHA256(data), header: m.Header, pred: pred}, nil
}

// predict runs the model unless it was retired meanwhile; the embeddings are nil for a
// model without them.
func (m *model) predict(ctx context.Context, ims []*raster.Image) ([][]vision.Prediction, [][]float32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, nil, errRetired
	}
	return m.pred.PredictEmbed(ctx, ims)
}

// retire waits for the inferences in flight, then frees the engines.
func (m *model) retire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		m.pred.Close()
	}
}

// decode reads a JPEG or PNG frame, within the agent's pixel budget, at the channels of
// the model being served (the file's own before there is one), upright by its EXIF
// orientation.
func (a *Agent) decode(data []byte) (*raster.Image, error) {
	channels := 0
	if m := a.current.Load(); m != nil {
		channels = m.header.Arch.InC
	}
	return raster.DecodeChannels(data, a.cfg.MaxPixels, channels)
}
