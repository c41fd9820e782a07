//! The options model's defaults are core's own (`Options::default()`).

use neural_style::Options;

#[test]
fn defaults_come_from_core() {
    use neural_style::core::objective::ObjectiveSpec;
    use neural_style::core::optim::LbfgsConfig;
    let o = Options::default();
    assert_eq!(o.objective().unwrap(), ObjectiveSpec::default());
    assert_eq!(
        o.optimizer().unwrap(),
        neural_style::core::run::OptimizerKind::Lbfgs(LbfgsConfig::default())
    );
}
