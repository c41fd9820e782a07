//! The candle backend against core's independent f64 reference.

use neural_style_candle::CandleBackend;
use neural_style_core::testing::conformance;
use neural_style_core::weights::Vgg19Weights;

#[test]
fn matches_the_reference_on_tiny_networks() {
    conformance::assert_matches_reference(CandleBackend::cpu());
}

#[test]
fn a_perturbed_weight_is_caught() {
    conformance::assert_perturbed_weight_is_caught(CandleBackend::cpu());
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
