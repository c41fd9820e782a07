// Loss terms with their gradients, and the reductions. Every reduction
// writes one f64 partial sum per thread of its launch (partial[THREAD_ID()]);
// `ns_sum_partials` then folds them, and the host adds the last few hundred.

// g = k * (a - t); partial = sum (a - t)^2 (the caller divides by n).
KERNEL ns_mse_grad(const float* __restrict__ a, const float* __restrict__ t,
                   float* __restrict__ g, float k, long long n,
                   double* __restrict__ partial) {
    double s = 0.0;
    GRID_STRIDE(i, n) {
        float d = a[i] - t[i];
        s += (double)d * (double)d;
        g[i] = k * d;
    }
    partial[THREAD_ID()] = s;
}

// Total variation: partial = sum of squared forward differences (down and
// right) starting at each pixel; g = k * d tv / d x, gathered per pixel from
// its four neighbours.
KERNEL ns_tv_grad(const float* __restrict__ x, float* __restrict__ g, float k,
                  long long c, long long h, long long w, double* __restrict__ partial) {
    double s = 0.0;
    GRID_STRIDE(idx, c * h * w) {
        long long j = idx % w, i = (idx / w) % h;
        float v = x[idx];
        float acc = 0.0f;
        if (i + 1 < h) {
            float d = x[idx + w] - v;
            s += (double)d * (double)d;
            acc -= k * d;
        }
        if (j + 1 < w) {
            float d = x[idx + 1] - v;
            s += (double)d * (double)d;
            acc -= k * d;
        }
        if (i > 0) acc += k * (v - x[idx - w]);
        if (j > 0) acc += k * (v - x[idx - 1]);
        g[idx] = acc;
    }
    partial[THREAD_ID()] = s;
}

KERNEL ns_dot(const float* __restrict__ a, const float* __restrict__ b, long long n,
              double* __restrict__ partial) {
    double s = 0.0;
    GRID_STRIDE(i, n) { s += (double)a[i] * (double)b[i]; }
    partial[THREAD_ID()] = s;
}

KERNEL ns_norm1(const float* __restrict__ a, long long n, double* __restrict__ partial) {
    double s = 0.0;
    GRID_STRIDE(i, n) { s += fabs((double)a[i]); }
    partial[THREAD_ID()] = s;
}

// out[t] = sum of p[t], p[t + T], p[t + 2T], ... for the T threads of the launch.
KERNEL ns_sum_partials(const double* __restrict__ p, long long n, double* __restrict__ out) {
    double s = 0.0;
    GRID_STRIDE(i, n) { s += p[i]; }
    out[THREAD_ID()] = s;
}
