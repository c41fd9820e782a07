//! L-BFGS as in Torch's `optim.lbfgs` (which the reference implementations
//! use): two-loop recursion over the last `history` pairs, initial Hessian
//! `γ = sᵀy / yᵀy`, pairs with `yᵀs ≤ 1e-10` skipped, no line search by
//! default, and a first step scaled by `min(1, 1/‖g‖₁)`. One evaluation per
//! iteration.
//!
//! With [`LineSearch::Backtracking`], a step whose loss breaks the Armijo
//! condition `f(x + t d) ≤ f(x) + 1e-4 · t · gᵀd` is halved (from the trial
//! point, so each trial is still one evaluation = one iteration) until it
//! holds; only accepted steps update the curvature history.

mod batched;

use super::{Optimizer, Step};
use crate::backend::VecOps;
use crate::error::Result;
use std::collections::VecDeque;

/// Line search of [`Lbfgs`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LineSearch {
    /// Take the step as computed (Torch's default, and the anchors').
    #[default]
    None,
    /// Halve the step until the Armijo condition holds.
    Backtracking,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LbfgsConfig {
    /// Number of (s, y) pairs kept (memory: 2 × history image-sized vectors).
    pub history: usize,
    /// Step size (Torch's `learningRate`, 1 by default).
    pub lr: f64,
    pub line_search: LineSearch,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        LbfgsConfig {
            history: 100,
            lr: 1.0,
            line_search: LineSearch::None,
        }
    }
}

/// Armijo constant of the backtracking line search.
const ARMIJO_C1: f64 = 1e-4;
/// Backtracking gives up below this fraction of the first trial step.
const MIN_STEP_FRACTION: f64 = 1e-12;

/// A step being tried by the backtracking line search.
#[derive(Clone, Copy, Debug)]
struct Trial {
    /// Loss and `gᵀd` at the point the step starts from.
    f0: f64,
    gtd0: f64,
    /// The first step length tried.
    t0: f64,
}

struct Pair<V> {
    s: V,
    y: V,
    /// `1 / yᵀs`
    rho: f64,
}

pub struct Lbfgs<V> {
    cfg: LbfgsConfig,
    pairs: VecDeque<Pair<V>>,
    /// Direction and step length of the last move (`s = t·d`).
    d: Option<V>,
    t: f64,
    g_prev: Option<V>,
    hdiag: f64,
    /// Pairs skipped because `yᵀs` was not positive (reported by `stats`).
    skipped: usize,
    resets: usize,
    trial: Option<Trial>,
    /// The batched path's dot products between history vectors (`batched.rs`).
    gram: batched::PairDots,
}

impl<V> Lbfgs<V> {
    pub fn new(cfg: LbfgsConfig) -> Self {
        Lbfgs {
            cfg: LbfgsConfig {
                history: cfg.history.max(1),
                ..cfg
            },
            pairs: VecDeque::new(),
            d: None,
            t: 0.0,
            g_prev: None,
            hdiag: 1.0,
            skipped: 0,
            resets: 0,
            trial: None,
            gram: Default::default(),
        }
    }

    /// (pairs held, pairs skipped, history resets) — for diagnostics.
    pub fn stats(&self) -> (usize, usize, usize) {
        (self.pairs.len(), self.skipped, self.resets)
    }
}

impl<V: Clone> Lbfgs<V> {
    /// Record the pair from the last move, recycling the oldest buffers.
    fn push_pair<O: VecOps<Vector = V>>(&mut self, ops: &O, g: &V) -> Result<()> {
        let (Some(d), Some(g_prev)) = (&self.d, &self.g_prev) else {
            return Ok(());
        };
        let (mut s, mut y) = if self.pairs.len() >= self.cfg.history {
            let old = self.pairs.pop_front().expect("history is full");
            (old.s, old.y)
        } else {
            (d.clone(), g.clone())
        };
        ops.copy_from(&mut y, g)?;
        ops.axpy(-1.0, g_prev, &mut y)?;
        ops.copy_from(&mut s, d)?;
        ops.scale(self.t, &mut s)?;
        let ys = ops.dot(&y, &s)?;
        if ys > 1e-10 {
            let yy = ops.dot(&y, &y)?;
            self.hdiag = ys / yy;
            self.pairs.push_back(Pair {
                s,
                y,
                rho: 1.0 / ys,
            });
        } else {
            self.skipped += 1;
        }
        Ok(())
    }

    /// `d = −H g` by the two-loop recursion.
    fn direction<O: VecOps<Vector = V>>(&self, ops: &O, g: &V, d: &mut V) -> Result<()> {
        ops.copy_from(d, g)?;
        ops.scale(-1.0, d)?;
        let mut alpha = vec![0.0; self.pairs.len()];
        for (i, p) in self.pairs.iter().enumerate().rev() {
            alpha[i] = p.rho * ops.dot(&p.s, d)?;
            ops.axpy(-alpha[i], &p.y, d)?;
        }
        ops.scale(self.hdiag, d)?;
        for (i, p) in self.pairs.iter().enumerate() {
            let beta = p.rho * ops.dot(&p.y, d)?;
            ops.axpy(alpha[i] - beta, &p.s, d)?;
        }
        Ok(())
    }
}

/// Why a gradient of ‖·‖₁ `g1` cannot be followed, if it cannot.
fn unusable(g1: f64) -> Option<Step> {
    if !g1.is_finite() {
        return Some(Step::Stop("L-BFGS: the gradient is not finite".into()));
    }
    (g1 == 0.0).then(|| {
        Step::Stop(
            "L-BFGS: the gradient is exactly zero (a stationary point); nothing left to do".into(),
        )
    })
}

/// `gᵀd < 0` (false for NaN).
fn is_descent(gtd: f64) -> bool {
    gtd < 0.0
}

impl<O: VecOps> Optimizer<O> for Lbfgs<O::Vector> {
    fn name(&self) -> &'static str {
        "lbfgs"
    }

    fn update(&mut self, ops: &O, x: &mut O::Vector, loss: f64, g: &O::Vector) -> Result<Step> {
        if let Some(trial) = self.trial.take() {
            let d = self.d.as_ref().expect("a trial has a direction");
            let armijo = loss <= trial.f0 + ARMIJO_C1 * self.t * trial.gtd0;
            if !armijo {
                if self.t < trial.t0 * MIN_STEP_FRACTION {
                    return Ok(Step::Stop(format!(
                        "L-BFGS: the backtracking line search found no decrease along the \
                         search direction (step {:.1e}); the loss cannot be lowered further",
                        self.t
                    )));
                }
                // Back from x0 + t·d to x0 + (t/2)·d.
                ops.axpy(-0.5 * self.t, d, x)?;
                self.t *= 0.5;
                self.trial = Some(trial);
                return Ok(Step::Continue);
            }
        }
        if ops.batched() && self.cfg.line_search == LineSearch::None {
            return self.update_batched(ops, x, g);
        }
        let g1 = ops.norm1(g)?;
        if let Some(stop) = unusable(g1) {
            return Ok(stop);
        }
        let first = self.d.is_none();
        if !first {
            self.push_pair(ops, g)?;
        }
        let mut d = match self.d.take() {
            Some(d) => d,
            None => ops.zeros_like(g)?,
        };
        self.direction(ops, g, &mut d)?;
        let mut t = if first {
            g1.recip().min(1.0) * self.cfg.lr
        } else {
            self.cfg.lr
        };
        let mut gtd = ops.dot(g, &d)?;
        if !is_descent(gtd) && !self.pairs.is_empty() {
            // The curvature history no longer gives a descent direction:
            // forget it and restart from steepest descent.
            self.pairs.clear();
            self.hdiag = 1.0;
            self.resets += 1;
            self.direction(ops, g, &mut d)?;
            t = g1.recip().min(1.0) * self.cfg.lr;
            gtd = ops.dot(g, &d)?;
        }
        if !is_descent(gtd) {
            return Ok(Step::Stop(format!(
                "L-BFGS: no descent direction (gᵀd = {gtd:e}); the loss cannot be lowered further"
            )));
        }
        ops.axpy(t, &d, x)?;
        self.t = t;
        self.d = Some(d);
        if self.cfg.line_search == LineSearch::Backtracking {
            self.trial = Some(Trial {
                f0: loss,
                gtd0: gtd,
                t0: t,
            });
        }
        match &mut self.g_prev {
            Some(prev) => ops.copy_from(prev, g)?,
            None => self.g_prev = Some(g.clone()),
        }
        Ok(Step::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn quadratic_converges_fast() {
        let mut opt = Lbfgs::new(LbfgsConfig::default());
        let (x, loss, stop) = minimise(&mut opt, quadratic, vec![0.0; 50], 300);
        assert!(loss < 1e-10, "loss {loss}, stop {stop:?}");
        assert!(x.iter().all(|v| (v - 1.0).abs() < 1e-4));
    }

    #[test]
    fn rosenbrock_without_line_search() {
        // Torch's lbfgs without line search on Rosenbrock: slower than with
        // one, but it gets there with a small learning rate.
        let mut opt = Lbfgs::new(LbfgsConfig {
            history: 10,
            lr: 0.1,
            ..Default::default()
        });
        let (x, loss, stop) = minimise(&mut opt, rosenbrock, vec![-1.2, 1.0], 5000);
        assert!(loss < 1e-6, "loss {loss} at {x:?}, stop {stop:?}");
    }

    #[test]
    fn backtracking_converges_on_rosenbrock_and_quadratic() {
        let cfg = LbfgsConfig {
            history: 10,
            lr: 1.0,
            line_search: LineSearch::Backtracking,
        };
        let (x, loss, stop) = minimise(&mut Lbfgs::new(cfg), rosenbrock, vec![-1.2, 1.0], 300);
        assert!(loss < 1e-8, "loss {loss} at {x:?}, stop {stop:?}");
        let (_, loss, stop) = minimise(&mut Lbfgs::new(cfg), quadratic, vec![0.0; 50], 300);
        assert!(loss < 1e-10, "loss {loss}, stop {stop:?}");
    }

    #[test]
    fn backtracking_stops_and_says_why_when_nothing_decreases() {
        // A "loss" that rises whatever the step: the search must give up, loudly.
        let mut opt = Lbfgs::new(LbfgsConfig {
            line_search: LineSearch::Backtracking,
            ..Default::default()
        });
        let mut calls = 0.0;
        let mut x = vec![1.0, 1.0];
        let mut stop = None;
        for _ in 0..200 {
            calls += 1.0;
            let g = vec![1.0, 1.0];
            if let Step::Stop(why) =
                Optimizer::<HostOps>::update(&mut opt, &HostOps, &mut x, calls, &g).unwrap()
            {
                stop = Some(why);
                break;
            }
        }
        assert!(stop.expect("must stop").contains("line search"));
    }

    #[test]
    fn first_step_is_scaled_by_inverse_l1_norm() {
        let mut opt = Lbfgs::new(LbfgsConfig::default());
        let mut x = vec![0.0, 0.0];
        let g = vec![3.0, -1.0];
        Optimizer::<HostOps>::update(&mut opt, &HostOps, &mut x, 1.0, &g).unwrap();
        // t = 1/4, d = -g
        assert_eq!(x, vec![-0.75, 0.25]);
    }

    #[test]
    fn history_is_bounded_and_recycled() {
        let mut opt = Lbfgs::new(LbfgsConfig {
            history: 3,
            ..Default::default()
        });
        let _ = minimise(&mut opt, quadratic, vec![0.0; 20], 12);
        assert_eq!(opt.stats().0, 3);
    }

    #[test]
    fn never_stops_silently() {
        let mut opt = Lbfgs::new(LbfgsConfig::default());
        let zero = |x: &[f64]| (0.0, vec![0.0; x.len()]);
        let (_, _, stop) = minimise(&mut opt, zero, vec![1.0; 4], 5);
        assert!(stop.unwrap().contains("exactly zero"));
        let mut opt = Lbfgs::new(LbfgsConfig::default());
        let nan = |x: &[f64]| (f64::NAN, vec![f64::NAN; x.len()]);
        let (_, _, stop) = minimise(&mut opt, nan, vec![1.0; 4], 5);
        assert!(stop.unwrap().contains("not finite"));
    }
}
