//! VGG19 over any [`Backend`]: the forward pass up to the deepest requested
//! layer, and the hand-written backward pass (input gradient only).
//!
//! Architecture invariant: only the layers up to the deepest one requested
//! are computed, and the forward pass used for a gradient keeps exactly what
//! the backward pass needs — the ReLU outputs (they give both the ReLU mask
//! and the pooling inputs) — and nothing else.

use crate::backend::{Backend, Pooling};
use crate::error::{Error, Result};
use crate::layers::{table, LayerId, LayerKind, NUM_CONVS};
use crate::weights::Vgg19Weights;

/// The feature extractor trait: activations of named layers.
pub trait FeatureExtractor {
    /// The network's tensor type.
    type Tensor;
    /// Outputs of `layers` (any order, duplicates allowed) for image `x`.
    fn features(&self, x: &Self::Tensor, layers: &[LayerId]) -> Result<Vec<Self::Tensor>>;
}

/// VGG19 with its weights prepared on one backend.
pub struct Vgg<B: Backend> {
    backend: B,
    convs: Vec<B::Conv>,
    pooling: Pooling,
}

/// What a forward pass kept for the backward pass.
pub struct Trace<T> {
    deepest: LayerId,
    /// Output of every layer that is needed later, indexed by table position.
    kept: Vec<Option<T>>,
    /// Outputs of the requested layers, in request order.
    pub outputs: Vec<T>,
}

impl<B: Backend> Vgg<B> {
    /// The network on `backend`: every convolution prepared (uploaded) once.
    pub fn new(backend: B, weights: &Vgg19Weights, pooling: Pooling) -> Result<Self> {
        if weights.convs.len() != NUM_CONVS {
            return Err(Error::weights(
                &weights.origin,
                format!(
                    "expected {NUM_CONVS} convolutions, found {}",
                    weights.convs.len()
                ),
            ));
        }
        let convs = weights
            .convs
            .iter()
            .map(|c| backend.prepare_conv(c))
            .collect::<Result<Vec<_>>>()?;
        Ok(Vgg {
            backend,
            convs,
            pooling,
        })
    }

    /// The backend it runs on.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Its pooling.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Forward pass to the deepest of `layers`. With `keep_for_backward`, the
    /// trace can be passed to [`Vgg::backward`].
    pub fn forward(
        &self,
        x: &B::Tensor,
        layers: &[LayerId],
        keep_for_backward: bool,
    ) -> Result<Trace<B::Tensor>> {
        let b = &self.backend;
        let deepest = *layers.iter().max().ok_or_else(|| Error::Layer {
            name: String::new(),
            hint: "no layers requested".into(),
        })?;
        let requested = |id: usize| layers.iter().any(|l| l.0 == id);
        let mut slots: Vec<Option<B::Tensor>> = vec![None; deepest.0 + 1];
        let mut kept: Vec<Option<B::Tensor>> = vec![None; deepest.0 + 1];
        let mut cur = x.clone();
        let tbl = table();
        let mut i = 0;
        while i <= deepest.0 {
            match tbl[i].kind {
                LayerKind::Conv { conv } => {
                    let fuse = !requested(i) && i < deepest.0;
                    if fuse {
                        // conv + ReLU in one go; the ReLU row is consumed here.
                        cur = b.conv3x3_relu(&cur, &self.convs[conv])?;
                        i += 1;
                    } else {
                        cur = b.conv3x3(&cur, &self.convs[conv])?;
                    }
                }
                LayerKind::Relu { .. } => cur = b.relu(&cur)?,
                LayerKind::Pool { .. } => cur = b.pool(&cur, self.pooling)?,
            }
            if keep_for_backward && matches!(tbl[i].kind, LayerKind::Relu { .. }) {
                kept[i] = Some(cur.clone());
            }
            if requested(i) {
                slots[i] = Some(cur.clone());
            }
            i += 1;
        }
        let outputs = layers
            .iter()
            .map(|l| slots[l.0].clone().expect("requested layer computed"))
            .collect();
        Ok(Trace {
            deepest,
            kept,
            outputs,
        })
    }

    /// Gradient with respect to the input image, given gradients with respect
    /// to the outputs of some layers (summed where a layer appears twice).
    pub fn backward(
        &self,
        trace: &Trace<B::Tensor>,
        mut grads: Vec<(LayerId, B::Tensor)>,
    ) -> Result<B::Tensor> {
        let b = &self.backend;
        let tbl = table();
        let mut g: Option<B::Tensor> = None;
        // A layer whose backward was fused into the one above it.
        let mut done: Option<usize> = None;
        for i in (0..=trace.deepest.0).rev() {
            if done == Some(i) {
                continue;
            }
            while let Some(pos) = grads.iter().position(|(l, _)| l.0 == i) {
                let (_, gl) = grads.swap_remove(pos);
                g = Some(match g {
                    None => gl,
                    Some(mut acc) => {
                        b.axpy(1.0, &gl, &mut acc)?;
                        acc
                    }
                });
            }
            let Some(gc) = g.take() else { continue };
            let kept = |j: usize| {
                trace.kept[j]
                    .as_ref()
                    .expect("forward(keep_for_backward = true) keeps every ReLU output")
            };
            // Pool → ReLU and ReLU → conv go backward in one step each when
            // no gradient enters between them (the layer below is not an output).
            let below = match i.checked_sub(1) {
                Some(j) if !grads.iter().any(|(l, _)| l.0 == j) => Some((j, tbl[j].kind)),
                _ => None,
            };
            g = Some(match (tbl[i].kind, below) {
                (LayerKind::Pool { .. }, Some((j, LayerKind::Relu { .. }))) => {
                    done = Some(j);
                    b.pool_relu_backward(kept(j), &gc, self.pooling)?
                }
                (LayerKind::Relu { .. }, Some((j, LayerKind::Conv { conv }))) => {
                    done = Some(j);
                    b.relu_conv3x3_backward(kept(i), &gc, &self.convs[conv])?
                }
                (LayerKind::Pool { .. }, _) => b.pool_backward(kept(i - 1), &gc, self.pooling)?,
                (LayerKind::Relu { .. }, _) => b.relu_backward(kept(i), &gc)?,
                (LayerKind::Conv { conv }, _) => b.conv3x3_backward(&gc, &self.convs[conv])?,
            });
        }
        g.ok_or_else(|| Error::backend(b.name(), "backward pass with no gradients"))
    }
}

impl<B: Backend> FeatureExtractor for Vgg<B> {
    type Tensor = B::Tensor;
    fn features(&self, x: &B::Tensor, layers: &[LayerId]) -> Result<Vec<B::Tensor>> {
        Ok(self.forward(x, layers, false)?.outputs)
    }
}
