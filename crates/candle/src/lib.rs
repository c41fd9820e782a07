//! neural-style-candle: the default backend, pure Rust on the CPU.
//!
//! Tensors are candle-core CPU tensors (f32, `C×H×W`). The backend uses
//! candle's own operations where they give the same bytes and are off the
//! hot path (ReLU, scaling, zeros, the mask product, copies), and this crate's
//! kernels, written as candle custom operations ([`ops`]), for the rest:
//! the convolutions (Winograd F(2×2, 3×3) where both sides have at least 16
//! channels and the map at least 512 pixels, else im2col + GEMM; about 2×
//! candle's `conv2d`) and their input
//! gradient (the same convolution with the kernel transposed and flipped, not
//! candle's direct-loop `conv_transpose2d`), pooling and its backward
//! (candle's max-pool backward is wrong), Gram matrices and their backward,
//! the ReLU gradient, `axpy`, and the reductions (f64, fixed order). candle's
//! autograd is not used: core's hand-written backward needs only these
//! primitives. [`ops`] is public: a candle user can call the same kernels on
//! their own tensors.

#![warn(missing_docs)]

mod conv;
mod loops;
mod matmul;
pub mod ops;
mod winograd;
mod winograd4;

use candle_core::{Device, Storage, Tensor};
use neural_style_core::backend::{
    check_mask, check_rows, check_stack, AdamCoeffs, Backend, Pooling, VecOps,
};
use neural_style_core::weights::ConvWeights;
use neural_style_core::{Error, Result};
pub use ops::CandleConv;

/// The candle backend (CPU).
#[derive(Clone, Debug)]
pub struct CandleBackend {
    device: Device,
    threads: usize,
}

/// A candle error as this backend's error, kept as its `source()` (the
/// message is candle's, unchanged).
fn err(e: candle_core::Error) -> Error {
    Error::backend_source("candle", e)
}

impl CandleBackend {
    /// A CPU backend. Thread count is process-wide: rayon's global pool, which
    /// the front-end sizes (`backends::set_threads` in the root crate). The
    /// candle ops this backend calls (ReLU, scaling, the mask product) run on
    /// the calling thread, so no environment variable is read or set.
    pub fn cpu() -> Self {
        CandleBackend {
            device: Device::Cpu,
            threads: rayon::current_num_threads(),
        }
    }

    /// The devices this backend can use.
    pub fn devices() -> Vec<String> {
        vec![format!("cpu ({} threads)", rayon::current_num_threads())]
    }
}

/// Run `f` on the contiguous f32 data of a CPU tensor.
fn with_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(Error::backend("candle", "expected a CPU tensor"));
    };
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or_else(|| Error::backend("candle", "expected a contiguous tensor"))?;
    let s = cpu.as_slice::<f32>().map_err(err)?;
    Ok(f(&s[a..b]))
}

impl VecOps for CandleBackend {
    type Vector = Tensor;

    fn dot(&self, a: &Tensor, b: &Tensor) -> Result<f64> {
        ops::dot(a, b).map_err(err)
    }
    fn norm1(&self, a: &Tensor) -> Result<f64> {
        ops::norm1(a).map_err(err)
    }
    fn axpy(&self, alpha: f64, x: &Tensor, y: &mut Tensor) -> Result<()> {
        *y = ops::axpy(alpha as f32, x, y).map_err(err)?;
        Ok(())
    }
    fn scale(&self, alpha: f64, x: &mut Tensor) -> Result<()> {
        *x = (&*x * alpha).map_err(err)?;
        Ok(())
    }
    fn zeros_like(&self, like: &Tensor) -> Result<Tensor> {
        like.zeros_like().map_err(err)
    }
    fn adam_update(
        &self,
        x: &mut Tensor,
        g: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        c: AdamCoeffs,
    ) -> Result<()> {
        // Three outputs, each element's update computed in f64: a loop over
        // the tensors' memory (candle's ops would round every step to f32,
        // changing the bytes of every Adam run).
        let mut xs = self.download(x)?;
        let mut ms = self.download(m)?;
        let mut vs = self.download(v)?;
        with_slice(g, |g| loops::adam(&mut xs, g, &mut ms, &mut vs, c))?;
        *x = self.new_like(xs, x)?;
        *m = self.new_like(ms, m)?;
        *v = self.new_like(vs, v)?;
        Ok(())
    }
}

impl CandleBackend {
    fn new_like(&self, data: Vec<f32>, like: &Tensor) -> Result<Tensor> {
        Tensor::from_vec(data, like.shape(), &self.device).map_err(err)
    }
}

impl Backend for CandleBackend {
    type Tensor = Tensor;
    type Conv = CandleConv;

    fn name(&self) -> &'static str {
        "candle"
    }
    fn device(&self) -> String {
        format!("cpu ({} threads)", self.threads)
    }
    fn upload(&self, data: &[f32], shape: [usize; 3]) -> Result<Tensor> {
        Tensor::from_slice(data, (shape[0], shape[1], shape[2]), &self.device).map_err(err)
    }
    fn download(&self, t: &Tensor) -> Result<Vec<f32>> {
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(err)
    }
    fn dims(&self, t: &Tensor) -> [usize; 3] {
        let d = t.dims();
        [d[0], d[1], d[2]]
    }

    fn prepare_conv(&self, w: &ConvWeights) -> Result<CandleConv> {
        CandleConv::from_parts(
            w.out_channels,
            w.in_channels,
            w.weight.clone(),
            Some(w.bias.clone()),
        )
        .map_err(err)
    }

    fn conv3x3(&self, x: &Tensor, k: &CandleConv) -> Result<Tensor> {
        k.forward(x).map_err(err)
    }
    fn conv3x3_backward(&self, dy: &Tensor, k: &CandleConv) -> Result<Tensor> {
        k.input_grad(dy).map_err(err)
    }
    fn conv3x3_relu(&self, x: &Tensor, k: &CandleConv) -> Result<Tensor> {
        k.forward_relu(x).map_err(err)
    }
    fn relu(&self, x: &Tensor) -> Result<Tensor> {
        x.relu().map_err(err)
    }
    fn relu_backward(&self, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
        y.apply_op2_no_bwd(dy, &ops::ReluBackward).map_err(err)
    }
    fn relu_backward_owned(&self, y: &Tensor, dy: Tensor) -> Result<Tensor> {
        // `dy` is the caller's alone (the trait's rule): masked in place.
        dy.inplace_op2(y, &ops::ReluBackwardInPlace).map_err(err)?;
        Ok(dy)
    }
    fn relu_conv3x3_backward_owned(
        &self,
        y: &Tensor,
        dy: Tensor,
        k: &CandleConv,
    ) -> Result<Tensor> {
        self.conv3x3_backward(&self.relu_backward_owned(y, dy)?, k)
    }
    fn gram_backward_add(&self, f: &Tensor, dg: &Tensor, acc: Tensor) -> Result<Tensor> {
        acc.inplace_op3(f, dg, &ops::GramBackwardAdd).map_err(err)?;
        Ok(acc)
    }
    fn pool(&self, x: &Tensor, kind: Pooling) -> Result<Tensor> {
        x.apply_op1_no_bwd(&ops::Pool(kind)).map_err(err)
    }
    fn pool_backward(&self, x: &Tensor, dy: &Tensor, kind: Pooling) -> Result<Tensor> {
        x.apply_op2_no_bwd(dy, &ops::PoolBackward(kind))
            .map_err(err)
    }

    fn gram(&self, f: &Tensor) -> Result<Tensor> {
        f.apply_op1_no_bwd(&ops::Gram).map_err(err)
    }
    fn gram_backward(&self, f: &Tensor, dg: &Tensor) -> Result<Tensor> {
        f.apply_op2_no_bwd(dg, &ops::GramBackward).map_err(err)
    }
    fn mse_grad(&self, a: &Tensor, target: &Tensor, scale: f64) -> Result<(f64, Tensor)> {
        ops::mse_grad(a, target, scale).map_err(err)
    }
    fn tv_grad(&self, x: &Tensor, scale: f64) -> Result<(f64, Tensor)> {
        ops::tv_grad(x, scale).map_err(err)
    }

    fn rows_on_device(&self) -> bool {
        true
    }
    fn rows(&self, t: &Tensor, from: usize, to: usize) -> Result<Tensor> {
        check_rows(self.name(), self.dims(t)[1], from, to)?;
        t.narrow(1, from, to - from)
            .and_then(|s| s.contiguous())
            .map_err(err)
    }
    fn stack_rows(&self, parts: &[Tensor]) -> Result<Tensor> {
        let dims: Vec<[usize; 3]> = parts.iter().map(|p| self.dims(p)).collect();
        check_stack(self.name(), &dims)?;
        Tensor::cat(parts, 1).map_err(err)
    }

    fn mul_mask(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let [_, h, w] = self.dims(x);
        check_mask(self.name(), self.dims(x), mask.elem_count())?;
        // One multiplication per element: candle's broadcast product gives
        // the same bytes.
        mask.reshape((1, h, w))
            .and_then(|m| x.broadcast_mul(&m))
            .map_err(err)
    }
}
