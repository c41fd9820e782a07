//! 3×3, stride-1, zero-padded convolution by Winograd's F(4×4, 3×3) (Lavin &
//! Gray, 2016): each 4×4 output tile is `Aᵀ [Σ_i U_i ⊙ V_i] A` with
//! `U = G g Gᵀ` (the kernel, transformed once) and `V = Bᵀ d B` (the 6×6
//! input patch), so the channel sums become 36 GEMMs
//! `M_ξ = U_ξ · V_ξ` (`C_out × C_in` by `C_in × tiles`): 36 multiplications
//! per 16 outputs where F(2×2, 3×3) needs 64 and the direct method 144.
//!
//! Numerics. The matrices are derived in f64 from the interpolation points
//! [`POINTS`] (and ∞) by Toom–Cook ([`Matrices::from_points`]: `Aᵀ` the
//! powers of the points, `G` the same scaled by `1/Π(p_j − p_l)`, `Bᵀ`
//! solved from the bilinear identity, which a test checks to 1e-12). Every
//! transform — kernel, input and output — is computed in f64 and rounded to
//! f32 once, so the only f32 arithmetic is the GEMMs' accumulation over
//! `C_in`; what is left is that error amplified by `Aᵀ`'s combination of 36
//! products, which depends on the points. With f64 transforms the choice
//! matters little: on `point_sets_by_error`'s data the five sets it prints
//! are within 3× of each other ([`POINTS`] 3.1e-7, Lavin's 0, ±1, ±2 3.2e-7,
//! 0, ±1, ½, −2 2.2e-7; im2col 2.2e-7, F(2×2) 1.4e-7). On the real VGG19
//! weights (`benches/conv_error.rs`) F(4×4)'s error is 2–5× F(2×2)'s per layer
//! and the objective's gradient stays within 2.3e-6 of core's f64 reference
//! (tolerance 1e-4).
//!
//! The input gradient convolves with the kernel transposed and flipped:
//! correlating `d` with `flip(g)` is correlating the reversed patch with `g`
//! and reversing the result, so it reads `U` transposed and uses `Bᵀ J` and
//! `J Aᵀ` (`J` the reversal): one kernel transform serves both directions.
//!
//! Work is split into bands of tile rows cut by the shapes alone
//! ([`PIECES`]), so the sums are the same at any thread count.

use crate::conv::{Epilogue, PIECES};
use crate::matmul::{gemm, Parallelism, Strided};
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::OnceLock;

/// Output tile side.
const M: usize = 4;
/// Input patch side (`M + 3 − 1`).
const N: usize = 6;
/// Transform points per tile (`N²`): the number of GEMMs.
const XI: usize = N * N;

/// The finite interpolation points (the sixth is ∞).
pub(crate) const POINTS: [f64; 5] = [0.0, 1.0, -1.0, 0.5, -0.5];

/// Budget, in floats, for one band's transformed input and output together.
const BAND_FLOATS: usize = 1 << 21;

/// `Bᵀ` (6×6), `Aᵀ` (4×6) and `G` (6×3) of F(4×4, 3×3), in f64.
#[derive(Clone, Debug)]
pub(crate) struct Matrices {
    bt: [[f64; N]; N],
    at: [[f64; N]; M],
    g: [[f64; 3]; N],
}

impl Matrices {
    /// Toom–Cook from five finite points and ∞: `Aᵀ[i][j] = p_jⁱ`,
    /// `G[j][k] = p_jᵏ / Π_{l≠j}(p_j − p_l)`, the ∞ column/row picking the
    /// leading coefficients, and `Bᵀ` the solution of
    /// `Σ_j Aᵀ[i][j] G[j][k] Bᵀ[j][t] = [t = i + k]` (every `i < 4`, `k < 3`,
    /// `t < 6`), solved per column `t` by least squares in f64.
    // Index loops read as the formulas they implement.
    #[allow(clippy::needless_range_loop)]
    pub(crate) fn from_points(p: [f64; 5]) -> Matrices {
        let mut at = [[0.0; N]; M];
        let mut g = [[0.0; 3]; N];
        for j in 0..5 {
            let f: f64 = (0..5).filter(|&l| l != j).map(|l| p[j] - p[l]).product();
            for (i, row) in at.iter_mut().enumerate() {
                row[j] = p[j].powi(i as i32);
            }
            for k in 0..3 {
                g[j][k] = p[j].powi(k as i32) / f;
            }
        }
        at[M - 1][N - 1] = 1.0;
        g[N - 1][2] = 1.0;
        // K[(i,k)][j] = Aᵀ[i][j]·G[j][k]; solve K b_t = e_t per column t
        // through the normal equations (6×6, well conditioned here).
        let rows: Vec<[f64; N]> = (0..M)
            .flat_map(|i| (0..3).map(move |k| (i, k)))
            .map(|(i, k)| std::array::from_fn(|j| at[i][j] * g[j][k]))
            .collect();
        let mut bt = [[0.0; N]; N];
        for t in 0..N {
            let mut ktk = [[0.0; N]; N];
            let mut ktb = [0.0; N];
            for (r, row) in rows.iter().enumerate() {
                let (i, k) = (r / 3, r % 3);
                let rhs = if i + k == t { 1.0 } else { 0.0 };
                for a in 0..N {
                    ktb[a] += row[a] * rhs;
                    for b in 0..N {
                        ktk[a][b] += row[a] * row[b];
                    }
                }
            }
            let x = solve(ktk, ktb);
            for j in 0..N {
                // Exact rationals with small denominators: snap away the
                // solver's last-bit noise.
                bt[j][t] = snap(x[j]);
            }
        }
        Matrices { bt, at, g }
    }

    /// The matrices of the input-gradient form: `Bᵀ J` and `J Aᵀ`.
    fn mirrored(&self) -> Matrices {
        let mut m = self.clone();
        for (a, row) in m.bt.iter_mut().enumerate() {
            for (r, v) in row.iter_mut().enumerate() {
                *v = self.bt[a][N - 1 - r];
            }
        }
        for (i, row) in m.at.iter_mut().enumerate() {
            *row = self.at[M - 1 - i];
        }
        m
    }

    /// Largest deviation from the bilinear identity (0 for exact matrices).
    #[cfg(test)]
    fn residual(&self) -> f64 {
        let mut worst = 0.0f64;
        for i in 0..M {
            for k in 0..3 {
                for t in 0..N {
                    let s: f64 = (0..N)
                        .map(|j| self.at[i][j] * self.g[j][k] * self.bt[j][t])
                        .sum();
                    let want = if i + k == t { 1.0 } else { 0.0 };
                    worst = worst.max((s - want).abs());
                }
            }
        }
        worst
    }
}

/// `v` rounded to a nearby dyadic-times-small-denominator value when within
/// 1e-12 of one (the matrices' entries are such rationals).
fn snap(v: f64) -> f64 {
    for d in [
        1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 9.0, 12.0, 16.0, 24.0, 32.0, 36.0, 48.0, 64.0,
    ] {
        let r = (v * d).round() / d;
        if (r - v).abs() < 1e-12 {
            return r;
        }
    }
    v
}

/// Gaussian elimination with partial pivoting.
#[allow(clippy::needless_range_loop)]
fn solve(mut a: [[f64; N]; N], mut b: [f64; N]) -> [f64; N] {
    for c in 0..N {
        let p = (c..N)
            .max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs()))
            .expect("rows");
        a.swap(c, p);
        b.swap(c, p);
        for r in c + 1..N {
            let f = a[r][c] / a[c][c];
            for k in c..N {
                a[r][k] -= f * a[c][k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = [0.0; N];
    for r in (0..N).rev() {
        let s: f64 = (r + 1..N).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    x
}

/// The matrices of [`POINTS`], and their mirrored form.
fn matrices() -> &'static (Matrices, Matrices) {
    static M4: OnceLock<(Matrices, Matrices)> = OnceLock::new();
    M4.get_or_init(|| {
        let m = Matrices::from_points(POINTS);
        let r = m.mirrored();
        (m, r)
    })
}

/// The kernel transform `U = G g Gᵀ` of an OIHW kernel, in f64 rounded once,
/// laid out as 36 row-major `c_out × c_in` matrices (`u[ξ][o][i]`,
/// `ξ = 6·r + s`).
pub fn transform_kernel(kernel: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    transform_kernel_with(&matrices().0, kernel, c_out, c_in)
}

fn transform_kernel_with(m: &Matrices, kernel: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    assert_eq!(kernel.len(), c_out * c_in * 9);
    let mut u = vec![0.0f32; XI * c_out * c_in];
    for o in 0..c_out {
        for i in 0..c_in {
            let k = &kernel[(o * c_in + i) * 9..][..9];
            // G g: 6×3.
            let mut gg = [[0.0f64; 3]; N];
            for (row, gr) in gg.iter_mut().zip(&m.g) {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|t| gr[t] * k[3 * t + c] as f64).sum();
                }
            }
            for (r, row) in gg.iter().enumerate() {
                for (s, gs) in m.g.iter().enumerate() {
                    let v: f64 = (0..3).map(|t| row[t] * gs[t]).sum();
                    u[((r * N + s) * c_out + o) * c_in + i] = v as f32;
                }
            }
        }
    }
    u
}

pub use crate::winograd::Kernel;

struct SendPtr(*mut f32);
// SAFETY: bands write disjoint rows of the output.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Per-thread band buffers, reused across calls.
#[derive(Default)]
struct Buffers {
    /// Transformed input `v[ξ][i][t]`.
    v: Vec<f32>,
    /// GEMM output `m[ξ][o][t]`.
    m: Vec<f32>,
    /// f64 scratch of the transforms.
    scratch: Vec<f64>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
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
    let (direct, mirrored) = matrices();
    let mats = match kernel {
        Kernel::Direct => direct,
        Kernel::TransposedFlipped => mirrored,
    };
    conv3x3_with(mats, x, c_in, h, w, (u, kernel), bias, c_out, epilogue)
}

#[allow(clippy::too_many_arguments)]
fn conv3x3_with(
    mats: &Matrices,
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
    assert_eq!(u.len(), XI * c_out * c_in);
    let n = c_out * h * w;
    let mut y: Vec<f32> = Vec::with_capacity(n);
    if n == 0 {
        return y;
    }
    let (th, tw) = (h.div_ceil(M), w.div_ceil(M));
    let band_tiles = (BAND_FLOATS / (XI * (c_in + c_out))).max(tw);
    let rows = (band_tiles / tw).clamp(1, th.div_ceil(PIECES).max(1));
    let bands = th.div_ceil(rows);
    let out = SendPtr(y.as_mut_ptr());
    let out = &out;
    (0..bands).into_par_iter().for_each(|band| {
        let (ty0, ty1) = (band * rows, ((band + 1) * rows).min(th));
        let nt = (ty1 - ty0) * tw;
        BUFFERS.with(|b| {
            let bufs = &mut *b.borrow_mut();
            bufs.v.resize(XI * c_in * nt, 0.0);
            bufs.m.resize(XI * c_out * nt, 0.0);
            input_transform(
                mats,
                x,
                c_in,
                h,
                w,
                ty0,
                ty1,
                tw,
                &mut bufs.v,
                &mut bufs.scratch,
            );
            for xi in 0..XI {
                let (cs, rs) = match kernel {
                    Kernel::Direct => (1, c_in),
                    Kernel::TransposedFlipped => (c_out, 1),
                };
                // SAFETY: the three matrices lie inside `m`, `u` and `v`.
                unsafe {
                    gemm(
                        (c_out, nt, c_in),
                        Strided::rows(bufs.m.as_mut_ptr().add(xi * c_out * nt), nt),
                        false,
                        Strided {
                            ptr: u.as_ptr().add(xi * c_out * c_in),
                            row_stride: rs,
                            col_stride: cs,
                        },
                        Strided::rows(bufs.v.as_ptr().add(xi * c_in * nt), nt),
                        Parallelism::None,
                    );
                }
            }
            // SAFETY: this band alone writes output rows 4·ty0 .. 4·ty1.
            unsafe {
                output_transform(
                    mats,
                    &bufs.m,
                    c_out,
                    nt,
                    (h, w),
                    (ty0, ty1, tw),
                    bias,
                    epilogue,
                    &mut bufs.scratch,
                    out.0,
                )
            };
        });
    });
    // SAFETY: the bands together wrote all `n` elements.
    unsafe { y.set_len(n) };
    y
}

/// `acc[k] += c · src[k]` (skipped when `c` is 0).
#[inline]
fn axpy(acc: &mut [f64], c: f64, src: &[f64]) {
    if c != 0.0 {
        acc.iter_mut().zip(src).for_each(|(a, s)| *a += c * s);
    }
}

/// `V = Bᵀ d B` in f64 for every channel and tile of tile rows `ty0..ty1`,
/// rounded into `v[ξ][i][t]`. Per tile row: the six input rows split into
/// four column phases (`ph[r][p][k]` = column `4k + p − 1`, so that patch
/// column `s` of tile `tx` is `ph[r][s % 4][tx + s / 4]`), the vertical
/// transform on those, then the horizontal one: every loop runs over the
/// tiles of a row on contiguous memory.
#[allow(clippy::too_many_arguments)]
fn input_transform(
    mats: &Matrices,
    x: &[f32],
    c_in: usize,
    h: usize,
    w: usize,
    ty0: usize,
    ty1: usize,
    tw: usize,
    v: &mut [f32],
    scratch: &mut Vec<f64>,
) {
    let nt = (ty1 - ty0) * tw;
    let stride = c_in * nt; // between ξ planes
    let k1 = tw + 1;
    // ph: 6 rows × 4 phases × k1; tv: 6 (a) × 4 (phase) × k1; hv: tw.
    scratch.resize(N * 4 * k1 * 2 + tw, 0.0);
    let (ph, rest) = scratch.split_at_mut(N * 4 * k1);
    let (tv, hv) = rest.split_at_mut(N * 4 * k1);
    let hv = &mut hv[..tw];
    for i in 0..c_in {
        let plane = &x[i * h * w..(i + 1) * h * w];
        for ty in ty0..ty1 {
            for r in 0..N {
                let row = &mut ph[r * 4 * k1..][..4 * k1];
                row.fill(0.0);
                let sy = (M * ty + r) as isize - 1;
                if sy >= 0 && sy < h as isize {
                    let src = &plane[sy as usize * w..][..w];
                    // Column c → phase (c + 1) % 4, index (c + 1) / 4.
                    for (c, &val) in src.iter().enumerate() {
                        row[((c + 1) % 4) * k1 + (c + 1) / 4] = val as f64;
                    }
                }
            }
            // Vertical: tv[a][p] = Σ_r Bᵀ[a][r] ph[r][p].
            tv.fill(0.0);
            for a in 0..N {
                for r in 0..N {
                    let c = mats.bt[a][r];
                    let (dst, src) = (&mut tv[a * 4 * k1..][..4 * k1], &ph[r * 4 * k1..][..4 * k1]);
                    axpy(dst, c, src);
                }
            }
            // Horizontal: V[a][b][tx] = Σ_s Bᵀ[b][s] tv[a][s % 4][tx + s / 4].
            let base = i * nt + (ty - ty0) * tw;
            for a in 0..N {
                for b in 0..N {
                    hv.fill(0.0);
                    for s in 0..N {
                        let src = &tv[(a * 4 + s % 4) * k1 + s / 4..][..tw];
                        axpy(hv, mats.bt[b][s], src);
                    }
                    let dst = &mut v[(a * N + b) * stride + base..][..tw];
                    dst.iter_mut()
                        .zip(hv.iter())
                        .for_each(|(d, s)| *d = *s as f32);
                }
            }
        }
    }
}

/// `Y = Aᵀ M A` (+ bias, ReLU) in f64 for every output channel and tile of
/// the band, rounded once and written to rows `4·ty0 .. min(4·ty1, h)`.
///
/// # Safety
/// `y` points to a `c_out × h × w` buffer whose rows of this band no one
/// else touches.
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform(
    mats: &Matrices,
    m: &[f32],
    c_out: usize,
    nt: usize,
    (h, w): (usize, usize),
    (ty0, ty1, tw): (usize, usize, usize),
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    scratch: &mut Vec<f64>,
    y: *mut f32,
) {
    let stride = c_out * nt;
    let relu = epilogue == Epilogue::Relu;
    // mf: 36 × tw (M in f64); q: 4 × 6 × tw; yv: 4 × 4 × tw.
    scratch.resize((XI + M * N + M * M) * tw, 0.0);
    let (mf, rest) = scratch.split_at_mut(XI * tw);
    let (q, yv) = rest.split_at_mut(M * N * tw);
    let mut line = vec![0.0f32; M * tw];
    for o in 0..c_out {
        let b = bias.map_or(0.0, |b| b[o] as f64);
        for ty in ty0..ty1 {
            let base = o * nt + (ty - ty0) * tw;
            for xi in 0..XI {
                let src = &m[xi * stride + base..][..tw];
                mf[xi * tw..][..tw]
                    .iter_mut()
                    .zip(src)
                    .for_each(|(d, s)| *d = *s as f64);
            }
            // q[i][s] = Σ_a Aᵀ[i][a] M[a][s].
            q.fill(0.0);
            for i in 0..M {
                for a in 0..N {
                    let c = mats.at[i][a];
                    for s in 0..N {
                        let (dst, src) = (
                            &mut q[(i * N + s) * tw..][..tw],
                            &mf[(a * N + s) * tw..][..tw],
                        );
                        axpy(dst, c, src);
                    }
                }
            }
            // y[i][j] = Σ_s Aᵀ[j][s] q[i][s] + bias.
            for i in 0..M {
                for j in 0..M {
                    let dst = &mut yv[(i * M + j) * tw..][..tw];
                    dst.fill(b);
                    for s in 0..N {
                        axpy(dst, mats.at[j][s], &q[(i * N + s) * tw..][..tw]);
                    }
                }
            }
            for i in 0..M {
                let r = M * ty + i;
                if r >= h {
                    continue;
                }
                for j in 0..M {
                    let src = &yv[(i * M + j) * tw..][..tw];
                    for (k, v) in src.iter().enumerate() {
                        let v = *v as f32;
                        line[k * M + j] = if relu { v.max(0.0) } else { v };
                    }
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
    fn matrices_satisfy_the_bilinear_identity() {
        for p in [
            POINTS,
            [0.0, 1.0, -1.0, 2.0, -2.0],
            [0.0, 1.0, -1.0, 0.5, -2.0],
        ] {
            let m = Matrices::from_points(p);
            assert!(m.residual() < 1e-12, "{p:?}: {}", m.residual());
            assert!(m.mirrored().residual_mirrored() < 1e-12);
        }
        // Lavin & Gray's published Bᵀ for 0, ±1, ±2, ∞ (up to row scaling,
        // which they put in Bᵀ and we in G): row 0 is 4, 0, −5, 0, 1, 0.
        let m = Matrices::from_points([0.0, 1.0, -1.0, 2.0, -2.0]);
        let r0 = m.bt[0];
        let scale = 4.0 / r0[0];
        let want = [4.0, 0.0, -5.0, 0.0, 1.0, 0.0];
        for (a, b) in r0.iter().zip(want) {
            assert!((a * scale - b).abs() < 1e-12, "{r0:?}");
        }
    }

    impl Matrices {
        /// The identity of the mirrored form: correlating the reversed
        /// patch and reversing the result.
        fn residual_mirrored(&self) -> f64 {
            let mut worst = 0.0f64;
            for i in 0..M {
                for k in 0..3 {
                    for t in 0..N {
                        let s: f64 = (0..N)
                            .map(|j| self.at[i][j] * self.g[j][k] * self.bt[j][t])
                            .sum();
                        // y[i] = Σ_k g[k] d[N−1−(M−1−i+k)].
                        let want = if N - 1 - t == M - 1 - i + k { 1.0 } else { 0.0 };
                        worst = worst.max((s - want).abs());
                    }
                }
            }
            worst
        }
    }

    #[test]
    fn matches_im2col_on_awkward_shapes() {
        let mut rng = neural_style_core::rng::Rng::new(9);
        for (c_in, c_out, h, w) in [
            (3, 5, 7, 1),
            (2, 3, 1, 9),
            (16, 24, 13, 11),
            (1, 1, 1, 1),
            (9, 4, 6, 8),
            (5, 6, 17, 18),
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

    /// `‖a − b‖ / ‖b‖` in f64.
    fn rel(a: &[f32], b: &[f64]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).powi(2)).sum();
        let den: f64 = b.iter().map(|y| y * y).sum();
        (num / den).sqrt()
    }

    fn direct64(x: &[f32], c_in: usize, h: usize, w: usize, k: &[f32], c_out: usize) -> Vec<f64> {
        let mut y = vec![0.0f64; c_out * h * w];
        for o in 0..c_out {
            for i in 0..c_in {
                for r in 0..h {
                    for c in 0..w {
                        let mut s = 0.0;
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (sy, sx) = (r + ky, c + kx);
                                if sy >= 1 && sx >= 1 && sy <= h && sx <= w {
                                    s += k[((o * c_in + i) * 3 + ky) * 3 + kx] as f64
                                        * x[(i * h + sy - 1) * w + sx - 1] as f64;
                                }
                            }
                        }
                        y[(o * h + r) * w + c] += s;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn point_sets_by_error() {
        // Non-negative inputs (ReLU outputs) and a kernel with a non-zero
        // mean, as VGG's are: the errors against an f64 direct convolution,
        // per point set, next to im2col's and F(2×2)'s. The chosen POINTS
        // must be no worse than Lavin's 0, ±1, ±2 and within 8× of im2col.
        let mut rng = neural_style_core::rng::Rng::new(4);
        let (c_in, c_out, h, w) = (64, 32, 24, 20);
        let x: Vec<f32> = (0..c_in * h * w)
            .map(|_| (rng.normal().max(0.0)) as f32)
            .collect();
        let k: Vec<f32> = (0..c_out * c_in * 9)
            .map(|_| (0.02 + 0.05 * rng.normal()) as f32)
            .collect();
        let want = direct64(&x, c_in, h, w, &k, c_out);
        let im2col = rel(
            &crate::conv::conv3x3(&x, c_in, h, w, &k, None, c_out, Epilogue::None),
            &want,
        );
        let u2 = crate::winograd::transform_kernel(&k, c_out, c_in);
        let f2 = rel(
            &crate::winograd::conv3x3(
                &x,
                c_in,
                h,
                w,
                (&u2, Kernel::Direct),
                None,
                c_out,
                Epilogue::None,
            ),
            &want,
        );
        let mut errs = Vec::new();
        for p in [
            POINTS,
            [0.0, 1.0, -1.0, 2.0, -2.0],
            [0.0, 1.0, -1.0, 0.5, -2.0],
            [0.0, 1.0, -1.0, 0.5, 2.0],
            [0.0, 0.5, -0.5, 2.0, -2.0],
        ] {
            let m = Matrices::from_points(p);
            let u = transform_kernel_with(&m, &k, c_out, c_in);
            let y = conv3x3_with(
                &m,
                &x,
                c_in,
                h,
                w,
                (&u, Kernel::Direct),
                None,
                c_out,
                Epilogue::None,
            );
            errs.push((p, rel(&y, &want)));
        }
        eprintln!("im2col {im2col:.3e}, F(2x2) {f2:.3e}");
        for (p, e) in &errs {
            eprintln!("F(4x4) {p:?}: {e:.3e}");
        }
        assert!(errs[0].1 <= errs[1].1, "{errs:?}");
        assert!(errs[0].1 < 8.0 * im2col, "{errs:?} vs im2col {im2col:e}");
    }
}
