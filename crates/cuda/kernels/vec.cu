// The optimisers' vector operations. `out` may alias an input (each element
// is read, then written, by the same thread), so these take no __restrict__.

KERNEL ns_fill(float* x, float v, long long n) {
    GRID_STRIDE(i, n) { x[i] = v; }
}

// out = y + alpha * x
KERNEL ns_axpy(const float* y, const float* x, float* out, float alpha, long long n) {
    GRID_STRIDE(i, n) { out[i] = y[i] + alpha * x[i]; }
}

// out = alpha * x
KERNEL ns_scale(const float* x, float* out, float alpha, long long n) {
    GRID_STRIDE(i, n) { out[i] = alpha * x[i]; }
}

// One Adam step in f64 arithmetic on f32 storage (bias corrections folded in
// by the caller).
KERNEL ns_adam(float* x, const float* g, float* m, float* v, double lr, double beta1,
               double beta2, double eps, double bias1, double bias2, long long n) {
    GRID_STRIDE(i, n) {
        double gi = g[i];
        double mi = beta1 * m[i] + (1.0 - beta1) * gi;
        double vi = beta2 * v[i] + (1.0 - beta2) * gi * gi;
        m[i] = (float)mi;
        v[i] = (float)vi;
        x[i] -= (float)(lr * (mi / bias1) / (sqrt(vi / bias2) + eps));
    }
}

// Many dot products in one launch, for L-BFGS's batched path: work item
// (c, t) of nc * per sums rows[r][i] * cols[c][i] over i = t, t + per, ...
// for every row r, into partial[(r * nc + c) * per + t]; items
// nc * per + t do the same for |norm1[i]| into partial[nr * nc * per + t].
// `ns_fold` then adds each group of `per` partials.
KERNEL ns_multi_dot(const float* const* rows, long long nr, const float* const* cols,
                    long long nc, const float* norm1, long long n, long long per,
                    double* partial) {
    GRID_STRIDE(idx, (nc + 1) * per) {
        long long c = idx / per, t = idx % per;
        if (c == nc) {
            double s = 0.0;
            for (long long i = t; i < n; i += per) s += fabs((double)norm1[i]);
            partial[nr * nc * per + t] = s;
            continue;
        }
        const float* b = cols[c];
        // Four rows at a time, each column value read once per group.
        for (long long r0 = 0; r0 < nr; r0 += 4) {
            double s[4] = {0.0, 0.0, 0.0, 0.0};
            long long m = nr - r0 < 4 ? nr - r0 : 4;
            for (long long i = t; i < n; i += per) {
                double v = (double)b[i];
                for (long long r = 0; r < m; ++r) s[r] += (double)rows[r0 + r][i] * v;
            }
            for (long long r = 0; r < m; ++r) partial[((r0 + r) * nc + c) * per + t] = s[r];
        }
    }
}

// out[g] = p[g * per] + p[g * per + 1] + ... + p[g * per + per - 1].
KERNEL ns_fold(const double* __restrict__ p, long long groups, long long per,
               double* __restrict__ out) {
    GRID_STRIDE(g, groups) {
        double s = 0.0;
        for (long long i = 0; i < per; ++i) s += p[g * per + i];
        out[g] = s;
    }
}

// out = sum_j coeffs[j] * vs[j], accumulated in f64 (`out` is none of vs).
KERNEL ns_combine(const float* const* vs, const double* coeffs, long long k, float* out,
                  long long n) {
    GRID_STRIDE(i, n) {
        double s = 0.0;
        for (long long j = 0; j < k; ++j) s += coeffs[j] * (double)vs[j][i];
        out[i] = (float)s;
    }
}
