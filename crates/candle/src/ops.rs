//! This crate's kernels as candle custom operations ([`CustomOp1`],
//! [`CustomOp2`], CPU only), callable on any contiguous f32 CPU tensor of
//! shape `C×H×W` (one image, no batch dimension).
//!
//! They are the operations candle lacks, gets wrong, or does slower or less
//! exactly than this crate needs:
//!
//! - [`CandleConv`]: 3×3 "same" convolution (Winograd F(2×2, 3×3) when both
//!   sides have ≥ 16 channels and the map is not small, else im2col + GEMM:
//!   `neural_style_core::memory::winograd_pays`), with the bias and an
//!   optional ReLU fused, and its input gradient — about 2× candle's
//!   `conv2d`, and candle's `conv_transpose2d` is a direct loop;
//! - [`PoolBackward`]: the gradient of 2×2 pooling. candle's own max-pool
//!   backward is wrong: it gives a window's maximum a quarter of the gradient
//!   (`max_pool_backward_of_candle_is_wrong` in `crates/candle/tests/ops.rs`);
//! - [`Gram`] and [`GramBackward`]: `F Fᵀ / n` computed only on and above the
//!   diagonal, split along the pixels (candle's `matmul` computes the whole
//!   square, parallel over its few output rows);
//! - [`ReluBackward`] and [`axpy`]: one parallel pass (candle's elementwise
//!   ops run on one thread, and a ReLU mask would take three passes);
//! - the reductions [`dot`], [`norm1`], [`mse_grad`] and [`tv_grad`]: they
//!   accumulate in f64 in a fixed order (candle's `sum_all` accumulates in
//!   f32), which the optimisers and the CLI's byte-identical output rely on;
//!   the losses return their gradient from the same pass.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use neural_style_candle::ops::{self, CandleConv};
//!
//! # fn main() -> candle_core::Result<()> {
//! let x = Tensor::randn(0f32, 1.0, (3, 8, 10), &Device::Cpu)?;
//! let w = Tensor::randn(0f32, 0.1, (16, 3, 3, 3), &Device::Cpu)?;
//! let b = Tensor::zeros(16, candle_core::DType::F32, &Device::Cpu)?;
//! let conv = CandleConv::new(&w, Some(&b))?;
//! let y = conv.forward_relu(&x)?; // relu(conv3x3(x) + b)
//! assert_eq!(y.dims(), &[16, 8, 10]);
//! // The same through candle (NCHW): equal up to rounding.
//! let want = x.unsqueeze(0)?.conv2d(&w, 1, 1, 1, 1)?.relu()?.squeeze(0)?;
//! let diff = (&y - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(diff < 1e-4);
//! // The input gradient of the convolution, and the Gram matrix (1×C×C).
//! let dx = conv.input_grad(&y)?;
//! assert_eq!(dx.dims(), &[3, 8, 10]);
//! let g = y.apply_op1_no_bwd(&ops::Gram)?;
//! assert_eq!(g.dims(), &[1, 16, 16]);
//! let (loss, grad) = ops::mse_grad(&y, &y.zeros_like()?, 1.0)?;
//! assert!(loss >= 0.0 && grad.dims() == y.dims());
//! # Ok(())
//! # }
//! ```

use crate::conv::{self, Epilogue};
use crate::{loops, winograd, winograd4};
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, InplaceOp2, InplaceOp3, Layout, Result, Shape, Tensor,
};
pub use neural_style_core::backend::Pooling;
use neural_style_core::memory;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The contiguous f32 data of a CPU tensor's storage.
fn f32s<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{op}: expected an f32 tensor")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{op}: expected a contiguous tensor")
    };
    Ok(&v[a..b])
}

/// The contiguous f32 data of a CPU tensor's storage, to write in place.
fn f32s_mut<'a>(op: &str, s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{op}: expected an f32 tensor")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{op}: expected a contiguous tensor")
    };
    Ok(&mut v[a..b])
}

/// The `[C, H, W]` of a rank-3 layout.
fn chw(op: &str, l: &Layout) -> Result<[usize; 3]> {
    match *l.dims() {
        [c, h, w] => Ok([c, h, w]),
        ref d => bail!("{op}: expected a C×H×W tensor, got shape {d:?}"),
    }
}

fn same_len(op: &str, a: &Layout, b: &Layout) -> Result<()> {
    if a.shape().elem_count() == b.shape().elem_count() {
        Ok(())
    } else {
        bail!(
            "{op}: shapes {:?} and {:?} differ in size",
            a.dims(),
            b.dims()
        )
    }
}

fn out(data: Vec<f32>, shape: impl Into<Shape>) -> Result<(CpuStorage, Shape)> {
    Ok((CpuStorage::F32(data), shape.into()))
}

/// Run an f64-valued reduction op and read its scalar back.
fn scalar(t: Tensor) -> Result<f64> {
    t.to_scalar::<f64>()
}

// ---------------------------------------------------------------------------
// Convolution.

/// A 3×3, stride-1, zero-padded ("same") convolution prepared for this
/// crate's kernels: its bias and its kernel in the form its path needs,
/// made on first use (so that layers past the deepest one a caller needs
/// cost no memory beyond their weights).
///
/// [`CandleConv::forward`], [`CandleConv::forward_relu`] and
/// [`CandleConv::input_grad`] apply it to a `C_in×H×W` (resp. `C_out×H×W`)
/// tensor through [`Conv3x3`], a [`CustomOp1`].
pub struct CandleConv {
    c_in: usize,
    c_out: usize,
    bias: Option<Vec<f32>>,
    /// The OIHW kernel: im2col's forward kernel (kept for every layer: a
    /// layer takes im2col on a small map, Winograd on a large one).
    weight: Vec<f32>,
    /// im2col's input-gradient kernel (transposed and flipped), made on
    /// the first small map's backward.
    weight_t: OnceLock<Vec<f32>>,
    /// The Winograd algorithm of a layer wide enough for it, with its
    /// transform (both directions), made on the first large map.
    winograd: Option<(Tile, OnceLock<Vec<f32>>)>,
    /// Winograd on every map, whatever its size (`NEURAL_STYLE_CONV=f2` or
    /// `f4`, for comparisons).
    forced: bool,
}

/// Which Winograd algorithm a layer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tile {
    /// F(2×2, 3×3): `winograd.rs`.
    F2,
    /// F(4×4, 3×3): `winograd4.rs`.
    F4,
}

/// The Winograd algorithm of a layer with these channels, and whether it
/// is forced: F(2×2, 3×3) where `neural_style_core::memory::winograd_pays`
/// says so (the choice the memory plan models), F(4×4, 3×3) instead with
/// `NEURAL_STYLE_CONV=f4`; `f2` and `f4` take it on every map, `im2col`
/// never — for comparisons. Read at each construction, so a measuring
/// program can build layers of each kind in one process.
fn algorithm(c_in: usize, c_out: usize) -> (Option<Tile>, bool) {
    let var = std::env::var("NEURAL_STYLE_CONV").unwrap_or_default();
    if var == "im2col" || !memory::winograd_pays(c_in, c_out, usize::MAX) {
        return (None, false);
    }
    match var.as_str() {
        "f4" => (Some(Tile::F4), true),
        "f2" => (Some(Tile::F2), true),
        _ => (Some(Tile::F2), false),
    }
}

impl CandleConv {
    /// From an OIHW kernel (`C_out × C_in × 3 × 3`, row-major) and an
    /// optional bias (`C_out`), as plain data.
    pub fn from_parts(
        c_out: usize,
        c_in: usize,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
    ) -> Result<Self> {
        if weight.len() != c_out * c_in * 9 {
            bail!(
                "conv3x3: a {c_out}×{c_in}×3×3 kernel has {} values, got {}",
                c_out * c_in * 9,
                weight.len()
            )
        }
        if let Some(b) = &bias {
            if b.len() != c_out {
                bail!("conv3x3: {c_out} output channels, {} biases", b.len())
            }
        }
        let (tile, forced) = algorithm(c_in, c_out);
        Ok(CandleConv {
            c_in,
            c_out,
            bias,
            weight,
            weight_t: OnceLock::new(),
            winograd: tile.map(|t| (t, OnceLock::new())),
            forced,
        })
    }

    /// From candle tensors: an f32 kernel of shape `(C_out, C_in, 3, 3)` (as
    /// candle's `conv2d` takes it) and an optional bias of shape `(C_out)`.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let (c_out, c_in, kh, kw) = weight.dims4()?;
        if (kh, kw) != (3, 3) {
            bail!("conv3x3: expected a 3×3 kernel, got {kh}×{kw}")
        }
        let weight = weight.flatten_all()?.to_vec1::<f32>()?;
        let bias = bias
            .map(|b| b.flatten_all()?.to_vec1::<f32>())
            .transpose()?;
        Self::from_parts(c_out, c_in, weight, bias)
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.c_in
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.c_out
    }

    /// `conv3x3(x) + bias` for a `C_in×H×W` `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.apply_op1_no_bwd(&Conv3x3 {
            conv: self,
            mode: ConvMode::Forward,
        })
    }

    /// `relu(conv3x3(x) + bias)`, the ReLU fused into the convolution.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        x.apply_op1_no_bwd(&Conv3x3 {
            conv: self,
            mode: ConvMode::ForwardRelu,
        })
    }

    /// The input gradient of the convolution for an output gradient `dy`
    /// (`C_out×H×W`): the 3×3 "same" convolution with the kernel transposed
    /// (in ↔ out) and flipped, through the same fast path. No bias.
    pub fn input_grad(&self, dy: &Tensor) -> Result<Tensor> {
        dy.apply_op1_no_bwd(&Conv3x3 {
            conv: self,
            mode: ConvMode::InputGrad,
        })
    }
}

/// What [`Conv3x3`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvMode {
    /// `conv3x3(x) + bias`.
    Forward,
    /// `relu(conv3x3(x) + bias)`.
    ForwardRelu,
    /// The input gradient: the transposed-and-flipped kernel, no bias.
    InputGrad,
}

/// A [`CandleConv`] applied as a [`CustomOp1`] (see its methods).
pub struct Conv3x3<'a> {
    /// The prepared convolution.
    pub conv: &'a CandleConv,
    /// Which direction, and whether a ReLU follows.
    pub mode: ConvMode,
}

impl CustomOp1 for Conv3x3<'_> {
    fn name(&self) -> &'static str {
        "conv3x3"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let k = self.conv;
        let backward = self.mode == ConvMode::InputGrad;
        let (c_in, c_out) = if backward {
            (k.c_out, k.c_in)
        } else {
            (k.c_in, k.c_out)
        };
        let [c, h, w] = chw("conv3x3", l)?;
        if c != c_in {
            bail!("conv3x3: the convolution expects {c_in} channels, got {c}")
        }
        let x = f32s("conv3x3", s, l)?;
        let bias = if backward { None } else { k.bias.as_deref() };
        let epilogue = if self.mode == ConvMode::ForwardRelu {
            Epilogue::Relu
        } else {
            Epilogue::None
        };
        let winograd = k
            .winograd
            .as_ref()
            .filter(|_| k.forced || memory::winograd_pays(c_in, c_out, h * w));
        let y = match winograd {
            Some((tile, u)) => {
                let u = u.get_or_init(|| match tile {
                    Tile::F2 => winograd::transform_kernel(&k.weight, k.c_out, k.c_in),
                    Tile::F4 => winograd4::transform_kernel(&k.weight, k.c_out, k.c_in),
                });
                let form = if backward {
                    winograd::Kernel::TransposedFlipped
                } else {
                    winograd::Kernel::Direct
                };
                match tile {
                    Tile::F2 => winograd::conv3x3(x, c, h, w, (u, form), bias, c_out, epilogue),
                    Tile::F4 => winograd4::conv3x3(x, c, h, w, (u, form), bias, c_out, epilogue),
                }
            }
            None => {
                let kernel = if backward {
                    k.weight_t
                        .get_or_init(|| conv::transpose_flip(&k.weight, k.c_out, k.c_in))
                } else {
                    &k.weight
                };
                conv::conv3x3(x, c, h, w, kernel, bias, c_out, epilogue)
            }
        };
        out(y, (c_out, h, w))
    }
}

/// `conv3x3(x, weight) + bias` for a `C_in×H×W` `x` and a
/// `(C_out, C_in, 3, 3)` `weight` (prepares the kernel each call: keep a
/// [`CandleConv`] to reuse it).
pub fn conv3x3(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    CandleConv::new(weight, bias)?.forward(x)
}

/// `relu(conv3x3(x, weight) + bias)`, like [`conv3x3`].
pub fn conv3x3_relu(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    CandleConv::new(weight, bias)?.forward_relu(x)
}

// ---------------------------------------------------------------------------
// Pooling.

/// 2×2, stride-2 pooling of a `C×H×W` tensor (odd sizes: the last row or
/// column is dropped), as a [`CustomOp1`]. Same values as candle's
/// `max_pool2d(2)` / `avg_pool2d(2)`, parallel over the channels.
#[derive(Clone, Copy, Debug)]
pub struct Pool(pub Pooling);

impl CustomOp1 for Pool {
    fn name(&self) -> &'static str {
        "pool2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let [c, h, w] = chw("pool2x2", l)?;
        let x = f32s("pool2x2", s, l)?;
        out(loops::pool(x, c, h, w, self.0), (c, h / 2, w / 2))
    }
}

/// The gradient of [`Pool`] as a [`CustomOp2`] on `(x, dy)`: `x` is the
/// pooling's `C×H×W` input, `dy` the gradient of its `C×(H/2)×(W/2)` output.
/// Max routes each window's gradient whole to its first maximum
/// (row-major); average spreads it evenly.
#[derive(Clone, Copy, Debug)]
pub struct PoolBackward(pub Pooling);

impl CustomOp2 for PoolBackward {
    fn name(&self) -> &'static str {
        "pool2x2-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [c, h, w] = chw("pool2x2-backward", l1)?;
        if chw("pool2x2-backward", l2)? != [c, h / 2, w / 2] {
            bail!(
                "pool2x2-backward: a {:?} input pools to [{c}, {}, {}], got a gradient of {:?}",
                l1.dims(),
                h / 2,
                w / 2,
                l2.dims()
            )
        }
        let x = f32s("pool2x2-backward", s1, l1)?;
        let dy = f32s("pool2x2-backward", s2, l2)?;
        out(loops::pool_backward(x, dy, c, h, w, self.0), (c, h, w))
    }
}

// ---------------------------------------------------------------------------
// Gram matrices.

/// The Gram matrix of a `C×H×W` feature map, `F Fᵀ / (C·H·W)` with `F` its
/// `C × HW` matrix, shaped `1×C×C`, as a [`CustomOp1`].
#[derive(Clone, Copy, Debug)]
pub struct Gram;

impl CustomOp1 for Gram {
    fn name(&self) -> &'static str {
        "gram"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let [c, h, w] = chw("gram", l)?;
        let f = f32s("gram", s, l)?;
        out(conv::gram(f, c, h * w, (c * h * w) as f64), (1, c, c))
    }
}

/// The gradient of [`Gram`] as a [`CustomOp2`] on `(f, dg)`:
/// `(dG + dGᵀ) F / (C·H·W)`, shaped like `f`.
#[derive(Clone, Copy, Debug)]
pub struct GramBackward;

impl CustomOp2 for GramBackward {
    fn name(&self) -> &'static str {
        "gram-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [c, h, w] = chw("gram-backward", l1)?;
        if l2.shape().elem_count() != c * c {
            bail!(
                "gram-backward: a {c}-channel map has a {c}×{c} Gram matrix, got {:?}",
                l2.dims()
            )
        }
        let f = f32s("gram-backward", s1, l1)?;
        let dg = f32s("gram-backward", s2, l2)?;
        let n = (c * h * w) as f64;
        out(conv::gram_backward(f, c, h * w, dg, n), (c, h, w))
    }
}

// ---------------------------------------------------------------------------
// Elementwise.

/// The gradient through a ReLU as a [`CustomOp2`] on `(y, dy)`, `y` the
/// ReLU's output: `dy` where `y > 0`, else 0, shaped like `y`.
#[derive(Clone, Copy, Debug)]
pub struct ReluBackward;

impl CustomOp2 for ReluBackward {
    fn name(&self) -> &'static str {
        "relu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_len("relu-backward", l1, l2)?;
        let y = f32s("relu-backward", s1, l1)?;
        let dy = f32s("relu-backward", s2, l2)?;
        let g = loops::zip_map(y, dy, |y, d| if y > 0.0 { d } else { 0.0 });
        out(g, l1.shape().clone())
    }
}

/// The gradient through a ReLU written into the gradient's own memory, as
/// an [`InplaceOp2`] on `(dy, y)`: `dy` stays where `y > 0`, else 0 (the
/// values of [`ReluBackward`], without a second gradient-sized buffer).
#[derive(Clone, Copy, Debug)]
pub struct ReluBackwardInPlace;

impl InplaceOp2 for ReluBackwardInPlace {
    fn name(&self) -> &'static str {
        "relu-backward-in-place"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        same_len("relu-backward-in-place", l1, l2)?;
        let dy = f32s_mut("relu-backward-in-place", s1, l1)?;
        let y = f32s("relu-backward-in-place", s2, l2)?;
        loops::zip_apply(dy, y, |d, y| if y > 0.0 { d } else { 0.0 });
        Ok(())
    }
}

/// `acc + (dG + dGᵀ) F / (C·H·W)` accumulated into `acc`'s memory, as an
/// [`InplaceOp3`] on `(acc, F, dG)` ([`GramBackward`] plus an `axpy`,
/// without the gradient-sized intermediate).
#[derive(Clone, Copy, Debug)]
pub struct GramBackwardAdd;

impl InplaceOp3 for GramBackwardAdd {
    fn name(&self) -> &'static str {
        "gram-backward-add"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let [c, h, w] = chw("gram-backward-add", l2)?;
        same_len("gram-backward-add", l1, l2)?;
        if l3.shape().elem_count() != c * c {
            bail!(
                "gram-backward-add: a {c}-channel map has a {c}×{c} Gram matrix, got {:?}",
                l3.dims()
            )
        }
        let f = f32s("gram-backward-add", s2, l2)?;
        let dg = f32s("gram-backward-add", s3, l3)?;
        let acc = f32s_mut("gram-backward-add", s1, l1)?;
        conv::gram_backward_add(f, c, h * w, dg, (c * h * w) as f64, acc);
        Ok(())
    }
}

/// `y + alpha·x` in one pass, as a [`CustomOp2`] on `(y, x)`.
#[derive(Clone, Copy, Debug)]
pub struct Axpy(pub f32);

impl CustomOp2 for Axpy {
    fn name(&self) -> &'static str {
        "axpy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_len("axpy", l1, l2)?;
        let y = f32s("axpy", s1, l1)?;
        let x = f32s("axpy", s2, l2)?;
        let a = self.0;
        out(loops::zip_map(y, x, |y, x| y + a * x), l1.shape().clone())
    }
}

/// `y + alpha·x` ([`Axpy`]).
pub fn axpy(alpha: f32, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    y.apply_op2_no_bwd(x, &Axpy(alpha))
}

// ---------------------------------------------------------------------------
// Reductions (f64, fixed order).

struct Dot;

impl CustomOp2 for Dot {
    fn name(&self) -> &'static str {
        "dot-f64"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_len("dot", l1, l2)?;
        let a = f32s("dot", s1, l1)?;
        let b = f32s("dot", s2, l2)?;
        Ok((CpuStorage::F64(vec![loops::dot(a, b)]), Shape::from(())))
    }
}

struct Norm1;

impl CustomOp1 for Norm1 {
    fn name(&self) -> &'static str {
        "norm1-f64"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let a = f32s("norm1", s, l)?;
        Ok((CpuStorage::F64(vec![loops::norm1(a)]), Shape::from(())))
    }
}

/// `Σ a·b` over all elements, accumulated in f64.
pub fn dot(a: &Tensor, b: &Tensor) -> Result<f64> {
    scalar(a.apply_op2_no_bwd(b, &Dot)?)
}

/// `Σ |a|` over all elements, accumulated in f64.
pub fn norm1(a: &Tensor) -> Result<f64> {
    scalar(a.apply_op1_no_bwd(&Norm1)?)
}

/// A loss whose value (f64) comes out of the same pass as its gradient (the
/// op's output); the value is left in the op.
#[derive(Default)]
struct Value(AtomicU64);

impl Value {
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

struct MseGrad {
    scale: f64,
    value: Value,
}

impl CustomOp2 for MseGrad {
    fn name(&self) -> &'static str {
        "mse-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_len("mse", l1, l2)?;
        let a = f32s("mse", s1, l1)?;
        let t = f32s("mse", s2, l2)?;
        let (v, g) = loops::mse_grad(a, t, self.scale);
        self.value.set(v);
        out(g, l1.shape().clone())
    }
}

struct TvGrad {
    scale: f64,
    value: Value,
}

impl CustomOp1 for TvGrad {
    fn name(&self) -> &'static str {
        "tv-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let [c, h, w] = chw("tv", l)?;
        let x = f32s("tv", s, l)?;
        let (v, g) = loops::tv_grad(x, c, h, w, self.scale);
        self.value.set(v);
        out(g, (c, h, w))
    }
}

/// `mean((a − target)²)` (f64) and its gradient times `scale`,
/// `scale · 2(a − target)/N`, from one pass.
pub fn mse_grad(a: &Tensor, target: &Tensor, scale: f64) -> Result<(f64, Tensor)> {
    let op = MseGrad {
        scale,
        value: Value::default(),
    };
    let g = a.apply_op2_no_bwd(target, &op)?;
    Ok((op.value.get(), g))
}

/// Total variation of a `C×H×W` tensor, `(Σ Δᵥ² + Σ Δₕ²)/(C·H·W)` (f64),
/// and its gradient times `scale`, from one pass.
pub fn tv_grad(x: &Tensor, scale: f64) -> Result<(f64, Tensor)> {
    let op = TvGrad {
        scale,
        value: Value::default(),
    };
    let g = x.apply_op1_no_bwd(&op)?;
    Ok((op.value.get(), g))
}
