//! What the command line shows and writes while a run goes: the progress
//! bar and loss lines (or, when stderr is not a terminal, a progress line
//! every few seconds: [`Heartbeat`]), `--save-every` frames (and `--sheet`
//! thumbnails), `--plot` points and the `--json-log` (a write failure stops
//! the run, which saves its best image).

use crate::{pictures, signals};
use indicatif::{ProgressBar, ProgressStyle};
use neural_style::run::written::Frames;
use neural_style_core::image_io::Picture;
use neural_style_core::pixel::CaffeImage;
use neural_style_core::run::{IterationReport, Observer};
use neural_style_core::{Error, Result};
use std::io::Write;
use std::path::PathBuf;

/// The progress bar of a run of `total` iterations (hidden when quiet).
pub(crate) fn progress_bar(total: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} loss {msg} {its} ETA {eta}")
            .expect("valid template")
            .with_key(
                "its",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.2} it/s", s.per_sec());
                },
            ),
    );
    bar
}

/// A line above the progress bar, or on stderr when the bar is not drawn.
pub(crate) fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        crate::flags::err_line(&line);
    } else {
        bar.println(line);
    }
}

/// Seconds between two progress lines when stderr is not a terminal.
pub(crate) const HEARTBEAT_SECONDS: f64 = 5.0;

/// The progress bar's stand-in where it is not drawn (stderr a pipe, a
/// file, an IDE's console, a Slurm `.out`): after the first iteration a line
/// that says how long the run is expected to take, then a line every `every`
/// seconds with the iteration, the losses, the rate and the time left.
///
/// With the plan's time for each scale (`schedule`), the time left weighs
/// the iterations left by their scale's planned cost, scaled by how fast
/// the scale in progress actually runs: a poster's 4096 px iterations cost
/// 256 times its 256 px ones, and a rate measured at 256 px said 27 minutes
/// for a run of two hours. Without it, every iteration counts the same.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    /// Seconds between lines.
    pub(crate) every: f64,
    /// The run may stop before its last iteration (the stopping rule).
    pub(crate) may_stop_early: bool,
    /// Each scale's iterations and planned seconds, when the plan has them.
    schedule: Option<Vec<(usize, f64)>>,
    /// The scale in progress (its index in the job's chain).
    scale: usize,
    /// Where this process started: the iteration before its first report.
    first: Option<usize>,
    /// The first report of the scale in progress: its iteration and
    /// seconds (the scale's pace is measured from it, its setup left out).
    scale_from: Option<(usize, f64)>,
    /// Measured over planned seconds per iteration, in the scale measured last.
    pace: Option<f64>,
    /// `elapsed` of the last line.
    last: f64,
}

/// Iterations of a scale measured, after its first (which carries the
/// scale's setup: 2 min 50 s against 110 s for the next ones at a poster's
/// 4096 px), before its own pace replaces the last scale's. Until a pace
/// is measured, the plan's time is taken as it is.
const PACE_AFTER: usize = 3;

impl Heartbeat {
    pub(crate) fn new(
        every: f64,
        may_stop_early: bool,
        schedule: Option<Vec<(usize, f64)>>,
    ) -> Heartbeat {
        Heartbeat {
            every,
            may_stop_early,
            schedule: schedule.filter(|s| s.iter().all(|&(n, t)| n > 0 && t > 0.0)),
            scale: 0,
            first: None,
            scale_from: None,
            pace: None,
            last: 0.0,
        }
    }

    /// A new scale starts (its index in the job's chain).
    pub(crate) fn scale(&mut self, index: usize) {
        self.scale = index;
        self.scale_from = None;
    }

    /// Seconds left after report `r` (at most: a scale may stop early).
    fn left(&mut self, r: &IterationReport) -> f64 {
        let first = self.first.unwrap_or(0);
        let uniform = r.of.saturating_sub(r.iteration) as f64 * r.elapsed
            / (r.iteration.saturating_sub(first).max(1)) as f64;
        let Some(plan) = self.schedule.as_ref().filter(|p| self.scale < p.len()) else {
            return uniform;
        };
        let (g0, e0) = *self.scale_from.get_or_insert((r.iteration, r.elapsed));
        let done = r.iteration.saturating_sub(g0);
        let (n, t) = plan[self.scale];
        let per = t / n as f64;
        if done >= PACE_AFTER {
            self.pace = Some((r.elapsed - e0).max(0.0) / (done as f64 * per));
        }
        let later = &plan[self.scale + 1..];
        let later_n: usize = later.iter().map(|p| p.0).sum();
        let later_t: f64 = later.iter().map(|p| p.1).sum();
        // Iterations left in this scale: what the job has left less the
        // later scales', no more than the scale has (after a scale that
        // stopped early the numbering runs behind the plan's).
        let here =
            r.of.saturating_sub(r.iteration)
                .saturating_sub(later_n)
                .min(n);
        self.pace.unwrap_or(1.0) * (here as f64 * per + later_t)
    }

    /// The line to print after this iteration, if any.
    pub(crate) fn line(&mut self, r: &IterationReport) -> Option<String> {
        let opening = self.first.is_none();
        if opening {
            self.first = Some(r.iteration.saturating_sub(1));
        }
        let left = self.left(r);
        let ran = r.iteration - self.first.unwrap_or(0);
        let rate = ran as f64 / r.elapsed.max(1e-9);
        if opening {
            self.last = r.elapsed;
            let when = if self.may_stop_early {
                " at most (less if the picture is done sooner)"
            } else {
                ""
            };
            let over = match &self.schedule {
                Some(p) if p.len() > 1 => format!(" over {} scales", p.len()),
                _ => String::new(),
            };
            let n = r.of - self.first.unwrap_or(0);
            return Some(format!(
                "iteration {}/{} took {}: expect about {} for {n} iterations{over}{when}",
                r.iteration,
                r.of,
                duration(r.elapsed),
                duration(r.elapsed + left),
            ));
        }
        if r.iteration == r.of || r.elapsed - self.last < self.every {
            return None;
        }
        self.last = r.elapsed;
        Some(format!(
            "iteration {}/{}: total {:.4e}  content {:.4e}  style {:.4e}  tv {:.4e}  {:.2} it/s  ETA {}",
            r.iteration,
            r.of,
            r.loss.total,
            r.loss.content,
            r.loss.style,
            r.loss.tv,
            rate,
            duration(left)
        ))
    }
}

/// `4.2 s`, `3 min 07 s`, `1 h 02 min`.
pub(crate) fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let whole = s.round() as u64;
    if whole < 3600 {
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{} h {:02} min", whole / 3600, (whole % 3600) / 60)
    }
}

/// Side of a contact sheet's cells, in pixels.
pub(crate) const SHEET_CELL: u32 = 192;

pub(crate) struct CliObserver {
    pub(crate) bar: ProgressBar,
    pub(crate) print_every: usize,
    /// Progress lines when the bar is not drawn (and not quiet).
    pub(crate) heartbeat: Option<Heartbeat>,
    /// `--save-every N` and the frames' names (`neural_style::run::written`).
    pub(crate) frames: Option<(usize, Frames)>,
    pub(crate) json_log: Option<(PathBuf, std::io::LineWriter<std::fs::File>)>,
    /// The first error writing the log: the run is asked to stop, saves its
    /// best image and then reports it.
    pub(crate) log_error: Option<Error>,
    /// The content, with --original-colors (frames get its colours too).
    pub(crate) colors: Option<CaffeImage>,
    /// With --plot: the loss parts of every iteration.
    pub(crate) plot: Option<Vec<pictures::PlotPoint>>,
    /// With --sheet: each frame, small, with its label.
    pub(crate) thumbs: Option<Vec<(Picture, String)>>,
}

impl CliObserver {
    pub(crate) fn flush_log(&mut self) -> Result<()> {
        if let Some((path, w)) = &mut self.json_log {
            w.flush().map_err(|e| Error::io(&*path, e))?;
        }
        Ok(())
    }
}

impl Observer for CliObserver {
    fn on_iteration(
        &mut self,
        r: &IterationReport,
        image: &mut dyn FnMut() -> Result<CaffeImage>,
    ) -> Result<()> {
        self.bar.set_position(r.iteration as u64);
        self.bar.set_message(format!("{:.4e}", r.loss.total));
        let printed =
            self.print_every > 0 && (r.iteration % self.print_every == 0 || r.iteration == 1);
        if printed {
            say(
                &self.bar,
                format!(
                "iteration {:>5}/{}: total {:.4e}  content {:.4e}  style {:.4e}  tv {:.4e}  ({:.1} s)",
                r.iteration, r.of, r.loss.total, r.loss.content, r.loss.style, r.loss.tv, r.elapsed
            ),
            );
        }
        // A loss line just printed stands for the progress line (the first
        // one, with the run's expected length, is always printed).
        if let Some(line) = self.heartbeat.as_mut().and_then(|h| h.line(r)) {
            if !printed || r.iteration == 1 {
                say(&self.bar, line);
            }
        }
        if let Some((n, frames)) = &self.frames {
            if r.iteration % *n == 0 || r.iteration == r.of {
                let path = frames.path(r.iteration);
                let mut img = image()?;
                if let Some(content) = &self.colors {
                    img = neural_style_core::color::original_colors(&img, content);
                }
                let picture = Picture::from_caffe(&img);
                picture.save(&path)?;
                if let Some(thumbs) = &mut self.thumbs {
                    thumbs.push((
                        picture.resize_longest(SHEET_CELL),
                        format!("iteration {}", r.iteration),
                    ));
                }
            }
        }
        if let Some(points) = &mut self.plot {
            points.push(pictures::PlotPoint {
                iteration: r.iteration,
                parts: r.loss,
            });
        }
        if let Some((path, w)) = &mut self.json_log {
            let line = serde_json::to_string(r).expect("report serialises");
            if let Err(e) = writeln!(w, "{line}") {
                self.log_error = Some(Error::io(&*path, e));
                self.json_log = None;
                signals::request_stop();
            }
        }
        Ok(())
    }

    fn on_scale(&mut self, index: usize) {
        if let Some(h) = &mut self.heartbeat {
            h.scale(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neural_style_core::objective::LossParts;

    fn report(iteration: usize, elapsed: f64) -> IterationReport {
        report_of(iteration, 1000, elapsed)
    }

    fn report_of(iteration: usize, of: usize, elapsed: f64) -> IterationReport {
        IterationReport {
            iteration,
            of,
            loss: LossParts {
                content: 1.0,
                style: 2.0,
                tv: 3.0,
                total: 6.0,
                ..LossParts::default()
            },
            grad_norm: 1.0,
            elapsed,
        }
    }

    #[test]
    fn the_first_line_says_how_long_the_run_will_take_then_one_every_few_seconds() {
        let mut h = Heartbeat::new(5.0, true, None);
        let first = h.line(&report(1, 1.5)).unwrap();
        assert_eq!(
            first,
            "iteration 1/1000 took 1.5 s: expect about 25 min 00 s for 1000 iterations at most \
             (less if the picture is done sooner)"
        );
        assert_eq!(h.line(&report(2, 3.0)), None);
        assert_eq!(h.line(&report(4, 6.4)), None, "4.9 s after the last line");
        let line = h.line(&report(5, 6.6)).unwrap();
        assert!(
            line.starts_with("iteration 5/1000: total 6.0000e0  content 1.0000e0"),
            "{line}"
        );
        // 5 iterations in 6.6 s: 0.76 it/s, 995 left: 21 min 53 s.
        assert!(line.ends_with("0.76 it/s  ETA 21 min 53 s"), "{line}");
        assert_eq!(h.line(&report(6, 8.0)), None);
        assert!(h.line(&report(9, 11.7)).is_some());
        assert_eq!(
            h.line(&report(1000, 100.0)),
            None,
            "the run's end says the rest"
        );
        let mut exact = Heartbeat::new(5.0, false, None);
        assert!(exact
            .line(&report(1, 2.0))
            .unwrap()
            .ends_with("for 1000 iterations"));
    }

    #[test]
    fn the_time_left_weighs_each_scale_by_its_planned_cost() {
        // Two scales of 10 iterations, planned at 1 s and 4 s each; the run
        // goes at twice the plan. The first line has one iteration, its
        // setup included, to go by: it takes the plan's time for the rest
        // (2 + 49 s). Counting every iteration the same, it said 20 × 2 s
        // = 40 s, and nothing later weighed the larger scale (failed before).
        let plan = Some(vec![(10, 10.0), (10, 40.0)]);
        let mut h = Heartbeat::new(5.0, false, plan.clone());
        assert_eq!(
            h.line(&report_of(1, 20, 2.0)).unwrap(),
            "iteration 1/20 took 2.0 s: expect about 51.0 s for 20 iterations over 2 scales"
        );
        for i in 2..=10 {
            h.line(&report_of(i, 20, 2.0 * i as f64));
        }
        h.scale(1);
        // The second scale's first iterations keep the first scale's pace
        // (2× the plan): 9, then 8, iterations of 4 s planned.
        let line = h.line(&report_of(11, 20, 28.0)).unwrap();
        assert!(line.ends_with("ETA 1 min 12 s"), "{line}");
        let line = h.line(&report_of(12, 20, 36.0)).unwrap();
        assert!(line.ends_with("ETA 1 min 04 s"), "{line}");
        // Then its own, measured from its first report (that one's setup
        // left out): 18 s for 3 iterations, 1.5× the plan: 6 left, 36 s.
        h.line(&report_of(13, 20, 38.0));
        let line = h.line(&report_of(14, 20, 46.0)).unwrap();
        assert!(line.ends_with("ETA 36.0 s"), "{line}");
        // Resumed in the second scale at iteration 14: the first line counts
        // the 6 iterations this process runs, at that scale's cost.
        let mut h = Heartbeat::new(5.0, false, plan);
        h.scale(1);
        assert_eq!(
            h.line(&report_of(15, 20, 8.0)).unwrap(),
            "iteration 15/20 took 8.0 s: expect about 28.0 s for 6 iterations over 2 scales"
        );
        let line = h.line(&report_of(17, 20, 24.0)).unwrap();
        // 3 iterations in 24 s: 0.12 it/s (not 17 in 24 s).
        assert!(line.contains("0.12 it/s"), "{line}");
    }

    #[test]
    fn durations_read_as_a_person_writes_them() {
        assert_eq!(duration(4.24), "4.2 s");
        assert_eq!(duration(187.0), "3 min 07 s");
        assert_eq!(duration(3725.0), "1 h 02 min");
        assert_eq!(duration(-1.0), "0.0 s");
    }
}
