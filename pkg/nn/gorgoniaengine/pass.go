package gorgoniaengine

import (
	"fmt"

	G "gorgonia.org/gorgonia"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// pass is a forward pass that the engine runs itself rather than on Gorgonia's tape
// machine: the layers' ops in layer order over an arena of buffers shared by
// liveness. A layer's output takes a free buffer of the arena and gives it back once
// its last reader has run, so a pass holds the few activations alive at one time (a
// block's input, its expansion, its depthwise output; the pyramid's skips) instead of
// one buffer per op, and its convs unroll each image into scratch memory they give
// back. The ops are the training graphs' own, run in the same order on the same
// inputs: a pass's outputs equal the tape machine's bit for bit.
//
// Inference (Forward) and the validation loss (Loss, whose small loss graph then reads
// the pass's output) run as passes; a training step, whose backward pass reads the
// activations, runs on the tape machine.
type pass struct {
	steps []step
	// vals[v] is value v: the input batch (v = 0) or the output of layer v−1; a layer
	// that only renames its input (Flatten, a ReLU its conv applies) has no value.
	vals []passVal
	bufs [][]float32 // the arena
	x    []float32   // the input batch
	out  int         // the network's output
}

// passVal is where a value lives: size floats at the start of the arena's buffer slot.
type passVal struct{ slot, size int }

// step computes one layer: run fills the memory of value out from its args'.
type step struct {
	run  func(out []float32, in [][]float32)
	args []arg
	out  int
}

// arg is a step's input: a value, or fixed memory (weights) when fixed is not nil.
type arg struct {
	val   int
	fixed []float32
}

// passOp is an op a pass can run: it fills out from its inputs' memory, in the order of
// the op's graph inputs, keeping nothing for a backward pass.
type passOp interface {
	passForward(out []float32, in [][]float32)
}

func (op *fnOp) passForward(out []float32, in [][]float32) { op.fwd(out, in) }

func (op *convOp) passForward(out []float32, in [][]float32) {
	var b []float32
	if len(in) > 2 {
		b = in[2]
	}
	op.forward(in[0], in[1], b, out, false)
}

func (op *denseOp) passForward(out []float32, in [][]float32) { op.compute(out, in) }

// newPass builds the pass of a network whose layers were built as outs (the ops'
// nodes) in a graph that is never run; fused(i) says conv i applies the ReLU after it.
// The weights are params' memory, read at each run.
func newPass(layers []nn.Node, outs []*G.Node, fused func(int) bool, params *nn.Params, x []float32) (*pass, error) {
	p := &pass{x: x, vals: make([]passVal, len(layers)+1)}
	p.vals[0].slot = -1
	base := make([]int, len(layers)+1) // the value holding each layer's output
	at := func(j int) int {
		if j == nn.Input {
			return 0
		}
		return base[j+1]
	}
	for i, l := range layers {
		v := i + 1
		base[v] = v
		if i > 0 && fused(i-1) {
			base[v] = base[i]
			continue
		}
		if l.Kind == nn.Flatten { // the same memory, (N, C·H·W)
			base[v] = at(l.In[0])
			continue
		}
		s := step{out: v}
		for _, j := range l.In {
			s.args = append(s.args, arg{val: at(j)})
		}
		if l.Kind == nn.Add {
			s.run = addInto
		} else {
			op, ok := outs[i].Op().(passOp)
			if !ok {
				return nil, fmt.Errorf("layer %d (%s): op %v cannot run in a pass", i, l.Kind, outs[i].Op())
			}
			s.run = op.passForward
			for _, k := range l.Params[:passParams(l)] {
				s.args = append(s.args, arg{fixed: params.Values[k]})
			}
		}
		p.vals[v].size = outs[i].Shape().TotalSize()
		p.steps = append(p.steps, s)
	}
	p.out = at(len(layers) - 1)
	p.plan()
	return p, nil
}

// passParams is how many of l's parameter tensors its op reads as inputs (batch norm's
// running statistics are the op's own).
func passParams(l nn.Node) int {
	switch l.Kind {
	case nn.Conv:
		if l.NoBias {
			return 1
		}
		return 2
	case nn.BatchNorm, nn.Dense:
		return 2
	}
	return 0
}

// plan gives every value a buffer of the arena. Walking the steps in order, a step's
// output takes the smallest free buffer that holds it (else the largest free one,
// grown; else a new one), and each input whose last reader this step is frees its
// buffer after the step: a step never writes over its own inputs. The network's
// output keeps its buffer.
func (p *pass) plan() {
	readers := make([]int, len(p.vals))
	for _, s := range p.steps {
		for _, a := range s.args {
			if a.fixed == nil {
				readers[a.val]++
			}
		}
	}
	var sizes, free []int
	take := func(size int) int {
		best := -1
		for k, b := range free {
			switch {
			case best < 0:
				best = k
			case sizes[b] >= size && (sizes[free[best]] < size || sizes[b] < sizes[free[best]]):
				best = k // a smaller one that fits
			case sizes[free[best]] < size && sizes[b] > sizes[free[best]]:
				best = k // none fits yet: the largest
			}
		}
		if best < 0 {
			sizes = append(sizes, size)
			return len(sizes) - 1
		}
		b := free[best]
		free = append(free[:best], free[best+1:]...)
		sizes[b] = max(sizes[b], size)
		return b
	}
	release := func(v int) {
		if v != 0 && v != p.out && readers[v] == 0 {
			free = append(free, p.vals[v].slot)
		}
	}
	for _, s := range p.steps {
		p.vals[s.out].slot = take(p.vals[s.out].size)
		for _, a := range s.args {
			if a.fixed == nil && a.val != 0 {
				readers[a.val]--
				release(a.val)
			}
		}
		release(s.out) // read by no one
	}
	p.bufs = make([][]float32, len(sizes))
	for i, n := range sizes {
		p.bufs[i] = make([]float32, n)
	}
}

// mem is value v's memory.
func (p *pass) mem(v int) []float32 {
	if v == 0 {
		return p.x
	}
	return p.bufs[p.vals[v].slot][:p.vals[v].size]
}

// run computes the pass on the input batch in p.x and returns the network's output
// (the arena's memory, valid until the next run).
func (p *pass) run() (out []float32, err error) {
	defer func() {
		if r := recover(); r != nil { // shapes are the graph's own: cannot happen
			err = fmt.Errorf("forward pass: %v", r)
		}
	}()
	in := make([][]float32, 0, 4)
	for _, s := range p.steps {
		in = in[:0]
		for _, a := range s.args {
			if a.fixed != nil {
				in = append(in, a.fixed)
			} else {
				in = append(in, p.mem(a.val))
			}
		}
		s.run(p.mem(s.out), in)
	}
	return p.mem(p.out), nil
}

// addInto is the Add layer as Gorgonia's Add computes it: ((in₀ + in₁) + in₂) + ….
func addInto(out []float32, in [][]float32) {
	chunks(len(out), func(lo, hi int) {
		o, a, b := out[lo:hi], in[0][lo:hi], in[1][lo:hi]
		for i := range o {
			o[i] = a[i] + b[i]
		}
		for _, c := range in[2:] {
			for i, v := range c[lo:hi] {
				o[i] += v
			}
		}
	})
}
