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

#[test]
fn the_run_stops_when_the_picture_is_done_and_only_then() {
    use neural_style_core::optim::LbfgsConfig;
    use neural_style_core::run::{run, OptimizerKind, RunOptions, Silent, StopReason};
    use neural_style_core::stopping::StopRule;
    use neural_style_core::vgg::Vgg;
    use std::sync::atomic::AtomicBool;
    let case = &conformance::tiny_cases()[0];
    let net = Vgg::new(CandleBackend::cpu(), &case.weights, case.spec.pooling).unwrap();
    let objective = case.objective(&net).unwrap();
    let go = |stop_rule| {
        let opts = RunOptions {
            iterations: 40,
            optimizer: OptimizerKind::Lbfgs(LbfgsConfig::default()),
            stop_rule,
        };
        run(
            &objective,
            &case.x,
            &opts,
            &mut Silent,
            &AtomicBool::new(false),
        )
        .unwrap()
    };
    // Without a rule: every iteration. With one no run passes (nothing is
    // calm when the loss must fall by less than nothing): every iteration.
    assert_eq!(go(None).iterations, 40);
    let never = StopRule {
        window: 5,
        loss_decrease: 0.0,
        image_change: 0.0,
        patience: 1,
    };
    assert_eq!(go(Some(never)).iterations, 40);
    // A rule every window passes: the first check (iteration 5) records,
    // the next two are calm, so the run stops at the third, iteration 15,
    // keeping its best image and saying why.
    let always = StopRule {
        window: 5,
        loss_decrease: f64::INFINITY,
        image_change: f64::INFINITY,
        patience: 2,
    };
    let out = go(Some(always));
    assert_eq!(out.iterations, 15);
    assert!(out.best_iteration <= 15 && out.best_loss.is_finite());
    match out.stop {
        StopReason::Converged(why) => assert!(why.contains("the picture is done"), "{why}"),
        s => panic!("{s:?}"),
    }
}
