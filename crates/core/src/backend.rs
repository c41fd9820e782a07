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

/// 2×2, stride-2 pooling (docs/DESIGN.md "Layer names").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Pooling {
    /// The maximum of each 2×2 window (VGG19's own pooling).
    #[default]
    Max,
    /// The mean of each 2×2 window (Gatys et al.'s choice for synthesis).
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
    /// Step size.
    pub lr: f64,
    /// Decay of the first-moment (mean) estimate.
    pub beta1: f64,
    /// Decay of the second-moment (uncentred variance) estimate.
    pub beta2: f64,
    /// Added to `√v̂` so that the step stays finite where `v` is zero.
    pub eps: f64,
    /// `1 - beta1^t`
    pub bias1: f64,
    /// `1 - beta2^t`
    pub bias2: f64,
}

/// A loss value from [`Backend::mse_grad_deferred`]: already on the host, or
/// still in device memory (a backend's slot), fetched with every other
/// pending value in one copy by [`Backend::fetch_scalars`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// The value, on the host already.
    Host(f64),
    /// The backend's slot holding the value on the device.
    Device(usize),
}

/// One kernel's share of [`DeviceCounters`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelCount {
    /// Kernel name (`ns_im2col`, `sgemm`, …).
    pub name: String,
    /// Launches of this kernel.
    pub launches: u64,
    /// Work items (elements, for element-wise kernels) over all launches.
    pub items: f64,
    /// FLOPs and bytes moved where the executor knows them (GEMMs).
    pub flops: f64,
    /// Bytes read and written (see `flops`).
    pub bytes: f64,
}

/// What a device backend did since its counters were last reset
/// ([`Backend::counters`]): launches (kernels and GEMMs), host↔device copies,
/// synchronisations (every point where the host waits for the device: a
/// download is one), allocations and peak bytes allocated, per kernel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceCounters {
    /// Kernel and GEMM launches.
    pub launches: u64,
    /// Host → device copies.
    pub uploads: u64,
    /// Bytes copied host → device.
    pub upload_bytes: u64,
    /// Device → host copies.
    pub downloads: u64,
    /// Bytes copied device → host.
    pub download_bytes: u64,
    /// Points where the host waited for the device (downloads included).
    pub syncs: u64,
    /// Device allocations (pool misses).
    pub allocs: u64,
    /// Bytes allocated now.
    pub bytes_now: u64,
    /// Most bytes allocated at once since the last reset.
    pub peak_bytes: u64,
    /// Per kernel, in order of first launch.
    pub kernels: Vec<KernelCount>,
}

/// Vector operations on device memory: all the optimisers need.
///
/// Reductions return `f64` (accumulated however the device likes; parity
/// tolerances allow for summation order).
pub trait VecOps {
    /// The backend's vector (its image-sized tensor type).
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

    /// `dst ← src` (default: `*dst = src.clone()`).
    fn copy_from(&self, dst: &mut Self::Vector, src: &Self::Vector) -> Result<()> {
        *dst = src.clone();
        Ok(())
    }

    /// Whether the optimisers should take their batched path (L-BFGS
    /// without per-dot round trips, [`crate::optim::Lbfgs`]): true where each
    /// reduction returned to the host costs a synchronisation and
    /// [`VecOps::dots`] / [`VecOps::combine`] are implemented natively.
    /// Default false: the per-operation path.
    fn batched(&self) -> bool {
        false
    }
    /// Every `rows[i] · cols[j]` (row-major, `rows.len() × cols.len()`) and
    /// `Σ |norm1ᵢ|`, returned together (one copy from the device). Default:
    /// one [`VecOps::dot`] each.
    fn dots(
        &self,
        rows: &[&Self::Vector],
        cols: &[&Self::Vector],
        norm1: &Self::Vector,
    ) -> Result<(Vec<f64>, f64)> {
        let mut out = Vec::with_capacity(rows.len() * cols.len());
        for r in rows {
            for c in cols {
                out.push(self.dot(r, c)?);
            }
        }
        Ok((out, self.norm1(norm1)?))
    }
    /// `out ← Σ coeffs[j] · vs[j]` (`out` keeps its shape; `vs` non-empty).
    /// Default: scaled copy of the first, then [`VecOps::axpy`]s.
    fn combine(&self, coeffs: &[f64], vs: &[&Self::Vector], out: &mut Self::Vector) -> Result<()> {
        self.copy_from(out, vs[0])?;
        self.scale(coeffs[0], out)?;
        for (c, v) in coeffs.iter().zip(vs).skip(1) {
            self.axpy(*c, v, out)?;
        }
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

    /// A `C×H×W` tensor (`shape`) from row-major host data.
    fn upload(&self, data: &[f32], shape: [usize; 3]) -> Result<Self::Tensor>;
    /// The tensor's values, row-major, on the host (waits for queued work).
    fn download(&self, t: &Self::Tensor) -> Result<Vec<f32>>;
    /// The tensor's `[C, H, W]`.
    fn dims(&self, t: &Self::Tensor) -> [usize; 3];

    /// One convolution's weights in the backend's form, prepared once per network
    /// (the input gradient's transposed and flipped kernel included, where a backend keeps one).
    fn prepare_conv(&self, w: &ConvWeights) -> Result<Self::Conv>;
    /// 3×3 convolution, padding 1, stride 1, plus bias.
    fn conv3x3(&self, x: &Self::Tensor, conv: &Self::Conv) -> Result<Self::Tensor>;
    /// Gradient with respect to the convolution's *input* only (never the weights).
    fn conv3x3_backward(&self, dy: &Self::Tensor, conv: &Self::Conv) -> Result<Self::Tensor>;
    /// `max(x, 0)` elementwise.
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
    /// Total variation of docs/DESIGN.md and its gradient, times `scale`.
    fn tv_grad(&self, x: &Self::Tensor, scale: f64) -> Result<(f64, Self::Tensor)>;

    /// `relu(conv3x3(x))`; override to fuse.
    fn conv3x3_relu(&self, x: &Self::Tensor, conv: &Self::Conv) -> Result<Self::Tensor> {
        self.relu(&self.conv3x3(x, conv)?)
    }
    /// Backward through a ReLU (output `y`) and then the convolution before
    /// it: `conv3x3_backward(relu_backward(y, dy))`; override to fuse.
    fn relu_conv3x3_backward(
        &self,
        y: &Self::Tensor,
        dy: &Self::Tensor,
        conv: &Self::Conv,
    ) -> Result<Self::Tensor> {
        self.conv3x3_backward(&self.relu_backward(y, dy)?, conv)
    }
    /// [`Backend::relu_conv3x3_backward`] taking `dy` by value (the rule of
    /// [`Backend::relu_backward_owned`]): a backend that does not fuse the
    /// two may mask `dy` in place. Default: the borrowed one (fused where a
    /// backend fuses it).
    fn relu_conv3x3_backward_owned(
        &self,
        y: &Self::Tensor,
        dy: Self::Tensor,
        conv: &Self::Conv,
    ) -> Result<Self::Tensor> {
        self.relu_conv3x3_backward(y, &dy, conv)
    }
    /// Backward through pooling and then the ReLU before it (`x`, the pooling
    /// input, is that ReLU's output): `relu_backward(x, pool_backward(x, dy))`;
    /// override to fuse.
    fn pool_relu_backward(
        &self,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        kind: Pooling,
    ) -> Result<Self::Tensor> {
        // The pooling gradient is this call's own: the ReLU may reuse it.
        self.relu_backward_owned(x, self.pool_backward(x, dy, kind)?)
    }
    /// [`Backend::relu_backward`] taking `dy` by value, so that a backend may
    /// write the result into `dy`'s memory (the candle backend does: one
    /// gradient-sized buffer fewer at the peak of a large picture). The
    /// caller must hold no other handle to `dy`'s data: core's backward pass
    /// passes only gradients it made itself. Default: out of place.
    fn relu_backward_owned(&self, y: &Self::Tensor, dy: Self::Tensor) -> Result<Self::Tensor> {
        self.relu_backward(y, &dy)
    }
    /// `acc + gram_backward(f, dg)` (the sum in that order, as
    /// [`VecOps::axpy`] with 1 makes it), taking `acc` by value so that a
    /// backend may accumulate into its memory (the candle backend does); the
    /// same rule as [`Backend::relu_backward_owned`] for `acc`. Default: the
    /// gradient, then `axpy`.
    fn gram_backward_add(
        &self,
        f: &Self::Tensor,
        dg: &Self::Tensor,
        acc: Self::Tensor,
    ) -> Result<Self::Tensor> {
        let mut acc = acc;
        let d = self.gram_backward(f, dg)?;
        self.axpy(1.0, &d, &mut acc)?;
        Ok(acc)
    }
    /// `x ⊙ m`: every channel of a `C×H×W` tensor multiplied by a `1×H×W`
    /// mask (spatial style masks, [`crate::mask`]), on the device. Being
    /// linear in `x`, its backward is the same product. A mask of another
    /// size is an error ([`check_mask`]).
    fn mul_mask(&self, x: &Self::Tensor, mask: &Self::Tensor) -> Result<Self::Tensor>;
    /// Rows `from..to` of every channel of a `C×H×W` tensor: a horizontal
    /// stripe, `C×(to−from)×W`, in memory of its own (the recomputing
    /// backward pass takes block 1 a stripe at a time, [`crate::vgg`]).
    /// Default: through the host; override to stay on the device.
    fn rows(&self, t: &Self::Tensor, from: usize, to: usize) -> Result<Self::Tensor> {
        let [c, h, w] = self.dims(t);
        check_rows(self.name(), h, from, to)?;
        let data = self.download(t)?;
        let mut out = Vec::with_capacity(c * (to - from) * w);
        for ch in data.chunks_exact(h * w) {
            out.extend_from_slice(&ch[from * w..to * w]);
        }
        self.upload(&out, [c, to - from, w])
    }
    /// Whether [`Backend::rows`] and [`Backend::stack_rows`] stay on the
    /// device. Through the host (the defaults), a stripe costs a copy of
    /// the whole tensor, so the network does not go in stripes.
    fn rows_on_device(&self) -> bool {
        false
    }
    /// Stripes of one channel count and width, top to bottom, as one
    /// tensor: the inverse of [`Backend::rows`]. Default: through the host.
    fn stack_rows(&self, parts: &[Self::Tensor]) -> Result<Self::Tensor> {
        let dims: Vec<[usize; 3]> = parts.iter().map(|p| self.dims(p)).collect();
        let [c, _, w] = check_stack(self.name(), &dims)?;
        let h: usize = dims.iter().map(|d| d[1]).sum();
        let data = parts
            .iter()
            .map(|p| self.download(p))
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(c * h * w);
        for ch in 0..c {
            for (d, p) in dims.iter().zip(&data) {
                out.extend_from_slice(&p[ch * d[1] * w..][..d[1] * w]);
            }
        }
        self.upload(&out, [c, h, w])
    }
    /// Wait for queued device work (timings); no-op on synchronous devices.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    /// [`Backend::mse_grad`] whose value may stay on the device until
    /// [`Backend::fetch_scalars`], so that the loss parts of an evaluation
    /// come back in one copy. Default: the value at once.
    fn mse_grad_deferred(
        &self,
        a: &Self::Tensor,
        target: &Self::Tensor,
        scale: f64,
    ) -> Result<(Scalar, Self::Tensor)> {
        let (v, g) = self.mse_grad(a, target, scale)?;
        Ok((Scalar::Host(v), g))
    }
    /// [`VecOps::dot`], deferred like [`Backend::mse_grad_deferred`].
    fn dot_deferred(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Scalar> {
        Ok(Scalar::Host(self.dot(a, b)?))
    }
    /// [`Backend::tv_grad`], deferred like [`Backend::mse_grad_deferred`].
    fn tv_grad_deferred(&self, x: &Self::Tensor, scale: f64) -> Result<(Scalar, Self::Tensor)> {
        let (v, g) = self.tv_grad(x, scale)?;
        Ok((Scalar::Host(v), g))
    }
    /// The values of `s`, every pending one fetched in one copy; pending
    /// slots are released.
    fn fetch_scalars(&self, s: &[Scalar]) -> Result<Vec<f64>> {
        s.iter()
            .map(|v| match v {
                Scalar::Host(v) => Ok(*v),
                Scalar::Device(_) => Err(crate::Error::backend(
                    self.name(),
                    "a device scalar, but this backend defers none",
                )),
            })
            .collect()
    }

    /// Launches, copies, synchronisations and memory since the last
    /// [`Backend::reset_counters`], for backends that count them (None: this
    /// one does not).
    fn counters(&self) -> Option<DeviceCounters> {
        None
    }
    /// Zero the counters ([`Backend::counters`]); no-op where there are none.
    fn reset_counters(&self) {}
}

/// The precondition of [`Backend::mul_mask`], for its implementations: the
/// mask has one value per pixel of `dims` (`C×H×W`), else an error naming
/// the backend.
pub fn check_mask(backend: &str, dims: [usize; 3], mask_len: usize) -> Result<()> {
    let [_, h, w] = dims;
    if mask_len == h * w && mask_len > 0 {
        Ok(())
    } else {
        Err(crate::Error::backend(
            backend,
            format!("mask of {mask_len} values for a {w}×{h} tensor"),
        ))
    }
}

/// The precondition of [`Backend::rows`], for its implementations: a
/// non-empty range of the tensor's `h` rows, else an error naming the backend.
pub fn check_rows(backend: &str, h: usize, from: usize, to: usize) -> Result<()> {
    if from < to && to <= h {
        Ok(())
    } else {
        Err(crate::Error::backend(
            backend,
            format!("rows {from}..{to} of a tensor of {h} rows"),
        ))
    }
}

/// The precondition of [`Backend::stack_rows`], for its implementations:
/// at least one stripe, all of one channel count and width (returned as the
/// first stripe's dimensions), else an error naming the backend.
pub fn check_stack(backend: &str, dims: &[[usize; 3]]) -> Result<[usize; 3]> {
    match dims.first() {
        Some(&first) if dims.iter().all(|d| d[0] == first[0] && d[2] == first[2]) => Ok(first),
        _ => Err(crate::Error::backend(
            backend,
            format!("stripes of different channels or widths, or none: {dims:?}"),
        )),
    }
}
