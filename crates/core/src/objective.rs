//! The canonical objective of DESIGN.md and its gradient.
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
//! weights summing to 1, `Σ_k b_k ‖G − A_k‖² = ‖G − Ā‖² + Σ_k b_k ‖A_k − Ā‖²`
//! where `Ā = Σ_k b_k A_k`, so one comparison per layer plus a constant gives
//! exactly the same value and gradient.

use crate::backend::{Backend, Pooling};
use crate::error::{Error, Result};
use crate::layers::LayerId;
use crate::pixel::CaffeImage;
use crate::vgg::Vgg;

/// The settings of the objective (layers and weights).
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectiveSpec {
    /// Content layers with their per-layer weights `cw_l`.
    pub content_layers: Vec<(LayerId, f64)>,
    /// Style layers with their per-layer weights `sw_l`.
    pub style_layers: Vec<(LayerId, f64)>,
    pub content_weight: f64,
    pub style_weight: f64,
    pub tv_weight: f64,
    pub pooling: Pooling,
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
    pub content: f64,
    pub style: f64,
    pub tv: f64,
    pub total: f64,
}

impl LossParts {
    pub fn is_finite(&self) -> bool {
        self.content.is_finite()
            && self.style.is_finite()
            && self.tv.is_finite()
            && self.total.is_finite()
    }
}

/// The loss trait: value and gradient at a point.
pub trait Loss {
    type Tensor;
    fn evaluate(&self, x: &Self::Tensor) -> Result<(LossParts, Self::Tensor)>;
}

/// One style layer's target: the blended Gram matrix and the constant
/// `Σ_k b_k mean((A_k − Ā)²)`.
struct StyleTarget<T> {
    gram: T,
    offset: f64,
}

/// The canonical objective, targets computed once.
pub struct Objective<'n, B: Backend> {
    net: &'n Vgg<B>,
    spec: ObjectiveSpec,
    content_shape: [usize; 3],
    content_targets: Vec<B::Tensor>,
    style_targets: Vec<StyleTarget<B::Tensor>>,
    layers: Vec<LayerId>,
}

/// Normalise blend weights to sum to one (equal when `None`).
pub fn normalise_blend(n: usize, weights: Option<&[f64]>) -> Result<Vec<f64>> {
    let w: Vec<f64> = match weights {
        None => vec![1.0; n],
        Some(w) if w.len() != n => {
            return Err(Error::config(
                "--style-blend-weights",
                format!("{} weights given for {n} style images", w.len()),
            ))
        }
        Some(w) => w.to_vec(),
    };
    let sum: f64 = w.iter().sum();
    if w.iter().any(|v| !v.is_finite() || *v < 0.0) || sum <= 0.0 {
        return Err(Error::config(
            "--style-blend-weights",
            "weights must be non-negative, finite and not all zero",
        ));
    }
    Ok(w.iter().map(|v| v / sum).collect())
}

impl<'n, B: Backend> Objective<'n, B> {
    /// Compute the targets. `styles` holds each style image with its blend
    /// weight (already normalised to sum to 1).
    pub fn new(
        net: &'n Vgg<B>,
        spec: ObjectiveSpec,
        content: &CaffeImage,
        styles: &[(CaffeImage, f64)],
    ) -> Result<Self> {
        if spec.content_layers.is_empty() && spec.style_layers.is_empty() {
            return Err(Error::config(
                "--content-layers",
                "no content or style layers: nothing to optimise",
            ));
        }
        if net.pooling() != spec.pooling {
            return Err(Error::config(
                "--pooling",
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
        if !style_layers.is_empty() {
            if styles.is_empty() {
                return Err(Error::config(
                    "--style",
                    "style layers given but no style image",
                ));
            }
            for (img, w) in styles {
                let t = b.upload(&img.data, img.shape())?;
                let feats = net.forward(&t, &style_layers, false)?.outputs;
                for (slot, f) in grams.iter_mut().zip(&feats) {
                    slot.push((b.gram(f)?, *w));
                }
            }
        }
        let style_targets = grams
            .into_iter()
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
            layers,
        })
    }

    pub fn spec(&self) -> &ObjectiveSpec {
        &self.spec
    }

    pub fn net(&self) -> &Vgg<B> {
        self.net
    }
}

/// Blend one layer's Gram matrices into `Ā` and the offset constant.
fn blend<B: Backend>(b: &B, per_style: Vec<(B::Tensor, f64)>) -> Result<StyleTarget<B::Tensor>> {
    let mut it = per_style.iter();
    let (first, w0) = it.next().expect("at least one style image");
    let mut gram = first.clone();
    b.scale(*w0, &mut gram)?;
    for (g, w) in it {
        b.axpy(*w, g, &mut gram)?;
    }
    let mut offset = 0.0;
    if per_style.len() > 1 {
        for (g, w) in &per_style {
            offset += w * b.mse_grad(g, &gram, 0.0)?.0;
        }
    }
    Ok(StyleTarget { gram, offset })
}

impl<B: Backend> Loss for Objective<'_, B> {
    type Tensor = B::Tensor;

    fn evaluate(&self, x: &B::Tensor) -> Result<(LossParts, B::Tensor)> {
        let b = self.net.backend();
        let shape = b.dims(x);
        if shape != self.content_shape {
            return Err(Error::config(
                "--image",
                format!(
                    "image is {}×{} but the content is {}×{}",
                    shape[2], shape[1], self.content_shape[2], self.content_shape[1]
                ),
            ));
        }
        let s = &self.spec;
        let trace = self.net.forward(x, &self.layers, true)?;
        let mut parts = LossParts::default();
        let mut grads = Vec::with_capacity(self.layers.len());
        let n_content = s.content_layers.len();
        for (i, ((layer, lw), target)) in s
            .content_layers
            .iter()
            .zip(&self.content_targets)
            .enumerate()
        {
            let (v, g) = b.mse_grad(&trace.outputs[i], target, s.content_weight * lw)?;
            parts.content += lw * v;
            grads.push((*layer, g));
        }
        for (i, ((layer, lw), target)) in s.style_layers.iter().zip(&self.style_targets).enumerate()
        {
            let f = &trace.outputs[n_content + i];
            let gram = b.gram(f)?;
            let (v, dg) = b.mse_grad(&gram, &target.gram, s.style_weight * lw)?;
            parts.style += lw * (v + target.offset);
            grads.push((*layer, b.gram_backward(f, &dg)?));
        }
        let mut grad = self.net.backward(&trace, grads)?;
        let (tv, tv_grad) = b.tv_grad(x, s.tv_weight)?;
        parts.tv = tv;
        if s.tv_weight != 0.0 {
            b.axpy(1.0, &tv_grad, &mut grad)?;
        }
        parts.total = s.content_weight * parts.content
            + s.style_weight * parts.style
            + s.tv_weight * parts.tv;
        Ok((parts, grad))
    }
}
