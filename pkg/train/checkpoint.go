package train

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime/debug"

	"github.com/edgeloop/edgeloop/pkg/atomicfile"
	"github.com/edgeloop/edgeloop/pkg/augment"
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
	// Engine and Build are what computed the epochs so far (nn.Engine.Name, the
	// binary's VCS revision): a resume on another engine or build is allowed, with a
	// warning, because its sums round differently from an uninterrupted run's.
	Engine, Build string
	// Handovers are the warnings of earlier resumes on another engine or build (differs'),
	// so a training resumed more than once still says where its epochs were computed.
	Handovers []string
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
// shapes the run (Config's JSON and the mirror setting), the starting weights, and the
// train and val examples (IDs, labels, boxes, weights, views, sizes and pixels). Two
// trainings with the same ID compute the same epochs.
func trainingID(arch nn.Arch, classes []string, init *nn.Params, data Split, cfg Config) (string, error) {
	h := sha256.New()
	settings, err := json.Marshal(struct {
		Arch    nn.Arch
		Classes []string
		Config  Config
	}{arch, classes, cfg})
	if err != nil {
		return "", fmt.Errorf("cannot fingerprint the training's settings (is one of them not a finite number?): %w", err)
	}
	h.Write(settings)
	// The mirror setting is no JSON (augment.Config.Mirror): what it does to each class.
	for _, m := range []augment.Mirror{cfg.Augment.Mirror, cfg.Strong.Mirror} {
		for k := range classes {
			fmt.Fprintf(h, "|%v %d", m.Allows(k), m.Class(k))
		}
	}
	var buf []byte
	floats := func(v []float32) {
		buf = binary.LittleEndian.AppendUint32(buf[:0], uint32(len(v)))
		for _, x := range v {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
		h.Write(buf)
	}
	for _, v := range init.Values {
		floats(v)
	}
	for _, part := range [][]Sample{data.Train, data.Val} {
		fmt.Fprintf(h, "|%d", len(part))
		for _, s := range part {
			fmt.Fprintf(h, "|%s %d %v %v %v %v", s.ID, s.Label, s.Size, s.Weight, s.Strong, s.Boxes)
			if s.Image != nil {
				fmt.Fprintf(h, " %dx%dx%d", s.Image.W, s.Image.H, s.Image.C)
				floats(s.Image.Pix)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// build is the binary's VCS revision ("" when it was built without one, as tests are).
func build() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+modified"
			}
		}
	}
	return rev + modified
}

// differs warns when the epochs so far were computed by another engine or build than
// engine and this binary: the resumed training is then not bit-identical to an
// uninterrupted one.
func (c *checkpoint) differs(engine string) string {
	if b := build(); c.Engine == engine && c.Build == b {
		return ""
	}
	return fmt.Sprintf("resumed after epoch %d from a checkpoint written by %q (build %q) on %q (build %q): its sums round differently, so the result is not bit-identical to an uninterrupted run",
		c.Epoch, c.Engine, c.Build, engine, build())
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
		return nil, fmt.Errorf("train: checkpoint %s belongs to another training (network, classes, settings, starting weights or examples differ, or a build that fingerprints them differently wrote it); delete it or choose another path", path)
	}
	return &c, nil
}

// save writes c to path durably through a temporary file (fsynced before the rename),
// so a kill or a power loss mid-write leaves the previous epoch's checkpoint whole.
func (c *checkpoint) save(path string) error {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(c); err != nil {
		return fmt.Errorf("train: encode checkpoint: %w", err)
	}
	if err := atomicfile.WriteSync(path, b.Bytes(), 0o644); err != nil {
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
