//go:build goexperiment.simd && amd64

package gorgoniaengine

import (
	"simd/archsimd"
	"unsafe"
)

// The row kernels eight lanes at a time with AVX2 (GOEXPERIMENT=simd, Go 1.26's
// simd/archsimd), on CPUs that have it; the scalar versions do the rest of a row and
// run everywhere else. The vector code does the scalar code's operations in its order,
// multiply then add (the Go compiler fuses neither on amd64's default GOAMD64=v1), so
// both round alike. Each vector loop ends with VZEROUPPER (see clearUpper): without
// it the vector SiLU ran 3x slower than the scalar one. Nothing in a loop may be a
// legacy SSE instruction either, a zero vector's XORPS included.

// rowKernels names what runs the row kernels, for the engine's name.
func rowKernels() string {
	if useAVX2 {
		return "AVX2"
	}
	return "scalar"
}

// useAVX2 is fixed at start-up: whether this CPU runs the vector kernels.
var useAVX2 = archsimd.X86.AVX2()

type f32x8 = archsimd.Float32x8

func load8(s []float32) f32x8     { return archsimd.LoadFloat32x8Slice(s) }
func splat8(v float32) f32x8      { return archsimd.BroadcastFloat32x8(v) }
func store8(v f32x8, s []float32) { v.StoreSlice(s) }

// at is the eight float32s from p's i-th: for the convolution rows, whose bounds the
// kernels check once, on entry, rather than at each of a step's nine loads.
func at(p unsafe.Pointer, i int) *[8]float32 { return (*[8]float32)(unsafe.Add(p, 4*i)) }

// loadAt is archsimd.LoadFloat32x8(at(p, i)).
func loadAt(p unsafe.Pointer, i int) f32x8 { return archsimd.LoadFloat32x8(at(p, i)) }

// expf32x8 is expf32 on eight lanes; NaN lanes are for the caller to mend.
func expf32x8(x f32x8) f32x8 {
	x = x.Max(splat8(-87)).Min(splat8(87))
	fn := x.Mul(splat8(expLog2e)).Add(splat8(expRound)).Sub(splat8(expRound))
	n := fn.ConvertToInt32()
	r := x.Sub(fn.Mul(splat8(expLn2Hi))).Sub(fn.Mul(splat8(expLn2Lo)))
	p := splat8(1.0 / 720).Add(r.Mul(splat8(1.0 / 5040)))
	p = splat8(1.0 / 120).Add(r.Mul(p))
	p = splat8(1.0 / 24).Add(r.Mul(p))
	p = splat8(1.0 / 6).Add(r.Mul(p))
	p = splat8(1.0 / 2).Add(r.Mul(p))
	p = splat8(1).Add(r.Mul(p))
	p = splat8(1).Add(r.Mul(p))
	scale := n.Add(archsimd.BroadcastInt32x8(127)).ShiftAllLeft(23).AsFloat32x8()
	return p.Mul(scale)
}

// sigmoid32x8 is sigmoid32 on eight lanes (a NaN lane gives a number: callers multiply
// by the lane's x, which makes it NaN again).
func sigmoid32x8(v f32x8) f32x8 {
	one := splat8(1)
	// −v as (−1)·v, which is exact: a zero constant would be an SSE XORPS here.
	return one.Div(one.Add(expf32x8(splat8(-1).Mul(v))))
}

func siluForward(out, x []float32) {
	out = out[:len(x)]
	i := 0
	if useAVX2 {
		for ; i+8 <= len(x); i += 8 {
			v := load8(x[i:])
			store8(v.Mul(sigmoid32x8(v)), out[i:])
		}
		archsimd.ClearAVXUpperBits() // before the scalar code: see the file's comment
	}
	siluForwardScalar(out[i:], x[i:])
}

func siluBackward(out, x, dy []float32) {
	out, dy = out[:len(x)], dy[:len(x)]
	i := 0
	if useAVX2 {
		one := splat8(1)
		for ; i+8 <= len(x); i += 8 {
			v := load8(x[i:])
			s := sigmoid32x8(v)
			store8(load8(dy[i:]).Mul(s).Mul(one.Add(v.Mul(one.Sub(s)))), out[i:])
		}
		archsimd.ClearAVXUpperBits() // before the scalar code: see the file's comment
	}
	siluBackwardScalar(out[i:], x[i:], dy[i:])
}

func relu6Forward(out, x []float32) {
	out = out[:len(x)]
	i := 0
	if useAVX2 {
		zero, six := splat8(0), splat8(6)
		for ; i+8 <= len(x); i += 8 {
			v := load8(x[i:])
			// Adding +0 turns a −0 into +0, as Go's max(−0, 0) does; NaN stays NaN.
			y := v.Max(zero).Min(six).Add(zero).Merge(v, v.Equal(v))
			store8(y, out[i:])
		}
		archsimd.ClearAVXUpperBits() // before the scalar code: see the file's comment
	}
	relu6ForwardScalar(out[i:], x[i:])
}

func relu6Backward(out, y, dy []float32) {
	out, dy = out[:len(y)], dy[:len(y)]
	i := 0
	if useAVX2 {
		zero, six := splat8(0), splat8(6)
		for ; i+8 <= len(y); i += 8 {
			v := load8(y[i:])
			store8(load8(dy[i:]).Masked(v.Greater(zero).And(v.Less(six))), out[i:])
		}
		archsimd.ClearAVXUpperBits() // before the scalar code: see the file's comment
	}
	relu6BackwardScalar(out[i:], y[i:], dy[i:])
}

func dw3Forward(o, r0, r1, r2, w []float32, bias float32) {
	n := len(o)
	r0, r1, r2, w = r0[:n+2], r1[:n+2], r2[:n+2], w[:9]
	i := 0
	if useAVX2 {
		w0, w1, w2, w3, w4, w5, w6, w7, w8 := splat8(w[0]), splat8(w[1]), splat8(w[2]), splat8(w[3]), splat8(w[4]), splat8(w[5]), splat8(w[6]), splat8(w[7]), splat8(w[8])
		b := splat8(bias)
		p0, p1, p2 := unsafe.Pointer(unsafe.SliceData(r0)), unsafe.Pointer(unsafe.SliceData(r1)), unsafe.Pointer(unsafe.SliceData(r2))
		po := unsafe.Pointer(unsafe.SliceData(o))
		for ; i+8 <= n; i += 8 { // the rows hold n + 2 values (checked above): i + 2 + 8 ≤ n + 2
			v := b.Add(w0.Mul(loadAt(p0, i)))
			v = v.Add(w1.Mul(loadAt(p0, i+1)))
			v = v.Add(w2.Mul(loadAt(p0, i+2)))
			v = v.Add(w3.Mul(loadAt(p1, i)))
			v = v.Add(w4.Mul(loadAt(p1, i+1)))
			v = v.Add(w5.Mul(loadAt(p1, i+2)))
			v = v.Add(w6.Mul(loadAt(p2, i)))
			v = v.Add(w7.Mul(loadAt(p2, i+1)))
			v = v.Add(w8.Mul(loadAt(p2, i+2)))
			v.Store(at(po, i))
		}
		archsimd.ClearAVXUpperBits() // before the scalar code: see the file's comment
	}
	dw3ForwardScalar(o[i:], r0[i:], r1[i:], r2[i:], w, bias)
}

func dw3GradX(o, g0, g1, g2, w []float32) {
	n := len(o)
	g0, g1, g2, w = g0[:n+2], g1[:n+2], g2[:n+2], w[:9]
	i := 0
	if useAVX2 {
		w0, w1, w2, w3, w4, w5, w6, w7, w8 := splat8(w[0]), splat8(w[1]), splat8(w[2]), splat8(w[3]), splat8(w[4]), splat8(w[5]), splat8(w[6]), splat8(w[7]), splat8(w[8])
		p0, p1, p2 := unsafe.Pointer(unsafe.SliceData(g0)), unsafe.Pointer(unsafe.SliceData(g1)), unsafe.Pointer(unsafe.SliceData(g2))
		po := unsafe.Pointer(unsafe.SliceData(o))
		for ; i+8 <= n; i += 8 { // as in dw3Forward
			v := w0.Mul(loadAt(p0, i+2))
			v = v.Add(w1.Mul(loadAt(p0, i+1)))
			v = v.Add(w2.Mul(loadAt(p0, i)))
			v = v.Add(w3.Mul(loadAt(p1, i+2)))
			v = v.Add(w4.Mul(loadAt(p1, i+1)))
			v = v.Add(w5.Mul(loadAt(p1, i)))
			v = v.Add(w6.Mul(loadAt(p2, i+2)))
			v = v.Add(w7.Mul(loadAt(p2, i+1)))
			v = v.Add(w8.Mul(loadAt(p2, i)))
			v.Store(at(po, i))
		}
		archsimd.ClearAVXUpperBits() // before the scalar code: see the file's comment
	}
	dw3GradXScalar(o[i:], g0[i:], g1[i:], g2[i:], w)
}

type f64x4 = archsimd.Float64x4

func splat4(v float64) f64x4 { return archsimd.BroadcastFloat64x4(v) }

// lane4 is l[off:off+4] as an array, for the vector loads and stores of the sums.
func lane4(l *lanes, off int) *[4]float64 { return (*[4]float64)(l[off : off+4]) }

func bnNormalise(o, x []float32, m, iv, g, b float32) {
	o = o[:len(x)]
	i := 0
	if useAVX2 {
		vm, viv, vg, vb := splat8(m), splat8(iv), splat8(g), splat8(b)
		for ; i+8 <= len(x); i += 8 {
			store8(load8(x[i:]).Sub(vm).Mul(viv).Mul(vg).Add(vb), o[i:])
		}
		archsimd.ClearAVXUpperBits()
	}
	bnNormaliseScalar(o[i:], x[i:], m, iv, g, b)
}

func bnGradX(o, x, dy []float32, k, m, iv float32, a, bc float64) {
	o, dy = o[:len(x)], dy[:len(x)]
	i := 0
	if useAVX2 {
		vk, vm, viv := splat8(k), splat8(m), splat8(iv)
		va, vbc := splat4(a), splat4(bc)
		for ; i+8 <= len(x); i += 8 {
			xh := load8(x[i:]).Sub(vm).Mul(viv)
			g := load8(dy[i:])
			lo := g.GetLo().ConvertToFloat64().Sub(va).Sub(xh.GetLo().ConvertToFloat64().Mul(vbc)).ConvertToFloat32()
			hi := g.GetHi().ConvertToFloat64().Sub(va).Sub(xh.GetHi().ConvertToFloat64().Mul(vbc)).ConvertToFloat32()
			store8(vk.Mul(xh.SetLo(lo).SetHi(hi)), o[i:]) // xh only lends its register
		}
		archsimd.ClearAVXUpperBits()
	}
	bnGradXScalar(o[i:], x[i:], dy[i:], k, m, iv, a, bc)
}

func bnSums(l *lanes, x, dy []float32, m, iv float32) {
	dy = dy[:len(x)]
	i := 0
	if useAVX2 && len(x) >= 8 {
		vm, viv := splat8(m), splat8(iv)
		// Σdy and Σdy·x̂, lanes 0–3 and 4–7, going on from the sums so far as the scalar
		// kernel's do.
		s0, s1 := archsimd.LoadFloat64x4(lane4(l, 0)), archsimd.LoadFloat64x4(lane4(l, 4))
		t0, t1 := archsimd.LoadFloat64x4(lane4(l, 8)), archsimd.LoadFloat64x4(lane4(l, 12))
		for ; i+8 <= len(x); i += 8 {
			xh := load8(x[i:]).Sub(vm).Mul(viv)
			g := load8(dy[i:])
			glo, ghi := g.GetLo().ConvertToFloat64(), g.GetHi().ConvertToFloat64()
			s0, s1 = s0.Add(glo), s1.Add(ghi)
			t0 = t0.Add(glo.Mul(xh.GetLo().ConvertToFloat64()))
			t1 = t1.Add(ghi.Mul(xh.GetHi().ConvertToFloat64()))
		}
		s0.Store(lane4(l, 0))
		s1.Store(lane4(l, 4))
		t0.Store(lane4(l, 8))
		t1.Store(lane4(l, 12))
		archsimd.ClearAVXUpperBits()
	}
	bnSumsScalar(l, x[i:], dy[i:], m, iv) // i is a multiple of 8: the lanes line up
}

func statsSums(l *lanes, x []float32, k float64) {
	i := 0
	if useAVX2 && len(x) >= 8 {
		vk := splat4(k)
		s0, s1 := archsimd.LoadFloat64x4(lane4(l, 0)), archsimd.LoadFloat64x4(lane4(l, 4))
		q0, q1 := archsimd.LoadFloat64x4(lane4(l, 8)), archsimd.LoadFloat64x4(lane4(l, 12))
		for ; i+8 <= len(x); i += 8 {
			v := load8(x[i:])
			dlo, dhi := v.GetLo().ConvertToFloat64().Sub(vk), v.GetHi().ConvertToFloat64().Sub(vk)
			s0, s1 = s0.Add(dlo), s1.Add(dhi)
			q0, q1 = q0.Add(dlo.Mul(dlo)), q1.Add(dhi.Mul(dhi))
		}
		s0.Store(lane4(l, 0))
		s1.Store(lane4(l, 4))
		q0.Store(lane4(l, 8))
		q1.Store(lane4(l, 12))
		archsimd.ClearAVXUpperBits()
	}
	statsSumsScalar(l, x[i:], k)
}

func dw3GradW(part, g, r0, r1, r2 []float32) {
	n := len(g)
	r0, r1, r2, part = r0[:n+2], r1[:n+2], r2[:n+2], part[:9]
	if !useAVX2 || n < 8 {
		dw3GradWScalar(part, g, r0, r1, r2)
		return
	}
	p0, p1, p2 := unsafe.Pointer(unsafe.SliceData(r0)), unsafe.Pointer(unsafe.SliceData(r1)), unsafe.Pointer(unsafe.SliceData(r2))
	pg := unsafe.Pointer(unsafe.SliceData(g))
	i := 0
	v := loadAt(pg, 0) // the first eight values start the nine sums: no zero vector (an SSE XORPS)
	a00, a01, a02 := v.Mul(loadAt(p0, 0)), v.Mul(loadAt(p0, 1)), v.Mul(loadAt(p0, 2))
	a10, a11, a12 := v.Mul(loadAt(p1, 0)), v.Mul(loadAt(p1, 1)), v.Mul(loadAt(p1, 2))
	a20, a21, a22 := v.Mul(loadAt(p2, 0)), v.Mul(loadAt(p2, 1)), v.Mul(loadAt(p2, 2))
	for i = 8; i+8 <= n; i += 8 { // the rows hold n + 2 values: i + 2 + 8 ≤ n + 2
		v := loadAt(pg, i)
		a00 = a00.Add(v.Mul(loadAt(p0, i)))
		a01 = a01.Add(v.Mul(loadAt(p0, i+1)))
		a02 = a02.Add(v.Mul(loadAt(p0, i+2)))
		a10 = a10.Add(v.Mul(loadAt(p1, i)))
		a11 = a11.Add(v.Mul(loadAt(p1, i+1)))
		a12 = a12.Add(v.Mul(loadAt(p1, i+2)))
		a20 = a20.Add(v.Mul(loadAt(p2, i)))
		a21 = a21.Add(v.Mul(loadAt(p2, i+1)))
		a22 = a22.Add(v.Mul(loadAt(p2, i+2)))
	}
	var p [9][8]float32
	a00.Store(&p[0])
	a01.Store(&p[1])
	a02.Store(&p[2])
	a10.Store(&p[3])
	a11.Store(&p[4])
	a12.Store(&p[5])
	a20.Store(&p[6])
	a21.Store(&p[7])
	a22.Store(&p[8])
	archsimd.ClearAVXUpperBits()
	dw3GradWLanes(&p, g, r0, r1, r2, i) // the tail, in the lanes the scalar kernel puts it in
	addTaps(part, &p)
}

// clearUpper is VZEROUPPER where the CPU has AVX. Dirty upper halves of the vector
// registers make every SSE instruction after them wait, and all of Go's scalar float
// code is SSE; OpenBLAS's AVX-512 kernels leave them dirty, and a goroutine stopped in
// a vector loop can leave them so for the next one on its thread. The engine clears
// them at the start of each op and each worker goroutine: the detector loss's
// math.Exp ran 7x slower than on its own before.
func clearUpper() {
	if hasAVX {
		archsimd.ClearAVXUpperBits()
	}
}

// hasAVX is fixed at start-up: whether this CPU has VZEROUPPER.
var hasAVX = archsimd.X86.AVX()
