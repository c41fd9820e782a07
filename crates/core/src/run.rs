//! The optimisation loop: evaluate, report, keep the best image, update.
//!
//! Architecture invariant: the loop never loses the user's work. It keeps a
//! device copy of the best point seen so far and returns it however the run
//! ends — completed, converged, or interrupted (Ctrl-C sets the flag passed
//! in; the loop finishes the evaluation in flight and returns).
//!
//! Multi-resolution ([`run_scales`]): the same loop once per scale, each
//! scale with an objective built at its size (targets recomputed) and started
//! from the previous scale's best image resized (Lanczos3) to the new size.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::objective::{LossParts, Objective};
use crate::optim::{Adam, AdamConfig, Lbfgs, LbfgsConfig, Optimizer, Step};
use crate::pixel::CaffeImage;
use crate::stopping::{StopRule, Watch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Which optimiser a run uses, with its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// L-BFGS (the default).
    Lbfgs(LbfgsConfig),
    /// Adam.
    Adam(AdamConfig),
}

/// What the loop does: how many iterations, with which optimiser.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// Iterations (objective evaluations) at most.
    pub iterations: usize,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Stop when the picture is done ([`crate::stopping`]); `None`: run
    /// every iteration.
    pub stop_rule: Option<StopRule>,
}

/// What one iteration produced.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct IterationReport {
    /// 1-based.
    pub iteration: usize,
    /// Iterations of the whole run (across scales).
    pub of: usize,
    /// The loss parts at this iteration's point.
    #[serde(flatten)]
    pub loss: LossParts,
    /// `‖∇ total‖₂` at this point.
    pub grad_norm: f64,
    /// Seconds since the loop started.
    pub elapsed: f64,
}

/// Why the loop ended.
#[derive(Clone, Debug, PartialEq)]
pub enum StopReason {
    /// Every iteration ran.
    Completed,
    /// The optimiser could not make progress, or the picture is done (the
    /// stopping rule of [`crate::stopping`]): the reason, in words.
    Converged(String),
    /// The stop flag was raised (a signal, or an observer's request).
    Interrupted,
    /// A loss or the gradient became non-finite after at least one good
    /// iteration (the error, as a line): the best point so far is kept and
    /// returned, and the run ends (later scales are not run).
    Failed(String),
}

/// What a run returns.
pub struct RunOutcome {
    /// The point of lowest total loss seen.
    pub best: CaffeImage,
    /// Its total loss.
    pub best_loss: f64,
    /// The iteration at which it was seen (1-based; 0: the start).
    pub best_iteration: usize,
    /// Iterations run.
    pub iterations: usize,
    /// Why the loop ended.
    pub stop: StopReason,
    /// Wall time of the loop.
    pub elapsed: Duration,
}

/// Callbacks of the loop (progress bar, frames, JSON log…).
pub trait Observer {
    /// Called after each evaluation with the point that was evaluated;
    /// `image` downloads it (only call it when needed).
    fn on_iteration(
        &mut self,
        report: &IterationReport,
        image: &mut dyn FnMut() -> Result<CaffeImage>,
    ) -> Result<()>;

    /// Called as each scale of [`run_scales`] starts, before its first
    /// iteration: `index` is the scale's place in the chain run (a caller
    /// that resumes mid-chain maps it to its own numbering). What a
    /// progress line needs to weigh the iterations left by their size.
    fn on_scale(&mut self, _index: usize) {}
}

/// An observer that does nothing.
pub struct Silent;
impl Observer for Silent {
    fn on_iteration(
        &mut self,
        _: &IterationReport,
        _: &mut dyn FnMut() -> Result<CaffeImage>,
    ) -> Result<()> {
        Ok(())
    }
}

fn download<B: Backend>(b: &B, t: &B::Tensor) -> Result<CaffeImage> {
    let [_, h, w] = b.dims(t);
    Ok(CaffeImage {
        width: w,
        height: h,
        data: b.download(t)?,
    })
}

/// Optimise from `init` for `opts.iterations` evaluations.
pub fn run<B: Backend>(
    objective: &Objective<'_, B>,
    init: &CaffeImage,
    opts: &RunOptions,
    observer: &mut dyn Observer,
    interrupt: &AtomicBool,
) -> Result<RunOutcome> {
    let b = objective.net().backend();
    let mut optimizer: Box<dyn Optimizer<B>> = match opts.optimizer {
        OptimizerKind::Lbfgs(c) => Box::new(Lbfgs::new(c)),
        OptimizerKind::Adam(c) => Box::new(Adam::new(c)),
    };
    let start = Instant::now();
    let mut x = b.upload(&init.data, init.shape())?;
    let mut best = x.clone();
    let mut best_loss = f64::INFINITY;
    let mut best_iteration = 0;
    let mut stop = StopReason::Completed;
    let mut done = 0;
    let mut watch = opts.stop_rule.map(Watch::new);
    for iteration in 1..=opts.iterations {
        if interrupt.load(Ordering::SeqCst) {
            stop = StopReason::Interrupted;
            break;
        }
        let (loss, grad, grad_norm) = objective.evaluate_with_norm(&x)?;
        let bad = if !loss.is_finite() {
            Some(format!("total = {}", loss.total))
        } else if !grad_norm.is_finite() {
            Some("gradient".to_string())
        } else {
            None
        };
        if let Some(what) = bad {
            let e = Error::NonFinite { what, iteration };
            if done == 0 {
                return Err(e);
            }
            // The best point so far is good: keep it.
            stop = StopReason::Failed(e.to_string());
            break;
        }
        done = iteration;
        if loss.total < best_loss {
            best_loss = loss.total;
            best_iteration = iteration;
            b.copy_from(&mut best, &x)?;
        }
        let report = IterationReport {
            iteration,
            of: opts.iterations,
            loss,
            grad_norm,
            elapsed: start.elapsed().as_secs_f64(),
        };
        observer.on_iteration(&report, &mut || download(b, &x))?;
        if iteration == opts.iterations {
            break; // the last evaluation is not followed by a move
        }
        if let Some(w) = watch.as_mut().filter(|w| w.due(iteration)) {
            if let Some(why) = w.check(best_loss, &b.download(&best)?) {
                stop = StopReason::Converged(why);
                break;
            }
        }
        if let Step::Stop(why) = optimizer.update(b, &mut x, loss.total, &grad)? {
            stop = StopReason::Converged(why);
            break;
        }
    }
    if done == 0 {
        // Interrupted before the first evaluation: the start is the best we have.
        best = x;
    }
    Ok(RunOutcome {
        best: download(b, &best)?,
        best_loss,
        best_iteration,
        iterations: done,
        stop,
        elapsed: start.elapsed(),
    })
}

/// Reports of a later scale, numbered after the earlier scales' iterations
/// and timed from the start of the first scale.
struct Continued<'a> {
    inner: &'a mut dyn Observer,
    offset: usize,
    of: usize,
    start: Instant,
}

impl Observer for Continued<'_> {
    fn on_iteration(
        &mut self,
        r: &IterationReport,
        image: &mut dyn FnMut() -> Result<CaffeImage>,
    ) -> Result<()> {
        let report = IterationReport {
            iteration: r.iteration + self.offset,
            of: self.of,
            elapsed: self.start.elapsed().as_secs_f64(),
            ..*r
        };
        self.inner.on_iteration(&report, image)
    }
}

/// Optimise at several scales in a row: `iterations[i]` evaluations with the
/// objective `objective_at(i)` builds (the caller sizes the images), the
/// first scale starting from `init` (resized to its size if needed), each
/// later one from the previous scale's best image resized. Iterations and
/// elapsed times are reported across scales; an optimiser that stops early
/// ends its scale, not the run, and so does the stopping rule `stop_rule`
/// (applied at each scale afresh); an interrupt ends the run (the best image
/// is then at the size of the scale reached).
pub fn run_scales<'n, B: Backend>(
    iterations: &[usize],
    objective_at: &mut dyn FnMut(usize) -> Result<Objective<'n, B>>,
    init: &CaffeImage,
    optimizer: OptimizerKind,
    stop_rule: Option<StopRule>,
    observer: &mut dyn Observer,
    interrupt: &AtomicBool,
) -> Result<RunOutcome> {
    let start = Instant::now();
    let of = iterations.iter().sum();
    let mut current = init.clone();
    let mut done = 0;
    let mut last = None;
    for (i, &n) in iterations.iter().enumerate() {
        let objective = objective_at(i)?;
        observer.on_scale(i);
        let [_, h, w] = objective.content_shape();
        let from = crate::image_io::resize_caffe(&current, w, h);
        let mut cont = Continued {
            inner: &mut *observer,
            offset: done,
            of,
            start,
        };
        let opts = RunOptions {
            iterations: n,
            optimizer,
            stop_rule,
        };
        let mut out = run(&objective, &from, &opts, &mut cont, interrupt)?;
        out.best_iteration += done;
        done += out.iterations;
        out.iterations = done;
        current = out.best.clone();
        let stop = out.stop.clone();
        last = Some(out);
        if matches!(stop, StopReason::Interrupted | StopReason::Failed(_)) {
            break;
        }
    }
    let mut out = last.ok_or_else(|| Error::config("scales", "no scale to run"))?;
    out.elapsed = start.elapsed();
    Ok(out)
}
