//! One job on a backend, independent of the terminal: the decoded inputs
//! sized for each scale ([`Sources`] → [`Inputs`]), the starting image, the
//! weights, and a [`Session`] that keeps the network and the style targets
//! across the jobs a process runs on one backend.

use crate::backends::{dispatch, WithBackend};
use crate::options::{InitName, Settings};
use neural_style_core::backend::{Backend, Pooling};
use neural_style_core::color;
use neural_style_core::image_io::Picture;
use neural_style_core::mask::Mask;
use neural_style_core::memory::{self, Budget, Plan};
use neural_style_core::objective::{
    normalise_blend, style_grams, Loss, LossParts, Objective, StyleTerm,
};
use neural_style_core::pixel::CaffeImage;
use neural_style_core::run::{self, Observer, RunOutcome};
use neural_style_core::vgg::Vgg;
use neural_style_core::{layers, Error, Result};
use neural_style_weights::{self as weights, Vgg19Weights, WeightsFile};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Images in the network's space, at the sizes they will be used.
pub struct Inputs {
    /// The content image.
    pub content: CaffeImage,
    /// Each style image with its blend weight (summing to 1).
    pub styles: Vec<(CaffeImage, f64)>,
    /// One optional mask per style, at the content's size.
    pub masks: Vec<Option<Mask>>,
    /// What each style's Gram targets depend on besides the layers and
    /// pooling (file, size, colour matching): styles with the same key share
    /// targets in a batch.
    pub style_keys: Vec<String>,
}

/// The decoded input files of a job, before sizing: decoded once, sized
/// for each scale of a multi-resolution run.
pub struct Sources {
    content: Picture,
    styles: Vec<Picture>,
    masks: Vec<Option<Picture>>,
    blend: Vec<f64>,
    plan: Plan,
    chain: Option<Schedule>,
}

/// Decode the content, styles and masks, refusing (before any resampling) a
/// run that would not fit in memory and a mask that is all black.
pub fn load_sources(s: &Settings) -> Result<Sources> {
    load_sources_with(s, Picture::load(&s.files.content)?)
}

/// [`load_sources`] with the content already decoded (a video's frame).
pub fn load_sources_with(s: &Settings, content: Picture) -> Result<Sources> {
    normalise_blend(
        s.files.styles.len(),
        s.options.style_blend_weights.as_deref(),
    )?;
    let (styles, masks) = load_styles(s)?;
    Sources::new(s, content, styles, masks)
}

/// Decode the style images of `s` and their optional masks (one per style).
pub fn load_styles(s: &Settings) -> Result<(Vec<Picture>, Vec<Option<Picture>>)> {
    let styles = s
        .files
        .styles
        .iter()
        .map(|p| Picture::load(p))
        .collect::<Result<Vec<_>>>()?;
    let masks = s
        .files
        .masks
        .iter()
        .map(|m| m.as_deref().map(Picture::load).transpose())
        .collect::<Result<Vec<_>>>()?;
    Ok((styles, masks))
}

impl Sources {
    /// Decoded images (content, one per style of `s`, one optional mask per
    /// style), refusing (before any resampling) a mask that is all black and
    /// a run that would not fit in memory.
    pub fn new(
        s: &Settings,
        content: Picture,
        styles: Vec<Picture>,
        masks: Vec<Option<Picture>>,
    ) -> Result<Sources> {
        for (m, name) in masks.iter().zip(&s.files.masks) {
            if let (Some(m), Some(name)) = (m, name) {
                if Mask::from_picture(m).is_black() {
                    return Err(Error::image(
                        name,
                        "the mask is all black, so its style applies nowhere: paint where it applies in white",
                    ));
                }
            }
        }
        let blend = normalise_blend(
            s.files.styles.len(),
            s.options.style_blend_weights.as_deref(),
        )?;
        let mut sources = Sources {
            content,
            styles,
            masks,
            blend,
            plan: Plan {
                scales: Vec::new(),
                history: None,
                recompute: false,
                budget: None,
                changes: Vec::new(),
            },
            chain: None,
        };
        (sources.plan, sources.chain) = plan_memory(s, &sources)?;
        Ok(sources)
    }

    /// The memory plan of the run (every scale), made when the sources were
    /// decoded: the L-BFGS history and the recomputation it chose.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The coarse-to-fine schedule the plan chose for a large output given
    /// as one size (`neural_style_core::memory::coarse_to_fine`), which the
    /// run takes as its `scales` (the prepared settings have it).
    pub fn chain(&self) -> Option<&[(u32, usize)]> {
        self.chain.as_deref()
    }

    fn style_size(&self, s: &Settings, i: usize, content: (u32, u32)) -> (u32, u32) {
        let p = &self.styles[i];
        s.style_size((p.width, p.height), content)
    }

    /// The inputs with the content's longest side `size`: styles resized
    /// (and colour-matched to the content with `--color-match`), masks
    /// resized to the content's size.
    pub fn at(&self, s: &Settings, size: u32) -> Result<Inputs> {
        let (cw, ch) = self.content.size_longest(size);
        let content = self.content.resize_to(cw, ch);
        let mut styles = Vec::with_capacity(self.styles.len());
        let mut style_keys = Vec::with_capacity(self.styles.len());
        for (i, (p, path)) in self.styles.iter().zip(&s.files.styles).enumerate() {
            let (w, h) = self.style_size(s, i, (cw, ch));
            let mut img = p.resize_to(w, h);
            if s.options.color_match {
                img = color::match_colors(&img, &content);
            }
            styles.push((img.to_caffe(), self.blend[i]));
            style_keys.push(format!(
                "{}|{w}x{h}|{}",
                path.display(),
                if s.options.color_match {
                    format!("matched to {} at {cw}x{ch}", s.files.content.display())
                } else {
                    String::new()
                }
            ));
        }
        let masks = self
            .masks
            .iter()
            .map(|m| m.as_ref().map(|p| Mask::from_picture(&p.resize_to(cw, ch))))
            .collect();
        Ok(Inputs {
            content: content.to_caffe(),
            styles,
            masks,
            style_keys,
        })
    }
}

/// The starting image for a run (the init image loaded from its file).
pub fn initial_image(s: &Settings, content: &CaffeImage) -> Result<CaffeImage> {
    initial_image_with(s, content, || {
        Picture::load(
            s.files
                .init_image
                .as_deref()
                .expect("resolve() checks `init-image`"),
        )
    })
}

/// The starting image for a run, the init image (with `--init image`) from `init_image`.
pub fn initial_image_with(
    s: &Settings,
    content: &CaffeImage,
    init_image: impl FnOnce() -> Result<Picture>,
) -> Result<CaffeImage> {
    Ok(match s.init {
        InitName::Content => content.clone(),
        InitName::Noise => CaffeImage::noise(content.width, content.height, s.options.seed),
        InitName::Randn => CaffeImage::randn(content.width, content.height, s.options.seed),
        InitName::Image => init_image()?
            .resize_to(content.width as u32, content.height as u32)
            .to_caffe(),
    })
}

/// Load an image and resize it to exactly `w×h` (no-op when it already is).
pub fn load_at_size(path: &Path, w: usize, h: usize) -> Result<CaffeImage> {
    Ok(Picture::load(path)?
        .resize_to(w as u32, h as u32)
        .to_caffe())
}

/// A scale chain: (longest side, iterations) per scale, coarsest first.
type Schedule = Vec<(u32, usize)>;

/// Plan the run's memory over every scale (`neural_style_core::memory`),
/// refusing, before starting, a run that would not fit; with the chain the
/// run becomes when a large output is made coarse-to-fine by itself.
fn plan_memory(s: &Settings, sources: &Sources) -> Result<(Plan, Option<Schedule>)> {
    // A large output given as one size becomes coarse-to-fine by itself.
    let o = &s.options;
    let chain = (o.scales.is_none() && !o.multires && o.scale_iterations.is_none())
        .then(|| memory::coarse_to_fine(s.size(), s.total_iterations()))
        .filter(|c| c.len() > 1);
    let plan = match &chain {
        Some(c) => plan_scales(s, sources, c, Some("size"))?,
        None => plan_scales(s, sources, &s.scales, None)?,
    };
    Ok((plan, chain))
}

/// [`plan_memory`] of the schedule `schedule`, a refusal naming `option`
/// (by default `scales` or `size`).
fn plan_scales(
    s: &Settings,
    sources: &Sources,
    schedule: &[(u32, usize)],
    option: Option<&'static str>,
) -> Result<Plan> {
    let scales = schedule
        .iter()
        .map(|&(size, iterations)| {
            let (cw, ch) = sources.content.size_longest(size);
            memory::Scale {
                width: cw as usize,
                height: ch as usize,
                iterations,
                styles: (0..sources.styles.len())
                    .map(|i| {
                        let (w, h) = sources.style_size(s, i, (cw, ch));
                        (w as usize, h as usize)
                    })
                    .collect(),
            }
        })
        .collect();
    let on_gpu = s
        .options
        .device
        .as_deref()
        .is_some_and(|d| d.starts_with("gpu") || d.starts_with("cuda"));
    let budget = match s.options.memory {
        Some(gib) => Some(Budget::given(gib)?),
        None if on_gpu => None,
        None => Budget::host(),
    };
    // As `set_threads` does: at most the logical cores.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = s.options.threads.map_or(cores, |t| t.clamp(1, cores));
    memory::plan(&memory::Request {
        job: memory::Job {
            spec: &s.spec,
            widths: layers::VGG19_WIDTHS,
            optimizer: s.optimizer,
            masked: sources.masks.iter().any(Option::is_some),
            threads,
            // The candle backend masks and accumulates gradients in place.
            in_place: s.options.backend == "candle",
            // Every backend of this workspace cuts block 1's stripes on
            // its device (`Backend::rows_on_device`).
            stripes: true,
            // Measured, not assumed: the libraries this build links (libtorch
            // with the tch backend) are part of the peak whichever backend runs.
            process: memory::process_bytes(),
        },
        scales,
        recompute: s.options.recompute,
        budget,
        rate: (s.options.backend == "candle" && !on_gpu).then(|| memory::candle_rate(threads)),
        option,
    })
}

/// Find (or fetch, once) and load the weights.
pub fn load_weights(file: Option<&Path>, log: &mut dyn FnMut(&str)) -> Result<Vgg19Weights> {
    let path = weights::ensure(file, log)?;
    let (w, integrity) = Vgg19Weights::load_checked(&path)?;
    if integrity == weights::Integrity::Unchecked {
        log(&format!(
            "warning: {} carries no checksum (metadata `{}`): damage to it cannot be detected",
            path.display(),
            weights::CHECKSUM_KEY
        ));
    }
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

/// What a process keeps across the jobs it runs on one backend (a batch, a
/// comparison): the network for each pooling, and the style targets.
pub struct Session<'w, B: Backend> {
    backend: B,
    weights: &'w Vgg19Weights,
    nets: Vec<Vgg<B>>,
    /// Gram targets by style key and objective layers/pooling.
    grams: HashMap<String, Vec<B::Tensor>>,
}

impl<'w, B: Backend + Clone> Session<'w, B> {
    /// A session on `backend` with `weights`.
    pub fn new(backend: B, weights: &'w Vgg19Weights) -> Self {
        Session {
            backend,
            weights,
            nets: Vec::new(),
            grams: HashMap::new(),
        }
    }

    /// The network with this pooling (built on first use).
    fn net_index(&mut self, pooling: Pooling) -> Result<usize> {
        if let Some(i) = self.nets.iter().position(|n| n.pooling() == pooling) {
            return Ok(i);
        }
        self.nets
            .push(Vgg::new(self.backend.clone(), self.weights, pooling)?);
        Ok(self.nets.len() - 1)
    }

    /// Paint one image: every scale of `s`, from `init`.
    pub fn paint(
        &mut self,
        s: &Settings,
        sources: &Sources,
        init: &CaffeImage,
        observer: &mut dyn Observer,
        interrupt: &AtomicBool,
    ) -> Result<RunOutcome> {
        let all: Vec<(usize, usize)> = s.scales.iter().map(|x| x.1).enumerate().collect();
        self.paint_scales(s, sources, &all, init, &Cell::new(0), observer, interrupt)
    }

    /// Paint `scales` (`(index into s.scales, iterations)`, in order) from
    /// `init`, setting `scale` to each as its objective is built (a resumed
    /// checkpoint starts mid-way: the cli crate's `batch/checkpoint.rs`).
    #[allow(clippy::too_many_arguments)]
    pub fn paint_scales(
        &mut self,
        s: &Settings,
        sources: &Sources,
        scales: &[(usize, usize)],
        init: &CaffeImage,
        scale: &Cell<usize>,
        observer: &mut dyn Observer,
        interrupt: &AtomicBool,
    ) -> Result<RunOutcome> {
        let i = self.net_index(s.spec.pooling)?;
        let net = &self.nets[i];
        let grams = &mut self.grams;
        let iterations: Vec<usize> = scales.iter().map(|x| x.1).collect();
        let mut objective_at = |k: usize| {
            scale.set(scales[k].0);
            let inputs = sources.at(s, s.scales[scales[k].0].0)?;
            Ok(build_objective(net, s, &inputs, grams)?.recompute(sources.plan.recompute))
        };
        run::run_scales(
            &iterations,
            &mut objective_at,
            init,
            s.optimizer,
            s.stop_rule,
            observer,
            interrupt,
        )
    }
}

/// The objective on `net`, style targets taken from (or added to) `grams`.
fn build_objective<'n, B: Backend>(
    net: &'n Vgg<B>,
    s: &Settings,
    inputs: &Inputs,
    grams: &mut HashMap<String, Vec<B::Tensor>>,
) -> Result<Objective<'n, B>> {
    let mut terms = Vec::with_capacity(inputs.styles.len());
    for (((img, w), mask), key) in inputs
        .styles
        .iter()
        .zip(&inputs.masks)
        .zip(&inputs.style_keys)
    {
        let key = format!("{key}|{:?}|{:?}", s.spec.style_layers, s.spec.pooling);
        let g = match grams.get(&key) {
            Some(g) => g.clone(),
            None => {
                let g = style_grams(net, &s.spec, img)?;
                grams.insert(key, g.clone());
                g
            }
        };
        terms.push(StyleTerm {
            grams: g,
            weight: *w,
            mask: mask.clone(),
        });
    }
    Objective::with_styles(net, s.spec.clone(), &inputs.content, terms)
}
/// The `loss` subcommand's result.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct LossReport {
    #[serde(flatten)]
    /// The loss parts.
    pub parts: LossParts,
    /// L2 norm of d total / d x in caffe space.
    pub grad_norm: f64,
}

/// Evaluate the objective at one image.
struct LossJob<'a> {
    /// The settings.
    pub settings: &'a Settings,
    /// The network's weights.
    pub weights: &'a Vgg19Weights,
    /// The inputs at the output's size.
    pub inputs: &'a Inputs,
    /// The image to evaluate, at the content's size.
    pub image: &'a CaffeImage,
}

impl WithBackend for LossJob<'_> {
    type Output = LossReport;
    fn run<B: Backend + Clone + 'static>(self, backend: B) -> Result<LossReport> {
        let net = Vgg::new(backend, self.weights, self.settings.spec.pooling)?;
        let objective = build_objective(&net, self.settings, self.inputs, &mut HashMap::new())?;
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
        &s.selection(),
        LossJob {
            settings: s,
            weights,
            inputs,
            image,
        },
    )
}
/// `--original-colors`: the output's luminance with the content's colours
/// (the content is resized to the image's size when they differ).
pub fn finish(s: &Settings, img: &CaffeImage, content: &CaffeImage) -> CaffeImage {
    if s.options.original_colors {
        color::original_colors(img, content)
    } else {
        img.clone()
    }
}
