//! neural-style-cuda: the raw CUDA backend.
//!
//! Our own kernels (`kernels/*.cu`: im2col, bias + ReLU epilogue, ReLU mask,
//! max/avg pooling and their backward, Gram symmetrisation, losses and
//! reductions, the optimisers' vector operations) run on an [`Executor`]:
//! * [`gpu::GpuExecutor`] — cudarc with dynamic loading; NVRTC compiles the
//!   sources once per device; GEMMs through cuBLAS;
//! * [`host::HostExecutor`] — the same sources compiled as C++ by build.rs
//!   and launched by looping over the grid on the CPU; GEMMs with `gemm`.
//!
//! The orchestration below is the same for both. Convolution is im2col + one
//! GEMM + an epilogue kernel; its input gradient is the same convolution with
//! the kernel transposed (in ↔ out) and flipped, prepared once in
//! `prepare_conv` — no weight gradient is ever computed. The Gram matrix and
//! its backward are GEMMs.
//!
//! Memory: every buffer comes from a per-backend pool keyed by size. A
//! tensor dropped returns its buffer to the pool; the next request of that
//! size reuses it. After the first iteration no device allocation happens.
//! Tensors are `Arc`s of pool buffers: a clone shares storage, and the
//! in-place vector operations write in place only when the tensor is the
//! sole owner of its buffer, otherwise into a fresh one (copy-on-write).

pub mod exec;
pub mod gpu;
pub mod host;

use exec::{Arg, DevicePtr, Executor, Sgemm};
use neural_style_core::backend::{AdamCoeffs, Backend, Pooling, VecOps};
use neural_style_core::weights::{self, ConvWeights};
use neural_style_core::{Error, Result};
use std::collections::HashMap;
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

fn grid_for(n: usize) -> u32 {
    (n as u64).div_ceil(BLOCK as u64).clamp(1, MAX_GRID) as u32
}

struct Inner {
    exec: Arc<dyn Executor>,
    /// Free buffers by size in bytes.
    pool: Mutex<HashMap<usize, Vec<DevicePtr>>>,
    /// Bytes ever allocated on the device by this backend.
    allocated: Mutex<usize>,
}

impl Drop for Inner {
    fn drop(&mut self) {
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
            }),
        }
    }

    /// The kernels on the CPU (slow; for tests and for machines with no GPU).
    pub fn host() -> Self {
        Self::with_executor(Arc::new(host::HostExecutor))
    }

    /// GPU `ordinal` through cudarc; `tf32` lets cuBLAS use TF32 tensor cores
    /// (off by default: parity with the other backends needs full fp32).
    /// Fails with one line when the driver, NVRTC, cuBLAS or the GPU is missing.
    pub fn gpu(ordinal: usize, tf32: bool) -> Result<Self> {
        Ok(Self::with_executor(gpu::executor(ordinal, tf32)?))
    }

    /// From a `--device` value: `host`; or `gpu`, `cuda`, `cuda:N` (default
    /// `cuda:0`), each optionally followed by `+tf32`.
    pub fn from_device(device: Option<&str>) -> Result<Self> {
        let d = device.unwrap_or("cuda:0");
        if d == "host" {
            return Ok(Self::host());
        }
        let (d, tf32) = match d.strip_suffix("+tf32") {
            Some(d) => (d, true),
            None => (d, false),
        };
        let ordinal = match d {
            "gpu" | "cuda" => 0,
            _ => d
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    Error::config(
                        "--device",
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

    fn launch(&self, kernel: &'static str, n: usize, args: &[Arg]) -> Result<()> {
        self.exec().launch(kernel, grid_for(n), BLOCK, args)
    }

    /// A reduction kernel whose last argument is the partial-sum buffer,
    /// launched on `REDUCE_GRID` blocks, then folded in f64.
    fn reduce(&self, kernel: &'static str, args: &[Arg]) -> Result<f64> {
        let threads = (REDUCE_GRID * BLOCK) as usize;
        let partial = self.buffer(threads * 8)?;
        let folded = self.buffer(BLOCK as usize * 8)?;
        let mut a = args.to_vec();
        a.push(Arg::Ptr(partial.ptr));
        self.exec().launch(kernel, REDUCE_GRID, BLOCK, &a)?;
        self.exec().launch(
            "ns_sum_partials",
            1,
            BLOCK,
            &[Arg::Ptr(partial.ptr), i64a(threads), Arg::Ptr(folded.ptr)],
        )?;
        let mut out = vec![0.0f64; BLOCK as usize];
        self.exec().download(folded.ptr, as_bytes_mut(&mut out))?;
        Ok(out.iter().sum())
    }

    /// `x` (`c_in` channels) through a 3×3 kernel to `c_out` channels:
    /// im2col, one GEMM, then bias (+ ReLU) when a bias is given.
    fn conv(
        &self,
        x: &CudaTensor,
        (c_in, c_out): (usize, usize),
        kernel: &Buffer,
        bias: Option<(&Buffer, bool)>,
    ) -> Result<CudaTensor> {
        let [c, h, w] = x.dims;
        if c != c_in {
            return Err(err(format!("convolution expects {c_in} channels, got {c}")));
        }
        let hw = h * w;
        let k = c_in * 9;
        let col = self.buffer(k * hw * 4)?;
        self.launch(
            "ns_im2col",
            k * hw,
            &[
                Arg::Ptr(x.ptr()),
                Arg::Ptr(col.ptr),
                i64a(c),
                i64a(h),
                i64a(w),
            ],
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
            self.launch(
                "ns_bias_act",
                c_out * hw,
                &[
                    Arg::Ptr(y.ptr()),
                    Arg::Ptr(b.ptr),
                    i64a(c_out),
                    i64a(hw),
                    i64a(relu as usize),
                ],
            )?;
        }
        Ok(y)
    }

    /// `t` itself when it is the sole owner of its buffer, else a copy.
    fn make_unique(&self, t: &mut CudaTensor) -> Result<()> {
        if Arc::strong_count(&t.buf) > 1 {
            let fresh = self.tensor(t.dims)?;
            self.launch(
                "ns_scale",
                t.len(),
                &[
                    Arg::Ptr(t.ptr()),
                    Arg::Ptr(fresh.ptr()),
                    Arg::F32(1.0),
                    i64a(t.len()),
                ],
            )?;
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

fn i64a(v: usize) -> Arg {
    Arg::I64(v as i64)
}

fn as_bytes<T: Copy>(v: &[T]) -> &[u8] {
    // SAFETY: plain-old-data (f32/f64) viewed as bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

fn as_bytes_mut<T: Copy>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: plain-old-data (f32/f64), every bit pattern valid.
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
        self.reduce("ns_dot", &[Arg::Ptr(a.ptr()), Arg::Ptr(b.ptr()), i64a(n)])
    }
    fn norm1(&self, a: &CudaTensor) -> Result<f64> {
        self.reduce("ns_norm1", &[Arg::Ptr(a.ptr()), i64a(a.len())])
    }
    fn axpy(&self, alpha: f64, x: &CudaTensor, y: &mut CudaTensor) -> Result<()> {
        let n = same_len(x, y)?;
        let out = self.output_for(y)?;
        self.launch(
            "ns_axpy",
            n,
            &[
                Arg::Ptr(y.ptr()),
                Arg::Ptr(x.ptr()),
                Arg::Ptr(out.ptr()),
                Arg::F32(alpha as f32),
                i64a(n),
            ],
        )?;
        *y = out;
        Ok(())
    }
    fn scale(&self, alpha: f64, x: &mut CudaTensor) -> Result<()> {
        let n = x.len();
        let out = self.output_for(x)?;
        self.launch(
            "ns_scale",
            n,
            &[
                Arg::Ptr(x.ptr()),
                Arg::Ptr(out.ptr()),
                Arg::F32(alpha as f32),
                i64a(n),
            ],
        )?;
        *x = out;
        Ok(())
    }
    fn zeros_like(&self, like: &CudaTensor) -> Result<CudaTensor> {
        let t = self.tensor(like.dims)?;
        self.launch(
            "ns_fill",
            t.len(),
            &[Arg::Ptr(t.ptr()), Arg::F32(0.0), i64a(t.len())],
        )?;
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
        self.launch(
            "ns_adam",
            n,
            &[
                Arg::Ptr(x.ptr()),
                Arg::Ptr(g.ptr()),
                Arg::Ptr(m.ptr()),
                Arg::Ptr(v.ptr()),
                Arg::F64(c.lr),
                Arg::F64(c.beta1),
                Arg::F64(c.beta2),
                Arg::F64(c.eps),
                Arg::F64(c.bias1),
                Arg::F64(c.bias2),
                i64a(n),
            ],
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
        Ok(CudaConv {
            c_in: i,
            c_out: o,
            weight: self.upload_f32(&w.weight)?,
            bias: self.upload_f32(&w.bias)?,
            weight_t: self.upload_f32(&weights::transpose_flip(&w.weight, o, i))?,
        })
    }
    fn conv3x3(&self, x: &CudaTensor, k: &CudaConv) -> Result<CudaTensor> {
        self.conv(x, (k.c_in, k.c_out), &k.weight, Some((&k.bias, false)))
    }
    fn conv3x3_backward(&self, dy: &CudaTensor, k: &CudaConv) -> Result<CudaTensor> {
        self.conv(dy, (k.c_out, k.c_in), &k.weight_t, None)
    }
    fn conv3x3_relu(&self, x: &CudaTensor, k: &CudaConv) -> Result<CudaTensor> {
        self.conv(x, (k.c_in, k.c_out), &k.weight, Some((&k.bias, true)))
    }
    fn relu(&self, x: &CudaTensor) -> Result<CudaTensor> {
        let y = self.tensor(x.dims)?;
        self.launch(
            "ns_relu",
            x.len(),
            &[Arg::Ptr(x.ptr()), Arg::Ptr(y.ptr()), i64a(x.len())],
        )?;
        Ok(y)
    }
    fn relu_backward(&self, y: &CudaTensor, dy: &CudaTensor) -> Result<CudaTensor> {
        let n = same_len(y, dy)?;
        let dx = self.tensor(y.dims)?;
        self.launch(
            "ns_relu_backward",
            n,
            &[
                Arg::Ptr(y.ptr()),
                Arg::Ptr(dy.ptr()),
                Arg::Ptr(dx.ptr()),
                i64a(n),
            ],
        )?;
        Ok(dx)
    }
    fn pool(&self, x: &CudaTensor, kind: Pooling) -> Result<CudaTensor> {
        let [c, h, w] = x.dims;
        let y = self.tensor([c, h / 2, w / 2])?;
        self.launch(
            "ns_pool",
            y.len(),
            &[
                Arg::Ptr(x.ptr()),
                Arg::Ptr(y.ptr()),
                i64a(c),
                i64a(h),
                i64a(w),
                i64a((kind == Pooling::Avg) as usize),
            ],
        )?;
        Ok(y)
    }
    fn pool_backward(&self, x: &CudaTensor, dy: &CudaTensor, kind: Pooling) -> Result<CudaTensor> {
        let [c, h, w] = x.dims;
        if dy.dims != [c, h / 2, w / 2] {
            return Err(err(format!(
                "pool_backward: dy {:?} for x {:?}",
                dy.dims, x.dims
            )));
        }
        let dx = self.tensor(x.dims)?;
        self.launch(
            "ns_pool_backward",
            x.len(),
            &[
                Arg::Ptr(x.ptr()),
                Arg::Ptr(dy.ptr()),
                Arg::Ptr(dx.ptr()),
                i64a(c),
                i64a(h),
                i64a(w),
                i64a((kind == Pooling::Avg) as usize),
            ],
        )?;
        Ok(dx)
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
        self.launch(
            "ns_add_transpose",
            c * c,
            &[Arg::Ptr(dg.ptr()), Arg::Ptr(sym.ptr()), i64a(c)],
        )?;
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
        let n = same_len(a, target)?;
        let g = self.tensor(a.dims)?;
        let k = (2.0 * scale / n as f64) as f32;
        let sum = self.reduce(
            "ns_mse_grad",
            &[
                Arg::Ptr(a.ptr()),
                Arg::Ptr(target.ptr()),
                Arg::Ptr(g.ptr()),
                Arg::F32(k),
                i64a(n),
            ],
        )?;
        Ok((sum / n as f64, g))
    }
    fn tv_grad(&self, x: &CudaTensor, scale: f64) -> Result<(f64, CudaTensor)> {
        let [c, h, w] = x.dims;
        let n = x.len();
        let g = self.tensor(x.dims)?;
        let k = (2.0 * scale / n as f64) as f32;
        let sum = self.reduce(
            "ns_tv_grad",
            &[
                Arg::Ptr(x.ptr()),
                Arg::Ptr(g.ptr()),
                Arg::F32(k),
                i64a(c),
                i64a(h),
                i64a(w),
            ],
        )?;
        Ok((sum / n as f64, g))
    }
    fn synchronize(&self) -> Result<()> {
        self.exec().synchronize()
    }
}
