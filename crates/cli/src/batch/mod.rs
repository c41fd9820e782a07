//! `batch`: many content × style jobs from a TOML file — the plan
//! (`plan.rs`), the run on one backend (`run.rs`), sharding across a cluster
//! (`shard.rs`), job claims (`claim.rs`), checkpoints (`checkpoint.rs`) and
//! the JSON events (`events.rs`).

pub(crate) mod checkpoint;
pub(crate) mod claim;
pub(crate) mod events;
pub(crate) mod plan;
pub(crate) mod run;
pub(crate) mod shard;

use crate::{flags, signals};
use clap::Args;
use events::{Detail, Events, Summary};
use neural_style::backends;
use neural_style::options::StyleArgs;
use neural_style::run as job;
use neural_style_core::{Error, Result};
use run::BatchRun;
use shard::ShardArg;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub(crate) struct BatchArgs {
    /// The jobs file (see the README: [defaults], [[job]], contents × styles).
    #[arg(value_name = "JOBS.toml")]
    file: PathBuf,
    /// Options of the main job: they override the file's [defaults] and [[job]] keys.
    #[command(flatten)]
    style: StyleArgs,
    /// Run only the jobs i with i % N == I (0-based); `auto`: from SLURM_ARRAY_TASK_ID/COUNT
    /// or JOB_COMPLETION_INDEX (the default when set); `none`: every job.
    #[arg(long, value_name = "I/N|auto|none")]
    shard: Option<String>,
    /// The number of shards for a Kubernetes Indexed Job (its `completions`).
    #[arg(long, value_name = "N")]
    shard_count: Option<usize>,
    /// One JSON line per job event on stdout (claimed, started, checkpoint, written, failed,
    /// skipped, and a final summary).
    #[arg(long)]
    json: bool,
    /// Every N iterations (and when stopped) checkpoint the job in flight; a rerun resumes it.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// Take over a job claim not refreshed for this many seconds (its node died).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    stale_claim_after: u64,
    /// List the jobs this shard would run, and exit.
    #[arg(long)]
    dry_run: bool,
    /// No messages (errors still go to stderr).
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub(crate) fn batch(a: &BatchArgs) -> Result<ExitCode> {
    let arg = a.shard.as_deref().map(str::parse::<ShardArg>).transpose()?;
    let chosen = shard::choose(arg, a.shard_count, &|k| std::env::var(k).ok())?;
    let shard = chosen.shard;
    if a.checkpoint_every == Some(0) {
        return Err(Error::config("checkpoint-every", "must be at least 1"));
    }
    if a.stale_claim_after == 0 {
        return Err(Error::config("stale-claim-after", "must be at least 1"));
    }
    let checkpoints = a.checkpoint_every.is_some();
    let jobs = plan::plan(&a.file, &a.style, checkpoints)?;
    let total = jobs.len();
    let (todo, done) = plan::todo(jobs, shard);
    let skipped = done.len();
    // The jobs to run only: a finished job writes nothing (and `plan` refused
    // any job writing another's input, finished or not).
    plan::check(&a.file, &todo, checkpoints)?;
    let quiet = a.quiet;
    let mut log = flags::logger(quiet);
    log(&format!(
        "{total} jobs in {}, {}: {} to run, {skipped} already done",
        a.file.display(),
        chosen.from,
        todo.len()
    ));
    if a.dry_run {
        for j in &todo {
            flags::print(&format!("{}\t{}", j.index, j.output.display()))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let events = if a.json {
        Events::to(Box::new(std::io::stdout()))
    } else {
        Events::off()
    };
    for j in &done {
        events.emit(
            events::Kind::Skipped,
            j.index,
            &j.output,
            &Detail {
                reason: Some("the output exists".into()),
                ..Default::default()
            },
        );
    }
    let mut totals = Summary {
        shard: shard.map(|s| format!("{}/{}", s.index, s.count)),
        jobs: todo.len() + skipped,
        skipped,
        ..Summary::default()
    };
    let Some(first) = todo.first() else {
        events.summary(&totals);
        return Ok(ExitCode::SUCCESS);
    };
    let first = first.settings.clone();
    job::set_threads(first.options.threads, &mut log)?;
    let weights = std::sync::Arc::new(job::load_weights(
        first.options.weights.as_deref(),
        &mut log,
    )?);
    signals::install(
        quiet,
        if a.checkpoint_every.is_some() {
            "the job in flight will be checkpointed (a rerun resumes it) and saved as NAME.partial.EXT, and the batch will stop"
        } else {
            "the job in flight will be saved as NAME.partial.EXT and the batch will stop (a rerun redoes that job)"
        },
    );
    let summary = backends::dispatch(
        &first.selection(),
        BatchRun {
            jobs: &todo,
            weights: &weights,
            interrupt: signals::flag(),
            log: &mut log,
            checkpoint_every: a.checkpoint_every,
            stale_claim_after: std::time::Duration::from_secs(a.stale_claim_after),
            events: &events,
        },
    );
    let summary = match summary {
        Ok(s) => s,
        Err(e) => {
            totals.failed = todo.len();
            events.summary(&totals);
            return Err(e);
        }
    };
    totals.written = summary.written;
    totals.skipped += summary.skipped;
    totals.failed = summary.failed.len();
    totals.interrupted = summary.interrupted;
    events.summary(&totals);
    for (j, e) in &summary.failed {
        flags::err_line(&format!(
            "error: {} failed: {}",
            j.describe(),
            flags::map(&e.cited())
        ));
    }
    log(&format!(
        "{} written, {} skipped (already there or claimed by another process), {} failed{}",
        summary.written,
        skipped + summary.skipped,
        summary.failed.len(),
        if summary.interrupted {
            format!(", {} not started", summary.not_started)
        } else {
            String::new()
        }
    ));
    Ok(if let Some(e) = flags::stderr_failure() {
        // The messages could not be written: the batch stopped as on a
        // signal (the job in flight saved as its partial output).
        let _ = e;
        ExitCode::FAILURE
    } else if summary.interrupted {
        log("interrupted: rerun the same command to resume");
        signals::exit_code()
    } else if !summary.failed.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
