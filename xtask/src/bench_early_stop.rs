//! `cargo xtask early-stop DIR...`: the stopping rule of core's
//! `stopping.rs` replayed on recorded runs, to show (and tune) where it stops
//! and how far the stopped picture is from the run's end.
//!
//! Each `DIR` holds one run of every iteration (`--early-stop=false`) as
//! `benches/early_stop.sh` records it: `log.jsonl` (`--json-log`), the frame
//! of every iteration (`--save-every 1 --frames-dir DIR/frames`, named
//! `*_NNNNN.png`) and the output `out.png`. The run's best image at iteration
//! `t` is the frame of lowest loss up to `t` (what the loop keeps); the rule
//! sees exactly the losses the loop saw and the best images as 8-bit frames
//! (the loop sees them unrounded: the mean change differs by the rounding,
//! unbiased). For each rule the report gives the stopping iteration, the
//! stopped loss against the last iteration's best, and the mean absolute
//! pixel difference (1/255ths, 8-bit RGB) of the stopped picture against the
//! run's output.
//!
//! `--grid` tries a grid of rules and prints those within the bounds
//! (`--max-loss` %, `--max-diff` /255) on every run, earliest mean stop first.

use anyhow::{bail, Context, Result};
use neural_style_core::image_io::Picture;
use neural_style_core::stopping::{mean_abs_diff, StopRule, Watch};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One recorded run.
struct Recorded {
    dir: PathBuf,
    /// Total loss of iteration `i + 1`.
    loss: Vec<f64>,
    /// `frames[i]`: the frame of iteration `i + 1`.
    frames: Vec<PathBuf>,
    cache: HashMap<usize, Vec<f32>>,
}

impl Recorded {
    fn open(dir: &Path) -> Result<Recorded> {
        let log = dir.join("log.jsonl");
        let text = std::fs::read_to_string(&log).with_context(|| log.display().to_string())?;
        let mut loss = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}", log.display(), i + 1))?;
            if v["iteration"].as_u64() != Some(i as u64 + 1) {
                bail!("{}:{}: iterations are not 1, 2, 3…", log.display(), i + 1);
            }
            loss.push(
                v["total"]
                    .as_f64()
                    .with_context(|| format!("{}:{}: no total", log.display(), i + 1))?,
            );
        }
        let mut frames: Vec<(usize, PathBuf)> = Vec::new();
        let fdir = dir.join("frames");
        for e in std::fs::read_dir(&fdir).with_context(|| fdir.display().to_string())? {
            let p = e?.path();
            let n = p
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.rsplit('_').next())
                .and_then(|s| s.parse::<usize>().ok());
            if let Some(n) = n {
                frames.push((n, p));
            }
        }
        frames.sort();
        if frames.len() != loss.len() || frames.iter().enumerate().any(|(i, f)| f.0 != i + 1) {
            bail!(
                "{}: {} frames for {} logged iterations (record with --save-every 1)",
                fdir.display(),
                frames.len(),
                loss.len()
            );
        }
        Ok(Recorded {
            dir: dir.to_path_buf(),
            loss,
            frames: frames.into_iter().map(|f| f.1).collect(),
            cache: HashMap::new(),
        })
    }

    /// The frame of iteration `i + 1`, as 0–255 floats.
    fn frame(&mut self, i: usize) -> Result<&[f32]> {
        if !self.cache.contains_key(&i) {
            let p = Picture::load(&self.frames[i])?;
            let v = p.to_rgb8().into_iter().map(f32::from).collect();
            self.cache.insert(i, v);
        }
        Ok(&self.cache[&i])
    }

    /// The index of the best iteration up to iteration `i + 1`.
    fn best_up_to(&self, i: usize) -> usize {
        let mut b = 0;
        for j in 0..=i {
            if self.loss[j] < self.loss[b] {
                b = j;
            }
        }
        b
    }
}

/// Where a rule stops a recorded run and how far from its end.
struct Outcome {
    /// 1-based iteration at which the run stops (the last one if it never does).
    stop: usize,
    /// Stopped best loss / last best loss − 1.
    loss_excess: f64,
    /// Mean absolute difference of the stopped picture to the last best, /255.
    diff: f64,
}

fn replay(r: &mut Recorded, rule: StopRule) -> Result<Outcome> {
    let n = r.loss.len();
    let mut watch = Watch::new(rule);
    let mut stop = n;
    for it in 1..n {
        if watch.due(it) {
            let b = r.best_up_to(it - 1);
            let loss = r.loss[b];
            let img = r.frame(b)?.to_vec();
            if watch.check(loss, &img).is_some() {
                stop = it;
                break;
            }
        }
    }
    let at = r.best_up_to(stop - 1);
    let last = r.best_up_to(n - 1);
    let loss_excess = r.loss[at] / r.loss[last] - 1.0;
    let a = r.frame(at)?.to_vec();
    let diff = mean_abs_diff(&a, r.frame(last)?);
    Ok(Outcome {
        stop,
        loss_excess,
        diff,
    })
}

fn print(r: &Recorded, o: &Outcome) {
    println!(
        "{:<40} stops at {:>4} of {:>4}  loss +{:.2} %  picture {:.2}/255",
        r.dir.display(),
        o.stop,
        r.loss.len(),
        o.loss_excess * 100.0,
        o.diff
    );
}

fn value<T: std::str::FromStr>(args: &[String], flag: &str, default: T) -> Result<T> {
    match args.iter().position(|a| a == flag) {
        None => Ok(default),
        Some(i) => match args.get(i + 1).map(|v| v.parse()) {
            Some(Ok(v)) => Ok(v),
            _ => bail!("{flag} needs a number"),
        },
    }
}

/// `cargo xtask early-stop [--window N --loss F --change F --patience N] [--grid [--max-loss % --max-diff D]] DIR...`
pub fn main(args: &[String]) -> Result<()> {
    let flags = [
        "--window",
        "--loss",
        "--change",
        "--patience",
        "--max-loss",
        "--max-diff",
    ];
    let mut dirs = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if flags.contains(&args[i].as_str()) {
            i += 2;
            continue;
        }
        if args[i] != "--grid" && args[i] != "--trace" {
            dirs.push(PathBuf::from(&args[i]));
        }
        i += 1;
    }
    if dirs.is_empty() {
        bail!("usage: cargo xtask early-stop [--window N --loss F --change F --patience N] [--grid [--max-loss PERCENT --max-diff D]] DIR...");
    }
    let mut runs = dirs
        .iter()
        .map(|d| Recorded::open(d))
        .collect::<Result<Vec<_>>>()?;
    let d = StopRule::default();
    if args.iter().any(|a| a == "--trace") {
        let window = value(args, "--window", d.window)?;
        for r in &mut runs {
            println!(
                "{}: per window of {window}: loss fall %, image change /255, \
                      distance to the last best /255",
                r.dir.display()
            );
            let mut watch = Watch::new(StopRule { window, ..d });
            let last = r.best_up_to(r.loss.len() - 1);
            let end = r.frame(last)?.to_vec();
            for it in (window..r.loss.len()).step_by(window) {
                let b = r.best_up_to(it - 1);
                let img = r.frame(b)?.to_vec();
                if let Some(p) = watch.measure(r.loss[b], &img) {
                    println!(
                        "{it:>5} {:>8.3} {:>7.3} {:>7.2}  loss +{:.2} %",
                        p.loss_decrease * 100.0,
                        p.image_change,
                        mean_abs_diff(&img, &end),
                        (r.loss[b] / r.loss[last] - 1.0) * 100.0
                    );
                }
            }
        }
        return Ok(());
    }
    if !args.iter().any(|a| a == "--grid") {
        let rule = StopRule {
            window: value(args, "--window", d.window)?,
            loss_decrease: value(args, "--loss", d.loss_decrease)?,
            image_change: value(args, "--change", d.image_change)?,
            patience: value(args, "--patience", d.patience)?,
        };
        println!("{rule:?}");
        for r in &mut runs {
            let o = replay(r, rule)?;
            print(r, &o);
        }
        return Ok(());
    }
    let max_loss = value(args, "--max-loss", 5.0)? / 100.0;
    let max_diff = value(args, "--max-diff", 3.0)?;
    let mut rows = Vec::new();
    for window in [10, 20, 25, 50] {
        for loss_decrease in [0.001, 0.002, 0.005, 0.01, 0.02] {
            for image_change in [0.1, 0.25, 0.5, 1.0, 2.0] {
                for patience in [1, 2, 3] {
                    let rule = StopRule {
                        window,
                        loss_decrease,
                        image_change,
                        patience,
                    };
                    let mut outs = Vec::new();
                    for r in &mut runs {
                        outs.push(replay(r, rule)?);
                    }
                    let worst_loss = outs.iter().map(|o| o.loss_excess).fold(0.0, f64::max);
                    let worst_diff = outs.iter().map(|o| o.diff).fold(0.0, f64::max);
                    if worst_loss <= max_loss && worst_diff <= max_diff {
                        let mean =
                            outs.iter().map(|o| o.stop).sum::<usize>() as f64 / outs.len() as f64;
                        rows.push((mean, rule, worst_loss, worst_diff, outs));
                    }
                }
            }
        }
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!(
        "rules within +{:.1} % loss and {max_diff}/255 on every run, earliest first:",
        max_loss * 100.0
    );
    for (mean, rule, l, dd, outs) in rows.iter().take(25) {
        let stops: Vec<String> = outs.iter().map(|o| o.stop.to_string()).collect();
        println!(
            "window {:>2} loss {:<5} change {:<4} patience {}: mean stop {mean:>6.1} ({}), worst +{:.2} %, {:.2}/255",
            rule.window,
            rule.loss_decrease,
            rule.image_change,
            rule.patience,
            stops.join(" "),
            l * 100.0,
            dd
        );
    }
    Ok(())
}
