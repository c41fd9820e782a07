//! neural-style-cuda: the raw CUDA backend.
//!
//! Our own kernels (`kernels/*.cu`: im2col, bias + ReLU epilogue, ReLU mask,
//! max/avg pooling and their backward, Gram symmetrisation, losses and
//! reductions, the optimisers' vector operations) run on an executor
//! (`exec.rs`'s `Executor` trait):
//! * `gpu::GpuExecutor` — cudarc with dynamic loading; NVRTC compiles the
//!   sources once per device; GEMMs through cuBLAS;
//! * `host::HostExecutor` — the same sources compiled as C++ by build.rs
//!   and launched by looping over the grid on the CPU; GEMMs with `gemm`.
//!
//! The executors are crate-private: their `upload`, `download`, `launch`
//! and `sgemm` take raw device addresses, and only this file calls them, with
//! the addresses of its own pool buffers. The public API is [`CudaBackend`]
//! (the `Backend` trait of neural-style-core) and a few read-only helpers
//! (kernel names, the NVRTC compile, TF32 rounding); no safe public function
//! takes an address:
//!
//! ```compile_fail
//! // The executor cannot be built, or called, from outside the crate.
//! let e = neural_style_cuda::host::HostExecutor::new(false);
//! ```
//!
//! The orchestration below is the same for both. Convolution is im2col + one
//! GEMM + an epilogue kernel; its input gradient is the same convolution with
//! the kernel transposed (in ↔ out) and flipped, prepared once on the device
//! in `prepare_conv` (`ns_transpose_flip`) — no weight gradient is ever computed. The Gram matrix and
//! its backward are GEMMs.
//!
//! Memory: every buffer comes from a per-backend pool keyed by size. A
//! tensor dropped returns its buffer to the pool; the next request of that
//! size reuses it. After the first iteration no device allocation happens.
//! Tensors are `Arc`s of pool buffers: a clone shares storage, and the
//! in-place vector operations write in place only when the tensor is the
//! sole owner of its buffer, otherwise into a fresh one (copy-on-write).

#![warn(missing_docs)]

pub mod exec;
pub mod gpu;
pub mod host;

use exec::{Arg, DevicePtr, Executor, Sgemm};
use neural_style_core::backend::{
    check_mask, check_rows, check_stack, AdamCoeffs, Backend, DeviceCounters, Pooling, Scalar,
    VecOps,
};
use neural_style_core::weights::ConvWeights;
use neural_style_core::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) fn err(e: impl std::fmt::Display) -> Error {
    Error::backend("cuda", e)
}

/// Threads per block of every launch.
const BLOCK: u32 = 256;
/// Upper bound on blocks of an element-wise launch (grid-stride beyond).
const MAX_GRID: u64 = 8192;
/// Blocks of the first pass of a reduction (`REDUCE_GRID · BLOCK` partials).
const REDUCE_GRID: u32 = 64;
/// Partial sums per dot product of `ns_multi_dot` (L-BFGS's batched path).
const MULTI_DOT_PER: usize = 1024;
/// Loss values that can wait on the device for one copy
/// ([`Backend::mse_grad_deferred`]); more fall back to one copy each.
const PENDING_SLOTS: usize = 256;

fn grid_for(n: usize) -> u32 {
    (n as u64).div_ceil(BLOCK as u64).clamp(1, MAX_GRID) as u32
}

struct Inner {
    exec: Arc<dyn Executor>,
    /// Free buffers by size in bytes.
    pool: Mutex<HashMap<usize, Vec<DevicePtr>>>,
    /// Bytes ever allocated on the device by this backend.
    allocated: Mutex<usize>,
    /// Deferred loss values: each slot is `BLOCK` f64 partial sums in one
    /// device buffer (allocated on first use), with the divisor to apply.
    pending: Mutex<Pending>,
    /// L-BFGS's batched path ([`VecOps::batched`]); on by default.
    batched: AtomicBool,
}

#[derive(Default)]
struct Pending {
    ptr: Option<DevicePtr>,
    divisors: Vec<f64>,
}

const PENDING_BYTES: usize = PENDING_SLOTS * BLOCK as usize * 8;

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(p) = self.pending.lock().unwrap().ptr.take() {
            // SAFETY: allocated by this executor with this size, unused now.
            unsafe { self.exec.free(p, PENDING_BYTES) };
        }
        let pool = std::mem::take(&mut *self.pool.lock().unwrap());
        for (bytes, ptrs) in pool {
            for p in ptrs {
                // SAFETY: pooled buffers came from this executor and are unused.
                unsafe { self.exec.free(p, bytes) };
            }
        }
    }
}

/// A device buffer from the pool; goes back to the pool when dropped.
pub struct Buffer {
    ptr: DevicePtr,
    bytes: usize,
    inner: Arc<Inner>,
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let mut pool = self.inner.pool.lock().unwrap();
        pool.entry(self.bytes).or_default().push(self.ptr);
    }
}

/// A `C×H×W` (or `1×C×C`) f32 tensor in device memory.
#[derive(Clone)]
pub struct CudaTensor {
    buf: Arc<Buffer>,
    dims: [usize; 3],
}

impl CudaTensor {
    fn len(&self) -> usize {
        self.dims.iter().product()
    }
    fn ptr(&self) -> DevicePtr {
        self.buf.ptr
    }
}

/// A convolution prepared on the device: the kernel (OIHW, a row-major
/// `c_out × 9·c_in` matrix), the bias, and the transposed-and-flipped kernel
/// of the input gradient.
pub struct CudaConv {
    c_in: usize,
    c_out: usize,
    weight: Buffer,
    bias: Buffer,
    weight_t: Buffer,
}

/// Precision modes, as PyTorch's: `fp32` (the default; every GEMM in full
/// single precision) and `tf32` (GEMM inputs rounded to TF32's 10-bit
/// mantissa, accumulation in f32: what `torch.backends.cudnn.allow_tf32`
/// gives PyTorch's convolutions on Ampere and later). Selected with a
/// `+tf32` suffix on `--device`. Tolerances: `tests/it/precision.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Every GEMM in full single precision (the default).
    Fp32,
    /// GEMM inputs rounded to TF32 (`--device …+tf32`).
    Tf32,
}

/// The raw CUDA backend on one executor (a GPU or the host).
#[derive(Clone)]
pub struct CudaBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBackend({})", self.inner.exec.describe())
    }
}

impl CudaBackend {
    fn with_executor(exec: Arc<dyn Executor>) -> Self {
        CudaBackend {
            inner: Arc::new(Inner {
                exec,
                pool: Mutex::new(HashMap::new()),
                allocated: Mutex::new(0),
                pending: Mutex::new(Pending::default()),
                batched: AtomicBool::new(true),
            }),
        }
    }

    /// The kernels on the CPU (slow; for tests and for machines with no GPU).
    pub fn host() -> Self {
        Self::host_with(Precision::Fp32)
    }

    /// The host executor in a precision mode (`tf32` emulates TF32 GEMMs).
    pub fn host_with(precision: Precision) -> Self {
        Self::with_executor(Arc::new(host::HostExecutor::new(
            precision == Precision::Tf32,
        )))
    }

    /// GPU `ordinal` through cudarc; `tf32` lets cuBLAS use TF32 tensor cores
    /// (off by default: parity with the other backends needs full fp32).
    /// Fails with one line when the driver, NVRTC, cuBLAS or the GPU is missing.
    pub fn gpu(ordinal: usize, tf32: bool) -> Result<Self> {
        Ok(Self::with_executor(gpu::executor(ordinal, tf32)?))
    }

    /// From a `--device` value: `host`, `gpu`, `cuda` or `cuda:N` (default
    /// `cuda:0`), each optionally followed by `+tf32` (precision mode
    /// [`Precision::Tf32`]; on the host, emulated).
    pub fn from_device(device: Option<&str>) -> Result<Self> {
        let d = device.unwrap_or("cuda:0");
        let (d, tf32) = match d.strip_suffix("+tf32") {
            Some(d) => (d, true),
            None => (d, false),
        };
        if d == "host" {
            return Ok(Self::host_with(if tf32 {
                Precision::Tf32
            } else {
                Precision::Fp32
            }));
        }
        let ordinal = match d {
            "gpu" | "cuda" => 0,
            _ => d
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    Error::config(
                        "device",
                        format!("the cuda backend takes `host`, `gpu` or `cuda:N` (optionally `+tf32`), not `{d}`"),
                    )
                })?,
        };
        Self::gpu(ordinal, tf32)
    }

    /// What `neural-style backends` lists: the GPUs found (or why none), and `host`.
    pub fn devices() -> Vec<String> {
        let mut out = match gpu::devices() {
            Ok(gpus) => match gpu::missing_library() {
                None => gpus,
                Some(why) => vec![format!("no usable GPU: {why}")],
            },
            Err(why) => vec![format!("no GPU: {why}")],
        };
        out.push("host (the CUDA kernels on the CPU; slow, for testing)".into());
        out
    }

    /// Bytes of device memory this backend has allocated (pool included).
    pub fn allocated_bytes(&self) -> usize {
        *self.inner.allocated.lock().unwrap()
    }

    /// Take L-BFGS's batched path (the default) or the per-operation one
    /// (for comparisons: counts, parity).
    pub fn set_batched(&self, on: bool) {
        self.inner.batched.store(on, Ordering::Relaxed);
    }

    fn exec(&self) -> &dyn Executor {
        &*self.inner.exec
    }

    fn buffer(&self, bytes: usize) -> Result<Buffer> {
        let reused = self
            .inner
            .pool
            .lock()
            .unwrap()
            .get_mut(&bytes)
            .and_then(Vec::pop);
        let ptr = match reused {
            Some(p) => p,
            None => {
                let p = self.exec().alloc(bytes)?;
                *self.inner.allocated.lock().unwrap() += bytes;
                p
            }
        };
        Ok(Buffer {
            ptr,
            bytes,
            inner: self.inner.clone(),
        })
    }

    fn tensor(&self, dims: [usize; 3]) -> Result<CudaTensor> {
        let n: usize = dims.iter().product();
        Ok(CudaTensor {
            buf: Arc::new(self.buffer(n * 4)?),
            dims,
        })
    }

    fn upload_f32(&self, data: &[f32]) -> Result<Buffer> {
        let b = self.buffer(data.len() * 4)?;
        self.exec().upload(b.ptr, as_bytes(data))?;
        Ok(b)
    }

    /// Launch `kernel` for `n` work items (grid-stride beyond `MAX_GRID`).
    fn launch(&self, kernel: &'static str, n: usize, args: &[Arg]) -> Result<()> {
        let (f, b) = cost(kernel);
        self.launch_costing(kernel, n, args, f * n as f64, b * n as f64)
    }

    /// [`CudaBackend::launch`] with its FLOPs and bytes given.
    fn launch_costing(
        &self,
        kernel: &'static str,
        n: usize,
        args: &[Arg],
        flops: f64,
        bytes: f64,
    ) -> Result<()> {
        self.exec().launch(kernel, grid_for(n), BLOCK, args)?;
        self.exec().counters().work(kernel, n, flops, bytes);
        Ok(())
    }

    /// A reduction kernel over `n` items whose last argument is the
    /// partial-sum buffer, launched on `REDUCE_GRID` blocks, then folded to
    /// `BLOCK` f64 sums at `folded` (on the device).
    fn reduce_into(
        &self,
        kernel: &'static str,
        n: usize,
        args: &[Arg],
        folded: DevicePtr,
    ) -> Result<()> {
        let threads = (REDUCE_GRID * BLOCK) as usize;
        let partial = self.buffer(threads * 8)?;
        let mut a = args.to_vec();
        a.push(Arg::Ptr(partial.ptr));
        self.exec().launch(kernel, REDUCE_GRID, BLOCK, &a)?;
        let (f, b) = cost(kernel);
        let counters = self.exec().counters();
        counters.work(kernel, n, f * n as f64, b * n as f64 + 8.0 * threads as f64);
        self.exec().launch(
            "ns_sum_partials",
            1,
            BLOCK,
            &[Arg::Ptr(partial.ptr), i64a(threads), Arg::Ptr(folded)],
        )?;
        counters.work(
            "ns_sum_partials",
            threads,
            threads as f64,
            8.0 * threads as f64,
        );
        Ok(())
    }

    /// [`CudaBackend::reduce_into`], brought back and added up (one copy).
    fn reduce(&self, kernel: &'static str, n: usize, args: &[Arg]) -> Result<f64> {
        let folded = self.buffer(BLOCK as usize * 8)?;
        self.reduce_into(kernel, n, args, folded.ptr)?;
        let mut out = vec![0.0f64; BLOCK as usize];
        self.exec().download(folded.ptr, as_bytes_mut(&mut out))?;
        Ok(out.iter().sum())
    }

    /// A reduction whose value (its sum divided by `divisor`) may wait on
    /// the device for [`Backend::fetch_scalars`]; immediate when every
    /// slot is taken.
    fn reduce_deferred(
        &self,
        kernel: &'static str,
        n: usize,
        args: &[Arg],
        divisor: f64,
    ) -> Result<Scalar> {
        let mut pending = self.inner.pending.lock().unwrap();
        if pending.divisors.len() >= PENDING_SLOTS {
            drop(pending);
            return Ok(Scalar::Host(self.reduce(kernel, n, args)? / divisor));
        }
        let base = match pending.ptr {
            Some(p) => p,
            None => {
                let p = self.exec().alloc(PENDING_BYTES)?;
                *self.inner.allocated.lock().unwrap() += PENDING_BYTES;
                *pending.ptr.insert(p)
            }
        };
        let slot = pending.divisors.len();
        self.reduce_into(kernel, n, args, base + (slot * BLOCK as usize * 8) as u64)?;
        pending.divisors.push(divisor);
        Ok(Scalar::Device(slot))
    }

    /// A pool buffer of at least `bytes`, rounded up to a power of two so
    /// that scratch space whose size grows with L-BFGS's history is reused.
    fn scratch(&self, bytes: usize) -> Result<Buffer> {
        self.buffer(bytes.next_power_of_two())
    }

    /// Upload 8-byte words (device pointers, f64 coefficients) into a pool
    /// buffer, for kernels that take tables.
    fn upload_words(&self, words: &[u64]) -> Result<Buffer> {
        let b = self.scratch(words.len() * 8)?;
        self.exec().upload(b.ptr, as_bytes(words))?;
        Ok(b)
    }

    /// `x` (`c_in` channels) through a 3×3 kernel to `c_out` channels:
    /// im2col (of `x` where `mask` > 0, when a mask is given: a ReLU's
    /// backward), one GEMM, then bias (+ ReLU) when a bias is given.
    fn conv(
        &self,
        x: &CudaTensor,
        mask: Option<&CudaTensor>,
        (c_in, c_out): (usize, usize),
        kernel: &Buffer,
        bias: Option<(&Buffer, bool)>,
    ) -> Result<CudaTensor> {
        let [c, h, w] = x.dims;
        if c != c_in {
            return Err(err(format!("convolution expects {c_in} channels, got {c}")));
        }
        if let Some(m) = mask {
            same_len(m, x)?;
        }
        let hw = h * w;
        let k = c_in * 9;
        let col = self.buffer(k * hw * 4)?;
        self.ns_im2col(
            k * hw,
            x.ptr(),
            mask.map_or(0, CudaTensor::ptr),
            col.ptr,
            c,
            h,
            w,
        )?;
        let y = self.tensor([c_out, h, w])?;
        // Row-major Y (c_out × hw) = W (c_out × k) · COL (k × hw), i.e.
        // column-major Yᵀ = COLᵀ · Wᵀ with no transposes.
        self.exec().sgemm(&Sgemm {
            trans_a: false,
            trans_b: false,
            m: hw,
            n: c_out,
            k,
            alpha: 1.0,
            a: col.ptr,
            lda: hw.max(1),
            b: kernel.ptr,
            ldb: k,
            beta: 0.0,
            c: y.ptr(),
            ldc: hw.max(1),
        })?;
        if let Some((b, relu)) = bias {
            self.ns_bias_act(c_out * hw, y.ptr(), b.ptr, c_out, hw, relu as usize)?;
        }
        Ok(y)
    }

    /// Max/avg pooling's backward; with `relu`, `x` is a ReLU's output and
    /// that ReLU's backward is fused in.
    fn pool_backward_masked(
        &self,
        x: &CudaTensor,
        dy: &CudaTensor,
        kind: Pooling,
        relu: bool,
    ) -> Result<CudaTensor> {
        let [c, h, w] = x.dims;
        if dy.dims != [c, h / 2, w / 2] {
            return Err(err(format!(
                "pool_backward: dy {:?} for x {:?}",
                dy.dims, x.dims
            )));
        }
        let dx = self.tensor(x.dims)?;
        self.ns_pool_backward(
            x.len(),
            x.ptr(),
            dy.ptr(),
            dx.ptr(),
            c,
            h,
            w,
            (kind == Pooling::Avg) as usize,
            relu as usize,
        )?;
        Ok(dx)
    }

    /// Gradient buffer and arguments of `ns_mse_grad` (partials appended
    /// by the reduction), and the element count.
    fn mse_args(
        &self,
        a: &CudaTensor,
        target: &CudaTensor,
        scale: f64,
    ) -> Result<(CudaTensor, Vec<Arg>, usize)> {
        let n = same_len(a, target)?;
        let g = self.tensor(a.dims)?;
        let k = (2.0 * scale / n as f64) as f32;
        let args = vec![
            Arg::Ptr(a.ptr()),
            Arg::Ptr(target.ptr()),
            Arg::Ptr(g.ptr()),
            Arg::F32(k),
            i64a(n),
        ];
        Ok((g, args, n))
    }

    /// As [`CudaBackend::mse_args`], for `ns_tv_grad`.
    fn tv_args(&self, x: &CudaTensor, scale: f64) -> Result<(CudaTensor, Vec<Arg>, usize)> {
        let [c, h, w] = x.dims;
        let n = x.len();
        let g = self.tensor(x.dims)?;
        let k = (2.0 * scale / n as f64) as f32;
        let args = vec![
            Arg::Ptr(x.ptr()),
            Arg::Ptr(g.ptr()),
            Arg::F32(k),
            i64a(c),
            i64a(h),
            i64a(w),
        ];
        Ok((g, args, n))
    }

    /// `t` itself when it is the sole owner of its buffer, else a copy.
    fn make_unique(&self, t: &mut CudaTensor) -> Result<()> {
        if Arc::strong_count(&t.buf) > 1 {
            let fresh = self.tensor(t.dims)?;
            self.ns_scale(t.len(), t.ptr(), fresh.ptr(), 1.0, t.len())?;
            *t = fresh;
        }
        Ok(())
    }

    /// Output buffer for an in-place update of `t`: its own when unshared.
    fn output_for(&self, t: &CudaTensor) -> Result<CudaTensor> {
        if Arc::strong_count(&t.buf) == 1 {
            Ok(t.clone())
        } else {
            self.tensor(t.dims)
        }
    }
}

/// FLOPs and bytes of device memory moved per work item of an element-wise
/// kernel (compulsory traffic: each operand read or written once), for the
/// counters' roofline figures. Kernels with other shapes give theirs at the
/// launch (`launch_costing`).
fn cost(kernel: &str) -> (f64, f64) {
    match kernel {
        // One column element written, one input value read.
        "ns_im2col" => (0.0, 8.0),
        "ns_bias_act" => (2.0, 8.0),
        "ns_relu" => (1.0, 8.0),
        "ns_relu_backward" => (1.0, 12.0),
        // Per output: four inputs read, one written.
        "ns_pool" => (3.0, 20.0),
        // Per input pixel: x, the window's dy, dx.
        "ns_pool_backward" => (4.0, 12.0),
        "ns_add_transpose" => (1.0, 12.0),
        "ns_mul_mask" => (1.0, 12.0),
        "ns_copy_rows" => (0.0, 8.0),
        "ns_transpose_flip" => (0.0, 8.0),
        "ns_mse_grad" => (4.0, 12.0),
        "ns_tv_grad" => (10.0, 8.0),
        "ns_dot" => (2.0, 8.0),
        "ns_norm1" => (1.0, 4.0),
        "ns_fill" => (0.0, 4.0),
        "ns_axpy" => (2.0, 12.0),
        "ns_scale" => (1.0, 8.0),
        "ns_adam" => (12.0, 28.0),
        "ns_fold" => (MULTI_DOT_PER as f64, 8.0 * MULTI_DOT_PER as f64),
        _ => (0.0, 0.0),
    }
}

fn i64a(v: usize) -> Arg {
    Arg::I64(v as i64)
}

/// A kernel parameter's Rust type: `ptr` a device address, `i64` a count or a
/// flag (`long long`), `f32`, `f64`.
macro_rules! kernel_param {
    (ptr) => {
        DevicePtr
    };
    (i64) => {
        usize
    };
    (f32) => {
        f32
    };
    (f64) => {
        f64
    };
}

/// A kernel argument, packed as the executors take it.
macro_rules! kernel_arg {
    (ptr, $v:expr) => {
        Arg::Ptr($v)
    };
    (i64, $v:expr) => {
        i64a($v)
    };
    (f32, $v:expr) => {
        Arg::F32($v)
    };
    (f64, $v:expr) => {
        Arg::F64($v)
    };
}

/// One typed launcher per element-wise kernel, written once: `name(items,
/// params…)` launches `name` for `items` work items through
/// [`CudaBackend::launch`] (its counters and cost table), the parameters in
/// the order and of the types of the kernel's `KERNEL` signature in
/// `kernels/*.cu` (checked again, at launch, against build.rs's table).
macro_rules! kernels {
    ($($kernel:ident($($arg:ident: $ty:tt),* $(,)?);)*) => {
        impl CudaBackend {$(
            #[allow(clippy::too_many_arguments)]
            fn $kernel(&self, items: usize, $($arg: kernel_param!($ty)),*) -> Result<()> {
                self.launch(stringify!($kernel), items, &[$(kernel_arg!($ty, $arg)),*])
            }
        )*}
    };
}

kernels! {
    ns_im2col(x: ptr, mask: ptr, col: ptr, c: i64, h: i64, w: i64);
    ns_bias_act(y: ptr, bias: ptr, c: i64, hw: i64, relu: i64);
    ns_relu(x: ptr, y: ptr, n: i64);
    ns_relu_backward(y: ptr, dy: ptr, dx: ptr, n: i64);
    ns_pool(x: ptr, y: ptr, c: i64, h: i64, w: i64, avg: i64);
    ns_pool_backward(x: ptr, dy: ptr, dx: ptr, c: i64, h: i64, w: i64, avg: i64, relu: i64);
    ns_add_transpose(a: ptr, s: ptr, c: i64);
    ns_transpose_flip(w: ptr, out: ptr, o: i64, i: i64);
    ns_mul_mask(x: ptr, m: ptr, out: ptr, c: i64, hw: i64);
    ns_copy_rows(
        src: ptr, dst: ptr, c: i64, w: i64,
        h_src: i64, from: i64, h_dst: i64, to: i64, rows: i64,
    );
    ns_fill(x: ptr, v: f32, n: i64);
    ns_axpy(y: ptr, x: ptr, out: ptr, alpha: f32, n: i64);
    ns_scale(x: ptr, out: ptr, alpha: f32, n: i64);
    ns_adam(
        x: ptr, g: ptr, m: ptr, v: ptr,
        lr: f64, beta1: f64, beta2: f64, eps: f64, bias1: f64, bias2: f64,
        n: i64,
    );
    ns_fold(p: ptr, groups: i64, per: i64, out: ptr);
}

/// Plain old data: no padding, no pointers, every bit pattern a valid value — what
/// may be viewed as bytes and written from bytes. Sealed: implemented here, for the
/// primitive numbers only.
trait Pod: Copy + pod::Sealed {}

mod pod {
    pub trait Sealed {}
}

macro_rules! pod {
    ($($t:ty),*) => {$(impl pod::Sealed for $t {} impl Pod for $t {})*};
}
pod!(u8, u32, i32, u64, i64, f32, f64);

fn as_bytes<T: Pod>(v: &[T]) -> &[u8] {
    // SAFETY: `T: Pod` has no padding, so every byte of the slice is initialised.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

fn as_bytes_mut<T: Pod>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: `T: Pod` has no padding and every bit pattern is a valid `T`, so any
    // bytes written through the view leave valid values.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, std::mem::size_of_val(v)) }
}

fn same_len(a: &CudaTensor, b: &CudaTensor) -> Result<usize> {
    if a.len() == b.len() {
        Ok(a.len())
    } else {
        Err(err(format!("shape mismatch: {:?} vs {:?}", a.dims, b.dims)))
    }
}

impl VecOps for CudaBackend {
    type Vector = CudaTensor;

    fn dot(&self, a: &CudaTensor, b: &CudaTensor) -> Result<f64> {
        let n = same_len(a, b)?;
        self.reduce(
            "ns_dot",
            n,
            &[Arg::Ptr(a.ptr()), Arg::Ptr(b.ptr()), i64a(n)],
        )
    }
    fn norm1(&self, a: &CudaTensor) -> Result<f64> {
        self.reduce("ns_norm1", a.len(), &[Arg::Ptr(a.ptr()), i64a(a.len())])
    }
    fn axpy(&self, alpha: f64, x: &CudaTensor, y: &mut CudaTensor) -> Result<()> {
        let n = same_len(x, y)?;
        let out = self.output_for(y)?;
        self.ns_axpy(n, y.ptr(), x.ptr(), out.ptr(), alpha as f32, n)?;
        *y = out;
        Ok(())
    }
    fn scale(&self, alpha: f64, x: &mut CudaTensor) -> Result<()> {
        let n = x.len();
        let out = self.output_for(x)?;
        self.ns_scale(n, x.ptr(), out.ptr(), alpha as f32, n)?;
        *x = out;
        Ok(())
    }
    fn batched(&self) -> bool {
        self.inner.batched.load(Ordering::Relaxed)
    }
    /// `ns_multi_dot` (every dot and ‖norm1‖₁ as `MULTI_DOT_PER` partials
    /// each), `ns_fold`, one copy back: one synchronisation.
    fn dots(
        &self,
        rows: &[&CudaTensor],
        cols: &[&CudaTensor],
        norm1: &CudaTensor,
    ) -> Result<(Vec<f64>, f64)> {
        let n = norm1.len();
        for v in rows.iter().chain(cols) {
            same_len(v, norm1)?;
        }
        let (nr, nc) = (rows.len(), cols.len());
        let table: Vec<u64> = rows.iter().chain(cols).map(|v| v.ptr()).collect();
        let table = self.upload_words(&table)?;
        let groups = nr * nc + 1;
        let partial = self.scratch(groups * MULTI_DOT_PER * 8)?;
        let folded = self.scratch(groups * 8)?;
        // Each column read once, the rows once per column (from cache on a
        // GPU, counted anyway): (nc·(1 + nr) + 1) vectors, 2 FLOPs per product.
        self.launch_costing(
            "ns_multi_dot",
            (nc + 1) * MULTI_DOT_PER,
            &[
                Arg::Ptr(table.ptr),
                i64a(nr),
                Arg::Ptr(table.ptr + 8 * nr as u64),
                i64a(nc),
                Arg::Ptr(norm1.ptr()),
                i64a(n),
                i64a(MULTI_DOT_PER),
                Arg::Ptr(partial.ptr),
            ],
            (2 * nr * nc + 1) as f64 * n as f64,
            (4 * n * (nc * (1 + nr) + 1) + 8 * groups * MULTI_DOT_PER) as f64,
        )?;
        self.ns_fold(groups, partial.ptr, groups, MULTI_DOT_PER, folded.ptr)?;
        let mut out = vec![0.0f64; groups];
        self.exec().download(folded.ptr, as_bytes_mut(&mut out))?;
        let norm = out.pop().expect("groups ≥ 1");
        Ok((out, norm))
    }
    /// `ns_combine`: the whole linear combination in one pass, coefficients
    /// and pointers uploaded together (no synchronisation).
    fn combine(&self, coeffs: &[f64], vs: &[&CudaTensor], out: &mut CudaTensor) -> Result<()> {
        let n = out.len();
        for v in vs {
            same_len(v, out)?;
        }
        if coeffs.len() != vs.len() || vs.is_empty() {
            return Err(err("combine: one coefficient per vector, at least one"));
        }
        let aliased = vs.iter().any(|v| v.ptr() == out.ptr());
        let dst = if aliased {
            self.tensor(out.dims)?
        } else {
            self.output_for(out)?
        };
        let k = vs.len();
        let mut words: Vec<u64> = vs.iter().map(|v| v.ptr()).collect();
        words.extend(coeffs.iter().map(|c| c.to_bits()));
        let table = self.upload_words(&words)?;
        self.launch_costing(
            "ns_combine",
            n,
            &[
                Arg::Ptr(table.ptr),
                Arg::Ptr(table.ptr + 8 * k as u64),
                i64a(k),
                Arg::Ptr(dst.ptr()),
                i64a(n),
            ],
            (2 * k * n) as f64,
            (4 * n * (k + 1)) as f64,
        )?;
        *out = dst;
        Ok(())
    }
    fn zeros_like(&self, like: &CudaTensor) -> Result<CudaTensor> {
        let t = self.tensor(like.dims)?;
        self.ns_fill(t.len(), t.ptr(), 0.0, t.len())?;
        Ok(t)
    }
    fn adam_update(
        &self,
        x: &mut CudaTensor,
        g: &CudaTensor,
        m: &mut CudaTensor,
        v: &mut CudaTensor,
        c: AdamCoeffs,
    ) -> Result<()> {
        let n = same_len(x, g)?;
        same_len(x, m)?;
        same_len(x, v)?;
        self.make_unique(x)?;
        self.make_unique(m)?;
        self.make_unique(v)?;
        self.ns_adam(
            n,
            x.ptr(),
            g.ptr(),
            m.ptr(),
            v.ptr(),
            c.lr,
            c.beta1,
            c.beta2,
            c.eps,
            c.bias1,
            c.bias2,
            n,
        )
    }
}

impl Backend for CudaBackend {
    type Tensor = CudaTensor;
    type Conv = CudaConv;

    fn name(&self) -> &'static str {
        "cuda"
    }
    fn device(&self) -> String {
        self.exec().describe()
    }
    fn upload(&self, data: &[f32], shape: [usize; 3]) -> Result<CudaTensor> {
        if data.len() != shape.iter().product::<usize>() {
            return Err(err(format!(
                "upload: {} values for shape {shape:?}",
                data.len()
            )));
        }
        Ok(CudaTensor {
            buf: Arc::new(self.upload_f32(data)?),
            dims: shape,
        })
    }
    fn download(&self, t: &CudaTensor) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; t.len()];
        self.exec().download(t.ptr(), as_bytes_mut(&mut out))?;
        Ok(out)
    }
    fn dims(&self, t: &CudaTensor) -> [usize; 3] {
        t.dims
    }

    fn prepare_conv(&self, w: &ConvWeights) -> Result<CudaConv> {
        let (o, i) = (w.out_channels, w.in_channels);
        let weight = self.upload_f32(&w.weight)?;
        // The input gradient's kernel, transposed and flipped on the device.
        let weight_t = self.buffer(w.weight.len() * 4)?;
        self.ns_transpose_flip(w.weight.len(), weight.ptr, weight_t.ptr, o, i)?;
        Ok(CudaConv {
            c_in: i,
            c_out: o,
            weight,
            bias: self.upload_f32(&w.bias)?,
            weight_t,
        })
    }
    fn conv3x3(&self, x: &CudaTensor, k: &CudaConv) -> Result<CudaTensor> {
        self.conv(
            x,
            None,
            (k.c_in, k.c_out),
            &k.weight,
            Some((&k.bias, false)),
        )
    }
    fn conv3x3_backward(&self, dy: &CudaTensor, k: &CudaConv) -> Result<CudaTensor> {
        self.conv(dy, None, (k.c_out, k.c_in), &k.weight_t, None)
    }
    fn conv3x3_relu(&self, x: &CudaTensor, k: &CudaConv) -> Result<CudaTensor> {
        self.conv(x, None, (k.c_in, k.c_out), &k.weight, Some((&k.bias, true)))
    }
    fn relu(&self, x: &CudaTensor) -> Result<CudaTensor> {
        let y = self.tensor(x.dims)?;
        self.ns_relu(x.len(), x.ptr(), y.ptr(), x.len())?;
        Ok(y)
    }
    fn relu_backward(&self, y: &CudaTensor, dy: &CudaTensor) -> Result<CudaTensor> {
        let n = same_len(y, dy)?;
        let dx = self.tensor(y.dims)?;
        self.ns_relu_backward(n, y.ptr(), dy.ptr(), dx.ptr(), n)?;
        Ok(dx)
    }
    fn pool(&self, x: &CudaTensor, kind: Pooling) -> Result<CudaTensor> {
        let [c, h, w] = x.dims;
        let y = self.tensor([c, h / 2, w / 2])?;
        self.ns_pool(
            y.len(),
            x.ptr(),
            y.ptr(),
            c,
            h,
            w,
            (kind == Pooling::Avg) as usize,
        )?;
        Ok(y)
    }
    fn pool_backward(&self, x: &CudaTensor, dy: &CudaTensor, kind: Pooling) -> Result<CudaTensor> {
        self.pool_backward_masked(x, dy, kind, false)
    }
    fn pool_relu_backward(
        &self,
        x: &CudaTensor,
        dy: &CudaTensor,
        kind: Pooling,
    ) -> Result<CudaTensor> {
        self.pool_backward_masked(x, dy, kind, true)
    }
    fn relu_conv3x3_backward(
        &self,
        y: &CudaTensor,
        dy: &CudaTensor,
        k: &CudaConv,
    ) -> Result<CudaTensor> {
        self.conv(dy, Some(y), (k.c_out, k.c_in), &k.weight_t, None)
    }

    fn gram(&self, f: &CudaTensor) -> Result<CudaTensor> {
        let [c, h, w] = f.dims;
        let hw = h * w;
        let g = self.tensor([1, c, c])?;
        // G = F Fᵀ / n; F row-major c × hw is column-major hw × c.
        self.exec().sgemm(&Sgemm {
            trans_a: true,
            trans_b: false,
            m: c,
            n: c,
            k: hw,
            alpha: (1.0 / (c * hw) as f64) as f32,
            a: f.ptr(),
            lda: hw.max(1),
            b: f.ptr(),
            ldb: hw.max(1),
            beta: 0.0,
            c: g.ptr(),
            ldc: c.max(1),
        })?;
        Ok(g)
    }
    fn gram_backward(&self, f: &CudaTensor, dg: &CudaTensor) -> Result<CudaTensor> {
        let [c, h, w] = f.dims;
        if dg.dims != [1, c, c] {
            return Err(err(format!(
                "gram_backward: dG {:?} for F {:?}",
                dg.dims, f.dims
            )));
        }
        let hw = h * w;
        let sym = self.tensor([1, c, c])?;
        self.ns_add_transpose(c * c, dg.ptr(), sym.ptr(), c)?;
        let df = self.tensor(f.dims)?;
        // Row-major dF (c × hw) = S (c × c) · F (c × hw) / n.
        self.exec().sgemm(&Sgemm {
            trans_a: false,
            trans_b: false,
            m: hw,
            n: c,
            k: c,
            alpha: (1.0 / (c * hw) as f64) as f32,
            a: f.ptr(),
            lda: hw.max(1),
            b: sym.ptr(),
            ldb: c.max(1),
            beta: 0.0,
            c: df.ptr(),
            ldc: hw.max(1),
        })?;
        Ok(df)
    }
    fn mse_grad(
        &self,
        a: &CudaTensor,
        target: &CudaTensor,
        scale: f64,
    ) -> Result<(f64, CudaTensor)> {
        let (g, args, n) = self.mse_args(a, target, scale)?;
        let sum = self.reduce("ns_mse_grad", n, &args)?;
        Ok((sum / n as f64, g))
    }
    fn tv_grad(&self, x: &CudaTensor, scale: f64) -> Result<(f64, CudaTensor)> {
        let (g, args, n) = self.tv_args(x, scale)?;
        let sum = self.reduce("ns_tv_grad", n, &args)?;
        Ok((sum / n as f64, g))
    }
    fn mse_grad_deferred(
        &self,
        a: &CudaTensor,
        target: &CudaTensor,
        scale: f64,
    ) -> Result<(Scalar, CudaTensor)> {
        let (g, args, n) = self.mse_args(a, target, scale)?;
        Ok((self.reduce_deferred("ns_mse_grad", n, &args, n as f64)?, g))
    }
    fn dot_deferred(&self, a: &CudaTensor, b: &CudaTensor) -> Result<Scalar> {
        let n = same_len(a, b)?;
        self.reduce_deferred(
            "ns_dot",
            n,
            &[Arg::Ptr(a.ptr()), Arg::Ptr(b.ptr()), i64a(n)],
            1.0,
        )
    }
    fn tv_grad_deferred(&self, x: &CudaTensor, scale: f64) -> Result<(Scalar, CudaTensor)> {
        let (g, args, n) = self.tv_args(x, scale)?;
        Ok((self.reduce_deferred("ns_tv_grad", n, &args, n as f64)?, g))
    }
    fn fetch_scalars(&self, s: &[Scalar]) -> Result<Vec<f64>> {
        let mut pending = self.inner.pending.lock().unwrap();
        let divisors = std::mem::take(&mut pending.divisors);
        let mut sums = vec![0.0f64; divisors.len() * BLOCK as usize];
        if let (Some(p), false) = (pending.ptr, divisors.is_empty()) {
            self.exec().download(p, as_bytes_mut(&mut sums))?;
        }
        s.iter()
            .map(|v| match *v {
                Scalar::Host(v) => Ok(v),
                Scalar::Device(i) if i < divisors.len() => {
                    let part = &sums[i * BLOCK as usize..(i + 1) * BLOCK as usize];
                    Ok(part.iter().sum::<f64>() / divisors[i])
                }
                Scalar::Device(i) => Err(err(format!(
                    "device scalar {i} was already fetched (or never deferred)"
                ))),
            })
            .collect()
    }
    fn counters(&self) -> Option<DeviceCounters> {
        Some(self.exec().counters().snapshot())
    }
    fn reset_counters(&self) {
        self.exec().counters().reset()
    }
    fn mul_mask(&self, x: &CudaTensor, mask: &CudaTensor) -> Result<CudaTensor> {
        check_mask(self.name(), x.dims, mask.len())?;
        let [c, h, w] = x.dims;
        let out = self.tensor(x.dims)?;
        self.ns_mul_mask(x.len(), x.ptr(), mask.ptr(), out.ptr(), c, h * w)?;
        Ok(out)
    }
    fn rows_on_device(&self) -> bool {
        true
    }
    fn rows(&self, t: &CudaTensor, from: usize, to: usize) -> Result<CudaTensor> {
        let [c, h, w] = t.dims;
        check_rows(self.name(), h, from, to)?;
        let n = to - from;
        let out = self.tensor([c, n, w])?;
        self.ns_copy_rows(out.len(), t.ptr(), out.ptr(), c, w, h, from, n, 0, n)?;
        Ok(out)
    }
    fn stack_rows(&self, parts: &[CudaTensor]) -> Result<CudaTensor> {
        let dims: Vec<[usize; 3]> = parts.iter().map(|p| p.dims).collect();
        let [c, _, w] = check_stack(self.name(), &dims)?;
        let h = dims.iter().map(|d| d[1]).sum();
        let out = self.tensor([c, h, w])?;
        let mut at = 0;
        for p in parts {
            let n = p.dims[1];
            self.ns_copy_rows(p.len(), p.ptr(), out.ptr(), c, w, n, 0, h, at, n)?;
            at += n;
        }
        Ok(out)
    }
    fn synchronize(&self) -> Result<()> {
        self.exec().synchronize()
    }
}
