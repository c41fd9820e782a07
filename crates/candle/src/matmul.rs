//! The one GEMM call of the crate: `dst (+)= lhs · rhs` in f32 on strided
//! matrices. The convolutions and the Gram matrix and its backward all go
//! through [`gemm`]: by default into the `gemm` crate (the GEMM candle's own
//! `matmul` uses); with the build feature `openblas` (or `blis`) into that
//! library's `cblas_sgemm`, linked from the system (Debian:
//! `libopenblas-dev`, `libblis-dev`), single-threaded per call like the
//! default (every split is made by the callers, by the shapes), so the bytes
//! are still the same at any thread count.

pub(crate) use gemm::Parallelism;

/// A strided `rows × cols` operand: element `(r, c)` lies at
/// `ptr + r·row_stride + c·col_stride` (in elements).
#[derive(Clone, Copy)]
pub(crate) struct Strided<P> {
    pub ptr: P,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<P> Strided<P> {
    /// A row-major matrix whose rows are `row_stride` apart.
    pub fn rows(ptr: P, row_stride: usize) -> Self {
        Strided {
            ptr,
            row_stride,
            col_stride: 1,
        }
    }
}

/// `dst = lhs · rhs` (`accumulate`: `dst += lhs · rhs`) for an `m × k` `lhs`
/// and a `k × n` `rhs`.
///
/// # Safety
/// Every element the three operands address must lie inside live
/// allocations, `dst`'s writable and overlapping neither input; no one else
/// may touch `dst`'s elements during the call.
pub(crate) unsafe fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: Strided<*mut f32>,
    accumulate: bool,
    lhs: Strided<*const f32>,
    rhs: Strided<*const f32>,
    parallelism: Parallelism,
) {
    #[cfg(any(feature = "openblas", feature = "blis"))]
    {
        let _ = parallelism;
        // SAFETY: the caller's contract.
        unsafe { cblas::sgemm((m, n, k), dst, accumulate, lhs, rhs) }
    }
    #[cfg(not(any(feature = "openblas", feature = "blis")))]
    // SAFETY: the caller's contract is gemm's (strides given in elements).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            dst.col_stride as isize,
            dst.row_stride as isize,
            accumulate,
            lhs.ptr,
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.ptr,
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            // alpha (weight of dst's old value; read only when accumulating), beta.
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The system's CBLAS (OpenBLAS or BLIS, linked by `build.rs`).
#[cfg(any(feature = "openblas", feature = "blis"))]
mod cblas {
    use super::Strided;
    use std::os::raw::c_int;

    const ROW_MAJOR: c_int = 101;
    const NO_TRANS: c_int = 111;
    const TRANS: c_int = 112;

    extern "C" {
        // cblas.h
        fn cblas_sgemm(
            layout: c_int,
            trans_a: c_int,
            trans_b: c_int,
            m: c_int,
            n: c_int,
            k: c_int,
            alpha: f32,
            a: *const f32,
            lda: c_int,
            b: *const f32,
            ldb: c_int,
            beta: f32,
            c: *mut f32,
            ldc: c_int,
        );
    }
    #[cfg(feature = "openblas")]
    extern "C" {
        fn openblas_set_num_threads(n: c_int);
    }
    #[cfg(all(feature = "blis", not(feature = "openblas")))]
    extern "C" {
        // blis.h: dim_t is int64_t.
        fn bli_thread_set_num_threads(n: i64);
    }

    /// One thread per call: the callers run the pieces in parallel.
    fn single_threaded() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: the libraries' documented thread-count setters.
        ONCE.call_once(|| unsafe {
            #[cfg(feature = "openblas")]
            openblas_set_num_threads(1);
            #[cfg(all(feature = "blis", not(feature = "openblas")))]
            bli_thread_set_num_threads(1);
        });
    }

    /// A `rows × cols` operand as CBLAS sees it in row-major layout:
    /// (transposed?, leading dimension).
    fn form<P>(a: &Strided<P>, rows: usize, cols: usize) -> (c_int, c_int) {
        if a.col_stride == 1 || cols <= 1 {
            let ld = if rows <= 1 { cols.max(1) } else { a.row_stride };
            (NO_TRANS, ld.max(cols).max(1) as c_int)
        } else {
            assert!(
                a.row_stride == 1 || rows <= 1,
                "an operand with no unit stride"
            );
            (TRANS, a.col_stride.max(rows).max(1) as c_int)
        }
    }

    /// # Safety
    /// As [`super::gemm`]; `dst` must be row-major (unit column stride).
    pub(super) unsafe fn sgemm(
        (m, n, k): (usize, usize, usize),
        dst: Strided<*mut f32>,
        accumulate: bool,
        lhs: Strided<*const f32>,
        rhs: Strided<*const f32>,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                for r in 0..m {
                    // SAFETY: row r of dst lies inside its allocation.
                    unsafe {
                        std::slice::from_raw_parts_mut(dst.ptr.add(r * dst.row_stride), n).fill(0.0)
                    };
                }
            }
            return;
        }
        assert!(
            dst.col_stride == 1 || n == 1,
            "cblas: dst must be row-major"
        );
        single_threaded();
        let (ta, lda) = form(&lhs, m, k);
        let (tb, ldb) = form(&rhs, k, n);
        let ldc = if m <= 1 { n } else { dst.row_stride }.max(n) as c_int;
        // SAFETY: the caller's contract; beta 0 does not read dst.
        unsafe {
            cblas_sgemm(
                ROW_MAJOR,
                ta,
                tb,
                m as c_int,
                n as c_int,
                k as c_int,
                1.0,
                lhs.ptr,
                lda,
                rhs.ptr,
                ldb,
                if accumulate { 1.0 } else { 0.0 },
                dst.ptr,
                ldc,
            )
        }
    }
}
