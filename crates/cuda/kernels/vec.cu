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
