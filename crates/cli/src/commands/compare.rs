//! `compare`: one content and style at several content/style weight ratios,
//! side by side in one picture.

use crate::{flags, pictures, signals};
use clap::Args;
use neural_style::backends::{self, WithBackend};
use neural_style::options::{Settings, StyleArgs};
use neural_style::run::preflight::{Kind, Output};
use neural_style::run::{finish, prepare, Images, Session, Sources};
use neural_style_core::backend::Backend;
use neural_style_core::image_io::Picture;
use neural_style_core::pixel::CaffeImage;
use neural_style_core::run::{Silent, StopReason};
use neural_style_core::{Error, Result};
use neural_style_weights::Vgg19Weights;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

#[derive(Args, Debug)]
pub(crate) struct CompareArgs {
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

pub(crate) fn compare(a: &CompareArgs) -> Result<ExitCode> {
    let s = a.style.resolve()?;
    if let Some(bad) = a.ratios.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
        return Err(Error::config(
            "ratios",
            format!("ratios must be positive numbers, not {bad}"),
        ));
    }
    // Each ratio sets the style weight to content weight / ratio: it must be a number.
    if let Some(bad) = a
        .ratios
        .iter()
        .find(|r| !(s.spec.content_weight / **r).is_finite())
    {
        return Err(Error::config(
            "ratios",
            format!(
                "{} gives a style weight of {} / {}, which is not a finite number: \
                 use a larger ratio",
                ratio_label(*bad),
                s.spec.content_weight,
                ratio_label(*bad)
            ),
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
    let failed = std::cell::Cell::new(false);
    let (done, interrupted) = backends::dispatch(
        &s.selection(),
        CompareRun {
            settings: s,
            ratios: &a.ratios,
            weights: &p.weights,
            sources: &p.sources,
            init: &p.init,
            content: &inputs.content,
            interrupt: signals::flag(),
            log: &mut log,
            failed: &failed,
        },
    )?;
    let mut tiles = vec![(Picture::from_caffe(&inputs.content), "content".to_string())];
    if let Some((style, _)) = inputs.styles.first() {
        tiles.push((Picture::from_caffe(style), "style".to_string()));
    }
    for (ratio, img) in &done {
        tiles.push((
            Picture::from_caffe(img),
            format!("c/s {}", ratio_label(*ratio)),
        ));
    }
    let columns = tiles.len();
    pictures::sheet(&tiles, columns, 256).save(&a.output)?;
    log(&format!("wrote {}", a.output.display()));
    Ok(if interrupted {
        signals::exit_code()
    } else if failed.get() || flags::stderr_failure().is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `compare`: one content and style at several content/style weight ratios
/// (`content_weight / style_weight`; the content weight is kept, the style
/// weight set from it). The style targets are computed once.
struct CompareRun<'a> {
    /// The settings (the style weight is set per ratio).
    pub(crate) settings: &'a Settings,
    /// The content/style weight ratios.
    pub(crate) ratios: &'a [f64],
    /// The network's weights.
    pub(crate) weights: &'a Vgg19Weights,
    /// The decoded inputs.
    pub(crate) sources: &'a Sources,
    /// The starting image.
    pub(crate) init: &'a CaffeImage,
    /// The content at the output's size (for original colours).
    pub(crate) content: &'a CaffeImage,
    /// Set to stop after the current iteration.
    pub(crate) interrupt: &'a AtomicBool,
    /// Messages.
    pub(crate) log: &'a mut dyn FnMut(&str),
    /// Set when a ratio's loss became non-finite (its best image kept).
    pub(crate) failed: &'a std::cell::Cell<bool>,
}

impl WithBackend for CompareRun<'_> {
    /// The image of each ratio finished (the last one may be interrupted),
    /// and whether the run was interrupted.
    type Output = (Vec<(f64, CaffeImage)>, bool);
    fn run<B: Backend + Clone + 'static>(self, backend: B) -> Result<Self::Output> {
        let mut session = Session::new(backend, self.weights);
        let mut done = Vec::new();
        for &ratio in self.ratios {
            let mut s = self.settings.clone();
            s.spec.style_weight = s.spec.content_weight / ratio;
            (self.log)(&format!(
                "content/style {} (style weight {:.4})",
                ratio_label(ratio),
                s.spec.style_weight
            ));
            let out = session.paint(&s, self.sources, self.init, &mut Silent, self.interrupt)?;
            if let StopReason::Failed(why) = &out.stop {
                // Its best image so far is shown; the command exits 1.
                (self.log)(&format!(
                    "warning: content/style {}: {why}; its best image so far is shown",
                    ratio_label(ratio)
                ));
                self.failed.set(true);
            }
            done.push((ratio, finish(&s, &out.best, self.content)));
            if out.stop == StopReason::Interrupted {
                return Ok((done, true));
            }
        }
        Ok((done, false))
    }
}

/// `1e-2`, `0.5`, `10`: the shortest of the plain and exponent forms.
fn ratio_label(r: f64) -> String {
    let plain = format!("{r}");
    let exp = format!("{r:e}");
    if exp.len() < plain.len() {
        exp
    } else {
        plain
    }
}
