package cudaengine

import (
	"fmt"
	"math"
)

// hostLayerKernel runs the kernels of the graph layers (kernels.go) on the host: a
// sequential Go transcription of each, argument for argument, which the *OnHost tests
// check against the CUDA C. f(i) is argument i's memory, n(i) an integer argument,
// x(i) a float one; ints in memory (pooling winners) are their bit patterns.
func hostLayerKernel(name string, f func(int) []float32, n func(int) int, x func(int) float64) error {
	asInt := func(v float32) int { return int(int32(math.Float32bits(v))) }
	switch name {
	case "gconv_fwd", "gconv_dx", "gconv_dw":
		at := 3 // gconv_fwd(x, w, b, y, N, …, hasBias); gconv_dx(dy, w, dx, N, …); gconv_dw(x, dy, dw, N, …)
		if name == "gconv_fwd" {
			at = 4
		}
		N, C, H, W, O, G, K, pad, s, Ho, Wo := n(at), n(at+1), n(at+2), n(at+3), n(at+4), n(at+5), n(at+6), n(at+7), n(at+8), n(at+9), n(at+10)
		cg, og := C/G, O/G
		// visit calls v for every (input index, weight index, output index) product.
		visit := func(v func(xi, wi, yi int)) {
			for b := 0; b < N; b++ {
				for o := 0; o < O; o++ {
					g := o / og
					for oy := 0; oy < Ho; oy++ {
						for ox := 0; ox < Wo; ox++ {
							yi := ((b*O+o)*Ho+oy)*Wo + ox
							for c := 0; c < cg; c++ {
								for ki := 0; ki < K; ki++ {
									yy := oy*s + ki - pad
									if yy < 0 || yy >= H {
										continue
									}
									for kj := 0; kj < K; kj++ {
										xx := ox*s + kj - pad
										if xx < 0 || xx >= W {
											continue
										}
										v((((b*C+g*cg+c)*H)+yy)*W+xx, ((o*cg+c)*K+ki)*K+kj, yi)
									}
								}
							}
						}
					}
				}
			}
		}
		switch name {
		case "gconv_fwd": // (x, w, b, y, ..., hasBias)
			xs, w, bias, y := f(0), f(1), f(2), f(3)
			clear(y[:N*O*Ho*Wo])
			visit(func(xi, wi, yi int) { y[yi] += w[wi] * xs[xi] })
			if n(15) != 0 {
				for i := 0; i < N*O*Ho*Wo; i++ {
					y[i] += bias[(i/(Ho*Wo))%O]
				}
			}
		case "gconv_dx": // (dy, w, dx, ...)
			dy, w, dx := f(0), f(1), f(2)
			clear(dx[:N*C*H*W])
			visit(func(xi, wi, yi int) { dx[xi] += w[wi] * dy[yi] })
		case "gconv_dw": // (x, dy, dw, ...)
			xs, dy, dw := f(0), f(1), f(2)
			acc := make([]float64, O*cg*K*K)
			visit(func(xi, wi, yi int) { acc[wi] += float64(dy[yi]) * float64(xs[xi]) })
			for i, v := range acc {
				dw[i] = float32(v)
			}
		}
	case "channel_sum": // (d, out, N, C, HW)
		d, out, N, C, HW := f(0), f(1), n(2), n(3), n(4)
		for c := 0; c < C; c++ {
			var s float64
			for b := 0; b < N; b++ {
				for _, v := range d[(b*C+c)*HW : (b*C+c+1)*HW] {
					s += float64(v)
				}
			}
			out[c] = float32(s)
		}
	case "bn_stats": // (x, mean, inv, rmean, rvar, N, C, HW, eps, momentum, update)
		xs, mean, inv, rm, rv := f(0), f(1), f(2), f(3), f(4)
		N, C, HW, eps, mom, update := n(5), n(6), n(7), x(8), float32(x(9)), n(10)
		m := N * HW
		for c := 0; c < C; c++ {
			var s, ss float64
			for b := 0; b < N; b++ {
				for _, v := range xs[(b*C+c)*HW : (b*C+c+1)*HW] {
					s += float64(v)
				}
			}
			mu := s / float64(m)
			for b := 0; b < N; b++ {
				for _, v := range xs[(b*C+c)*HW : (b*C+c+1)*HW] {
					ss += (float64(v) - mu) * (float64(v) - mu)
				}
			}
			v := ss / float64(m)
			mean[c], inv[c] = float32(mu), float32(1/math.Sqrt(v+eps))
			if update != 0 {
				unbiased := v
				if m > 1 {
					unbiased = v * float64(m) / float64(m-1)
				}
				rm[c] = (1-mom)*rm[c] + mom*float32(mu)
				rv[c] = (1-mom)*rv[c] + mom*float32(unbiased)
			}
		}
	case "bn_running": // (rmean, rvar, mean, inv, C, eps)
		for c := 0; c < n(4); c++ {
			f(2)[c], f(3)[c] = f(0)[c], float32(1/math.Sqrt(float64(f(1)[c])+x(5)))
		}
	case "bn_fwd": // (x, y, mean, inv, gamma, beta, N, C, HW)
		xs, y, mean, inv, g, bt := f(0), f(1), f(2), f(3), f(4), f(5)
		C, HW := n(7), n(8)
		for i := 0; i < n(6)*C*HW; i++ {
			c := (i / HW) % C
			y[i] = (xs[i]-mean[c])*inv[c]*g[c] + bt[c]
		}
	case "bn_bwd_reduce": // (x, dy, mean, inv, dgamma, dbeta, N, C, HW)
		xs, dy, mean, inv, dg, db := f(0), f(1), f(2), f(3), f(4), f(5)
		N, C, HW := n(6), n(7), n(8)
		for c := 0; c < C; c++ {
			var a, b float64
			for bi := 0; bi < N; bi++ {
				for p := 0; p < HW; p++ {
					at := (bi*C+c)*HW + p
					a += float64(dy[at])
					b += float64(dy[at]) * float64((xs[at]-mean[c])*inv[c])
				}
			}
			db[c], dg[c] = float32(a), float32(b)
		}
	case "bn_bwd_dx": // (x, dy, dx, mean, inv, gamma, dgamma, dbeta, N, Nb, C, HW, train)
		xs, dy, dx, mean, inv, g, dg, db := f(0), f(1), f(2), f(3), f(4), f(5), f(6), f(7)
		N, Nb, C, HW, train := n(8), n(9), n(10), n(11), n(12)
		m := float64(N * HW)
		for i := 0; i < Nb*C*HW; i++ {
			c, b := (i/HW)%C, i/(C*HW)
			k := g[c] * inv[c]
			switch {
			case b >= N:
				dx[i] = 0
			case train == 0:
				dx[i] = k * dy[i]
			default:
				xh := (xs[i] - mean[c]) * inv[c]
				dx[i] = k * float32(float64(dy[i])-float64(db[c])/m-float64(xh)*(float64(dg[c])/m))
			}
		}
	case "relu6_fwd", "silu_fwd", "copy": // (x, y, n)
		for i := 0; i < n(2); i++ {
			v := f(0)[i]
			switch name {
			case "relu6_fwd":
				f(1)[i] = min(max(v, 0), 6)
			case "silu_fwd":
				f(1)[i] = v * float32(1/(1+math.Exp(-float64(v))))
			default:
				f(1)[i] = v
			}
		}
	case "relu6_bwd", "silu_bwd", "add2": // (x, dy, dx, n); add2 (a, b, y, n)
		for i := 0; i < n(3); i++ {
			v, g := f(0)[i], f(1)[i]
			switch name {
			case "relu6_bwd":
				f(2)[i] = 0
				if v > 0 && v < 6 {
					f(2)[i] = g
				}
			case "silu_bwd":
				s := float32(1 / (1 + math.Exp(-float64(v))))
				f(2)[i] = g * (s * (1 + v*(1-s)))
			default:
				f(2)[i] = v + g
			}
		}
	case "add_into": // (y, x, n)
		for i := 0; i < n(2); i++ {
			f(0)[i] += f(1)[i]
		}
	case "concat_fwd", "concat_bwd": // (src|dy, dst|dx, N, Cs, Ct, off, HW)
		N, Cs, Ct, off, HW := n(2), n(3), n(4), n(5), n(6)
		for i := 0; i < N*Cs*HW; i++ {
			p, c, b := i%HW, (i/HW)%Cs, i/(HW*Cs)
			at := (b*Ct+off+c)*HW + p
			if name == "concat_fwd" {
				f(1)[at] = f(0)[i]
			} else {
				f(1)[i] = f(0)[at]
			}
		}
	case "gap_fwd": // (x, y, NC, HW)
		HW := n(3)
		for i := 0; i < n(2); i++ {
			var s float64
			for _, v := range f(0)[i*HW : (i+1)*HW] {
				s += float64(v)
			}
			f(1)[i] = float32(s / float64(HW))
		}
	case "gap_bwd": // (dy, dx, NC, HW)
		HW := n(3)
		for i := 0; i < n(2)*HW; i++ {
			f(1)[i] = f(0)[i/HW] / float32(HW)
		}
	case "up2_fwd": // (x, y, NC, H, W)
		H, W := n(3), n(4)
		for i := 0; i < n(2)*4*H*W; i++ {
			ox, oy, nc := i%(2*W), (i/(2*W))%(2*H), i/(4*H*W)
			f(1)[i] = f(0)[(nc*H+oy/2)*W+ox/2]
		}
	case "up2_bwd": // (dy, dx, NC, H, W)
		H, W := n(3), n(4)
		dy := f(0)
		for i := 0; i < n(2)*H*W; i++ {
			xx, y, nc := i%W, (i/W)%H, i/(W*H)
			at := (nc*2*H+2*y)*2*W + 2*xx
			f(1)[i] = dy[at] + dy[at+1] + dy[at+2*W] + dy[at+2*W+1]
		}
	case "maxpool_k_fwd": // (x, y, idx, NC, H, W, K, stride, pad, Ho, Wo)
		xs, y, idx := f(0), f(1), f(2)
		NC, H, W, K, s, pad, Ho, Wo := n(3), n(4), n(5), n(6), n(7), n(8), n(9), n(10)
		for i := 0; i < NC*Ho*Wo; i++ {
			ox, oy, nc := i%Wo, (i/Wo)%Ho, i/(Wo*Ho)
			best, bi := float32(0), -1
			for ki := 0; ki < K; ki++ {
				yy := oy*s + ki - pad
				for kj := 0; kj < K; kj++ {
					xx := ox*s + kj - pad
					if yy < 0 || yy >= H || xx < 0 || xx >= W {
						continue
					}
					if at := (nc*H+yy)*W + xx; bi < 0 || xs[at] > best {
						best, bi = xs[at], at
					}
				}
			}
			y[i], idx[i] = best, math.Float32frombits(uint32(int32(bi)))
		}
	case "maxpool_k_bwd": // (dy, idx, dx, NC, H, W, K, stride, pad, Ho, Wo): scatter
		dy, idx, dx := f(0), f(1), f(2)
		NC, H, W, Ho, Wo := n(3), n(4), n(5), n(9), n(10)
		clear(dx[:NC*H*W])
		for o := 0; o < NC*Ho*Wo; o++ {
			dx[asInt(idx[o])] += dy[o]
		}
	default:
		return fmt.Errorf("host device: no kernel %s", name)
	}
	return nil
}
