//! neural-style-tch: the libtorch backend (tch 0.26, libtorch 2.13.0).
//!
//! Each primitive of core's [`Backend`] is one or two libtorch operators, on
//! the CPU or a CUDA device. libtorch's autograd is not used: core's
//! hand-written backward needs only input gradients, which libtorch provides
//! as plain operators (`max_pool2d_with_indices_backward`,
//! `avg_pool2d_backward`, `threshold_backward`), and the input gradient of a
//! 3×3 "same" convolution is the same convolution with the kernel transposed
//! (in ↔ out) and flipped, prepared once per layer. No tensor here ever
//! requires a gradient, so libtorch records no graph and computes no weight
//! gradient.
//!
//! Tensors are immutable once made: every operation returns a new tensor,
//! so a cheap shallow clone (shared storage) is a safe `Clone`, and the
//! inner `tch::Tensor` is reachable only through an `unsafe fn` that states
//! that contract (`TchTensor::tensor`).
//!
//! Building needs libtorch: `cargo xtask libtorch` installs it and prints the
//! environment the build needs (README, "Backends").

#![warn(missing_docs)]

use neural_style_core::backend::{
    check_mask, check_rows, check_stack, AdamCoeffs, Backend, Pooling, VecOps,
};
use neural_style_core::weights::ConvWeights;
use neural_style_core::{Error, Result};
use tch::{Device, Kind, Tensor};

/// The libtorch version this crate is built against (tch 0.26).
pub const LIBTORCH_VERSION: &str = "2.13.0";

/// A libtorch tensor, shared read-only.
pub struct TchTensor(Tensor);

impl Clone for TchTensor {
    fn clone(&self) -> Self {
        TchTensor(self.0.shallow_clone())
    }
}

// SAFETY: libtorch tensors may be read from several threads at once; this
// crate never mutates a tensor's storage once another reference to it can
// exist (every operation returns a fresh tensor; `conv3x3_relu`'s in-place
// ReLU runs on a fresh output no one else holds), and no safe public function
// hands out the inner `tch::Tensor` (whose `shallow_clone` would allow a
// mutation of the shared storage): [`TchTensor::tensor`] is `unsafe`, with
// that contract. So sharing references across threads is sound.
unsafe impl Sync for TchTensor {}

impl TchTensor {
    /// The libtorch tensor.
    ///
    /// # Safety
    ///
    /// The caller must not mutate the tensor's storage through the returned
    /// reference or through any `shallow_clone` of it (no in-place operator,
    /// no `copy_`, no `set_data`) for as long as this [`TchTensor`] or any
    /// clone of it exists: clones share that storage and may be read from
    /// other threads at the same time (`TchTensor` is `Sync`). Reading, and
    /// operators that return a new tensor, are fine.
    ///
    /// Without `unsafe` the call does not compile:
    ///
    /// ```compile_fail,E0133
    /// use neural_style_core::backend::Backend;
    /// let b = neural_style_tch::TchBackend::cpu();
    /// let t = b.upload(&[1.0], [1, 1, 1]).unwrap();
    /// let alias = t.tensor().shallow_clone();
    /// ```
    ///
    /// and with it, reading is what the contract allows:
    ///
    /// ```
    /// use neural_style_core::backend::Backend;
    /// let b = neural_style_tch::TchBackend::cpu();
    /// let t = b.upload(&[1.0, 2.0], [1, 1, 2]).unwrap();
    /// // SAFETY: only read.
    /// let sum = unsafe { t.tensor() }.sum(tch::Kind::Double).double_value(&[]);
    /// assert_eq!(sum, 3.0);
    /// ```
    pub unsafe fn tensor(&self) -> &Tensor {
        &self.0
    }
}

/// A convolution prepared for libtorch: the kernel, the bias, and the
/// transposed-and-flipped kernel of its input gradient.
pub struct TchConv {
    weight: Tensor,
    bias: Tensor,
    weight_t: Tensor,
}

// SAFETY: as for `TchTensor`: read-only after `prepare_conv`.
unsafe impl Sync for TchConv {}

/// The libtorch backend on one device.
#[derive(Clone, Copy, Debug)]
pub struct TchBackend {
    device: Device,
}

/// libtorch's error, kept as the source of ours.
fn err(e: tch::TchError) -> Error {
    Error::backend_source("tch", e)
}

impl TchBackend {
    /// The CPU.
    pub fn cpu() -> Self {
        TchBackend {
            device: Device::Cpu,
        }
    }

    /// A device by name: `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
    pub fn new(device: &str) -> Result<Self> {
        let device = match device {
            "cpu" => Device::Cpu,
            "cuda" | "gpu" => Device::Cuda(0),
            d => {
                let n = d
                    .strip_prefix("cuda:")
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| {
                        Error::config(
                            "device",
                            format!("unknown device `{d}` for tch: use cpu, cuda or cuda:N"),
                        )
                    })?;
                Device::Cuda(n)
            }
        };
        if let Device::Cuda(n) = device {
            let count = cuda_devices();
            if count == 0 {
                return Err(Error::config(
                    "device",
                    "tch found no CUDA device (libtorch without CUDA, no NVIDIA driver, or no GPU); use `device` cpu",
                ));
            }
            if n >= count {
                return Err(Error::config(
                    "device",
                    format!("cuda:{n} does not exist: libtorch sees {count} CUDA device(s)"),
                ));
            }
        }
        Ok(TchBackend { device })
    }

    /// The devices libtorch can use here.
    pub fn devices() -> Vec<String> {
        let mut out = vec![format!("cpu ({} threads)", tch::get_num_threads())];
        out.extend((0..cuda_devices()).map(|i| format!("cuda:{i}")));
        out
    }

    fn wrap(&self, t: Tensor) -> TchTensor {
        TchTensor(t)
    }
}

fn cuda_devices() -> usize {
    if tch::Cuda::is_available() {
        tch::Cuda::device_count().max(0) as usize
    } else {
        0
    }
}

/// Set libtorch's intra-op thread count (process-wide).
pub fn set_threads(n: usize) -> Result<()> {
    let n = i32::try_from(n).map_err(|_| Error::config("threads", "too large"))?;
    tch::set_num_threads(n);
    Ok(())
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.f_double_value(&[]).map_err(err)
}

/// A 1-element batch for the operators that want `N×C×H×W`.
fn batch(t: &Tensor) -> Result<Tensor> {
    t.f_unsqueeze(0).map_err(err)
}

fn unbatch(t: Tensor) -> Result<Tensor> {
    t.f_squeeze_dim(0).map_err(err)
}

impl VecOps for TchBackend {
    type Vector = TchTensor;

    fn dot(&self, a: &TchTensor, b: &TchTensor) -> Result<f64> {
        let p = a.0.f_mul(&b.0).map_err(err)?;
        scalar(&p.f_sum(Kind::Double).map_err(err)?)
    }

    fn norm1(&self, a: &TchTensor) -> Result<f64> {
        scalar(&a.0.f_abs().map_err(err)?.f_sum(Kind::Double).map_err(err)?)
    }

    fn axpy(&self, alpha: f64, x: &TchTensor, y: &mut TchTensor) -> Result<()> {
        let ax = x.0.f_mul_scalar(alpha).map_err(err)?;
        y.0 = y.0.f_add(&ax).map_err(err)?;
        Ok(())
    }

    fn scale(&self, alpha: f64, x: &mut TchTensor) -> Result<()> {
        x.0 = x.0.f_mul_scalar(alpha).map_err(err)?;
        Ok(())
    }

    fn zeros_like(&self, like: &TchTensor) -> Result<TchTensor> {
        Ok(self.wrap(like.0.f_zeros_like().map_err(err)?))
    }

    fn adam_update(
        &self,
        x: &mut TchTensor,
        g: &TchTensor,
        m: &mut TchTensor,
        v: &mut TchTensor,
        c: AdamCoeffs,
    ) -> Result<()> {
        let g = &g.0;
        let m2 = (&m.0 * c.beta1) + (g * (1.0 - c.beta1));
        let v2 = (&v.0 * c.beta2) + (g * g * (1.0 - c.beta2));
        let denom = (&v2 / c.bias2).f_sqrt().map_err(err)? + c.eps;
        let step = (&m2 / c.bias1) / denom * c.lr;
        x.0 = &x.0 - step;
        m.0 = m2;
        v.0 = v2;
        Ok(())
    }
}

impl Backend for TchBackend {
    type Tensor = TchTensor;
    type Conv = TchConv;

    fn name(&self) -> &'static str {
        "tch"
    }

    fn device(&self) -> String {
        match self.device {
            Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
            Device::Cuda(n) => format!("cuda:{n}"),
            d => format!("{d:?}"),
        }
    }

    fn upload(&self, data: &[f32], shape: [usize; 3]) -> Result<TchTensor> {
        if data.len() != shape.iter().product::<usize>() {
            return Err(Error::backend(
                "tch",
                format!("upload: {} values for shape {shape:?}", data.len()),
            ));
        }
        let dims = shape.map(|d| d as i64);
        let t = Tensor::f_from_slice(data)
            .and_then(|t| t.f_view(dims))
            .and_then(|t| t.f_to_device(self.device))
            .map_err(err)?;
        Ok(self.wrap(t))
    }

    fn download(&self, t: &TchTensor) -> Result<Vec<f32>> {
        let flat =
            t.0.f_to_device(Device::Cpu)
                .and_then(|t| t.f_contiguous())
                .and_then(|t| t.f_flatten(0, -1))
                .map_err(err)?;
        Vec::<f32>::try_from(&flat).map_err(err)
    }

    fn dims(&self, t: &TchTensor) -> [usize; 3] {
        let s = t.0.size();
        [s[0] as usize, s[1] as usize, s[2] as usize]
    }

    fn prepare_conv(&self, w: &ConvWeights) -> Result<TchConv> {
        let (o, i) = (w.out_channels as i64, w.in_channels as i64);
        let weight = Tensor::f_from_slice(&w.weight)
            .and_then(|t| t.f_view([o, i, 3, 3]))
            .and_then(|t| t.f_to_device(self.device))
            .map_err(err)?;
        let bias = Tensor::f_from_slice(&w.bias)
            .and_then(|t| t.f_to_device(self.device))
            .map_err(err)?;
        let weight_t = weight
            .f_transpose(0, 1)
            .and_then(|t| t.f_flip([2, 3]))
            .and_then(|t| t.f_contiguous())
            .map_err(err)?;
        Ok(TchConv {
            weight,
            bias,
            weight_t,
        })
    }

    fn conv3x3(&self, x: &TchTensor, conv: &TchConv) -> Result<TchTensor> {
        let y = batch(&x.0)?
            .f_conv2d(&conv.weight, Some(&conv.bias), [1, 1], [1, 1], [1, 1], 1)
            .map_err(err)?;
        Ok(self.wrap(unbatch(y)?))
    }

    fn conv3x3_relu(&self, x: &TchTensor, conv: &TchConv) -> Result<TchTensor> {
        let mut y = self.conv3x3(x, conv)?;
        // In place on the fresh output: nothing else refers to it yet.
        let _ = y.0.f_relu_().map_err(err)?;
        Ok(y)
    }

    fn conv3x3_backward(&self, dy: &TchTensor, conv: &TchConv) -> Result<TchTensor> {
        let dx = batch(&dy.0)?
            .f_conv2d::<Tensor>(&conv.weight_t, None, [1, 1], [1, 1], [1, 1], 1)
            .map_err(err)?;
        Ok(self.wrap(unbatch(dx)?))
    }

    fn relu(&self, x: &TchTensor) -> Result<TchTensor> {
        Ok(self.wrap(x.0.f_relu().map_err(err)?))
    }

    fn relu_backward(&self, y: &TchTensor, dy: &TchTensor) -> Result<TchTensor> {
        Ok(self.wrap(y.0.f_threshold_backward(&dy.0, 0.0).map_err(err)?))
    }

    fn pool(&self, x: &TchTensor, kind: Pooling) -> Result<TchTensor> {
        let xb = batch(&x.0)?;
        let y = match kind {
            Pooling::Max => xb.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false),
            Pooling::Avg => xb.f_avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None),
        }
        .map_err(err)?;
        Ok(self.wrap(unbatch(y)?))
    }

    fn pool_backward(&self, x: &TchTensor, dy: &TchTensor, kind: Pooling) -> Result<TchTensor> {
        let xb = batch(&x.0)?;
        let dyb = batch(&dy.0)?;
        let dx = match kind {
            Pooling::Max => {
                // libtorch's max pooling keeps the first maximum of a window,
                // as core's reference does.
                let (_, idx) = xb
                    .f_max_pool2d_with_indices([2, 2], [2, 2], [0, 0], [1, 1], false)
                    .map_err(err)?;
                xb.f_max_pool2d_with_indices_backward(
                    &dyb,
                    [2, 2],
                    [2, 2],
                    [0, 0],
                    [1, 1],
                    false,
                    &idx,
                )
            }
            Pooling::Avg => {
                xb.f_avg_pool2d_backward(&dyb, [2, 2], [2, 2], [0, 0], false, true, None)
            }
        }
        .map_err(err)?;
        Ok(self.wrap(unbatch(dx)?))
    }

    fn gram(&self, f: &TchTensor) -> Result<TchTensor> {
        let [c, h, w] = self.dims(f);
        let flat = f.0.f_view([c as i64, (h * w) as i64]).map_err(err)?;
        let g = flat
            .f_matmul(&flat.f_tr().map_err(err)?)
            .map_err(err)?
            .f_div_scalar((c * h * w) as f64)
            .and_then(|g| g.f_view([1, c as i64, c as i64]))
            .map_err(err)?;
        Ok(self.wrap(g))
    }

    fn gram_backward(&self, f: &TchTensor, dg: &TchTensor) -> Result<TchTensor> {
        let [c, h, w] = self.dims(f);
        let (c, hw) = (c as i64, (h * w) as i64);
        let dg = dg.0.f_view([c, c]).map_err(err)?;
        let sym = dg.f_add(&dg.f_tr().map_err(err)?).map_err(err)?;
        let df = sym
            .f_matmul(&f.0.f_view([c, hw]).map_err(err)?)
            .and_then(|t| t.f_div_scalar((c * hw) as f64))
            .and_then(|t| t.f_view([c, h as i64, w as i64]))
            .map_err(err)?;
        Ok(self.wrap(df))
    }

    fn mse_grad(&self, a: &TchTensor, target: &TchTensor, scale: f64) -> Result<(f64, TchTensor)> {
        let n = a.0.numel() as f64;
        let diff = a.0.f_sub(&target.0).map_err(err)?;
        let sum = scalar(
            &diff
                .f_square()
                .map_err(err)?
                .f_sum(Kind::Double)
                .map_err(err)?,
        )?;
        let grad = diff.f_mul_scalar(2.0 * scale / n).map_err(err)?;
        Ok((sum / n, self.wrap(grad)))
    }

    fn tv_grad(&self, x: &TchTensor, scale: f64) -> Result<(f64, TchTensor)> {
        let [c, h, w] = self.dims(x);
        let n = (c * h * w) as f64;
        let k = 2.0 * scale / n;
        let (h, w) = (h as i64, w as i64);
        let x = &x.0;
        let mut sum = 0.0;
        let mut grad = x.f_zeros_like().map_err(err)?;
        // Differences down the rows, then along the columns; each adds k·d
        // to the later pixel and subtracts it from the earlier one.
        for (dim, len, later, earlier) in [
            (1, h, [0, 0, 1, 0], [0, 0, 0, 1]),
            (2, w, [1, 0, 0, 0], [0, 1, 0, 0]),
        ] {
            if len < 2 {
                continue;
            }
            let d = x
                .f_narrow(dim, 1, len - 1)
                .and_then(|hi| hi.f_sub(&x.f_narrow(dim, 0, len - 1)?))
                .map_err(err)?;
            sum += scalar(
                &d.f_square()
                    .map_err(err)?
                    .f_sum(Kind::Double)
                    .map_err(err)?,
            )?;
            let kd = d.f_mul_scalar(k).map_err(err)?;
            let pad = |p: [i64; 4]| kd.f_constant_pad_nd(p).map_err(err);
            grad = grad.f_add(&pad(later)?).map_err(err)?;
            grad = grad.f_sub(&pad(earlier)?).map_err(err)?;
        }
        Ok((sum / n, self.wrap(grad)))
    }

    fn mul_mask(&self, x: &TchTensor, mask: &TchTensor) -> Result<TchTensor> {
        check_mask(self.name(), self.dims(x), mask.0.numel())?;
        let [_, h, w] = self.dims(x);
        let m = mask.0.f_reshape([1, h as i64, w as i64]).map_err(err)?;
        Ok(self.wrap(x.0.f_mul(&m).map_err(err)?))
    }

    fn rows_on_device(&self) -> bool {
        true
    }
    fn rows(&self, t: &TchTensor, from: usize, to: usize) -> Result<TchTensor> {
        check_rows(self.name(), self.dims(t)[1], from, to)?;
        let s =
            t.0.f_narrow(1, from as i64, (to - from) as i64)
                .and_then(|s| s.f_contiguous())
                .map_err(err)?;
        Ok(self.wrap(s))
    }

    fn stack_rows(&self, parts: &[TchTensor]) -> Result<TchTensor> {
        let dims: Vec<[usize; 3]> = parts.iter().map(|p| self.dims(p)).collect();
        check_stack(self.name(), &dims)?;
        let ts: Vec<&Tensor> = parts.iter().map(|p| &p.0).collect();
        Ok(self.wrap(Tensor::f_cat(&ts, 1).map_err(err)?))
    }

    fn synchronize(&self) -> Result<()> {
        if let Device::Cuda(n) = self.device {
            tch::Cuda::synchronize(n as i64);
        }
        Ok(())
    }
}
