//! The GPU executor: cudarc with dynamic loading. The kernel sources are
//! compiled once per device with NVRTC (for that device's architecture) and
//! kept in a per-device cache; GEMMs go to cuBLAS; everything is queued on
//! one stream, so a buffer returned to the backend's pool can be reused by
//! the next launch without a synchronisation.

use crate::exec::{check_args, Arg, Counters, DevicePtr, Executor, Sgemm, DEVICE_SOURCE, KERNELS};
use cudarc::cublas::{sys as cublas_sys, CudaBlas};
use cudarc::driver::{result, CudaContext, CudaFunction, CudaStream};
use neural_style_core::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The kernels on an NVIDIA GPU (crate-private: see [`Executor`]).
pub(crate) struct GpuExecutor {
    ordinal: usize,
    name: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    functions: HashMap<&'static str, CudaFunction>,
    counters: Counters,
}

// SAFETY: every use of the cuBLAS handle and the stream goes through `&self`
// and the driver serialises work on one stream; functions are immutable
// handles.
unsafe impl Send for GpuExecutor {}
unsafe impl Sync for GpuExecutor {}

/// A driver, NVRTC or cuBLAS error with what was being done: displayed as
/// `what: {error:?}` (the message users see), the error itself kept as the
/// [`std::error::Error::source`].
#[derive(Debug)]
struct GpuError<E> {
    what: String,
    error: E,
}

impl<E: std::fmt::Debug> std::fmt::Display for GpuError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {:?}", self.what, self.error)
    }
}

impl<E: std::error::Error + 'static> std::error::Error for GpuError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

fn gpu_err<E: std::error::Error + Send + Sync + 'static>(
    what: &str,
    e: E,
) -> neural_style_core::Error {
    neural_style_core::Error::backend_source(
        "cuda",
        GpuError {
            what: what.to_string(),
            error: e,
        },
    )
}

/// Why this machine cannot run the GPU executor, if it cannot (probes the
/// libraries before any driver call: a missing libcuda would panic).
pub fn missing_library() -> Option<&'static str> {
    // SAFETY: only tries to open the shared libraries.
    unsafe {
        if !cudarc::driver::sys::is_culib_present() {
            return Some("no NVIDIA driver found (libcuda not loadable)");
        }
        if !cudarc::nvrtc::sys::is_culib_present() {
            return Some("NVRTC not found (libnvrtc not loadable; it ships with the CUDA toolkit and with the nvidia-cuda-nvrtc wheel)");
        }
        if !cudarc::cublas::sys::is_culib_present() {
            return Some("cuBLAS not found (libcublas not loadable; it ships with the CUDA toolkit and with the nvidia-cublas wheel)");
        }
    }
    None
}

/// The GPUs the driver reports, as `cuda:N (name)`, or why there are none.
pub fn devices() -> std::result::Result<Vec<String>, String> {
    // SAFETY: only tries to open the shared library.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("no NVIDIA driver found (libcuda not loadable)".into());
    }
    result::init().map_err(|e| format!("the NVIDIA driver did not initialise: {e}"))?;
    let n = result::device::get_count().map_err(|e| format!("cannot count GPUs: {e}"))?;
    if n == 0 {
        return Err("the NVIDIA driver reports no GPU".into());
    }
    Ok((0..n)
        .map(|i| {
            let name = result::device::get(i)
                .and_then(result::device::get_name)
                .unwrap_or_else(|_| "unknown GPU".into());
            format!("cuda:{i} ({name})")
        })
        .collect())
}

/// NVRTC's options for the kernels, for GPU architecture `arch` (`sm_90`).
/// Parity first: IEEE division and square roots, no flush to zero.
pub fn nvrtc_options(arch: &str) -> Vec<String> {
    vec![
        format!("--gpu-architecture={arch}"),
        "--prec-div=true".into(),
        "--prec-sqrt=true".into(),
        "--ftz=false".into(),
    ]
}

/// What NVRTC made of `kernels/*.cu`: the PTX, and its log (warnings).
pub struct Compiled {
    /// The PTX, for the device's `sm_XY`.
    pub ptx: String,
    /// NVRTC's log (empty when it had nothing to say).
    pub log: String,
}

/// Compile every kernel (`common.cuh` + `kernels/*.cu`) with NVRTC for
/// `arch`, exactly as the GPU executor does when it starts (needs only
/// NVRTC, no driver or GPU: CI's `tests/it/nvrtc.rs` calls this too).
pub fn compile(arch: &str) -> Result<Compiled> {
    use cudarc::nvrtc::result as nvrtc;
    let text = |v: Vec<std::ffi::c_char>| {
        let bytes: Vec<u8> = v.iter().map(|c| *c as u8).take_while(|b| *b != 0).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let src = std::ffi::CString::new(DEVICE_SOURCE).expect("no NUL in the kernel sources");
    let prog = nvrtc::create_program(&src, Some(c"neural_style_kernels.cu"))
        .map_err(|e| gpu_err("NVRTC", e))?;
    // SAFETY: `prog` was just created and is destroyed once, below.
    unsafe {
        let compiled = nvrtc::compile_program(prog, &nvrtc_options(arch));
        let log = nvrtc::get_program_log(prog).map(text).unwrap_or_default();
        let out = match compiled {
            Ok(()) => nvrtc::get_ptx(prog)
                .map(|p| Compiled { ptx: text(p), log })
                .map_err(|e| gpu_err("NVRTC PTX", e)),
            Err(e) => Err(crate::err(format!(
                "NVRTC compiling kernels/*.cu for {arch}: {e:?}\n{log}"
            ))),
        };
        let _ = nvrtc::destroy_program(prog);
        out
    }
}

/// Executors by (ordinal, TF32).
type Cache = Mutex<HashMap<(usize, bool), Arc<GpuExecutor>>>;

/// One executor per device per process: NVRTC runs once per device.
pub(crate) fn executor(ordinal: usize, tf32: bool) -> Result<Arc<GpuExecutor>> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    if let Some(e) = cache.get(&(ordinal, tf32)) {
        return Ok(e.clone());
    }
    let e = Arc::new(GpuExecutor::new(ordinal, tf32)?);
    cache.insert((ordinal, tf32), e.clone());
    Ok(e)
}

impl GpuExecutor {
    fn new(ordinal: usize, tf32: bool) -> Result<Self> {
        if let Some(why) = missing_library() {
            return Err(crate::err(format!(
                "{why}; use `device` host to run the kernels on the CPU, or another backend"
            )));
        }
        let count = devices().map_err(crate::err)?.len();
        if ordinal >= count {
            return Err(neural_style_core::Error::config(
                "device",
                format!("no GPU cuda:{ordinal}: the driver reports {count}"),
            ));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| gpu_err("creating a CUDA context", e))?;
        let name = ctx.name().map_err(|e| gpu_err("device name", e))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| gpu_err("compute capability", e))?;
        let arch = format!("sm_{major}{minor}");
        let compiled = compile(&arch)?;
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(compiled.ptx))
            .map_err(|e| gpu_err("loading the compiled kernels", e))?;
        let mut functions = HashMap::new();
        for (k, _, _) in KERNELS {
            let f = module
                .load_function(k)
                .map_err(|e| gpu_err(&format!("kernel {k}"), e))?;
            functions.insert(*k, f);
        }
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(|e| gpu_err("cuBLAS", e))?;
        let mode = if tf32 {
            cublas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            cublas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: a valid handle.
        unsafe { cublas_sys::cublasSetMathMode(*blas.handle(), mode) }
            .result()
            .map_err(|e| gpu_err("cuBLAS math mode", e))?;
        Ok(GpuExecutor {
            ordinal,
            name: format!(
                "{name} (cuda:{ordinal}, {arch}{})",
                if tf32 { ", TF32" } else { "" }
            ),
            ctx,
            stream,
            blas,
            functions,
            counters: Counters::default(),
        })
    }

    fn bind(&self) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| gpu_err("binding the CUDA context", e))
    }
}

impl Executor for GpuExecutor {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn alloc(&self, bytes: usize) -> Result<DevicePtr> {
        self.bind()?;
        // SAFETY: plain allocation; freed by `free`.
        let p = unsafe { result::malloc_sync(bytes.max(1)) }.map_err(|e| {
            gpu_err(
                &format!("allocating {bytes} bytes on cuda:{}", self.ordinal),
                e,
            )
        })?;
        self.counters.alloc(bytes);
        Ok(p)
    }
    unsafe fn free(&self, ptr: DevicePtr, bytes: usize) {
        self.counters.free(bytes);
        self.counters.sync();
        if self.bind().is_ok() {
            // Queued work may still use it: wait first.
            let _ = self.stream.synchronize();
            // SAFETY: the caller passes what alloc returned.
            let _ = unsafe { result::free_sync(ptr) };
        }
    }
    fn upload(&self, dst: DevicePtr, src: &[u8]) -> Result<()> {
        self.bind()?;
        self.counters.upload(src.len());
        // SAFETY: dst holds at least src.len() bytes. `src` is pageable
        // memory: the driver copies it to a staging buffer before returning
        // and does not synchronise the device (CUDA Runtime API,
        // "API synchronization behavior", memcpy asynchronous, pageable host
        // to device), so `src` may be dropped on return without a wait.
        unsafe {
            result::memcpy_htod_async(dst, src, self.stream.cu_stream())
                .map_err(|e| gpu_err("upload", e))
        }
    }
    fn download(&self, src: DevicePtr, dst: &mut [u8]) -> Result<()> {
        self.bind()?;
        self.counters.download(dst.len());
        // SAFETY: src holds at least dst.len() bytes.
        unsafe {
            result::memcpy_dtoh_async(dst, src, self.stream.cu_stream())
                .map_err(|e| gpu_err("download", e))?;
        }
        self.stream
            .synchronize()
            .map_err(|e| gpu_err("synchronize", e))
    }
    fn launch(&self, name: &'static str, grid: u32, block: u32, args: &[Arg]) -> Result<()> {
        check_args(name, args)?;
        self.bind()?;
        self.counters.launch(name);
        let f = &self.functions[name];
        let mut args = args.to_vec();
        let mut params: Vec<_> = args.iter_mut().map(Arg::as_param).collect();
        // SAFETY: argument kinds match the kernel's declaration (checked),
        // pointers are live device buffers owned by the backend.
        unsafe {
            result::launch_kernel(
                f.cu_function(),
                (grid, 1, 1),
                (block, 1, 1),
                0,
                self.stream.cu_stream(),
                &mut params,
            )
        }
        .map_err(|e| gpu_err(&format!("launching {name}"), e))
    }
    fn sgemm(&self, g: &Sgemm) -> Result<()> {
        use cublas_sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        self.bind()?;
        self.counters.sgemm(g);
        let op = |t| if t { CUBLAS_OP_T } else { CUBLAS_OP_N };
        // SAFETY: buffers hold the matrices the leading dimensions describe.
        unsafe {
            cudarc::cublas::result::sgemm(
                *self.blas.handle(),
                op(g.trans_a),
                op(g.trans_b),
                g.m as i32,
                g.n as i32,
                g.k as i32,
                &g.alpha,
                g.a as *const f32,
                g.lda as i32,
                g.b as *const f32,
                g.ldb as i32,
                &g.beta,
                g.c as *mut f32,
                g.ldc as i32,
            )
        }
        .map_err(|e| gpu_err("cuBLAS sgemm", e))
    }
    fn synchronize(&self) -> Result<()> {
        self.counters.sync();
        self.stream
            .synchronize()
            .map_err(|e| gpu_err("synchronize", e))
    }
    fn counters(&self) -> &Counters {
        &self.counters
    }
}
