//! The one call into the `gemm` crate (the GEMM candle's own `matmul` uses):
//! `dst (+)= lhs · rhs` in f32 on strided matrices. The convolutions and the
//! Gram matrix and its backward all go through [`gemm`].

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
