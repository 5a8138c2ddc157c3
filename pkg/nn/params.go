package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Params are a network's weights, in the order Arch.Analyse lists them.
type Params struct {
	Specs  []ParamSpec
	Values [][]float32
}

// NewParams allocates zeroed parameters for a.
func NewParams(a Arch) (*Params, error) {
	specs, _, err := a.Analyse()
	if err != nil {
		return nil, err
	}
	p := &Params{Specs: specs, Values: make([][]float32, len(specs))}
	for i, s := range specs {
		p.Values[i] = make([]float32, s.Shape.Size())
	}
	return p, nil
}

// InitParams returns He-initialised weights, zero biases, and batch norm's γ = 1,
// β = 0, running mean 0 and running variance 1, reproducible from seed.
func InitParams(a Arch, seed uint64) (*Params, error) {
	p, err := NewParams(a)
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for i, s := range p.Specs {
		if s.Ones {
			for j := range p.Values[i] {
				p.Values[i][j] = 1
			}
			continue
		}
		if s.Bias || s.Buffer {
			continue
		}
		std := math.Sqrt(2 / float64(s.FanIn))
		for j := range p.Values[i] {
			p.Values[i][j] = float32(r.NormFloat64() * std)
		}
	}
	return p, nil
}

// Clone returns a deep copy.
func (p *Params) Clone() *Params {
	c := &Params{Specs: p.Specs, Values: make([][]float32, len(p.Values))}
	for i, v := range p.Values {
		c.Values[i] = append([]float32(nil), v...)
	}
	return c
}

// CopyFrom copies q's values into p; the shapes must match.
func (p *Params) CopyFrom(q *Params) error {
	if len(p.Values) != len(q.Values) {
		return fmt.Errorf("params: %d tensors, source has %d", len(p.Values), len(q.Values))
	}
	for i := range p.Values {
		if len(p.Values[i]) != len(q.Values[i]) {
			return fmt.Errorf("params %s: %d values, source has %d", p.Specs[i].Name, len(p.Values[i]), len(q.Values[i]))
		}
		copy(p.Values[i], q.Values[i])
	}
	return nil
}

// Count is the total number of weights.
func (p *Params) Count() int {
	n := 0
	for _, v := range p.Values {
		n += len(v)
	}
	return n
}

// CheckFinite returns an error naming the first tensor holding NaN or Inf.
func (p *Params) CheckFinite() error {
	for i, v := range p.Values {
		for j, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("parameter %s[%d] is %v", p.Specs[i].Name, j, x)
			}
		}
	}
	return nil
}

// Trainable marks which tensors an optimiser updates: all of them, or only the head's
// when freezeBackbone; never a buffer (batch norm's running statistics).
func Trainable(a Arch, p *Params, freezeBackbone bool) []bool {
	t := make([]bool, len(p.Specs))
	for i, s := range p.Specs {
		t[i] = !s.Buffer && (!freezeBackbone || s.Layer >= a.HeadFrom)
	}
	return t
}
