//! The candle backend against core's independent f64 reference.

use neural_style_candle::CandleBackend;
use neural_style_core::conformance;
use neural_style_core::weights::Vgg19Weights;

#[test]
fn matches_the_reference_on_tiny_networks() {
    conformance::assert_matches_reference(CandleBackend::cpu());
}

#[test]
fn a_perturbed_weight_is_caught() {
    let case = conformance::tiny_cases().remove(0);
    let mut perturbed = case.weights.clone();
    perturbed.convs[3].weight[5] += 0.01;
    let c = conformance::compare_with_weights(CandleBackend::cpu(), &case, &perturbed).unwrap();
    let err = c
        .check()
        .expect_err("a perturbed weight must fail the check");
    assert!(err.contains("gradient"), "{err}");
}

#[test]
fn matches_the_reference_with_winograd_wide_layers() {
    // Wide enough (≥ 16 channels) for every convolution but conv1_1's
    // forward and backward to go through Winograd F(2×2, 3×3).
    for mut case in conformance::tiny_cases() {
        case.weights = Vgg19Weights::synthetic(3, [16, 16, 24, 32, 32]);
        let c = conformance::compare(CandleBackend::cpu(), &case).unwrap();
        if let Err(e) = c.check() {
            panic!("{}: {e}", case.name);
        }
    }
}
