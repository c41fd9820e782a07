//! Optimisers, written once over [`VecOps`] so that every backend runs the
//! identical algorithm on its own memory.
//!
//! The contract: the caller evaluates the loss and its gradient at `x` (one
//! *iteration* = one evaluation), then calls [`Optimizer::update`], which
//! moves `x` in place. An optimiser that cannot make progress says why
//! ([`Step::Stop`]); it never stops silently.

mod adam;
mod lbfgs;

pub use adam::{Adam, AdamConfig};
pub use lbfgs::{FirstStep, Lbfgs, LbfgsConfig, LineSearch, PIXEL_STEP};

use crate::backend::VecOps;
use crate::error::Result;

/// What the optimiser decided after an update.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `x` was moved; keep going.
    Continue,
    /// No further progress is possible; the reason is for the user.
    Stop(String),
}

/// An optimiser over vectors of a [`VecOps`] implementation.
pub trait Optimizer<O: VecOps> {
    /// `lbfgs` or `adam`.
    fn name(&self) -> &'static str;
    /// Move `x` given the loss and gradient evaluated at `x`.
    fn update(&mut self, ops: &O, x: &mut O::Vector, loss: f64, grad: &O::Vector) -> Result<Step>;
}

/// `½ Σ dᵢ (xᵢ − 1)²` with `dᵢ` from 1 to 1000 (condition number 1000) and
/// its gradient, on f32 vectors: a problem on which L-BFGS needs hundreds of
/// iterations, so that a history of 100 pairs fills up. Used to count what
/// an optimiser update costs on a device (`benches/iteration.rs --stats`,
/// `crates/cuda/tests/it/batched.rs`).
pub fn ill_conditioned_quadratic(x: &[f32]) -> (f64, Vec<f32>) {
    let n = x.len();
    let d = |i: usize| 1.0 + 999.0 * i as f64 / (n.max(2) - 1) as f64;
    let mut f = 0.0;
    let g = x
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let e = *v as f64 - 1.0;
            f += 0.5 * d(i) * e * e;
            (d(i) * e) as f32
        })
        .collect();
    (f, g)
}

#[cfg(test)]
pub(crate) mod testing {
    //! A plain `Vec<f64>` implementation of [`VecOps`] for optimiser tests.
    use super::*;
    use crate::backend::AdamCoeffs;

    pub struct HostOps;

    impl VecOps for HostOps {
        type Vector = Vec<f64>;
        fn dot(&self, a: &Vec<f64>, b: &Vec<f64>) -> Result<f64> {
            Ok(a.iter().zip(b).map(|(x, y)| x * y).sum())
        }
        fn norm1(&self, a: &Vec<f64>) -> Result<f64> {
            Ok(a.iter().map(|x| x.abs()).sum())
        }
        fn axpy(&self, alpha: f64, x: &Vec<f64>, y: &mut Vec<f64>) -> Result<()> {
            y.iter_mut().zip(x).for_each(|(y, x)| *y += alpha * x);
            Ok(())
        }
        fn scale(&self, alpha: f64, x: &mut Vec<f64>) -> Result<()> {
            x.iter_mut().for_each(|v| *v *= alpha);
            Ok(())
        }
        fn zeros_like(&self, like: &Vec<f64>) -> Result<Vec<f64>> {
            Ok(vec![0.0; like.len()])
        }
        fn adam_update(
            &self,
            x: &mut Vec<f64>,
            g: &Vec<f64>,
            m: &mut Vec<f64>,
            v: &mut Vec<f64>,
            c: AdamCoeffs,
        ) -> Result<()> {
            for i in 0..x.len() {
                m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * g[i];
                v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g[i] * g[i];
                x[i] -= c.lr * (m[i] / c.bias1) / ((v[i] / c.bias2).sqrt() + c.eps);
            }
            Ok(())
        }
    }

    /// Rosenbrock function in n dimensions: value and gradient.
    pub fn rosenbrock(x: &[f64]) -> (f64, Vec<f64>) {
        let n = x.len();
        let mut f = 0.0;
        let mut g = vec![0.0; n];
        for i in 0..n - 1 {
            let a = x[i + 1] - x[i] * x[i];
            let b = 1.0 - x[i];
            f += 100.0 * a * a + b * b;
            g[i] += -400.0 * x[i] * a - 2.0 * b;
            g[i + 1] += 200.0 * a;
        }
        (f, g)
    }

    /// A convex quadratic `½ Σ dᵢ (xᵢ − 1)²` with condition number 1000.
    pub fn quadratic(x: &[f64]) -> (f64, Vec<f64>) {
        let n = x.len();
        let d = |i: usize| 1.0 + 999.0 * i as f64 / (n - 1) as f64;
        let f = x
            .iter()
            .enumerate()
            .map(|(i, v)| 0.5 * d(i) * (v - 1.0) * (v - 1.0))
            .sum();
        let g = x
            .iter()
            .enumerate()
            .map(|(i, v)| d(i) * (v - 1.0))
            .collect();
        (f, g)
    }

    /// Run `opt` for `iters` evaluations of `f` from `x0`; returns the last x
    /// and the final loss, or the stop reason.
    pub fn minimise<Opt: Optimizer<HostOps>>(
        opt: &mut Opt,
        f: fn(&[f64]) -> (f64, Vec<f64>),
        x0: Vec<f64>,
        iters: usize,
    ) -> (Vec<f64>, f64, Option<String>) {
        let mut x = x0;
        let mut loss = f64::NAN;
        for _ in 0..iters {
            let (l, g) = f(&x);
            loss = l;
            match opt.update(&HostOps, &mut x, l, &g).unwrap() {
                Step::Continue => {}
                Step::Stop(why) => return (x, loss, Some(why)),
            }
        }
        (x, loss, None)
    }
}
