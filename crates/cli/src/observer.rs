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
#[derive(Debug)]
pub(crate) struct Heartbeat {
    /// Seconds between lines.
    pub(crate) every: f64,
    /// The run may stop before its last iteration (the stopping rule).
    pub(crate) may_stop_early: bool,
    /// `elapsed` of the last line.
    last: f64,
}

impl Heartbeat {
    pub(crate) fn new(every: f64, may_stop_early: bool) -> Heartbeat {
        Heartbeat {
            every,
            may_stop_early,
            last: 0.0,
        }
    }

    /// The line to print after this iteration, if any.
    pub(crate) fn line(&mut self, r: &IterationReport) -> Option<String> {
        let rate = r.iteration as f64 / r.elapsed.max(1e-9);
        let left = r.of.saturating_sub(r.iteration) as f64 / rate;
        if r.iteration == 1 {
            self.last = r.elapsed;
            let when = if self.may_stop_early {
                " at most (less if the picture is done sooner)"
            } else {
                ""
            };
            return Some(format!(
                "iteration 1/{} took {}: expect about {} for {} iterations{when}",
                r.of,
                duration(r.elapsed),
                duration(r.elapsed * r.of as f64),
                r.of
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use neural_style_core::objective::LossParts;

    fn report(iteration: usize, elapsed: f64) -> IterationReport {
        IterationReport {
            iteration,
            of: 1000,
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
        let mut h = Heartbeat::new(5.0, true);
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
        let mut exact = Heartbeat::new(5.0, false);
        assert!(exact
            .line(&report(1, 2.0))
            .unwrap()
            .ends_with("for 1000 iterations"));
    }

    #[test]
    fn durations_read_as_a_person_writes_them() {
        assert_eq!(duration(4.24), "4.2 s");
        assert_eq!(duration(187.0), "3 min 07 s");
        assert_eq!(duration(3725.0), "1 h 02 min");
        assert_eq!(duration(-1.0), "0.0 s");
    }
}
