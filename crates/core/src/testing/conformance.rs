//! Conformance checks written once and run against every backend: each
//! backend's crate calls these from its tests (and the front-end's parity
//! suite calls them for every compiled backend).
//!
//! The yardstick is [`crate::testing::reference`] — an independent f64
//! implementation — so tolerances only have to absorb float32 arithmetic in
//! a different summation order.

use crate::backend::{Backend, Pooling};
use crate::layers::LayerId;
use crate::mask::Mask;
use crate::objective::{
    style_grams, Loss, LossParts, Normalization, Objective, ObjectiveSpec, StyleTerm,
};
use crate::pixel::CaffeImage;
use crate::temporal::{closest_first, Temporal, TemporalFrame};
use crate::testing::reference;
use crate::vgg::{FeatureExtractor, Vgg};
use crate::weights::Vgg19Weights;

/// Relative error allowed on activations (f32 vs f64, short sums).
pub const ACTIVATION_TOL: f64 = 1e-5;
/// Relative error allowed on each loss part (f32 sums over many terms).
pub const LOSS_TOL: f64 = 1e-4;
/// `‖a − b‖ / ‖b‖` allowed on the gradient (two f32 passes through the net).
pub const GRADIENT_TOL: f64 = 1e-4;
/// Recomputing activations runs the same primitives on the same inputs as
/// keeping them: the same loss and gradient up to what a backend's
/// nondeterminism between two calls can give (0 on the CPU backends; a GPU
/// library may pick another algorithm per call).
pub const RECOMPUTE_TOL: f64 = 1e-6;
/// Recomputing block 1 a stripe at a time runs the same primitives on
/// smaller maps: a backend may cut its sums otherwise (its tiles, its
/// algorithm for the shape), so the f32 roundings differ (7.7e-7 on the
/// gradient with candle, 32 channels), but nothing else: a stripe's Gram
/// gradient scaled to the wrong pixel count gave 4e-5.
pub const STRIPES_TOL: f64 = 1e-5;

/// `‖a − b‖ / ‖b‖` (0 when both are zero).
pub fn rel_l2<A: Copy + Into<f64>, B: Copy + Into<f64>>(a: &[A], b: &[B]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| ((*x).into() - (*y).into()).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| (*y).into().powi(2)).sum();
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// `|a − b| / |b|` (`|a|` when `b` is zero).
pub fn rel(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        a.abs()
    } else {
        (a - b).abs() / b.abs()
    }
}

/// One evaluation problem: weights, objective, images.
pub struct Case {
    /// Printed in every report line.
    pub name: String,
    /// The network (seeded synthetic, or the real VGG19).
    pub weights: Vgg19Weights,
    /// Layers, weights, pooling and normalisation.
    pub spec: ObjectiveSpec,
    /// The content image.
    pub content: CaffeImage,
    /// The style images with their blend weights.
    pub styles: Vec<(CaffeImage, f64)>,
    /// One optional spatial mask per style (content-sized), or empty: none.
    pub masks: Vec<Option<Mask>>,
    /// Video's temporal term (no earlier frame: none).
    pub temporal: Temporal,
    /// The point at which the objective is evaluated.
    pub x: CaffeImage,
}

impl Case {
    /// The case's objective on `net` (masked styles as separate terms).
    pub fn objective<'n, B: Backend>(&self, net: &'n Vgg<B>) -> crate::Result<Objective<'n, B>> {
        let objective = self.objective_without_temporal(net)?;
        if self.temporal.frames.is_empty() {
            return Ok(objective);
        }
        objective.with_temporal(&self.temporal)
    }

    fn objective_without_temporal<'n, B: Backend>(
        &self,
        net: &'n Vgg<B>,
    ) -> crate::Result<Objective<'n, B>> {
        if self.masks.is_empty() {
            return Objective::new(net, self.spec.clone(), &self.content, &self.styles);
        }
        let terms = self
            .styles
            .iter()
            .zip(&self.masks)
            .map(|((img, w), mask)| {
                Ok(StyleTerm {
                    grams: style_grams(net, &self.spec, img)?,
                    weight: *w,
                    mask: mask.clone(),
                })
            })
            .collect::<crate::Result<Vec<_>>>()?;
        Objective::with_styles(net, self.spec.clone(), &self.content, terms)
    }
}

/// Small seeded cases covering max/avg pooling, pre/post-ReLU and pooling
/// layers, several style images with blend weights, spatial masks, odd sizes.
pub fn tiny_cases() -> Vec<Case> {
    let l = |n: &str| LayerId::parse(n).expect("valid layer");
    // Pre- and post-ReLU, pooling, shallow and deep, unequal weights.
    let style_layers = vec![
        (l("relu1_1"), 1.0),
        (l("pool1"), 0.5),
        (l("conv3_2"), 2.0),
        (l("relu5_1"), 1.0),
    ];
    let mut cases = Vec::new();
    for (i, pooling) in [Pooling::Max, Pooling::Avg].into_iter().enumerate() {
        let seed = 10 + i as u64;
        cases.push(Case {
            name: format!("synthetic {pooling:?}, two styles, mixed layers"),
            weights: Vgg19Weights::synthetic(seed, [6, 8, 8, 12, 12]),
            spec: ObjectiveSpec {
                content_layers: vec![(l("relu4_2"), 1.0), (l("conv2_1"), 0.3)],
                style_layers: style_layers.clone(),
                content_weight: 5.0,
                style_weight: 100.0,
                tv_weight: 1e-3,
                pooling,
                normalization: Normalization::Jcjohnson,
            },
            content: CaffeImage::noise(37, 34, seed),
            styles: vec![
                (CaffeImage::noise(40, 32, seed + 100), 0.7),
                (CaffeImage::noise(33, 35, seed + 200), 0.3),
            ],
            masks: Vec::new(),
            temporal: Temporal::default(),
            x: CaffeImage::noise(37, 34, seed + 300),
        });
    }
    // Spatial masks: a soft mask with a black band, a hard one, and one style
    // left unmasked (folded path and masked terms together).
    let (w, h) = (37, 34);
    let soft = Mask {
        width: w,
        height: h,
        data: (0..w * h)
            .map(|i| ((i % w) as f32 / 20.0 - 0.3).clamp(0.0, 1.0))
            .collect(),
    };
    let hard = Mask {
        width: w,
        height: h,
        data: (0..w * h)
            .map(|i| if i / w < h / 2 { 1.0 } else { 0.0 })
            .collect(),
    };
    cases.push(Case {
        name: "synthetic Max, three styles, two masked".into(),
        weights: Vgg19Weights::synthetic(12, [6, 8, 8, 12, 12]),
        spec: ObjectiveSpec {
            content_layers: vec![(l("relu4_2"), 1.0)],
            style_layers,
            content_weight: 5.0,
            style_weight: 100.0,
            tv_weight: 1e-3,
            pooling: Pooling::Max,
            normalization: Normalization::Jcjohnson,
        },
        content: CaffeImage::noise(w, h, 12),
        styles: vec![
            (CaffeImage::noise(40, 32, 112), 0.5),
            (CaffeImage::noise(33, 35, 212), 0.3),
            (CaffeImage::noise(30, 30, 312), 0.2),
        ],
        masks: vec![Some(soft.clone()), None, Some(hard.clone())],
        temporal: Temporal::default(),
        x: CaffeImage::noise(w, h, 412),
    });
    // The paper's normalisation (½Σ content, unnormalised Gram matrices,
    // 1/(4N²M²) style), average pooling, two blended styles of other sizes
    // than the content, one of them masked, layer weights 1/(#layers).
    cases.push(Case {
        name: "synthetic Avg, gatys normalisation, two styles, one masked".into(),
        weights: Vgg19Weights::synthetic(13, [6, 8, 8, 12, 12]),
        spec: ObjectiveSpec {
            content_layers: vec![(l("relu4_2"), 1.0), (l("conv2_1"), 0.3)],
            style_layers: ["relu1_1", "pool1", "conv3_2", "relu5_1"]
                .iter()
                .map(|n| (l(n), 0.25))
                .collect(),
            content_weight: 1.0,
            style_weight: 1e3,
            tv_weight: 1e-3,
            pooling: Pooling::Avg,
            normalization: Normalization::Gatys,
        },
        content: CaffeImage::noise(w, h, 13),
        styles: vec![
            (CaffeImage::noise(40, 32, 113), 0.6),
            (CaffeImage::noise(33, 35, 213), 0.4),
        ],
        masks: vec![None, Some(soft.clone())],
        temporal: Temporal::default(),
        x: CaffeImage::noise(w, h, 413),
    });
    // Video: the temporal term over three earlier frames, their certainties
    // (soft, hard, everywhere) taken closest first, with Ruder et al.'s weight.
    let everywhere = Mask {
        width: w,
        height: h,
        data: vec![1.0; w * h],
    };
    let certainties = closest_first(&[hard, soft, everywhere]);
    cases.push(Case {
        name: "synthetic Max, one style, temporal term over three earlier frames".into(),
        weights: Vgg19Weights::synthetic(14, [6, 8, 8, 12, 12]),
        spec: ObjectiveSpec {
            content_layers: vec![(l("relu4_2"), 1.0)],
            style_layers: vec![(l("relu1_1"), 1.0), (l("relu3_1"), 1.0)],
            ..ObjectiveSpec::default()
        },
        content: CaffeImage::noise(w, h, 14),
        styles: vec![(CaffeImage::noise(40, 32, 114), 1.0)],
        masks: Vec::new(),
        temporal: Temporal {
            weight: 1e3,
            frames: certainties
                .into_iter()
                .enumerate()
                .map(|(i, certainty)| TemporalFrame {
                    warped: CaffeImage::noise(w, h, 514 + i as u64),
                    certainty,
                })
                .collect(),
        },
        x: CaffeImage::noise(w, h, 414),
    });
    cases
}

/// What a backend produced on a case, next to the reference.
#[derive(Debug)]
pub struct Comparison {
    /// The backend's loss parts.
    pub parts: LossParts,
    /// The reference's loss parts.
    pub reference: LossParts,
    /// `‖g − g_ref‖/‖g_ref‖` on the gradient.
    pub gradient_rel: f64,
    /// `‖a − a_ref‖/‖a_ref‖` per compared layer.
    pub activation_rel: Vec<(LayerId, f64)>,
    /// The same objective with activations recomputed in the backward pass
    /// (`Objective::recompute`) against keeping them: relative difference
    /// of the total loss, and of the gradient.
    pub recompute_rel: (f64, f64),
}

impl Comparison {
    /// Every figure within the tolerances above.
    pub fn check(&self) -> Result<(), String> {
        let mut errs = Vec::new();
        for (what, a, b) in [
            ("content", self.parts.content, self.reference.content),
            ("style", self.parts.style, self.reference.style),
            ("tv", self.parts.tv, self.reference.tv),
            ("temporal", self.parts.temporal, self.reference.temporal),
            ("total", self.parts.total, self.reference.total),
        ] {
            if rel(a, b) > LOSS_TOL {
                errs.push(format!(
                    "{what}: {a} vs reference {b} (rel {:.2e})",
                    rel(a, b)
                ));
            }
        }
        if self.gradient_rel.is_nan() || self.gradient_rel > GRADIENT_TOL {
            errs.push(format!("gradient: rel {:.2e}", self.gradient_rel));
        }
        for (l, r) in &self.activation_rel {
            if r.is_nan() || *r > ACTIVATION_TOL {
                errs.push(format!("activation {l}: rel {r:.2e}"));
            }
        }
        let (loss, grad) = self.recompute_rel;
        if !(loss <= RECOMPUTE_TOL && grad <= RECOMPUTE_TOL) {
            errs.push(format!(
                "recomputing vs keeping activations: total rel {loss:.2e}, gradient rel {grad:.2e}"
            ));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("; "))
        }
    }
}

/// Evaluate `case` on `backend` and on the reference.
pub fn compare<B: Backend>(backend: B, case: &Case) -> crate::Result<Comparison> {
    compare_with_weights(backend, case, &case.weights)
}

/// As [`compare`], but the backend runs with `backend_weights` while the
/// reference keeps the case's: shows that the checks can fail.
pub fn compare_with_weights<B: Backend>(
    backend: B,
    case: &Case,
    backend_weights: &Vgg19Weights,
) -> crate::Result<Comparison> {
    let net = Vgg::new(backend, backend_weights, case.spec.pooling)?;
    let objective = case.objective(&net)?;
    let b = net.backend();
    let x = b.upload(&case.x.data, case.x.shape())?;
    let (parts, grad) = objective.evaluate(&x)?;
    let grad = b.download(&grad)?;
    let (r_parts, r_grad) = case.objective(&net)?.recompute(true).evaluate(&x)?;
    let recompute_rel = (
        rel(r_parts.total, parts.total),
        rel_l2(&b.download(&r_grad)?, &grad),
    );
    let (reference, ref_grad) = reference::evaluate_temporal(
        &case.weights,
        &case.spec,
        &case.content,
        &case.styles,
        &case.masks,
        &case.temporal,
        &case.x,
    );

    let layers: Vec<LayerId> = crate::layers::table()
        .iter()
        .map(|l| l.id)
        .filter(|l| Some(*l) <= case.spec.deepest())
        .collect();
    let ours = net.features(&x, &layers)?;
    let theirs = reference::features(&case.weights, &case.x, &layers, case.spec.pooling);
    let activation_rel = layers
        .iter()
        .zip(ours.iter().zip(&theirs))
        .map(|(l, (a, r))| Ok((*l, rel_l2(&b.download(a)?, r))))
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(Comparison {
        parts,
        reference,
        gradient_rel: rel_l2(&grad, &ref_grad),
        activation_rel,
        recompute_rel,
    })
}

/// Keeping and recomputing activations on a network wide enough (32
/// channels in block 1) that the recomputation also drops relu1_1 during
/// block 1's backward pass (`crate::vgg`), with the default objective and
/// a masked style: the same loss parts and gradient. Returns the relative
/// differences of the total and the gradient.
pub fn recompute_gap<B: Backend>(backend: B) -> crate::Result<(f64, f64)> {
    recompute_gap_at(backend, 36, 28, None, false)
}

/// [`recompute_gap`] on a `w×h` picture, the recomputing pass taking block
/// 1 a stripe at a time once its map holds more than `stripe_floats`
/// values (`crate::vgg::Vgg::with_stripe_floats`), with a second content
/// layer at relu1_1 (its gradient handed in whole, cut per stripe) when
/// `content_at_relu1_1`.
pub fn recompute_gap_at<B: Backend>(
    backend: B,
    w: usize,
    h: usize,
    stripe_floats: Option<usize>,
    content_at_relu1_1: bool,
) -> crate::Result<(f64, f64)> {
    let weights = Vgg19Weights::synthetic(21, [32, 16, 16, 16, 16]);
    let mut spec = ObjectiveSpec::default();
    if content_at_relu1_1 {
        let relu1_1 = LayerId::parse("relu1_1").expect("a VGG19 layer");
        spec.content_layers.push((relu1_1, 0.5));
    }
    let mut net = Vgg::new(backend, &weights, spec.pooling)?;
    if let Some(floats) = stripe_floats {
        net = net.with_stripe_floats(floats);
    }
    let b = net.backend();
    let content = CaffeImage::noise(w, h, 5);
    let mut mask = Mask {
        width: w,
        height: h,
        data: vec![1.0; w * h],
    };
    mask.data[..w * h / 2].fill(0.25);
    let terms = vec![
        StyleTerm {
            grams: style_grams(&net, &spec, &CaffeImage::noise(30, 30, 6))?,
            weight: 0.5,
            mask: None,
        },
        StyleTerm {
            grams: style_grams(&net, &spec, &CaffeImage::noise(26, 31, 7))?,
            weight: 0.5,
            mask: Some(mask),
        },
    ];
    let objective = Objective::with_styles(&net, spec, &content, terms)?;
    let x = b.upload(&CaffeImage::noise(w, h, 8).data, [3, h, w])?;
    let (kept, g_kept) = objective.evaluate(&x)?;
    let objective = objective.recompute(true);
    let (again, g_again) = objective.evaluate(&x)?;
    Ok((
        rel(again.total, kept.total),
        rel_l2(&b.download(&g_again)?, &b.download(&g_kept)?),
    ))
}

/// Run every tiny case; panics with every failure listed.
pub fn assert_matches_reference<B: Backend + Clone>(backend: B) {
    let mut failures = Vec::new();
    // Block 1 whole, and in stripes of 4 rows over an odd height (the
    // last stripe takes the odd row).
    let striped = if backend.rows_on_device() {
        "recomputing block 1 in stripes vs keeping"
    } else {
        "recomputing (block 1 whole: no stripes on this backend's device) vs keeping"
    };
    let gaps = [
        (
            "recomputing vs keeping",
            recompute_gap(backend.clone()),
            RECOMPUTE_TOL,
        ),
        (
            striped,
            recompute_gap_at(backend.clone(), 36, 29, Some(32 * 36 * 4), false),
            STRIPES_TOL,
        ),
        (
            "with a content layer at relu1_1 too",
            recompute_gap_at(backend.clone(), 36, 29, Some(32 * 36 * 4), true),
            STRIPES_TOL,
        ),
    ];
    for (what, gap, tol) in gaps {
        match gap {
            Ok((loss, grad)) => {
                eprintln!("{what} (block 1 of 32 channels): total rel {loss:.1e}, gradient rel {grad:.1e}");
                if !(loss <= tol && grad <= tol) {
                    failures.push(format!(
                        "{what}: total rel {loss:.2e}, gradient rel {grad:.2e}"
                    ));
                }
            }
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    for case in tiny_cases() {
        match compare(backend.clone(), &case) {
            Ok(c) => {
                eprintln!(
                    "{}: gradient rel {:.1e}, total rel {:.1e}, worst activation rel {:.1e}, recomputed vs kept {:.1e} / {:.1e}",
                    case.name,
                    c.gradient_rel,
                    rel(c.parts.total, c.reference.total),
                    c.activation_rel.iter().map(|r| r.1).fold(0.0, f64::max),
                    c.recompute_rel.0,
                    c.recompute_rel.1
                );
                if let Err(e) = c.check() {
                    failures.push(format!("{}: {e}", case.name));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The check can fail: `backend` run with one weight of the first tiny case
/// nudged by 0.01 must miss the reference's gradient. Panics otherwise.
pub fn assert_perturbed_weight_is_caught<B: Backend>(backend: B) {
    let case = tiny_cases().remove(0);
    let mut perturbed = case.weights.clone();
    perturbed.convs[3].weight[5] += 0.01;
    let c = compare_with_weights(backend, &case, &perturbed).expect("the backend runs");
    let err = c
        .check()
        .expect_err("a perturbed weight must fail the check");
    assert!(err.contains("gradient"), "{err}");
}
