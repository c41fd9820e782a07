//! L-BFGS as in Torch's `optim.lbfgs` (which the reference implementations
//! use): two-loop recursion over the last `history` pairs, initial Hessian
//! `γ = sᵀy / yᵀy`, pairs with `yᵀs ≤ 1e-10` skipped, no line search by
//! default. One evaluation per iteration. The first step (and the first after
//! a history reset) is [`FirstStep`]: Torch's `min(1, 1/‖g‖₁)`, or by
//! default one that moves the image by a tenth of a pixel level.
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

/// The length of L-BFGS's first step along `−g` (no curvature known yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FirstStep {
    /// Torch's `optim.lbfgs`: `t = min(1, 1/‖g‖₁)`, a step of unit ℓ1
    /// length. Over n pixels a typical component moves by about `1/n` of a
    /// pixel level: below float32 resolution (≈ 8e-6 at 100) from about
    /// 256×192 up, so the first curvature pair is rounding noise.
    Torch,
    /// `t = PIXEL_STEP · ‖g‖₁ / ‖g‖₂²`: a component of the gradient's typical
    /// size (its `|g|`-weighted mean) moves by [`PIXEL_STEP`] pixel levels,
    /// the largest by at least that (`‖g‖₂² ≤ ‖g‖₁‖g‖∞`), the mean at most
    /// that (`‖g‖₁² ≤ n‖g‖₂²`): measurable at any size, and independent of
    /// the loss's scale (the normalisation, the weights).
    #[default]
    Pixel,
}

/// Pixel levels (Caffe space: 0–255) that [`FirstStep::Pixel`] moves a
/// typical component by.
pub const PIXEL_STEP: f64 = 0.1;

impl FirstStep {
    /// The step length `t` (times the learning rate) for a gradient with
    /// `‖g‖₁ = norm1` and `‖g‖₂² = norm2_sq`. Written once, for every
    /// implementation of the optimiser.
    pub fn length(self, norm1: f64, norm2_sq: f64, lr: f64) -> f64 {
        match self {
            FirstStep::Torch => norm1.recip().min(1.0) * lr,
            FirstStep::Pixel => PIXEL_STEP * norm1 / norm2_sq * lr,
        }
    }

    /// Whether [`FirstStep::length`] reads `norm2_sq` (else pass anything).
    pub fn needs_norm2(self) -> bool {
        self == FirstStep::Pixel
    }
}

impl std::str::FromStr for FirstStep {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "torch" => Ok(FirstStep::Torch),
            "pixel" => Ok(FirstStep::Pixel),
            _ => Err(format!("unknown first step `{s}`: use pixel or torch")),
        }
    }
}

/// L-BFGS's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LbfgsConfig {
    /// Number of (s, y) pairs kept (memory: 2 × history image-sized vectors).
    pub history: usize,
    /// Step size (Torch's `learningRate`, 1 by default).
    pub lr: f64,
    /// Fixed steps (Torch's default) or backtracking.
    pub line_search: LineSearch,
    /// The length of the first step, before any curvature is known.
    pub first_step: FirstStep,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        LbfgsConfig {
            history: 100,
            lr: 1.0,
            line_search: LineSearch::None,
            first_step: FirstStep::Pixel,
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

/// L-BFGS over a backend's vectors: the history pairs live on the device.
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
    /// A fresh optimiser (empty history).
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

    /// The step length along `−g` when there is no curvature history.
    fn first_step<O: VecOps<Vector = V>>(&self, ops: &O, g: &V, norm1: f64) -> Result<f64> {
        let rule = self.cfg.first_step;
        let norm2_sq = if rule.needs_norm2() {
            ops.dot(g, g)?
        } else {
            0.0
        };
        Ok(rule.length(norm1, norm2_sq, self.cfg.lr))
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
            self.first_step(ops, g, g1)?
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
            t = self.first_step(ops, g, g1)?;
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
            ..Default::default()
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
    fn first_step_rules() {
        let step = |first_step| {
            let mut opt = Lbfgs::new(LbfgsConfig {
                first_step,
                ..Default::default()
            });
            let mut x = vec![0.0, 0.0];
            let g = vec![3.0, -1.0];
            Optimizer::<HostOps>::update(&mut opt, &HostOps, &mut x, 1.0, &g).unwrap();
            x
        };
        // Torch: t = 1/‖g‖₁ = 1/4, d = -g.
        assert_eq!(step(FirstStep::Torch), vec![-0.75, 0.25]);
        // Pixel: t = 0.1 · 4 / 10 = 0.04.
        let x = step(FirstStep::Pixel);
        assert!(
            (x[0] + 0.12).abs() < 1e-15 && (x[1] - 0.04).abs() < 1e-15,
            "{x:?}"
        );
        assert_eq!(LbfgsConfig::default().first_step, FirstStep::Pixel);
    }

    /// At 1024×768 in float32 (the image lives on the device in f32), Torch's
    /// first step leaves most pixels exactly where they were; the pixel
    /// rule moves every pixel whose gradient is within 100× of the typical
    /// size, and none by more than a few levels.
    #[test]
    fn first_step_moves_a_1024px_image_measurably() {
        let n = 1024 * 768 * 3;
        let mut rng = crate::rng::Rng::new(1);
        let x: Vec<f32> = (0..n)
            .map(|_| (rng.uniform() * 255.0 - 120.0) as f32)
            .collect();
        // A gradient of spread-out magnitudes (normal, times a log-uniform factor).
        let g: Vec<f32> = (0..n)
            .map(|_| (rng.normal() * 10f64.powf(2.0 * rng.uniform() - 1.0)) as f32)
            .collect();
        let norm1: f64 = g.iter().map(|v| v.abs() as f64).sum();
        let norm2_sq: f64 = g.iter().map(|v| (*v as f64).powi(2)).sum();
        let typical = norm2_sq / norm1;
        let moved = |rule: FirstStep| {
            let t = rule.length(norm1, norm2_sq, 1.0) as f32;
            let (mut changed, mut eligible, mut largest) = (0usize, 0usize, 0f32);
            for (xi, gi) in x.iter().zip(&g) {
                let y = xi - t * gi;
                largest = largest.max((y - xi).abs());
                if gi.abs() as f64 >= typical / 100.0 {
                    eligible += 1;
                    changed += (y != *xi) as usize;
                }
            }
            (changed as f64 / eligible as f64, largest)
        };
        // (Only pixels near 0, where float32 is finer, move: 9 % here.)
        let (torch, _) = moved(FirstStep::Torch);
        assert!(torch < 0.25, "Torch's rule moved {torch} of the pixels");
        let (pixel, largest) = moved(FirstStep::Pixel);
        assert_eq!(pixel, 1.0, "the pixel rule left some pixels unmoved");
        assert!(largest < 10.0, "largest move {largest} levels");
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
