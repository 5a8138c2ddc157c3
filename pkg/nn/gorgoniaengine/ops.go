package gorgoniaengine

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// fnOp is a Gorgonia op made of a Go function over float32 slices: the layers below
// (batch norm, pooling, upsampling, concatenation, activations) and their gradients.
// Its name identifies it in the graph (layer index and role), so no two are merged.
type fnOp struct {
	name   string
	inDims []int
	out    tensor.Shape
	// fwd fills out (every element) from the inputs.
	fwd func(out []float32, in [][]float32)
	// back returns one gradient node per input, given the op's inputs, its output and
	// the gradient of its output; nil for ops that are never differentiated.
	back backFunc
	mem  outMem
}

// backFunc makes an op's gradients: one node per input, from the op's inputs, its output
// and the gradient of its output.
type backFunc func(in G.Nodes, out, dy *G.Node) (G.Nodes, error)

// apply adds an fnOp to the graph of in.
func apply(name string, out tensor.Shape, fwd func(out []float32, in [][]float32), back backFunc, in ...*G.Node) (*G.Node, error) {
	op := &fnOp{name: name, out: out, fwd: fwd, back: back}
	for _, n := range in {
		op.inDims = append(op.inDims, n.Dims())
	}
	return G.ApplyOp(op, in...)
}

func (op *fnOp) Arity() int { return len(op.inDims) }

func (op *fnOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	ts := make([]hm.Type, 0, len(op.inDims)+1)
	for _, d := range op.inDims {
		ts = append(ts, G.TensorType{Dims: d, Of: a})
	}
	ts = append(ts, G.TensorType{Dims: len(op.out), Of: a})
	return hm.NewFnType(ts...)
}

func (op *fnOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.out.Clone(), nil }

func (op *fnOp) Do(in ...G.Value) (G.Value, error) {
	v, err := op.UsePreallocDo(op.mem.get(op.out), in...)
	op.mem.read(in)
	return v, err
}

func (op *fnOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	out, err := floats(prealloc)
	if err != nil {
		return nil, err
	}
	ins := make([][]float32, len(in))
	for i, v := range in {
		if ins[i], err = floats(v); err != nil {
			return nil, err
		}
	}
	clearUpper() // this thread may have run AVX code last: see clearUpper
	op.fwd(out, ins)
	return prealloc, nil
}

func (op *fnOp) ReturnsPtr() bool      { return false }
func (op *fnOp) CallsExtern() bool     { return false }
func (op *fnOp) OverwritesInput() int  { return -1 }
func (op *fnOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.name) }
func (op *fnOp) Hashcode() uint32      { return hashOf(op) }
func (op *fnOp) String() string        { return op.name }

func (op *fnOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = op.back != nil
	}
	return d
}

func (op *fnOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	if op.back == nil {
		return nil, fmt.Errorf("%s is not differentiable", op.name)
	}
	return op.back(in, out, grad)
}

// shape4 is a node's (N, C, H, W).
func shape4(x *G.Node) (n, c, h, w int) {
	s := x.Shape()
	return s[0], s[1], s[2], s[3]
}

// reluOp is ReLU as Gorgonia's Rectify computes it (x·[x ≥ 0]; NaN stays NaN) and its
// gradient dy·[x ≥ 0], in tight loops spread over the cores.
func reluOp(name string, x *G.Node) (*G.Node, error) {
	back := func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		dx, err := apply(name+".dx", in[0].Shape(), func(out []float32, in [][]float32) {
			x, dy := in[0], in[1]
			chunks(len(out), func(lo, hi int) {
				o, g := out[lo:hi], dy[lo:hi]
				for i, v := range x[lo:hi] {
					if v >= 0 {
						o[i] = g[i]
					} else {
						o[i] = 0
					}
				}
			})
		}, nil, in[0], dy)
		return G.Nodes{dx}, err
	}
	return apply(name, x.Shape(), func(out []float32, in [][]float32) {
		x := in[0]
		chunks(len(out), func(lo, hi int) {
			o := out[lo:hi]
			for i, v := range x[lo:hi] {
				if v < 0 {
					v = 0
				}
				o[i] = v
			}
		})
	}, back, x)
}

// relu6Op is y = min(max(x, 0), 6) with gradient dy·[0 < x < 6], in row kernels spread
// over the cores. The gradient reads y (0 < y < 6 exactly when 0 < x < 6, NaN in
// neither), so that x, often a batch norm's output, is not kept for the backward pass.
func relu6Op(name string, x *G.Node) (*G.Node, error) {
	back := func(_ G.Nodes, y, dy *G.Node) (G.Nodes, error) {
		dx, err := apply(name+".dx", y.Shape(), func(out []float32, in [][]float32) {
			y, dy := in[0], in[1]
			chunks(len(out), func(lo, hi int) { relu6Backward(out[lo:hi], y[lo:hi], dy[lo:hi]) })
		}, nil, y, dy)
		return G.Nodes{dx}, err
	}
	return apply(name, x.Shape(), func(out []float32, in [][]float32) {
		x := in[0]
		chunks(len(out), func(lo, hi int) { relu6Forward(out[lo:hi], x[lo:hi]) })
	}, back, x)
}

// relu6Pass is all ones where 0 < y < 6 and zero elsewhere, NaN included, without a
// branch: about half of a ReLU6's outputs are 0, so a branch on y mispredicts often.
// Positive floats order as their bits do, and 0 < y < 6 ⇔ 1 ≤ bits(y) ≤ bits(6) − 1.
func relu6Pass(y float32) uint32 {
	const six = 0x40c00000 // math.Float32bits(6)
	d := int64(math.Float32bits(y)-1) - (six - 1)
	return uint32(d >> 63)
}

// gap averages each channel: (N, C, H, W) -> (N, C).
func gap(name string, x *G.Node) (*G.Node, error) {
	n, c, h, w := shape4(x)
	hw := h * w
	back := func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		dx, err := apply(name+".dx", in[0].Shape(), func(out []float32, in [][]float32) {
			for i, g := range in[0] {
				v := g / float32(hw)
				for j := range out[i*hw : (i+1)*hw] {
					out[i*hw+j] = v
				}
			}
		}, nil, dy)
		return G.Nodes{dx}, err
	}
	return apply(name, tensor.Shape{n, c}, func(out []float32, in [][]float32) {
		for i := range out {
			var s float64
			for _, v := range in[0][i*hw : (i+1)*hw] {
				s += float64(v)
			}
			out[i] = float32(s / float64(hw))
		}
	}, back, x)
}

// upsample2 is 2× nearest-neighbour upsampling.
func upsample2(name string, x *G.Node) (*G.Node, error) {
	n, c, h, w := shape4(x)
	back := func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		dx, err := apply(name+".dx", in[0].Shape(), func(out []float32, in [][]float32) {
			dy := in[0]
			for i := range out {
				xx, y, nc := i%w, (i/w)%h, i/(w*h)
				at := (nc*2*h+2*y)*2*w + 2*xx
				out[i] = dy[at] + dy[at+1] + dy[at+2*w] + dy[at+2*w+1]
			}
		}, nil, dy)
		return G.Nodes{dx}, err
	}
	return apply(name, tensor.Shape{n, c, 2 * h, 2 * w}, func(out []float32, in [][]float32) {
		x := in[0]
		for i := range out {
			ox, oy, nc := i%(2*w), (i/(2*w))%(2*h), i/(4*w*h)
			out[i] = x[(nc*h+oy/2)*w+ox/2]
		}
	}, back, x)
}

// concat joins inputs along the channels, or vectors (N, L) end to end.
func concat(name string, xs []*G.Node) (*G.Node, error) {
	n, hw := xs[0].Shape()[0], 1
	for _, d := range xs[0].Shape()[2:] {
		hw *= d
	}
	cs := make([]int, len(xs))
	total := 0
	for i, x := range xs {
		cs[i] = x.Shape()[1]
		total += cs[i]
	}
	back := func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		out := make(G.Nodes, len(in))
		off := 0
		for k := range in {
			c, o := cs[k], off
			var err error
			out[k], err = apply(fmt.Sprintf("%s.dx%d", name, k), in[k].Shape(), func(dx []float32, in [][]float32) {
				for b := 0; b < n; b++ {
					copy(dx[b*c*hw:(b+1)*c*hw], in[0][(b*total+o)*hw:(b*total+o+c)*hw])
				}
			}, nil, dy)
			if err != nil {
				return nil, err
			}
			off += c
		}
		return out, nil
	}
	outShape := xs[0].Shape().Clone()
	outShape[1] = total
	return apply(name, outShape, func(out []float32, in [][]float32) {
		off := 0
		for k, x := range in {
			c := cs[k]
			for b := 0; b < n; b++ {
				copy(out[(b*total+off)*hw:(b*total+off+c)*hw], x[b*c*hw:(b+1)*c*hw])
			}
			off += c
		}
	}, back, xs...)
}

// maxPool is K×K max pooling with stride and padding; padding never wins, and of equal
// values the first in row-major window order does (the CUDA kernel's rule).
func maxPool(name string, x *G.Node, k, stride, pad int) (*G.Node, error) {
	n, c, h, w := shape4(x)
	oh, ow := (h+2*pad-k)/stride+1, (w+2*pad-k)/stride+1
	idx := make([]int32, n*c*oh*ow) // the winner of each output, written by the forward pass
	back := func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		dx, err := apply(name+".dx", in[0].Shape(), func(out []float32, in [][]float32) {
			dy, ohw := in[0], oh*ow
			// Every window of channel nc lies in channel nc: channels are independent.
			parallel(n*c, func(nc int) {
				clear(out[nc*h*w : (nc+1)*h*w])
				for i, g := range dy[nc*ohw : (nc+1)*ohw] {
					out[idx[nc*ohw+i]] += g
				}
			})
		}, nil, dy)
		return G.Nodes{dx}, err
	}
	return apply(name, tensor.Shape{n, c, oh, ow}, func(out []float32, in [][]float32) {
		x := in[0]
		if k == 2 && stride == 2 && pad == 0 {
			parallel(n*c, func(nc int) { pool2(x[nc*h*w:(nc+1)*h*w], out[nc*oh*ow:(nc+1)*oh*ow], idx[nc*oh*ow:], nc*h*w, h, w) })
			return
		}
		parallel(n*c, func(nc int) {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					best, bi := float32(math.Inf(-1)), -1
					for ky := 0; ky < k; ky++ {
						y := oy*stride + ky - pad
						if y < 0 || y >= h {
							continue
						}
						for kx := 0; kx < k; kx++ {
							xx := ox*stride + kx - pad
							if xx < 0 || xx >= w {
								continue
							}
							at := (nc*h+y)*w + xx
							if bi < 0 || x[at] > best {
								best, bi = x[at], at
							}
						}
					}
					o := (nc*oh+oy)*ow + ox
					out[o], idx[o] = best, int32(bi)
				}
			}
		})
	}, back, x)
}

// pool2 is 2×2/2 max pooling of one channel img (h×w) into out, recording each winner's
// index (plus base) in idx: the first of equal values, as maxPool's general loop.
func pool2(img, out []float32, idx []int32, base, h, w int) {
	oh, ow := h/2, w/2
	for oy := 0; oy < oh; oy++ {
		r0, r1 := img[2*oy*w:(2*oy+1)*w], img[(2*oy+1)*w:(2*oy+2)*w]
		o, ix := out[oy*ow:(oy+1)*ow], idx[oy*ow:(oy+1)*ow]
		for ox := range o {
			best, bi := r0[2*ox], 2*oy*w+2*ox
			if v := r0[2*ox+1]; v > best {
				best, bi = v, 2*oy*w+2*ox+1
			}
			if v := r1[2*ox]; v > best {
				best, bi = v, (2*oy+1)*w+2*ox
			}
			if v := r1[2*ox+1]; v > best {
				best, bi = v, (2*oy+1)*w+2*ox+1
			}
			o[ox], ix[ox] = best, int32(base+bi)
		}
	}
}

// bnRun is what a run tells the batch norm ops: how many images of the batch are real
// (the rest is padding, which must not count in the statistics) and whether to move
// the running statistics.
type bnRun struct {
	n      int
	update bool
}

// batchNorm normalises x (N, C, H, W) per channel and applies γ and β. With train, it
// uses the statistics of the run's real images (and moves the running ones when the
// run says so); else the running statistics mean and variance, which are the engine's
// live parameter memory. Sums run in float64, as in the CUDA kernels.
func batchNorm(name string, x, gamma, beta *G.Node, mean, variance []float32, eps, momentum float32, train bool, run *bnRun) (*G.Node, error) {
	n, c, h, w := shape4(x)
	hw := h * w
	// The statistics the forward pass used, for the backward pass of the same run.
	mu, inv := make([]float32, c), make([]float32, c)
	real := func() int { return min(max(run.n, 1), n) }
	// sums returns Σdy and Σdy·x̂ of channel ch over the real images, x̂ = (x − μ)·inv.
	sums := func(x, dy []float32, ch int) (sdy, sdyx float64) {
		var l lanes
		for b, rn := 0, real(); b < rn; b++ {
			bnSums(&l, x[(b*c+ch)*hw:(b*c+ch+1)*hw], dy[(b*c+ch)*hw:(b*c+ch+1)*hw], mu[ch], inv[ch])
		}
		return l.laneSum(0), l.laneSum(1)
	}
	back := func(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		// Σdy (row 0) and Σdy·x̂ (row 1) of each channel, in one pass for the three
		// gradients: dβ and dγ are them, dx needs them in training.
		st, err := apply(name+".sums", tensor.Shape{2, c}, func(out []float32, in [][]float32) {
			parallel(c, func(ch int) {
				sdy, sdyx := sums(in[0], in[1], ch)
				out[ch], out[c+ch] = float32(sdy), float32(sdyx)
			})
		}, nil, in[0], dy)
		if err != nil {
			return nil, err
		}
		dx, err := apply(name+".dx", in[0].Shape(), func(out []float32, in [][]float32) {
			x, g, dy, st := in[0], in[1], in[2], in[3]
			m := float64(real() * hw)
			parallel(c, func(ch int) {
				var a, bcoef float64 // dx = γ·inv·(dy − a − x̂·b)
				if train {
					a, bcoef = float64(st[ch])/m, float64(st[c+ch])/m
				}
				k, mc, iv, rn := g[ch]*inv[ch], mu[ch], inv[ch], real()
				for b := 0; b < n; b++ {
					o := out[(b*c+ch)*hw : (b*c+ch+1)*hw]
					if b >= rn {
						clear(o)
						continue
					}
					bnGradX(o, x[(b*c+ch)*hw:(b*c+ch+1)*hw], dy[(b*c+ch)*hw:(b*c+ch+1)*hw], k, mc, iv, a, bcoef)
				}
			})
		}, nil, in[0], in[1], dy, st)
		if err != nil {
			return nil, err
		}
		dg, err := apply(name+".dgamma", tensor.Shape{c}, func(out []float32, in [][]float32) {
			copy(out, in[0][c:])
		}, nil, st)
		if err != nil {
			return nil, err
		}
		db, err := apply(name+".dbeta", tensor.Shape{c}, func(out []float32, in [][]float32) {
			copy(out, in[0][:c])
		}, nil, st)
		return G.Nodes{dx, dg, db}, err
	}
	return apply(name, x.Shape(), func(out []float32, in [][]float32) {
		x, g, bt := in[0], in[1], in[2]
		parallel(c, func(ch int) {
			if train {
				m := real() * hw
				mean64, v := channelStats(x, c, hw, real(), ch)
				mu[ch], inv[ch] = float32(mean64), float32(1/math.Sqrt(v+float64(eps)))
				if run.update {
					unbiased := v
					if m > 1 {
						unbiased = v * float64(m) / float64(m-1)
					}
					mean[ch] = (1-momentum)*mean[ch] + momentum*float32(mean64)
					variance[ch] = (1-momentum)*variance[ch] + momentum*float32(unbiased)
				}
			} else {
				mu[ch], inv[ch] = mean[ch], float32(1/math.Sqrt(float64(variance[ch])+float64(eps)))
			}
			m, iv, gc, bc := mu[ch], inv[ch], g[ch], bt[ch]
			for b := 0; b < n; b++ {
				bnNormalise(out[(b*c+ch)*hw:(b*c+ch+1)*hw], x[(b*c+ch)*hw:(b*c+ch+1)*hw], m, iv, gc, bc)
			}
		})
	}, back, x, gamma, beta)
}

// channelStats are the mean and (biased) variance of channel ch over the first n
// images of x (N, C, H·W), in one pass: float64 sums (in eight lanes: statsSums) of the
// values shifted by the channel's first one, so that E[d²] − E[d]² does not cancel when
// the mean is large against the spread (the CUDA kernel takes the variance in a second
// pass instead).
func channelStats(x []float32, c, hw, n, ch int) (mean, variance float64) {
	k := float64(x[ch*hw])
	var l lanes
	for b := 0; b < n; b++ {
		statsSums(&l, x[(b*c+ch)*hw:(b*c+ch+1)*hw], k)
	}
	s, ss := l.laneSum(0), l.laneSum(1)
	m := float64(n * hw)
	shift := s / m
	return k + shift, max(ss/m-shift*shift, 0)
}

// layerName names layer i's op in a graph.
func layerName(l nn.Layer, i int) string { return fmt.Sprintf("%s@%d", l.Kind, i) }
