//! Colour control.
//!
//! * [`original_colors`] (`--original-colors`): keep the content's colours —
//!   the output's luminance with the content's chrominance, in YCbCr (ITU-R
//!   BT.601, full range, as JPEG), applied after optimisation as
//!   jcjohnson/neural-style does.
//! * [`match_colors`] (`--color-match`): before style features are taken,
//!   give the style image the content's colour mean and covariance (RGB):
//!   `x' = Σc^½ Σs^-½ (x − μs) + μc`, the matrix square roots from a
//!   symmetric eigen-decomposition ([`sym_eigen3`], cyclic Jacobi), so that
//!   the new covariance is exactly `Σc` (before clamping to 0–255).

// 3×3 matrix algebra reads best with explicit indices.
#![allow(clippy::needless_range_loop)]

use crate::image_io::Picture;
use crate::pixel::CaffeImage;

/// BT.601 full-range RGB → YCbCr (0–255 scale, chroma centred on 128).
fn ycbcr(p: [f32; 3]) -> [f32; 3] {
    let [r, g, b] = p;
    [
        0.299 * r + 0.587 * g + 0.114 * b,
        128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b,
        128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b,
    ]
}

fn rgb(p: [f32; 3]) -> [f32; 3] {
    let [y, cb, cr] = p;
    let (cb, cr) = (cb - 128.0, cr - 128.0);
    [
        y + 1.402 * cr,
        y - 0.344_136 * cb - 0.714_136 * cr,
        y + 1.772 * cb,
    ]
}

/// The output's luminance (Y) with the content's chrominance (Cb, Cr). The
/// content is resized to the output's size when they differ.
pub fn original_colors(output: &CaffeImage, content: &CaffeImage) -> CaffeImage {
    let content = if (content.width, content.height) == (output.width, output.height) {
        content.clone()
    } else {
        crate::image_io::resize_caffe(content, output.width, output.height)
    };
    let (o, c) = (output.to_rgb(), content.to_rgb());
    let mut out = Vec::with_capacity(o.len());
    for (po, pc) in o.chunks_exact(3).zip(c.chunks_exact(3)) {
        let yo = ycbcr([po[0], po[1], po[2]])[0];
        let [_, cb, cr] = ycbcr([pc[0], pc[1], pc[2]]);
        out.extend(rgb([yo, cb, cr]));
    }
    CaffeImage::from_rgb(output.width, output.height, &out)
}

/// Mean and covariance (population) of an interleaved RGB buffer.
pub fn mean_cov(rgb: &[f32]) -> ([f64; 3], [[f64; 3]; 3]) {
    let n = (rgb.len() / 3).max(1) as f64;
    let mut mean = [0.0; 3];
    for p in rgb.chunks_exact(3) {
        for c in 0..3 {
            mean[c] += p[c] as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut cov = [[0.0; 3]; 3];
    for p in rgb.chunks_exact(3) {
        let d = [0, 1, 2].map(|c| p[c] as f64 - mean[c]);
        for i in 0..3 {
            for j in 0..3 {
                cov[i][j] += d[i] * d[j];
            }
        }
    }
    cov.iter_mut().flatten().for_each(|v| *v /= n);
    (mean, cov)
}

/// Eigen-decomposition of a symmetric 3×3 matrix by cyclic Jacobi rotations:
/// returns the eigenvalues `λ` and the eigenvectors as the *columns* of `V`,
/// so that `A = V diag(λ) Vᵀ`.
pub fn sym_eigen3(a: [[f64; 3]; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut a = a;
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _sweep in 0..50 {
        let off = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
        let scale = a[0][0].powi(2) + a[1][1].powi(2) + a[2][2].powi(2);
        if off <= 1e-30 * scale.max(1e-300) {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            // Rotation that zeroes a[p][q] (Golub & Van Loan, symmetric Schur).
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // A ← Jᵀ A J, V ← V J, with J the rotation in the (p, q) plane.
            for k in 0..3 {
                let (akp, akq) = (a[k][p], a[k][q]);
                a[k][p] = c * akp - s * akq;
                a[k][q] = s * akp + c * akq;
            }
            for k in 0..3 {
                let (apk, aqk) = (a[p][k], a[q][k]);
                a[p][k] = c * apk - s * aqk;
                a[q][k] = s * apk + c * aqk;
            }
            for row in &mut v {
                let (vp, vq) = (row[p], row[q]);
                row[p] = c * vp - s * vq;
                row[q] = s * vp + c * vq;
            }
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
}

/// `V diag(f(λ)) Vᵀ` for a symmetric matrix.
fn sym_fn(a: [[f64; 3]; 3], f: impl Fn(f64) -> f64) -> [[f64; 3]; 3] {
    let (l, v) = sym_eigen3(a);
    let mut out = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            out[i][j] = (0..3).map(|k| v[i][k] * f(l[k]) * v[j][k]).sum();
        }
    }
    out
}

fn matmul(a: [[f64; 3]; 3], b: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            out[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

/// Variance floor (in 0–255² units) under which a colour direction of the
/// style is taken as flat, so a single-colour style never divides by zero.
const VARIANCE_FLOOR: f64 = 1e-2;

/// `style` recoloured to the colour mean and covariance of `content`
/// (results clamped to 0–255).
pub fn match_colors(style: &Picture, content: &Picture) -> Picture {
    let (ms, cs) = mean_cov(&style.rgb);
    let (mc, cc) = mean_cov(&content.rgb);
    let s_inv_sqrt = sym_fn(cs, |l| 1.0 / l.max(VARIANCE_FLOOR).sqrt());
    let c_sqrt = sym_fn(cc, |l| l.max(0.0).sqrt());
    let a = matmul(c_sqrt, s_inv_sqrt);
    let mut rgb = Vec::with_capacity(style.rgb.len());
    for p in style.rgb.chunks_exact(3) {
        let d = [0, 1, 2].map(|c| p[c] as f64 - ms[c]);
        for i in 0..3 {
            let v = mc[i] + (0..3).map(|k| a[i][k] * d[k]).sum::<f64>();
            rgb.push(v.clamp(0.0, 255.0) as f32);
        }
    }
    Picture {
        width: style.width,
        height: style.height,
        rgb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_reconstructs_a_symmetric_matrix() {
        let a = [[4.0, 1.0, -2.0], [1.0, 3.0, 0.5], [-2.0, 0.5, 6.0]];
        let (l, v) = sym_eigen3(a);
        for i in 0..3 {
            for j in 0..3 {
                let r: f64 = (0..3).map(|k| v[i][k] * l[k] * v[j][k]).sum();
                assert!((r - a[i][j]).abs() < 1e-10, "{i},{j}: {r} vs {}", a[i][j]);
                let o: f64 = (0..3).map(|k| v[k][i] * v[k][j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((o - want).abs() < 1e-10, "V not orthonormal");
            }
        }
        // Already diagonal, and a repeated eigenvalue.
        let (l, _) = sym_eigen3([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 5.0]]);
        assert_eq!(l, [2.0, 2.0, 5.0]);
    }

    fn picture(w: u32, h: u32, f: impl Fn(u32, u32) -> [f32; 3]) -> Picture {
        let mut rgb = Vec::new();
        for y in 0..h {
            for x in 0..w {
                rgb.extend(f(x, y));
            }
        }
        Picture {
            width: w,
            height: h,
            rgb,
        }
    }

    #[test]
    fn color_match_gives_the_content_mean_and_covariance() {
        // Moderate ranges so that nothing is clamped.
        let style = picture(20, 16, |x, y| {
            [
                100.0 + 3.0 * x as f32,
                80.0 + 2.0 * y as f32 + x as f32,
                120.0 - 2.0 * x as f32 + ((x * y) % 7) as f32,
            ]
        });
        let content = picture(18, 12, |x, y| {
            [
                90.0 + (x as f32) * 1.5,
                110.0 + ((x + 2 * y) % 9) as f32 * 3.0,
                70.0 + 4.0 * y as f32 - x as f32,
            ]
        });
        let out = match_colors(&style, &content);
        let (m1, c1) = mean_cov(&out.rgb);
        let (m2, c2) = mean_cov(&content.rgb);
        for i in 0..3 {
            assert!(
                (m1[i] - m2[i]).abs() < 1e-2,
                "mean {i}: {} vs {}",
                m1[i],
                m2[i]
            );
            for j in 0..3 {
                assert!(
                    (c1[i][j] - c2[i][j]).abs() < 1e-2 * c2[i][i].max(1.0),
                    "cov {i},{j}: {} vs {}",
                    c1[i][j],
                    c2[i][j]
                );
            }
        }
        // A flat style gets the content's mean and no NaN.
        let flat = picture(4, 4, |_, _| [10.0, 200.0, 30.0]);
        let out = match_colors(&flat, &content);
        assert!(out.rgb.iter().all(|v| v.is_finite()));
        let (m, _) = mean_cov(&out.rgb);
        assert!((m[0] - m2[0]).abs() < 1e-3);
    }

    #[test]
    fn original_colors_keeps_output_luma_and_content_chroma() {
        let output = picture(6, 5, |x, y| [40.0 * x as f32, 30.0 * y as f32, 100.0]);
        let content = picture(6, 5, |x, _| [200.0, 60.0 + 10.0 * x as f32, 20.0]);
        let out = original_colors(&output.to_caffe(), &content.to_caffe()).to_rgb();
        for i in 0..30 {
            let p = |v: &[f32]| [v[3 * i], v[3 * i + 1], v[3 * i + 2]];
            let (yo, yc, yr) = (
                ycbcr(p(&output.rgb)),
                ycbcr(p(&content.rgb)),
                ycbcr(p(&out)),
            );
            assert!((yr[0] - yo[0]).abs() < 1e-2, "luma");
            assert!((yr[1] - yc[1]).abs() < 1e-2 && (yr[2] - yc[2]).abs() < 1e-2);
        }
        // Round trip of the colour transform.
        let back = rgb(ycbcr([12.0, 200.0, 99.0]));
        assert!(back
            .iter()
            .zip([12.0, 200.0, 99.0])
            .all(|(a, b)| (a - b).abs() < 1e-3));
    }
}
