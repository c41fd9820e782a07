//! The canonical objective of docs/DESIGN.md and its gradient.
//!
//! ```text
//! content(x) = Σ_l cw_l · mean((F_l(x) − F_l(c))²)
//! G_l(x)     = F_l(x) F_l(x)ᵀ / (C_l·H_l·W_l)
//! style(x)   = Σ_k b_k Σ_l sw_l · mean((G_l(x) − G_l(s_k))²)
//! tv(x)      = (Σ vertical diff² + Σ horizontal diff²) / (C·H·W)
//! total(x)   = content_weight·content + style_weight·style + tv_weight·tv
//! ```
//!
//! Several style images are folded into one target per layer: with blend
//! weights summing to `W` (1 when no style is masked),
//! `Σ_k b_k ‖G − A_k‖² = W ‖G − Ā‖² + Σ_k b_k ‖A_k − Ā‖²` where
//! `Ā = Σ_k b_k A_k / W`, so one comparison per layer plus a constant gives
//! exactly the same value and gradient.
//!
//! A style with a spatial mask `m` (`--style-mask`, [`crate::mask`]; `m_l` is
//! the mask taken to layer `l`'s resolution) is a term of its own:
//!
//! ```text
//! G^m_l(x) = (F_l(x) ⊙ m_l)(F_l(x) ⊙ m_l)ᵀ / (C_l · Σ m_l)
//! style   += b_k Σ_l sw_l · mean((G^m_l(x) − G_l(s_k))²)
//! ```
//!
//! (`⊙` multiplies every channel by the mask; the target `G_l(s_k)` is the
//! whole style image's ordinary Gram matrix). Computed with the backend's
//! primitives: `G^m = k · gram(F ⊙ m)` with `k = H_l·W_l / Σ m_l`, and the
//! gradient `dF = m ⊙ (k · gram_backward(F ⊙ m, dG))`.
//!
//! Video adds a temporal term ([`crate::temporal`], [`Objective::with_temporal`]):
//!
//! ```text
//! temporal(x) = Σ_j Σ c_j ⊙ (x − ω_j(x_{t−j}))² / (C·H·W)
//! total(x)   += temporal_weight · temporal(x)
//! ```
//!
//! computed as `mean((√c ⊙ x − √c ⊙ ω)²)` with `Backend::mul_mask` and
//! `Backend::mse_grad`, its gradient `√c ⊙ ∂mean/∂(√c ⊙ x)`.
//!
//! [`Normalization::Gatys`] (`--normalization gatys`) is the objective of
//! Gatys et al. (CVPR 2016, eqs. 1–5) and of the project's Keras write-up,
//! for a layer of `N` channels and `M = H·W` positions:
//!
//! ```text
//! content_l = ½ Σ (F_l(x) − F_l(c))²
//! G_l       = F_l Fᵀ_l                       (unnormalised)
//! A_l       = (M / M_s) · F_l(s) F_l(s)ᵀ       (the style's Gram taken to M positions)
//! style_l   = 1/(4 N² M²) · Σ (G_l − A_l)²
//! ```
//!
//! `A_l` is exactly the paper's when the style image has as many pixels as
//! the output (the write-up loads both at one size; here styles are resized
//! to the content's pixel count by default). With `G = N·M·Ĝ` (`Ĝ` the
//! normalised Gram above) these are the jcjohnson parts times a per-layer
//! factor: `content_l = (N·M/2) · mean(…)`, `style_l = (N²/4) · mean((Ĝ − Â)²)`
//! ([`Normalization::content_factor`], [`Normalization::style_factor`]) — so
//! every backend gets it through the same primitives, and no float32 tensor
//! ever holds an unnormalised Gram matrix (values of 1e8 and more at deep
//! layers). A masked style uses its masked Gram taken to `M` positions,
//! `(M / Σ m_l) · (F ⊙ m_l)(F ⊙ m_l)ᵀ`, with the same factor (a mask of
//! ones is the unmasked term). The weights keep their meaning: the paper's
//! `α L_content + β L_style` is `--content-weight α --style-weight β`
//! (the write-up's `α L_style + β L_content` is `--style-weight α
//! --content-weight β`).

use crate::backend::{Backend, Pooling, Scalar};
use crate::error::{Error, Result};
use crate::layers::LayerId;
use crate::mask::Mask;
use crate::pixel::CaffeImage;
use crate::temporal::Temporal;
use crate::vgg::{Keep, LayerGrad, Vgg};

/// How the loss parts are normalised (module documentation for both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Normalization {
    /// jcjohnson/neural-style's: means, Gram matrices divided by `C·H·W`.
    #[default]
    Jcjohnson,
    /// Gatys et al.'s and the Keras write-up's: `½ Σ` content, unnormalised
    /// Gram matrices, `1/(4 N² M²) Σ` style.
    Gatys,
}

impl Normalization {
    /// The factor on a content layer's `mean((F − C)²)` for features of
    /// shape `[N, H, W]`: 1, or `N·H·W / 2` (gatys: `½ Σ`).
    pub fn content_factor(self, [n, h, w]: [usize; 3]) -> f64 {
        match self {
            Normalization::Jcjohnson => 1.0,
            Normalization::Gatys => (n * h * w) as f64 / 2.0,
        }
    }

    /// The factor on a style layer's `mean((Ĝ − Â)²)` (normalised Gram
    /// matrices) for `n` channels: 1, or `n² / 4` (gatys: `1/(4N²M²) Σ` over
    /// unnormalised ones).
    pub fn style_factor(self, n: usize) -> f64 {
        match self {
            Normalization::Jcjohnson => 1.0,
            Normalization::Gatys => (n * n) as f64 / 4.0,
        }
    }
}

impl std::str::FromStr for Normalization {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "jcjohnson" => Ok(Normalization::Jcjohnson),
            "gatys" => Ok(Normalization::Gatys),
            _ => Err(format!(
                "unknown normalization `{s}`: use jcjohnson or gatys"
            )),
        }
    }
}

/// The settings of the objective (layers and weights).
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectiveSpec {
    /// Content layers with their per-layer weights `cw_l`.
    pub content_layers: Vec<(LayerId, f64)>,
    /// Style layers with their per-layer weights `sw_l`.
    pub style_layers: Vec<(LayerId, f64)>,
    /// α: the content part's weight in the total.
    pub content_weight: f64,
    /// β: the style part's weight in the total.
    pub style_weight: f64,
    /// The total variation part's weight in the total.
    pub tv_weight: f64,
    /// Max or average pooling in the network.
    pub pooling: Pooling,
    /// Per-layer scaling of the losses (jcjohnson's means or the paper's sums).
    pub normalization: Normalization,
}

impl Default for ObjectiveSpec {
    /// The jcjohnson/neural-style defaults.
    fn default() -> Self {
        let l = |n: &str| (LayerId::parse(n).expect("valid default layer"), 1.0);
        ObjectiveSpec {
            content_layers: vec![l("relu4_2")],
            style_layers: ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
                .iter()
                .map(|n| l(n))
                .collect(),
            content_weight: 5.0,
            style_weight: 100.0,
            tv_weight: 1e-3,
            pooling: Pooling::Max,
            normalization: Normalization::Jcjohnson,
        }
    }
}

impl ObjectiveSpec {
    /// Every layer the objective reads.
    pub fn layers(&self) -> Vec<LayerId> {
        self.content_layers
            .iter()
            .chain(&self.style_layers)
            .map(|(l, _)| *l)
            .collect()
    }

    /// The deepest layer any part of the objective needs.
    pub fn deepest(&self) -> Option<LayerId> {
        self.layers().into_iter().max()
    }
}

/// The loss parts at one point: unweighted parts and the weighted total.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct LossParts {
    /// Unweighted content loss.
    pub content: f64,
    /// Unweighted style loss (blend weights applied).
    pub style: f64,
    /// Unweighted total variation.
    pub tv: f64,
    /// `α·content + β·style + tv_weight·tv` (`+ temporal_weight·temporal`
    /// with a temporal term).
    pub total: f64,
    /// Unweighted temporal consistency (video, [`crate::temporal`]); 0, and
    /// absent from JSON, without a temporal term.
    #[serde(skip_serializing_if = "is_zero")]
    pub temporal: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl LossParts {
    /// No part is NaN or infinite.
    pub fn is_finite(&self) -> bool {
        self.content.is_finite()
            && self.style.is_finite()
            && self.tv.is_finite()
            && self.total.is_finite()
            && self.temporal.is_finite()
    }
}

/// The loss trait: value and gradient at a point.
pub trait Loss {
    /// The point and gradient type (a backend tensor).
    type Tensor;
    /// The loss parts at `x` and the gradient of the total.
    fn evaluate(&self, x: &Self::Tensor) -> Result<(LossParts, Self::Tensor)>;
}

/// One style layer's folded target: the blended Gram matrix `Ā`, the total
/// weight `W` of the unmasked styles and the constant `Σ_k b_k mean((A_k − Ā)²)`.
struct StyleTarget<T> {
    gram: T,
    weight: f64,
    offset: f64,
}

/// A masked style's term: its weight, and per style layer its Gram target,
/// the mask at that layer and `k = H_l·W_l / Σ m_l`.
struct MaskedTarget<T> {
    weight: f64,
    layers: Vec<(T, T, f64)>,
}

/// One style image as the objective takes it: its whole-image Gram matrix at
/// each style layer (in the order of `spec.style_layers`, see
/// [`style_grams`]), its blend weight, and an optional mask at the content
/// image's size.
pub struct StyleTerm<T> {
    /// The style image's Gram matrix at each style layer.
    pub grams: Vec<T>,
    /// Its blend weight.
    pub weight: f64,
    /// Where it applies (content-sized), or everywhere.
    pub mask: Option<Mask>,
}

/// The canonical objective, targets computed once.
pub struct Objective<'n, B: Backend> {
    net: &'n Vgg<B>,
    spec: ObjectiveSpec,
    content_shape: [usize; 3],
    content_targets: Vec<B::Tensor>,
    /// Empty when every style is masked.
    style_targets: Vec<StyleTarget<B::Tensor>>,
    masked: Vec<MaskedTarget<B::Tensor>>,
    layers: Vec<LayerId>,
    /// What the forward pass keeps for the backward pass.
    keep: Keep,
    temporal: TemporalTarget<B::Tensor>,
}

/// The temporal term's weight and, per earlier frame, `√c` (`1×H×W`) and
/// `√c ⊙ ω` (`3×H×W`).
struct TemporalTarget<T> {
    weight: f64,
    frames: Vec<(T, T)>,
}

/// Gram matrices of one (whole) style image at each style layer of `spec`.
/// Reusable by every objective with the same layers and pooling (a batch
/// reuses them across content images).
pub fn style_grams<B: Backend>(
    net: &Vgg<B>,
    spec: &ObjectiveSpec,
    img: &CaffeImage,
) -> Result<Vec<B::Tensor>> {
    let layers: Vec<LayerId> = spec.style_layers.iter().map(|l| l.0).collect();
    if layers.is_empty() {
        return Ok(Vec::new());
    }
    let b = net.backend();
    let t = b.upload(&img.data, img.shape())?;
    // Each layer's Gram matrix as soon as its features exist: the style
    // image's features are dropped as the pass goes on.
    let mut grams: Vec<Option<B::Tensor>> = vec![None; layers.len()];
    net.forward_each(&t, &layers, &mut |k, f| {
        grams[k] = Some(b.gram(f)?);
        Ok(())
    })?;
    grams
        .into_iter()
        .map(|g| g.ok_or_else(|| Error::backend(b.name(), "a style layer was not computed")))
        .collect()
}

/// Normalise blend weights to sum to one (equal when `None`).
pub fn normalise_blend(n: usize, weights: Option<&[f64]>) -> Result<Vec<f64>> {
    let w: Vec<f64> = match weights {
        None => vec![1.0; n],
        Some(w) if w.len() != n => {
            return Err(Error::config(
                "style-blend-weights",
                format!("{} weights given for {n} style images", w.len()),
            ))
        }
        Some(w) => w.to_vec(),
    };
    let sum: f64 = w.iter().sum();
    if w.iter().any(|v| !v.is_finite() || *v < 0.0) || sum <= 0.0 {
        return Err(Error::config(
            "style-blend-weights",
            "weights must be non-negative, finite and not all zero",
        ));
    }
    Ok(w.iter().map(|v| v / sum).collect())
}

impl<'n, B: Backend> Objective<'n, B> {
    /// Compute the targets. `styles` holds each style image with its blend
    /// weight (already normalised to sum to 1); no masks.
    pub fn new(
        net: &'n Vgg<B>,
        spec: ObjectiveSpec,
        content: &CaffeImage,
        styles: &[(CaffeImage, f64)],
    ) -> Result<Self> {
        let terms = styles
            .iter()
            .map(|(img, w)| {
                Ok(StyleTerm {
                    grams: style_grams(net, &spec, img)?,
                    weight: *w,
                    mask: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::with_styles(net, spec, content, terms)
    }

    /// Build from style terms (Gram targets computed beforehand, blend
    /// weights summing to 1, optional masks at the content's size). Unmasked
    /// styles are folded into one target per layer; each masked style is a
    /// term of its own.
    pub fn with_styles(
        net: &'n Vgg<B>,
        spec: ObjectiveSpec,
        content: &CaffeImage,
        styles: Vec<StyleTerm<B::Tensor>>,
    ) -> Result<Self> {
        if spec.content_layers.is_empty() && spec.style_layers.is_empty() {
            return Err(Error::config(
                "content-layers",
                "no content or style layers: nothing to optimise",
            ));
        }
        if net.pooling() != spec.pooling {
            return Err(Error::config(
                "pooling",
                "the network was built with another pooling",
            ));
        }
        let b = net.backend();
        let content_t = b.upload(&content.data, content.shape())?;
        let content_layers: Vec<LayerId> = spec.content_layers.iter().map(|l| l.0).collect();
        let content_targets = if content_layers.is_empty() {
            Vec::new()
        } else {
            net.forward(&content_t, &content_layers, false)?.outputs
        };

        let style_layers: Vec<LayerId> = spec.style_layers.iter().map(|l| l.0).collect();
        let mut grams: Vec<Vec<(B::Tensor, f64)>> = vec![Vec::new(); style_layers.len()];
        let mut masked = Vec::new();
        if !style_layers.is_empty() {
            if styles.is_empty() {
                return Err(Error::config(
                    "style",
                    "style layers given but no style image",
                ));
            }
            for term in styles {
                if term.grams.len() != style_layers.len() {
                    return Err(Error::config(
                        "style-layers",
                        "style targets were computed for other layers",
                    ));
                }
                match term.mask {
                    None => {
                        for (slot, g) in grams.iter_mut().zip(term.grams) {
                            slot.push((g, term.weight));
                        }
                    }
                    Some(mask) => masked.push(masked_target(
                        b,
                        &style_layers,
                        content,
                        term.grams,
                        term.weight,
                        &mask,
                    )?),
                }
            }
        }
        let style_targets = grams
            .into_iter()
            .filter(|per_style| !per_style.is_empty())
            .map(|per_style| blend(b, per_style))
            .collect::<Result<Vec<_>>>()?;
        let mut layers = content_layers;
        layers.extend(style_layers);
        Ok(Objective {
            net,
            spec,
            content_shape: content.shape(),
            content_targets,
            style_targets,
            masked,
            layers,
            keep: Keep::Everything,
            temporal: TemporalTarget {
                weight: 0.0,
                frames: Vec::new(),
            },
        })
    }

    /// Add the temporal term of video ([`crate::temporal`]): the frame is
    /// held to each earlier stylised frame warped into it, weighted by its
    /// certainty. Replaces any temporal term set before.
    pub fn with_temporal(mut self, t: &Temporal) -> Result<Self> {
        let [_, h, w] = self.content_shape;
        t.check(w, h)?;
        let b = self.net.backend();
        let mut frames = Vec::with_capacity(t.frames.len());
        for f in &t.frames {
            let root: Vec<f32> = f.certainty.data.iter().map(|c| c.sqrt()).collect();
            let root = b.upload(&root, [1, h, w])?;
            let warped = b.upload(&f.warped.data, f.warped.shape())?;
            let target = b.mul_mask(&warped, &root)?;
            frames.push((root, target));
        }
        self.temporal = TemporalTarget {
            weight: t.weight,
            frames,
        };
        Ok(self)
    }

    /// Recompute activations in the backward pass instead of keeping them
    /// (`true`: [`Keep::Boundaries`]): the same loss and gradient for about
    /// one more forward pass per evaluation, in much less memory
    /// (`crate::memory`).
    pub fn recompute(mut self, on: bool) -> Self {
        self.keep = if on {
            Keep::Boundaries
        } else {
            Keep::Everything
        };
        self
    }

    /// The objective's layers, weights, pooling and normalisation.
    pub fn spec(&self) -> &ObjectiveSpec {
        &self.spec
    }

    /// The network it evaluates on.
    pub fn net(&self) -> &Vgg<B> {
        self.net
    }

    /// `[3, H, W]` of the content image (and of every image evaluated).
    pub fn content_shape(&self) -> [usize; 3] {
        self.content_shape
    }
}

/// Take a mask to every style layer's resolution, once.
fn masked_target<B: Backend>(
    b: &B,
    layers: &[LayerId],
    content: &CaffeImage,
    grams: Vec<B::Tensor>,
    weight: f64,
    mask: &Mask,
) -> Result<MaskedTarget<B::Tensor>> {
    if (mask.width, mask.height) != (content.width, content.height) {
        return Err(Error::config(
            "style-mask",
            format!(
                "mask is {}×{} but the content is {}×{}",
                mask.width, mask.height, content.width, content.height
            ),
        ));
    }
    let mut out = Vec::with_capacity(layers.len());
    for (layer, g) in layers.iter().zip(grams) {
        let m = mask.at_layer(*layer);
        let area = m.area();
        if area <= 0.0 {
            return Err(Error::config(
                "style-mask",
                format!(
                    "the mask covers nothing at {layer} ({}×{}): enlarge its white region or `size`",
                    m.width, m.height
                ),
            ));
        }
        let k = (m.width * m.height) as f64 / area;
        out.push((g, b.upload(&m.data, [1, m.height, m.width])?, k));
    }
    Ok(MaskedTarget {
        weight,
        layers: out,
    })
}

/// Blend one layer's Gram matrices into `Ā` and the offset constant.
fn blend<B: Backend>(b: &B, per_style: Vec<(B::Tensor, f64)>) -> Result<StyleTarget<B::Tensor>> {
    let weight: f64 = per_style.iter().map(|p| p.1).sum();
    if weight <= 0.0 {
        return Err(Error::config(
            "style-blend-weights",
            "the unmasked styles have zero weight in all",
        ));
    }
    let mut it = per_style.iter();
    let (first, w0) = it.next().expect("at least one style image");
    let mut gram = first.clone();
    b.scale(*w0 / weight, &mut gram)?;
    for (g, w) in it {
        b.axpy(*w / weight, g, &mut gram)?;
    }
    let mut offset = 0.0;
    if per_style.len() > 1 {
        for (g, w) in &per_style {
            offset += w * b.mse_grad(g, &gram, 0.0)?.0;
        }
    }
    Ok(StyleTarget {
        gram,
        weight,
        offset,
    })
}

/// Which loss part a deferred value adds to.
#[derive(Clone, Copy)]
enum Part {
    Content,
    Style,
    Tv,
    Temporal,
}

impl<B: Backend> Loss for Objective<'_, B> {
    type Tensor = B::Tensor;

    fn evaluate(&self, x: &B::Tensor) -> Result<(LossParts, B::Tensor)> {
        let (parts, grad, _) = self.evaluate_inner(x, false)?;
        Ok((parts, grad))
    }
}

impl<B: Backend> Objective<'_, B> {
    /// [`Loss::evaluate`] and the gradient's Euclidean norm, brought back
    /// from the device with the loss parts in one copy (the run loop reports it).
    pub fn evaluate_with_norm(&self, x: &B::Tensor) -> Result<(LossParts, B::Tensor, f64)> {
        self.evaluate_inner(x, true)
    }

    fn evaluate_inner(
        &self,
        x: &B::Tensor,
        with_norm: bool,
    ) -> Result<(LossParts, B::Tensor, f64)> {
        let b = self.net.backend();
        let shape = b.dims(x);
        if shape != self.content_shape {
            return Err(Error::config(
                "image",
                format!(
                    "image is {}×{} but the content is {}×{}",
                    shape[2], shape[1], self.content_shape[2], self.content_shape[1]
                ),
            ));
        }
        let s = &self.spec;
        let n_content = s.content_layers.len();
        let n_style = s.style_layers.len();
        // Each loss layer's value and gradient (or the gradient with respect
        // to its Gram matrix), with its normalisation, made as the forward
        // pass makes the layer's output: an output the backward pass does
        // not keep (relu1_1, recomputed) is let go at once.
        type Slot<T> = Option<(Scalar, T, f64)>;
        // The style layers' heights (a stripe's Gram gradient is scaled to it).
        let mut heights = vec![0; n_style];
        let mut content: Vec<Slot<B::Tensor>> = (0..n_content).map(|_| None).collect();
        let mut style: Vec<Slot<B::Tensor>> = (0..n_style).map(|_| None).collect();
        let mut masked: Vec<Vec<Slot<B::Tensor>>> = self
            .masked
            .iter()
            .map(|_| (0..n_style).map(|_| None).collect())
            .collect();
        let trace = self
            .net
            .forward_with(x, &self.layers, self.keep, &mut |k, f| {
                if let Some((_, lw)) = s.content_layers.get(k) {
                    let norm = s.normalization.content_factor(b.dims(f));
                    let target = &self.content_targets[k];
                    let (v, g) = b.mse_grad_deferred(f, target, s.content_weight * lw * norm)?;
                    content[k] = Some((v, g, norm));
                    return Ok(());
                }
                let i = k - n_content;
                heights[i] = b.dims(f)[1];
                let lw = s.style_layers[i].1;
                let norm = s.normalization.style_factor(b.dims(f)[0]);
                if let Some(target) = self.style_targets.get(i) {
                    let gram = b.gram(f)?;
                    let scale = s.style_weight * lw * target.weight * norm;
                    let (v, dg) = b.mse_grad_deferred(&gram, &target.gram, scale)?;
                    style[i] = Some((v, dg, norm));
                }
                for (term, slots) in self.masked.iter().zip(&mut masked) {
                    let (target, mask, k) = &term.layers[i];
                    let fm = b.mul_mask(f, mask)?;
                    let mut gram = b.gram(&fm)?;
                    b.scale(*k, &mut gram)?;
                    let scale = s.style_weight * lw * term.weight * norm;
                    let (v, dg) = b.mse_grad_deferred(&gram, target, scale)?;
                    slots[i] = Some((v, dg, norm));
                }
                Ok(())
            })?;
        // Loss values stay on the device until the end (one copy for all);
        // a term (part, k1, k2, off, value) adds k1 · (k2 · value + off).
        let mut terms = Vec::new();
        let mut grads = Vec::with_capacity(self.layers.len());
        let made = || Error::backend(b.name(), "a loss layer was not computed");
        for ((layer, lw), slot) in s.content_layers.iter().zip(content) {
            let (v, g, norm) = slot.ok_or_else(made)?;
            terms.push((Part::Content, lw * norm, 1.0, 0.0, v));
            grads.push((*layer, LayerGrad::Ready(g)));
        }
        // A Gram matrix is divided by the layer's pixels: the gradient of a
        // stripe of `rows` of its `h` rows is that of the whole one with
        // `dG` scaled by rows/h (the backend divides by the stripe's pixels).
        let for_rows = move |dg: &B::Tensor, rows: &std::ops::Range<usize>, h: usize| {
            let mut part = b.zeros_like(dg)?;
            b.axpy(rows.len() as f64 / h as f64, dg, &mut part)?;
            Ok::<_, Error>(part)
        };
        for ((((layer, lw), target), slot), &h) in s
            .style_layers
            .iter()
            .zip(&self.style_targets)
            .zip(style)
            .zip(&heights)
        {
            let (v, dg, norm) = slot.ok_or_else(made)?;
            terms.push((Part::Style, lw * norm, target.weight, target.offset, v));
            // The layer's gradient (as large as its features) only when the
            // backward pass reaches it, from the features it holds then (a
            // stripe at a time in a pass that takes block 1 in stripes).
            grads.push((
                *layer,
                LayerGrad::Later(Box::new(move |f, acc, rows| {
                    let part;
                    let dg = if rows.len() == h {
                        &dg
                    } else {
                        part = for_rows(&dg, &rows, h)?;
                        &part
                    };
                    match acc {
                        Some(acc) => b.gram_backward_add(f, dg, acc),
                        None => b.gram_backward(f, dg),
                    }
                })),
            ));
        }
        for (term, slots) in self.masked.iter().zip(masked) {
            for ((((layer, lw), (_, mask, k)), slot), &h) in s
                .style_layers
                .iter()
                .zip(&term.layers)
                .zip(slots)
                .zip(&heights)
            {
                let (v, dg, norm) = slot.ok_or_else(made)?;
                terms.push((Part::Style, lw * term.weight * norm, 1.0, 0.0, v));
                let k = *k;
                grads.push((
                    *layer,
                    LayerGrad::Later(Box::new(move |f, acc, rows| {
                        // The mask's rows and dG of the stripe given.
                        let (mask_part, dg_part);
                        let (mask, dg) = if rows.len() == h {
                            (mask, &dg)
                        } else {
                            mask_part = b.rows(mask, rows.start, rows.end)?;
                            dg_part = for_rows(&dg, &rows, h)?;
                            (&mask_part, &dg_part)
                        };
                        let fm = b.mul_mask(f, mask)?;
                        let mut dfm = b.gram_backward(&fm, dg)?;
                        drop(fm);
                        b.scale(k, &mut dfm)?;
                        let d = b.mul_mask(&dfm, mask)?;
                        match acc {
                            Some(mut acc) => {
                                drop(dfm);
                                b.axpy(1.0, &d, &mut acc)?;
                                Ok(acc)
                            }
                            None => Ok(d),
                        }
                    })),
                ));
            }
        }
        let mut grad = self.net.backward_with(trace, grads)?;
        let (tv, tv_grad) = b.tv_grad_deferred(x, s.tv_weight)?;
        terms.push((Part::Tv, 1.0, 1.0, 0.0, tv));
        if s.tv_weight != 0.0 {
            b.axpy(1.0, &tv_grad, &mut grad)?;
        }
        let temporal_weight = self.temporal.weight;
        for (root, target) in &self.temporal.frames {
            let xr = b.mul_mask(x, root)?;
            let (v, g) = b.mse_grad_deferred(&xr, target, temporal_weight)?;
            terms.push((Part::Temporal, 1.0, 1.0, 0.0, v));
            if temporal_weight != 0.0 {
                b.axpy(1.0, &b.mul_mask(&g, root)?, &mut grad)?;
            }
        }
        let mut pending: Vec<Scalar> = terms.iter().map(|t| t.4).collect();
        if with_norm {
            pending.push(b.dot_deferred(&grad, &grad)?);
        }
        let mut values = b.fetch_scalars(&pending)?;
        let grad_norm = if with_norm {
            values.pop().expect("the norm was pushed last").sqrt()
        } else {
            f64::NAN
        };
        let mut parts = LossParts::default();
        for ((part, k1, k2, off, _), v) in terms.iter().zip(values) {
            *match part {
                Part::Content => &mut parts.content,
                Part::Style => &mut parts.style,
                Part::Tv => &mut parts.tv,
                Part::Temporal => &mut parts.temporal,
            } += k1 * (k2 * v + off);
        }
        parts.total = s.content_weight * parts.content
            + s.style_weight * parts.style
            + s.tv_weight * parts.tv
            + temporal_weight * parts.temporal;
        Ok((parts, grad, grad_norm))
    }
}
