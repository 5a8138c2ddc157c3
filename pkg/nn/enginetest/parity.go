// Package enginetest checks one nn.Engine against another: from the same weights and
// batch, the forward outputs, the loss, every parameter's gradient and a few Adam
// steps must agree within a stated tolerance. The CUDA engine's parity tests use it
// with the Gorgonia CPU engine as the reference.
package enginetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// Tolerance bounds the differences Compare accepts. Sums run in another order on
// another device, so values agree to float32 rounding, not bit for bit.
type Tolerance struct {
	// Loss is the largest relative difference of the losses.
	Loss float64
	// Tensor is the largest difference of any element of a tensor (outputs, a
	// gradient) relative to the largest magnitude in the reference tensor.
	Tensor float64
	// Steps is the largest relative L2 difference of the weight changes after Steps
	// Adam steps (Adam divides by √v, which magnifies rounding in tiny gradients).
	Steps float64
}

// DefaultTolerance is what float32 on two devices meets: losses to 1e-4, tensors to
// 1e-3 of their scale, Adam's updates to 2%.
func DefaultTolerance() Tolerance { return Tolerance{Loss: 1e-4, Tensor: 1e-3, Steps: 0.02} }

// Factory builds an engine (gorgoniaengine.Factory, (*cudaengine.Device).Factory).
type Factory = func(nn.EngineConfig) (nn.Engine, error)

// Report is what Compare measured: each check's worst difference and whether it passed.
type Report struct {
	Lines  []string
	Failed []string
}

func (r *Report) check(name string, got, limit float64) bool {
	ok := got <= limit && !math.IsNaN(got)
	mark := "ok"
	if !ok {
		mark = "FAIL"
		r.Failed = append(r.Failed, name)
	}
	r.Lines = append(r.Lines, fmt.Sprintf("%-28s %.2e (limit %.0e) %s", name, got, limit, mark))
	return ok
}

// worst describes where a failed tensor check differs most: the element, both values
// and, for a small tensor, every value of both, so that a failure on a remote GPU can be
// told apart (a sign flip at a ReLU's kink moves one pixel's share; a wrong index or a
// race moves many).
func worst(ref, got []float32) string {
	if len(ref) != len(got) {
		return fmt.Sprintf("%d values, reference has %d", len(got), len(ref))
	}
	w := 0
	for i := range ref {
		if math.Abs(float64(ref[i])-float64(got[i])) > math.Abs(float64(ref[w])-float64(got[w])) {
			w = i
		}
	}
	s := fmt.Sprintf("worst at [%d]: reference %.7g, got %.7g", w, ref[w], got[w])
	if len(ref) <= 16 {
		s += fmt.Sprintf("; reference %.5g; got %.5g", ref, got)
	}
	return s
}

// String is the report as a table, one check a line.
func (r *Report) String() string { return strings.Join(r.Lines, "\n") }

// Compare builds both engines for a from the same initial weights (seed) with batch
// size bs, and runs on a partial batch of bs-1 random images (the padding must not
// count): Forward, Loss, Gradients, then steps Adam steps, comparing got with ref;
// after at least one step, also the optimiser's state and a resume (compareResume).
func Compare(a nn.Arch, ref, got Factory, bs, steps int, seed uint64, tol Tolerance) (*Report, error) {
	p, err := nn.InitParams(a, seed)
	if err != nil {
		return nil, err
	}
	cfg := nn.EngineConfig{Arch: a, Params: p, BatchSize: bs, Adam: nn.AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}}
	re, err := ref(cfg)
	if err != nil {
		return nil, fmt.Errorf("reference engine: %w", err)
	}
	defer re.Close()
	ge, err := got(cfg)
	if err != nil {
		return nil, fmt.Errorf("engine under test: %w", err)
	}
	defer ge.Close()
	b := Batch(a, bs-1, seed)
	r := &Report{}

	fr, err := re.Forward(b.X, b.N)
	if err != nil {
		return nil, fmt.Errorf("reference forward: %w", err)
	}
	fg, err := ge.Forward(b.X, b.N)
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	r.check("forward outputs", TensorDiff(fr, fg), tol.Tensor)
	// More images than the batch size: engines run them in chunks.
	many := Batch(a, 2*bs+1, seed+100)
	if fr, err = re.Forward(many.X, many.N); err != nil {
		return nil, fmt.Errorf("reference forward of %d: %w", many.N, err)
	}
	if fg, err = ge.Forward(many.X, many.N); err != nil {
		return nil, fmt.Errorf("forward of %d: %w", many.N, err)
	}
	r.check(fmt.Sprintf("forward outputs, %d images", many.N), TensorDiff(fr, fg), tol.Tensor)

	lr, gr, err := re.Gradients(b)
	if err != nil {
		return nil, fmt.Errorf("reference gradients: %w", err)
	}
	lg, gg, err := ge.Gradients(b)
	if err != nil {
		return nil, fmt.Errorf("gradients: %w", err)
	}
	r.check(fmt.Sprintf("loss (%.4f)", lr), relDiff(float64(lr), float64(lg)), tol.Loss)
	if len(gr) != len(gg) {
		return nil, fmt.Errorf("%d gradient tensors, reference has %d", len(gg), len(gr))
	}
	for i, s := range p.Specs {
		if !r.check("grad "+s.Name, TensorDiff(gr[i], gg[i]), tol.Tensor) {
			r.Lines = append(r.Lines, "    "+worst(gr[i], gg[i]))
		}
	}

	for k := 0; k < steps; k++ {
		sb := Batch(a, bs, seed+uint64(k)+1)
		l1, err := re.Step(sb)
		if err != nil {
			return nil, fmt.Errorf("reference step %d: %w", k, err)
		}
		l2, err := ge.Step(sb)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", k, err)
		}
		r.check(fmt.Sprintf("loss at step %d", k+1), relDiff(float64(l1), float64(l2)), tol.Loss*10)
	}
	wr, wg := p.Clone(), p.Clone()
	if err := re.ReadParams(wr); err != nil {
		return nil, err
	}
	if err := ge.ReadParams(wg); err != nil {
		return nil, err
	}
	for i, s := range p.Specs {
		r.check(fmt.Sprintf("update %s after %d", s.Name, steps), updateDiff(p.Values[i], wr.Values[i], wg.Values[i]), tol.Steps)
	}
	if steps > 0 {
		if err := compareResume(r, cfg, re, ge, got, wr, Batch(a, bs, seed+uint64(steps)+1), tol); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// compareResume checks the optimiser's state after the steps (ReadAdam: the same step
// count and moments), then hands the reference's weights and state to a fresh engine
// under test (WriteParams, WriteAdam), as a resumed training does, and checks that its
// next step makes the reference's update: a fresh Adam's first step would not.
func compareResume(r *Report, cfg nn.EngineConfig, re, ge nn.Engine, got Factory, w *nn.Params, b *nn.Batch, tol Tolerance) error {
	sr, err := re.ReadAdam()
	if err != nil {
		return fmt.Errorf("reference optimiser state: %w", err)
	}
	sg, err := ge.ReadAdam()
	if err != nil {
		return fmt.Errorf("optimiser state: %w", err)
	}
	r.check(fmt.Sprintf("adam steps (%d)", sr.T), math.Abs(float64(sr.T-sg.T)), 0)
	if len(sg.M) != len(sr.M) || len(sg.V) != len(sr.V) {
		return fmt.Errorf("optimiser state of %d/%d tensors, reference has %d/%d", len(sg.M), len(sg.V), len(sr.M), len(sr.V))
	}
	for i, s := range w.Specs {
		r.check("adam m "+s.Name, TensorDiff(sr.M[i], sg.M[i]), tol.Steps)
		r.check("adam v "+s.Name, TensorDiff(sr.V[i], sg.V[i]), tol.Steps)
	}
	fresh, err := got(cfg)
	if err != nil {
		return fmt.Errorf("engine under test, resumed: %w", err)
	}
	defer fresh.Close()
	if err := fresh.WriteParams(w); err != nil {
		return fmt.Errorf("resumed weights: %w", err)
	}
	if err := fresh.WriteAdam(sr); err != nil {
		return fmt.Errorf("resumed optimiser state: %w", err)
	}
	if _, err := re.Step(b); err != nil {
		return fmt.Errorf("reference step after the others: %w", err)
	}
	if _, err := fresh.Step(b); err != nil {
		return fmt.Errorf("resumed step: %w", err)
	}
	after, resumed := w.Clone(), w.Clone()
	if err := re.ReadParams(after); err != nil {
		return err
	}
	if err := fresh.ReadParams(resumed); err != nil {
		return err
	}
	for i, s := range w.Specs {
		r.check("resumed update "+s.Name, updateDiff(w.Values[i], after.Values[i], resumed.Values[i]), tol.Steps)
	}
	return nil
}

// Batch is n random images for a with random labels or two boxes each.
func Batch(a nn.Arch, n int, seed uint64) *nn.Batch {
	r := rand.New(rand.NewPCG(seed, 7))
	b := &nn.Batch{N: n, X: make([]float32, n*a.InputSize())}
	for i := range b.X {
		b.X[i] = r.Float32()
	}
	if a.Task == nn.Classify {
		for i := 0; i < n; i++ {
			b.Labels = append(b.Labels, r.IntN(a.Classes))
		}
		return b
	}
	boxes := make([][]nn.Box, n)
	for i := range boxes {
		x, y := 0.5*r.Float32(), 0.5*r.Float32()
		boxes[i] = []nn.Box{
			{X0: x, Y0: y, X1: x + 0.1 + 0.3*r.Float32(), Y1: y + 0.1 + 0.3*r.Float32(), Class: r.IntN(a.Classes)},
			{X0: 0.55, Y0: 0.5, X1: 0.9, Y1: 0.95, Class: r.IntN(a.Classes)},
		}
	}
	b.Det = nn.EncodeTargets(a, boxes)
	return b
}

// TensorDiff is max|ref−got| / max|ref| (the absolute difference when ref is all zero;
// +Inf when the lengths differ).
func TensorDiff(ref, got []float32) float64 {
	if len(ref) != len(got) {
		return math.Inf(1)
	}
	var d, scale float64
	for i := range ref {
		d = math.Max(d, math.Abs(float64(ref[i])-float64(got[i])))
		scale = math.Max(scale, math.Abs(float64(ref[i])))
	}
	if scale == 0 {
		return d
	}
	return d / scale
}

func relDiff(a, b float64) float64 { return math.Abs(a-b) / math.Max(math.Abs(a), 1e-12) }

// updateDiff is ‖(got−w0) − (ref−w0)‖₂ / ‖ref−w0‖₂.
func updateDiff(w0, ref, got []float32) float64 {
	var num, den float64
	for i := range w0 {
		dr := float64(ref[i]) - float64(w0[i])
		dg := float64(got[i]) - float64(w0[i])
		num += (dg - dr) * (dg - dr)
		den += dr * dr
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}
