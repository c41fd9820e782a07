//! 3×3, stride-1, zero-padded convolution by Winograd's minimal filtering
//! algorithm F(2×2, 3×3) (Lavin & Gray, 2016): each 2×2 output tile is
//! `Aᵀ [Σ_i U_i ⊙ V_i] A` with `U = G g Gᵀ` (the kernel, transformed once)
//! and `V = Bᵀ d Bᵀ` (the 4×4 input patch), so the channel sums become 16
//! independent GEMMs `M_ξ = U_ξ · V_ξ` (`C_out × C_in` by `C_in × tiles`) with
//! 16 multiplications per tile where the direct method needs 36: 2.25× fewer
//! FLOPs than im2col + GEMM on every layer wide enough for the GEMMs to run
//! at speed.
//!
//! Work is split into bands of tile rows; each band transforms its input
//! into a per-thread buffer, runs the 16 GEMMs into a second one, and
//! writes its output rows through the inverse transform with the bias and
//! ReLU fused in. Nothing image-sized is allocated besides the output.

use crate::conv::{Epilogue, PIECES};
use crate::matmul::{gemm, Parallelism, Strided};
use rayon::prelude::*;
use std::cell::RefCell;

/// Budget, in floats, for one band's transformed input and output together
/// (a few MB: the band stays in the L2/L3 caches between the transforms and
/// the GEMMs).
const BAND_FLOATS: usize = 1 << 21;

/// The kernel transform `U = G g Gᵀ` of an OIHW kernel, laid out as 16
/// row-major `c_out × c_in` matrices (`u[ξ][o][i]`, `ξ = 4·r + s`).
pub fn transform_kernel(kernel: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    assert_eq!(kernel.len(), c_out * c_in * 9);
    let mut u = vec![0.0f32; 16 * c_out * c_in];
    for o in 0..c_out {
        for i in 0..c_in {
            let g: Vec<f64> = kernel[(o * c_in + i) * 9..][..9]
                .iter()
                .map(|&v| v as f64)
                .collect();
            // G g: 4×3.
            let mut gg = [[0.0f64; 3]; 4];
            for c in 0..3 {
                let (g0, g1, g2) = (g[c], g[3 + c], g[6 + c]);
                gg[0][c] = g0;
                gg[1][c] = 0.5 * (g0 + g1 + g2);
                gg[2][c] = 0.5 * (g0 - g1 + g2);
                gg[3][c] = g2;
            }
            // (G g) Gᵀ: 4×4.
            for (r, row) in gg.iter().enumerate() {
                let [a, b, c] = *row;
                let t = [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
                for (s, v) in t.iter().enumerate() {
                    u[((r * 4 + s) * c_out + o) * c_in + i] = *v as f32;
                }
            }
        }
    }
    u
}

/// How [`conv3x3`] reads its transformed kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// `u` is the transform of this convolution's own kernel.
    Direct,
    /// `u` is the transform of the kernel `g` (`c_in × c_out × 3 × 3`) whose
    /// transposed-and-flipped kernel this convolution applies — the input
    /// gradient of `g`'s convolution. Flipping `g` swaps rows (and columns)
    /// 0 and 3 of `G g Gᵀ`, so `U'_ξ = U_σ(ξ)ᵀ` with σ that swap: no
    /// second transform is stored.
    TransposedFlipped,
}

/// Row/column 0 ↔ 3 of a 4×4 transform index `ξ = 4·r + s`.
fn swap_03(xi: usize) -> usize {
    const S: [usize; 4] = [3, 1, 2, 0];
    S[xi / 4] * 4 + S[xi % 4]
}

struct SendPtr(*mut f32);
// SAFETY: bands write disjoint rows of the output.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

thread_local! {
    /// Per-thread band buffers (transformed input, GEMM output), reused
    /// across calls so no band allocates or zeroes memory.
    static BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `y = conv3x3(x) + bias`, optionally ReLU'd, with `u` from
/// [`transform_kernel`] (read as `kernel` says).
#[allow(clippy::too_many_arguments)]
pub fn conv3x3(
    x: &[f32],
    c_in: usize,
    h: usize,
    w: usize,
    (u, kernel): (&[f32], Kernel),
    bias: Option<&[f32]>,
    c_out: usize,
    epilogue: Epilogue,
) -> Vec<f32> {
    assert_eq!(x.len(), c_in * h * w);
    assert_eq!(u.len(), 16 * c_out * c_in);
    let n = c_out * h * w;
    let mut y: Vec<f32> = Vec::with_capacity(n);
    if n == 0 {
        return y;
    }
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    // Bands cut by the shapes alone (conv.rs's PIECES), never by the thread
    // count: the same sums at any number of threads.
    let band_tiles = (BAND_FLOATS / (16 * (c_in + c_out))).max(tw);
    let rows = (band_tiles / tw).clamp(1, th.div_ceil(PIECES).max(1));
    let bands = th.div_ceil(rows);
    let out = SendPtr(y.as_mut_ptr());
    let out = &out;
    (0..bands).into_par_iter().for_each(|band| {
        let (ty0, ty1) = (band * rows, ((band + 1) * rows).min(th));
        let nt = (ty1 - ty0) * tw;
        BUFFERS.with(|b| {
            let (v, m) = &mut *b.borrow_mut();
            v.resize(16 * c_in * nt, 0.0);
            m.resize(16 * c_out * nt, 0.0);
            input_transform(x, c_in, h, w, ty0, ty1, tw, v);
            for xi in 0..16 {
                // U_ξ as a c_out × c_in matrix: (pointer, column stride, row stride).
                let (lhs, cs, rs) = match kernel {
                    Kernel::Direct => (xi, 1, c_in),
                    Kernel::TransposedFlipped => (swap_03(xi), c_out, 1),
                };
                // SAFETY: the three matrices lie inside `m`, `u` and `v`.
                unsafe {
                    gemm(
                        (c_out, nt, c_in),
                        Strided::rows(m.as_mut_ptr().add(xi * c_out * nt), nt),
                        false,
                        Strided {
                            ptr: u.as_ptr().add(lhs * c_out * c_in),
                            row_stride: rs,
                            col_stride: cs,
                        },
                        Strided::rows(v.as_ptr().add(xi * c_in * nt), nt),
                        Parallelism::None,
                    );
                }
            }
            // SAFETY: this band alone writes output rows 2·ty0 .. 2·ty1.
            unsafe { output_transform(m, c_out, nt, h, w, ty0, ty1, tw, bias, epilogue, out.0) };
        });
    });
    // SAFETY: the bands together wrote all `n` elements.
    unsafe { y.set_len(n) };
    y
}

/// `V = Bᵀ d B` for every channel and tile of tile rows `ty0..ty1`, into
/// `v[ξ][i][t]` (`t` = tile index within the band). Written as loops over the
/// tiles of a row on contiguous slices (even and odd input columns split
/// apart), so that they vectorise.
#[allow(clippy::too_many_arguments)]
fn input_transform(
    x: &[f32],
    c_in: usize,
    h: usize,
    w: usize,
    ty0: usize,
    ty1: usize,
    tw: usize,
    v: &mut [f32],
) {
    let nt = (ty1 - ty0) * tw;
    let stride = c_in * nt; // between ξ planes
    let n = tw + 1;
    // Input rows 2·ty − 1 + r (zero-padded), columns −1, 1, 3, … (`even`,
    // index k ↔ column 2k − 1) and 0, 2, 4, … (`odd`, k ↔ column 2k).
    let mut even = vec![0.0f32; 4 * n];
    let mut odd = vec![0.0f32; 4 * n];
    let mut t = vec![0.0f32; 4 * tw];
    for i in 0..c_in {
        let plane = &x[i * h * w..(i + 1) * h * w];
        for ty in ty0..ty1 {
            for r in 0..4 {
                let (e, o) = (&mut even[r * n..][..n], &mut odd[r * n..][..n]);
                let sy = (2 * ty + r) as isize - 1;
                e.fill(0.0);
                o.fill(0.0);
                if sy >= 0 && sy < h as isize {
                    let src = &plane[sy as usize * w..][..w];
                    // Column c lands in `o[c/2]` (c even) or `e[(c+1)/2]` (c odd).
                    for (k, pair) in src.chunks(2).enumerate() {
                        o[k] = pair[0];
                        if let Some(&v1) = pair.get(1) {
                            e[k + 1] = v1;
                        }
                    }
                }
            }
            // Patch of tile tx: d[r][s] = column 2tx − 1 + s of row r:
            // s = 0 → e[tx], 1 → o[tx], 2 → e[tx+1], 3 → o[tx+1].
            let base = i * nt + (ty - ty0) * tw;
            let col = |r: usize, s: usize| -> &[f32] {
                let (e, o) = (&even[r * n..][..n], &odd[r * n..][..n]);
                match s {
                    0 => &e[..tw],
                    1 => &o[..tw],
                    2 => &e[1..],
                    _ => &o[1..],
                }
            };
            for r in 0..4 {
                // t[s][tx] = (Bᵀ d)[r][s] of tile tx.
                for (s, ts) in t.chunks_exact_mut(tw).enumerate() {
                    let (a, b, sub) = match r {
                        0 => (col(0, s), col(2, s), true),
                        1 => (col(1, s), col(2, s), false),
                        2 => (col(2, s), col(1, s), true),
                        _ => (col(1, s), col(3, s), true),
                    };
                    if sub {
                        ts.iter_mut()
                            .zip(a)
                            .zip(b)
                            .for_each(|((t, a), b)| *t = a - b);
                    } else {
                        ts.iter_mut()
                            .zip(a)
                            .zip(b)
                            .for_each(|((t, a), b)| *t = a + b);
                    }
                }
                let (t0, t1, t2, t3) = (&t[..tw], &t[tw..2 * tw], &t[2 * tw..3 * tw], &t[3 * tw..]);
                let out = |s: usize| r * 4 * stride + s * stride + base;
                for (d, (a, b)) in v[out(0)..][..tw].iter_mut().zip(t0.iter().zip(t2)) {
                    *d = a - b;
                }
                for (d, (a, b)) in v[out(1)..][..tw].iter_mut().zip(t1.iter().zip(t2)) {
                    *d = a + b;
                }
                for (d, (a, b)) in v[out(2)..][..tw].iter_mut().zip(t2.iter().zip(t1)) {
                    *d = a - b;
                }
                for (d, (a, b)) in v[out(3)..][..tw].iter_mut().zip(t1.iter().zip(t3)) {
                    *d = a - b;
                }
            }
        }
    }
}

/// `Y = Aᵀ M A` (+ bias, ReLU) for every output channel and tile of the band,
/// written to rows `2·ty0 .. min(2·ty1, h)` of `y`. Loops over the tiles of
/// a row on contiguous slices of `m`, so that they vectorise; the two
/// output columns of each tile are interleaved at the end.
///
/// # Safety
/// `y` points to a `c_out × h × w` buffer whose rows of this band no one
/// else touches.
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform(
    m: &[f32],
    c_out: usize,
    nt: usize,
    h: usize,
    w: usize,
    ty0: usize,
    ty1: usize,
    tw: usize,
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    y: *mut f32,
) {
    let stride = c_out * nt;
    let relu = epilogue == Epilogue::Relu;
    // q[a][s] = (Aᵀ M)[a][s] per tile; then y[a][b].
    let mut q = vec![0.0f32; 8 * tw];
    let mut yv = vec![0.0f32; 4 * tw];
    let mut line = vec![0.0f32; 2 * tw];
    for o in 0..c_out {
        let b = bias.map_or(0.0, |b| b[o]);
        for ty in ty0..ty1 {
            let base = o * nt + (ty - ty0) * tw;
            let ms = |xi: usize| &m[xi * stride + base..][..tw];
            for s in 0..4 {
                let (m0, m1, m2, m3) = (ms(s), ms(4 + s), ms(8 + s), ms(12 + s));
                let (qa, qb) = q.split_at_mut(4 * tw);
                let qa = &mut qa[s * tw..][..tw];
                let qb = &mut qb[s * tw..][..tw];
                for k in 0..tw {
                    qa[k] = m0[k] + m1[k] + m2[k];
                    qb[k] = m1[k] - m2[k] - m3[k];
                }
            }
            for a in 0..2 {
                let qs = |s: usize| &q[(a * 4 + s) * tw..][..tw];
                let (q0, q1, q2, q3) = (qs(0), qs(1), qs(2), qs(3));
                let (y0, y1) = yv[a * 2 * tw..][..2 * tw].split_at_mut(tw);
                for k in 0..tw {
                    let (v0, v1) = (q0[k] + q1[k] + q2[k] + b, q1[k] - q2[k] - q3[k] + b);
                    y0[k] = if relu { v0.max(0.0) } else { v0 };
                    y1[k] = if relu { v1.max(0.0) } else { v1 };
                }
            }
            for a in 0..2 {
                let r = 2 * ty + a;
                if r >= h {
                    continue;
                }
                let (y0, y1) = yv[a * 2 * tw..][..2 * tw].split_at(tw);
                for (k, pair) in line.chunks_exact_mut(2).enumerate() {
                    pair[0] = y0[k];
                    pair[1] = y1[k];
                }
                // SAFETY: row r of channel o is inside `y` and in this band.
                unsafe { std::ptr::copy_nonoverlapping(line.as_ptr(), y.add((o * h + r) * w), w) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_im2col_on_awkward_shapes() {
        let mut rng = neural_style_core::rng::Rng::new(9);
        for (c_in, c_out, h, w) in [
            (3, 5, 7, 1),
            (2, 3, 1, 9),
            (16, 24, 13, 11),
            (1, 1, 1, 1),
            (9, 4, 6, 8),
        ] {
            let x: Vec<f32> = (0..c_in * h * w).map(|_| rng.normal() as f32).collect();
            let k: Vec<f32> = (0..c_out * c_in * 9).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..c_out).map(|_| rng.normal() as f32).collect();
            let u = transform_kernel(&k, c_out, c_in);
            for (bias, ep) in [
                (Some(&b[..]), Epilogue::None),
                (Some(&b[..]), Epilogue::Relu),
                (None, Epilogue::None),
            ] {
                let want = crate::conv::conv3x3(&x, c_in, h, w, &k, bias, c_out, ep);
                let got = conv3x3(&x, c_in, h, w, (&u, Kernel::Direct), bias, c_out, ep);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
                }
                // The same convolution from the transform of the kernel it is the
                // input gradient of (c_in × c_out, transposed and flipped back).
                let g = crate::conv::transpose_flip(&k, c_out, c_in);
                let ug = transform_kernel(&g, c_in, c_out);
                let got = conv3x3(
                    &x,
                    c_in,
                    h,
                    w,
                    (&ug, Kernel::TransposedFlipped),
                    bias,
                    c_out,
                    ep,
                );
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
                }
            }
        }
    }
}
