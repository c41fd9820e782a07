//! The libtorch backend against core's independent f64 reference.

use neural_style_core::testing::conformance;
use neural_style_tch::TchBackend;

#[test]
fn matches_the_reference_on_tiny_networks() {
    conformance::assert_matches_reference(TchBackend::cpu());
}

#[test]
fn a_perturbed_weight_is_caught() {
    conformance::assert_perturbed_weight_is_caught(TchBackend::cpu());
}
