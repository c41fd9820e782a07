//! What the command line shows and writes while a run goes: the progress
//! bar and loss lines, `--save-every` frames (and `--sheet` thumbnails),
//! `--plot` points and the `--json-log` (a write failure stops the run,
//! which saves its best image).

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

/// Side of a contact sheet's cells, in pixels.
pub(crate) const SHEET_CELL: u32 = 192;

pub(crate) struct CliObserver {
    pub(crate) bar: ProgressBar,
    pub(crate) print_every: usize,
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
        if self.print_every > 0 && (r.iteration % self.print_every == 0 || r.iteration == 1) {
            say(
                &self.bar,
                format!(
                "iteration {:>5}/{}: total {:.4e}  content {:.4e}  style {:.4e}  tv {:.4e}  ({:.1} s)",
                r.iteration, r.of, r.loss.total, r.loss.content, r.loss.style, r.loss.tv, r.elapsed
            ),
            );
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
