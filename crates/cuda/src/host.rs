//! The host executor: the kernels of `kernels/*.cu`, compiled as C++ by
//! build.rs, launched by looping over the grid on the CPU; GEMMs with the
//! `gemm` crate. Slow, exact, and what CI runs: no GPU needed.
//!
//! Blocks of one launch are split into contiguous ranges run in parallel by
//! rayon; that is faithful because kernels never share data between threads
//! (common.cuh). Launches run synchronously, in order.

use crate::exec::{check_args, Arg, Counters, DevicePtr, Executor, Sgemm, KERNELS};
use neural_style_core::Result;
use rayon::prelude::*;
use std::alloc::Layout;

const ALIGN: usize = 256;

/// The kernels on the CPU (crate-private: see [`Executor`]).
#[derive(Debug, Default)]
pub(crate) struct HostExecutor {
    counters: Counters,
    /// Emulate TF32 GEMMs (precision mode `tf32`): inputs rounded to TF32.
    tf32: bool,
}

impl HostExecutor {
    /// `tf32`: round every GEMM input to TF32 ([`tf32_round`]) as tensor
    /// cores do, products and sums staying f32 — the host's stand-in for
    /// cuBLAS's `CUBLAS_TF32_TENSOR_OP_MATH`, to measure what TF32 costs in
    /// accuracy without a GPU.
    pub(crate) fn new(tf32: bool) -> Self {
        HostExecutor {
            counters: Counters::default(),
            tf32,
        }
    }
}

/// `x` rounded to TF32 (8-bit exponent, 10-bit mantissa): to nearest, ties
/// away from zero, as PTX's `cvt.rna.tf32.f32`; NaN and infinities kept.
pub fn tf32_round(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    f32::from_bits(x.to_bits().wrapping_add(0x1000) & !0x1fff)
}

/// A TF32-rounded copy of the `rows × cols` column-major matrix at `p`
/// (leading dimension `ld`), with the same layout.
///
/// # Safety
/// `p` holds the matrix the dimensions describe.
unsafe fn rounded(p: DevicePtr, rows: usize, cols: usize, ld: usize) -> Vec<f32> {
    let len = if cols == 0 { 0 } else { ld * (cols - 1) + rows };
    // SAFETY: the caller's matrix spans `len` floats.
    let src = unsafe { std::slice::from_raw_parts(p as *const f32, len) };
    src.iter().map(|v| tf32_round(*v)).collect()
}

fn layout(bytes: usize) -> Layout {
    Layout::from_size_align(bytes.max(1), ALIGN).expect("valid layout")
}

struct Params(Vec<*mut std::ffi::c_void>);
// SAFETY: the parameter pointers point at `Arg`s alive for the whole launch,
// read only by the kernels.
unsafe impl Sync for Params {}
unsafe impl Send for Params {}

impl Executor for HostExecutor {
    fn describe(&self) -> String {
        format!(
            "host (CUDA kernels compiled for the CPU, {} threads; for testing{})",
            rayon::current_num_threads(),
            if self.tf32 {
                "; TF32 GEMMs emulated"
            } else {
                ""
            }
        )
    }
    fn alloc(&self, bytes: usize) -> Result<DevicePtr> {
        // SAFETY: non-zero size.
        let p = unsafe { std::alloc::alloc(layout(bytes)) };
        if p.is_null() {
            return Err(crate::err(format!(
                "host executor: out of memory ({bytes} bytes)"
            )));
        }
        self.counters.alloc(bytes);
        Ok(p as DevicePtr)
    }
    unsafe fn free(&self, ptr: DevicePtr, bytes: usize) {
        self.counters.free(bytes);
        self.counters.sync();
        // SAFETY: the caller passes what alloc returned, with its size.
        unsafe { std::alloc::dealloc(ptr as *mut u8, layout(bytes)) }
    }
    fn upload(&self, dst: DevicePtr, src: &[u8]) -> Result<()> {
        self.counters.upload(src.len());
        // SAFETY: dst is an allocation of at least src.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }
    fn download(&self, src: DevicePtr, dst: &mut [u8]) -> Result<()> {
        self.counters.download(dst.len());
        // SAFETY: src is an allocation of at least dst.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }
    fn launch(&self, name: &'static str, grid: u32, block: u32, args: &[Arg]) -> Result<()> {
        let i = check_args(name, args)?;
        self.counters.launch(name);
        let f = KERNELS[i].2;
        let mut args = args.to_vec();
        let params = Params(args.iter_mut().map(Arg::as_param).collect());
        let threads = rayon::current_num_threads() as u32;
        let work = grid as u64 * block as u64;
        let chunks = if work < 1 << 15 {
            1
        } else {
            grid.min(threads * 4)
        };
        let per = grid.div_ceil(chunks.max(1));
        (0..chunks).into_par_iter().for_each(|c| {
            let (b0, b1) = (c * per, ((c + 1) * per).min(grid));
            if b0 < b1 {
                let p = &params;
                // SAFETY: arguments match the kernel's parameters
                // (check_args); blocks b0..b1 write only their own outputs.
                unsafe { f(grid, block, p.0.as_ptr() as *mut _, b0, b1) };
            }
        });
        Ok(())
    }
    fn sgemm(&self, g: &Sgemm) -> Result<()> {
        self.counters.sgemm(g);
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        // TF32: GEMM on rounded copies of the inputs.
        let (a_copy, b_copy);
        let (mut a, mut b) = (g.a, g.b);
        if self.tf32 {
            let (ar, ac) = if g.trans_a { (g.k, g.m) } else { (g.m, g.k) };
            let (br, bc) = if g.trans_b { (g.n, g.k) } else { (g.k, g.n) };
            // SAFETY: the caller's buffers hold the matrices described.
            unsafe {
                a_copy = rounded(g.a, ar, ac, g.lda);
                b_copy = rounded(g.b, br, bc, g.ldb);
            }
            a = a_copy.as_ptr() as DevicePtr;
            b = b_copy.as_ptr() as DevicePtr;
        }
        let (a_rs, a_cs) = if g.trans_a { (g.lda, 1) } else { (1, g.lda) };
        let (b_rs, b_cs) = if g.trans_b { (g.ldb, 1) } else { (1, g.ldb) };
        let par = if g.m * g.n * g.k > 1 << 18 {
            gemm::Parallelism::Rayon(rayon::current_num_threads())
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: the caller's buffers hold the matrices the strides describe.
        unsafe {
            gemm::gemm(
                g.m,
                g.n,
                g.k,
                g.c as *mut f32,
                g.ldc as isize,
                1,
                g.beta != 0.0,
                a as *const f32,
                a_cs as isize,
                a_rs as isize,
                b as *const f32,
                b_cs as isize,
                b_rs as isize,
                g.beta,
                g.alpha,
                false,
                false,
                false,
                par,
            );
        }
        Ok(())
    }
    fn synchronize(&self) -> Result<()> {
        self.counters.sync();
        Ok(())
    }
    fn counters(&self) -> &Counters {
        &self.counters
    }
}
