//! VGG19 over any [`Backend`]: the forward pass up to the deepest requested
//! layer, and the hand-written backward pass (input gradient only).
//!
//! Architecture invariant: only the layers up to the deepest one requested
//! are computed, and the forward pass used for a gradient keeps exactly what
//! the backward pass needs — the ReLU outputs (they give both the ReLU mask
//! and the pooling inputs) — and nothing else; or, with
//! [`Keep::Boundaries`], only the segment boundaries (the requested layers
//! and the pooling outputs a segment starts from: `unread_starts`), the
//! backward pass recomputing each segment's
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
    /// `(in, out)` channels of each convolution (the recomputation's costs).
    channels: Vec<(usize, usize)>,
    pooling: Pooling,
    /// Floats of a block-1 map above which a recomputing pass takes block 1
    /// a stripe at a time ([`stripe_rows`]).
    stripe_floats: usize,
}

/// What a forward pass keeps for the backward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Keep {
    /// Nothing: features only (no backward pass).
    Nothing,
    /// Every ReLU output (the fastest backward pass).
    #[default]
    Everything,
    /// The requested layers and the pooling outputs a segment starts from
    /// only; the backward pass recomputes the ReLU outputs inside each
    /// segment (one more forward pass through the network, in pieces).
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
    /// Rows per stripe when block 1 goes a stripe at a time ([`stripe_rows`]).
    stripes: Option<usize>,
    /// Outputs of the requested layers, in request order.
    pub outputs: Vec<T>,
}

/// The gradient entering at a layer: computed already, or computed when the
/// backward pass reaches the layer, from the layer's output (which the pass
/// holds or recomputes then: nothing else needs to keep it).
pub enum LayerGrad<'a, T> {
    /// Computed.
    Ready(T),
    /// Computed on demand from the layer's output.
    Later(GradFromOutput<'a, T>),
}

/// A layer's gradient made from its output ([`LayerGrad::Later`]), added to
/// the gradient already entering at that layer when there is one (given by
/// value: no one else holds it, so the closure may accumulate into it).
/// The range is the rows of the layer's output given: all of them, or one
/// horizontal stripe after another when the pass takes block 1 a stripe at
/// a time ([`stripe_rows`]): the gradient must be made pixel by pixel (a
/// Gram matrix's gradient is), so that a stripe's is the stripe of the whole.
pub type GradFromOutput<'a, T> =
    Box<dyn FnMut(&T, Option<T>, std::ops::Range<usize>) -> Result<T> + 'a>;

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
            channels: weights
                .convs
                .iter()
                .map(|c| (c.in_channels, c.out_channels))
                .collect(),
            pooling,
            stripe_floats: STRIPE_FLOATS,
        })
    }

    /// The same network taking block 1 a stripe at a time, in a
    /// [`Keep::Boundaries`] pass, once a block-1 map holds more than
    /// `floats` values (default [`STRIPE_FLOATS`]): a test makes small
    /// pictures go in stripes with it.
    pub fn with_stripe_floats(mut self, floats: usize) -> Self {
        self.stripe_floats = floats;
        self
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

    /// Forward pass to the deepest of `layers`, keeping what `keep` says,
    /// the trace holding the requested outputs.
    pub fn forward_keeping(
        &self,
        x: &B::Tensor,
        layers: &[LayerId],
        keep: Keep,
    ) -> Result<Trace<B::Tensor>> {
        let mut slots: Vec<Option<B::Tensor>> = vec![None; layers.len()];
        let mut trace = self.forward_with(x, layers, keep, &mut |k, t| {
            slots[k] = Some(t.clone());
            Ok(())
        })?;
        trace.outputs = slots
            .into_iter()
            .map(|t| t.expect("every requested layer is computed"))
            .collect();
        Ok(trace)
    }

    /// Forward pass to the deepest of `layers`, keeping what `keep` says for
    /// the backward pass and handing each requested output to `each` (with
    /// its position in `layers`) as soon as it is made; the trace's
    /// `outputs` is empty. An output the backward pass does not keep is let
    /// go at once: a recomputing pass does not hold relu1_1 through the
    /// rest of the network (the objective takes its Gram matrix in `each`).
    /// A recomputing pass over a large picture makes pool1 from relu1_1 a
    /// stripe at a time ([`stripe_rows`]): relu1_2 is never whole.
    pub fn forward_with(
        &self,
        x: &B::Tensor,
        layers: &[LayerId],
        keep: Keep,
        each: &mut dyn FnMut(usize, &B::Tensor) -> Result<()>,
    ) -> Result<Trace<B::Tensor>> {
        let deepest = *layers.iter().max().ok_or_else(|| Error::Layer {
            name: String::new(),
            hint: "no layers requested".into(),
        })?;
        let requested = |id: usize| layers.iter().any(|l| l.0 == id);
        let bounds =
            (keep == Keep::Boundaries).then(|| boundaries(deepest.0, requested, self.cost(x)));
        let stripes = match keep {
            Keep::Boundaries => self.block1_stripes(x, layers, deepest.0),
            _ => None,
        };
        let mut kept: Vec<Option<B::Tensor>> = vec![None; deepest.0 + 1];
        let mut cur = x.clone();
        let tbl = table();
        let mut i = 0;
        while i <= deepest.0 {
            (cur, i) = match stripes {
                Some(rows) if i == CONV1_2_ROW => (self.pool1_striped(&cur, rows)?, POOL1),
                _ => self.step(&cur, i, deepest.0, layers)?,
            };
            let keep_here = match keep {
                Keep::Nothing => false,
                Keep::Everything => requested(i) || matches!(tbl[i].kind, LayerKind::Relu { .. }),
                Keep::Boundaries => bounds.as_ref().is_some_and(|k| k[i]),
            };
            if keep_here {
                kept[i] = Some(cur.clone());
            }
            for (k, _) in layers.iter().enumerate().filter(|(_, l)| l.0 == i) {
                each(k, &cur)?;
            }
            i += 1;
        }
        Ok(Trace {
            deepest,
            layers: layers.to_vec(),
            input: (keep == Keep::Boundaries).then(|| x.clone()),
            kept,
            stripes,
            outputs: Vec::new(),
        })
    }

    /// Forward pass to the deepest of `layers`, handing each requested
    /// output to `each` (with its position in `layers`) as soon as it is
    /// computed and keeping nothing: a style image's Gram matrices without
    /// holding its features (`crate::objective::style_grams`).
    pub fn forward_each(
        &self,
        x: &B::Tensor,
        layers: &[LayerId],
        each: &mut dyn FnMut(usize, &B::Tensor) -> Result<()>,
    ) -> Result<()> {
        if layers.is_empty() {
            return Ok(());
        }
        self.forward_with(x, layers, Keep::Nothing, each).map(drop)
    }

    /// Rows per stripe when a recomputing pass takes block 1 a stripe at a
    /// time: the backend cuts stripes on its device
    /// ([`Backend::rows_on_device`]), pool1 is made (the network goes past
    /// it), no layer of block 1 but relu1_1 is requested, and a block-1 map
    /// is larger than `stripe_floats` ([`stripe_rows`]).
    fn block1_stripes(&self, x: &B::Tensor, layers: &[LayerId], deepest: usize) -> Option<usize> {
        let [_, h, w] = self.backend.dims(x);
        let quiet = layers.iter().all(|l| l.0 == RELU1_1 || l.0 > POOL1);
        if !self.backend.rows_on_device() || deepest <= POOL1 || !quiet {
            return None;
        }
        stripe_rows(h, w, self.channels[CONV1_1].1, self.stripe_floats)
    }

    /// conv1_2, relu1_2 and pool1 from relu1_1 (`r1`), a stripe of `rows`
    /// rows at a time: each stripe of relu1_2 is made from relu1_1's rows
    /// and two more on each side (the convolution reaches one; two keep
    /// every stripe starting on an even row, where Winograd F(2×2)'s tiles
    /// start on the whole map: fewer roundings differ), then pooled.
    fn pool1_striped(&self, r1: &B::Tensor, rows: usize) -> Result<B::Tensor> {
        let b = &self.backend;
        let h = b.dims(r1)[1];
        self.by_stripes(h, rows, |a, e| {
            let (lo, hi) = around(a, e, 2, h);
            let y = b.conv3x3_relu(&b.rows(r1, lo, hi)?, &self.convs[CONV1_2])?;
            let y = self.trim(y, a - lo, e - lo)?;
            b.pool(&y, self.pooling)
        })
    }

    /// Block 1's backward pass a stripe at a time, from the gradient at
    /// pool1's output (`gp`) and those entering at relu1_1 (`at1`, in the
    /// order the whole pass adds them) to the image's (`x`) gradient. Each
    /// stripe recomputes relu1_1 and relu1_2 from its rows of the image and
    /// four more on each side: each of the four steps (two convolutions
    /// forward, two back) spoils one row at a cut, where the zero padding
    /// stands in for the next stripe's rows, so that the stripe's own rows
    /// come out as the whole pass makes them. Every map starts on an even
    /// row (pooling takes rows in pairs, and Winograd F(2×2)'s tiles then
    /// fall where they fall on the whole map).
    fn block1_backward_striped(
        &self,
        x: &B::Tensor,
        gp: &B::Tensor,
        mut at1: Vec<LayerGrad<'_, B::Tensor>>,
        rows: usize,
    ) -> Result<B::Tensor> {
        let b = &self.backend;
        let h = b.dims(x)[1];
        self.by_stripes(h, rows, |a, e| {
            let (x0, x1) = around(a, e, 4, h);
            let r1 = b.conv3x3_relu(&b.rows(x, x0, x1)?, &self.convs[CONV1_1])?;
            let r2 = b.conv3x3_relu(&r1, &self.convs[CONV1_2])?;
            let (p0, p1) = around(a, e, 2, h);
            let r2 = self.trim(r2, p0 - x0, p1 - x0)?;
            let gps = b.rows(gp, p0 / 2, p0 / 2 + (p1 - p0) / 2)?;
            let g2 = b.pool_relu_backward(&r2, &gps, self.pooling)?;
            drop((r2, gps));
            // relu1_1's gradient over relu1_2's rows: its first and last
            // are spoiled, and spoil only the image gradient's rows beyond
            // the stripe's.
            let mut g1 = b.conv3x3_backward(&g2, &self.convs[CONV1_2])?;
            drop(g2);
            let r1 = self.trim(r1, p0 - x0, p1 - x0)?;
            for gl in &mut at1 {
                g1 = match gl {
                    LayerGrad::Ready(t) => {
                        b.axpy(1.0, &b.rows(t, p0, p1)?, &mut g1)?;
                        g1
                    }
                    LayerGrad::Later(f) => f(&r1, Some(g1), p0..p1)?,
                };
            }
            let g0 = b.relu_conv3x3_backward_owned(&r1, g1, &self.convs[CONV1_1])?;
            drop(r1);
            self.trim(g0, a - p0, e - p0)
        })
    }

    /// `stripe(from, to)` for each stripe of `h` rows, `rows` each
    /// ([`stripes`]), the results stacked top to bottom.
    fn by_stripes(
        &self,
        h: usize,
        rows: usize,
        mut stripe: impl FnMut(usize, usize) -> Result<B::Tensor>,
    ) -> Result<B::Tensor> {
        let parts = stripes(h, rows)
            .into_iter()
            .map(|(a, e)| stripe(a, e))
            .collect::<Result<Vec<_>>>()?;
        self.backend.stack_rows(&parts)
    }

    /// Rows `from..to` of `t`, letting `t` go (a stripe's rows that are
    /// right, its spoiled edge dropped).
    fn trim(&self, t: B::Tensor, from: usize, to: usize) -> Result<B::Tensor> {
        self.backend.rows(&t, from, to)
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
            stripes,
            outputs,
        } = trace;
        drop(outputs);
        let mut g: Option<B::Tensor> = None;
        // Whether `g` was made by this pass (nobody else holds it: the
        // backend may write the next step into its memory) or is a gradient
        // handed in as it was.
        let mut own = false;
        // A layer whose backward was fused into the one above it.
        let mut done: Option<usize> = None;
        for i in (0..=deepest.0).rev() {
            if done == Some(i) {
                continue;
            }
            let later = |(l, g): &(LayerId, LayerGrad<'_, B::Tensor>)| {
                l.0 == i && matches!(g, LayerGrad::Later(_))
            };
            if grads.iter().any(later) && kept[i].is_none() {
                self.recompute(&mut kept, input.as_ref(), i, deepest.0, &layers)?;
            }
            while let Some(pos) = grads.iter().position(|(l, _)| l.0 == i) {
                let (_, gl) = grads.swap_remove(pos);
                let acc = g.take();
                g = Some(match gl {
                    LayerGrad::Ready(t) => match acc {
                        None => {
                            own = false;
                            t
                        }
                        Some(mut acc) => {
                            b.axpy(1.0, &t, &mut acc)?;
                            own = true;
                            acc
                        }
                    },
                    LayerGrad::Later(mut f) => {
                        let out = kept[i].as_ref().ok_or_else(|| {
                            Error::backend(b.name(), format!("no output kept at {}", tbl[i].name))
                        })?;
                        let all = 0..b.dims(out)[1];
                        let sum = match acc {
                            Some(acc) if !own => {
                                let mut acc = acc;
                                b.axpy(1.0, &f(out, None, all)?, &mut acc)?;
                                acc
                            }
                            acc => f(out, acc, all)?,
                        };
                        own = true;
                        sum
                    }
                });
            }
            let Some(gc) = g.take() else { continue };
            if let (POOL1, Some(rows), Some(x)) = (i, stripes, input.as_ref()) {
                if grads.iter().all(|(l, _)| l.0 == RELU1_1) {
                    // The rows below, a stripe at a time, adding relu1_1's
                    // gradients in the order the whole pass would.
                    let mut at1 = Vec::new();
                    while let Some(pos) = grads.iter().position(|(l, _)| l.0 == RELU1_1) {
                        at1.push(grads.swap_remove(pos).1);
                    }
                    drop(kept);
                    return self.block1_backward_striped(x, &gc, at1, rows);
                }
            }
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
                    let conv = &self.convs[conv];
                    let next = if own {
                        b.relu_conv3x3_backward_owned(act(i)?, gc, conv)?
                    } else {
                        b.relu_conv3x3_backward(act(i)?, &gc, conv)?
                    };
                    (next, j)
                }
                (LayerKind::Pool { .. }, _) => {
                    (b.pool_backward(act(i - 1)?, &gc, self.pooling)?, i)
                }
                (LayerKind::Relu { .. }, _) if own => (b.relu_backward_owned(act(i)?, gc)?, i),
                (LayerKind::Relu { .. }, _) => (b.relu_backward(act(i)?, &gc)?, i),
                (LayerKind::Conv { conv }, _) => (b.conv3x3_backward(&gc, &self.convs[conv])?, i),
            };
            own = true;
            // Nothing below reads an activation at or above this step's lowest row.
            for slot in &mut kept[lowest..] {
                *slot = None;
            }
            g = Some(next);
        }
        g.ok_or_else(|| Error::backend(b.name(), "backward pass with no gradients"))
    }

    /// Recompute the ReLU outputs (and row `upto`'s) of the segment that
    /// ends at row `upto`, from the nearest kept output below it (or the
    /// input image). That start is then dropped too when it is a ReLU output
    /// that is cheap to make again ([`drop_start`]): it is recomputed when
    /// the pass reaches it.
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
        let cost = input.map(|x| self.cost(x));
        if let (Some(k), Some(cost)) = (from, &cost) {
            let below = (0..k).rev().find(|&j| kept[j].is_some());
            if drop_start(below, k, upto, cost) {
                kept[k] = None;
            }
        }
        let mut i = from.map_or(0, |k| k + 1);
        while i <= upto {
            (cur, i) = self.step(&cur, i, deepest, layers)?;
            let below = (0..i).rev().find(|&j| kept[j].is_some());
            let cheap = |cost| drop_start(below, i, upto, cost);
            if i == upto
                || matches!(table()[i].kind, LayerKind::Relu { .. })
                    && !cost.as_ref().is_some_and(cheap)
            {
                kept[i] = Some(cur.clone());
            }
            i += 1;
        }
        Ok(())
    }

    /// A convolution row's multiply-adds for the input `x` (0 for the
    /// other rows): what [`drop_start`] weighs.
    fn cost(&self, x: &B::Tensor) -> impl Fn(usize) -> u64 + '_ {
        let [_, h, w] = self.backend.dims(x);
        move |row: usize| match table()[row].kind {
            LayerKind::Conv { conv } => {
                let (ci, co) = self.channels[conv];
                let (lh, lw) = crate::layers::output_hw(LayerId(row), h, w);
                (ci * co) as u64 * (lh * lw) as u64
            }
            _ => 0,
        }
    }
}

/// Rows of block 1 (conv1_1, relu1_1, conv1_2, relu1_2, pool1) and its
/// convolutions, as `crate::layers::table` lays them out.
const RELU1_1: usize = 1;
const CONV1_2_ROW: usize = 2;
const POOL1: usize = 4;
const CONV1_1: usize = 0;
const CONV1_2: usize = 1;

/// Floats of a block-1 map (64 channels) above which a recomputing pass
/// takes block 1 a stripe at a time: 64 MiB, a 256×256 picture's; a
/// 2048×1536 one's is 805 MB, and relu1_1, relu1_2 and their gradients
/// made whole were the peak of its pass (docs/DESIGN.md, "Large pictures:
/// where the memory goes").
pub const STRIPE_FLOATS: usize = 1 << 24;

/// Rows per stripe of block 1 at `h×w` with `c1` channels: the most that
/// keep a stripe's map within `floats` values, even (pooling takes rows in
/// pairs) and at least 2; `None` when the whole map is within `floats`
/// (no stripes). Shared with the memory model.
pub(crate) fn stripe_rows(h: usize, w: usize, c1: usize, floats: usize) -> Option<usize> {
    if c1.saturating_mul(h).saturating_mul(w) <= floats {
        return None;
    }
    let rows = ((floats / (c1 * w).max(1)) & !1).max(2);
    (rows < h).then_some(rows)
}

/// The stripes `(from, to)` of `h` rows, `rows` each (even), top to
/// bottom; the last one takes a remainder of one row (a stripe of one row
/// would pool to nothing).
pub(crate) fn stripes(h: usize, rows: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut a = 0;
    while a < h {
        let mut e = (a + rows).min(h);
        if h - e < 2 {
            e = h;
        }
        out.push((a, e));
        a = e;
    }
    out
}

/// Rows `from..to` of `h` with `halo` more on each side, within the map.
fn around(from: usize, to: usize, halo: usize, h: usize) -> (usize, usize) {
    (from.saturating_sub(halo), (to + halo).min(h))
}

/// The rows a [`Keep::Boundaries`] forward pass to row `deepest` keeps for
/// the backward pass: the requested layers and the pooling outputs, less
/// the pools no recomputation starts from ([`unread_starts`]) and the ReLU
/// outputs cheap to make again ([`cheap_starts`]: relu1_1). Shared with the
/// memory model.
pub(crate) fn boundaries(
    deepest: usize,
    requested: impl Fn(usize) -> bool,
    cost: impl Fn(usize) -> u64,
) -> Vec<bool> {
    let tbl = table();
    let mut kept: Vec<bool> = (0..=deepest)
        .map(|i| requested(i) || matches!(tbl[i].kind, LayerKind::Pool { .. }))
        .collect();
    for k in unread_starts(&kept, &requested) {
        kept[k] = false;
    }
    for k in cheap_starts(&kept, cost) {
        kept[k] = false;
    }
    kept
}

/// Whether the recomputation of rows `from + 1 ..= upto` drops its start,
/// the kept output of row `from`: when that is a ReLU's output and making it
/// again (from row `below`'s output, or the image) costs at most an eighth
/// of the segment just recomputed (`cost(row)`: a convolution's
/// multiply-adds). In VGG19 that is relu1_1 (3 input channels: 1/21 of
/// conv1_2), whose 64 full-resolution channels would otherwise stay through
/// block 1's backward pass. Shared with the memory model (`crate::memory`).
pub(crate) fn drop_start(
    below: Option<usize>,
    from: usize,
    upto: usize,
    cost: impl Fn(usize) -> u64,
) -> bool {
    if !matches!(table()[from].kind, LayerKind::Relu { .. }) {
        return false;
    }
    let again: u64 = (below.map_or(0, |b| b + 1)..=from).map(&cost).sum();
    let segment: u64 = (from + 1..=upto).map(&cost).sum();
    again.saturating_mul(8) <= segment
}

/// The kept rows (`kept[k]`: row `k`'s output is held) that are ReLU
/// outputs cheap to make again ([`drop_start`], for the segment up to the
/// next kept row above): a [`Keep::Boundaries`] forward pass drops them once
/// the losses have read them, so that relu1_1's 64 full-resolution channels
/// are not held through the whole backward pass — it is recomputed from the
/// image when the pass reaches block 1. Shared with the memory model.
pub(crate) fn cheap_starts(kept: &[bool], cost: impl Fn(usize) -> u64) -> Vec<usize> {
    let mut kept = kept.to_vec();
    let mut dropped = Vec::new();
    for k in 0..kept.len() {
        if !kept[k] {
            continue;
        }
        let Some(upto) = (k + 1..kept.len()).find(|&u| kept[u]) else {
            break;
        };
        let below = (0..k).rev().find(|&j| kept[j]);
        if drop_start(below, k, upto, &cost) {
            kept[k] = false;
            dropped.push(k);
        }
    }
    dropped
}

/// The kept rows (`kept[k]`) that no recomputation will start from: a
/// pooling output (not a loss layer) whose rows up to the next kept row are
/// all convolutions, that row being a kept ReLU output. The backward pass
/// reads neither: a convolution's input gradient needs only its weights, the
/// ReLU's mask is its kept output, every segment above starts at it or
/// higher, and the pooling step below reads the ReLU under the pool, not
/// the pool's output. In VGG19 with jcjohnson's layers, pool1 to pool4
/// (each followed by conv then a style layer): 376 MB at 2048×1536, pool1's
/// 201 MB of it held through block 1's backward step. A forward pass lets
/// each go as soon as the ReLU above it is kept. Shared with the memory
/// model.
pub(crate) fn unread_starts(kept: &[bool], requested: impl Fn(usize) -> bool) -> Vec<usize> {
    let tbl = table();
    (0..kept.len())
        .filter(|&k| kept[k] && !requested(k) && matches!(tbl[k].kind, LayerKind::Pool { .. }))
        .filter(|&k| {
            (k + 1..kept.len()).find(|&u| kept[u]).is_some_and(|u| {
                matches!(tbl[u].kind, LayerKind::Relu { .. })
                    && (k + 1..u).all(|j| matches!(tbl[j].kind, LayerKind::Conv { .. }))
            })
        })
        .collect()
}

impl<B: Backend> FeatureExtractor for Vgg<B> {
    type Tensor = B::Tensor;
    fn features(&self, x: &B::Tensor, layers: &[LayerId]) -> Result<Vec<B::Tensor>> {
        Ok(self.forward(x, layers, false)?.outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{output_hw, VGG19_WIDTHS};

    /// Multiply-adds of a row of the real VGG19 at 64×64.
    fn cost(row: usize) -> u64 {
        match table()[row].kind {
            LayerKind::Conv { conv } => {
                let c_in = if conv == 0 {
                    3
                } else {
                    LayerId(row - 1).channels(VGG19_WIDTHS)
                };
                let (h, w) = output_hw(LayerId(row), 64, 64);
                (c_in * LayerId(row).channels(VGG19_WIDTHS) * h * w) as u64
            }
            _ => 0,
        }
    }

    #[test]
    fn a_recomputing_forward_pass_lets_relu1_1_go() {
        // jcjohnson's style layers and pools kept by a `Keep::Boundaries`
        // forward pass: only relu1_1 is cheap to make again (from the image),
        // so it is not held through the backward pass of blocks 2 to 5 (at
        // 2048×1536, 805 MB held for nothing before).
        let id = |n: &str| LayerId::parse(n).unwrap().0;
        let deepest = id("relu5_1");
        let mut kept = vec![false; deepest + 1];
        for n in [
            "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1",
        ] {
            kept[id(n)] = true;
        }
        for n in ["pool1", "pool2", "pool3", "pool4"] {
            kept[id(n)] = true;
        }
        assert_eq!(cheap_starts(&kept, cost), vec![id("relu1_1")]);
    }

    #[test]
    fn a_recomputing_forward_pass_lets_the_pools_under_a_kept_relu_go() {
        // jcjohnson's layers: each pool is followed by a convolution and a
        // kept style layer, so no recomputation starts from it (held for
        // nothing before: 376 MB at 2048×1536). A pool under a segment that
        // is recomputed, or one that is a loss layer, stays.
        let id = |n: &str| LayerId::parse(n).unwrap().0;
        let deepest = id("relu5_1");
        let mut kept = vec![false; deepest + 1];
        let loss = ["relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"];
        for n in loss.iter().chain(&["pool1", "pool2", "pool3", "pool4"]) {
            kept[id(n)] = true;
        }
        let requested = |k: usize| loss.iter().any(|n| id(n) == k);
        let pools: Vec<usize> = ["pool1", "pool2", "pool3", "pool4"].map(id).to_vec();
        assert_eq!(unread_starts(&kept, requested), pools);
        // Without relu3_1 block 3 is recomputed from pool2: it stays.
        kept[id("relu3_1")] = false;
        let requested = |k: usize| k != id("relu3_1") && requested(k);
        assert!(!unread_starts(&kept, requested).contains(&id("pool2")));
        // A pool that is a loss layer stays.
        assert!(!unread_starts(&kept, |k| k == id("pool1")).contains(&id("pool1")));
    }

    #[test]
    fn block_1_is_cut_into_even_stripes_the_last_taking_an_odd_row() {
        assert_eq!(stripes(10, 4), vec![(0, 4), (4, 8), (8, 10)]);
        assert_eq!(stripes(9, 4), vec![(0, 4), (4, 9)]);
        assert_eq!(stripes(29, 4).last(), Some(&(24, 29)));
        // 2048×1536: stripes of 128 rows, 64 MiB a map; 512×384 whole.
        assert_eq!(stripe_rows(1536, 2048, 64, STRIPE_FLOATS), Some(128));
        assert_eq!(stripe_rows(384, 512, 64, STRIPE_FLOATS), None);
        // The conformance suite's: 4 rows of 32 channels, 36 wide.
        assert_eq!(stripe_rows(29, 36, 32, 32 * 36 * 4), Some(4));
        assert_eq!(stripe_rows(29, 36, 32, 32 * 36 * 29), None);
    }

    #[test]
    fn a_recomputing_pass_keeps_jcjohnsons_loss_layers_but_relu1_1_and_no_pool() {
        let id = |n: &str| LayerId::parse(n).unwrap().0;
        let loss = [
            "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1",
        ];
        let requested = |k: usize| loss.iter().any(|n| id(n) == k);
        let kept = boundaries(id("relu5_1"), requested, cost);
        let rows: Vec<usize> = (0..kept.len()).filter(|&k| kept[k]).collect();
        assert_eq!(rows, loss[1..].iter().map(|n| id(n)).collect::<Vec<_>>());
    }

    #[test]
    fn only_a_cheap_relu_start_is_dropped() {
        let id = |n: &str| LayerId::parse(n).unwrap().0;
        // relu1_1 from the image: 3·64 vs conv1_2's 64·64 per pixel.
        assert!(drop_start(None, id("relu1_1"), id("relu1_2"), cost));
        // relu2_1 from pool1 costs half of conv2_2: kept.
        assert!(!drop_start(
            Some(id("pool1")),
            id("relu2_1"),
            id("relu2_2"),
            cost
        ));
        // A pooling output is never dropped.
        assert!(!drop_start(
            Some(id("relu2_1")),
            id("pool2"),
            id("relu3_4"),
            cost
        ));
    }
}
