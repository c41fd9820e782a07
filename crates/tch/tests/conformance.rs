//! The libtorch backend against core's independent f64 reference.

use neural_style_core::conformance;
use neural_style_tch::TchBackend;

#[test]
fn matches_the_reference_on_tiny_networks() {
    conformance::assert_matches_reference(TchBackend::cpu());
}

#[test]
fn a_perturbed_weight_is_caught() {
    let case = conformance::tiny_cases().remove(0);
    let mut perturbed = case.weights.clone();
    perturbed.convs[3].weight[5] += 0.01;
    let c = conformance::compare_with_weights(TchBackend::cpu(), &case, &perturbed).unwrap();
    let err = c
        .check()
        .expect_err("a perturbed weight must fail the check");
    assert!(err.contains("gradient"), "{err}");
}
