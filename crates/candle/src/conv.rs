//! 3×3, stride-1, zero-padded convolution as im2col + one GEMM per tile of
//! output rows, with the bias folded into the GEMM's accumulator and the
//! ReLU applied while the tile is still in cache.
//!
//! Tiles are independent: each worker builds its own im2col block
//! (`C_in·9 × pixels`) and multiplies it by the whole kernel matrix
//! (`C_out × C_in·9`), writing a disjoint column range of the output. The
//! tiles are cut by the shapes alone ([`PIECES`]), never by the thread count.

use crate::matmul::{gemm, Parallelism, Strided};
use rayon::prelude::*;

/// Upper bound on pixels per tile (keeps the im2col block to a few MB).
const MAX_TILE_PIXELS: usize = 4096;

/// Work is cut into at least this many pieces where the sizes allow — a
/// constant, not the thread count: every split of this crate is fixed by the
/// shapes alone, so each output element is summed in the same order at any
/// thread count (`--threads 1`, `2`, `3` give the same bytes), and the GEMMs
/// are single-threaded within a piece.
pub(crate) const PIECES: usize = 8;

/// Pixels (the reduction dimension) per partial product of [`gram`]: at
/// least 256 (narrower ones run the GEMM kernels below speed), else the
/// pixels in [`PIECES`] pieces.
pub(crate) fn pixel_chunk(m: usize) -> usize {
    m.div_ceil(PIECES).max(256)
}

/// Epilogue applied to each output tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epilogue {
    None,
    Relu,
}

struct SendPtr(*mut f32);
// SAFETY: workers write disjoint column ranges of the output.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `y = conv3x3(x, kernel) + bias`, optionally ReLU'd. `kernel` is OIHW
/// (`c_out × c_in × 3 × 3`, i.e. a row-major `c_out × c_in·9` matrix).
#[allow(clippy::too_many_arguments)]
pub fn conv3x3(
    x: &[f32],
    c_in: usize,
    h: usize,
    w: usize,
    kernel: &[f32],
    bias: Option<&[f32]>,
    c_out: usize,
    epilogue: Epilogue,
) -> Vec<f32> {
    assert_eq!(x.len(), c_in * h * w);
    assert_eq!(kernel.len(), c_out * c_in * 9);
    let hw = h * w;
    let mut y = vec![0.0f32; c_out * hw];
    if hw == 0 {
        return y;
    }
    let k = c_in * 9;
    let (rows, blocks) = cut(h, w, c_out, k);
    let tiles = h.div_ceil(rows);
    let block = c_out.div_ceil(blocks);
    // Cut along the output channels, the pieces share one im2col matrix,
    // built once, whole: each kernel row is read once per tile of pixels.
    let shared = if blocks > 1 {
        let mut col = vec![0.0f32; k * hw];
        col.par_chunks_mut(k * rows * w)
            .enumerate()
            .for_each(|(t, c)| im2col_rows(x, c_in, h, w, t * rows, (t * rows + rows).min(h), c));
        Some(col)
    } else {
        None
    };
    let out = SendPtr(y.as_mut_ptr());
    let out = &out;
    (0..tiles * blocks).into_par_iter().for_each(|piece| {
        let (t, b) = (piece / blocks, piece % blocks);
        let (o0, o1) = (b * block, ((b + 1) * block).min(c_out));
        if o0 >= o1 {
            return;
        }
        let r0 = t * rows;
        let r1 = (r0 + rows).min(h);
        let p0 = r0 * w;
        let np = (r1 - r0) * w;
        let own;
        let col: &[f32] = match &shared {
            Some(col) => &col[k * p0..][..k * np],
            None => {
                let mut c = vec![0.0f32; k * np];
                im2col_rows(x, c_in, h, w, r0, r1, &mut c);
                own = c;
                &own
            }
        };
        // SAFETY: this piece owns columns p0..p0+np of output rows o0..o1.
        unsafe {
            let dst = out.0.add(o0 * hw + p0);
            if let Some(bias) = bias {
                for (o, bv) in bias[o0..o1].iter().enumerate() {
                    std::slice::from_raw_parts_mut(dst.add(o * hw), np).fill(*bv);
                }
            }
            gemm(
                (o1 - o0, np, k),
                Strided::rows(dst, hw),
                bias.is_some(),
                Strided::rows(kernel.as_ptr().add(o0 * k), k),
                Strided::rows(col.as_ptr(), np),
                Parallelism::None,
            );
            if epilogue == Epilogue::Relu {
                for o in 0..o1 - o0 {
                    for v in std::slice::from_raw_parts_mut(dst.add(o * hw), np) {
                        *v = v.max(0.0);
                    }
                }
            }
        }
    });
    y
}

/// Floats of the one im2col matrix a small map shares between its pieces
/// (8 MB; a larger map builds one block per tile instead).
const SHARED_COL_FLOATS: usize = 1 << 21;

/// How a convolution producing `c_out` channels of an `h × w` map (inner
/// dimension `k`) is cut into pieces: (rows per tile of pixels, blocks of
/// output channels), by the shapes alone. Each piece multiplies a block of
/// kernel rows by a tile of the im2col matrix, so the kernel is read once
/// per tile and the im2col matrix once per block: a map whose im2col matrix
/// fits [`SHARED_COL_FLOATS`] takes, of the cuts into [`PIECES`], the one
/// that reads the fewest floats (a deep layer's small map is one tile: its
/// large kernel is read once, not once per short tile of a few pixels).
/// Blocks have at least 32 kernel rows (narrower ones run the GEMM kernels
/// below speed). A larger map is cut into tiles of at most
/// [`MAX_TILE_PIXELS`] pixels, at least [`PIECES`] of them, each with its
/// own im2col block and the whole kernel.
fn cut(h: usize, w: usize, c_out: usize, k: usize) -> (usize, usize) {
    if k * h * w <= SHARED_COL_FLOATS {
        let most_blocks = (c_out / 32).max(1);
        let read = |tiles: usize| {
            let blocks = (PIECES / tiles).min(most_blocks);
            (c_out * tiles + h * w * blocks, blocks)
        };
        let tiles = (0..=PIECES.trailing_zeros())
            .map(|p| (1usize << p).min(h))
            .filter(|&t| t * read(t).1 >= PIECES.min(h * most_blocks))
            .min_by_key(|&t| read(t).0)
            .unwrap_or(PIECES.min(h));
        return (h.div_ceil(tiles), read(tiles).1);
    }
    let rows = (MAX_TILE_PIXELS / w)
        .clamp(1, h)
        .min(h.div_ceil(PIECES).max(1));
    (rows, 1)
}

/// `F Fᵀ / n` for a row-major `c × m` matrix `f`. The reduction dimension
/// `m` (pixels) is long and `c` small, so the work is split along `m` into
/// fixed chunks ([`pixel_chunk`]: by the shape, not the thread count), each a
/// single-threaded GEMM into its own `c × c` block, then summed in chunk
/// order — a GEMM parallel over its `c × c` output would leave threads idle.
/// The result is symmetric, so (like BLAS's `syrk`) only the blocks on and
/// above the diagonal are computed, and mirrored at the end: with `nb`
/// blocks a side, `nb(nb+1)/2` of the `nb²` block products.
pub fn gram(f: &[f32], c: usize, m: usize, n: f64) -> Vec<f32> {
    assert_eq!(f.len(), c * m);
    let chunk = pixel_chunk(m);
    // Blocks of at least 32 rows (narrower ones run the GEMM kernels below
    // speed), at most 8 a side.
    let nb = (c / 32).clamp(1, 8);
    let edge = |b: usize| b * c / nb;
    let partial: Vec<Vec<f32>> = (0..m.div_ceil(chunk))
        .into_par_iter()
        .map(|t| {
            let (k0, k1) = (t * chunk, ((t + 1) * chunk).min(m));
            let mut g = vec![0.0f32; c * c];
            for bi in 0..nb {
                for bj in bi..nb {
                    let (r0, r1) = (edge(bi), edge(bi + 1));
                    let (c0, c1) = (edge(bj), edge(bj + 1));
                    // SAFETY: all pointers and strides stay inside `f` and `g`.
                    unsafe {
                        gemm(
                            (r1 - r0, c1 - c0, k1 - k0),
                            Strided::rows(g.as_mut_ptr().add(r0 * c + c0), c),
                            false,
                            Strided::rows(f.as_ptr().add(r0 * m + k0), m),
                            // Fᵀ: column j of the right-hand side is row c0 + j of F.
                            Strided {
                                ptr: f.as_ptr().add(c0 * m + k0),
                                row_stride: 1,
                                col_stride: m,
                            },
                            Parallelism::None,
                        );
                    }
                }
            }
            g
        })
        .collect();
    let scale = (1.0 / n) as f32;
    let mut g = vec![0.0f32; c * c];
    for p in &partial {
        g.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    // Mirror the blocks below the diagonal from those above it.
    for a in 0..c {
        let ba = (0..nb).find(|&b| a < edge(b + 1)).unwrap_or(0);
        for b in 0..edge(ba) {
            g[a * c + b] = g[b * c + a];
        }
    }
    g.iter_mut().for_each(|v| *v *= scale);
    g
}

/// Gradient of [`gram`] with respect to `f`: `(dG + dGᵀ) F / n`. The
/// `c × c` factor is formed (in f64, scaled) once; the product is split along
/// the pixel columns in fixed chunks ([`pixel_chunk`]), each a
/// single-threaded GEMM writing its own columns of the (not zero-filled)
/// output.
pub fn gram_backward(f: &[f32], c: usize, m: usize, dg: &[f32], n: f64) -> Vec<f32> {
    let len = c * m;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    // SAFETY: `out` has room for `len` elements; not accumulating, the
    // product writes every one of them before they are read.
    unsafe {
        gram_backward_raw(f, c, m, dg, n, out.as_mut_ptr(), false);
        out.set_len(len);
    }
    out
}

/// `acc += (dG + dGᵀ) F / n` in place: [`gram_backward`]'s product with the
/// GEMM accumulating into `acc` (its old value plus the product, as an
/// `axpy` with 1 would add them), so that no gradient-sized buffer is made.
pub fn gram_backward_add(f: &[f32], c: usize, m: usize, dg: &[f32], n: f64, acc: &mut [f32]) {
    assert_eq!(acc.len(), c * m);
    // SAFETY: `acc` holds the `c × m` elements, initialised.
    unsafe { gram_backward_raw(f, c, m, dg, n, acc.as_mut_ptr(), true) }
}

/// # Safety
/// `dst` must address `c × m` writable elements, initialised when
/// `accumulate`, overlapping neither input.
unsafe fn gram_backward_raw(
    f: &[f32],
    c: usize,
    m: usize,
    dg: &[f32],
    n: f64,
    dst: *mut f32,
    accumulate: bool,
) {
    assert_eq!(f.len(), c * m);
    assert_eq!(dg.len(), c * c);
    let mut s = vec![0.0f32; c * c];
    for a in 0..c {
        for b in 0..c {
            s[a * c + b] = ((dg[a * c + b] as f64 + dg[b * c + a] as f64) / n) as f32;
        }
    }
    if c * m == 0 {
        return;
    }
    let chunk = pixel_chunk(m);
    let dst = SendPtr(dst);
    let dst = &dst;
    (0..m.div_ceil(chunk)).into_par_iter().for_each(|t| {
        let (k0, k1) = (t * chunk, ((t + 1) * chunk).min(m));
        // SAFETY: this task alone writes columns k0..k1 of every row of the
        // `c × m` output; all reads stay inside `s` and `f`.
        unsafe {
            gemm(
                (c, k1 - k0, c),
                Strided::rows(dst.0.add(k0), m),
                accumulate,
                Strided::rows(s.as_ptr(), c),
                Strided::rows(f.as_ptr().add(k0), m),
                Parallelism::None,
            );
        }
    });
}

/// im2col for output rows `r0..r1`: row `(i·9 + ky·3 + kx)` of `col` holds
/// `x[i, r+ky−1, c+kx−1]` (zero outside) for each output pixel `(r, c)`.
fn im2col_rows(x: &[f32], c_in: usize, h: usize, w: usize, r0: usize, r1: usize, col: &mut [f32]) {
    let np = (r1 - r0) * w;
    for i in 0..c_in {
        let plane = &x[i * h * w..(i + 1) * h * w];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &mut col[((i * 3 + ky) * 3 + kx) * np..][..np];
                for (ri, r) in (r0..r1).enumerate() {
                    let dst = &mut row[ri * w..(ri + 1) * w];
                    let sy = r as isize + ky as isize - 1;
                    if sy < 0 || sy >= h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[sy as usize * w..(sy as usize + 1) * w];
                    match kx {
                        0 => {
                            dst[0] = 0.0;
                            dst[1..].copy_from_slice(&src[..w - 1]);
                        }
                        1 => dst.copy_from_slice(src),
                        _ => {
                            dst[..w - 1].copy_from_slice(&src[1..]);
                            dst[w - 1] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// OIHW 3×3 kernel → the kernel of its input gradient, `[i][o][2−kh][2−kw]`:
/// the input gradient of a same-padded 3×3 convolution is the same
/// convolution with the kernel transposed (in ↔ out) and flipped.
pub(crate) fn transpose_flip(w: &[f32], o: usize, i: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for oc in 0..o {
        for ic in 0..i {
            for k in 0..9 {
                out[(ic * o + oc) * 9 + (8 - k)] = w[(oc * i + ic) * 9 + k];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `f` in a pool of `n` threads.
    fn with_threads<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
            .install(f)
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn every_kernel_gives_the_same_bits_at_any_thread_count() {
        // Fails with splits by the thread count (rows per tile, Gram chunks,
        // rayon's own sum tree): 1, 2 and 3 threads summed in other orders.
        use crate::{loops, winograd};
        let mut rng = neural_style_core::rng::Rng::new(21);
        let (c_in, c_out, h, w) = (24, 32, 37, 29);
        let x: Vec<f32> = (0..c_in * h * w).map(|_| rng.normal() as f32).collect();
        let k: Vec<f32> = (0..c_out * c_in * 9).map(|_| rng.normal() as f32).collect();
        let b: Vec<f32> = (0..c_out).map(|_| rng.normal() as f32).collect();
        let u = winograd::transform_kernel(&k, c_out, c_in);
        let u4 = crate::winograd4::transform_kernel(&k, c_out, c_in);
        let big: Vec<f32> = (0..64 * 3000).map(|_| rng.normal() as f32).collect();
        let dg: Vec<f32> = (0..64 * 64).map(|_| rng.normal() as f32).collect();
        // A deep layer's small map: one tile, cut into blocks of channels.
        let (c_deep, h_deep, w_deep) = (96, 5, 4);
        let x_deep: Vec<f32> = (0..c_out * h_deep * w_deep)
            .map(|_| rng.normal() as f32)
            .collect();
        let k_deep: Vec<f32> = (0..c_deep * c_out * 9)
            .map(|_| rng.normal() as f32)
            .collect();
        assert!(cut(h_deep, w_deep, c_deep, c_out * 9).1 > 1);
        let run = || {
            let y = conv3x3(&x, c_in, h, w, &k, Some(&b), c_out, Epilogue::Relu);
            let y_deep = conv3x3(
                &x_deep,
                c_out,
                h_deep,
                w_deep,
                &k_deep,
                None,
                c_deep,
                Epilogue::None,
            );
            let yw = winograd::conv3x3(
                &x,
                c_in,
                h,
                w,
                (&u, winograd::Kernel::Direct),
                Some(&b),
                c_out,
                Epilogue::None,
            );
            let yw4 = crate::winograd4::conv3x3(
                &x,
                c_in,
                h,
                w,
                (&u4, winograd::Kernel::Direct),
                Some(&b),
                c_out,
                Epilogue::Relu,
            );
            let g = gram(&big, 64, 3000, 7.0);
            let gb = gram_backward(&big, 64, 3000, &dg, 7.0);
            let (mse, mg) = loops::mse_grad(&big[..96_000], &big[96_000..], 0.5);
            let (tv, tg) = loops::tv_grad(&x, c_in, h, w, 0.5);
            let sums = [
                loops::dot(&big, &big).to_bits(),
                loops::norm1(&big).to_bits(),
                mse.to_bits(),
                tv.to_bits(),
            ];
            (
                bits(&y),
                bits(&y_deep),
                bits(&yw),
                bits(&yw4),
                bits(&g),
                bits(&gb),
                bits(&mg),
                bits(&tg),
                sums,
            )
        };
        let one = with_threads(1, run);
        for n in [2, 3, 4] {
            assert!(with_threads(n, run) == one, "{n} threads differ from 1");
        }
    }

    #[test]
    fn transpose_flip_is_an_involution_with_swapped_shape() {
        let w: Vec<f32> = (0..2 * 3 * 9).map(|v| v as f32).collect();
        let t = transpose_flip(&w, 2, 3);
        assert_eq!(transpose_flip(&t, 3, 2), w);
        assert_eq!(t[0], w[8]); // [i=0][o=0][0][0] = w[o=0][i=0][2][2]
    }

    fn direct(x: &[f32], c_in: usize, h: usize, w: usize, k: &[f32], b: &[f32]) -> Vec<f32> {
        let c_out = b.len();
        let mut y = vec![0.0; c_out * h * w];
        for o in 0..c_out {
            for r in 0..h {
                for c in 0..w {
                    let mut s = b[o] as f64;
                    for i in 0..c_in {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (sy, sx) = (r + ky, c + kx);
                                if sy >= 1 && sx >= 1 && sy <= h && sx <= w {
                                    s += k[((o * c_in + i) * 3 + ky) * 3 + kx] as f64
                                        * x[(i * h + sy - 1) * w + sx - 1] as f64;
                                }
                            }
                        }
                    }
                    y[(o * h + r) * w + c] = s as f32;
                }
            }
        }
        y
    }

    #[test]
    fn gram_matches_a_direct_sum() {
        let mut rng = neural_style_core::rng::Rng::new(8);
        for (c, m) in [(3, 7), (5, 1000), (1, 1), (70, 50), (300, 9)] {
            let f: Vec<f32> = (0..c * m).map(|_| rng.normal() as f32).collect();
            let g = gram(&f, c, m, 2.0);
            for a in 0..c {
                for b in 0..c {
                    let want: f64 = (0..m)
                        .map(|k| f[a * m + k] as f64 * f[b * m + k] as f64)
                        .sum::<f64>()
                        / 2.0;
                    assert!((g[a * c + b] as f64 - want).abs() < 1e-3, "{a},{b}");
                }
            }
        }
    }

    #[test]
    fn gram_backward_matches_a_direct_sum() {
        let mut rng = neural_style_core::rng::Rng::new(11);
        for (c, m) in [(3, 7), (5, 1000), (1, 1), (17, 33)] {
            let f: Vec<f32> = (0..c * m).map(|_| rng.normal() as f32).collect();
            let dg: Vec<f32> = (0..c * c).map(|_| rng.normal() as f32).collect();
            let got = gram_backward(&f, c, m, &dg, 3.0);
            for a in 0..c {
                for k in 0..m {
                    let want: f64 = (0..c)
                        .map(|b| (dg[a * c + b] + dg[b * c + a]) as f64 * f[b * m + k] as f64)
                        .sum::<f64>()
                        / 3.0;
                    let g = got[a * m + k] as f64;
                    assert!(
                        (g - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{a},{k}: {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn matches_a_direct_convolution_on_awkward_shapes() {
        let mut rng = neural_style_core::rng::Rng::new(5);
        // The last two: small maps cut into blocks of output channels
        // (100 = 2 × 50 in four tiles; 64 = 2 × 32 in three).
        for (c_in, c_out, h, w) in [
            (3, 5, 7, 1),
            (2, 3, 1, 9),
            (4, 7, 13, 11),
            (1, 1, 1, 1),
            (8, 100, 5, 6),
            (16, 64, 3, 2),
        ] {
            let x: Vec<f32> = (0..c_in * h * w).map(|_| rng.normal() as f32).collect();
            let k: Vec<f32> = (0..c_out * c_in * 9).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..c_out).map(|_| rng.normal() as f32).collect();
            let want = direct(&x, c_in, h, w, &k, &b);
            let got = conv3x3(&x, c_in, h, w, &k, Some(&b), c_out, Epilogue::None);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{g} vs {w}");
            }
            let relu = conv3x3(&x, c_in, h, w, &k, Some(&b), c_out, Epilogue::Relu);
            for (g, w) in relu.iter().zip(&want) {
                assert!((g - w.max(0.0)).abs() < 1e-4);
            }
            let nobias = conv3x3(&x, c_in, h, w, &k, None, c_out, Epilogue::None);
            let zero = direct(&x, c_in, h, w, &k, &vec![0.0; c_out]);
            for (g, w) in nobias.iter().zip(&zero) {
                assert!((g - w).abs() < 1e-4);
            }
        }
    }
}
