package cudaengine

// kernelSource holds every kernel that is not a GEMM. NVRTC compiles it for the device
// at start-up. Tensors are row-major float32, activations NCHW as on the CPU. Loops are
// grid-stride, so any grid size is correct; sums accumulate in double.
const kernelSource = `
extern "C" {

#define LOOP(i, n) for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n); i += (long)blockDim.x * gridDim.x)

// Block reductions: ROWS gives each block its rows (grid-stride over blocks), and
// block_sum adds one double per thread and hands the total to every thread.
#define ROWS(r, n) for (long r = blockIdx.x; r < (n); r += gridDim.x)

__device__ double block_sum(double v, double* s) {
	s[threadIdx.x] = v;
	__syncthreads();
	for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {
		if (threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
		__syncthreads();
	}
	double t = s[0];
	__syncthreads();
	return t;
}

// col[(c*K+ki)*K+kj][(n*Ho+oy)*Wo+ox] = x[n][c][oy*stride+ki-pad][ox*stride+kj-pad] (0 outside).
__global__ void im2col(const float* x, float* col, int N, int C, int H, int W, int K, int pad, int stride, int Ho, int Wo) {
	long cols = (long)N * Ho * Wo;
	LOOP(i, (long)C * K * K * cols) {
		long r = i / cols, c = i % cols;
		int kj = r % K, ki = (r / K) % K, ch = r / (K * K);
		int ox = c % Wo, oy = (c / Wo) % Ho, n = c / ((long)Wo * Ho);
		int y = oy * stride + ki - pad, xx = ox * stride + kj - pad;
		col[i] = (y >= 0 && y < H && xx >= 0 && xx < W) ? x[(((long)n * C + ch) * H + y) * W + xx] : 0.f;
	}
}

// The adjoint of im2col: every input pixel gathers the column entries that read it.
__global__ void col2im(const float* col, float* dx, int N, int C, int H, int W, int K, int pad, int stride, int Ho, int Wo) {
	long cols = (long)N * Ho * Wo;
	LOOP(i, (long)N * C * H * W) {
		int xx = i % W, y = (i / W) % H, ch = (i / ((long)W * H)) % C, n = i / ((long)W * H * C);
		float s = 0.f;
		for (int ki = 0; ki < K; ki++) {
			int ty = y - ki + pad;
			if (ty < 0 || ty % stride != 0 || ty / stride >= Ho) continue;
			int oy = ty / stride;
			for (int kj = 0; kj < K; kj++) {
				int tx = xx - kj + pad;
				if (tx < 0 || tx % stride != 0 || tx / stride >= Wo) continue;
				s += col[((long)(ch * K + ki) * K + kj) * cols + ((long)n * Ho + oy) * Wo + tx / stride];
			}
		}
		dx[i] = s;
	}
}

// Grouped convolution computed directly (groups > 1; depthwise when every group has
// one channel): y[n][o][oy][ox] = b[o] + Σ w[o][c][ki][kj]·x[n][g·cg+c][oy·s+ki−pad][ox·s+kj−pad]
// over the cg = C/G channels of o's group g = o/(O/G). b may be absent (hasBias 0).
__global__ void gconv_fwd(const float* x, const float* w, const float* b, float* y, int N, int C, int H, int W, int O, int G,
                          int K, int pad, int stride, int Ho, int Wo, int hasBias) {
	int cg = C / G, og = O / G;
	LOOP(i, (long)N * O * Ho * Wo) {
		int ox = i % Wo, oy = (i / Wo) % Ho, o = (i / ((long)Wo * Ho)) % O, n = i / ((long)Wo * Ho * O);
		int g = o / og;
		float s = 0.f;
		for (int c = 0; c < cg; c++) {
			const float* xc = x + ((long)n * C + g * cg + c) * H * W;
			const float* wc = w + ((long)o * cg + c) * K * K;
			for (int ki = 0; ki < K; ki++) {
				int yy = oy * stride + ki - pad;
				if (yy < 0 || yy >= H) continue;
				for (int kj = 0; kj < K; kj++) {
					int xx = ox * stride + kj - pad;
					if (xx < 0 || xx >= W) continue;
					s += wc[ki * K + kj] * xc[(long)yy * W + xx];
				}
			}
		}
		y[i] = hasBias ? b[o] + s : s;
	}
}

// The input gradient of gconv_fwd: every input pixel gathers the outputs that read it.
__global__ void gconv_dx(const float* dy, const float* w, float* dx, int N, int C, int H, int W, int O, int G,
                         int K, int pad, int stride, int Ho, int Wo) {
	int cg = C / G, og = O / G;
	LOOP(i, (long)N * C * H * W) {
		int xx = i % W, yy = (i / W) % H, ch = (i / ((long)W * H)) % C, n = i / ((long)W * H * C);
		int g = ch / cg, c = ch % cg;
		float s = 0.f;
		for (int o = g * og; o < (g + 1) * og; o++) {
			const float* dyo = dy + ((long)n * O + o) * Ho * Wo;
			const float* wc = w + ((long)o * cg + c) * K * K;
			for (int ki = 0; ki < K; ki++) {
				int ty = yy - ki + pad;
				if (ty < 0 || ty % stride != 0 || ty / stride >= Ho) continue;
				for (int kj = 0; kj < K; kj++) {
					int tx = xx - kj + pad;
					if (tx < 0 || tx % stride != 0 || tx / stride >= Wo) continue;
					s += wc[ki * K + kj] * dyo[(long)(ty / stride) * Wo + tx / stride];
				}
			}
		}
		dx[i] = s;
	}
}

// The filter gradient of gconv_fwd over the first N images: one block per filter
// element (O·cg·K·K of them) sums its products over the images and output pixels.
__global__ void gconv_dw(const float* x, const float* dy, float* dw, int N, int C, int H, int W, int O, int G,
                         int K, int pad, int stride, int Ho, int Wo) {
	__shared__ double sh[256];
	int cg = C / G, og = O / G;
	ROWS(r, (long)O * cg * K * K) {
		int kj = r % K, ki = (r / K) % K, c = (r / (K * K)) % cg, o = r / ((long)K * K * cg);
		int ch = (o / og) * cg + c;
		double acc = 0;
		for (long j = threadIdx.x; j < (long)N * Ho * Wo; j += blockDim.x) {
			int ox = j % Wo, oy = (j / Wo) % Ho, n = j / ((long)Wo * Ho);
			int yy = oy * stride + ki - pad, xx = ox * stride + kj - pad;
			if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
			acc += (double)dy[(((long)n * O + o) * Ho + oy) * Wo + ox] * x[(((long)n * C + ch) * H + yy) * W + xx];
		}
		double t = block_sum(acc, sh);
		if (threadIdx.x == 0) dw[r] = (float)t;
	}
}

// out[c] = Σ over the first N images and HW pixels of channel c of d (N, C, HW).
__global__ void channel_sum(const float* d, float* out, int N, int C, int HW) {
	__shared__ double sh[256];
	ROWS(c, C) {
		double acc = 0;
		for (long j = threadIdx.x; j < (long)N * HW; j += blockDim.x) acc += d[((j / HW) * C + c) * HW + j % HW];
		double t = block_sum(acc, sh);
		if (threadIdx.x == 0) out[c] = (float)t;
	}
}

// Batch statistics of channel c over the first N images (two passes, in double): mean
// and 1/√(var+eps); with update, the running statistics move by momentum towards the
// mean and the unbiased variance.
__global__ void bn_stats(const float* x, float* mean, float* inv, float* rmean, float* rvar, int N, int C, int HW,
                         float eps, float momentum, int update) {
	__shared__ double sh[256];
	ROWS(c, C) {
		long m = (long)N * HW;
		double acc = 0;
		for (long j = threadIdx.x; j < m; j += blockDim.x) acc += x[((j / HW) * C + c) * HW + j % HW];
		double mu = block_sum(acc, sh) / (double)m;
		acc = 0;
		for (long j = threadIdx.x; j < m; j += blockDim.x) {
			double d = (double)x[((j / HW) * C + c) * HW + j % HW] - mu;
			acc += d * d;
		}
		double v = block_sum(acc, sh) / (double)m;
		if (threadIdx.x == 0) {
			mean[c] = (float)mu;
			inv[c] = (float)(1.0 / sqrt(v + (double)eps));
			if (update) {
				double unbiased = m > 1 ? v * (double)m / (double)(m - 1) : v;
				rmean[c] = (1.f - momentum) * rmean[c] + momentum * (float)mu;
				rvar[c] = (1.f - momentum) * rvar[c] + momentum * (float)unbiased;
			}
		}
	}
}

// Inference and frozen statistics: the running mean and 1/√(running var+eps).
__global__ void bn_running(const float* rmean, const float* rvar, float* mean, float* inv, int C, float eps) {
	LOOP(c, C) {
		mean[c] = rmean[c];
		inv[c] = (float)(1.0 / sqrt((double)rvar[c] + (double)eps));
	}
}

// y = (x − mean)·inv·γ + β for every image of the batch.
__global__ void bn_fwd(const float* x, float* y, const float* mean, const float* inv, const float* gamma, const float* beta,
                       int N, int C, int HW) {
	LOOP(i, (long)N * C * HW) {
		int c = (i / HW) % C;
		y[i] = (x[i] - mean[c]) * inv[c] * gamma[c] + beta[c];
	}
}

// dγ = Σ dy·x̂ and dβ = Σ dy per channel over the first N images.
__global__ void bn_bwd_reduce(const float* x, const float* dy, const float* mean, const float* inv, float* dgamma, float* dbeta,
                              int N, int C, int HW) {
	__shared__ double sh[256];
	ROWS(c, C) {
		double a = 0, b = 0;
		for (long j = threadIdx.x; j < (long)N * HW; j += blockDim.x) {
			long at = ((j / HW) * C + c) * HW + j % HW;
			a += (double)dy[at];
			b += (double)dy[at] * (double)((x[at] - mean[c]) * inv[c]);
		}
		double sa = block_sum(a, sh), sb = block_sum(b, sh);
		if (threadIdx.x == 0) {
			dbeta[c] = (float)sa;
			dgamma[c] = (float)sb;
		}
	}
}

// dx = γ·inv·(dy − dβ/M − x̂·dγ/M) with batch statistics (train), γ·inv·dy with running
// ones; M = N·HW; the padded images (N ≤ n < Nb) get 0.
__global__ void bn_bwd_dx(const float* x, const float* dy, float* dx, const float* mean, const float* inv, const float* gamma,
                          const float* dgamma, const float* dbeta, int N, int Nb, int C, int HW, int train) {
	double m = (double)N * HW;
	LOOP(i, (long)Nb * C * HW) {
		int c = (i / HW) % C;
		long n = i / ((long)C * HW);
		if (n >= N) { dx[i] = 0.f; continue; }
		float k = gamma[c] * inv[c];
		if (!train) { dx[i] = k * (float)((double)dy[i]); continue; }
		float xh = (x[i] - mean[c]) * inv[c];
		dx[i] = k * (float)((double)dy[i] - (double)dbeta[c] / m - (double)xh * ((double)dgamma[c] / m));
	}
}

__global__ void relu6_fwd(const float* x, float* y, long n) {
	LOOP(i, n) y[i] = fminf(fmaxf(x[i], 0.f), 6.f);
}

__global__ void relu6_bwd(const float* x, const float* dy, float* dx, long n) {
	LOOP(i, n) dx[i] = (x[i] > 0.f && x[i] < 6.f) ? dy[i] : 0.f;
}

// SiLU x·σ(x), σ in double as on the CPU; its derivative σ·(1 + x·(1 − σ)).
__global__ void silu_fwd(const float* x, float* y, long n) {
	LOOP(i, n) {
		float s = (float)(1.0 / (1.0 + exp(-(double)x[i])));
		y[i] = x[i] * s;
	}
}

__global__ void silu_bwd(const float* x, const float* dy, float* dx, long n) {
	LOOP(i, n) {
		float s = (float)(1.0 / (1.0 + exp(-(double)x[i])));
		dx[i] = dy[i] * (s * (1.f + x[i] * (1.f - s)));
	}
}

__global__ void copy(const float* x, float* y, long n) {
	LOOP(i, n) y[i] = x[i];
}

// y = a + b (a residual's forward pass).
__global__ void add2(const float* a, const float* b, float* y, long n) {
	LOOP(i, n) y[i] = a[i] + b[i];
}

// y += x (summing a gradient that has more than one consumer).
__global__ void add_into(float* y, const float* x, long n) {
	LOOP(i, n) y[i] += x[i];
}

// Channel concatenation: src (N, Cs, HW) is channels [off, off+Cs) of dst (N, Ct, HW);
// concat_bwd copies them back out. Vectors (N, L) are joined with Cs = L and HW = 1.
__global__ void concat_fwd(const float* src, float* dst, int N, int Cs, int Ct, int off, int HW) {
	LOOP(i, (long)N * Cs * HW) {
		int p = i % HW, c = (i / HW) % Cs;
		long n = i / ((long)HW * Cs);
		dst[(n * Ct + off + c) * HW + p] = src[i];
	}
}

__global__ void concat_bwd(const float* dy, float* dx, int N, int Cs, int Ct, int off, int HW) {
	LOOP(i, (long)N * Cs * HW) {
		int p = i % HW, c = (i / HW) % Cs;
		long n = i / ((long)HW * Cs);
		dx[i] = dy[(n * Ct + off + c) * HW + p];
	}
}

// Global average pooling of NC channels of HW pixels, and its gradient.
__global__ void gap_fwd(const float* x, float* y, long NC, int HW) {
	LOOP(i, NC) {
		double s = 0;
		for (int p = 0; p < HW; p++) s += x[i * HW + p];
		y[i] = (float)(s / HW);
	}
}

__global__ void gap_bwd(const float* dy, float* dx, long NC, int HW) {
	LOOP(i, NC * HW) dx[i] = dy[i / HW] / (float)HW;
}

// 2× nearest-neighbour upsampling of NC channels of H×W, and its gradient (each input
// pixel sums its four copies).
__global__ void up2_fwd(const float* x, float* y, long NC, int H, int W) {
	LOOP(i, NC * 4 * H * W) {
		int ox = i % (2 * W), oy = (i / (2 * W)) % (2 * H);
		long nc = i / (4L * H * W);
		y[i] = x[(nc * H + oy / 2) * W + ox / 2];
	}
}

__global__ void up2_bwd(const float* dy, float* dx, long NC, int H, int W) {
	LOOP(i, NC * H * W) {
		int xx = i % W, y = (i / W) % H;
		long nc = i / ((long)W * H);
		long at = (nc * 2 * H + 2 * y) * 2 * W + 2 * xx;
		dx[i] = dy[at] + dy[at + 1] + dy[at + 2 * W] + dy[at + 2 * W + 1];
	}
}

// K×K max pooling with stride and padding; padding never wins, and of equal values
// the first in row-major window order does. idx keeps the winner.
__global__ void maxpool_k_fwd(const float* x, float* y, int* idx, long NC, int H, int W, int K, int stride, int pad, int Ho, int Wo) {
	LOOP(i, NC * Ho * Wo) {
		int ox = i % Wo, oy = (i / Wo) % Ho;
		long nc = i / ((long)Wo * Ho);
		float best = 0.f;
		long bi = -1;
		for (int ki = 0; ki < K; ki++) {
			int yy = oy * stride + ki - pad;
			if (yy < 0 || yy >= H) continue;
			for (int kj = 0; kj < K; kj++) {
				int xx = ox * stride + kj - pad;
				if (xx < 0 || xx >= W) continue;
				long at = (nc * H + yy) * W + xx;
				if (bi < 0 || x[at] > best) { best = x[at]; bi = at; }
			}
		}
		y[i] = best;
		idx[i] = (int)bi;
	}
}

// Windows overlap, so every input pixel gathers the outputs it won (no atomics).
__global__ void maxpool_k_bwd(const float* dy, const int* idx, float* dx, long NC, int H, int W, int K, int stride, int pad, int Ho, int Wo) {
	LOOP(i, NC * H * W) {
		int xx = i % W, yy = (i / W) % H;
		long nc = i / ((long)W * H);
		float s = 0.f;
		for (int ki = 0; ki < K; ki++) {
			int ty = yy + pad - ki;
			if (ty < 0 || ty % stride != 0 || ty / stride >= Ho) continue;
			for (int kj = 0; kj < K; kj++) {
				int tx = xx + pad - kj;
				if (tx < 0 || tx % stride != 0 || tx / stride >= Wo) continue;
				long o = (nc * Ho + ty / stride) * Wo + tx / stride;
				if (idx[o] == i) s += dy[o];
			}
		}
		dx[i] = s;
	}
}

// out[n][o][p] = t[o][n*HW+p] + b[o]: the conv GEMM's (O, N·HW) result to NCHW.
__global__ void bias_nchw(const float* t, const float* b, float* out, int N, int O, int HW) {
	LOOP(i, (long)N * O * HW) {
		int p = i % HW, o = (i / HW) % O, n = i / ((long)HW * O);
		out[i] = t[(long)o * N * HW + (long)n * HW + p] + b[o];
	}
}

// t[o][n*HW+p] = d[n][o][p]: NCHW gradients to the conv GEMM's layout.
__global__ void nchw_to_cnhw(const float* d, float* t, int N, int O, int HW) {
	LOOP(i, (long)N * O * HW) {
		int p = i % HW, o = (i / HW) % O, n = i / ((long)HW * O);
		t[(long)o * N * HW + (long)n * HW + p] = d[i];
	}
}

// out[r] = sum of row r of t (rows × cols); one block of 256 threads per row.
__global__ void row_sum(const float* t, float* out, int rows, long cols) {
	__shared__ double s[256];
	int r = blockIdx.x;
	double acc = 0;
	for (long c = threadIdx.x; c < cols; c += blockDim.x) acc += t[(long)r * cols + c];
	s[threadIdx.x] = acc;
	__syncthreads();
	for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {
		if (threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
		__syncthreads();
	}
	if (threadIdx.x == 0) out[r] = (float)s[0];
}

// out[c] = sum of column c of y (rows × cols).
__global__ void col_sum(const float* y, float* out, int rows, int cols) {
	LOOP(c, cols) {
		double acc = 0;
		for (int r = 0; r < rows; r++) acc += y[(long)r * cols + c];
		out[c] = (float)acc;
	}
}

__global__ void add_bias_rows(float* y, const float* b, int rows, int cols) {
	LOOP(i, (long)rows * cols) y[i] += b[i % cols];
}

// ReLU as the CPU engine computes it (Gorgonia's Rectify, x·[x ≥ 0]): a negative input
// becomes −0 and an exact +0 stays +0, so the backward pass lets the gradient through
// where the output's sign bit is clear — at a pre-activation of exactly zero too, which
// a zero-initialised bias over all-zero inputs gives (e.g. after ReLU6).
__global__ void relu_fwd(const float* x, float* y, long n) {
	LOOP(i, n) y[i] = x[i] < 0.f ? -0.f : x[i];
}

__global__ void relu_bwd(const float* y, const float* dy, float* dx, long n) {
	LOOP(i, n) dx[i] = signbit(y[i]) ? 0.f : dy[i];
}

// 2×2 max pooling, stride 2; idx keeps the winner (the first of equal values).
__global__ void maxpool_fwd(const float* x, float* y, int* idx, int NC, int H, int W) {
	int Ho = H / 2, Wo = W / 2;
	LOOP(i, (long)NC * Ho * Wo) {
		int ox = i % Wo, oy = (i / Wo) % Ho;
		long nc = i / ((long)Wo * Ho);
		long base = (nc * H + 2 * oy) * W + 2 * ox;
		long at[4] = {base, base + 1, base + W, base + W + 1};
		long bi = base;
		float best = x[base];
		for (int k = 1; k < 4; k++) if (x[at[k]] > best) { best = x[at[k]]; bi = at[k]; }
		y[i] = best;
		idx[i] = (int)bi;
	}
}

// dx must be zero; the windows do not overlap, so no two outputs write one input.
__global__ void maxpool_bwd(const float* dy, const int* idx, float* dx, long n) {
	LOOP(i, n) dx[idx[i]] = dy[i];
}

// Softmax cross-entropy of the first N rows of z (Nb × K), scaled; padded rows get
// no loss and no gradient. loss must be zero before.
__global__ void softmax_xent(const float* z, const int* labels, float* dz, double* loss, int N, int Nb, int K, float scale) {
	LOOP(r, Nb) {
		const float* zr = z + r * K;
		float* dr = dz + r * K;
		if (r >= N) { for (int k = 0; k < K; k++) dr[k] = 0.f; continue; }
		float m = zr[0];
		for (int k = 1; k < K; k++) m = fmaxf(m, zr[k]);
		double s = 0;
		for (int k = 0; k < K; k++) s += exp((double)(zr[k] - m));
		int y = labels[r];
		atomicAdd(loss, ((double)m + log(s) - (double)zr[y]) * scale);
		for (int k = 0; k < K; k++) dr[k] = (float)((exp((double)(zr[k] - m)) / s - (k == y ? 1.0 : 0.0)) * scale);
	}
}

// The detection loss (nn.DetTargets): W⊙(softplus(z) − T⊙z) + λ·M⊙(σ(z) − B)², summed
// and scaled, with its gradient. loss must be zero before.
__global__ void detect_loss(const float* z, const float* Wt, const float* T, const float* M, const float* B,
                            float* dz, double* loss, long n, float scale, float lambda) {
	__shared__ double s[256];
	double acc = 0;
	LOOP(i, n) {
		float v = z[i];
		float sp = fmaxf(v, 0.f) + log1pf(expf(-fabsf(v)));
		float sg = 1.f / (1.f + expf(-v));
		float d = sg - B[i];
		acc += (double)Wt[i] * (sp - T[i] * v) + (double)lambda * M[i] * d * d;
		dz[i] = scale * (Wt[i] * (sg - T[i]) + lambda * M[i] * 2.f * d * sg * (1.f - sg));
	}
	s[threadIdx.x] = acc;
	__syncthreads();
	for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {
		if (threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
		__syncthreads();
	}
	if (threadIdx.x == 0) atomicAdd(loss, s[0] * scale);
}

// The multi-scale detector's loss (nn.PointLoss) at every point of one pyramid level:
// N images of per outputs, the level's (5+C)×hw map from off in each. Objectness and
// classes: weighted binary cross-entropy, the assigned class's target 1 standing for the
// IoU of the predicted box with the assigned one (held constant) at an assigned point;
// box (channels 1–4, distances exp(min(z, boxMax)) from the point): M's channel 1
// weights 1 − GIoU with the target distances in B. Writes scale × the gradient into dz
// and adds scale × the loss to *loss.
__global__ void msdet_loss(const float* z, const float* Wt, const float* T, const float* M, const float* B,
                           float* dz, double* loss, int N, int per, int off, int hw, int C, float scale, float boxMax) {
	__shared__ double s[256];
	double acc = 0;
	LOOP(q, (long)N * hw) {
		long o = (q / hw) * (long)per + off + q % hw;
		float mw = M[o + hw];
		float p[4], g[4], quality = 1.f;
		if (mw != 0.f) {
			for (int k = 0; k < 4; k++) {
				p[k] = expf(fminf(z[o + (k + 1) * hw], boxMax));
				g[k] = B[o + (k + 1) * hw];
			}
			float qw = fminf(p[0], g[0]) + fminf(p[2], g[2]), qh = fminf(p[1], g[1]) + fminf(p[3], g[3]);
			float qi = fmaxf(qw, 0.f) * fmaxf(qh, 0.f);
			float qu = (p[0] + p[2]) * (p[1] + p[3]) + (g[0] + g[2]) * (g[1] + g[3]) - qi;
			quality = qu > 0.f ? qi / qu : 0.f;
		}
		for (int k = -1; k < C; k++) {
			long i = o + (k < 0 ? 0 : (long)(5 + k) * hw);
			float v = z[i], t = T[i];
			if (k >= 0 && t == 1.f && mw != 0.f) t = quality;
			float sp = fmaxf(v, 0.f) + log1pf(expf(-fabsf(v)));
			float sg = 1.f / (1.f + expf(-v));
			acc += (double)Wt[i] * (sp - t * v);
			dz[i] = scale * Wt[i] * (sg - t);
		}
		if (mw == 0.f) {
			for (int k = 1; k <= 4; k++) dz[o + k * hw] = 0.f;
			continue;
		}
		float ap = (p[0] + p[2]) * (p[1] + p[3]), ag = (g[0] + g[2]) * (g[1] + g[3]);
		float iw = fminf(p[0], g[0]) + fminf(p[2], g[2]), ih = fminf(p[1], g[1]) + fminf(p[3], g[3]);
		float iwp = fmaxf(iw, 0.f), ihp = fmaxf(ih, 0.f);
		float inter = iwp * ihp, uni = ap + ag - inter;
		float ew = fmaxf(p[0], g[0]) + fmaxf(p[2], g[2]), eh = fmaxf(p[1], g[1]) + fmaxf(p[3], g[3]);
		float enc = ew * eh;
		acc += (double)mw * (2.f - inter / uni - uni / enc);
		float dI = -(uni + inter) / (uni * uni) + 1.f / enc, dA = inter / (uni * uni) - 1.f / enc, dE = uni / (enc * enc);
		for (int k = 0; k < 4; k++) {
			int vert = k % 2;
			float extI = vert ? iwp : ihp, own = vert ? ih : iw, extE = vert ? ew : eh, side = vert ? p[0] + p[2] : p[1] + p[3];
			float d = dA * side;
			if (own > 0.f && p[k] < g[k]) d += dI * extI;
			if (p[k] > g[k]) d += dE * extE;
			dz[o + (k + 1) * hw] = z[o + (k + 1) * hw] < boxMax ? scale * mw * d * p[k] : 0.f;
		}
	}
	s[threadIdx.x] = acc;
	__syncthreads();
	for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {
		if (threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
		__syncthreads();
	}
	if (threadIdx.x == 0) atomicAdd(loss, s[0] * scale);
}

// One bias-corrected Adam update, as nn.Adam.Step: step = lr/(1-β1^t), rbc2 = 1/√(1-β2^t).
__global__ void adam(float* w, const float* g, float* m, float* v, long n, float b1, float b2, float step, float rbc2, float eps) {
	LOOP(i, n) {
		m[i] = b1 * m[i] + (1.f - b1) * g[i];
		v[i] = b2 * v[i] + (1.f - b2) * g[i] * g[i];
		w[i] -= step * m[i] / (sqrtf(v[i]) * rbc2 + eps);
	}
}

}
`
