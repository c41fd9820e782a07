//! VGG19 over any [`Backend`]: the forward pass up to the deepest requested
//! layer, and the hand-written backward pass (input gradient only).
//!
//! Architecture invariant: only the layers up to the deepest one requested
//! are computed, and the forward pass used for a gradient keeps exactly what
//! the backward pass needs — the ReLU outputs (they give both the ReLU mask
//! and the pooling inputs) — and nothing else; or, with
//! [`Keep::Boundaries`], only the segment boundaries (the pooling outputs
//! and the requested layers), the backward pass recomputing each segment's
//! ReLU outputs from the boundary below it when it reaches the segment
//! (docs/DESIGN.md, "Large pictures: where the memory goes"). Both give the
//! same values: the recomputation runs the same primitives on the same
//! inputs. The backward pass drops every activation as soon as nothing
//! below needs it, and a loss layer's gradient may be given as a closure
//! ([`LayerGrad::Later`]) computed only when the pass reaches that layer.

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

/// What a forward pass keeps for the backward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Keep {
    /// Nothing: features only (no backward pass).
    Nothing,
    /// Every ReLU output (the fastest backward pass).
    #[default]
    Everything,
    /// The pooling outputs and the requested layers only; the backward pass
    /// recomputes the ReLU outputs inside each segment (one more forward
    /// pass through the network, in pieces).
    Boundaries,
}

/// What a forward pass kept for the backward pass.
#[derive(Clone)]
pub struct Trace<T> {
    deepest: LayerId,
    /// The requested layers (the recomputation fuses as the forward did).
    layers: Vec<LayerId>,
    /// The input image (where the first segment is recomputed from).
    input: Option<T>,
    /// Output of every layer that is needed later, indexed by table position.
    kept: Vec<Option<T>>,
    /// Outputs of the requested layers, in request order.
    pub outputs: Vec<T>,
}

/// The gradient entering at a layer: computed already, or computed when the
/// backward pass reaches the layer (its inputs are then freed sooner).
pub enum LayerGrad<'a, T> {
    /// Computed.
    Ready(T),
    /// Computed on demand.
    Later(Box<dyn FnOnce() -> Result<T> + 'a>),
}

impl<T> LayerGrad<'_, T> {
    fn resolve(self) -> Result<T> {
        match self {
            LayerGrad::Ready(t) => Ok(t),
            LayerGrad::Later(f) => f(),
        }
    }
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

    /// One step of the forward pass from the output of row `i - 1` (`cur`):
    /// row `i`, or rows `i` and `i + 1` (a convolution and its ReLU fused,
    /// when the convolution's output is not requested). Returns the output
    /// and the last row computed. The forward pass and the recomputation
    /// both step with this, so they compute the same values.
    fn step(
        &self,
        cur: &B::Tensor,
        i: usize,
        deepest: usize,
        layers: &[LayerId],
    ) -> Result<(B::Tensor, usize)> {
        let b = &self.backend;
        Ok(match table()[i].kind {
            LayerKind::Conv { conv } => {
                if !layers.iter().any(|l| l.0 == i) && i < deepest {
                    (b.conv3x3_relu(cur, &self.convs[conv])?, i + 1)
                } else {
                    (b.conv3x3(cur, &self.convs[conv])?, i)
                }
            }
            LayerKind::Relu { .. } => (b.relu(cur)?, i),
            LayerKind::Pool { .. } => (b.pool(cur, self.pooling)?, i),
        })
    }

    /// Forward pass to the deepest of `layers`. With `keep_for_backward`, the
    /// trace can be passed to [`Vgg::backward`] (every ReLU output kept).
    pub fn forward(
        &self,
        x: &B::Tensor,
        layers: &[LayerId],
        keep_for_backward: bool,
    ) -> Result<Trace<B::Tensor>> {
        let keep = if keep_for_backward {
            Keep::Everything
        } else {
            Keep::Nothing
        };
        self.forward_keeping(x, layers, keep)
    }

    /// Forward pass to the deepest of `layers`, keeping what `keep` says.
    pub fn forward_keeping(
        &self,
        x: &B::Tensor,
        layers: &[LayerId],
        keep: Keep,
    ) -> Result<Trace<B::Tensor>> {
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
            (cur, i) = self.step(&cur, i, deepest.0, layers)?;
            let keep_here = match keep {
                Keep::Nothing => false,
                Keep::Everything => matches!(tbl[i].kind, LayerKind::Relu { .. }),
                Keep::Boundaries => requested(i) || matches!(tbl[i].kind, LayerKind::Pool { .. }),
            };
            if keep_here {
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
            layers: layers.to_vec(),
            input: (keep == Keep::Boundaries).then(|| x.clone()),
            kept,
            outputs,
        })
    }

    /// Gradient with respect to the input image, given gradients with respect
    /// to the outputs of some layers (summed where a layer appears twice).
    pub fn backward(
        &self,
        trace: &Trace<B::Tensor>,
        grads: Vec<(LayerId, B::Tensor)>,
    ) -> Result<B::Tensor> {
        let grads = grads
            .into_iter()
            .map(|(l, g)| (l, LayerGrad::Ready(g)))
            .collect();
        self.backward_with(trace.clone(), grads)
    }

    /// [`Vgg::backward`] consuming the trace, so that each activation is
    /// freed as soon as the pass is below it, with gradients that may be
    /// computed on demand; recomputes the segments of a [`Keep::Boundaries`]
    /// trace.
    pub fn backward_with(
        &self,
        trace: Trace<B::Tensor>,
        mut grads: Vec<(LayerId, LayerGrad<'_, B::Tensor>)>,
    ) -> Result<B::Tensor> {
        let b = &self.backend;
        let tbl = table();
        let Trace {
            deepest,
            layers,
            input,
            mut kept,
            outputs,
        } = trace;
        drop(outputs);
        let mut g: Option<B::Tensor> = None;
        // A layer whose backward was fused into the one above it.
        let mut done: Option<usize> = None;
        for i in (0..=deepest.0).rev() {
            if done == Some(i) {
                continue;
            }
            while let Some(pos) = grads.iter().position(|(l, _)| l.0 == i) {
                let (_, gl) = grads.swap_remove(pos);
                let gl = gl.resolve()?;
                g = Some(match g {
                    None => gl,
                    Some(mut acc) => {
                        b.axpy(1.0, &gl, &mut acc)?;
                        acc
                    }
                });
            }
            let Some(gc) = g.take() else { continue };
            // Pool → ReLU and ReLU → conv go backward in one step each when
            // no gradient enters between them (the layer below is not an output).
            let below = match i.checked_sub(1) {
                Some(j) if !grads.iter().any(|(l, _)| l.0 == j) => Some((j, tbl[j].kind)),
                _ => None,
            };
            // The ReLU output this step reads, recomputed when not kept.
            let needs = match (tbl[i].kind, below) {
                (LayerKind::Pool { .. }, _) => Some(i - 1),
                (LayerKind::Relu { .. }, _) => Some(i),
                (LayerKind::Conv { .. }, _) => None,
            };
            if let Some(j) = needs {
                if kept[j].is_none() {
                    self.recompute(&mut kept, input.as_ref(), j, deepest.0, &layers)?;
                }
            }
            let act = |j: usize| {
                kept[j].as_ref().ok_or_else(|| {
                    Error::backend(b.name(), format!("no activation kept at {}", tbl[j].name))
                })
            };
            let (next, lowest) = match (tbl[i].kind, below) {
                (LayerKind::Pool { .. }, Some((j, LayerKind::Relu { .. }))) => {
                    done = Some(j);
                    (b.pool_relu_backward(act(j)?, &gc, self.pooling)?, j)
                }
                (LayerKind::Relu { .. }, Some((j, LayerKind::Conv { conv }))) => {
                    done = Some(j);
                    (b.relu_conv3x3_backward(act(i)?, &gc, &self.convs[conv])?, j)
                }
                (LayerKind::Pool { .. }, _) => {
                    (b.pool_backward(act(i - 1)?, &gc, self.pooling)?, i)
                }
                (LayerKind::Relu { .. }, _) => (b.relu_backward(act(i)?, &gc)?, i),
                (LayerKind::Conv { conv }, _) => (b.conv3x3_backward(&gc, &self.convs[conv])?, i),
            };
            drop(gc);
            // Nothing below reads an activation at or above this step's lowest row.
            for slot in &mut kept[lowest..] {
                *slot = None;
            }
            g = Some(next);
        }
        g.ok_or_else(|| Error::backend(b.name(), "backward pass with no gradients"))
    }

    /// Recompute the ReLU outputs of the segment that ends at row `upto`,
    /// from the nearest kept output below it (or the input image).
    fn recompute(
        &self,
        kept: &mut [Option<B::Tensor>],
        input: Option<&B::Tensor>,
        upto: usize,
        deepest: usize,
        layers: &[LayerId],
    ) -> Result<()> {
        let from = (0..upto).rev().find(|&k| kept[k].is_some());
        let mut cur = match from {
            Some(k) => kept[k].clone().expect("found above"),
            None => input
                .ok_or_else(|| {
                    Error::backend(
                        self.backend.name(),
                        "backward pass on a trace kept without activations",
                    )
                })?
                .clone(),
        };
        let mut i = from.map_or(0, |k| k + 1);
        while i <= upto {
            (cur, i) = self.step(&cur, i, deepest, layers)?;
            if matches!(table()[i].kind, LayerKind::Relu { .. }) {
                kept[i] = Some(cur.clone());
            }
            i += 1;
        }
        Ok(())
    }
}

impl<B: Backend> FeatureExtractor for Vgg<B> {
    type Tensor = B::Tensor;
    fn features(&self, x: &B::Tensor, layers: &[LayerId]) -> Result<Vec<B::Tensor>> {
        Ok(self.forward(x, layers, false)?.outputs)
    }
}
