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

/// Load the content at `--size` and the styles at their size.
pub fn load_inputs(s: &Settings) -> Result<Inputs> {
    let content = Picture::load(&s.content)?.resize_longest(s.size);
    let blend = normalise_blend(s.styles.len(), s.blend.as_deref())?;
    let pixels = content.width as f64 * content.height as f64 * s.style_scale;
    let styles = s
        .styles
        .iter()
        .zip(blend)
        .map(|(path, b)| {
            let p = Picture::load(path)?;
            let p = match s.style_size {
                Some(side) => p.resize_longest(side),
                None => p.resize_to_pixels(pixels),
            };
            Ok((p.to_caffe(), b))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Inputs {
        content: content.to_caffe(),
        styles,
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
pub fn check_memory(s: &Settings, inputs: &Inputs) -> Result<()> {
    let Some(deepest) = s.spec.deepest() else {
        return Ok(());
    };
    let c = &inputs.content;
    let mut need = estimate_memory(
        c.height,
        c.width,
        deepest,
        layers::VGG19_WIDTHS,
        &s.optimizer,
    );
    for (st, _) in &inputs.styles {
        // Style targets need a forward pass only; count its largest layers.
        need = need.max(estimate_memory(
            st.height,
            st.width,
            deepest,
            layers::VGG19_WIDTHS,
            &s.optimizer,
        ));
    }
    if let Some(avail) = run::available_memory() {
        if need > avail {
            return Err(Error::config(
                "--size",
                format!(
                    "a {}×{} run needs about {:.1} GiB but only {:.1} GiB is available; \
                     lower --size (or --style-size / --lbfgs-history)",
                    c.width,
                    c.height,
                    need as f64 / (1u64 << 30) as f64,
                    avail as f64 / (1u64 << 30) as f64
                ),
            ));
        }
    }
    Ok(())
}

/// Find (or fetch, once) and load the weights.
pub fn load_weights(s: &Settings, log: &mut dyn FnMut(&str)) -> Result<Vgg19Weights> {
    let path = weights::ensure(s.weights.as_deref(), log)?;
    Vgg19Weights::load(&path)
}

pub fn selection(s: &Settings) -> Selection {
    Selection {
        name: s.backend.clone(),
        device: s.device.clone(),
    }
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
        let s = self.settings;
        let net = Vgg::new(backend, self.weights, s.spec.pooling)?;
        let objective = Objective::new(
            &net,
            s.spec.clone(),
            &self.inputs.content,
            &self.inputs.styles,
        )?;
        let opts = RunOptions {
            iterations: s.iterations,
            optimizer: s.optimizer,
        };
        run::run(&objective, &self.init, &opts, self.observer, self.interrupt)
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
        let s = self.settings;
        let net = Vgg::new(backend, self.weights, s.spec.pooling)?;
        let objective = Objective::new(
            &net,
            s.spec.clone(),
            &self.inputs.content,
            &self.inputs.styles,
        )?;
        let b = net.backend();
        let x = b.upload(&self.image.data, self.image.shape())?;
        let (parts, grad) = objective.evaluate(&x)?;
        let grad_norm = b.dot(&grad, &grad)?.sqrt();
        Ok(LossReport { parts, grad_norm })
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
