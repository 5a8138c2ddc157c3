package nn

import (
	"errors"
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

// InitParams returns He-initialised weights, zero biases (but PriorProb's logit for a
// multi-scale detector's objectness and class convs), and batch norm's γ = 1, β = 0,
// running mean 0 and running variance 1, reproducible from seed.
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
	// A multi-scale detector's objectness and class convs start at PriorProb.
	prior := map[int]bool{}
	for _, l := range a.Levels {
		prior[l.Obj], prior[l.Cls] = true, true
	}
	for i, s := range p.Specs {
		if s.Bias && prior[s.Layer] {
			for j := range p.Values[i] {
				p.Values[i][j] = priorBias()
			}
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

// RemapClasses rebuilds a trained network for another class list: the head's output
// units (a classifier's last dense layer; a detector's class channels of its last
// conv) of classes kept by name keep their weights, units of new classes are
// initialised small (weights ~N(0, 0.01²), bias the mean of the old units' biases, so
// that the model's answers on old classes do not move), and units of classes no longer
// listed are dropped. Every other tensor is copied. The result is a new Arch and new
// Params; a and p are not changed.
func RemapClasses(a Arch, p *Params, from, to []string, seed uint64) (Arch, *Params, error) {
	if len(from) != a.Classes {
		return Arch{}, nil, fmt.Errorf("remap classes: %d class names for a %d-class network", len(from), a.Classes)
	}
	if len(to) < 1 {
		return Arch{}, nil, errors.New("remap classes: no class left")
	}
	last := len(a.Layers) - 1
	out := a
	out.Classes = len(to)
	out.Layers = append([]Layer(nil), a.Layers...)
	// heads are the layers whose output units hold the classes; off is the first unit
	// that holds a class: 0 for a classifier and a multi-scale detector's class convs,
	// after the objectness and box channels for the grid detector.
	heads := map[int]bool{}
	off := 0
	switch {
	case a.Task == Classify && a.Layers[last].Kind == Dense:
		heads[last] = true
		out.Layers[last].Out = len(to)
	case a.Task == Detect && len(a.Levels) > 0:
		for _, l := range a.Levels {
			if l.Cls < 0 || l.Cls >= len(a.Layers) || a.Layers[l.Cls].Kind != Conv {
				return Arch{}, nil, fmt.Errorf("remap classes: arch %s: level class layer %d is not a conv", a.Name, l.Cls)
			}
			heads[l.Cls] = true
			out.Layers[l.Cls].Out = len(to)
		}
	case a.Task == Detect && a.Layers[last].Kind == Conv:
		heads[last] = true
		off = DetectOut(0)
		out.Layers[last].Out = DetectOut(len(to))
	default:
		return Arch{}, nil, fmt.Errorf("remap classes: arch %s: the last layer is a %s, not a %s head", a.Name, a.Layers[last].Kind, a.Task)
	}
	np, err := NewParams(out)
	if err != nil {
		return Arch{}, nil, fmt.Errorf("remap classes: %w", err)
	}
	if len(np.Specs) != len(p.Specs) {
		return Arch{}, nil, fmt.Errorf("remap classes: %d tensors, arch %s has %d", len(p.Specs), a.Name, len(np.Specs))
	}
	old := make(map[string]int, len(from))
	for i, c := range from {
		old[c] = i
	}
	// src[j] is the old unit of new unit j, or -1 for a new class.
	src := make([]int, off+len(to))
	for j := range src {
		src[j] = j // objectness and box channels map to themselves
	}
	for j, c := range to {
		src[off+j] = -1
		if i, ok := old[c]; ok {
			src[off+j] = off + i
		}
	}
	r := rand.New(rand.NewPCG(seed, 0x5bd1e995))
	for t, s := range np.Specs {
		ov := p.Values[t]
		if !heads[s.Layer] {
			if len(ov) != len(np.Values[t]) {
				return Arch{}, nil, fmt.Errorf("remap classes: tensor %s has %d values, want %d", s.Name, len(ov), len(np.Values[t]))
			}
			copy(np.Values[t], ov)
			continue
		}
		nOld, nNew := a.Layers[s.Layer].Out, out.Layers[s.Layer].Out
		switch {
		case s.Bias:
			var mean float32
			for i := off; i < nOld; i++ {
				mean += ov[i]
			}
			if nOld > off {
				mean /= float32(nOld - off)
			}
			for j, i := range src {
				if i >= 0 {
					np.Values[t][j] = ov[i]
				} else {
					np.Values[t][j] = mean
				}
			}
		case a.Task == Classify: // dense weights are (in, out), row-major
			in := len(ov) / nOld
			for k := 0; k < in; k++ {
				for j, i := range src {
					if i >= 0 {
						np.Values[t][k*nNew+j] = ov[k*nOld+i]
					} else {
						np.Values[t][k*nNew+j] = float32(r.NormFloat64() * 0.01)
					}
				}
			}
		default: // conv weights are (out, in, k, k)
			per := len(ov) / nOld
			for j, i := range src {
				dst := np.Values[t][j*per : (j+1)*per]
				if i >= 0 {
					copy(dst, ov[i*per:(i+1)*per])
					continue
				}
				for k := range dst {
					dst[k] = float32(r.NormFloat64() * 0.01)
				}
			}
		}
	}
	return out, np, nil
}
