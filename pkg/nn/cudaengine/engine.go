package cudaengine

import (
	"fmt"
	"math"
	"sync"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// layer is one step of the network with its shapes (without the batch dimension) and
// its device buffers at the engine's batch size.
type layer struct {
	nn.Layer
	in, out nn.Shape
	param   int // index of its weight tensor (conv, dense), else -1
	act     buf // its output
	col     buf // conv: the im2col matrix, kept for the weight gradient
	idx     buf // maxpool: the winners
}

// Engine is the CUDA engine. Like the CPU engine it is not meant for concurrent use;
// its methods are serialised.
type Engine struct {
	cfg    nn.EngineConfig
	dev    device
	specs  []nn.ParamSpec
	layers []layer
	bs     int // the batch size every buffer is sized for
	inLen  int
	outLen int

	w, g, m, v []buf // weights, gradients, Adam moments
	x          buf
	labels     buf
	det        [4]buf // W, T, M, B
	dz         buf    // gradient of the output
	tmp        buf    // conv GEMM result / permuted gradient
	dcol       buf
	grad       [2]buf // ping-pong activation gradients
	loss       buf    // one double

	adam *nn.Adam // t and the factors; the moments live on the device
	mu   sync.Mutex
}

// New builds an engine on d with a copy of cfg.Params.
func New(d device, cfg nn.EngineConfig) (*Engine, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	specs, _, err := cfg.Arch.Analyse()
	if err != nil {
		return nil, err
	}
	for i, l := range cfg.Arch.Layers {
		switch {
		case len(l.From) > 0, l.Kind == nn.Conv && (l.ConvStride() != 1 || l.ConvGroups() != 1 || l.NoBias), l.Kind == nn.MaxPool && l.K != 0:
		case l.Kind == nn.Conv, l.Kind == nn.ReLU, l.Kind == nn.MaxPool, l.Kind == nn.Flatten, l.Kind == nn.Dense:
			continue
		}
		return nil, fmt.Errorf("cuda engine: layer %d (%s) is not supported yet", i, l.Kind)
	}
	e := &Engine{cfg: cfg, dev: d, specs: specs, bs: cfg.BatchSize, inLen: cfg.Arch.InputSize(), outLen: cfg.Arch.OutputSize(),
		adam: nn.NewAdam(cfg.Adam, &nn.Params{})}
	err = d.Do(func() error {
		if err := e.allocate(); err != nil {
			e.release()
			return err
		}
		return e.writeParams(cfg.Params)
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// allocate plans the layers and allocates every buffer once.
func (e *Engine) allocate() error {
	a, d, B := e.cfg.Arch, e.dev, e.bs
	var err error
	alloc := func(n int) buf {
		if err != nil {
			return buf{}
		}
		var b buf
		b, err = d.alloc(n)
		return b
	}
	shape := nn.Shape{a.InC, a.InH, a.InW}
	maxAct, maxTmp, maxCol := shape.Size(), 0, 0
	pi := 0
	for _, l := range a.Layers {
		ly := layer{Layer: l, in: shape, param: -1}
		switch l.Kind {
		case nn.Conv:
			ly.out = nn.Shape{l.Out, shape[1] + 2*l.Pad - l.K + 1, shape[2] + 2*l.Pad - l.K + 1}
			ly.param = pi
			pi += 2
			hw := ly.out[1] * ly.out[2]
			ly.col = alloc(shape[0] * l.K * l.K * B * hw)
			maxTmp = max(maxTmp, l.Out*B*hw)
			maxCol = max(maxCol, shape[0]*l.K*l.K*B*hw)
		case nn.MaxPool:
			ly.out = nn.Shape{shape[0], shape[1] / 2, shape[2] / 2}
			ly.idx = alloc(B * ly.out.Size())
		case nn.Flatten:
			ly.out = nn.Shape{shape.Size()}
		case nn.Dense:
			ly.out = nn.Shape{l.Out}
			ly.param = pi
			pi += 2
		default: // relu
			ly.out = shape
		}
		if l.Kind != nn.Flatten {
			ly.act = alloc(B * ly.out.Size())
		}
		maxAct = max(maxAct, ly.out.Size())
		e.layers = append(e.layers, ly)
		shape = ly.out
	}
	for _, s := range e.specs {
		n := s.Shape.Size()
		e.w, e.g, e.m, e.v = append(e.w, alloc(n)), append(e.g, alloc(n)), append(e.m, alloc(n)), append(e.v, alloc(n))
	}
	e.x = alloc(B * e.inLen)
	if a.Task == nn.Classify {
		e.labels = alloc(B)
	} else {
		for i := range e.det {
			e.det[i] = alloc(B * e.outLen)
		}
	}
	e.dz = alloc(B * e.outLen)
	e.tmp = alloc(maxTmp)
	e.dcol = alloc(maxCol)
	e.grad = [2]buf{alloc(B * maxAct), alloc(B * maxAct)}
	e.loss = alloc(2)
	if err != nil {
		return err
	}
	for i := range e.m {
		if err := d.zero(e.m[i]); err != nil {
			return err
		}
		if err := d.zero(e.v[i]); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) release() {
	d := e.dev
	for _, l := range e.layers {
		d.free(l.act)
		d.free(l.col)
		d.free(l.idx)
	}
	for i := range e.w {
		d.free(e.w[i])
		d.free(e.g[i])
		d.free(e.m[i])
		d.free(e.v[i])
	}
	for _, b := range []buf{e.x, e.labels, e.det[0], e.det[1], e.det[2], e.det[3], e.dz, e.tmp, e.dcol, e.grad[0], e.grad[1], e.loss} {
		d.free(b)
	}
	e.layers, e.w = nil, nil
}

// Name implements nn.Engine.
func (e *Engine) Name() string { return "cuda (" + e.dev.String() + ")" }

// input returns what layer i reads.
func (e *Engine) input(i int) buf {
	if i == 0 {
		return e.x
	}
	if e.layers[i-1].Kind == nn.Flatten {
		return e.input(i - 1)
	}
	return e.layers[i-1].act
}

// output is the network's output buffer.
func (e *Engine) output() buf { return e.input(len(e.layers)) }

// forward runs every layer on the loaded batch.
func (e *Engine) forward() error {
	d, B := e.dev, e.bs
	for i := range e.layers {
		l := &e.layers[i]
		in := e.input(i)
		var err error
		switch l.Kind {
		case nn.Conv:
			C, H, W := l.in[0], l.in[1], l.in[2]
			Ho, Wo := l.out[1], l.out[2]
			ckk, cols := C*l.K*l.K, B*Ho*Wo
			if err = d.launch("im2col", ckk*cols, in, l.col, B, C, H, W, l.K, l.Pad, Ho, Wo); err != nil {
				break
			}
			if err = d.gemm(false, false, l.Out, cols, ckk, 1, e.w[l.param], l.col, 0, e.tmp); err != nil {
				break
			}
			err = d.launch("bias_nchw", B*l.out.Size(), e.tmp, e.w[l.param+1], l.act, B, l.Out, Ho*Wo)
		case nn.ReLU:
			n := B * l.out.Size()
			err = d.launch("relu_fwd", n, in, l.act, int64(n))
		case nn.MaxPool:
			err = d.launch("maxpool_fwd", B*l.out.Size(), in, l.act, l.idx, B*l.in[0], l.in[1], l.in[2])
		case nn.Flatten:
		case nn.Dense:
			if err = d.gemm(false, false, B, l.Out, l.in[0], 1, in, e.w[l.param], 0, l.act); err != nil {
				break
			}
			err = d.launch("add_bias_rows", B*l.Out, l.act, e.w[l.param+1], B, l.Out)
		}
		if err != nil {
			return fmt.Errorf("layer %d (%s): %w", i, l.Kind, err)
		}
	}
	return nil
}

// lossAndDz computes the batch's loss (mean over its n real images) and the output's
// gradient.
func (e *Engine) lossAndDz(n int) (float32, error) {
	d := e.dev
	if err := d.zero(e.loss); err != nil {
		return 0, err
	}
	scale := 1 / float32(n)
	var err error
	if e.cfg.Arch.Task == nn.Classify {
		err = d.launch("softmax_xent", e.bs, e.output(), e.labels, e.dz, e.loss, n, e.bs, e.cfg.Arch.Classes, scale)
	} else {
		total := e.bs * e.outLen
		err = d.launchGrid("detect_loss", min(max(1, (total+255)/256), 4096), e.output(), e.det[0], e.det[1], e.det[2], e.det[3],
			e.dz, e.loss, int64(total), scale, float32(nn.LambdaCoord))
	}
	if err != nil {
		return 0, err
	}
	l, err := d.readLoss(e.loss)
	return float32(l), err
}

// backward propagates dz through the layers into every weight gradient.
func (e *Engine) backward() error {
	d, B := e.dev, e.bs
	dy := e.dz
	next := 0
	for i := len(e.layers) - 1; i >= 0; i-- {
		l := &e.layers[i]
		in := e.input(i)
		needDx := i > 0
		dx := e.grad[next]
		var err error
		switch l.Kind {
		case nn.Conv:
			C := l.in[0]
			Ho, Wo := l.out[1], l.out[2]
			ckk, cols := C*l.K*l.K, B*Ho*Wo
			if err = d.launch("nchw_to_cnhw", B*l.out.Size(), dy, e.tmp, B, l.Out, Ho*Wo); err != nil {
				break
			}
			if err = d.gemm(false, true, l.Out, ckk, cols, 1, e.tmp, l.col, 0, e.g[l.param]); err != nil {
				break
			}
			if err = d.launchGrid("row_sum", l.Out, e.tmp, e.g[l.param+1], l.Out, int64(cols)); err != nil {
				break
			}
			if needDx {
				if err = d.gemm(true, false, ckk, cols, l.Out, 1, e.w[l.param], e.tmp, 0, e.dcol); err != nil {
					break
				}
				err = d.launch("col2im", B*l.in.Size(), e.dcol, dx, B, C, l.in[1], l.in[2], l.K, l.Pad, Ho, Wo)
			}
		case nn.ReLU:
			n := B * l.out.Size()
			err = d.launch("relu_bwd", n, l.act, dy, dx, int64(n))
		case nn.MaxPool:
			if err = d.zero(buf{p: dx.p, n: B * l.in.Size()}); err != nil {
				break
			}
			n := B * l.out.Size()
			err = d.launch("maxpool_bwd", n, dy, l.idx, dx, int64(n))
		case nn.Flatten:
			continue // same memory, same gradient
		case nn.Dense:
			if err = d.gemm(true, false, l.in[0], l.Out, B, 1, in, dy, 0, e.g[l.param]); err != nil {
				break
			}
			if err = d.launch("col_sum", l.Out, dy, e.g[l.param+1], B, l.Out); err != nil {
				break
			}
			if needDx {
				err = d.gemm(false, true, B, l.in[0], l.Out, 1, dy, e.w[l.param], 0, dx)
			}
		}
		if err != nil {
			return fmt.Errorf("layer %d (%s) backward: %w", i, l.Kind, err)
		}
		dy, next = dx, 1-next
	}
	return nil
}

// load uploads a batch, zero-padded to the engine's batch size.
func (e *Engine) load(b *nn.Batch, targets bool) error {
	a, d := e.cfg.Arch, e.dev
	if b.N < 1 || b.N > e.bs {
		return fmt.Errorf("batch of %d images for an engine of %d", b.N, e.bs)
	}
	if len(b.X) != b.N*e.inLen {
		return fmt.Errorf("batch holds %d input values, want %d", len(b.X), b.N*e.inLen)
	}
	if b.N < e.bs {
		if err := d.zero(e.x); err != nil {
			return err
		}
	}
	if err := d.upload(e.x, b.X); err != nil {
		return err
	}
	if !targets {
		return nil
	}
	if a.Task == nn.Classify {
		if len(b.Labels) != b.N {
			return fmt.Errorf("batch of %d images has %d labels", b.N, len(b.Labels))
		}
		ls := make([]int32, e.bs)
		for i, l := range b.Labels {
			if l < 0 || l >= a.Classes {
				return fmt.Errorf("label %d of image %d outside [0,%d)", l, i, a.Classes)
			}
			ls[i] = int32(l)
		}
		return d.uploadInts(e.labels, ls)
	}
	if b.Det == nil || len(b.Det.W) != b.N*e.outLen {
		return fmt.Errorf("batch of %d images lacks detection targets", b.N)
	}
	for i, t := range [][]float32{b.Det.W, b.Det.T, b.Det.M, b.Det.B} {
		if b.N < e.bs {
			if err := d.zero(e.det[i]); err != nil {
				return err
			}
		}
		if err := d.upload(e.det[i], t); err != nil {
			return err
		}
	}
	return nil
}

// Forward implements nn.Engine.
func (e *Engine) Forward(x []float32, n int) ([]float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(x) != n*e.inLen {
		return nil, fmt.Errorf("forward: %d input values for %d images of %d", len(x), n, e.inLen)
	}
	out := make([]float32, n*e.outLen)
	err := e.dev.Do(func() error {
		for start := 0; start < n; start += e.bs {
			k := min(e.bs, n-start)
			if err := e.load(&nn.Batch{N: k, X: x[start*e.inLen : (start+k)*e.inLen]}, false); err != nil {
				return err
			}
			if err := e.forward(); err != nil {
				return err
			}
			if err := e.dev.download(out[start*e.outLen:(start+k)*e.outLen], e.output()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	return out, nil
}

// Loss implements nn.Engine.
func (e *Engine) Loss(b *nn.Batch) (float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var loss float32
	err := e.dev.Do(func() error {
		if err := e.load(b, true); err != nil {
			return err
		}
		if err := e.forward(); err != nil {
			return err
		}
		var err error
		loss, err = e.lossAndDz(b.N)
		return err
	})
	return loss, err
}

// step runs forward, loss and backward on the device thread.
func (e *Engine) step(b *nn.Batch) (float32, error) {
	if err := e.load(b, true); err != nil {
		return 0, err
	}
	if err := e.forward(); err != nil {
		return 0, err
	}
	loss, err := e.lossAndDz(b.N)
	if err != nil {
		return 0, err
	}
	return loss, e.backward()
}

// Gradients implements nn.Engine.
func (e *Engine) Gradients(b *nn.Batch) (float32, [][]float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var loss float32
	grads := make([][]float32, len(e.specs))
	err := e.dev.Do(func() error {
		var err error
		if loss, err = e.step(b); err != nil {
			return err
		}
		for i, s := range e.specs {
			grads[i] = make([]float32, s.Shape.Size())
			if err := e.dev.download(grads[i], e.g[i]); err != nil {
				return err
			}
		}
		return nil
	})
	return loss, grads, err
}

// Step implements nn.Engine.
func (e *Engine) Step(b *nn.Batch) (float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var loss float32
	err := e.dev.Do(func() error {
		var err error
		if loss, err = e.step(b); err != nil {
			return err
		}
		if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
			return nil // the caller stops; the weights stay as they were
		}
		e.adam.Tick()
		step, rbc2 := e.adam.Factors()
		c := e.adam.Cfg
		for i, s := range e.specs {
			if !e.cfg.Trainable[i] {
				continue
			}
			n := s.Shape.Size()
			if err := e.dev.launch("adam", n, e.w[i], e.g[i], e.m[i], e.v[i], int64(n), c.Beta1, c.Beta2, step, rbc2, c.Eps); err != nil {
				return err
			}
		}
		return nil
	})
	return loss, err
}

// ReadParams implements nn.Engine.
func (e *Engine) ReadParams(p *nn.Params) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(p.Values) != len(e.specs) {
		return fmt.Errorf("read params: %d tensors, engine has %d", len(p.Values), len(e.specs))
	}
	return e.dev.Do(func() error {
		for i := range e.specs {
			if len(p.Values[i]) != e.w[i].n {
				return fmt.Errorf("read params: %s has %d values, want %d", e.specs[i].Name, len(p.Values[i]), e.w[i].n)
			}
			if err := e.dev.download(p.Values[i], e.w[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// WriteParams implements nn.Engine.
func (e *Engine) WriteParams(p *nn.Params) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dev.Do(func() error { return e.writeParams(p) })
}

func (e *Engine) writeParams(p *nn.Params) error {
	if len(p.Values) != len(e.specs) {
		return fmt.Errorf("write params: %d tensors, engine has %d", len(p.Values), len(e.specs))
	}
	for i := range e.specs {
		if len(p.Values[i]) != e.w[i].n {
			return fmt.Errorf("write params: %s has %d values, want %d", e.specs[i].Name, len(p.Values[i]), e.w[i].n)
		}
		if err := e.dev.upload(e.w[i], p.Values[i]); err != nil {
			return err
		}
	}
	return nil
}

// SetLR implements nn.Engine.
func (e *Engine) SetLR(lr float32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.adam.Cfg.LR = lr
}

// Close implements nn.Engine: it frees the engine's device memory.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.w == nil {
		return nil
	}
	return e.dev.Do(func() error { e.release(); return nil })
}
