//! The executor trait: what the backend needs from a device. Two
//! implementations — `gpu::GpuExecutor` (cudarc: NVRTC-compiled kernels,
//! cuBLAS) and `host::HostExecutor` (the same kernel sources compiled as
//! C++, the `gemm` crate) — so the backend's orchestration code is identical
//! on both. Public here: the kernel names and the counters; the executors
//! themselves are crate-private (they take raw device addresses).

use neural_style_core::backend::{DeviceCounters, KernelCount};
use neural_style_core::Result;
use std::sync::Mutex;

/// A device address (a `CUdeviceptr` on the GPU, a plain pointer on the host).
pub(crate) type DevicePtr = u64;

/// Kind of one kernel parameter, as declared in `kernels/*.cu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param {
    Ptr,
    I64,
    F32,
    F64,
}

/// One kernel argument.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg {
    Ptr(DevicePtr),
    I64(i64),
    F32(f32),
    F64(f64),
}

impl Arg {
    pub(crate) fn kind(&self) -> Param {
        match self {
            Arg::Ptr(_) => Param::Ptr,
            Arg::I64(_) => Param::I64,
            Arg::F32(_) => Param::F32,
            Arg::F64(_) => Param::F64,
        }
    }

    /// Address of the value, as `cuLaunchKernel`'s `kernelParams` wants it.
    pub(crate) fn as_param(&mut self) -> *mut std::ffi::c_void {
        match self {
            Arg::Ptr(v) => v as *mut u64 as *mut _,
            Arg::I64(v) => v as *mut i64 as *mut _,
            Arg::F32(v) => v as *mut f32 as *mut _,
            Arg::F64(v) => v as *mut f64 as *mut _,
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// The NVRTC source: `common.cuh` and every kernel file.
pub(crate) const DEVICE_SOURCE: &str = include_str!(concat!(env!("OUT_DIR"), "/device.cu"));

/// Names of every kernel in `kernels/*.cu`.
pub fn kernel_names() -> impl Iterator<Item = &'static str> {
    KERNELS.iter().map(|k| k.0)
}

/// Check `args` against kernel `name`'s declared parameters.
pub(crate) fn check_args(name: &str, args: &[Arg]) -> Result<usize> {
    let i = KERNELS
        .iter()
        .position(|k| k.0 == name)
        .ok_or_else(|| crate::err(format!("no kernel `{name}` in kernels/*.cu")))?;
    let want = KERNELS[i].1;
    let got: Vec<Param> = args.iter().map(Arg::kind).collect();
    if want != got.as_slice() {
        return Err(crate::err(format!(
            "kernel `{name}` takes {want:?}, launched with {got:?}"
        )));
    }
    Ok(i)
}

/// Column-major single-precision GEMM with cuBLAS semantics:
/// `C ← alpha·op(A)·op(B) + beta·C`, `op(A)` m×k, `op(B)` k×n, `C` m×n.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sgemm {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub a: DevicePtr,
    pub lda: usize,
    pub b: DevicePtr,
    pub ldb: usize,
    pub beta: f32,
    pub c: DevicePtr,
    pub ldc: usize,
}

/// What an executor has done since the last [`Counters::reset`]: every
/// launch (a kernel or an sgemm), every copy each way, every point where the
/// host waits for the device (a download, an explicit synchronisation, a
/// free), bytes allocated (current and peak); per kernel, launches and work
/// items (the `n` the orchestration launched it for) and, for sgemms, FLOPs
/// and the bytes of their operands. Both executors count the same events, so
/// the host executor's figures are the GPU's.
#[derive(Debug, Default)]
pub struct Counters(Mutex<DeviceCounters>);

impl Counters {
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut DeviceCounters) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
    pub(crate) fn launch(&self, name: &'static str) {
        self.with(|c| {
            c.launches += 1;
            kernel(c, name).launches += 1;
        })
    }
    /// Work items, FLOPs and bytes moved of the launch just counted (the
    /// backend knows them: `lib.rs`'s `cost`).
    pub(crate) fn work(&self, name: &'static str, items: usize, flops: f64, bytes: f64) {
        self.with(|c| {
            let k = kernel(c, name);
            k.items += items as f64;
            k.flops += flops;
            k.bytes += bytes;
        })
    }
    pub(crate) fn sgemm(&self, g: &Sgemm) {
        self.with(|c| {
            c.launches += 1;
            let k = kernel(c, "sgemm");
            k.launches += 1;
            k.flops += 2.0 * (g.m * g.n * g.k) as f64;
            k.bytes += 4.0 * (g.m * g.k + g.k * g.n + g.m * g.n) as f64;
        })
    }
    pub(crate) fn upload(&self, bytes: usize) {
        self.with(|c| {
            c.uploads += 1;
            c.upload_bytes += bytes as u64;
        })
    }
    pub(crate) fn download(&self, bytes: usize) {
        self.with(|c| {
            c.downloads += 1;
            c.download_bytes += bytes as u64;
            c.syncs += 1;
        })
    }
    pub(crate) fn sync(&self) {
        self.with(|c| c.syncs += 1)
    }
    pub(crate) fn alloc(&self, bytes: usize) {
        self.with(|c| {
            c.allocs += 1;
            c.bytes_now += bytes as u64;
            c.peak_bytes = c.peak_bytes.max(c.bytes_now);
        })
    }
    pub(crate) fn free(&self, bytes: usize) {
        self.with(|c| c.bytes_now = c.bytes_now.saturating_sub(bytes as u64))
    }
    /// A copy of the counts.
    pub fn snapshot(&self) -> DeviceCounters {
        self.with(|c| c.clone())
    }
    /// Zero every count; the peak restarts from the bytes held now.
    pub fn reset(&self) {
        self.with(|c| {
            *c = DeviceCounters {
                bytes_now: c.bytes_now,
                peak_bytes: c.bytes_now,
                ..Default::default()
            }
        })
    }
}

fn kernel<'a>(c: &'a mut DeviceCounters, name: &'static str) -> &'a mut KernelCount {
    let i = match c.kernels.iter().position(|k| k.name == name) {
        Some(i) => i,
        None => {
            c.kernels.push(KernelCount {
                name: name.to_string(),
                ..Default::default()
            });
            c.kernels.len() - 1
        }
    };
    &mut c.kernels[i]
}

/// A device that runs our kernels.
///
/// Crate-private on purpose: `alloc`, `upload`, `download`, `launch` and
/// `sgemm` take raw device addresses and would write anywhere if called with
/// a wrong one. Only `lib.rs` calls them, with the addresses of its own pool
/// buffers (`Buffer`, `CudaTensor`), sized by their element counts; nothing
/// outside the crate can reach an executor or an address.
pub(crate) trait Executor: Send + Sync {
    /// Human-readable device (`NVIDIA H100 … (cuda:0)`, `host (…)`).
    fn describe(&self) -> String;
    /// `bytes` of uninitialised device memory.
    fn alloc(&self, bytes: usize) -> Result<DevicePtr>;
    /// Give back memory from [`Executor::alloc`].
    ///
    /// # Safety
    /// `ptr` came from `alloc(bytes)` on this executor and is not used again.
    unsafe fn free(&self, ptr: DevicePtr, bytes: usize);
    /// Copy `src` to device memory at `dst` (at least `src.len()` bytes).
    fn upload(&self, dst: DevicePtr, src: &[u8]) -> Result<()>;
    /// Copy device memory at `src` into `dst` (waits for queued work).
    fn download(&self, src: DevicePtr, dst: &mut [u8]) -> Result<()>;
    /// Launch kernel `name` on a 1-D grid; `args` are checked against the
    /// kernel's declared parameters.
    fn launch(&self, name: &'static str, grid: u32, block: u32, args: &[Arg]) -> Result<()>;
    fn sgemm(&self, g: &Sgemm) -> Result<()>;
    /// Wait for all queued work.
    fn synchronize(&self) -> Result<()>;
    /// What this executor has done (see [`Counters`]).
    fn counters(&self) -> &Counters;
}
