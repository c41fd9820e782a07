// 3x3, stride-1, zero-padded convolution = im2col + one GEMM (cuBLAS on the
// GPU, the `gemm` crate on the host) + an epilogue for bias and ReLU.

// col[(i*9 + ky*3 + kx) * hw + p] = x[i, r+ky-1, c+kx-1] (zero outside),
// p = r*w + c: a row-major (c*9) x (h*w) matrix. With a non-null `mask`
// (a ReLU's output, shaped like x), x counts only where mask > 0: the ReLU's
// backward fused into the input gradient's im2col.
KERNEL ns_im2col(const float* __restrict__ x, const float* __restrict__ mask,
                 float* __restrict__ col, long long c, long long h, long long w) {
    long long hw = h * w;
    GRID_STRIDE(idx, c * 9 * hw) {
        long long p = idx % hw;
        long long row = idx / hw;
        long long i = row / 9, k = row % 9;
        long long y = p / w + k / 3 - 1;
        long long xx = p % w + k % 3 - 1;
        float v = 0.0f;
        if (y >= 0 && y < h && xx >= 0 && xx < w) {
            long long src = (i * h + y) * w + xx;
            v = (mask && !(mask[src] > 0.0f)) ? 0.0f : x[src];
        }
        col[idx] = v;
    }
}

// y[o, p] += bias[o], then ReLU when `relu` is non-zero.
KERNEL ns_bias_act(float* __restrict__ y, const float* __restrict__ bias,
                   long long c, long long hw, long long relu) {
    GRID_STRIDE(idx, c * hw) {
        float v = y[idx] + bias[idx / hw];
        y[idx] = (relu && !(v > 0.0f)) ? 0.0f : v;
    }
}
