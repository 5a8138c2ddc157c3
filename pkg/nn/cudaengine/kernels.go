package cudaengine

// kernelSource holds every kernel that is not a GEMM. NVRTC compiles it for the device
// at start-up. Tensors are row-major float32, activations NCHW as on the CPU. Loops are
// grid-stride, so any grid size is correct; sums accumulate in double.
const kernelSource = `
extern "C" {

#define LOOP(i, n) for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n); i += (long)blockDim.x * gridDim.x)

// col[(c*K+ki)*K+kj][(n*Ho+oy)*Wo+ox] = x[n][c][oy+ki-pad][ox+kj-pad] (0 outside).
__global__ void im2col(const float* x, float* col, int N, int C, int H, int W, int K, int pad, int Ho, int Wo) {
	long cols = (long)N * Ho * Wo;
	LOOP(i, (long)C * K * K * cols) {
		long r = i / cols, c = i % cols;
		int kj = r % K, ki = (r / K) % K, ch = r / (K * K);
		int ox = c % Wo, oy = (c / Wo) % Ho, n = c / ((long)Wo * Ho);
		int y = oy + ki - pad, xx = ox + kj - pad;
		col[i] = (y >= 0 && y < H && xx >= 0 && xx < W) ? x[(((long)n * C + ch) * H + y) * W + xx] : 0.f;
	}
}

// The adjoint of im2col: every input pixel gathers the column entries that read it.
__global__ void col2im(const float* col, float* dx, int N, int C, int H, int W, int K, int pad, int Ho, int Wo) {
	long cols = (long)N * Ho * Wo;
	LOOP(i, (long)N * C * H * W) {
		int xx = i % W, y = (i / W) % H, ch = (i / ((long)W * H)) % C, n = i / ((long)W * H * C);
		float s = 0.f;
		for (int ki = 0; ki < K; ki++) {
			int oy = y - ki + pad;
			if (oy < 0 || oy >= Ho) continue;
			for (int kj = 0; kj < K; kj++) {
				int ox = xx - kj + pad;
				if (ox < 0 || ox >= Wo) continue;
				s += col[((long)(ch * K + ki) * K + kj) * cols + ((long)n * Ho + oy) * Wo + ox];
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

__global__ void relu_fwd(const float* x, float* y, long n) {
	LOOP(i, n) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

__global__ void relu_bwd(const float* y, const float* dy, float* dx, long n) {
	LOOP(i, n) dx[i] = y[i] > 0.f ? dy[i] : 0.f;
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
