//! The loops behind the custom operations of `ops.rs` that are not
//! convolutions or GEMMs: pooling and its backward (candle's max-pool
//! backward is wrong), elementwise maps in one parallel pass, the losses and
//! the optimisers' reductions, accumulated in f64 in fixed-size chunks whose
//! partial sums are added pairwise in chunk order ([`ordered_sum`]): the same
//! bits at any thread count.

use neural_style_core::backend::{AdamCoeffs, Pooling};
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

/// The sum of per-chunk partial sums, pairwise in their order (rayon's own
/// `sum` adds them in whatever tree its work-stealing made: another order,
/// other bits, at another thread count).
pub fn ordered_sum(parts: &[f64]) -> f64 {
    match parts.len() {
        0 => 0.0,
        1 => parts[0],
        n => ordered_sum(&parts[..n / 2]) + ordered_sum(&parts[n / 2..]),
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    let parts: Vec<f64> = a
        .par_chunks(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(x, y)| *x as f64 * *y as f64)
                .sum::<f64>()
        })
        .collect();
    ordered_sum(&parts)
}

pub fn norm1(a: &[f32]) -> f64 {
    let parts: Vec<f64> = a
        .par_chunks(CHUNK)
        .map(|a| a.iter().map(|x| x.abs() as f64).sum::<f64>())
        .collect();
    ordered_sum(&parts)
}

/// `f(a[k], b[k])` for every `k`, written straight into a new vector (no
/// zero-fill before the overwrite).
pub fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len());
    let n = a.len();
    let mut out = Vec::with_capacity(n);
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(o, (a, b))| {
            for ((o, a), b) in o.iter_mut().zip(a).zip(b) {
                o.write(f(*a, *b));
            }
        });
    // SAFETY: the chunks together wrote all `n` elements.
    unsafe { out.set_len(n) };
    out
}

/// `a[i] = f(a[i], b[i])` in place, in parallel chunks.
pub fn zip_apply(a: &mut [f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    assert_eq!(a.len(), b.len());
    a.par_chunks_mut(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .for_each(|(a, b)| {
            for (a, b) in a.iter_mut().zip(b) {
                *a = f(*a, *b);
            }
        });
}

pub fn adam(x: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: AdamCoeffs) {
    for i in 0..x.len() {
        let gi = g[i] as f64;
        let mi = c.beta1 * m[i] as f64 + (1.0 - c.beta1) * gi;
        let vi = c.beta2 * v[i] as f64 + (1.0 - c.beta2) * gi * gi;
        m[i] = mi as f32;
        v[i] = vi as f32;
        x[i] -= (c.lr * (mi / c.bias1) / ((vi / c.bias2).sqrt() + c.eps)) as f32;
    }
}

/// 2×2 stride-2 pooling of a `C×H×W` plane stack (floor of odd sizes).
pub fn pool(x: &[f32], c: usize, h: usize, w: usize, kind: Pooling) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![0.0; c * oh * ow];
    out.par_chunks_mut(oh * ow).enumerate().for_each(|(ch, o)| {
        let p = &x[ch * h * w..(ch + 1) * h * w];
        for i in 0..oh {
            for j in 0..ow {
                let (a, b) = (p[2 * i * w + 2 * j], p[2 * i * w + 2 * j + 1]);
                let (cc, d) = (p[(2 * i + 1) * w + 2 * j], p[(2 * i + 1) * w + 2 * j + 1]);
                o[i * ow + j] = match kind {
                    Pooling::Max => a.max(b).max(cc).max(d),
                    Pooling::Avg => 0.25 * (a + b + cc + d),
                };
            }
        }
    });
    out
}

/// Gradient of [`pool`]: max routes each window's gradient whole to its
/// first maximum (row-major), average spreads it evenly.
pub fn pool_backward(
    x: &[f32],
    dy: &[f32],
    c: usize,
    h: usize,
    w: usize,
    kind: Pooling,
) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut dx = vec![0.0; c * h * w];
    dx.par_chunks_mut(h * w).enumerate().for_each(|(ch, d)| {
        let p = &x[ch * h * w..(ch + 1) * h * w];
        let g = &dy[ch * oh * ow..(ch + 1) * oh * ow];
        for i in 0..oh {
            for j in 0..ow {
                let idx = [
                    2 * i * w + 2 * j,
                    2 * i * w + 2 * j + 1,
                    (2 * i + 1) * w + 2 * j,
                    (2 * i + 1) * w + 2 * j + 1,
                ];
                let gv = g[i * ow + j];
                match kind {
                    Pooling::Max => {
                        let mut best = idx[0];
                        for &k in &idx[1..] {
                            if p[k] > p[best] {
                                best = k;
                            }
                        }
                        d[best] = gv;
                    }
                    Pooling::Avg => idx.iter().for_each(|&k| d[k] = 0.25 * gv),
                }
            }
        }
    });
    dx
}

/// `mean((a − t)²)` and `scale · 2(a − t)/N`.
pub fn mse_grad(a: &[f32], t: &[f32], scale: f64) -> (f64, Vec<f32>) {
    let n = a.len() as f64;
    let k = (2.0 * scale / n) as f32;
    assert_eq!(a.len(), t.len());
    let mut grad = Vec::with_capacity(a.len());
    let parts: Vec<f64> = grad.spare_capacity_mut()[..a.len()]
        .par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(t.par_chunks(CHUNK)))
        .map(|(g, (a, t))| {
            let mut s = 0.0f64;
            for ((g, a), t) in g.iter_mut().zip(a).zip(t) {
                let d = a - t;
                s += (d as f64) * (d as f64);
                g.write(k * d);
            }
            s
        })
        .collect();
    // SAFETY: the chunks together wrote every element.
    unsafe { grad.set_len(a.len()) };
    (ordered_sum(&parts) / n, grad)
}

/// Total variation `(Σ Δᵥ² + Σ Δₕ²)/(C·H·W)` and its gradient times `scale`.
pub fn tv_grad(x: &[f32], c: usize, h: usize, w: usize, scale: f64) -> (f64, Vec<f32>) {
    let n = (c * h * w) as f64;
    let k = (2.0 * scale / n) as f32;
    let mut grad = vec![0.0f32; x.len()];
    let parts: Vec<f64> = grad
        .par_chunks_mut(h * w)
        .enumerate()
        .map(|(ch, g)| {
            let p = &x[ch * h * w..(ch + 1) * h * w];
            let mut s = 0.0f64;
            for i in 0..h {
                for j in 0..w {
                    let v = p[i * w + j];
                    if i + 1 < h {
                        let d = p[(i + 1) * w + j] - v;
                        s += (d as f64) * (d as f64);
                        g[(i + 1) * w + j] += k * d;
                        g[i * w + j] -= k * d;
                    }
                    if j + 1 < w {
                        let d = p[i * w + j + 1] - v;
                        s += (d as f64) * (d as f64);
                        g[i * w + j + 1] += k * d;
                        g[i * w + j] -= k * d;
                    }
                }
            }
            s
        })
        .collect();
    (ordered_sum(&parts) / n, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_backward_routes_the_whole_gradient() {
        // docs/DESIGN.md: candle's own gives 0.25 here.
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(pool(&x, 1, 2, 2, Pooling::Max), vec![4.0]);
        assert_eq!(
            pool_backward(&x, &[1.0], 1, 2, 2, Pooling::Max),
            vec![0.0, 0.0, 0.0, 1.0]
        );
        assert_eq!(
            pool_backward(&x, &[1.0], 1, 2, 2, Pooling::Avg),
            vec![0.25; 4]
        );
    }

    #[test]
    fn odd_sizes_drop_the_last_row_and_column() {
        let x: Vec<f32> = (0..15).map(|v| v as f32).collect();
        assert_eq!(pool(&x, 1, 3, 5, Pooling::Max), vec![6.0, 8.0]);
        let dx = pool_backward(&x, &[1.0, 1.0], 1, 3, 5, Pooling::Max);
        assert_eq!(dx.iter().sum::<f32>(), 2.0);
        assert_eq!(dx[6], 1.0);
        assert_eq!(dx[8], 1.0);
    }
}
