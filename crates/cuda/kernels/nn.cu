// ReLU, 2x2 stride-2 pooling and the Gram matrix's symmetrisation, with
// their backward passes.

KERNEL ns_relu(const float* __restrict__ x, float* __restrict__ y, long long n) {
    GRID_STRIDE(i, n) { y[i] = x[i] > 0.0f ? x[i] : 0.0f; }
}

// dx = dy * [y > 0], y the ReLU's output.
KERNEL ns_relu_backward(const float* __restrict__ y, const float* __restrict__ dy,
                        float* __restrict__ dx, long long n) {
    GRID_STRIDE(i, n) { dx[i] = y[i] > 0.0f ? dy[i] : 0.0f; }
}

// One thread per output pixel; odd trailing rows/columns are dropped.
KERNEL ns_pool(const float* __restrict__ x, float* __restrict__ y,
               long long c, long long h, long long w, long long avg) {
    long long oh = h / 2, ow = w / 2;
    GRID_STRIDE(idx, c * oh * ow) {
        long long j = idx % ow, i = (idx / ow) % oh, ch = idx / (oh * ow);
        const float* p = x + ch * h * w + (2 * i) * w + 2 * j;
        float a = p[0], b = p[1], cc = p[w], d = p[w + 1];
        y[idx] = avg ? 0.25f * (a + b + cc + d) : fmaxf(fmaxf(a, b), fmaxf(cc, d));
    }
}

// One thread per *input* pixel (no scatter, no zero-fill): max pooling
// routes each window's gradient whole to its first maximum in row-major
// order, average pooling spreads it evenly; pixels outside every window
// (odd trailing row/column) get zero. With `relu` non-zero, x is a ReLU's
// output and its backward is fused: dx = 0 where x <= 0.
KERNEL ns_pool_backward(const float* __restrict__ x, const float* __restrict__ dy,
                        float* __restrict__ dx, long long c, long long h, long long w,
                        long long avg, long long relu) {
    long long oh = h / 2, ow = w / 2;
    GRID_STRIDE(idx, c * h * w) {
        long long col = idx % w, row = (idx / w) % h, ch = idx / (h * w);
        long long i = row / 2, j = col / 2;
        float out = 0.0f;
        if (i < oh && j < ow) {
            float g = dy[(ch * oh + i) * ow + j];
            if (avg) {
                out = 0.25f * g;
            } else {
                const float* p = x + ch * h * w + (2 * i) * w + 2 * j;
                long long best = 0;
                float v[4] = {p[0], p[1], p[w], p[w + 1]};
                for (int k = 1; k < 4; ++k)
                    if (v[k] > v[best]) best = k;
                long long mine = (row - 2 * i) * 2 + (col - 2 * j);
                out = (mine == best) ? g : 0.0f;
            }
        }
        dx[idx] = (relu && !(x[idx] > 0.0f)) ? 0.0f : out;
    }
}

// s = a + a^T for a c x c matrix.
KERNEL ns_add_transpose(const float* __restrict__ a, float* __restrict__ s, long long c) {
    GRID_STRIDE(idx, c * c) {
        long long i = idx / c, j = idx % c;
        s[idx] = a[idx] + a[j * c + i];
    }
}

// The kernel of a 3x3 convolution's input gradient: OIHW w (o x i x 3 x 3) ->
// out[ic][oc][2-kh][2-kw] (i x o x 3 x 3), transposed (in <-> out) and flipped.
KERNEL ns_transpose_flip(const float* __restrict__ w, float* __restrict__ out, long long o,
                         long long i) {
    GRID_STRIDE(idx, o * i * 9) {
        long long k = idx % 9, ic = (idx / 9) % i, oc = idx / 9 / i;
        out[(ic * o + oc) * 9 + (8 - k)] = w[idx];
    }
}

// out[ch, p] = x[ch, p] * m[p]: a 1 x h x w mask on every channel.
KERNEL ns_mul_mask(const float* __restrict__ x, const float* __restrict__ m,
                   float* __restrict__ out, long long c, long long hw) {
    GRID_STRIDE(idx, c * hw) { out[idx] = x[idx] * m[idx % hw]; }
}

// `rows` rows of every channel of a C×h_src×w map, from row `from`, to row
// `to` of a C×h_dst×w map: a stripe cut out (Backend::rows) or put back in
// its place (Backend::stack_rows).
KERNEL ns_copy_rows(const float* __restrict__ src, float* __restrict__ dst, long long c,
                    long long w, long long h_src, long long from, long long h_dst,
                    long long to, long long rows) {
    GRID_STRIDE(idx, c * rows * w) {
        long long ch = idx / (rows * w);
        long long r = idx % (rows * w);
        dst[(ch * h_dst + to) * w + r] = src[(ch * h_src + from) * w + r];
    }
}
