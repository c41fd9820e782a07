//! The precision modes (`neural_style_cuda::Precision`) against core's f64
//! reference. `fp32` is held to core's conformance tolerances
//! (`conformance.rs`); `tf32` rounds every GEMM input to TF32's
//! 10-bit mantissa (on the host executor an emulation: `host::tf32_round`),
//! and is held to its own tolerances below, set from what that emulation
//! shows on the conformance cases (worst measured: see the constants).
//! The device is `NEURAL_STYLE_CUDA_DEVICE` with `+tf32` appended.

use crate::common;

use neural_style_core::testing::conformance::{self, rel};
use neural_style_cuda::host::tf32_round;
use neural_style_cuda::CudaBackend;

/// TF32 tolerances against the f64 reference, about twice to ten times the
/// worst the host emulation shows on `conformance::tiny_cases` (a TF32 input
/// carries a relative rounding error of up to 2⁻¹¹ ≈ 4.9e-4). Measured:
/// activations 1.3e-3, loss parts 1.8e-3, gradient 7.8e-3 without masks and
/// 1.5e-1 with two masked styles, whose gradient is a small difference of
/// masked Gram matrices (`G^m − G`) that TF32's rounding of F does not
/// cancel. fp32 on the same cases: gradient ≤ 7.2e-7.
pub const TF32_ACTIVATION_TOL: f64 = 1e-2;
pub const TF32_LOSS_TOL: f64 = 1e-2;
pub const TF32_GRADIENT_TOL: f64 = 2e-2;
pub const TF32_MASKED_GRADIENT_TOL: f64 = 3e-1;

#[test]
fn tf32_rounding_keeps_ten_mantissa_bits() {
    assert_eq!(tf32_round(1.0), 1.0);
    // 1 + 2⁻¹⁰ is a TF32 number; 1 + 2⁻¹¹ is a tie, rounded away from zero;
    // just below the tie rounds down.
    assert_eq!(tf32_round(1.0 + 2f32.powi(-10)), 1.0 + 2f32.powi(-10));
    assert_eq!(tf32_round(1.0 + 2f32.powi(-11)), 1.0 + 2f32.powi(-10));
    assert_eq!(tf32_round(1.0 + 2f32.powi(-12)), 1.0);
    assert_eq!(tf32_round(-(1.0 + 2f32.powi(-11))), -(1.0 + 2f32.powi(-10)));
    assert!(tf32_round(f32::NAN).is_nan());
    assert_eq!(tf32_round(f32::INFINITY), f32::INFINITY);
    for v in [0.1f32, 3.3, -7.77e-5, 1234.567] {
        let r = tf32_round(v);
        assert_eq!(r.to_bits() & 0x1fff, 0, "{v}: low mantissa bits cleared");
        assert!(((r - v) / v).abs() <= 2f32.powi(-11), "{v} → {r}");
    }
}

fn backend(tf32: bool) -> Option<CudaBackend> {
    let dev = common::device();
    let dev = dev.strip_suffix("+tf32").unwrap_or(&dev);
    let dev = if tf32 {
        format!("{dev}+tf32")
    } else {
        dev.to_string()
    };
    common::backend_on(&dev)
}

#[test]
fn each_mode_within_its_tolerances() {
    let (Some(fp32), Some(tf32)) = (backend(false), backend(true)) else {
        return;
    };
    eprintln!(
        "tf32 device: {}",
        neural_style_core::backend::Backend::device(&tf32)
    );
    let mut worse = 0;
    for case in conformance::tiny_cases() {
        let a = conformance::compare(fp32.clone(), &case).unwrap();
        let t = conformance::compare(tf32.clone(), &case).unwrap();
        a.check()
            .unwrap_or_else(|e| panic!("fp32 {}: {e}", case.name));
        let act = t.activation_rel.iter().map(|r| r.1).fold(0.0, f64::max);
        let loss = [
            (t.parts.content, t.reference.content),
            (t.parts.style, t.reference.style),
            (t.parts.tv, t.reference.tv),
            (t.parts.total, t.reference.total),
        ]
        .iter()
        .map(|(x, r)| rel(*x, *r))
        .fold(0.0, f64::max);
        eprintln!(
            "{}: fp32 gradient rel {:.1e}; tf32 gradient rel {:.1e}, worst loss part rel {loss:.1e}, worst activation rel {act:.1e}",
            case.name, a.gradient_rel, t.gradient_rel
        );
        let tol = if case.masks.iter().any(Option::is_some) {
            TF32_MASKED_GRADIENT_TOL
        } else {
            TF32_GRADIENT_TOL
        };
        assert!(
            t.gradient_rel <= tol,
            "{}: tf32 gradient rel {:.2e}",
            case.name,
            t.gradient_rel
        );
        assert!(
            loss <= TF32_LOSS_TOL,
            "{}: tf32 loss rel {loss:.2e}",
            case.name
        );
        assert!(
            act <= TF32_ACTIVATION_TOL,
            "{}: tf32 activation rel {act:.2e}",
            case.name
        );
        if t.gradient_rel > a.gradient_rel {
            worse += 1;
        }
    }
    // The mode is really on: TF32 is measurably less accurate than fp32.
    assert!(
        worse > 0,
        "tf32 no worse than fp32 on any case: is TF32 applied?"
    );
}
