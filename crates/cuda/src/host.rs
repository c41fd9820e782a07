//! The host executor: the kernels of `kernels/*.cu`, compiled as C++ by
//! build.rs, launched by looping over the grid on the CPU; GEMMs with the
//! `gemm` crate. Slow, exact, and what CI runs: no GPU needed.
//!
//! Blocks of one launch are split into contiguous ranges run in parallel by
//! rayon; that is faithful because kernels never share data between threads
//! (common.cuh). Launches run synchronously, in order.

use crate::exec::{check_args, Arg, DevicePtr, Executor, Sgemm, KERNELS};
use neural_style_core::Result;
use rayon::prelude::*;
use std::alloc::Layout;

const ALIGN: usize = 256;

#[derive(Debug, Default)]
pub struct HostExecutor;

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
            "host (CUDA kernels compiled for the CPU, {} threads; for testing)",
            rayon::current_num_threads()
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
        Ok(p as DevicePtr)
    }
    unsafe fn free(&self, ptr: DevicePtr, bytes: usize) {
        // SAFETY: the caller passes what alloc returned, with its size.
        unsafe { std::alloc::dealloc(ptr as *mut u8, layout(bytes)) }
    }
    fn upload(&self, dst: DevicePtr, src: &[u8]) -> Result<()> {
        // SAFETY: dst is an allocation of at least src.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }
    fn download(&self, src: DevicePtr, dst: &mut [u8]) -> Result<()> {
        // SAFETY: src is an allocation of at least dst.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }
    fn launch(&self, name: &'static str, grid: u32, block: u32, args: &[Arg]) -> Result<()> {
        let i = check_args(name, args)?;
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
        if g.m == 0 || g.n == 0 {
            return Ok(());
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
                g.a as *const f32,
                a_cs as isize,
                a_rs as isize,
                g.b as *const f32,
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
        Ok(())
    }
}
