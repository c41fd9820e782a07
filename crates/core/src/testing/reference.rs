//! An independent, deliberately naive implementation of the canonical
//! objective and its gradient, in f64, with direct-loop convolutions.
//!
//! It shares nothing with [`crate::vgg`] / [`crate::objective`] but the layer
//! table and the weights, so that the backends (which all run the core
//! algorithm) can be checked against something written differently: each
//! style image is compared on its own (no blending identity), every layer's
//! output is kept, and nothing is fused. Its own gradient is checked against
//! finite differences. Slow: for tiny images and tests only.

use crate::backend::Pooling;
use crate::layers::{table, LayerKind};
use crate::mask::Mask;
use crate::objective::{LossParts, Normalization, ObjectiveSpec};
use crate::pixel::CaffeImage;
use crate::temporal::Temporal;
use crate::weights::{ConvWeights, Vgg19Weights};

#[derive(Clone, Debug)]
struct T {
    c: usize,
    h: usize,
    w: usize,
    d: Vec<f64>,
}

impl T {
    fn zeros(c: usize, h: usize, w: usize) -> T {
        T {
            c,
            h,
            w,
            d: vec![0.0; c * h * w],
        }
    }
    fn at(&self, c: usize, y: usize, x: usize) -> f64 {
        self.d[(c * self.h + y) * self.w + x]
    }
}

fn conv(x: &T, k: &ConvWeights) -> T {
    let mut y = T::zeros(k.out_channels, x.h, x.w);
    for o in 0..k.out_channels {
        for yy in 0..x.h {
            for xx in 0..x.w {
                let mut s = k.bias[o] as f64;
                for i in 0..k.in_channels {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (sy, sx) = (yy + ky, xx + kx);
                            if sy < 1 || sx < 1 || sy > x.h || sx > x.w {
                                continue;
                            }
                            let wv = k.weight[((o * k.in_channels + i) * 3 + ky) * 3 + kx] as f64;
                            s += wv * x.at(i, sy - 1, sx - 1);
                        }
                    }
                }
                y.d[(o * x.h + yy) * x.w + xx] = s;
            }
        }
    }
    y
}

fn conv_back(dy: &T, k: &ConvWeights) -> T {
    let mut dx = T::zeros(k.in_channels, dy.h, dy.w);
    for o in 0..k.out_channels {
        for yy in 0..dy.h {
            for xx in 0..dy.w {
                let g = dy.at(o, yy, xx);
                if g == 0.0 {
                    continue;
                }
                for i in 0..k.in_channels {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (sy, sx) = (yy + ky, xx + kx);
                            if sy < 1 || sx < 1 || sy > dy.h || sx > dy.w {
                                continue;
                            }
                            let wv = k.weight[((o * k.in_channels + i) * 3 + ky) * 3 + kx] as f64;
                            dx.d[(i * dy.h + sy - 1) * dy.w + sx - 1] += wv * g;
                        }
                    }
                }
            }
        }
    }
    dx
}

fn window(y: usize, x: usize) -> [(usize, usize); 4] {
    [
        (2 * y, 2 * x),
        (2 * y, 2 * x + 1),
        (2 * y + 1, 2 * x),
        (2 * y + 1, 2 * x + 1),
    ]
}

fn pool(x: &T, kind: Pooling) -> T {
    let mut y = T::zeros(x.c, x.h / 2, x.w / 2);
    for c in 0..x.c {
        for yy in 0..y.h {
            for xx in 0..y.w {
                let vals = window(yy, xx).map(|(a, b)| x.at(c, a, b));
                y.d[(c * y.h + yy) * y.w + xx] = match kind {
                    Pooling::Max => vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                    Pooling::Avg => vals.iter().sum::<f64>() / 4.0,
                };
            }
        }
    }
    y
}

fn pool_back(x: &T, dy: &T, kind: Pooling) -> T {
    let mut dx = T::zeros(x.c, x.h, x.w);
    for c in 0..x.c {
        for yy in 0..dy.h {
            for xx in 0..dy.w {
                let g = dy.at(c, yy, xx);
                let win = window(yy, xx);
                match kind {
                    Pooling::Max => {
                        let mut best = win[0];
                        for &(a, b) in &win[1..] {
                            if x.at(c, a, b) > x.at(c, best.0, best.1) {
                                best = (a, b);
                            }
                        }
                        dx.d[(c * x.h + best.0) * x.w + best.1] += g;
                    }
                    Pooling::Avg => {
                        for (a, b) in win {
                            dx.d[(c * x.h + a) * x.w + b] += g / 4.0;
                        }
                    }
                }
            }
        }
    }
    dx
}

/// Every layer's output up to `deepest` (index into the table).
fn forward(w: &Vgg19Weights, x: &T, deepest: usize, pooling: Pooling) -> Vec<T> {
    let mut outs: Vec<T> = Vec::with_capacity(deepest + 1);
    for l in &table()[..=deepest] {
        let input = outs.last().unwrap_or(x);
        let y = match l.kind {
            LayerKind::Conv { conv: k } => conv(input, &w.convs[k]),
            LayerKind::Relu { .. } => T {
                d: input.d.iter().map(|v| v.max(0.0)).collect(),
                ..input.clone()
            },
            LayerKind::Pool { .. } => pool(input, pooling),
        };
        outs.push(y);
    }
    outs
}

/// `F Fᵀ / div`.
fn gram(f: &T, div: f64) -> Vec<f64> {
    let m = f.h * f.w;
    let mut g = vec![0.0; f.c * f.c];
    for a in 0..f.c {
        for b in 0..f.c {
            g[a * f.c + b] = (0..m).map(|k| f.d[a * m + k] * f.d[b * m + k]).sum::<f64>() / div;
        }
    }
    g
}

fn to_t(img: &CaffeImage) -> T {
    T {
        c: 3,
        h: img.height,
        w: img.width,
        d: img.data.iter().map(|v| *v as f64).collect(),
    }
}

/// Loss parts and gradient (caffe space, `C×H×W`) at `x`. `styles` carry
/// blend weights that already sum to 1.
pub fn evaluate(
    weights: &Vgg19Weights,
    spec: &ObjectiveSpec,
    content: &CaffeImage,
    styles: &[(CaffeImage, f64)],
    x: &CaffeImage,
) -> (LossParts, Vec<f64>) {
    evaluate_masked(weights, spec, content, styles, &[], x)
}

/// The mask under an `h×w` feature map behind `pools` pooling layers: each
/// feature pixel gets the mean of the `2^pools`-square block of image pixels
/// it stands for.
fn mask_at(mask: &Mask, h: usize, w: usize, pools: usize) -> Vec<f64> {
    let block = 1usize << pools;
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut sum = 0.0;
            for yy in 0..block {
                for xx in 0..block {
                    sum += mask.data[(y * block + yy) * mask.width + x * block + xx] as f64;
                }
            }
            out[y * w + x] = sum / (block * block) as f64;
        }
    }
    out
}

/// As [`evaluate`], with an optional mask (at the content's size) per style
/// image; `masks` may be empty (no masks) or one entry per style.
pub fn evaluate_masked(
    weights: &Vgg19Weights,
    spec: &ObjectiveSpec,
    content: &CaffeImage,
    styles: &[(CaffeImage, f64)],
    masks: &[Option<Mask>],
    x: &CaffeImage,
) -> (LossParts, Vec<f64>) {
    let deepest = spec.deepest().expect("some layer").0;
    let xt = to_t(x);
    let outs = forward(weights, &xt, deepest, spec.pooling);
    let c_outs = forward(weights, &to_t(content), deepest, spec.pooling);
    let s_outs: Vec<Vec<T>> = styles
        .iter()
        .map(|(s, _)| forward(weights, &to_t(s), deepest, spec.pooling))
        .collect();

    let mut parts = LossParts::default();
    let mut grads: Vec<Option<T>> = vec![None; deepest + 1];
    let mut add_grad = |l: usize, g: T| match &mut grads[l] {
        Some(acc) => acc.d.iter_mut().zip(&g.d).for_each(|(a, b)| *a += b),
        slot @ None => *slot = Some(g),
    };
    // The two normalisations, written out as their papers state them:
    //   jcjohnson: content mean((F − C)²); G = FFᵀ/(N·M); style mean((G − A)²) = Σ/N²
    //   gatys: content ½Σ(F − C)²; G = FFᵀ; A = (M/M_s)·F_sF_sᵀ; style Σ(G − A)²/(4N²M²)
    let gatys = spec.normalization == Normalization::Gatys;
    for (layer, lw) in &spec.content_layers {
        let (f, t) = (&outs[layer.0], &c_outs[layer.0]);
        // Σ d² times `per`.
        let per = if gatys { 0.5 } else { 1.0 / f.d.len() as f64 };
        let mut g = T::zeros(f.c, f.h, f.w);
        for i in 0..f.d.len() {
            let d = f.d[i] - t.d[i];
            parts.content += lw * d * d * per;
            g.d[i] = spec.content_weight * lw * 2.0 * d * per;
        }
        add_grad(layer.0, g);
    }
    for (layer, lw) in &spec.style_layers {
        let f = &outs[layer.0];
        let c2 = (f.c * f.c) as f64;
        let m = f.h * f.w;
        // The output's Gram divisor, and the factor on Σ (G − A)².
        let (n, per) = if gatys {
            (1.0, 1.0 / (4.0 * c2 * (m * m) as f64))
        } else {
            ((f.c * m) as f64, 1.0 / c2)
        };
        let gx = gram(f, n);
        let mut dgram = vec![0.0; f.c * f.c];
        let mut g = T::zeros(f.c, f.h, f.w);
        for (si, ((_, bk), s_out)) in styles.iter().zip(&s_outs).enumerate() {
            let fs = &s_out[layer.0];
            let ms = (fs.h * fs.w) as f64;
            let gs = if gatys {
                gram(fs, ms / m as f64)
            } else {
                gram(fs, f.c as f64 * ms)
            };
            if let Some(mask) = masks.get(si).and_then(|m| m.as_ref()) {
                // Masked: its own Gram matrix and gradient.
                let mk = mask_at(mask, f.h, f.w, layer.pools_up_to());
                let area: f64 = mk.iter().sum();
                let nm = if gatys {
                    area / m as f64
                } else {
                    f.c as f64 * area
                };
                let mut gm = vec![0.0; f.c * f.c];
                for a in 0..f.c {
                    for b in 0..f.c {
                        gm[a * f.c + b] = (0..m)
                            .map(|k| mk[k] * mk[k] * f.d[a * m + k] * f.d[b * m + k])
                            .sum::<f64>()
                            / nm;
                    }
                }
                let mut dg = vec![0.0; f.c * f.c];
                for i in 0..gm.len() {
                    let d = gm[i] - gs[i];
                    parts.style += bk * lw * d * d * per;
                    dg[i] = spec.style_weight * bk * lw * 2.0 * d * per;
                }
                for a in 0..f.c {
                    for b in 0..f.c {
                        let s = dg[a * f.c + b] + dg[b * f.c + a];
                        for (k, mv) in mk.iter().enumerate() {
                            g.d[a * m + k] += s * mv * mv * f.d[b * m + k] / nm;
                        }
                    }
                }
                continue;
            }
            for i in 0..gx.len() {
                let d = gx[i] - gs[i];
                parts.style += bk * lw * d * d * per;
                dgram[i] += spec.style_weight * bk * lw * 2.0 * d * per;
            }
        }
        for a in 0..f.c {
            for b in 0..f.c {
                let s = dgram[a * f.c + b] + dgram[b * f.c + a];
                for k in 0..m {
                    g.d[a * m + k] += s * f.d[b * m + k] / n;
                }
            }
        }
        add_grad(layer.0, g);
    }

    // Backward through the layers, from the deepest.
    let mut g: Option<T> = None;
    for l in (0..=deepest).rev() {
        if let Some(gl) = grads[l].take() {
            g = Some(match g {
                None => gl,
                Some(mut acc) => {
                    acc.d.iter_mut().zip(&gl.d).for_each(|(a, b)| *a += b);
                    acc
                }
            });
        }
        let Some(gc) = g.take() else { continue };
        let input = if l == 0 { &xt } else { &outs[l - 1] };
        g = Some(match table()[l].kind {
            LayerKind::Conv { conv: k } => conv_back(&gc, &weights.convs[k]),
            LayerKind::Relu { .. } => T {
                d: gc
                    .d
                    .iter()
                    .zip(&input.d)
                    .map(|(g, v)| if *v > 0.0 { *g } else { 0.0 })
                    .collect(),
                ..gc
            },
            LayerKind::Pool { .. } => pool_back(input, &gc, spec.pooling),
        });
    }
    let mut grad = g.map(|t| t.d).unwrap_or_else(|| vec![0.0; xt.d.len()]);

    // Total variation.
    let n = xt.d.len() as f64;
    let (h, w) = (xt.h, xt.w);
    for c in 0..3 {
        for y in 0..h {
            for xx in 0..w {
                let i = (c * h + y) * w + xx;
                for (ok, j) in [(y + 1 < h, i + w), (xx + 1 < w, i + 1)] {
                    if ok {
                        let d = xt.d[j] - xt.d[i];
                        parts.tv += d * d / n;
                        grad[j] += spec.tv_weight * 2.0 * d / n;
                        grad[i] -= spec.tv_weight * 2.0 * d / n;
                    }
                }
            }
        }
    }
    parts.total = spec.content_weight * parts.content
        + spec.style_weight * parts.style
        + spec.tv_weight * parts.tv;
    (parts, grad)
}

/// As [`evaluate_masked`], plus video's temporal term (`crate::temporal`)
/// written out literally: `Σ_j Σ_{c,y,x} c_j[y,x] (x − ω_j)² / (C·H·W)`,
/// times its weight in the total.
pub fn evaluate_temporal(
    weights: &Vgg19Weights,
    spec: &ObjectiveSpec,
    content: &CaffeImage,
    styles: &[(CaffeImage, f64)],
    masks: &[Option<Mask>],
    temporal: &Temporal,
    x: &CaffeImage,
) -> (LossParts, Vec<f64>) {
    let (mut parts, mut grad) = evaluate_masked(weights, spec, content, styles, masks, x);
    let n = x.data.len() as f64;
    for f in &temporal.frames {
        for ch in 0..3 {
            for y in 0..x.height {
                for xx in 0..x.width {
                    let i = (ch * x.height + y) * x.width + xx;
                    let c = f.certainty.data[y * x.width + xx] as f64;
                    let d = x.data[i] as f64 - f.warped.data[i] as f64;
                    parts.temporal += c * d * d / n;
                    grad[i] += temporal.weight * 2.0 * c * d / n;
                }
            }
        }
    }
    parts.total += temporal.weight * parts.temporal;
    (parts, grad)
}

/// Outputs of the given layers (flattened `C×H×W`), for activation parity.
pub fn features(
    weights: &Vgg19Weights,
    x: &CaffeImage,
    layers: &[crate::layers::LayerId],
    pooling: Pooling,
) -> Vec<Vec<f64>> {
    let deepest = layers.iter().max().expect("some layer").0;
    let outs = forward(weights, &to_t(x), deepest, pooling);
    layers.iter().map(|l| outs[l.0].d.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::LayerId;

    fn img(w: usize, h: usize, seed: u64) -> CaffeImage {
        CaffeImage::noise(w, h, seed)
    }

    /// Twelve seeded elements of `grad` against central differences of
    /// `total` (step 1e-2), within 1e-4 of the gradient's largest element.
    fn check_finite_differences(
        x: &CaffeImage,
        grad: &[f64],
        seed: u64,
        what: &str,
        total: impl Fn(&CaffeImage) -> f64,
    ) {
        let mut rng = crate::rng::Rng::new(seed);
        let scale = grad.iter().map(|v| v.abs()).fold(0.0, f64::max);
        for _ in 0..12 {
            let i = (rng.next_u64() % x.data.len() as u64) as usize;
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp.data[i] += 1e-2;
            xm.data[i] -= 1e-2;
            let fd = (total(&xp) - total(&xm)) / (xp.data[i] - xm.data[i]) as f64;
            assert!(
                (fd - grad[i]).abs() <= 1e-4 * scale + 1e-6 * fd.abs(),
                "{what}element {i}: finite difference {fd}, gradient {}",
                grad[i]
            );
        }
    }

    /// Masked styles: the reference gradient matches finite differences too
    /// (soft mask with a black region, one masked and one unmasked style), and
    /// an all-white mask gives exactly the unmasked loss.
    #[test]
    fn masked_gradient_matches_finite_differences() {
        for normalization in [Normalization::Jcjohnson, Normalization::Gatys] {
            masked_gradient_matches_finite_differences_with(normalization);
        }
    }

    fn masked_gradient_matches_finite_differences_with(normalization: Normalization) {
        let weights = Vgg19Weights::synthetic(5, [3, 4, 4, 4, 4]);
        let l = |n: &str| LayerId::parse(n).unwrap();
        let spec = ObjectiveSpec {
            content_layers: vec![(l("relu2_1"), 1.0)],
            style_layers: vec![(l("relu1_1"), 1.0), (l("pool1"), 2.0), (l("conv3_1"), 0.7)],
            content_weight: 5.0,
            style_weight: 100.0,
            tv_weight: 0.1,
            pooling: Pooling::Max,
            normalization,
        };
        let (w, h) = (9, 10);
        let content = img(w, h, 1);
        let styles = [(img(8, 12, 2), 0.4), (img(10, 8, 3), 0.6)];
        let mask = Mask {
            width: w,
            height: h,
            data: (0..w * h)
                .map(|i| ((i % w) as f32 / 4.0 - 0.5).clamp(0.0, 1.0))
                .collect(),
        };
        let masks = [Some(mask), None];
        let x = img(w, h, 4);
        let f = |x: &CaffeImage| evaluate_masked(&weights, &spec, &content, &styles, &masks, x);
        let (parts, grad) = f(&x);
        let plain = evaluate(&weights, &spec, &content, &styles, &x).0;
        assert!((parts.style - plain.style).abs() > 1e-6 * plain.style.abs());
        check_finite_differences(&x, &grad, 11, &format!("{normalization:?} "), |x| {
            f(x).0.total
        });
        let white = Mask {
            width: w,
            height: h,
            data: vec![1.0; w * h],
        };
        let all = evaluate_masked(&weights, &spec, &content, &styles, &[Some(white), None], &x).0;
        assert!((all.style - plain.style).abs() <= 1e-9 * plain.style.abs());
    }

    /// The temporal term's reference gradient matches finite differences
    /// (two earlier frames, soft certainties with zeros), and a certainty of
    /// zeros adds nothing.
    #[test]
    fn temporal_gradient_matches_finite_differences() {
        use crate::temporal::{Temporal, TemporalFrame};
        let weights = Vgg19Weights::synthetic(7, [3, 4, 4, 4, 4]);
        let l = |n: &str| LayerId::parse(n).unwrap();
        let spec = ObjectiveSpec {
            content_layers: vec![(l("relu2_1"), 1.0)],
            style_layers: vec![(l("relu1_1"), 1.0)],
            tv_weight: 0.1,
            ..ObjectiveSpec::default()
        };
        let (w, h) = (9, 10);
        let content = img(w, h, 1);
        let styles = [(img(8, 12, 2), 1.0)];
        let certainty = |k: usize| Mask {
            width: w,
            height: h,
            data: (0..w * h)
                .map(|i| (((i + k) % w) as f32 / 5.0 - 0.3).clamp(0.0, 1.0))
                .collect(),
        };
        let temporal = Temporal {
            weight: 1e3,
            frames: vec![
                TemporalFrame {
                    warped: img(w, h, 5),
                    certainty: certainty(0),
                },
                TemporalFrame {
                    warped: img(w, h, 6),
                    certainty: certainty(4),
                },
            ],
        };
        let x = img(w, h, 4);
        let f = |x: &CaffeImage| {
            evaluate_temporal(&weights, &spec, &content, &styles, &[], &temporal, x)
        };
        let (parts, grad) = f(&x);
        let plain = evaluate(&weights, &spec, &content, &styles, &x).0;
        assert!(parts.temporal > 0.0);
        assert!((parts.total - plain.total - 1e3 * parts.temporal).abs() < 1e-9 * parts.total);
        check_finite_differences(&x, &grad, 12, "", |x| f(x).0.total);
        let mut none = temporal.clone();
        for fr in &mut none.frames {
            fr.certainty.data.fill(0.0);
        }
        let zero = evaluate_temporal(&weights, &spec, &content, &styles, &[], &none, &x).0;
        assert_eq!((zero.temporal, zero.total), (0.0, plain.total));
    }

    /// The reference gradient matches central finite differences, through
    /// every kind of layer (pre- and post-ReLU, max and average pooling),
    /// with two blended style images and TV.
    #[test]
    fn gradient_matches_finite_differences() {
        let weights = Vgg19Weights::synthetic(3, [3, 4, 4, 4, 4]);
        for (pooling, normalization) in [
            (Pooling::Max, Normalization::Jcjohnson),
            (Pooling::Avg, Normalization::Jcjohnson),
            (Pooling::Max, Normalization::Gatys),
            (Pooling::Avg, Normalization::Gatys),
        ] {
            let l = |n: &str| LayerId::parse(n).unwrap();
            let spec = ObjectiveSpec {
                content_layers: vec![(l("conv2_2"), 1.0), (l("relu3_1"), 0.5)],
                style_layers: vec![(l("relu1_1"), 1.0), (l("pool2"), 2.0), (l("conv3_1"), 0.7)],
                content_weight: 5.0,
                style_weight: 100.0,
                tv_weight: 0.1,
                pooling,
                normalization,
            };
            let (w, h) = (9, 10);
            let content = img(w, h, 1);
            let styles = [(img(8, 12, 2), 0.25), (img(10, 8, 3), 0.75)];
            let x = img(w, h, 4);
            let (_, grad) = evaluate(&weights, &spec, &content, &styles, &x);
            let mut rng = crate::rng::Rng::new(9);
            for _ in 0..12 {
                let i = (rng.next_u64() % x.data.len() as u64) as usize;
                let eps = 1e-2;
                let mut xp = x.clone();
                xp.data[i] += eps;
                let mut xm = x.clone();
                xm.data[i] -= eps;
                let fp = evaluate(&weights, &spec, &content, &styles, &xp).0.total;
                let fm = evaluate(&weights, &spec, &content, &styles, &xm).0.total;
                // The perturbation is exact in f32 for these magnitudes? Not
                // quite: use the actual step taken.
                let step = (xp.data[i] - xm.data[i]) as f64;
                let fd = (fp - fm) / step;
                let scale = grad.iter().map(|v| v.abs()).fold(0.0, f64::max);
                assert!(
                    (fd - grad[i]).abs() <= 1e-4 * scale + 1e-6 * fd.abs(),
                    "{pooling:?} {normalization:?} element {i}: finite difference {fd}, gradient {}",
                    grad[i]
                );
            }
        }
    }
}
