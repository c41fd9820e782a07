//! The main job: paint one image (`neural-style --content … --style … --output …`).

use crate::batch::checkpoint::{self, Hooks, Painted};
use crate::flags;
use crate::observer::{self, say, CliObserver, SHEET_CELL};
use crate::{pictures, signals};
use clap::Args;
use neural_style::backends::{self, WithBackend};
use neural_style::options::{Settings, StyleArgs};
use neural_style::run::preflight;
use neural_style::run::written::{Writes, Written};
use neural_style::run::{self as job, prepare_written, Images, Session, Sources};
use neural_style_core::backend::Backend;
use neural_style_core::image_io::{self, Picture, SaveOptions};
use neural_style_core::memory;
use neural_style_core::pixel::CaffeImage;
use neural_style_core::run::{Observer, StopReason};
use neural_style_core::{Error, Result};
use neural_style_weights::Vgg19Weights;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

/// Options of the painting run itself (not part of --config files).
#[derive(Args, Debug, Default)]
pub(crate) struct RunArgs {
    /// Output image; the format follows the extension (.png, .jpg, .webp, .tif).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Print the losses every N iterations (0: never).
    #[arg(long, value_name = "N", default_value_t = 50)]
    print_every: usize,
    /// Save the image every N iterations into --frames-dir.
    #[arg(long, value_name = "N")]
    save_every: Option<usize>,
    /// Directory of the --save-every frames [default: <output stem>_frames next to the output].
    #[arg(long, value_name = "DIR")]
    frames_dir: Option<PathBuf>,
    /// Write one JSON line per iteration (iteration, loss parts, total, elapsed seconds).
    #[arg(long, value_name = "FILE")]
    json_log: Option<PathBuf>,
    /// Plot each loss part over the iterations (log scale) into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Every N iterations (and when stopped) save the best image so far as OUTPUT.ckpt.png
    /// (+ .json); run again with this flag to resume from it.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// A contact sheet of the --save-every frames, labelled with their iteration.
    #[arg(long, value_name = "FILE")]
    sheet: Option<PathBuf>,
    /// No progress bar or messages (errors still go to stderr).
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Bits per channel of the output: 8, or 16 (.png and .tif: a poster's
    /// smooth gradients without banding).
    #[arg(long, value_name = "8|16", default_value_t = 8)]
    bit_depth: u8,
    /// Print resolution recorded in the output, in dots per inch (.png pHYs,
    /// .tif XResolution/YResolution): 4096 px at 300 dpi print 34.7 cm wide.
    #[arg(long, value_name = "N")]
    dpi: Option<u32>,
    /// Print the plan (scales, iterations, L-BFGS history, recomputation,
    /// predicted peak memory and time) and exit without painting or writing anything.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) fn paint(args: &StyleArgs, run: &RunArgs) -> Result<ExitCode> {
    let s = args.resolve()?;
    let output = run
        .output
        .clone()
        .ok_or_else(|| Error::config("output", "an output file is required"))?;
    // How the output is written, checked against its format before any work.
    let save = SaveOptions {
        bit_depth: run.bit_depth,
        dpi: run.dpi,
    };
    if save != SaveOptions::default() {
        save.check(&output)?;
    }
    if run.save_every == Some(0) {
        return Err(Error::config("save-every", "must be at least 1"));
    }
    if run.checkpoint_every == Some(0) {
        return Err(Error::config("checkpoint-every", "must be at least 1"));
    }
    if run.sheet.is_some() && run.save_every.is_none() {
        return Err(Error::config(
            "sheet",
            "the contact sheet shows the `save-every` frames: add `save-every` N",
        ));
    }
    // Everything this run may create or delete, from one place: the
    // preflight checks it, and every writer below takes its path from it.
    let written = Writes {
        output: output.clone(),
        json_log: run.json_log.clone(),
        plot: run.plot.clone(),
        sheet: run.sheet.clone(),
        frames: run.save_every.map(|_| run.frames_dir.clone()),
        iterations: s.total_iterations(),
        checkpoints: run.checkpoint_every.is_some(),
        ..Writes::default()
    }
    .declared();
    let quiet = run.quiet;
    let mut log = flags::logger(quiet);
    if run.dry_run {
        return dry_run(&s, &written);
    }
    let p = prepare_written(s, Images::files(), &written, None, &mut log)?;
    let (s, inputs) = (&p.settings, &p.inputs);
    // Inputs are good: only now create the frames directory and the log.
    let frames = match (run.save_every, written.frames.first().cloned()) {
        (Some(n), Some(frames)) => {
            std::fs::create_dir_all(&frames.dir).map_err(|e| Error::io(&frames.dir, e))?;
            Some((n, frames))
        }
        _ => None,
    };
    // The writers below take their paths from the registry.
    let json_log_path = written.file("json-log").map(Path::to_path_buf);
    let plot_path = written.file("plot").map(Path::to_path_buf);
    let sheet_path = written.file("sheet").map(Path::to_path_buf);
    let json_log = match &json_log_path {
        Some(p) => Some((
            p.clone(),
            std::io::LineWriter::new(std::fs::File::create(p).map_err(|e| Error::io(p, e))?),
        )),
        None => None,
    };

    signals::install(quiet, "the best image so far will be saved");
    let bar = observer::progress_bar(s.total_iterations(), quiet);
    let mut observer = CliObserver {
        bar: bar.clone(),
        print_every: if quiet { 0 } else { run.print_every },
        heartbeat: (!quiet && bar.is_hidden()).then(|| {
            let may_stop = s
                .stop_rule
                .is_some_and(|r| s.scales.iter().any(|x| x.1 >= r.earliest()));
            // The plan's time for each scale, when it has one (CPU backends).
            let schedule = p
                .sources
                .plan()
                .scales
                .iter()
                .map(|x| x.seconds.map(|t| (x.iterations, t)))
                .collect();
            observer::Heartbeat::new(observer::HEARTBEAT_SECONDS, may_stop, schedule)
        }),
        frames,
        json_log,
        log_error: None,
        colors: s.options.original_colors.then(|| inputs.content.clone()),
        plot: run.plot.as_ref().map(|_| Vec::new()),
        thumbs: run.sheet.as_ref().map(|_| Vec::new()),
    };
    let (w, h) = (inputs.content.width, inputs.content.height);
    let scales = if s.scales.len() > 1 {
        format!(
            " over scales {}",
            s.scales
                .iter()
                .map(|(px, n)| format!("{px} px × {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        String::new()
    };
    let mut on_ready = |name: &str, device: &str| {
        if !quiet {
            say(
                &bar,
                format!(
                    "{w}×{h}, {} iterations{scales}, backend {name} on {device}",
                    s.total_iterations()
                ),
            );
        }
    };
    let mut say_bar = |m: &str| {
        if !quiet {
            say(&bar, flags::map(m));
        }
    };
    let painted = backends::dispatch(
        &s.selection(),
        StyleJob {
            settings: s,
            weights: &p.weights,
            sources: &p.sources,
            init: p.init.clone(),
            observer: &mut observer,
            interrupt: signals::flag(),
            on_ready: &mut on_ready,
            output: &output,
            checkpoint_every: run.checkpoint_every,
            log: &mut say_bar,
        },
    );
    bar.finish_and_clear();
    let log_failed = observer
        .log_error
        .take()
        .or_else(|| observer.flush_log().err());
    let painted = painted?;
    let outcome = painted.outcome;
    let best = job::finish(s, &outcome.best, &inputs.content);
    if save.bit_depth == 16 {
        Picture::from_caffe_exact(&best)
    } else {
        Picture::from_caffe(&best)
    }
    .save_with(&output, save)?;
    if run.checkpoint_every.is_some() && outcome.stop != StopReason::Interrupted {
        checkpoint::remove(&output)?;
    }
    let stopped = |what: &str, e: &dyn std::fmt::Display| {
        Error::config(
            what,
            format!(
                "{e}; the run stopped at iteration {} and the best image so far is in {}",
                outcome.iterations,
                output.display()
            ),
        )
    };
    if let Some(e) = log_failed {
        return Err(stopped("json-log", &e));
    }
    if let Some(e) = flags::stderr_failure() {
        return Err(stopped(
            "stderr",
            &format!("writing a message to stderr failed ({e})"),
        ));
    }
    if let StopReason::Failed(e) = &outcome.stop {
        return Err(stopped("learning-rate", e));
    }
    if let (Some(path), Some(points)) = (&plot_path, &observer.plot) {
        let w = [s.spec.content_weight, s.spec.style_weight, s.spec.tv_weight];
        image_io::write_file_atomic(path, pictures::plot_losses(points, w)?.as_bytes(), 0o666)?;
        log(&format!("wrote {}", path.display()));
    }
    if let (Some(path), Some(thumbs)) = (&sheet_path, &observer.thumbs) {
        let columns = if thumbs.len() <= 6 { thumbs.len() } else { 5 };
        pictures::sheet(thumbs, columns, SHEET_CELL).save(path)?;
        log(&format!("wrote {}", path.display()));
    }
    let secs = outcome.elapsed.as_secs_f64();
    // The speed of this process: a resumed run's earlier iterations are not its.
    let here = outcome.iterations - painted.resumed_from.unwrap_or(0).min(outcome.iterations);
    let speed = if here > 0 && secs > 0.0 {
        format!(", {:.2} it/s", here as f64 / secs)
    } else {
        String::new()
    };
    // This process's own peak (`VmHWM`), next to what the plan predicted.
    let peak = memory::peak_process_bytes()
        .map(|b| {
            format!(
                "; peak memory {} (planned {})",
                memory::gib(b),
                memory::gib(p.sources.plan().peak())
            )
        })
        .unwrap_or_default();
    log(&format!(
        "wrote {} (best loss {:.6e} at iteration {} of {}; {:.1} s{speed}{peak})",
        output.display(),
        outcome.best_loss,
        outcome.best_iteration,
        outcome.iterations,
        secs,
    ));
    Ok(match outcome.stop {
        StopReason::Completed => ExitCode::SUCCESS,
        StopReason::Converged(why) => {
            log(&format!("stopped early: {why}"));
            ExitCode::SUCCESS
        }
        StopReason::Interrupted => {
            log("interrupted: the best image so far was saved");
            signals::exit_code()
        }
        StopReason::Failed(_) => ExitCode::FAILURE, // returned above
    })
}

/// `--dry-run`: the preflight (nothing written), the inputs' headers and
/// pixels decoded, the memory plan printed on stdout; no weights loaded.
fn dry_run(s: &Settings, written: &Written) -> Result<ExitCode> {
    preflight::check_run_written(s, Vec::new(), written)?;
    let sources = job::load_sources(s)?;
    let plan = sources.plan();
    println!(
        "plan: {} iterations over {} scale{}, backend {}{}, L-BFGS history {}, activations {}",
        s.total_iterations(),
        plan.scales.len(),
        if plan.scales.len() == 1 { "" } else { "s" },
        s.options.backend,
        s.options
            .device
            .as_deref()
            .map(|d| format!(" on {d}"))
            .unwrap_or_default(),
        plan.history
            .map_or_else(|| "none (Adam)".to_string(), |h| h.to_string()),
        if plan.recompute { "recomputed" } else { "kept" }
    );
    if let Some(chain) = sources.chain() {
        println!(
            "coarse-to-fine above {} px (--scales or --scale-iterations choose another schedule): {}",
            memory::COARSE_TO_FINE_ABOVE,
            chain
                .iter()
                .map(|(px, n)| format!("{px} px × {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for line in plan.describe() {
        println!("{}", flags::map(&line));
    }
    for change in &plan.changes {
        println!("warning: {}", flags::map(change));
    }
    Ok(ExitCode::SUCCESS)
}

/// The main job: optimise an image.
pub(crate) struct StyleJob<'a> {
    /// The job's settings.
    pub(crate) settings: &'a Settings,
    /// The network's weights.
    pub(crate) weights: &'a Vgg19Weights,
    /// The decoded inputs.
    pub(crate) sources: &'a Sources,
    /// The starting image.
    pub(crate) init: CaffeImage,
    /// Told every iteration.
    pub(crate) observer: &'a mut dyn Observer,
    /// Set to stop after the current iteration.
    pub(crate) interrupt: &'a AtomicBool,
    /// Called once the backend is ready, with its name and device.
    pub(crate) on_ready: &'a mut dyn FnMut(&str, &str),
    /// The output, beside which checkpoints go.
    pub(crate) output: &'a Path,
    /// `--checkpoint-every N`: resume from, and write, checkpoints.
    pub(crate) checkpoint_every: Option<usize>,
    /// Messages (resume, checkpoints).
    pub(crate) log: &'a mut dyn FnMut(&str),
}

impl WithBackend for StyleJob<'_> {
    type Output = Painted;
    fn run<B: Backend + Clone + 'static>(self, backend: B) -> Result<Painted> {
        (self.on_ready)(backend.name(), &backend.device());
        let mut session = Session::new(backend, self.weights);
        let (s, sources, interrupt) = (self.settings, self.sources, self.interrupt);
        checkpoint::paint_resumable(
            s,
            self.output,
            self.checkpoint_every,
            &self.init,
            self.observer,
            &mut Hooks {
                log: self.log,
                started: &mut |_| {},
                checkpoint: &mut |_| {},
            },
            &mut |scales, init, scale, observer| {
                session.paint_scales(s, sources, scales, init, scale, observer, interrupt)
            },
        )
    }
}
