package train

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"

	"github.com/edgeloop/edgeloop/pkg/atomicfile"
	"github.com/edgeloop/edgeloop/pkg/nn"
)

// checkpointVersion is the layout of a checkpoint file; a file of another version is
// refused, never half-read.
const checkpointVersion = 1

// checkpoint is a training's whole state after an epoch (Config.Checkpoint): with it
// a stopped training resumes where it left off and ends as an uninterrupted one would,
// because each epoch's shuffling and augmentation draw from the seed and the epoch alone.
type checkpoint struct {
	Version int
	// Training is what must match to resume: trainingID of the network, classes,
	// settings, starting weights and examples.
	Training string
	// Epoch is the last finished epoch; Finished says the training has nothing left to
	// run (its last epoch, or early stopping).
	Epoch    int
	Finished bool
	// Weights are the engine's raw weights (not the EMA), Best the weights kept so far.
	Weights, Best [][]float32
	Adam          nn.AdamState
	// EMAMean and EMASteps are the moving average's state (Config.EMA).
	EMAMean  [][]float32
	EMASteps int

	History      []EpochStats
	BestLoss     float64
	BestEpoch    int
	Bad, Rising  int
	StoppedEarly bool
	Overfitting  bool
	OverfitFrom  int
}

// trainingID fingerprints a training: the network, the classes, every setting that
// shapes the run (Config's JSON), the starting weights, and the examples' IDs, labels,
// boxes and image sizes. Two trainings with the same ID compute the same epochs.
func trainingID(arch nn.Arch, classes []string, init *nn.Params, data Split, cfg Config) (string, error) {
	h := sha256.New()
	settings, err := json.Marshal(struct {
		Arch    nn.Arch
		Classes []string
		Config  Config
	}{arch, classes, cfg})
	if err != nil {
		return "", fmt.Errorf("train: fingerprint settings: %w", err)
	}
	h.Write(settings)
	var buf []byte
	for _, v := range init.Values {
		buf = binary.LittleEndian.AppendUint32(buf[:0], uint32(len(v)))
		for _, x := range v {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
		h.Write(buf)
	}
	for _, part := range [][]Sample{data.Train, data.Val} {
		fmt.Fprintf(h, "|%d", len(part))
		for _, s := range part {
			w, ht := 0, 0
			if s.Image != nil {
				w, ht = s.Image.W, s.Image.H
			}
			fmt.Fprintf(h, "|%s %d %dx%d %v %v %v", s.ID, s.Label, w, ht, s.Weight, s.Strong, s.Boxes)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// loadCheckpoint reads path's checkpoint for the training id; it returns nil and no
// error when there is none yet.
func loadCheckpoint(path, id string) (*checkpoint, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("train: checkpoint: %w", err)
	}
	defer f.Close()
	var c checkpoint
	if err := gob.NewDecoder(bufio.NewReader(f)).Decode(&c); err != nil {
		return nil, fmt.Errorf("train: checkpoint %s is unreadable (%w); delete it to start over", path, err)
	}
	if c.Version != checkpointVersion {
		return nil, fmt.Errorf("train: checkpoint %s has layout %d, this build reads %d; delete it to start over", path, c.Version, checkpointVersion)
	}
	if c.Training != id {
		return nil, fmt.Errorf("train: checkpoint %s belongs to another training (network, classes, settings, starting weights or examples differ); delete it or choose another path", path)
	}
	return &c, nil
}

// save writes c to path through a temporary file, so a kill mid-write leaves the
// previous epoch's checkpoint whole.
func (c *checkpoint) save(path string) error {
	err := atomicfile.WriteWith(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := gob.NewEncoder(bw).Encode(c); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("train: save checkpoint: %w", err)
	}
	return nil
}

// restore puts c's weights and optimiser state into the engine and best, and the
// moving average's into avg (when the training keeps one).
func (c *checkpoint) restore(e nn.Engine, best *nn.Params, avg *ema) error {
	raw := best.Clone()
	if err := raw.CopyFrom(&nn.Params{Values: c.Weights}); err != nil {
		return fmt.Errorf("train: checkpoint weights: %w", err)
	}
	if err := e.WriteParams(raw); err != nil {
		return fmt.Errorf("train: checkpoint weights: %w", err)
	}
	if err := e.WriteAdam(c.Adam); err != nil {
		return fmt.Errorf("train: checkpoint optimiser: %w", err)
	}
	if err := best.CopyFrom(&nn.Params{Values: c.Best}); err != nil {
		return fmt.Errorf("train: checkpoint best weights: %w", err)
	}
	if avg != nil {
		if c.EMAMean == nil {
			return errors.New("train: checkpoint has no weight average, the training keeps one")
		}
		if err := avg.mean.CopyFrom(&nn.Params{Values: c.EMAMean}); err != nil {
			return fmt.Errorf("train: checkpoint weight average: %w", err)
		}
		avg.steps = c.EMASteps
	}
	return nil
}
