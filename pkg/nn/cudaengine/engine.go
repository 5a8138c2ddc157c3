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
	nn.Node
	act  buf // its output (a flatten's is its input's)
	dact buf // the gradient of its output (the last layer's is dz)
	col  buf // conv: the im2col matrix, kept for the weight gradient
	idx  buf // maxpool: the winners
	// bn: the statistics the last forward pass used.
	mean, inv buf
}

// mode is how a forward pass treats batch norm.
type mode int

const (
	infer       mode = iota // running statistics
	train                   // batch statistics (running ones when FreezeBN)
	trainUpdate             // train, and move the running statistics
)

// Engine is the CUDA engine. Like the CPU engine it is not meant for concurrent use;
// its methods are serialised.
type Engine struct {
	cfg    nn.EngineConfig
	dev    device
	specs  []nn.ParamSpec
	layers []layer
	bs     int // the batch size every buffer is sized for
	n      int // the real images of the loaded batch
	inLen  int
	outLen int

	w, g, m, v []buf // weights, gradients, Adam moments
	x          buf
	labels     buf
	det        [4]buf // W, T, M, B
	dz         buf    // gradient of the output
	tmp        buf    // conv GEMM result / permuted gradient
	dcol       buf
	scratch    buf // a gradient on its way into a layer's dact that already holds one
	zeroBias   buf // the bias of convs without one
	loss       buf // one double

	adam *nn.Adam // t and the factors; the moments live on the device
	mu   sync.Mutex
}

var _ nn.Engine = (*Engine)(nil)

// New builds an engine on d with a copy of cfg.Params.
func New(d device, cfg nn.EngineConfig) (*Engine, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	nodes, specs, err := cfg.Arch.Graph()
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, dev: d, specs: specs, bs: cfg.BatchSize, inLen: cfg.Arch.InputSize(), outLen: cfg.Arch.OutputSize(),
		adam: nn.NewAdam(cfg.Adam, &nn.Params{})}
	err = d.Do(func() error {
		if err := e.allocate(nodes); err != nil {
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
func (e *Engine) allocate(nodes []nn.Node) error {
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
	maxAct, maxTmp, maxCol, maxOut := a.InputSize(), 0, 0, 0
	for i, nd := range nodes {
		ly := layer{Node: nd}
		in := nd.InShapes[0]
		switch nd.Kind {
		case nn.Conv:
			if nd.ConvGroups() == 1 {
				hw := nd.Out[1] * nd.Out[2]
				ckk := in[0] * nd.K * nd.K
				ly.col = alloc(ckk * B * hw)
				maxTmp = max(maxTmp, nd.Out[0]*B*hw)
				maxCol = max(maxCol, ckk*B*hw)
			}
			maxOut = max(maxOut, nd.Out[0])
		case nn.MaxPool:
			ly.idx = alloc(B * nd.Out.Size())
		case nn.BatchNorm:
			ly.mean, ly.inv = alloc(in[0]), alloc(in[0])
		}
		if nd.Kind != nn.Flatten {
			ly.act = alloc(B * nd.Out.Size())
		}
		if i < len(nodes)-1 {
			ly.dact = alloc(B * nd.Out.Size())
		}
		maxAct = max(maxAct, nd.Out.Size())
		e.layers = append(e.layers, ly)
	}
	for i := range e.layers {
		if e.layers[i].Kind == nn.Flatten {
			e.layers[i].act = e.src(e.layers[i].In[0])
		}
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
	e.layers[len(e.layers)-1].dact = e.dz
	e.tmp = alloc(maxTmp)
	e.dcol = alloc(maxCol)
	e.scratch = alloc(B * maxAct)
	e.zeroBias = alloc(maxOut)
	e.loss = alloc(2)
	if err != nil {
		return err
	}
	for i := range e.m {
		for _, b := range []buf{e.m[i], e.v[i], e.g[i]} { // buffers' gradients stay zero
			if err := d.zero(b); err != nil {
				return err
			}
		}
	}
	return d.zero(e.zeroBias)
}

func (e *Engine) release() {
	d := e.dev
	for i, l := range e.layers {
		if l.Kind != nn.Flatten {
			d.free(l.act)
		}
		if i < len(e.layers)-1 {
			d.free(l.dact)
		}
		for _, b := range []buf{l.col, l.idx, l.mean, l.inv} {
			d.free(b)
		}
	}
	for i := range e.w {
		d.free(e.w[i])
		d.free(e.g[i])
		d.free(e.m[i])
		d.free(e.v[i])
	}
	for _, b := range []buf{e.x, e.labels, e.det[0], e.det[1], e.det[2], e.det[3], e.dz, e.tmp, e.dcol, e.scratch, e.zeroBias, e.loss} {
		d.free(b)
	}
	e.layers, e.w = nil, nil
}

// Name implements nn.Engine.
func (e *Engine) Name() string { return "cuda (" + e.dev.String() + ")" }

// src is the output of layer j (nn.Input: the network's input).
func (e *Engine) src(j int) buf {
	if j == nn.Input {
		return e.x
	}
	return e.layers[j].act
}

// output is the network's output buffer.
func (e *Engine) output() buf { return e.layers[len(e.layers)-1].act }

// forward runs every layer on the loaded batch.
func (e *Engine) forward(md mode) error {
	d, B := e.dev, e.bs
	for i := range e.layers {
		l := &e.layers[i]
		in := e.src(l.In[0])
		var err error
		switch l.Kind {
		case nn.Conv:
			err = e.convForward(l, in)
		case nn.ReLU:
			n := B * l.Out.Size()
			err = d.launch("relu_fwd", n, in, l.act, int64(n))
		case nn.ReLU6:
			n := B * l.Out.Size()
			err = d.launch("relu6_fwd", n, in, l.act, int64(n))
		case nn.SiLU:
			n := B * l.Out.Size()
			err = d.launch("silu_fwd", n, in, l.act, int64(n))
		case nn.MaxPool:
			s := l.InShapes[0]
			if l.K == 0 {
				err = d.launch("maxpool_fwd", B*l.Out.Size(), in, l.act, l.idx, B*s[0], s[1], s[2])
			} else {
				err = d.launch("maxpool_k_fwd", B*l.Out.Size(), in, l.act, l.idx, int64(B*s[0]), s[1], s[2], l.K, l.ConvStride(), l.Pad,
					l.Out[1], l.Out[2])
			}
		case nn.Flatten:
		case nn.Dense:
			if err = d.gemm(false, false, B, l.Layer.Out, l.InShapes[0][0], 1, in, e.w[l.Params[0]], 0, l.act); err != nil {
				break
			}
			err = d.launch("add_bias_rows", B*l.Layer.Out, l.act, e.w[l.Params[1]], B, l.Layer.Out)
		case nn.BatchNorm:
			err = e.bnForward(l, in, md)
		case nn.Add:
			n := B * l.Out.Size()
			if err = d.launch("add2", n, in, e.src(l.In[1]), l.act, int64(n)); err != nil {
				break
			}
			for _, j := range l.In[2:] {
				if err = d.launch("add_into", n, l.act, e.src(j), int64(n)); err != nil {
					break
				}
			}
		case nn.Concat:
			off, hw := 0, spatial(l.Out)
			for k, j := range l.In {
				cs := l.InShapes[k][0]
				if err = d.launch("concat_fwd", B*cs*hw, e.src(j), l.act, B, cs, l.Out[0], off, hw); err != nil {
					break
				}
				off += cs
			}
		case nn.GlobalAvgPool:
			s := l.InShapes[0]
			err = d.launch("gap_fwd", B*s[0], in, l.act, int64(B*s[0]), s[1]*s[2])
		case nn.Upsample:
			s := l.InShapes[0]
			err = d.launch("up2_fwd", B*l.Out.Size(), in, l.act, int64(B*s[0]), s[1], s[2])
		default:
			err = fmt.Errorf("not supported by the cuda engine")
		}
		if err != nil {
			return fmt.Errorf("layer %d (%s): %w", i, l.Kind, err)
		}
	}
	return nil
}

func (e *Engine) convForward(l *layer, in buf) error {
	d, B := e.dev, e.bs
	s := l.InShapes[0]
	C, H, W := s[0], s[1], s[2]
	O, Ho, Wo := l.Out[0], l.Out[1], l.Out[2]
	bias := e.zeroBias
	if !l.NoBias {
		bias = e.w[l.Params[1]]
	}
	if g := l.ConvGroups(); g > 1 {
		return d.launch("gconv_fwd", B*l.Out.Size(), in, e.w[l.Params[0]], bias, l.act, B, C, H, W, O, g, l.K, l.Pad, l.ConvStride(),
			Ho, Wo, 1)
	}
	ckk, cols := C*l.K*l.K, B*Ho*Wo
	if err := d.launch("im2col", ckk*cols, in, l.col, B, C, H, W, l.K, l.Pad, l.ConvStride(), Ho, Wo); err != nil {
		return err
	}
	if err := d.gemm(false, false, O, cols, ckk, 1, e.w[l.Params[0]], l.col, 0, e.tmp); err != nil {
		return err
	}
	return d.launch("bias_nchw", B*l.Out.Size(), e.tmp, bias, l.act, B, O, Ho*Wo)
}

func (e *Engine) bnForward(l *layer, in buf, md mode) error {
	d, B := e.dev, e.bs
	C, HW := l.Out[0], l.Out[1]*l.Out[2]
	w, b, rm, rv := e.w[l.Params[0]], e.w[l.Params[1]], e.w[l.Params[2]], e.w[l.Params[3]]
	var err error
	if md != infer && !e.cfg.FreezeBN {
		update := 0
		if md == trainUpdate {
			update = 1
		}
		err = d.launchGrid("bn_stats", C, in, l.mean, l.inv, rm, rv, e.n, C, HW, l.BNEps(), e.cfg.BNMomentum, update)
	} else {
		err = d.launch("bn_running", C, rm, rv, l.mean, l.inv, C, l.BNEps())
	}
	if err != nil {
		return err
	}
	return d.launch("bn_fwd", B*l.Out.Size(), in, l.act, l.mean, l.inv, w, b, B, C, HW)
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
	switch a := e.cfg.Arch; {
	case a.Task == nn.Classify:
		err = d.launch("softmax_xent", e.bs, e.output(), e.labels, e.dz, e.loss, n, e.bs, e.cfg.Arch.Classes, scale)
	case len(a.Levels) > 0:
		for _, m := range a.LevelMaps() {
			pts := e.bs * m.H * m.W
			err = d.launchGrid("msdet_loss", min(max(1, (pts+255)/256), 4096), e.output(), e.det[0], e.det[1], e.det[2], e.det[3],
				e.dz, e.loss, e.bs, e.outLen, m.Offset, m.H*m.W, a.Classes, scale, float32(nn.BoxLogMax))
			if err != nil {
				break
			}
		}
	default:
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

// spatial is the pixels per channel of a (C, H, W) shape, 1 for a vector.
func spatial(s nn.Shape) int {
	n := 1
	for _, d := range s[1:] {
		n *= d
	}
	return n
}

// backward propagates dz through the layers into every weight gradient. A layer's
// output gradient (dact) is complete once every layer that reads it has run backward;
// the first of them writes it, the others add to it through scratch.
func (e *Engine) backward() error {
	written := make([]bool, len(e.layers))
	written[len(e.layers)-1] = true
	for i := len(e.layers) - 1; i >= 0; i-- {
		l := &e.layers[i]
		if err := e.layerBackward(l, written); err != nil {
			return fmt.Errorf("layer %d (%s) backward: %w", i, l.Kind, err)
		}
	}
	return nil
}

// give hands the gradient of input j (nn.Input: none is needed) computed by f into the
// layer's dact: directly when it is the first, else through scratch and an addition.
func (e *Engine) give(j int, written []bool, f func(dst buf) error) error {
	if j == nn.Input {
		return nil
	}
	t := &e.layers[j]
	if !written[j] {
		written[j] = true
		return f(t.dact)
	}
	if err := f(e.scratch); err != nil {
		return err
	}
	n := e.bs * t.Out.Size()
	return e.dev.launch("add_into", n, t.dact, e.scratch, int64(n))
}

func (e *Engine) layerBackward(l *layer, written []bool) error {
	d, B := e.dev, e.bs
	dy := l.dact
	in, j := e.src(l.In[0]), l.In[0]
	nIn := B * l.InShapes[0].Size()
	switch l.Kind {
	case nn.Conv:
		return e.convBackward(l, in, written)
	case nn.ReLU:
		return e.give(j, written, func(dx buf) error { return d.launch("relu_bwd", nIn, l.act, dy, dx, int64(nIn)) })
	case nn.ReLU6:
		return e.give(j, written, func(dx buf) error { return d.launch("relu6_bwd", nIn, in, dy, dx, int64(nIn)) })
	case nn.SiLU:
		return e.give(j, written, func(dx buf) error { return d.launch("silu_bwd", nIn, in, dy, dx, int64(nIn)) })
	case nn.MaxPool:
		s := l.InShapes[0]
		n := B * l.Out.Size()
		return e.give(j, written, func(dx buf) error {
			if l.K > 0 {
				return d.launch("maxpool_k_bwd", nIn, dy, l.idx, dx, int64(B*s[0]), s[1], s[2], l.K, l.ConvStride(), l.Pad, l.Out[1], l.Out[2])
			}
			if err := d.zero(buf{p: dx.p, n: nIn}); err != nil {
				return err
			}
			return d.launch("maxpool_bwd", n, dy, l.idx, dx, int64(n))
		})
	case nn.Flatten:
		return e.give(j, written, func(dx buf) error { return d.launch("copy", nIn, dy, dx, int64(nIn)) })
	case nn.Dense:
		K, O := l.InShapes[0][0], l.Layer.Out
		if err := d.gemm(true, false, K, O, B, 1, in, dy, 0, e.g[l.Params[0]]); err != nil {
			return err
		}
		if err := d.launch("col_sum", O, dy, e.g[l.Params[1]], B, O); err != nil {
			return err
		}
		return e.give(j, written, func(dx buf) error { return d.gemm(false, true, B, K, O, 1, dy, e.w[l.Params[0]], 0, dx) })
	case nn.BatchNorm:
		C, HW := l.Out[0], l.Out[1]*l.Out[2]
		gw, gb := e.g[l.Params[0]], e.g[l.Params[1]]
		if err := d.launchGrid("bn_bwd_reduce", C, in, dy, l.mean, l.inv, gw, gb, e.n, C, HW); err != nil {
			return err
		}
		tr := 1
		if e.cfg.FreezeBN {
			tr = 0
		}
		return e.give(j, written, func(dx buf) error {
			return d.launch("bn_bwd_dx", nIn, in, dy, dx, l.mean, l.inv, e.w[l.Params[0]], gw, gb, e.n, B, C, HW, tr)
		})
	case nn.Add:
		for _, k := range l.In {
			if err := e.give(k, written, func(dx buf) error { return d.launch("copy", nIn, dy, dx, int64(nIn)) }); err != nil {
				return err
			}
		}
		return nil
	case nn.Concat:
		off, hw := 0, spatial(l.Out)
		for k, src := range l.In {
			cs := l.InShapes[k][0]
			o := off
			if err := e.give(src, written, func(dx buf) error {
				return d.launch("concat_bwd", B*cs*hw, dy, dx, B, cs, l.Out[0], o, hw)
			}); err != nil {
				return err
			}
			off += cs
		}
		return nil
	case nn.GlobalAvgPool:
		s := l.InShapes[0]
		return e.give(j, written, func(dx buf) error { return d.launch("gap_bwd", nIn, dy, dx, int64(B*s[0]), s[1]*s[2]) })
	case nn.Upsample:
		s := l.InShapes[0]
		return e.give(j, written, func(dx buf) error { return d.launch("up2_bwd", nIn, dy, dx, int64(B*s[0]), s[1], s[2]) })
	}
	return fmt.Errorf("not supported by the cuda engine")
}

func (e *Engine) convBackward(l *layer, in buf, written []bool) error {
	d, B := e.dev, e.bs
	dy := l.dact
	s := l.InShapes[0]
	C, H, W := s[0], s[1], s[2]
	O, Ho, Wo := l.Out[0], l.Out[1], l.Out[2]
	gw := e.g[l.Params[0]]
	if g := l.ConvGroups(); g > 1 {
		cg := C / g
		if err := d.launchGrid("gconv_dw", min(O*cg*l.K*l.K, 1<<20), in, dy, gw, B, C, H, W, O, g, l.K, l.Pad, l.ConvStride(), Ho, Wo); err != nil {
			return err
		}
		if !l.NoBias {
			if err := d.launchGrid("channel_sum", O, dy, e.g[l.Params[1]], B, O, Ho*Wo); err != nil {
				return err
			}
		}
		return e.give(l.In[0], written, func(dx buf) error {
			return d.launch("gconv_dx", B*s.Size(), dy, e.w[l.Params[0]], dx, B, C, H, W, O, g, l.K, l.Pad, l.ConvStride(), Ho, Wo)
		})
	}
	ckk, cols := C*l.K*l.K, B*Ho*Wo
	if err := d.launch("nchw_to_cnhw", B*l.Out.Size(), dy, e.tmp, B, O, Ho*Wo); err != nil {
		return err
	}
	if err := d.gemm(false, true, O, ckk, cols, 1, e.tmp, l.col, 0, gw); err != nil {
		return err
	}
	if !l.NoBias {
		if err := d.launchGrid("row_sum", O, e.tmp, e.g[l.Params[1]], O, int64(cols)); err != nil {
			return err
		}
	}
	return e.give(l.In[0], written, func(dx buf) error {
		if err := d.gemm(true, false, ckk, cols, O, 1, e.w[l.Params[0]], e.tmp, 0, e.dcol); err != nil {
			return err
		}
		return d.launch("col2im", B*s.Size(), e.dcol, dx, B, C, H, W, l.K, l.Pad, l.ConvStride(), Ho, Wo)
	})
}

// load uploads a batch, zero-padded to the engine's batch size.
func (e *Engine) load(b *nn.Batch, targets bool) error {
	a, d := e.cfg.Arch, e.dev
	if b.N < 1 || b.N > e.bs {
		return fmt.Errorf("batch of %d images for an engine of %d", b.N, e.bs)
	}
	e.n = b.N
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
			if err := e.forward(infer); err != nil {
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
		if err := e.forward(infer); err != nil {
			return err
		}
		var err error
		loss, err = e.lossAndDz(b.N)
		return err
	})
	return loss, err
}

// step runs forward, loss and backward on the device thread.
func (e *Engine) step(b *nn.Batch, md mode) (float32, error) {
	if err := e.load(b, true); err != nil {
		return 0, err
	}
	if err := e.forward(md); err != nil {
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
		if loss, err = e.step(b, train); err != nil {
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
		if loss, err = e.step(b, trainUpdate); err != nil {
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

// ReadAdam implements nn.Engine: it downloads the moments from the device.
func (e *Engine) ReadAdam() (nn.AdamState, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := nn.AdamState{T: e.adam.T(), M: make([][]float32, len(e.specs)), V: make([][]float32, len(e.specs))}
	err := e.dev.Do(func() error {
		for i := range e.specs {
			s.M[i], s.V[i] = make([]float32, e.m[i].n), make([]float32, e.v[i].n)
			if err := e.dev.download(s.M[i], e.m[i]); err != nil {
				return err
			}
			if err := e.dev.download(s.V[i], e.v[i]); err != nil {
				return err
			}
		}
		return nil
	})
	return s, err
}

// WriteAdam implements nn.Engine: it uploads the moments to the device.
func (e *Engine) WriteAdam(s nn.AdamState) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	sizes := make([]int, len(e.specs))
	for i := range e.specs {
		sizes[i] = e.m[i].n
	}
	if err := s.Fits(sizes); err != nil {
		return err
	}
	err := e.dev.Do(func() error {
		for i := range e.specs {
			if err := e.dev.upload(e.m[i], s.M[i]); err != nil {
				return err
			}
			if err := e.dev.upload(e.v[i], s.V[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		e.adam.SetSteps(s.T)
	}
	return err
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
