//! The jobs the CLI runs, independent of the terminal: load and size the
//! images, check memory, load the weights, and run on the selected backend.

use crate::backends::{dispatch, Selection, WithBackend};
use crate::settings::{InitName, Settings};
use neural_style_core::backend::Backend;
use neural_style_core::image_io::Picture;
use neural_style_core::objective::{normalise_blend, Loss, LossParts, Objective};
use neural_style_core::pixel::CaffeImage;
use neural_style_core::run::{self, estimate_memory, Observer, RunOptions, RunOutcome};
use neural_style_core::vgg::Vgg;
use neural_style_core::weights::{self, Vgg19Weights};
use neural_style_core::{layers, Error, Result};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Images in the network's space, at the sizes they will be used.
pub struct Inputs {
    pub content: CaffeImage,
    pub styles: Vec<(CaffeImage, f64)>,
}

/// Load the content at `--size` and the styles at their size, refusing
/// (before any resampling) a run that would not fit in memory.
pub fn load_inputs(s: &Settings) -> Result<Inputs> {
    let content = Picture::load(&s.content)?;
    let (cw, ch) = content.size_longest(s.size);
    let blend = normalise_blend(s.styles.len(), s.blend.as_deref())?;
    let pixels = cw as f64 * ch as f64 * s.style_scale;
    let mut styles = Vec::with_capacity(s.styles.len());
    for path in &s.styles {
        let p = Picture::load(path)?;
        let size = match s.style_size {
            Some(side) => p.size_longest(side),
            None => p.size_for_pixels(pixels),
        };
        styles.push((p, size));
    }
    let style_sizes: Vec<(u32, u32)> = styles.iter().map(|s| s.1).collect();
    check_memory(s, (cw, ch), &style_sizes)?;
    Ok(Inputs {
        content: content.resize_to(cw, ch).to_caffe(),
        styles: styles
            .into_iter()
            .zip(blend)
            .map(|((p, (w, h)), b)| (p.resize_to(w, h).to_caffe(), b))
            .collect(),
    })
}

/// The starting image for a run.
pub fn initial_image(s: &Settings, content: &CaffeImage) -> Result<CaffeImage> {
    Ok(match s.init {
        InitName::Content => content.clone(),
        InitName::Noise => CaffeImage::noise(content.width, content.height, s.seed),
        InitName::Image => {
            let path = s
                .init_image
                .as_deref()
                .expect("resolve() checks --init-image");
            load_at_size(path, content.width, content.height)?
        }
    })
}

/// Load an image and resize it to exactly `w×h` (no-op when it already is).
pub fn load_at_size(path: &Path, w: usize, h: usize) -> Result<CaffeImage> {
    Ok(Picture::load(path)?
        .resize_to(w as u32, h as u32)
        .to_caffe())
}

/// Refuse, before starting, a run that would not fit in memory.
fn check_memory(s: &Settings, content: (u32, u32), styles: &[(u32, u32)]) -> Result<()> {
    let Some(deepest) = s.spec.deepest() else {
        return Ok(());
    };
    let estimate = |(w, h): (u32, u32)| {
        estimate_memory(
            h as usize,
            w as usize,
            deepest,
            layers::VGG19_WIDTHS,
            &s.optimizer,
        )
    };
    // Style targets need a forward pass only, but count them like the content.
    let need = styles
        .iter()
        .map(|&d| estimate(d))
        .fold(estimate(content), u64::max);
    if let Some(avail) = run::available_memory() {
        if need > avail {
            let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
            return Err(Error::config(
                "--size",
                format!(
                    "a {}×{} run needs about {:.1} GiB but only {:.1} GiB is available; \
                     lower --size (or --style-size / --lbfgs-history)",
                    content.0,
                    content.1,
                    gib(need),
                    gib(avail)
                ),
            ));
        }
    }
    Ok(())
}

/// Find (or fetch, once) and load the weights.
pub fn load_weights(s: &Settings, log: &mut dyn FnMut(&str)) -> Result<Vgg19Weights> {
    let path = weights::ensure(s.weights.as_deref(), log)?;
    let w = Vgg19Weights::load(&path)?;
    // The loader accepts any consistent widths (tests use small networks);
    // the style-transfer settings are those of the real VGG19.
    for (i, c) in w.convs.iter().enumerate() {
        let want = layers::VGG19_WIDTHS[layers::conv_block(i) - 1];
        if c.out_channels != want {
            return Err(Error::weights(
                &path,
                format!(
                    "{} has {} output channels, VGG19 has {want}; this is not a VGG19 weights file",
                    layers::conv_name(i),
                    c.out_channels
                ),
            ));
        }
    }
    Ok(w)
}

pub fn selection(s: &Settings) -> Selection {
    Selection {
        name: s.backend.clone(),
        device: s.device.clone(),
    }
}

/// Build the network and the objective (targets computed) on `backend`.
fn with_objective<B: Backend, R>(
    backend: B,
    s: &Settings,
    weights: &Vgg19Weights,
    inputs: &Inputs,
    f: impl FnOnce(&Objective<'_, B>) -> Result<R>,
) -> Result<R> {
    let net = Vgg::new(backend, weights, s.spec.pooling)?;
    let objective = Objective::new(&net, s.spec.clone(), &inputs.content, &inputs.styles)?;
    f(&objective)
}

/// The main job: optimise an image.
pub struct StyleJob<'a> {
    pub settings: &'a Settings,
    pub weights: &'a Vgg19Weights,
    pub inputs: &'a Inputs,
    pub init: CaffeImage,
    pub observer: &'a mut dyn Observer,
    pub interrupt: &'a AtomicBool,
    /// Called once the backend is ready, with its name and device.
    pub on_ready: &'a mut dyn FnMut(&str, &str),
}

impl WithBackend for StyleJob<'_> {
    type Output = RunOutcome;
    fn run<B: Backend + Clone + 'static>(self, backend: B) -> Result<RunOutcome> {
        (self.on_ready)(backend.name(), &backend.device());
        let opts = RunOptions {
            iterations: self.settings.iterations,
            optimizer: self.settings.optimizer,
        };
        with_objective(
            backend,
            self.settings,
            self.weights,
            self.inputs,
            |objective| run::run(objective, &self.init, &opts, self.observer, self.interrupt),
        )
    }
}

/// The `loss` subcommand's result.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct LossReport {
    #[serde(flatten)]
    pub parts: LossParts,
    /// L2 norm of d total / d x in caffe space.
    pub grad_norm: f64,
}

/// Evaluate the objective at one image.
pub struct LossJob<'a> {
    pub settings: &'a Settings,
    pub weights: &'a Vgg19Weights,
    pub inputs: &'a Inputs,
    pub image: &'a CaffeImage,
}

impl WithBackend for LossJob<'_> {
    type Output = LossReport;
    fn run<B: Backend + Clone + 'static>(self, backend: B) -> Result<LossReport> {
        let image = self.image;
        with_objective(
            backend,
            self.settings,
            self.weights,
            self.inputs,
            |objective| {
                let b = objective.net().backend();
                let x = b.upload(&image.data, image.shape())?;
                let (parts, grad) = objective.evaluate(&x)?;
                let grad_norm = b.dot(&grad, &grad)?.sqrt();
                Ok(LossReport { parts, grad_norm })
            },
        )
    }
}

/// Run the loss job on the selected backend.
pub fn evaluate_loss(
    s: &Settings,
    weights: &Vgg19Weights,
    inputs: &Inputs,
    image: &CaffeImage,
) -> Result<LossReport> {
    dispatch(
        &selection(s),
        LossJob {
            settings: s,
            weights,
            inputs,
            image,
        },
    )
}
