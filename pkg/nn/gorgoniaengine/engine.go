// Package gorgoniaengine computes edgeloop's networks on the CPU with Gorgonia: one
// expression graph per batch size and purpose (inference, loss, loss with gradients),
// all sharing the same weight memory, which the host-side Adam updates in place. Memory
// goes by liveness: a training step runs on Gorgonia's tape machine, its ops borrowing
// their outputs' memory from an arena until their last reader has run (arena.go);
// inference and the validation loss run the same ops as a pass over a few shared
// buffers (pass.go). Both give the numbers of one buffer per op, bit for bit.
//
// BLAS is Gorgonia's default, gonum's pure Go; a binary built with `-tags openblas` and
// cgo uses OpenBLAS for the GEMMs instead (see blas_openblas.go).
package gorgoniaengine

import (
	"fmt"
	"math"
	"slices"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// purpose of a graph.
type purpose int

const (
	forward purpose = iota
	lossOnly
	lossGrad
)

type graph struct {
	n  int
	g  *G.ExprGraph
	vm G.VM
	x  *G.Node
	// out is the network's output; in a graph with a pass, an input the pass's output
	// is copied into (zT) for the loss.
	out  *G.Node
	loss *G.Node
	// pass computes the network (forward and lossOnly graphs); nil: the tape does.
	pass *pass
	zT   *tensor.Dense
	// arena lends the ops of a training graph their outputs' memory.
	arena *arena
	// params are the trainable tensors' nodes (buffers have none); index their
	// positions in the ParamSpec list.
	params G.Nodes
	index  []int
	// targets: Y (classify) or W, T, M, B (detect); scale is 1/N.
	y, w, t, m, b *G.Node
	scale         *G.Node
	// input buffers bound to the input nodes.
	xT, yT, wT, tT, mT, bT *tensor.Dense
}

// Engine is the Gorgonia CPU engine. It is not safe for concurrent use; use one per
// goroutine (they can share nothing but read-only Params).
type Engine struct {
	cfg    nn.EngineConfig
	params *nn.Params // the live weights every graph computes with
	adam   *nn.Adam
	graphs map[[2]int]*graph
	outLen int
	// bn tells the batch norm ops about the current run.
	bn bnRun
	// zeros are the gradients of the buffers.
	zeros [][]float32
	// reference runs every graph on the tape machine with one buffer per op, without
	// passes or arenas: what the tests check them against, bit for bit.
	reference bool
	mu        sync.Mutex
}

var _ nn.Engine = (*Engine)(nil)

// New returns an engine computing with a private copy of cfg.Params.
func New(cfg nn.EngineConfig) (*Engine, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	p := cfg.Params.Clone()
	e := &Engine{cfg: cfg, params: p, adam: nn.NewAdam(cfg.Adam, p), graphs: map[[2]int]*graph{}, outLen: cfg.Arch.OutputSize(),
		zeros: make([][]float32, len(p.Specs))}
	for i, s := range p.Specs {
		if s.Buffer {
			e.zeros[i] = make([]float32, s.Shape.Size())
		}
	}
	return e, nil
}

// Factory builds Gorgonia engines; it satisfies the training code's engine factory.
func Factory(cfg nn.EngineConfig) (nn.Engine, error) { return New(cfg) }

// Name says what computes on this build: the CPU through Gorgonia, its BLAS, and the
// row kernels, e.g. "cpu (gorgonia, OpenBLAS, AVX2 kernels)".
func Name() string { return "cpu (gorgonia, " + blasName + ", " + rowKernels() + " kernels)" }

// Name implements nn.Engine.
func (e *Engine) Name() string { return Name() }

func (e *Engine) graph(n int, p purpose) (*graph, error) {
	key := [2]int{n, int(p)}
	if gr, ok := e.graphs[key]; ok {
		return gr, nil
	}
	gr, err := e.build(n, p)
	if err != nil {
		return nil, fmt.Errorf("gorgonia graph for batch %d: %w", n, err)
	}
	e.graphs[key] = gr
	return gr, nil
}

func (e *Engine) build(n int, p purpose) (gr *graph, err error) {
	defer func() {
		// Gorgonia reports some shape errors by panicking.
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	a := e.cfg.Arch
	gr = &graph{n: n, g: G.NewGraph()}
	dt := tensor.Float32
	// With a pass, the network's ops are built in a graph of their own that is never
	// run; gr.g holds the loss alone.
	planned := !e.reference && (p == forward || p == lossOnly)
	net := gr.g
	if planned {
		net = G.NewGraph()
	}
	gr.xT = tensor.New(tensor.WithShape(n, a.InC, a.InH, a.InW), tensor.Of(dt))
	gr.x = G.NewTensor(net, dt, 4, G.WithShape(n, a.InC, a.InH, a.InW), G.WithName("x"), G.WithValue(gr.xT))

	layers, specs, err := a.Graph()
	if err != nil {
		return nil, err
	}
	// Buffers (batch norm's running statistics) are not graph inputs: the ops read and
	// update the engine's parameter memory directly.
	nodes := make([]*G.Node, len(specs))
	for i, s := range specs {
		if s.Buffer {
			continue
		}
		shape := []int(s.Shape)
		if s.Bias && a.Layers[s.Layer].Kind == nn.Dense {
			shape = []int{1, s.Shape[0]}
		}
		t := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(e.params.Values[i]))
		nodes[i] = G.NewTensor(net, dt, len(shape), G.WithShape(shape...), G.WithName(s.Name), G.WithValue(t))
		gr.params = append(gr.params, nodes[i])
		gr.index = append(gr.index, i)
	}
	train := p == lossGrad && !e.cfg.FreezeBN
	outs := make([]*G.Node, len(layers))
	readers := make([]int, len(layers))
	for _, l := range layers {
		for _, j := range l.In {
			if j != nn.Input {
				readers[j]++
			}
		}
	}
	// fuseReLU[i]: conv i's only reader is the ReLU i+1, which the conv op applies.
	fuseReLU := func(i int) bool {
		return layers[i].Kind == nn.Conv && i+1 < len(layers) && layers[i+1].Kind == nn.ReLU &&
			readers[i] == 1 && slices.Equal(layers[i+1].In, []int{i})
	}
	var h *G.Node
	for i, l := range layers {
		if i > 0 && fuseReLU(i-1) { // computed by the conv before it
			outs[i] = outs[i-1]
			continue
		}
		in := make([]*G.Node, len(l.In))
		for k, j := range l.In {
			if j == nn.Input {
				in[k] = gr.x
			} else {
				in[k] = outs[j]
			}
		}
		h = in[0]
		name := layerName(l.Layer, i)
		switch l.Kind {
		case nn.Conv:
			var b *G.Node
			if !l.NoBias {
				b = nodes[l.Params[1]]
			}
			h, err = conv2d(h, nodes[l.Params[0]], b, l.Pad, l.ConvStride(), l.ConvGroups(), fuseReLU(i))
		case nn.ReLU:
			h, err = reluOp(name, h)
		case nn.ReLU6:
			h, err = relu6Op(name, h)
		case nn.SiLU:
			h, err = siluOp(name, h)
		case nn.MaxPool:
			if l.K == 0 { // the original 2×2/2 layer
				h, err = maxPool(name, h, 2, 2, 0)
			} else {
				h, err = maxPool(name, h, l.K, l.ConvStride(), l.Pad)
			}
		case nn.Flatten:
			h, err = G.Reshape(h, tensor.Shape{n, h.Shape().TotalSize() / n})
		case nn.Dense:
			h, err = dense(h, nodes[l.Params[0]], nodes[l.Params[1]])
		case nn.BatchNorm:
			h, err = batchNorm(name, h, nodes[l.Params[0]], nodes[l.Params[1]], e.params.Values[l.Params[2]], e.params.Values[l.Params[3]],
				l.BNEps(), e.cfg.BNMomentum, train, &e.bn)
		case nn.Add:
			for _, o := range in[1:] {
				if err == nil {
					h, err = G.Add(h, o)
				}
			}
		case nn.Concat:
			h, err = concat(name, in)
		case nn.GlobalAvgPool:
			h, err = gap(name, h)
		case nn.Upsample:
			h, err = upsample2(name, h)
		default:
			err = fmt.Errorf("not supported by the gorgonia engine")
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, l.Kind, err)
		}
		outs[i] = h
	}
	gr.out = h
	if planned {
		if gr.pass, err = newPass(layers, outs, fuseReLU, e.params, gr.xT.Data().([]float32)); err != nil {
			return nil, err
		}
		if p == forward {
			return gr, nil
		}
		shape := h.Shape().Clone()
		gr.zT = tensor.New(tensor.WithShape(shape...), tensor.Of(dt))
		gr.out = G.NewTensor(gr.g, dt, len(shape), G.WithShape(shape...), G.WithName("z"), G.WithValue(gr.zT))
	}
	if p == forward {
		gr.vm = G.NewTapeMachine(gr.g)
		return gr, nil
	}
	gr.scale = G.NewScalar(gr.g, dt, G.WithName("scale"), G.WithValue(float32(1)))
	switch {
	case a.Task == nn.Classify:
		err = gr.classifyLoss(a.Classes)
	case len(a.Levels) > 0:
		err = gr.multiScaleLoss(a)
	default:
		err = gr.detectLoss()
	}
	if err != nil {
		return nil, err
	}
	if p == lossOnly {
		gr.vm = G.NewTapeMachine(gr.g)
		return gr, nil
	}
	if _, err := G.Grad(gr.loss, gr.params...); err != nil {
		return nil, fmt.Errorf("gradients: %w", err)
	}
	if !e.reference {
		gr.lendFrom(newArena())
	}
	gr.vm = G.NewTapeMachine(gr.g, G.BindDualValues(gr.params...))
	return gr, nil
}

// classifyLoss: L = -scale · Σ Y ⊙ logsoftmax(z).
func (gr *graph) classifyLoss(classes int) error {
	gr.yT = tensor.New(tensor.WithShape(gr.n, classes), tensor.Of(tensor.Float32))
	gr.y = G.NewMatrix(gr.g, tensor.Float32, G.WithShape(gr.n, classes), G.WithName("y"), G.WithValue(gr.yT))
	lsm, err := G.LogSoftMax(gr.out)
	if err != nil {
		return err
	}
	prod, err := G.HadamardProd(lsm, gr.y)
	if err != nil {
		return err
	}
	sum, err := G.Sum(prod)
	if err != nil {
		return err
	}
	neg, err := G.Neg(sum)
	if err != nil {
		return err
	}
	gr.loss, err = G.Mul(neg, gr.scale)
	return err
}

// detectLoss: L = scale · [ Σ W⊙(softplus(z) − T⊙z) + λ Σ M⊙(σ(z) − B)² ].
func (gr *graph) detectLoss() error {
	shape := gr.out.Shape().Clone()
	mk := func(name string) (*G.Node, *tensor.Dense) {
		t := tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
		return G.NewTensor(gr.g, tensor.Float32, 4, G.WithShape(shape...), G.WithName(name), G.WithValue(t)), t
	}
	gr.w, gr.wT = mk("W")
	gr.t, gr.tT = mk("T")
	gr.m, gr.mT = mk("M")
	gr.b, gr.bT = mk("B")
	z := gr.out
	var err error
	do := func(f func() (*G.Node, error)) *G.Node {
		if err != nil {
			return nil
		}
		var n *G.Node
		n, err = f()
		return n
	}
	sp := do(func() (*G.Node, error) { return G.Softplus(z) })
	tz := do(func() (*G.Node, error) { return G.HadamardProd(gr.t, z) })
	bce := do(func() (*G.Node, error) { return G.Sub(sp, tz) })
	wbce := do(func() (*G.Node, error) { return G.HadamardProd(gr.w, bce) })
	objcls := do(func() (*G.Node, error) { return G.Sum(wbce) })
	sg := do(func() (*G.Node, error) { return G.Sigmoid(z) })
	diff := do(func() (*G.Node, error) { return G.Sub(sg, gr.b) })
	sq := do(func() (*G.Node, error) { return G.Square(diff) })
	msq := do(func() (*G.Node, error) { return G.HadamardProd(gr.m, sq) })
	box := do(func() (*G.Node, error) { return G.Sum(msq) })
	lam := G.NewScalar(gr.g, tensor.Float32, G.WithName("lambda"), G.WithValue(float32(nn.LambdaCoord)))
	wbox := do(func() (*G.Node, error) { return G.Mul(box, lam) })
	total := do(func() (*G.Node, error) { return G.Add(objcls, wbox) })
	gr.loss = do(func() (*G.Node, error) { return G.Mul(total, gr.scale) })
	return err
}

// multiScaleLoss: L = scale · nn.MultiScaleLoss(z, targets), computed by one op over
// the targets' memory, whose gradient is the one nn.MultiScaleLoss returns.
func (gr *graph) multiScaleLoss(a nn.Arch) error {
	shape := gr.out.Shape().Clone()
	mk := func(name string) (*G.Node, *tensor.Dense) {
		t := tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
		return G.NewTensor(gr.g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(t)), t
	}
	// The target nodes are not inputs of the loss op (it reads their memory), but load
	// fills them as for the grid detector.
	gr.w, gr.wT = mk("W")
	gr.t, gr.tT = mk("T")
	gr.m, gr.mT = mk("M")
	gr.b, gr.bT = mk("B")
	targets := &nn.DetTargets{W: gr.wT.Data().([]float32), T: gr.tT.Data().([]float32), M: gr.mT.Data().([]float32), B: gr.bT.Data().([]float32)}
	n := gr.n
	var dz []float32 // the gradient of the last forward pass
	back := func(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
		d, err := apply("msloss.dz", in[0].Shape(), func(out []float32, in [][]float32) {
			g := in[1][0]
			for i, v := range dz {
				out[i] = v * g
			}
		}, nil, in[0], grad)
		return G.Nodes{d}, err
	}
	l, err := apply("msloss", tensor.Shape{1}, func(out []float32, in [][]float32) {
		dz = grow(dz, len(in[0]))
		// One image per worker, each starting with clean vector state (clearUpper: the
		// loss is float64 scalar code), the images' losses added in order.
		per := a.OutputSize()
		losses := make([]float64, n)
		parallel(n, func(img int) {
			clearUpper()
			o, p := img*per, (img+1)*per
			t := &nn.DetTargets{W: targets.W[o:p], T: targets.T[o:p], M: targets.M[o:p], B: targets.B[o:p]}
			v, err := nn.MultiScaleLoss(a, in[0][o:p], t, 1, dz[o:p])
			if err != nil { // shapes are the graph's own: cannot happen; a NaN loss stops a training
				v = math.NaN()
			}
			losses[img] = v
		})
		var v float64
		for _, l := range losses {
			v += l
		}
		out[0] = float32(v)
	}, back, gr.out)
	if err != nil {
		return err
	}
	sum, err := G.Sum(l)
	if err != nil {
		return err
	}
	gr.loss, err = G.Mul(sum, gr.scale)
	return err
}

// load fills the graph's inputs from b, padding to the graph's batch size.
func (e *Engine) load(gr *graph, b *nn.Batch) error {
	a := e.cfg.Arch
	if b.N < 1 || b.N > gr.n {
		return fmt.Errorf("batch of %d images for a graph of %d", b.N, gr.n)
	}
	if len(b.X) != b.N*a.InputSize() {
		return fmt.Errorf("batch holds %d input values, want %d", len(b.X), b.N*a.InputSize())
	}
	e.bn.n = b.N
	xs := gr.xT.Data().([]float32)
	copy(xs, b.X)
	clear(xs[len(b.X):])
	if gr.scale != nil {
		if err := G.Let(gr.scale, float32(1)/float32(b.N)); err != nil {
			return err
		}
	}
	switch {
	case gr.yT != nil:
		if len(b.Labels) != b.N {
			return fmt.Errorf("batch of %d images has %d labels", b.N, len(b.Labels))
		}
		ys := gr.yT.Data().([]float32)
		clear(ys)
		for i, l := range b.Labels {
			if l < 0 || l >= a.Classes {
				return fmt.Errorf("label %d of image %d outside [0,%d)", l, i, a.Classes)
			}
			ys[i*a.Classes+l] = 1
		}
	case gr.wT != nil:
		if b.Det == nil || len(b.Det.W) != b.N*e.outLen {
			return fmt.Errorf("batch of %d images lacks detection targets", b.N)
		}
		for _, pair := range [][2][]float32{{gr.wT.Data().([]float32), b.Det.W}, {gr.tT.Data().([]float32), b.Det.T},
			{gr.mT.Data().([]float32), b.Det.M}, {gr.bT.Data().([]float32), b.Det.B}} {
			copy(pair[0], pair[1])
			clear(pair[0][len(pair[1]):])
		}
	}
	return nil
}

func (e *Engine) run(gr *graph) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gorgonia: %v", r)
		}
	}()
	defer gr.vm.Reset()
	return gr.vm.RunAll()
}

// Forward implements nn.Engine.
func (e *Engine) Forward(x []float32, n int) ([]float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	in := e.cfg.Arch.InputSize()
	if len(x) != n*in {
		return nil, fmt.Errorf("forward: %d input values for %d images of %d", len(x), n, in)
	}
	out := make([]float32, 0, n*e.outLen)
	for start := 0; start < n; {
		size := e.cfg.BatchSize
		if n-start == 1 {
			size = 1
		}
		k := min(size, n-start)
		gr, err := e.graph(size, forward)
		if err != nil {
			return nil, err
		}
		if err := e.load(gr, &nn.Batch{N: k, X: x[start*in : (start+k)*in]}); err != nil {
			return nil, err
		}
		var vals []float32
		if gr.pass != nil {
			if vals, err = gr.pass.run(); err != nil {
				return nil, err
			}
		} else {
			if err := gr.vm.RunAll(); err != nil {
				gr.vm.Reset()
				return nil, fmt.Errorf("forward: %w", err)
			}
			vals = gr.out.Value().Data().([]float32)
			gr.vm.Reset()
		}
		out = append(out, vals[:k*e.outLen]...)
		start += k
	}
	return out, nil
}

func (e *Engine) lossOf(b *nn.Batch, p purpose) (*graph, float32, error) {
	if b.N > e.cfg.BatchSize {
		return nil, 0, fmt.Errorf("batch of %d is larger than the engine's %d", b.N, e.cfg.BatchSize)
	}
	gr, err := e.graph(e.cfg.BatchSize, p)
	if err != nil {
		return nil, 0, err
	}
	if err := e.load(gr, b); err != nil {
		return nil, 0, err
	}
	if gr.pass != nil {
		z, err := gr.pass.run()
		if err != nil {
			return nil, 0, fmt.Errorf("loss: %w", err)
		}
		copy(gr.zT.Data().([]float32), z)
	}
	if gr.arena != nil {
		gr.arena.reset()
	}
	if err := gr.vm.RunAll(); err != nil {
		gr.vm.Reset()
		return nil, 0, fmt.Errorf("loss: %w", err)
	}
	loss := gr.loss.Value().Data().(float32)
	return gr, loss, nil
}

// Loss implements nn.Engine.
func (e *Engine) Loss(b *nn.Batch) (float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	gr, loss, err := e.lossOf(b, lossOnly)
	if err != nil {
		return 0, err
	}
	gr.vm.Reset()
	return loss, nil
}

// gradients runs forward and backward on b and hands the gradients (Gorgonia's own
// buffers) to use, then zeroes them: Gorgonia accumulates gradients across runs.
func (e *Engine) gradients(b *nn.Batch, use func(loss float32, grads [][]float32)) error {
	gr, loss, err := e.lossOf(b, lossGrad)
	if err != nil {
		return err
	}
	defer gr.vm.Reset()
	grads := slices.Clone(e.zeros)
	ts := make([]tensor.Tensor, len(gr.params))
	for i, p := range gr.params {
		g, err := p.Grad()
		if err != nil {
			return fmt.Errorf("gradient of %s: %w", p.Name(), err)
		}
		ts[i] = g.(tensor.Tensor)
		grads[gr.index[i]] = g.Data().([]float32)
	}
	use(loss, grads)
	for _, t := range ts {
		t.Zero()
	}
	return nil
}

// Gradients implements nn.Engine. The returned slices are copies.
func (e *Engine) Gradients(b *nn.Batch) (float32, [][]float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var loss float32
	var out [][]float32
	err := e.gradients(b, func(l float32, grads [][]float32) {
		loss = l
		for _, g := range grads {
			out = append(out, append([]float32(nil), g...))
		}
	})
	return loss, out, err
}

// Step implements nn.Engine.
func (e *Engine) Step(b *nn.Batch) (float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var loss float32
	// The running statistics move in this run only (Gradients changes nothing).
	e.bn.update = true
	defer func() { e.bn.update = false }()
	err := e.gradients(b, func(l float32, grads [][]float32) {
		loss = l
		if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
			return // the caller stops; the weights stay as they were
		}
		e.adam.Step(e.params, grads, e.cfg.Trainable)
	})
	return loss, err
}

// ReadParams implements nn.Engine.
func (e *Engine) ReadParams(p *nn.Params) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return p.CopyFrom(e.params)
}

// WriteParams implements nn.Engine.
func (e *Engine) WriteParams(p *nn.Params) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.params.CopyFrom(p)
}

// SetLR implements nn.Engine.
func (e *Engine) SetLR(lr float32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.adam.Cfg.LR = lr
}

// ReadAdam implements nn.Engine.
func (e *Engine) ReadAdam() (nn.AdamState, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.adam.State(), nil
}

// WriteAdam implements nn.Engine.
func (e *Engine) WriteAdam(s nn.AdamState) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.adam.SetState(s)
}

// Close implements nn.Engine.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, gr := range e.graphs {
		if gr.vm != nil {
			_ = gr.vm.Close()
		}
	}
	e.graphs = nil
	return nil
}

// HeldBytes is the memory the engine's graphs keep between runs: the ops' outputs and
// scratch, the passes' arenas, the inputs' buffers and the values Gorgonia's own ops left
// on their nodes, each allocation once. The weights and the optimiser's state are not
// counted.
func (e *Engine) HeldBytes() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[*float32]int{}
	add := func(b []float32) {
		if cap(b) > 0 {
			p := &b[:1][0]
			seen[p] = max(seen[p], cap(b))
		}
	}
	for _, gr := range e.graphs {
		add(gr.xT.Data().([]float32))
		if gr.pass != nil {
			for _, b := range gr.pass.bufs {
				add(b)
			}
		}
		if gr.arena != nil {
			for _, b := range gr.arena.bufs {
				add(b)
			}
		}
		for _, n := range gr.g.AllNodes() {
			if m := memOf(n.Op()); m != nil {
				add(m.own)
			}
			if op, ok := n.Op().(*convOp); ok {
				add(op.col)
			}
			if v, ok := n.Value().(tensor.Tensor); ok && v != nil {
				if f, ok := v.Data().([]float32); ok {
					add(f)
				}
			}
		}
	}
	var n int64
	for _, c := range seen {
		n += int64(c) * 4
	}
	return n
}
