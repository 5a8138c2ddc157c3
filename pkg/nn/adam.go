package nn

import (
	"fmt"
	"math"
)

// AdamConfig are Adam's hyper-parameters (Kingma & Ba, 2015).
type AdamConfig struct {
	LR    float32 `json:"lr"`
	Beta1 float32 `json:"beta1"`
	Beta2 float32 `json:"beta2"`
	Eps   float32 `json:"eps"`
}

// DefaultAdam is lr 1e-3, β1 0.9, β2 0.999, ε 1e-8.
func DefaultAdam() AdamConfig { return AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8} }

// Adam is the optimiser's state on the host; the CUDA engine keeps the same state on
// the device and computes the same update.
type Adam struct {
	Cfg  AdamConfig
	t    int
	m, v [][]float32
}

// NewAdam returns Adam state for p.
func NewAdam(cfg AdamConfig, p *Params) *Adam {
	a := &Adam{Cfg: cfg, m: make([][]float32, len(p.Values)), v: make([][]float32, len(p.Values))}
	for i, x := range p.Values {
		a.m[i] = make([]float32, len(x))
		a.v[i] = make([]float32, len(x))
	}
	return a
}

// Step applies one bias-corrected update to the trainable tensors, as PyTorch's Adam:
// w -= lr/(1-β1^t) · m / (√v/√(1-β2^t) + ε).
func (a *Adam) Step(p *Params, grads [][]float32, trainable []bool) {
	a.t++
	c := a.Cfg
	step, rbc2 := a.Factors()
	for i, w := range p.Values {
		if !trainable[i] {
			continue
		}
		g, m, v := grads[i], a.m[i], a.v[i]
		for j := range w {
			m[j] = c.Beta1*m[j] + (1-c.Beta1)*g[j]
			v[j] = c.Beta2*v[j] + (1-c.Beta2)*g[j]*g[j]
			w[j] -= step * m[j] / (float32(math.Sqrt(float64(v[j])))*rbc2 + c.Eps)
		}
	}
}

// Factors are the step's scalars at the current t: lr/(1-β1^t) and 1/√(1-β2^t).
func (a *Adam) Factors() (step, rsqrtBC2 float32) {
	c := a.Cfg
	bc1 := 1 - math.Pow(float64(c.Beta1), float64(a.t))
	bc2 := 1 - math.Pow(float64(c.Beta2), float64(a.t))
	return float32(float64(c.LR) / bc1), float32(1 / math.Sqrt(bc2))
}

// Tick advances t without touching host state (engines that keep the moments on a
// device call it, then Factors).
func (a *Adam) Tick() { a.t++ }

// T is the number of steps taken.
func (a *Adam) T() int { return a.t }

// AdamState is Adam's state between steps: the steps taken and each tensor's first
// and second moments, in Params order. A training saves it to stop and resume where
// it left off (train.Config.Checkpoint).
type AdamState struct {
	T    int
	M, V [][]float32
}

// State copies the optimiser's state.
func (a *Adam) State() AdamState {
	s := AdamState{T: a.t, M: make([][]float32, len(a.m)), V: make([][]float32, len(a.v))}
	for i := range a.m {
		s.M[i] = append([]float32(nil), a.m[i]...)
		s.V[i] = append([]float32(nil), a.v[i]...)
	}
	return s
}

// SetState replaces the optimiser's state with a copy of s, which must have a moment
// of the right length for every tensor.
func (a *Adam) SetState(s AdamState) error {
	sizes := make([]int, len(a.m))
	for i, m := range a.m {
		sizes[i] = len(m)
	}
	if err := s.Fits(sizes); err != nil {
		return err
	}
	a.t = s.T
	for i := range a.m {
		copy(a.m[i], s.M[i])
		copy(a.v[i], s.V[i])
	}
	return nil
}

// SetSteps sets the steps taken (engines that keep the moments elsewhere).
func (a *Adam) SetSteps(t int) { a.t = t }

// Fits says why s cannot be the state of tensors of these sizes, if it cannot.
func (s AdamState) Fits(sizes []int) error {
	if s.T < 0 {
		return fmt.Errorf("adam state: a negative step count (%d)", s.T)
	}
	if len(s.M) != len(sizes) || len(s.V) != len(sizes) {
		return fmt.Errorf("adam state: moments of %d and %d tensors, the network has %d", len(s.M), len(s.V), len(sizes))
	}
	for i, n := range sizes {
		if len(s.M[i]) != n || len(s.V[i]) != n {
			return fmt.Errorf("adam state: tensor %d has moments of %d and %d values, want %d", i, len(s.M[i]), len(s.V[i]), n)
		}
	}
	return nil
}
