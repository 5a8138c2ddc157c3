package gorgoniaengine

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/chewxy/hm"
	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// convOp is a Gorgonia op for a 2-D convolution (square kernel, zero padding, stride,
// groups, optional bias), written for speed: each image is unrolled (im2col) and
// multiplied by the filters in one GEMM per group through Gorgonia's BLAS (pure Go or
// OpenBLAS) straight into its (O, H', W') output, images spread over the cores, with
// no transposes, no broadcast copies of the bias and no per-run allocation. Gorgonia's
// own Conv2d is the same arithmetic followed by a transpose of the whole output and a
// broadcast add.
//
// Its inputs are x (N, C, H, W), the filters w (O, C/G, K, K) and, unless it has none,
// the bias b (O); its output is (N, O, H', W'), H' = (H + 2·pad − K)/stride + 1.
type convOp struct {
	n, c, h, w, o, k, pad int
	stride, groups        int
	bias                  bool
	// relu says the op applies ReLU to its output (Gorgonia's Rectify: x·[x ≥ 0], so
	// negative sums become −0 and a sum of exactly +0 passes; the gradient mask is then
	// the output's sign bit).
	relu   bool
	oh, ow int
	// col is the unrolled input of the last forward pass, image by image (N × C·K·K ×
	// H'·W'), reused by the backward pass of the same run; none for a pointwise conv,
	// whose unrolled input is its input.
	col []float32
	// fresh says col holds the unrolled input of the current x.
	fresh bool
	mu    sync.Mutex
	out   outMem
}

func newConvOp(x, w *G.Node, pad, stride, groups int, bias, relu bool) (*convOp, error) {
	xs, ws := x.Shape(), w.Shape()
	if len(xs) != 4 || len(ws) != 4 || groups < 1 || xs[1]%groups != 0 || ws[0]%groups != 0 || xs[1]/groups != ws[1] || ws[2] != ws[3] || stride < 1 {
		return nil, fmt.Errorf("conv: input %v, filters %v, %d groups and stride %d do not fit", xs, ws, groups, stride)
	}
	op := &convOp{n: xs[0], c: xs[1], h: xs[2], w: xs[3], o: ws[0], k: ws[2], pad: pad, stride: stride, groups: groups, bias: bias, relu: relu}
	op.oh, op.ow = (op.h+2*pad-op.k)/stride+1, (op.w+2*pad-op.k)/stride+1
	if op.h+2*pad < op.k || op.w+2*pad < op.k {
		return nil, fmt.Errorf("conv: %dx%d kernel on a padded %dx%d input", op.k, op.k, op.h+2*pad, op.w+2*pad)
	}
	return op, nil
}

// conv2d applies the op to x, w and b (nil: no bias), then ReLU if relu.
func conv2d(x, w, b *G.Node, pad, stride, groups int, relu bool) (*G.Node, error) {
	op, err := newConvOp(x, w, pad, stride, groups, b != nil, relu)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return G.ApplyOp(op, x, w)
	}
	return G.ApplyOp(op, x, w, b)
}

// ckk is the number of rows of the unrolled input, all groups; gk of one group.
func (op *convOp) ckk() int { return op.c * op.k * op.k }
func (op *convOp) gk() int  { return op.ckk() / op.groups }
func (op *convOp) og() int  { return op.o / op.groups }
func (op *convOp) hw() int  { return op.oh * op.ow }

// Arity implements G.Op.
func (op *convOp) Arity() int {
	if op.bias {
		return 3
	}
	return 2
}

// Type implements G.Op: Tensor a → Tensor a [→ Tensor a] → Tensor a.
func (op *convOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t4 := G.TensorType{Dims: 4, Of: a}
	if !op.bias {
		return hm.NewFnType(t4, t4, t4)
	}
	return hm.NewFnType(t4, t4, G.TensorType{Dims: 1, Of: a}, t4)
}

// InferShape implements G.Op.
func (op *convOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.n, op.o, op.oh, op.ow}, nil
}

// Do implements G.Op.
func (op *convOp) Do(in ...G.Value) (G.Value, error) {
	v, err := op.UsePreallocDo(op.out.get(tensor.Shape{op.n, op.o, op.oh, op.ow}), in...)
	op.out.read(in)
	return v, err
}

// UsePreallocDo implements G.UsePreallocDoer.
func (op *convOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	x, err := floats(in[0])
	if err != nil {
		return nil, err
	}
	w, err := floats(in[1])
	if err != nil {
		return nil, err
	}
	var b []float32
	if op.bias {
		if b, err = floats(in[2]); err != nil {
			return nil, err
		}
	}
	y, err := floats(prealloc)
	if err != nil {
		return nil, err
	}
	op.forward(x, w, b, y, true)
	return prealloc, nil
}

// forward computes y from x, the filters w and the bias b (nil: none). With keep, the
// unrolled input stays in op.col for the weight gradient of the same run; else each
// image is unrolled into scratch memory given back at once (a pass without backward).
func (op *convOp) forward(x, w, b, y []float32, keep bool) {
	if op.depthwise() {
		op.depthwiseForward(x, w, b, y)
		if op.relu {
			chunks(len(y), func(lo, hi int) { rectify(y[lo:hi]) })
		}
		return
	}
	hw, ckk, gk, og := op.hw(), op.ckk(), op.gk(), op.og()
	if keep {
		op.mu.Lock()
		defer op.mu.Unlock()
		if !op.pointwise() {
			op.col = grow(op.col, ckk*op.n*hw)
		}
		op.fresh = true
	}
	parallel(op.n, func(n int) {
		var col []float32
		switch {
		case op.pointwise(): // the unrolled image is the image
			col = x[n*ckk*hw : (n+1)*ckk*hw]
		case keep:
			col = op.col[n*ckk*hw : (n+1)*ckk*hw]
			op.im2col(x[n*op.c*op.h*op.w:], col)
		default:
			buf := scratch(ckk * hw)
			defer release(buf)
			col = *buf
			op.im2col(x[n*op.c*op.h*op.w:], col)
		}
		yn := y[n*op.o*hw : (n+1)*op.o*hw]
		for o := 0; o < op.o; o++ {
			var bo float32
			if b != nil {
				bo = b[o]
			}
			row := yn[o*hw : (o+1)*hw]
			for i := range row {
				row[i] = bo
			}
		}
		for g := 0; g < op.groups; g++ {
			G.WhichBLAS().Sgemm(blas.NoTrans, blas.NoTrans, og, hw, gk, 1, w[g*og*gk:], gk, col[g*gk*hw:], hw, 1, yn[g*og*hw:], hw)
		}
		if op.relu { // while the image's output is in cache
			rectify(yn)
		}
	})
}

// pointwise says the conv is 1×1 with stride 1 and no padding: its unrolled input is
// the input itself, so the GEMMs read x and nothing is copied or kept.
func (op *convOp) pointwise() bool { return op.k == 1 && op.stride == 1 && op.pad == 0 }

// rectify applies Rectify's ReLU in place: v·[v ≥ 0] (−0 for a negative v).
func rectify(y []float32) {
	for i, v := range y {
		if v < 0 {
			y[i] = v * 0
		}
	}
}

// im2col unrolls one image into col (C·K·K × H'·W').
func (op *convOp) im2col(img, col []float32) {
	hw, s := op.hw(), op.stride
	for c := 0; c < op.c; c++ {
		for ky := 0; ky < op.k; ky++ {
			for kx := 0; kx < op.k; kx++ {
				row := col[((c*op.k+ky)*op.k+kx)*hw:]
				for oy := 0; oy < op.oh; oy++ {
					iy := oy*s + ky - op.pad
					dst := row[oy*op.ow : (oy+1)*op.ow]
					if iy < 0 || iy >= op.h {
						clear(dst)
						continue
					}
					src := img[(c*op.h+iy)*op.w:]
					for ox := range dst {
						ix := ox*s + kx - op.pad
						if ix < 0 || ix >= op.w {
							dst[ox] = 0
						} else {
							dst[ox] = src[ix]
						}
					}
				}
			}
		}
	}
}

// col2im sums one image's dcol (C·K·K × H'·W') back into its dx (C, H, W).
func (op *convOp) col2im(dcol, img []float32) {
	hw, s := op.hw(), op.stride
	clear(img)
	for c := 0; c < op.c; c++ {
		for ky := 0; ky < op.k; ky++ {
			for kx := 0; kx < op.k; kx++ {
				row := dcol[((c*op.k+ky)*op.k+kx)*hw:]
				for oy := 0; oy < op.oh; oy++ {
					iy := oy*s + ky - op.pad
					if iy < 0 || iy >= op.h {
						continue
					}
					dst := img[(c*op.h+iy)*op.w:]
					src := row[oy*op.ow : (oy+1)*op.ow]
					for ox, v := range src {
						if ix := ox*s + kx - op.pad; ix >= 0 && ix < op.w {
							dst[ix] += v
						}
					}
				}
			}
		}
	}
}

// ReturnsPtr implements G.Op.
func (op *convOp) ReturnsPtr() bool { return false }

// CallsExtern implements G.Op.
func (op *convOp) CallsExtern() bool { return false }

// OverwritesInput implements G.Op.
func (op *convOp) OverwritesInput() int { return -1 }

// WriteHash implements G.Op.
func (op *convOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }

// Hashcode implements G.Op.
func (op *convOp) Hashcode() uint32 { return hashOf(op) }

func (op *convOp) String() string {
	return fmt.Sprintf("conv{n=%d c=%d %dx%d o=%d k=%d pad=%d stride=%d groups=%d bias=%v relu=%v}", op.n, op.c, op.h, op.w, op.o, op.k, op.pad,
		op.stride, op.groups, op.bias, op.relu)
}

// DiffWRT implements G.SDOp.
func (op *convOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

// SymDiff implements G.SDOp: per group dx = col2im(wᵀ·dy), dw = dy·colᵀ; db = Σ dy.
func (op *convOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, w := in[0], in[1]
	if op.relu { // dy·[pre-activation ≥ 0]: the output's sign bit is clear
		var err error
		if grad, err = apply(op.String()+".relu.dx", output.Shape(), func(out []float32, in [][]float32) {
			y, dy := in[0], in[1]
			chunks(len(out), func(lo, hi int) {
				o, g := out[lo:hi], dy[lo:hi]
				for i, v := range y[lo:hi] {
					if math.Signbit(float64(v)) {
						o[i] = 0
					} else {
						o[i] = g[i]
					}
				}
			})
		}, nil, output, grad); err != nil {
			return nil, err
		}
	}
	dx, err := G.ApplyOp(&convGradOp{fwd: op, what: gradX}, w, grad)
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(&convGradOp{fwd: op, what: gradW}, x, grad)
	if err != nil {
		return nil, err
	}
	if !op.bias {
		return G.Nodes{dx, dw}, nil
	}
	db, err := G.ApplyOp(&convGradOp{fwd: op, what: gradB}, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw, db}, nil
}

type gradKind int

const (
	gradX gradKind = iota
	gradW
	gradB
)

// convGradOp computes one gradient of a convOp.
type convGradOp struct {
	fwd  *convOp
	what gradKind
	out  outMem
}

func (g *convGradOp) Arity() int {
	if g.what == gradB {
		return 1
	}
	return 2
}

func (g *convGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t4 := G.TensorType{Dims: 4, Of: a}
	switch g.what {
	case gradB:
		return hm.NewFnType(t4, G.TensorType{Dims: 1, Of: a})
	default:
		return hm.NewFnType(t4, t4, t4)
	}
}

func (g *convGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	op := g.fwd
	switch g.what {
	case gradX:
		return tensor.Shape{op.n, op.c, op.h, op.w}, nil
	case gradW:
		return tensor.Shape{op.o, op.c / op.groups, op.k, op.k}, nil
	default:
		return tensor.Shape{op.o}, nil
	}
}

func (g *convGradOp) Do(in ...G.Value) (G.Value, error) {
	s, _ := g.InferShape()
	v, err := g.UsePreallocDo(g.out.get(s), in...)
	g.out.read(in)
	return v, err
}

func (g *convGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	op := g.fwd
	out, err := floats(prealloc)
	if err != nil {
		return nil, err
	}
	dy, err := floats(in[len(in)-1])
	if err != nil {
		return nil, err
	}
	hw, ckk, gk, og := op.hw(), op.ckk(), op.gk(), op.og()
	switch g.what {
	case gradB:
		clear(out)
		for n := 0; n < op.n; n++ {
			for o := 0; o < op.o; o++ {
				var s float32
				for _, v := range dy[(n*op.o+o)*hw : (n*op.o+o+1)*hw] {
					s += v
				}
				out[o] += s
			}
		}
	case gradW:
		x, err := floats(in[0])
		if err != nil {
			return nil, err
		}
		if op.depthwise() {
			op.depthwiseGradW(x, dy, out)
			return prealloc, nil
		}
		op.mu.Lock()
		defer op.mu.Unlock()
		cols := op.col
		switch {
		case op.pointwise():
			cols = x
		case !op.fresh:
			op.col = grow(op.col, ckk*op.n*hw)
			cols = op.col
			parallel(op.n, func(n int) { op.im2col(x[n*op.c*op.h*op.w:], op.col[n*ckk*hw:(n+1)*ckk*hw]) })
		}
		op.fresh = false
		// Each worker sums the dW of its images; the partial sums are added at the end.
		parts := partitions(op.n)
		partial := make([]*[]float32, len(parts))
		parallel(len(parts), func(p int) {
			buf := scratch(len(out))
			clear(*buf)
			for n := parts[p][0]; n < parts[p][1]; n++ {
				dyn, col := dy[n*op.o*hw:(n+1)*op.o*hw], cols[n*ckk*hw:(n+1)*ckk*hw]
				for gi := 0; gi < op.groups; gi++ {
					G.WhichBLAS().Sgemm(blas.NoTrans, blas.Trans, og, gk, hw, 1, dyn[gi*og*hw:], hw, col[gi*gk*hw:], hw, 1, (*buf)[gi*og*gk:], gk)
				}
			}
			partial[p] = buf
		})
		copy(out, *partial[0])
		for _, p := range partial[1:] {
			for i, v := range *p {
				out[i] += v
			}
		}
		for _, p := range partial {
			release(p)
		}
	case gradX:
		w, err := floats(in[0])
		if err != nil {
			return nil, err
		}
		if op.depthwise() {
			op.depthwiseGradX(w, dy, out)
			return prealloc, nil
		}
		parallel(op.n, func(n int) {
			dcol := scratch(ckk * hw)
			dyn := dy[n*op.o*hw : (n+1)*op.o*hw]
			for gi := 0; gi < op.groups; gi++ {
				G.WhichBLAS().Sgemm(blas.Trans, blas.NoTrans, gk, hw, og, 1, w[gi*og*gk:], gk, dyn[gi*og*hw:], hw, 0, (*dcol)[gi*gk*hw:], hw)
			}
			op.col2im(*dcol, out[n*op.c*op.h*op.w:(n+1)*op.c*op.h*op.w])
			release(dcol)
		})
	}
	return prealloc, nil
}

// depthwise says every group has one input and one output channel: the op then
// computes directly, without im2col, whose K² copies of the input and one tiny GEMM
// per channel would cost more than the arithmetic.
func (op *convOp) depthwise() bool { return op.groups == op.c && op.o == op.c }

// span is the range [lo, hi) of output positions whose tap k reads inside [0, size).
func (op *convOp) span(k, size, out int) (lo, hi int) {
	s := op.stride
	// o·s + k − pad ≥ 0  ⇔  o ≥ ⌈(pad−k)/s⌉;  o·s + k − pad ≤ size−1.
	lo = max(0, (op.pad-k+s-1)/s)
	if op.pad-k < 0 {
		lo = 0
	}
	if size-1+op.pad-k < 0 {
		return 0, 0
	}
	hi = min(out, (size-1+op.pad-k)/s+1)
	return lo, max(lo, hi)
}

// colSpans is span for each kernel column over the input's width: the same for every
// row and image, so worked out once a call rather than in the innermost loops.
func (op *convOp) colSpans() [][2]int {
	cols := make([][2]int, op.k)
	for kx := range cols {
		cols[kx][0], cols[kx][1] = op.span(kx, op.w, op.ow)
	}
	return cols
}

// kernelRows sets rows to the rows of img (one channel of one image) that output row oy's
// kernel rows read, reusing rows' memory, and says which kernel row is the first: rows
// outside the image (the padding) are left out.
func (op *convOp) kernelRows(rows [][]float32, img []float32, oy int) ([][]float32, int) {
	kylo := max(0, op.pad-oy*op.stride)
	kyhi := max(kylo, min(op.k, op.h+op.pad-oy*op.stride))
	rows = rows[:0]
	for ky := kylo; ky < kyhi; ky++ {
		iy := oy*op.stride + ky - op.pad
		rows = append(rows, img[iy*op.w:(iy+1)*op.w])
	}
	return rows, kylo
}

// interior is the range [lo, hi) of output columns whose every tap reads inside a row
// of width size: there the taps of a kernel row are summed together, and only the
// columns outside take them one at a time (op.span).
func (op *convOp) interior(size, out int) (lo, hi int) {
	s := op.stride
	lo = min(out, (op.pad+s-1)/s)
	if last := size - op.k + op.pad; last >= 0 {
		hi = min(out, last/s+1)
	}
	return lo, max(lo, hi)
}

// depthwiseForward is y = b + w ⋆ x per channel, one output row at a time: each output
// takes all its taps in one pass (the bias, then the kernel rows in order, each row's
// taps in order, as the kernel-row loops before it added them) and is written once.
func (op *convOp) depthwiseForward(x, w, b, y []float32) {
	k, s, hw, pad := op.k, op.stride, op.hw(), op.pad
	ilo, ihi := op.interior(op.w, op.ow)
	parallel(op.n*op.c, func(nc int) {
		c := nc % op.c
		img, out := x[nc*op.h*op.w:(nc+1)*op.h*op.w], y[nc*hw:(nc+1)*hw]
		wc := w[c*k*k : (c+1)*k*k]
		var bo float32
		if b != nil {
			bo = b[c]
		}
		rows := make([][]float32, 0, k)
		for oy := 0; oy < op.oh; oy++ {
			var kylo int
			rows, kylo = op.kernelRows(rows, img, oy)
			wr := wc[kylo*k : (kylo+len(rows))*k]
			o := out[oy*op.ow : (oy+1)*op.ow]
			border := func(ox int) { // tap by tap, reading only inside the row
				v := bo
				for r, row := range rows {
					for kx, wv := range wr[r*k : (r+1)*k] {
						if ix := ox*s + kx - pad; ix >= 0 && ix < op.w {
							v += wv * row[ix]
						}
					}
				}
				o[ox] = v
			}
			if k == 3 && s == 1 && pad == 1 && ilo == 1 && ihi == op.ow-1 {
				// The common case's two border columns, as border takes their taps.
				l, r := bo, bo
				for ky, row := range rows {
					t := wr[ky*3 : ky*3+3]
					l += t[1] * row[0]
					l += t[2] * row[1]
					r += t[0] * row[op.w-2]
					r += t[1] * row[op.w-1]
				}
				o[0], o[op.ow-1] = l, r
			} else {
				for ox := 0; ox < ilo; ox++ {
					border(ox)
				}
				for ox := ihi; ox < op.ow; ox++ {
					border(ox)
				}
			}
			switch {
			case k == 3 && s == 1 && len(rows) == 3 && ihi > ilo:
				dw3Forward(o[ilo:ihi], rows[0][ilo-pad:], rows[1][ilo-pad:], rows[2][ilo-pad:], wr, bo)
			case k == 3 && len(rows) == 3 && ihi > ilo:
				oo := o[ilo:ihi]
				lo, n := ilo*s-pad, (len(oo)-1)*s+3
				r0, r1, r2 := rows[0][lo:lo+n], rows[1][lo:lo+n], rows[2][lo:lo+n]
				w00, w01, w02, w10, w11, w12, w20, w21, w22 := wr[0], wr[1], wr[2], wr[3], wr[4], wr[5], wr[6], wr[7], wr[8]
				for i := range oo {
					j := i * s
					a, b, c := r0[j:j+3], r1[j:j+3], r2[j:j+3]
					v := bo
					v += w00 * a[0]
					v += w01 * a[1]
					v += w02 * a[2]
					v += w10 * b[0]
					v += w11 * b[1]
					v += w12 * b[2]
					v += w20 * c[0]
					v += w21 * c[1]
					v += w22 * c[2]
					oo[i] = v
				}
			default:
				for ox := ilo; ox < ihi; ox++ {
					v := bo
					for r, row := range rows {
						t := row[ox*s-pad : ox*s-pad+k]
						for kx, wv := range wr[r*k : (r+1)*k] {
							v += wv * t[kx]
						}
					}
					o[ox] = v
				}
			}
		}
	})
}

// depthwiseGradX is dx = wᵀ ⋆ dy per channel: each output gradient is spread over the
// input pixels its kernel row read, a kernel row at a time.
func (op *convOp) depthwiseGradX(w, dy, dx []float32) {
	if op.stride == 1 {
		op.depthwiseGradXGather(w, dy, dx)
		return
	}
	k, s, hw, pad := op.k, op.stride, op.hw(), op.pad
	ilo, ihi := op.interior(op.w, op.ow)
	cols := op.colSpans()
	parallel(op.n*op.c, func(nc int) {
		c := nc % op.c
		g, out := dy[nc*hw:(nc+1)*hw], dx[nc*op.h*op.w:(nc+1)*op.h*op.w]
		clear(out)
		for ky := 0; ky < k; ky++ {
			ylo, yhi := op.span(ky, op.h, op.oh)
			wr := w[(c*k+ky)*k : (c*k+ky+1)*k]
			for oy := ylo; oy < yhi; oy++ {
				row := out[(oy*s+ky-pad)*op.w : (oy*s+ky-pad+1)*op.w]
				gr := g[oy*op.ow : (oy+1)*op.ow]
				for kx, wv := range wr {
					xlo, xhi := cols[kx][0], cols[kx][1]
					for ox := xlo; ox < min(xhi, ilo); ox++ {
						row[ox*s+kx-pad] += wv * gr[ox]
					}
					for ox := max(xlo, ihi); ox < xhi; ox++ {
						row[ox*s+kx-pad] += wv * gr[ox]
					}
				}
				if k == 3 {
					w0, w1, w2 := wr[0], wr[1], wr[2]
					for ox := ilo; ox < ihi; ox++ {
						r, v := row[ox*s-pad:ox*s-pad+3], gr[ox]
						r[0] += w0 * v
						r[1] += w1 * v
						r[2] += w2 * v
					}
					continue
				}
				for ox := ilo; ox < ihi; ox++ {
					r, v := row[ox*s-pad:ox*s-pad+k], gr[ox]
					for kx, wv := range wr {
						r[kx] += wv * v
					}
				}
			}
		}
	})
}

// depthwiseGradXGather is depthwiseGradX at stride 1, where each input pixel gathers
// the output gradients that read it, the kernel's taps in order (as the CUDA engine's
// gconv_dx does), and is written once.
func (op *convOp) depthwiseGradXGather(w, dy, dx []float32) {
	k, hw, pad := op.k, op.hw(), op.pad
	// Input columns that every kernel column's tap reaches from inside the output row:
	// ox = ix − kx + pad ∈ [0, ow) for kx ∈ [0, k).
	ilo, ihi := min(op.w, max(0, k-1-pad)), min(op.w, op.ow-pad)
	ihi = max(ilo, ihi)
	parallel(op.n*op.c, func(nc int) {
		c := nc % op.c
		g, out := dy[nc*hw:(nc+1)*hw], dx[nc*op.h*op.w:(nc+1)*op.h*op.w]
		wc := w[c*k*k : (c+1)*k*k]
		rows := make([][]float32, k) // the output-gradient row of each kernel row; nil where outside
		for iy := 0; iy < op.h; iy++ {
			full := true
			for ky := range rows {
				rows[ky] = nil
				if oy := iy - ky + pad; oy >= 0 && oy < op.oh {
					rows[ky] = g[oy*op.ow : (oy+1)*op.ow]
				} else {
					full = false
				}
			}
			o := out[iy*op.w : (iy+1)*op.w]
			border := func(ix int) {
				var v float32
				for ky, row := range rows {
					if row == nil {
						continue
					}
					for kx, wv := range wc[ky*k : (ky+1)*k] {
						if ox := ix - kx + pad; ox >= 0 && ox < op.ow {
							v += wv * row[ox]
						}
					}
				}
				o[ix] = v
			}
			if k == 3 && pad == 1 && ilo == 1 && ihi == op.w-1 {
				// The common case's two border columns, as border takes their taps.
				var l, r float32
				for ky, row := range rows {
					if row == nil {
						continue
					}
					t := wc[ky*3 : ky*3+3]
					l += t[0] * row[1]
					l += t[1] * row[0]
					r += t[1] * row[op.ow-1]
					r += t[2] * row[op.ow-2]
				}
				o[0], o[op.w-1] = l, r
			} else {
				for ix := 0; ix < ilo; ix++ {
					border(ix)
				}
				for ix := ihi; ix < op.w; ix++ {
					border(ix)
				}
			}
			if k != 3 || !full || ihi == ilo {
				for ix := ilo; ix < ihi; ix++ {
					border(ix)
				}
				continue
			}
			// ox = ix + pad − kx: the taps kx = 0, 1, 2 read columns lo+2, lo+1, lo of a row.
			lo := ilo + pad - 2
			dw3GradX(o[ilo:ihi], rows[0][lo:], rows[1][lo:], rows[2][lo:], wc)
		}
	})
}

// depthwiseGradW is dw = Σ over images of dy ⋆ x per channel. Each output-gradient row
// is read once for all the kernel's taps; each tap sums its products over a row in
// float32 (border columns first), over an image's rows in float32 and over the images
// in float64.
func (op *convOp) depthwiseGradW(x, dy, dw []float32) {
	k, s, hw, pad := op.k, op.stride, op.hw(), op.pad
	ilo, ihi := op.interior(op.w, op.ow)
	cols := op.colSpans()
	parallel(op.c, func(c int) {
		acc := make([]float64, k*k)
		part := make([]float32, k*k)
		rows := make([][]float32, 0, k)
		for n := 0; n < op.n; n++ {
			nc := n*op.c + c
			img, g := x[nc*op.h*op.w:(nc+1)*op.h*op.w], dy[nc*hw:(nc+1)*hw]
			clear(part)
			for oy := 0; oy < op.oh; oy++ {
				gr := g[oy*op.ow : (oy+1)*op.ow]
				var kylo int
				rows, kylo = op.kernelRows(rows, img, oy)
				for r, row := range rows {
					pk := part[(kylo+r)*k : (kylo+r+1)*k]
					for kx := range pk {
						xlo, xhi := cols[kx][0], cols[kx][1]
						var p float32
						for ox := xlo; ox < min(xhi, ilo); ox++ {
							p += gr[ox] * row[ox*s+kx-pad]
						}
						for ox := max(xlo, ihi); ox < xhi; ox++ {
							p += gr[ox] * row[ox*s+kx-pad]
						}
						pk[kx] += p
					}
				}
				if ihi == ilo {
					continue
				}
				if k == 3 && s == 1 && len(rows) == 3 {
					lo := ilo - pad
					dw3GradW(part, gr[ilo:ihi], rows[0][lo:], rows[1][lo:], rows[2][lo:])
					continue
				}
				if k == 3 && len(rows) == 3 {
					gg := gr[ilo:ihi]
					lo, m := ilo*s-pad, (len(gg)-1)*s+3
					r0, r1, r2 := rows[0][lo:lo+m], rows[1][lo:lo+m], rows[2][lo:lo+m]
					var p00, p01, p02, p10, p11, p12, p20, p21, p22 float32
					for i, v := range gg {
						j := i * s
						a, b, c := r0[j:j+3], r1[j:j+3], r2[j:j+3]
						p00 += v * a[0]
						p01 += v * a[1]
						p02 += v * a[2]
						p10 += v * b[0]
						p11 += v * b[1]
						p12 += v * b[2]
						p20 += v * c[0]
						p21 += v * c[1]
						p22 += v * c[2]
					}
					part[0] += p00
					part[1] += p01
					part[2] += p02
					part[3] += p10
					part[4] += p11
					part[5] += p12
					part[6] += p20
					part[7] += p21
					part[8] += p22
					continue
				}
				for r, row := range rows {
					pk := part[(kylo+r)*k : (kylo+r+1)*k]
					if k == 3 {
						var p0, p1, p2 float32
						for ox := ilo; ox < ihi; ox++ {
							t, v := row[ox*s-pad:ox*s-pad+3], gr[ox]
							p0 += v * t[0]
							p1 += v * t[1]
							p2 += v * t[2]
						}
						pk[0] += p0
						pk[1] += p1
						pk[2] += p2
						continue
					}
					for ox := ilo; ox < ihi; ox++ {
						t, v := row[ox*s-pad:ox*s-pad+k], gr[ox]
						for kx := range pk {
							pk[kx] += v * t[kx]
						}
					}
				}
			}
			for i, p := range part {
				acc[i] += float64(p)
			}
		}
		for i, a := range acc {
			dw[c*k*k+i] = float32(a)
		}
	})
}

// partitions splits n images into one contiguous range per worker.
func partitions(n int) [][2]int {
	w := max(1, min(n, runtime.GOMAXPROCS(0)))
	out := make([][2]int, w)
	for i := range out {
		out[i] = [2]int{i * n / w, (i + 1) * n / w}
	}
	return out
}

func (g *convGradOp) ReturnsPtr() bool      { return false }
func (g *convGradOp) CallsExtern() bool     { return false }
func (g *convGradOp) OverwritesInput() int  { return -1 }
func (g *convGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, g.String()) }
func (g *convGradOp) Hashcode() uint32      { return hashOf(g) }
func (g *convGradOp) String() string {
	return fmt.Sprintf("%s.grad%c", g.fwd.String(), "xwb"[g.what])
}

func hashOf(s fmt.Stringer) uint32 {
	h := fnv.New32a()
	fmt.Fprint(h, s.String())
	return h.Sum32()
}

func floats(v G.Value) ([]float32, error) {
	t, ok := v.(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("conv: %T is not a tensor", v)
	}
	f, ok := t.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("conv: tensor of %v, want float32", t.Dtype())
	}
	return f, nil
}

// owned returns a tensor of shape over the memory *buf, allocated on the first call and
// reused after. An op's output is written once per run and read within it, so the
// memory outlives nothing that reads it.
func owned(buf *[]float32, shape tensor.Shape) tensor.Tensor {
	*buf = grow(*buf, shape.TotalSize())
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(*buf))
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// scratchPool recycles the large temporary buffers of the conv passes.
var scratchPool = sync.Pool{New: func() any { return new([]float32) }}

func scratch(n int) *[]float32 {
	p := scratchPool.Get().(*[]float32)
	*p = grow(*p, n)
	return p
}

func release(p *[]float32) { scratchPool.Put(p) }

// parallel runs f(0..n-1) on GOMAXPROCS workers, the caller being one of them; each
// takes the next index until none is left.
func parallel(n int, f func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var next atomic.Int64
	work := func() {
		clearUpper() // a goroutine may start on a thread whose AVX state is dirty
		for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
			f(i)
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
}

// chunks runs f over [0, n) split into one contiguous range per core; small n runs
// on the caller's goroutine.
func chunks(n int, f func(lo, hi int)) {
	const least = 1 << 14 // below this, a goroutine costs more than it saves
	w := min(runtime.GOMAXPROCS(0), n/least)
	if w <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := 1; i < w; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clearUpper() // as in parallel
			f(i*n/w, (i+1)*n/w)
		}()
	}
	f(0, n/w)
	wg.Wait()
}
