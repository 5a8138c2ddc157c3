package gorgoniaengine

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// denseOp is a fully connected layer y = x·W + b as one Gorgonia op: x (N, in), W (in,
// out), b (1, out), y (N, out). It is Gorgonia's Mul followed by BroadcastAdd, the same
// arithmetic (one GEMM, then the bias added), written into preallocated memory with
// no broadcast copies; its gradients are the GEMMs dx = dy·Wᵀ, dW = xᵀ·dy and db = Σ dy.
type denseOp struct {
	n, in, out int
	what       denseKind
	mem        outMem
}

type denseKind int

const (
	denseFwd denseKind = iota
	denseGradX
	denseGradW
	denseGradB
)

// dense applies the op to x, w and b.
func dense(x, w, b *G.Node) (*G.Node, error) {
	xs, ws := x.Shape(), w.Shape()
	if len(xs) != 2 || len(ws) != 2 || xs[1] != ws[0] {
		return nil, fmt.Errorf("dense: input %v and weights %v do not fit", xs, ws)
	}
	return G.ApplyOp(&denseOp{n: xs[0], in: xs[1], out: ws[1]}, x, w, b)
}

func (op *denseOp) Arity() int {
	switch op.what {
	case denseFwd:
		return 3
	case denseGradB:
		return 1
	}
	return 2
}

func (op *denseOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	m := G.TensorType{Dims: 2, Of: a}
	switch op.what {
	case denseFwd:
		return hm.NewFnType(m, m, m, m)
	case denseGradB:
		return hm.NewFnType(m, m)
	}
	return hm.NewFnType(m, m, m)
}

func (op *denseOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	switch op.what {
	case denseGradX:
		return tensor.Shape{op.n, op.in}, nil
	case denseGradW:
		return tensor.Shape{op.in, op.out}, nil
	case denseGradB:
		return tensor.Shape{1, op.out}, nil
	}
	return tensor.Shape{op.n, op.out}, nil
}

func (op *denseOp) Do(in ...G.Value) (G.Value, error) {
	s, _ := op.InferShape()
	v, err := op.UsePreallocDo(op.mem.get(s), in...)
	op.mem.read(in)
	return v, err
}

func (op *denseOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	out, err := floats(prealloc)
	if err != nil {
		return nil, err
	}
	ins := make([][]float32, 0, 3)
	for _, v := range in {
		f, err := floats(v)
		if err != nil {
			return nil, err
		}
		ins = append(ins, f)
	}
	op.compute(out, ins)
	return prealloc, nil
}

// compute fills out from the op's inputs: x, W, b (forward); W, dy (dx); x, dy (dW);
// dy (db).
func (op *denseOp) compute(out []float32, ins [][]float32) {
	bl := G.WhichBLAS()
	switch op.what {
	case denseFwd: // in: x, W, b
		bl.Sgemm(blas.NoTrans, blas.NoTrans, op.n, op.out, op.in, 1, ins[0], op.in, ins[1], op.out, 0, out, op.out)
		b := ins[2]
		for r := 0; r < op.n; r++ {
			row := out[r*op.out : (r+1)*op.out]
			for j := range row {
				row[j] += b[j]
			}
		}
	case denseGradX: // in: W, dy
		bl.Sgemm(blas.NoTrans, blas.Trans, op.n, op.in, op.out, 1, ins[1], op.out, ins[0], op.out, 0, out, op.in)
	case denseGradW: // in: x, dy
		bl.Sgemm(blas.Trans, blas.NoTrans, op.in, op.out, op.n, 1, ins[0], op.in, ins[1], op.out, 0, out, op.out)
	case denseGradB: // in: dy
		clear(out)
		for r := 0; r < op.n; r++ {
			for j, v := range ins[0][r*op.out : (r+1)*op.out] {
				out[j] += v
			}
		}
	}
}

func (op *denseOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = op.what == denseFwd
	}
	return d
}

// SymDiff implements G.SDOp.
func (op *denseOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&denseOp{n: op.n, in: op.in, out: op.out, what: denseGradX}, in[1], grad)
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(&denseOp{n: op.n, in: op.in, out: op.out, what: denseGradW}, in[0], grad)
	if err != nil {
		return nil, err
	}
	db, err := G.ApplyOp(&denseOp{n: op.n, in: op.in, out: op.out, what: denseGradB}, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw, db}, nil
}

func (op *denseOp) ReturnsPtr() bool      { return false }
func (op *denseOp) CallsExtern() bool     { return false }
func (op *denseOp) OverwritesInput() int  { return -1 }
func (op *denseOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *denseOp) Hashcode() uint32      { return hashOf(op) }
func (op *denseOp) String() string {
	return fmt.Sprintf("dense{n=%d in=%d out=%d}.%d", op.n, op.in, op.out, op.what)
}
