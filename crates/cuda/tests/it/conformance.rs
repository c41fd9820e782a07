//! The cuda backend against core's independent f64 reference, on the host
//! executor (the very kernel sources the GPU runs, compiled for the CPU) or
//! on the device named by `NEURAL_STYLE_CUDA_DEVICE`.

use crate::common;

use neural_style_core::testing::conformance;
use neural_style_cuda::CudaBackend;

#[test]
fn matches_the_reference_on_tiny_networks() {
    let Some(b) = common::backend() else { return };
    eprintln!(
        "device: {}",
        neural_style_core::backend::Backend::device(&b)
    );
    conformance::assert_matches_reference(b);
}

#[test]
fn a_perturbed_weight_is_caught() {
    let Some(b) = common::backend() else { return };
    conformance::assert_perturbed_weight_is_caught(b);
}

/// The GPU executor, whatever `NEURAL_STYLE_CUDA_DEVICE` says: runs the
/// reference checks on `cuda:0` when this machine has one, else says why not.
#[test]
fn gpu_matches_the_reference_when_present() {
    match CudaBackend::gpu(0, false) {
        Ok(b) => conformance::assert_matches_reference(b),
        Err(e) => {
            neural_style_core::testing::skip::skip(format!("no GPU check on this machine: {e}"))
        }
    }
}

#[test]
fn without_a_driver_the_error_is_one_line() {
    if let Err(e) = CudaBackend::from_device(Some("cuda:0")) {
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains("cuda"), "{msg}");
    }
    let e = CudaBackend::from_device(Some("tpu"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("device"), "{e}");
}
