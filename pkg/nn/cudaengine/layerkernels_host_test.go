package cudaengine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

// kcall is one kernel launch of a host test: arguments are array names (string), ints
// or float32s.
type kcall struct {
	name string
	grid int
	args []any
}

// karray is a named array of a host test: its C type and its initial values.
type karray struct {
	ints bool
	init []float32
}

// runBoth runs calls on the CUDA C (compiled for the host, one-thread blocks) and on
// the host device's Go transcriptions from the same initial arrays, fails where any
// array differs, and returns the final arrays (from the C).
func runBoth(t *testing.T, arrays map[string]karray, calls []kcall) map[string][]float64 {
	t.Helper()
	names := make([]string, 0, len(arrays))
	for n := range arrays {
		names = append(names, n)
	}
	sort.Strings(names)
	var src strings.Builder
	for _, n := range names {
		a := arrays[n]
		if a.ints {
			fmt.Fprintf(&src, "static int %s[%d];\n", n, len(a.init))
		} else {
			src.WriteString(cArray("float", n, a.init))
		}
	}
	for _, c := range calls {
		parts := make([]string, len(c.args))
		for i, a := range c.args {
			switch v := a.(type) {
			case string:
				parts[i] = v
			case int:
				parts[i] = fmt.Sprint(v)
			case float32:
				parts[i] = strconv32(v)
			}
		}
		fmt.Fprintf(&src, "LAUNCH(%d, %s(%s));\n", c.grid, c.name, strings.Join(parts, ", "))
	}
	for _, n := range names {
		fmt.Fprintf(&src, "OUT(%q, %s, %d);\n", n, n, len(arrays[n].init))
	}
	res := hostRun(t, src.String())

	h := newHostDevice()
	bufs := map[string]buf{}
	for _, n := range names {
		b, _ := h.alloc(len(arrays[n].init))
		if arrays[n].ints {
			_ = h.zero(b)
		} else {
			_ = h.upload(b, arrays[n].init)
		}
		bufs[n] = b
	}
	for _, c := range calls {
		args := make([]any, len(c.args))
		for i, a := range c.args {
			if s, ok := a.(string); ok {
				args[i] = bufs[s]
			} else {
				args[i] = a
			}
		}
		if err := h.launch(c.name, 0, args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		got := make([]float64, len(arrays[n].init))
		for i, v := range h.mem[bufs[n].p][:len(got)] {
			if arrays[n].ints {
				got[i] = float64(int32(math.Float32bits(v)))
			} else {
				got[i] = float64(v)
			}
		}
		near(t, n+" (Go transcription vs CUDA C)", got, res[n], 1e-5)
	}
	return res
}

func strconv32(v float32) string { return fmt.Sprintf("%.9gf", v) }

func dot(a []float64, b []float32) float64 {
	var s float64
	for i := range b {
		s += a[i] * float64(b[i])
	}
	return s
}

// TestGroupedConvKernelsOnHost: gconv_fwd against a direct sum, and its gradients as
// its adjoints: ⟨conv(x; w), dy⟩ = ⟨x, gconv_dx(dy)⟩ = ⟨w, gconv_dw(x, dy)⟩; the bias
// and channel_sum; depthwise and 2-group, strides 1 and 2.
func TestGroupedConvKernelsOnHost(t *testing.T) {
	for _, c := range []struct{ C, O, G, K, pad, s int }{{4, 4, 4, 3, 1, 2}, {4, 6, 2, 3, 1, 1}, {6, 6, 3, 2, 0, 2}} {
		t.Run(fmt.Sprintf("C%d-O%d-G%d-K%d-s%d", c.C, c.O, c.G, c.K, c.s), func(t *testing.T) {
			const N, H, W = 2, 5, 6
			Ho, Wo := (H+2*c.pad-c.K)/c.s+1, (W+2*c.pad-c.K)/c.s+1
			r := rand.New(rand.NewPCG(uint64(c.C*c.O), 3))
			cg := c.C / c.G
			x, w, b := randoms(r, N*c.C*H*W), randoms(r, c.O*cg*c.K*c.K), randoms(r, c.O)
			dy := randoms(r, N*c.O*Ho*Wo)
			geo := []any{N, c.C, H, W, c.O, c.G, c.K, c.pad, c.s, Ho, Wo}
			res := runBoth(t, map[string]karray{
				"x": {init: x}, "w": {init: w}, "b": {init: b}, "dy": {init: dy},
				"y": {init: make([]float32, len(dy))}, "y0": {init: make([]float32, len(dy))},
				"dx": {init: make([]float32, len(x))}, "dw": {init: make([]float32, len(w))}, "db": {init: make([]float32, c.O)},
			}, []kcall{
				{"gconv_fwd", 7, append(append([]any{"x", "w", "b", "y"}, geo...), 1)},
				{"gconv_fwd", 3, append(append([]any{"x", "w", "b", "y0"}, geo...), 0)},
				{"gconv_dx", 5, append([]any{"dy", "w", "dx"}, geo...)},
				{"gconv_dw", 4, append([]any{"x", "dy", "dw"}, geo...)},
				{"channel_sum", 2, []any{"dy", "db", N, c.O, Ho * Wo}},
			})
			want := make([]float64, len(dy))
			for n := 0; n < N; n++ {
				for o := 0; o < c.O; o++ {
					for oy := 0; oy < Ho; oy++ {
						for ox := 0; ox < Wo; ox++ {
							s := float64(b[o])
							for ci := 0; ci < cg; ci++ {
								for ki := 0; ki < c.K; ki++ {
									for kj := 0; kj < c.K; kj++ {
										yy, xx := oy*c.s+ki-c.pad, ox*c.s+kj-c.pad
										if yy >= 0 && yy < H && xx >= 0 && xx < W {
											s += float64(w[((o*cg+ci)*c.K+ki)*c.K+kj]) * float64(x[((n*c.C+o/(c.O/c.G)*cg+ci)*H+yy)*W+xx])
										}
									}
								}
							}
							want[((n*c.O+o)*Ho+oy)*Wo+ox] = s
						}
					}
				}
			}
			near(t, "gconv_fwd", res["y"], want, 1e-5)
			lhs := dot(res["y0"], dy)
			if rx, rw := dot(res["dx"], x), dot(res["dw"], w); math.Abs(lhs-rx) > 1e-4*math.Max(1, math.Abs(lhs)) || math.Abs(lhs-rw) > 1e-4*math.Max(1, math.Abs(lhs)) {
				t.Fatalf("adjoints: ⟨conv x, dy⟩ = %v, ⟨x, dx⟩ = %v, ⟨w, dw⟩ = %v", lhs, rx, rw)
			}
			wantDb := make([]float64, c.O)
			for i, v := range dy {
				wantDb[(i/(Ho*Wo))%c.O] += float64(v)
			}
			near(t, "channel_sum", res["db"], wantDb, 1e-5)
		})
	}
}

// TestBatchNormKernelsOnHost: statistics of the real images (padding excluded), the
// running update, inference statistics, the forward pass and both backward modes
// against the batch norm formulas; the backward pass also against a finite difference
// of Σ dy·bn(x) through the Go transcription.
func TestBatchNormKernelsOnHost(t *testing.T) {
	const N, Nb, C, HW = 3, 4, 3, 5
	r := rand.New(rand.NewPCG(8, 8))
	x, dy := randoms(r, Nb*C*HW), randoms(r, Nb*C*HW)
	g, b := randoms(r, C), randoms(r, C)
	rm, rv := randoms(r, C), make([]float32, C)
	for i := range rv {
		rv[i] = 0.5 + r.Float32()
	}
	z := func(n int) karray { return karray{init: make([]float32, n)} }
	res := runBoth(t, map[string]karray{
		"x": {init: x}, "dy": {init: dy}, "g": {init: g}, "b": {init: b}, "rm": {init: rm}, "rv": {init: rv},
		"mean": z(C), "inv": z(C), "y": z(len(x)), "dg": z(C), "db": z(C), "dx": z(len(x)),
		"fmean": z(C), "finv": z(C), "fy": z(len(x)), "fdg": z(C), "fdb": z(C), "fdx": z(len(x)),
	}, []kcall{
		{"bn_running", 2, []any{"rm", "rv", "fmean", "finv", C, float32(1e-3)}},
		{"bn_stats", 2, []any{"x", "mean", "inv", "rm", "rv", N, C, HW, float32(1e-3), float32(0.25), 1}},
		{"bn_fwd", 5, []any{"x", "y", "mean", "inv", "g", "b", Nb, C, HW}},
		{"bn_bwd_reduce", 2, []any{"x", "dy", "mean", "inv", "dg", "db", N, C, HW}},
		{"bn_bwd_dx", 3, []any{"x", "dy", "dx", "mean", "inv", "g", "dg", "db", N, Nb, C, HW, 1}},
		{"bn_fwd", 5, []any{"x", "fy", "fmean", "finv", "g", "b", Nb, C, HW}},
		{"bn_bwd_reduce", 2, []any{"x", "dy", "fmean", "finv", "fdg", "fdb", N, C, HW}},
		{"bn_bwd_dx", 3, []any{"x", "dy", "fdx", "fmean", "finv", "g", "fdg", "fdb", N, Nb, C, HW, 0}},
	})
	for c := 0; c < C; c++ {
		var s, ss float64
		for n := 0; n < N; n++ {
			for _, v := range x[(n*C+c)*HW : (n*C+c+1)*HW] {
				s += float64(v)
			}
		}
		m := s / (N * HW)
		for n := 0; n < N; n++ {
			for _, v := range x[(n*C+c)*HW : (n*C+c+1)*HW] {
				ss += (float64(v) - m) * (float64(v) - m)
			}
		}
		v := ss / (N * HW)
		near(t, "mean", res["mean"][c:c+1], []float64{m}, 1e-6)
		near(t, "inv", res["inv"][c:c+1], []float64{1 / math.Sqrt(v+1e-3)}, 1e-6)
		near(t, "running mean", res["rm"][c:c+1], []float64{0.75*float64(rm[c]) + 0.25*m}, 1e-6)
		near(t, "running var", res["rv"][c:c+1], []float64{0.75*float64(rv[c]) + 0.25*ss/(N*HW-1)}, 1e-6)
		near(t, "frozen inv", res["finv"][c:c+1], []float64{1 / math.Sqrt(float64(rv[c])+1e-3)}, 1e-6)
		for n := 0; n < Nb; n++ {
			for p := 0; p < HW; p++ {
				i := (n*C+c)*HW + p
				near(t, "bn_fwd", res["y"][i:i+1], []float64{(float64(x[i])-m)/math.Sqrt(v+1e-3)*float64(g[c]) + float64(b[c])}, 1e-5)
				wantF := 0.0
				if n < N {
					wantF = float64(g[c]) / math.Sqrt(float64(rv[c])+1e-3) * float64(dy[i])
				}
				near(t, "bn_bwd_dx frozen", res["fdx"][i:i+1], []float64{wantF}, 1e-5)
			}
		}
	}
	// Train-mode dx against a central difference of L = Σ_{real} dy·bn(x) in float64.
	bnLoss := func(x []float64) float64 {
		var l float64
		for c := 0; c < C; c++ {
			var s, ss float64
			for n := 0; n < N; n++ {
				for p := 0; p < HW; p++ {
					s += x[(n*C+c)*HW+p]
				}
			}
			m := s / (N * HW)
			for n := 0; n < N; n++ {
				for p := 0; p < HW; p++ {
					ss += (x[(n*C+c)*HW+p] - m) * (x[(n*C+c)*HW+p] - m)
				}
			}
			inv := 1 / math.Sqrt(ss/(N*HW)+1e-3)
			for n := 0; n < N; n++ {
				for p := 0; p < HW; p++ {
					i := (n*C+c)*HW + p
					l += float64(dy[i]) * ((x[i]-m)*inv*float64(g[c]) + float64(b[c]))
				}
			}
		}
		return l
	}
	x64 := make([]float64, len(x))
	for i, v := range x {
		x64[i] = float64(v)
	}
	num := make([]float64, len(x))
	for i := range x64 {
		o := x64[i]
		x64[i] = o + 1e-6
		lp := bnLoss(x64)
		x64[i] = o - 1e-6
		lm := bnLoss(x64)
		x64[i] = o
		num[i] = (lp - lm) / 2e-6
	}
	near(t, "bn_bwd_dx (finite differences)", res["dx"], num, 1e-4)
}

// TestShapeKernelsOnHost: the activations against their formulas, and the layout
// kernels as adjoint pairs: ⟨up2(x), d⟩ = ⟨x, up2_bwd(d)⟩, ⟨gap(x), d⟩ = ⟨x, gap_bwd(d)⟩,
// concat_bwd inverting concat_fwd; K×K max pooling against a direct search with its
// gradient gathered where the forward pass scattered; add2, add_into, copy.
func TestShapeKernelsOnHost(t *testing.T) {
	const NC, H, W = 3, 5, 4
	const K, S, P = 3, 2, 1
	Ho, Wo := (H+2*P-K)/S+1, (W+2*P-K)/S+1
	r := rand.New(rand.NewPCG(9, 9))
	x := randoms(r, NC*H*W)
	for i := range x {
		x[i] *= 8 // reach ReLU6's upper kink
	}
	x[7] = x[6] // a tie inside a pooling window
	d4, dg, dp := randoms(r, NC*4*H*W), randoms(r, NC), randoms(r, NC*Ho*Wo)
	a, b := randoms(r, 2*H*W), randoms(r, 1*H*W)
	z := func(n int) karray { return karray{init: make([]float32, n)} }
	n := NC * H * W
	res := runBoth(t, map[string]karray{
		"x": {init: x}, "d4": {init: d4}, "dg": {init: dg}, "dp": {init: dp}, "a": {init: a}, "b": {init: b},
		"r6": z(n), "dr6": z(n), "si": z(n), "dsi": z(n), "up": z(4 * n), "dup": z(n), "gp": z(NC), "dgp": z(n),
		"mp": z(NC * Ho * Wo), "idx": {ints: true, init: make([]float32, NC*Ho*Wo)}, "dmp": z(n),
		"cat": z(3 * H * W), "ca": z(2 * H * W), "cb": z(H * W), "sum": z(n), "cp": z(n),
	}, []kcall{
		{"relu6_fwd", 3, []any{"x", "r6", n}},
		{"relu6_bwd", 3, []any{"x", "x", "dr6", n}},
		{"silu_fwd", 3, []any{"x", "si", n}},
		{"silu_bwd", 3, []any{"x", "x", "dsi", n}},
		{"up2_fwd", 4, []any{"x", "up", NC, H, W}},
		{"up2_bwd", 4, []any{"d4", "dup", NC, H, W}},
		{"gap_fwd", 2, []any{"x", "gp", NC, H * W}},
		{"gap_bwd", 2, []any{"dg", "dgp", NC, H * W}},
		{"maxpool_k_fwd", 3, []any{"x", "mp", "idx", NC, H, W, K, S, P, Ho, Wo}},
		{"maxpool_k_bwd", 3, []any{"dp", "idx", "dmp", NC, H, W, K, S, P, Ho, Wo}},
		{"concat_fwd", 2, []any{"a", "cat", 1, 2, 3, 1, H * W}},
		{"concat_fwd", 2, []any{"b", "cat", 1, 1, 3, 0, H * W}},
		{"concat_bwd", 2, []any{"cat", "ca", 1, 2, 3, 1, H * W}},
		{"concat_bwd", 2, []any{"cat", "cb", 1, 1, 3, 0, H * W}},
		{"copy", 2, []any{"x", "cp", n}},
		{"add2", 2, []any{"x", "x", "sum", n}},
		{"add_into", 2, []any{"sum", "x", n}},
	})
	for i, v := range x {
		v64 := float64(v)
		s := 1 / (1 + math.Exp(-v64))
		near(t, "relu6_fwd", res["r6"][i:i+1], []float64{math.Min(math.Max(v64, 0), 6)}, 1e-7)
		d := 0.0
		if v > 0 && v < 6 {
			d = v64
		}
		near(t, "relu6_bwd", res["dr6"][i:i+1], []float64{d}, 1e-6)
		near(t, "silu_fwd", res["si"][i:i+1], []float64{v64 * s}, 1e-6)
		near(t, "silu_bwd", res["dsi"][i:i+1], []float64{v64 * s * (1 + v64*(1-s))}, 1e-5) // dy = x
		near(t, "copy", res["cp"][i:i+1], []float64{v64}, 1e-7)
		near(t, "add2, add_into", res["sum"][i:i+1], []float64{3 * v64}, 1e-6)
	}
	if l, r := dot(res["up"], d4), dot(res["dup"], x); math.Abs(l-r) > 1e-4*math.Max(1, math.Abs(l)) {
		t.Fatalf("up2_bwd is not up2_fwd's adjoint: %v vs %v", l, r)
	}
	for i := 0; i < 4*n; i++ {
		ox, oy, nc := i%(2*W), (i/(2*W))%(2*H), i/(4*H*W)
		near(t, "up2_fwd", res["up"][i:i+1], []float64{float64(x[(nc*H+oy/2)*W+ox/2])}, 1e-7)
	}
	if l, r := dot(res["gp"], dg), dot(res["dgp"], x); math.Abs(l-r) > 1e-4*math.Max(1, math.Abs(l)) {
		t.Fatalf("gap_bwd is not gap_fwd's adjoint: %v vs %v", l, r)
	}
	wantDmp := make([]float64, n)
	for nc := 0; nc < NC; nc++ {
		for oy := 0; oy < Ho; oy++ {
			for ox := 0; ox < Wo; ox++ {
				bi := -1
				for ky := 0; ky < K; ky++ {
					for kx := 0; kx < K; kx++ {
						yy, xx := oy*S+ky-P, ox*S+kx-P
						if yy >= 0 && yy < H && xx >= 0 && xx < W && (bi < 0 || x[(nc*H+yy)*W+xx] > x[bi]) {
							bi = (nc*H+yy)*W + xx
						}
					}
				}
				o := (nc*Ho+oy)*Wo + ox
				near(t, "maxpool_k_fwd", res["mp"][o:o+1], []float64{float64(x[bi])}, 1e-7)
				near(t, "maxpool_k_fwd winner", res["idx"][o:o+1], []float64{float64(bi)}, 1e-7)
				wantDmp[bi] += float64(dp[o])
			}
		}
	}
	near(t, "maxpool_k_bwd", res["dmp"], wantDmp, 1e-6)
	for i, v := range a {
		near(t, "concat", res["cat"][H*W+i:H*W+i+1], []float64{float64(v)}, 1e-7)
		near(t, "concat_bwd", res["ca"][i:i+1], []float64{float64(v)}, 1e-7)
	}
	for i, v := range b {
		near(t, "concat", res["cat"][i:i+1], []float64{float64(v)}, 1e-7)
		near(t, "concat_bwd", res["cb"][i:i+1], []float64{float64(v)}, 1e-7)
	}
}
