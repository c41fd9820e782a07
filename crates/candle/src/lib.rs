//! neural-style-candle: the default backend, pure Rust on the CPU.
//!
//! Tensors are candle-core CPU tensors (f32). Convolutions are our own:
//! Winograd F(2×2, 3×3) (`winograd.rs`) where both sides have at least 16
//! channels, else im2col + GEMM (`conv.rs`, about 2× candle's `conv2d`). The
//! input gradient of a 3×3 "same" convolution is itself a 3×3 "same"
//! convolution with the kernel transposed (in ↔ out) and flipped spatially,
//! so the backward pass reuses the same fast path instead of candle's
//! `conv_transpose2d` (a direct loop on CPU) and never computes a weight
//! gradient. candle's autograd is not used at all: its max-pool backward is
//! wrong (docs/DESIGN.md), and core's hand-written backward needs only these
//! primitives. Pooling and its backward, ReLU masks, the losses and the
//! optimisers' vector operations are plain loops over the tensors' memory
//! (`ops.rs`).

#![warn(missing_docs)]

mod conv;
mod ops;
mod winograd;

use candle_core::{Device, Storage, Tensor};
use conv::Epilogue;
use neural_style_core::backend::{check_mask, AdamCoeffs, Backend, Pooling, VecOps};
use neural_style_core::weights::ConvWeights;
use neural_style_core::{Error, Result};
use std::sync::{Mutex, OnceLock};

/// The candle backend (CPU).
#[derive(Clone, Debug)]
pub struct CandleBackend {
    device: Device,
    threads: usize,
}

/// A convolution prepared for this backend: its bias and its kernel in the
/// form its path needs, made on first use (so that layers past the deepest
/// one an objective needs cost no memory beyond their weights).
pub struct CandleConv {
    c_in: usize,
    c_out: usize,
    bias: Vec<f32>,
    kernel: ConvKernel,
}

enum ConvKernel {
    /// im2col + GEMM: the OIHW kernel, and the transposed-and-flipped one of
    /// the backward pass.
    Im2col {
        weight: Vec<f32>,
        weight_t: OnceLock<Vec<f32>>,
    },
    /// Winograd: the OIHW kernel until its transform is made, then only the
    /// transform (which serves both directions; the OIHW kernel is dropped).
    Winograd {
        pending: Mutex<Option<Vec<f32>>>,
        u: OnceLock<Vec<f32>>,
    },
}

/// Fewest channels on either side for which Winograd's 16 GEMMs (inner
/// dimension `C_in`) beat one im2col GEMM (inner dimension `9·C_in`).
const WINOGRAD_MIN_CHANNELS: usize = 16;

/// `NEURAL_STYLE_CONV=im2col` turns Winograd off (for comparisons).
fn winograd_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("NEURAL_STYLE_CONV").map_or(true, |v| v != "im2col"))
}

pub(crate) fn err(e: impl std::fmt::Display) -> Error {
    Error::backend("candle", e)
}

impl CandleBackend {
    /// A CPU backend. Thread count is process-wide (rayon's global pool);
    /// see [`set_threads`].
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

/// Set the number of CPU threads (call once, before any computation).
pub fn set_threads(n: usize) -> Result<()> {
    // candle reads RAYON_NUM_THREADS for its own pools; rayon's global pool
    // is configured explicitly.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| Error::config("threads", e.to_string()))
}

/// Run `f` on the contiguous f32 data of a CPU tensor.
pub(crate) fn with_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(err("expected a CPU tensor"));
    };
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or_else(|| err("expected a contiguous tensor"))?;
    let s = cpu.as_slice::<f32>().map_err(err)?;
    Ok(f(&s[a..b]))
}

fn tensor(data: Vec<f32>, shape: [usize; 3], device: &Device) -> Result<Tensor> {
    Tensor::from_vec(data, (shape[0], shape[1], shape[2]), device).map_err(err)
}

impl CandleBackend {
    fn new_like(&self, data: Vec<f32>, like: &Tensor) -> Result<Tensor> {
        Tensor::from_vec(data, like.shape(), &self.device).map_err(err)
    }

    /// `f(a[k], b[k])` elementwise, into a new tensor shaped like `a`.
    fn map2(&self, a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32 + Sync) -> Result<Tensor> {
        let out = with_slice(a, |a| with_slice(b, |b| ops::zip_map(a, b, f)))??;
        self.new_like(out, a)
    }
}

fn check_channels(got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(err(format!(
            "convolution expects {want} channels, got {got}"
        )))
    }
}

impl CandleBackend {
    /// The layer's convolution (`backward`: its input gradient, the
    /// convolution with the kernel transposed and flipped), plus `bias`, then
    /// `epilogue`: by Winograd F(2×2, 3×3) when both sides are wide enough,
    /// else im2col + GEMM.
    fn conv(
        &self,
        x: &Tensor,
        k: &CandleConv,
        backward: bool,
        bias: Option<&[f32]>,
        epilogue: Epilogue,
    ) -> Result<Tensor> {
        let (c_in, c_out) = if backward {
            (k.c_out, k.c_in)
        } else {
            (k.c_in, k.c_out)
        };
        let [c, h, w] = self.dims(x);
        check_channels(c, c_in)?;
        let out = with_slice(x, |x| match &k.kernel {
            ConvKernel::Winograd { pending, u } => {
                let u = u.get_or_init(|| {
                    let weight = pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take()
                        .expect("the kernel is taken once, by this initialiser");
                    winograd::transform_kernel(&weight, k.c_out, k.c_in)
                });
                let form = if backward {
                    winograd::Kernel::TransposedFlipped
                } else {
                    winograd::Kernel::Direct
                };
                winograd::conv3x3(x, c, h, w, (u, form), bias, c_out, epilogue)
            }
            ConvKernel::Im2col { weight, weight_t } => {
                let kernel = if backward {
                    weight_t.get_or_init(|| conv::transpose_flip(weight, k.c_out, k.c_in))
                } else {
                    weight
                };
                conv::conv3x3(x, c, h, w, kernel, bias, c_out, epilogue)
            }
        })?;
        tensor(out, [c_out, h, w], &self.device)
    }
}

impl VecOps for CandleBackend {
    type Vector = Tensor;

    fn dot(&self, a: &Tensor, b: &Tensor) -> Result<f64> {
        with_slice(a, |a| with_slice(b, |b| ops::dot(a, b)))?
    }
    fn norm1(&self, a: &Tensor) -> Result<f64> {
        with_slice(a, ops::norm1)
    }
    fn axpy(&self, alpha: f64, x: &Tensor, y: &mut Tensor) -> Result<()> {
        let a = alpha as f32;
        *y = self.map2(y, x, |y, x| y + a * x)?;
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
        let mut xs = self.download(x)?;
        let mut ms = self.download(m)?;
        let mut vs = self.download(v)?;
        with_slice(g, |g| ops::adam(&mut xs, g, &mut ms, &mut vs, c))?;
        *x = self.new_like(xs, x)?;
        *m = self.new_like(ms, m)?;
        *v = self.new_like(vs, v)?;
        Ok(())
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
        tensor(data.to_vec(), shape, &self.device)
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
        let (o, i) = (w.out_channels, w.in_channels);
        let weight = w.weight.clone();
        let kernel = if winograd_enabled() && i.min(o) >= WINOGRAD_MIN_CHANNELS {
            ConvKernel::Winograd {
                pending: Mutex::new(Some(weight)),
                u: OnceLock::new(),
            }
        } else {
            ConvKernel::Im2col {
                weight,
                weight_t: OnceLock::new(),
            }
        };
        Ok(CandleConv {
            c_in: i,
            c_out: o,
            bias: w.bias.clone(),
            kernel,
        })
    }

    fn conv3x3(&self, x: &Tensor, k: &CandleConv) -> Result<Tensor> {
        self.conv(x, k, false, Some(k.bias.as_slice()), Epilogue::None)
    }
    fn conv3x3_backward(&self, dy: &Tensor, k: &CandleConv) -> Result<Tensor> {
        self.conv(dy, k, true, None, Epilogue::None)
    }
    fn relu(&self, x: &Tensor) -> Result<Tensor> {
        x.relu().map_err(err)
    }
    fn relu_backward(&self, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
        self.map2(y, dy, |y, d| if y > 0.0 { d } else { 0.0 })
    }
    fn pool(&self, x: &Tensor, kind: Pooling) -> Result<Tensor> {
        let [c, h, w] = self.dims(x);
        let out = with_slice(x, |x| ops::pool(x, c, h, w, kind))?;
        tensor(out, [c, h / 2, w / 2], &self.device)
    }
    fn pool_backward(&self, x: &Tensor, dy: &Tensor, kind: Pooling) -> Result<Tensor> {
        let [c, h, w] = self.dims(x);
        let out = with_slice(x, |x| {
            with_slice(dy, |dy| ops::pool_backward(x, dy, c, h, w, kind))
        })??;
        tensor(out, [c, h, w], &self.device)
    }

    fn gram(&self, f: &Tensor) -> Result<Tensor> {
        let [c, h, w] = self.dims(f);
        let g = with_slice(f, |f| conv::gram(f, c, h * w, (c * h * w) as f64))?;
        tensor(g, [1, c, c], &self.device)
    }
    fn gram_backward(&self, f: &Tensor, dg: &Tensor) -> Result<Tensor> {
        let [c, h, w] = self.dims(f);
        let n = (c * h * w) as f64;
        let out = with_slice(f, |f| {
            with_slice(dg, |dg| conv::gram_backward(f, c, h * w, dg, n))
        })??;
        tensor(out, [c, h, w], &self.device)
    }
    fn mse_grad(&self, a: &Tensor, target: &Tensor, scale: f64) -> Result<(f64, Tensor)> {
        let (value, grad) = with_slice(a, |a| with_slice(target, |t| ops::mse_grad(a, t, scale)))??;
        Ok((value, self.new_like(grad, a)?))
    }
    fn tv_grad(&self, x: &Tensor, scale: f64) -> Result<(f64, Tensor)> {
        let [c, h, w] = self.dims(x);
        let (value, grad) = with_slice(x, |x| ops::tv_grad(x, c, h, w, scale))?;
        Ok((value, self.new_like(grad, x)?))
    }

    fn conv3x3_relu(&self, x: &Tensor, k: &CandleConv) -> Result<Tensor> {
        self.conv(x, k, false, Some(k.bias.as_slice()), Epilogue::Relu)
    }
    fn mul_mask(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        check_mask(self.name(), self.dims(x), mask.elem_count())?;
        let out = with_slice(x, |x| with_slice(mask, |m| ops::mul_mask(x, m)))??;
        self.new_like(out, x)
    }
}
