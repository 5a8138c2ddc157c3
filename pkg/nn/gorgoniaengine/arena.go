package gorgoniaengine

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// outMem is where an op's output lives: memory of the op's own, allocated on its first
// run and reused after (the tape machine forgets its values after each run and would
// otherwise have every op allocate its output again), or, in a training graph, memory
// its arena lends for one run.
type outMem struct {
	own   []float32
	arena *arena
	// readers is how many ops read the output, all of them the engine's own, which
	// give the memory back; 0: the output is kept until the run ends.
	readers int
}

// get is the output's memory for this run, of shape. An output kept for the whole run
// has memory of its own: lent, it would hold a buffer the arena could lend again.
func (m *outMem) get(shape tensor.Shape) tensor.Tensor {
	if m.arena == nil || m.readers == 0 {
		return owned(&m.own, shape)
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(m.arena.lend(shape.TotalSize(), m.readers)))
}

// read tells the arena that an op has read its inputs.
func (m *outMem) read(in []G.Value) {
	if m.arena != nil {
		m.arena.read(in)
	}
}

// memOf is the output memory of one of the engine's ops; nil for Gorgonia's own.
func memOf(op G.Op) *outMem {
	switch op := op.(type) {
	case *fnOp:
		return &op.mem
	case *convOp:
		return &op.out
	case *convGradOp:
		return &op.out
	case *denseOp:
		return &op.mem
	}
	return nil
}

// arena lends the ops of a training graph the memory of their outputs for one run and
// takes each buffer back once the last op reading it has run: a training step then
// holds the activations its backward pass still needs and the gradients in flight
// rather than one buffer per op (an activation's gradient dies as soon as the ops
// below have read it). Buffers are reused in the tape's order, whatever it is: a buffer
// is free only when every reader has run. An output that nothing reads (a parameter's
// gradient) or that one of Gorgonia's own ops reads (Add, Reshape, the loss), which
// gives nothing back, has memory of its own instead. The runs of a graph lend alike,
// so after the first nothing is allocated.
type arena struct {
	bufs [][]float32
	free []int // indices into bufs
	lent map[*float32]loan
}

// loan is bufs[i] lent for an output that left readers have still to read.
type loan struct{ i, left int }

func newArena() *arena { return &arena{lent: map[*float32]loan{}} }

// reset takes every buffer back: a run starts.
func (a *arena) reset() {
	a.free = a.free[:0]
	for i := range a.bufs {
		a.free = append(a.free, i)
	}
	clear(a.lent)
}

// lend returns n floats of the smallest free buffer that holds them, or of a new one.
func (a *arena) lend(n, readers int) []float32 {
	best := -1
	for k, i := range a.free {
		if c := cap(a.bufs[i]); c >= n && (best < 0 || c < cap(a.bufs[a.free[best]])) {
			best = k
		}
	}
	var i int
	if best < 0 {
		a.bufs = append(a.bufs, make([]float32, n))
		i = len(a.bufs) - 1
	} else {
		i = a.free[best]
		a.free = append(a.free[:best], a.free[best+1:]...)
	}
	b := a.bufs[i][:n]
	a.lent[&a.bufs[i][:1][0]] = loan{i: i, left: readers}
	return b
}

// read counts one reader of each input lent from the arena (an input read twice by
// an op counts once) and takes back the buffers whose readers have all run.
func (a *arena) read(in []G.Value) {
	for k, v := range in {
		p := first(v)
		if p == nil {
			continue
		}
		dup := false
		for _, w := range in[:k] {
			dup = dup || first(w) == p
		}
		l, ok := a.lent[p]
		if dup || !ok {
			continue
		}
		if l.left--; l.left > 0 {
			a.lent[p] = l
		} else {
			a.free = append(a.free, l.i)
			delete(a.lent, p)
		}
	}
}

// first is the address of v's first float, nil when v is not a float32 tensor.
func first(v G.Value) *float32 {
	t, ok := v.(tensor.Tensor)
	if !ok {
		return nil
	}
	f, ok := t.Data().([]float32)
	if !ok || len(f) == 0 {
		return nil
	}
	return &f[0]
}

// lendFrom makes the engine's ops in gr's graph take their outputs' memory from a,
// each knowing its readers.
func (gr *graph) lendFrom(a *arena) {
	gr.arena = a
	for _, n := range gr.g.AllNodes() {
		m := memOf(n.Op())
		if m == nil {
			continue
		}
		m.arena, m.readers = a, 0
		readers := 0
		for it := gr.g.To(n.ID()); it.Next(); {
			if memOf(it.Node().(*G.Node).Op()) == nil {
				readers = 0 // one of Gorgonia's ops: it gives nothing back
				break
			}
			readers++
		}
		m.readers = readers
	}
}
