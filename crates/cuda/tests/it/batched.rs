//! L-BFGS's batched path on the cuda backend (`core/src/optim/lbfgs/batched.rs`,
//! `VecOps::dots` / `combine` here), counted with the executor's counters:
//! at most one synchronisation per update and one per evaluation, whatever
//! the history size; and the same iterates as the per-operation path.

use crate::common;

use neural_style_core::backend::{Backend, DeviceCounters};
use neural_style_core::objective::{Loss, Objective};
use neural_style_core::optim::{ill_conditioned_quadratic, Lbfgs, LbfgsConfig, Optimizer, Step};
use neural_style_core::run::{run, OptimizerKind, RunOptions, Silent};
use neural_style_core::testing::conformance::{rel, rel_l2, tiny_cases};
use neural_style_core::vgg::Vgg;
use neural_style_cuda::CudaBackend;
use std::sync::atomic::AtomicBool;

/// Run `iters` L-BFGS updates (history 100) on `ill_conditioned_quadratic`; the counts of
/// the last update, the pairs held and the final x.
fn lbfgs_on_quadratic(b: &CudaBackend, iters: usize) -> (DeviceCounters, usize, Vec<f32>) {
    let shape = [3, 24, 32];
    let mut x = b.upload(&vec![0.0; 3 * 24 * 32], shape).unwrap();
    let mut opt = Lbfgs::new(LbfgsConfig::default());
    let mut last = DeviceCounters::default();
    for _ in 0..iters {
        let (f, g) = ill_conditioned_quadratic(&b.download(&x).unwrap());
        let g = b.upload(&g, shape).unwrap();
        b.reset_counters();
        let step = Optimizer::<CudaBackend>::update(&mut opt, b, &mut x, f, &g).unwrap();
        last = b.counters().unwrap();
        assert_eq!(step, Step::Continue);
    }
    (last, opt.stats().0, b.download(&x).unwrap())
}

#[test]
fn an_update_synchronises_once_at_full_history() {
    let Some(b) = common::backend() else { return };
    let (batched, held, xb) = lbfgs_on_quadratic(&b, 110);
    assert_eq!(held, 100, "the history is full");
    b.set_batched(false);
    let (per_op, held_op, xo) = lbfgs_on_quadratic(&b, 110);
    b.set_batched(true);
    assert_eq!(held_op, 100);
    eprintln!(
        "update at history 100: batched {} launches, {} syncs, {} uploads; per-operation {} launches, {} syncs",
        batched.launches, batched.syncs, batched.uploads, per_op.launches, per_op.syncs
    );
    assert!(batched.syncs <= 1, "{batched:?}");
    assert!(batched.launches <= 8, "{batched:?}");
    // What the counters saw before: a round trip per dot product.
    assert!(per_op.syncs > 200, "{per_op:?}");
    let r = rel_l2(&xb, &xo);
    eprintln!("x after 110 iterations, batched vs per-operation: rel {r:.2e}");
    assert!(r < 1e-4, "rel {r:.2e}");
}

#[test]
fn an_evaluation_synchronises_once() {
    let Some(b) = common::backend() else { return };
    for case in tiny_cases() {
        let net = Vgg::new(b.clone(), &case.weights, case.spec.pooling).unwrap();
        let obj = case.objective(&net).unwrap();
        let x = b.upload(&case.x.data, case.x.shape()).unwrap();
        obj.evaluate(&x).unwrap();
        b.reset_counters();
        obj.evaluate(&x).unwrap();
        let c = b.counters().unwrap();
        eprintln!(
            "{}: evaluation {} launches, {} syncs, {} downloads",
            case.name, c.launches, c.syncs, c.downloads
        );
        assert_eq!(c.syncs, 1, "{}: {c:?}", case.name);
        assert_eq!(c.allocs, 0, "{}: warm pool", case.name);
    }
}

/// 10 L-BFGS iterations of a real objective: batched vs per-operation, held
/// to the chaos bound of `candle_parity.rs` (a 1e-6 nudge of the start).
#[test]
fn ten_lbfgs_iterations_batched_vs_per_operation() {
    let Some(b) = common::backend() else { return };
    let case = tiny_cases().remove(0);
    let go = |batched: bool, x0: &neural_style_core::pixel::CaffeImage| {
        b.set_batched(batched);
        let net = Vgg::new(b.clone(), &case.weights, case.spec.pooling).unwrap();
        let obj = Objective::new(&net, case.spec.clone(), &case.content, &case.styles).unwrap();
        let opts = RunOptions {
            iterations: 10,
            optimizer: OptimizerKind::Lbfgs(LbfgsConfig::default()),
            stop_rule: None,
        };
        let out = run(&obj, x0, &opts, &mut Silent, &AtomicBool::new(false)).unwrap();
        (out.best_loss, out.best.data)
    };
    let mut nudged = case.x.clone();
    nudged.data.iter_mut().for_each(|v| *v *= 1.0 + 1e-6);
    let (lb, xb) = go(true, &case.x);
    let (lo, xo) = go(false, &case.x);
    let (ln, xn) = go(false, &nudged);
    b.set_batched(true);
    let (r, chaos) = (rel_l2(&xb, &xo), rel_l2(&xn, &xo));
    eprintln!(
        "batched vs per-operation after 10 iterations: image rel {r:.2e} (chaos {chaos:.2e}), best loss rel {:.2e}",
        rel(lb, lo)
    );
    assert!(
        r <= (2.0 * chaos).max(1e-4),
        "image rel {r:.2e} vs chaos {chaos:.2e}"
    );
    assert!(rel(lb, lo) <= (2.0 * rel(ln, lo)).max(1e-4), "{lb} vs {lo}");
}
