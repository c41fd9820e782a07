//! Warping along a flow (bilinear), the certainty of a warped frame
//! (Ruder et al.'s forward–backward consistency check and motion
//! boundaries) and the warping error (Lai et al. 2018). docs/DESIGN.md, "Video".

use crate::flow::Flow;
use neural_style_core::image_io::Picture;
use neural_style_core::mask::Mask;
use neural_style_core::pixel::CaffeImage;

/// The four pixels (row-major indices) and weights of bilinear sampling at
/// `(x, y)` in a `w×h` grid, the position clamped to the grid.
pub fn taps(w: usize, h: usize, x: f32, y: f32) -> [(usize, f32); 4] {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    [
        (y0 * w + x0, (1.0 - fx) * (1.0 - fy)),
        (y0 * w + x1, fx * (1.0 - fy)),
        (y1 * w + x0, (1.0 - fx) * fy),
        (y1 * w + x1, fx * fy),
    ]
}

/// Planar channels (`C×H×W`, `channels` of them) warped along `flow`: the
/// output at pixel `p` is the input at `p + flow(p)`, bilinear (positions
/// outside are clamped to the border; [`certainty`] gives them 0).
pub fn warp_planar(data: &[f32], channels: usize, flow: &Flow) -> Vec<f32> {
    let (w, h) = (flow.width, flow.height);
    let plane = w * h;
    assert_eq!(data.len(), channels * plane, "image and flow sizes");
    let mut out = vec![0.0; data.len()];
    for y in 0..h {
        for x in 0..w {
            let [u, v] = flow.at(x, y);
            let t = taps(w, h, x as f32 + u, y as f32 + v);
            for c in 0..channels {
                let src = &data[c * plane..(c + 1) * plane];
                out[c * plane + y * w + x] = t.iter().map(|(i, wt)| wt * src[*i]).sum();
            }
        }
    }
    out
}

/// [`warp_planar`] of a Caffe-space image.
pub fn warp_caffe(img: &CaffeImage, flow: &Flow) -> CaffeImage {
    CaffeImage {
        width: img.width,
        height: img.height,
        data: warp_planar(&img.data, 3, flow),
    }
}

/// [`warp_planar`] of a picture (interleaved RGB).
pub fn warp_picture(p: &Picture, flow: &Flow) -> Picture {
    let plane = p.width as usize * p.height as usize;
    let mut planar = vec![0.0; 3 * plane];
    for (i, px) in p.rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            planar[c * plane + i] = px[c];
        }
    }
    let warped = warp_planar(&planar, 3, flow);
    let mut rgb = vec![0.0; 3 * plane];
    for i in 0..plane {
        for c in 0..3 {
            rgb[3 * i + c] = warped[c * plane + i];
        }
    }
    Picture {
        width: p.width,
        height: p.height,
        rgb,
    }
}

/// The certainty of frame `t`'s pixels for a frame warped into it, from the
/// flow `back` (frame `t` → the earlier frame, the one that warps) and
/// `fwd` (the earlier frame → `t`). With `ŵ = back(p)` and
/// `w̃ = fwd(p + ŵ)`, a pixel is 0 when
///
/// ```text
/// |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5          (disoccluded: the flows disagree)
/// |∇ŵ_u|² + |∇ŵ_v|² > 0.01 |ŵ|² + 0.002        (motion boundary)
/// ```
///
/// or when `p + ŵ` falls outside the earlier frame, and 1 otherwise
/// (Ruder et al.'s inequalities and thresholds; gradients by central
/// differences, one-sided at the border).
pub fn certainty(back: &Flow, fwd: &Flow) -> Mask {
    let (w, h) = (back.width, back.height);
    let mut data = vec![0.0f32; w * h];
    let d = |f: &dyn Fn(usize) -> f32, lo: usize, hi: usize| -> f32 {
        (f(hi) - f(lo)) / (hi - lo).max(1) as f32
    };
    for y in 0..h {
        for x in 0..w {
            let [bu, bv] = back.at(x, y);
            let (sx, sy) = (x as f32 + bu, y as f32 + bv);
            let inside = sx >= 0.0 && sy >= 0.0 && sx <= (w - 1) as f32 && sy <= (h - 1) as f32;
            if !inside {
                continue;
            }
            let [fu, fv] = fwd.sample(sx, sy);
            let sum = (fu + bu).powi(2) + (fv + bv).powi(2);
            let mags = fu * fu + fv * fv + bu * bu + bv * bv;
            if sum > 0.01 * mags + 0.5 {
                continue;
            }
            let (xl, xr) = (x.saturating_sub(1), (x + 1).min(w - 1));
            let (yu, yd) = (y.saturating_sub(1), (y + 1).min(h - 1));
            let mut grad = 0.0;
            for k in 0..2 {
                let gx = d(&|xx| back.at(xx, y)[k], xl, xr);
                let gy = d(&|yy| back.at(x, yy)[k], yu, yd);
                grad += gx * gx + gy * gy;
            }
            if grad > 0.01 * (bu * bu + bv * bv) + 0.002 {
                continue;
            }
            data[y * w + x] = 1.0;
        }
    }
    Mask {
        width: w,
        height: h,
        data,
    }
}

/// The warping error of one pair (Lai et al. 2018): with frames in 0–1,
/// `Σ_p M(p) ‖V_t(p) − ω(V_{t−1})(p)‖² / Σ_p M(p)`, the squared norm over
/// the three channels; `None` when the mask is empty.
pub fn warping_error(current: &Picture, warped_earlier: &Picture, mask: &Mask) -> Option<f64> {
    let mut num = 0.0;
    let mut den = 0.0;
    for ((a, b), m) in current
        .rgb
        .chunks_exact(3)
        .zip(warped_earlier.rgb.chunks_exact(3))
        .zip(&mask.data)
    {
        let d: f64 = (0..3).map(|c| ((a[c] - b[c]) as f64 / 255.0).powi(2)).sum();
        num += *m as f64 * d;
        den += *m as f64;
    }
    (den > 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Picture {
        Picture {
            width: w as u32,
            height: h as u32,
            rgb: (0..w * h)
                .flat_map(|i| {
                    let (x, y) = ((i % w) as f32, (i / w) as f32);
                    [x * 10.0, y * 10.0, 100.0]
                })
                .collect(),
        }
    }

    #[test]
    fn warping_a_shift_moves_the_pixels() {
        let p = ramp(8, 6);
        let out = warp_picture(&p, &Flow::constant(8, 6, 2.0, 1.0));
        // out(x, y) = p(x + 2, y + 1) inside.
        let px =
            |q: &Picture, x: usize, y: usize| q.rgb[3 * (y * 8 + x)..3 * (y * 8 + x) + 3].to_vec();
        assert_eq!(px(&out, 1, 1), px(&p, 3, 2));
        let half = warp_picture(&p, &Flow::constant(8, 6, 0.5, 0.0));
        assert_eq!(px(&half, 2, 0), vec![25.0, 0.0, 100.0]);
    }

    #[test]
    fn consistent_flows_are_certain_and_pixels_from_outside_are_not() {
        let (w, h) = (10, 6);
        let c = certainty(
            &Flow::constant(w, h, 3.0, 0.0),
            &Flow::constant(w, h, -3.0, 0.0),
        );
        for y in 0..h {
            for x in 0..w {
                let want = if x + 3 < w { 1.0 } else { 0.0 };
                assert_eq!(c.data[y * w + x], want, "({x}, {y})");
            }
        }
        // Flows that disagree: disoccluded everywhere.
        let c = certainty(
            &Flow::constant(w, h, 1.0, 0.0),
            &Flow::constant(w, h, 1.0, 0.0),
        );
        assert!(c.data.iter().all(|v| *v == 0.0));
        // A motion boundary: the backward flow jumps between two columns.
        let mut back = Flow::constant(w, h, 0.0, 0.0);
        let mut fwd = back.clone();
        for y in 0..h {
            for x in 5..w {
                back.uv[y * w + x] = [0.0, 2.0];
                fwd.uv[y * w + x] = [0.0, -2.0];
            }
        }
        let c = certainty(&back, &fwd);
        assert_eq!(c.data[2 * w + 4], 0.0);
        assert_eq!(c.data[2 * w + 5], 0.0);
        assert_eq!(c.data[2 * w + 1], 1.0);
    }

    #[test]
    fn warping_error_is_the_masked_mean_squared_difference() {
        let a = ramp(4, 2);
        let mut b = a.clone();
        b.rgb[0] += 51.0; // pixel 0, red: 0.2
        let mut m = Mask {
            width: 4,
            height: 2,
            data: vec![1.0; 8],
        };
        assert!((warping_error(&a, &b, &m).unwrap() - 0.04 / 8.0).abs() < 1e-9);
        m.data[0] = 0.0;
        assert_eq!(warping_error(&a, &b, &m), Some(0.0));
        m.data.fill(0.0);
        assert_eq!(warping_error(&a, &b, &m), None);
    }
}
