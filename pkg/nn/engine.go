package nn

import (
	"fmt"
	"slices"
)

// Batch is one mini-batch: N images (N·C·H·W floats in [0,1], channel-major) with their
// labels (classification) or detection targets.
type Batch struct {
	N      int
	X      []float32
	Labels []int
	Det    *DetTargets
}

// Slice is images [i, j) of b, sharing its memory.
func (b *Batch) Slice(i, j int) *Batch {
	in := len(b.X) / max(b.N, 1)
	s := &Batch{N: j - i, X: b.X[i*in : j*in]}
	if b.Labels != nil {
		s.Labels = b.Labels[i:j]
	}
	if d := b.Det; d != nil {
		out := len(d.W) / max(b.N, 1)
		s.Det = &DetTargets{W: d.W[i*out : j*out], T: d.T[i*out : j*out], M: d.M[i*out : j*out], B: d.B[i*out : j*out]}
	}
	return s
}

// Engine computes a network's forward and backward passes and its Adam updates. The
// Gorgonia CPU engine and the CUDA engine implement it with the same numbers, so the
// training code above it is one code path.
type Engine interface {
	// Forward returns the raw outputs of n images: logits (classify) or the head's
	// maps (detect), n·outputs floats.
	Forward(x []float32, n int) ([]float32, error)
	// Loss is the batch's mean loss in inference mode (batch norm with its running
	// statistics), without gradients: the validation loss.
	Loss(b *Batch) (float32, error)
	// Gradients is the batch's mean loss in training mode (batch norm with the batch's
	// statistics unless EngineConfig.FreezeBN) and its gradient for every parameter
	// tensor (zero for buffers). It changes nothing.
	Gradients(b *Batch) (float32, [][]float32, error)
	// Step computes the loss and gradients of b and applies one Adam update to the
	// trainable tensors, and moves batch norm's running statistics towards the batch's
	// (unless frozen); it returns the loss before the update.
	Step(b *Batch) (float32, error)
	// ReadParams copies the current weights into p.
	ReadParams(p *Params) error
	// WriteParams replaces the weights with p's (the optimiser state is kept).
	WriteParams(p *Params) error
	// SetLR changes Adam's learning rate for the next steps (schedules).
	SetLR(lr float32)
	// ReadAdam returns a copy of the optimiser's state (steps and moments).
	ReadAdam() (AdamState, error)
	// WriteAdam replaces the optimiser's state: a training resumed from a checkpoint
	// goes on with the moments it had.
	WriteAdam(s AdamState) error
	// Name says what computes, e.g. "cpu (gorgonia, pure-Go BLAS, scalar kernels)".
	Name() string
	// Close releases the engine's resources.
	Close() error
}

// EngineConfig is what an engine is built from.
type EngineConfig struct {
	Arch   Arch
	Params *Params
	// BatchSize is the training batch size; smaller batches are padded.
	BatchSize int
	Adam      AdamConfig
	// Trainable marks the tensors Step updates (nil: all; buffers never).
	Trainable []bool
	// FreezeBN makes batch norm use and keep its running statistics in training too:
	// for fine-tuning on batches too small for good batch statistics.
	FreezeBN bool
	// BNMomentum is how far a training step moves the running statistics towards the
	// batch's: r ← (1−m)·r + m·batch (0: DefaultBNMomentum). The running variance takes
	// the unbiased batch variance, as PyTorch.
	BNMomentum float32
}

// DefaultBNMomentum is PyTorch's batch norm momentum.
const DefaultBNMomentum = 0.1

// Check validates the config and fills defaults.
func (c *EngineConfig) Check() error {
	specs, _, err := c.Arch.Analyse()
	if err != nil {
		return err
	}
	if c.Params == nil || len(c.Params.Values) != len(specs) {
		return fmt.Errorf("engine: params do not match arch %s", c.Arch.Name)
	}
	for i, s := range specs {
		if len(c.Params.Values[i]) != s.Shape.Size() {
			return fmt.Errorf("engine: param %s has %d values, arch %s wants %d", s.Name, len(c.Params.Values[i]), c.Arch.Name, s.Shape.Size())
		}
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 64
	}
	if c.Adam.LR == 0 {
		c.Adam = DefaultAdam()
	}
	if c.Trainable == nil {
		c.Trainable = make([]bool, len(specs))
		for i := range c.Trainable {
			c.Trainable[i] = true
		}
	}
	if len(c.Trainable) != len(specs) {
		return fmt.Errorf("engine: %d trainable flags for %d tensors of arch %s", len(c.Trainable), len(specs), c.Arch.Name)
	}
	c.Trainable = slices.Clone(c.Trainable)
	for i, s := range specs {
		if s.Buffer {
			c.Trainable[i] = false
		}
	}
	if c.BNMomentum == 0 {
		c.BNMomentum = DefaultBNMomentum
	}
	if c.BNMomentum < 0 || c.BNMomentum > 1 {
		return fmt.Errorf("engine: batch norm momentum %v outside (0, 1]", c.BNMomentum)
	}
	return nil
}

// OutputSize is the number of output floats per image.
func (a Arch) OutputSize() int {
	_, out, err := a.Analyse()
	if err != nil {
		return 0
	}
	return out.Size()
}

// InputSize is the number of input floats per image.
func (a Arch) InputSize() int { return a.InC * a.InH * a.InW }
