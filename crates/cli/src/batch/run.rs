//! A batch's jobs run on one backend (the network and the style targets
//! shared), each claimed, checkpointed and reported as events.

use super::checkpoint::{self, Hooks};
use super::claim::{Acquired, Claim};
use super::events::{Detail, Events, Kind};
use super::plan::BatchJob;
use neural_style::backends::WithBackend;
use neural_style::run::{finish, prepare, Images, Session};
use neural_style_core::backend::Backend;
use neural_style_core::image_io::Picture;
use neural_style_core::run::{RunOutcome, Silent, StopReason};
use neural_style_core::{Error, Result};
use neural_style_weights::Vgg19Weights;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a batch did.
#[derive(Debug, Default)]
pub(crate) struct BatchSummary {
    /// Jobs written.
    pub(crate) written: usize,
    /// Output already there, or the job claimed by another process.
    pub(crate) skipped: usize,
    /// The jobs that failed, with why; the batch went on after each.
    pub(crate) failed: Vec<(BatchJob, Error)>,
    /// A stop signal ended the batch (the job in flight saved as its partial output).
    pub(crate) interrupted: bool,
    /// Jobs not started because of the stop.
    pub(crate) not_started: usize,
}

/// Run a batch's jobs on one backend: the network is built once (per
/// pooling) and each style's targets are computed once per size. Each job
/// is claimed first (`crate::claim`): one claimed by another live process
/// is skipped. A job that fails is reported in the summary and the batch
/// goes on; a stop signal saves the job in flight as its partial output
/// (and, with `checkpoint_every`, as its checkpoint, from which a rerun
/// resumes: `crate::checkpoint`) and ends the batch. Every step is an event
/// (`crate::events`).
pub(crate) struct BatchRun<'a> {
    /// The jobs, in order.
    pub(crate) jobs: &'a [BatchJob],
    /// The network's weights, shared by every job.
    pub(crate) weights: &'a Arc<Vgg19Weights>,
    /// Set to stop the batch after the current iteration.
    pub(crate) interrupt: &'a AtomicBool,
    /// Messages.
    pub(crate) log: &'a mut dyn FnMut(&str),
    /// `--checkpoint-every N`: checkpoint each job every N iterations.
    pub(crate) checkpoint_every: Option<usize>,
    /// A claim from another host not refreshed for this long is taken over.
    pub(crate) stale_claim_after: Duration,
    /// Where job events go.
    pub(crate) events: &'a Events,
}

impl WithBackend for BatchRun<'_> {
    type Output = BatchSummary;
    fn run<B: Backend + Clone + 'static>(self, backend: B) -> Result<BatchSummary> {
        let mut session = Session::new(backend, self.weights);
        let mut summary = BatchSummary::default();
        let events = self.events;
        for (k, j) in self.jobs.iter().enumerate() {
            if self.interrupt.load(Ordering::SeqCst) {
                summary.interrupted = true;
                summary.not_started = self.jobs.len() - k;
                break;
            }
            let emit = |kind: Kind, detail: Detail| events.emit(kind, j.index, &j.output, &detail);
            let skip = |why: &str| {
                emit(
                    Kind::Skipped,
                    Detail {
                        reason: Some(why.to_string()),
                        ..Detail::default()
                    },
                )
            };
            if j.output.exists() {
                summary.skipped += 1;
                skip("the output exists");
                continue;
            }
            let claim = match Claim::acquire(&j.output, self.stale_claim_after) {
                Ok(Acquired::Mine(c)) => c,
                Ok(Acquired::Busy(holder)) => {
                    let by = holder.map_or("another process".into(), |h| h.to_string());
                    (self.log)(&format!("{}: claimed by {by}, skipped", j.describe()));
                    summary.skipped += 1;
                    skip(&format!("claimed by {by}"));
                    continue;
                }
                Err(e) => {
                    (self.log)(&format!("{} failed: {}", j.describe(), e.cited()));
                    emit(Kind::Failed, Detail::reason(&e));
                    summary.failed.push((j.clone(), e));
                    continue;
                }
            };
            let took_over = claim.took_over.as_ref().map(|(old, why)| {
                let who = old
                    .as_ref()
                    .map_or("unreadable claim".into(), |h| h.to_string());
                format!("took over the stale claim ({who}): {why}")
            });
            if let Some(t) = &took_over {
                (self.log)(&format!("{}: {t}", j.describe()));
            }
            emit(
                Kind::Claimed,
                Detail {
                    reason: took_over,
                    ..Detail::default()
                },
            );
            // Written by another process between our check and our claim.
            if j.output.exists() {
                summary.skipped += 1;
                skip("the output exists");
                continue;
            }
            (self.log)(&format!(
                "[{}/{}] {} -> {}",
                k + 1,
                self.jobs.len(),
                j.describe(),
                j.output.display()
            ));
            let ran = run_job(
                &mut session,
                self.weights,
                j,
                self.interrupt,
                self.checkpoint_every,
                &claim,
                &mut *self.log,
                &emit,
            );
            drop(claim);
            match ran {
                Ok((out, Some(path), resumed_from)) => {
                    if let StopReason::Failed(why) = &out.stop {
                        // A non-finite loss: the best image so far is the
                        // partial output, and the job failed (a rerun redoes it).
                        let e = Error::config(
                            "batch",
                            format!("{why}; its best image so far is in {}", path.display()),
                        );
                        (self.log)(&format!("{} failed: {}", j.describe(), e.cited()));
                        emit(Kind::Failed, Detail::reason(&e));
                        summary.failed.push((j.clone(), e));
                        continue;
                    }
                    let done = out.stop != StopReason::Interrupted;
                    if done {
                        summary.written += 1;
                        emit(
                            Kind::Written,
                            Detail {
                                iteration: Some(out.iterations),
                                loss: Some(out.best_loss),
                                seconds: Some(out.elapsed.as_secs_f64()),
                                resumed_from,
                                ..Detail::default()
                            },
                        );
                    }
                    (self.log)(&format!(
                        "wrote {}{} (loss {:.4e}, {:.1} s)",
                        path.display(),
                        if done { "" } else { ", interrupted" },
                        out.best_loss,
                        out.elapsed.as_secs_f64()
                    ));
                    if !done {
                        summary.interrupted = true;
                        summary.not_started = self.jobs.len() - k - 1;
                        break;
                    }
                }
                Ok((_, None, _)) => {
                    // Another process judged this one dead and took the job
                    // over: it writes the output, not us.
                    (self.log)(&format!(
                        "{}: the claim was taken over meanwhile; not writing {}",
                        j.describe(),
                        j.output.display()
                    ));
                    summary.skipped += 1;
                    skip("the claim was taken over while the job ran");
                }
                Err(e) => {
                    (self.log)(&format!("{} failed: {}", j.describe(), e.cited()));
                    emit(Kind::Failed, Detail::reason(&e));
                    summary.failed.push((j.clone(), e));
                }
            }
        }
        Ok(summary)
    }
}

/// One claimed batch job: its image written to its output, or (stopped by a
/// signal) to its partial output, with checkpoints when `every` is given.
/// Returns the outcome, the path written (`None`: the claim was taken over
/// meanwhile, nothing written) and the iteration it resumed from.
#[allow(clippy::too_many_arguments)]
fn run_job<B: Backend + Clone>(
    session: &mut Session<'_, B>,
    weights: &Arc<Vgg19Weights>,
    j: &BatchJob,
    interrupt: &AtomicBool,
    every: Option<usize>,
    claim: &Claim,
    log: &mut dyn FnMut(&str),
    emit: &dyn Fn(Kind, Detail),
) -> Result<(RunOutcome, Option<std::path::PathBuf>, Option<usize>)> {
    let prepared = prepare(
        j.settings.clone(),
        Images::files(),
        &[],
        Some(weights.clone()),
        log,
    )?;
    let s = &prepared.settings;
    let (sources, init) = (&prepared.sources, &prepared.init);
    let content = &prepared.inputs.content;
    let painted = checkpoint::paint_resumable(
        s,
        &j.output,
        every,
        init,
        &mut Silent,
        &mut Hooks {
            log,
            started: &mut |from| {
                emit(
                    Kind::Started,
                    Detail {
                        resumed_from: from,
                        ..Detail::default()
                    },
                )
            },
            checkpoint: &mut |p| {
                emit(
                    Kind::Checkpoint,
                    Detail {
                        iteration: Some(p.iteration),
                        loss: Some(p.best_loss),
                        ..Detail::default()
                    },
                )
            },
        },
        &mut |scales, init, scale, observer| {
            session.paint_scales(s, sources, scales, init, scale, observer, interrupt)
        },
    )?;
    let out = painted.outcome;
    if !claim.still_held() {
        return Ok((out, None, painted.resumed_from));
    }
    let path = if matches!(out.stop, StopReason::Interrupted | StopReason::Failed(_)) {
        j.partial()
    } else {
        j.output.clone()
    };
    Picture::from_caffe(&finish(s, &out.best, content)).save(&path)?;
    if path == j.output {
        // A partial image or checkpoint of an earlier, interrupted run is now stale.
        let _ = std::fs::remove_file(j.partial());
        if every.is_some() {
            checkpoint::remove(&j.output)?;
        }
    }
    Ok((out, Some(path), painted.resumed_from))
}
