//! The traits a compute backend implements.
//!
//! A backend is a bundle of small operations on its own device memory
//! ([`Backend`]: the network's primitives and the loss pieces; [`VecOps`]:
//! what the optimisers need). Everything above them — the VGG19 forward and
//! hand-written backward ([`crate::vgg`]), the canonical objective
//! ([`crate::objective`]), L-BFGS and Adam ([`crate::optim`]) and the run loop
//! ([`crate::run`]) — is written once, here in core, so every backend runs the
//! identical algorithm and parity tests compare like with like.
//!
//! Tensors are single images, planar `C×H×W`, `f32`. Composite operations
//! have defaults built from the primitives; a backend overrides one only when
//! it can do better (a fused kernel, say).

use crate::error::Result;
use crate::weights::ConvWeights;

/// 2×2, stride-2 pooling (DESIGN.md "Layer names").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Pooling {
    #[default]
    Max,
    Avg,
}

impl std::str::FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "max" => Ok(Pooling::Max),
            "avg" | "average" => Ok(Pooling::Avg),
            _ => Err(format!("unknown pooling `{s}`: use max or avg")),
        }
    }
}

/// Coefficients of one Adam update, bias corrections folded in by the caller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamCoeffs {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// `1 - beta1^t`
    pub bias1: f64,
    /// `1 - beta2^t`
    pub bias2: f64,
}

/// Vector operations on device memory: all the optimisers need.
///
/// Reductions return `f64` (accumulated however the device likes; parity
/// tolerances allow for summation order).
pub trait VecOps {
    type Vector: Clone + Send;

    /// `Σ aᵢ bᵢ`
    fn dot(&self, a: &Self::Vector, b: &Self::Vector) -> Result<f64>;
    /// `Σ |aᵢ|`
    fn norm1(&self, a: &Self::Vector) -> Result<f64>;
    /// `y ← y + alpha·x`
    fn axpy(&self, alpha: f64, x: &Self::Vector, y: &mut Self::Vector) -> Result<()>;
    /// `x ← alpha·x`
    fn scale(&self, alpha: f64, x: &mut Self::Vector) -> Result<()>;
    /// A vector of zeros shaped like `like`.
    fn zeros_like(&self, like: &Self::Vector) -> Result<Self::Vector>;
    /// One Adam step: `m ← β1 m + (1−β1) g`, `v ← β2 v + (1−β2) g²`,
    /// `x ← x − lr · (m/bias1) / (√(v/bias2) + ε)`.
    fn adam_update(
        &self,
        x: &mut Self::Vector,
        g: &Self::Vector,
        m: &mut Self::Vector,
        v: &mut Self::Vector,
        c: AdamCoeffs,
    ) -> Result<()>;

    /// `dst ← src` (default: zero it, then add).
    fn copy_from(&self, dst: &mut Self::Vector, src: &Self::Vector) -> Result<()> {
        *dst = src.clone();
        Ok(())
    }
}

/// The primitives of VGG19 and of the canonical objective on one device.
pub trait Backend: VecOps<Vector = <Self as Backend>::Tensor> + Send + Sync {
    /// A `C×H×W` (or, for Gram matrices, `1×C×C`) f32 tensor on the device.
    type Tensor: Clone + Send + Sync;
    /// A 3×3 convolution's weights, prepared for this device.
    type Conv: Send + Sync;

    /// Short name (`candle`, `tch`, `cuda`).
    fn name(&self) -> &'static str;
    /// Human-readable device (`cpu (2 threads)`, `NVIDIA H100 …`).
    fn device(&self) -> String;

    fn upload(&self, data: &[f32], shape: [usize; 3]) -> Result<Self::Tensor>;
    fn download(&self, t: &Self::Tensor) -> Result<Vec<f32>>;
    fn dims(&self, t: &Self::Tensor) -> [usize; 3];

    fn prepare_conv(&self, w: &ConvWeights) -> Result<Self::Conv>;
    /// 3×3 convolution, padding 1, stride 1, plus bias.
    fn conv3x3(&self, x: &Self::Tensor, conv: &Self::Conv) -> Result<Self::Tensor>;
    /// Gradient with respect to the convolution's *input* only (never the weights).
    fn conv3x3_backward(&self, dy: &Self::Tensor, conv: &Self::Conv) -> Result<Self::Tensor>;
    fn relu(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// `dy · [y > 0]`, where `y` is the ReLU's output (equivalently its input).
    fn relu_backward(&self, y: &Self::Tensor, dy: &Self::Tensor) -> Result<Self::Tensor>;
    /// 2×2 stride-2 pooling (odd trailing rows/columns are dropped).
    fn pool(&self, x: &Self::Tensor, kind: Pooling) -> Result<Self::Tensor>;
    /// Gradient of [`Backend::pool`] with respect to its input `x`. Max pooling
    /// routes each window's gradient to its (first) maximum, whole.
    fn pool_backward(
        &self,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        kind: Pooling,
    ) -> Result<Self::Tensor>;

    /// Gram matrix `F Fᵀ / (C·H·W)` of a `C×H×W` tensor, as `1×C×C`.
    fn gram(&self, f: &Self::Tensor) -> Result<Self::Tensor>;
    /// Gradient of [`Backend::gram`]: `(dG + dGᵀ) F / (C·H·W)`.
    fn gram_backward(&self, f: &Self::Tensor, dg: &Self::Tensor) -> Result<Self::Tensor>;
    /// `mean((a − t)²)` and its gradient with respect to `a`, times `scale`.
    fn mse_grad(
        &self,
        a: &Self::Tensor,
        target: &Self::Tensor,
        scale: f64,
    ) -> Result<(f64, Self::Tensor)>;
    /// Total variation of DESIGN.md and its gradient, times `scale`.
    fn tv_grad(&self, x: &Self::Tensor, scale: f64) -> Result<(f64, Self::Tensor)>;

    /// `relu(conv3x3(x))`; override to fuse.
    fn conv3x3_relu(&self, x: &Self::Tensor, conv: &Self::Conv) -> Result<Self::Tensor> {
        self.relu(&self.conv3x3(x, conv)?)
    }
    /// `x ⊙ m`: every channel of a `C×H×W` tensor multiplied by a `1×H×W`
    /// mask (spatial style masks, [`crate::mask`]). Being linear in `x`, its
    /// backward is the same product. The default downloads both, multiplies on
    /// the host and uploads the result; override it to stay on the device.
    fn mul_mask(&self, x: &Self::Tensor, mask: &Self::Tensor) -> Result<Self::Tensor> {
        let [c, h, w] = self.dims(x);
        let m = self.download(mask)?;
        if m.len() != h * w {
            return Err(crate::Error::backend(
                self.name(),
                format!("mask of {} values for a {w}×{h} tensor", m.len()),
            ));
        }
        let mut d = self.download(x)?;
        for plane in d.chunks_exact_mut(h * w) {
            plane.iter_mut().zip(&m).for_each(|(v, mv)| *v *= mv);
        }
        self.upload(&d, [c, h, w])
    }
    /// Wait for queued device work (timings); no-op on synchronous devices.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}
