//! The one set-up path of every job — the main job, `loss`, `compare`,
//! `batch` and the library's [`crate::Painter`]: validated settings → the
//! backend name checked → the preflight (paths, then image sizes) → threads
//! → the inputs decoded and sized → the starting image → the weights. The
//! network and the style targets are then built on the backend by
//! [`super::Session`].

use super::preflight::{self, Input, Output};
use super::session::{self as job, Inputs, Sources};
use super::written::Written;
use crate::backends;
use crate::options::{InitName, Settings};
use neural_style_core::image_io::Picture;
use neural_style_core::memory;
use neural_style_core::pixel::CaffeImage;
use neural_style_core::run::OptimizerKind;
use neural_style_core::Result;
use neural_style_weights::Vgg19Weights;
use std::sync::{Arc, Mutex};

/// Where a job's images come from.
pub enum Images {
    /// The files named by the settings (checked by the preflight before
    /// anything is decoded).
    Files {
        /// Inputs besides the settings' own (`loss --image`), checked with them.
        extra: Vec<Input>,
    },
    /// Already decoded images, one per style of the settings.
    Decoded {
        /// The content image.
        content: Picture,
        /// The style images, in the order of the settings' styles.
        styles: Vec<Picture>,
        /// One optional mask per style.
        masks: Vec<Option<Picture>>,
        /// The initial image (with `init = "image"`).
        init: Option<Picture>,
    },
    /// A content that is not one image file (a video's clip or directory
    /// of frames) and the settings' other files: the preflight checks
    /// `content` (the files it is read from) in place of the settings'
    /// `content`, then `decode` gives the content image (a video: its first
    /// frame); styles, masks and init are decoded as with [`Images::Files`].
    Clip {
        /// The files the content is read from, each with its role.
        content: Vec<Input>,
        /// Decodes the content, once the preflight has passed.
        decode: Box<dyn FnOnce() -> Result<Picture> + Send>,
    },
}

impl Images {
    /// The files of the settings, nothing else.
    pub fn files() -> Images {
        Images::Files { extra: Vec::new() }
    }
}

/// A job ready to run: its inputs sized, its starting image, its weights.
pub struct Prepared {
    /// The settings it was prepared for.
    pub settings: Settings,
    /// The decoded inputs (sized again at each scale).
    pub sources: Sources,
    /// The inputs at the output's size.
    pub inputs: Inputs,
    /// The starting image.
    pub init: CaffeImage,
    /// The network's weights.
    pub weights: Arc<Vgg19Weights>,
}

/// Prepare a job: check the backend, run the preflight of `images` against
/// `outputs` (nothing is decoded or written before it passes), set the
/// thread count, decode and size the inputs, make the starting image and
/// load the weights (unless given).
pub fn prepare(
    settings: Settings,
    images: Images,
    outputs: &[Output],
    weights: Option<Arc<Vgg19Weights>>,
    log: &mut dyn FnMut(&str),
) -> Result<Prepared> {
    let written = Written {
        files: outputs.to_vec(),
        frames: Vec::new(),
    };
    prepare_written(settings, images, &written, weights, log)
}

/// [`prepare()`] of a job whose every written path is in `written` (its
/// registry, [`super::written`]: frames and temporary files included).
pub fn prepare_written(
    settings: Settings,
    images: Images,
    written: &Written,
    weights: Option<Arc<Vgg19Weights>>,
    log: &mut dyn FnMut(&str),
) -> Result<Prepared> {
    let mut s = settings;
    backends::check_selection(&s.selection())?;
    let (sources, init_image) = match images {
        Images::Files { extra } => {
            preflight::check_run_written(&s, extra, written)?;
            set_threads(s.options.threads, log)?;
            (job::load_sources(&s)?, None)
        }
        Images::Decoded {
            content,
            styles,
            masks,
            init,
        } => {
            preflight::check_written(&[], std::slice::from_ref(written))?;
            let dims: Vec<(u32, u32)> = styles.iter().map(|p| (p.width, p.height)).collect();
            preflight::check_dimensions(&s, (content.width, content.height), &dims)?;
            set_threads(s.options.threads, log)?;
            (Sources::new(&s, content, styles, masks)?, init)
        }
        Images::Clip { content, decode } => {
            let inputs: Vec<Input> = preflight::inputs_of(&s)?
                .into_iter()
                .filter(|i| i.role != "content")
                .chain(content)
                .collect();
            preflight::check_written(&inputs, std::slice::from_ref(written))?;
            let dims = s
                .files
                .styles
                .iter()
                .map(|p| Picture::probe(p))
                .collect::<Result<Vec<_>>>()?;
            let content = decode()?;
            preflight::check_dimensions(&s, (content.width, content.height), &dims)?;
            set_threads(s.options.threads, log)?;
            (job::load_sources_with(&s, content)?, None)
        }
    };
    // A large output becomes coarse-to-fine by itself (the same iterations
    // in all), said with the plan's time.
    if let Some(chain) = sources.chain() {
        s.scales = chain.to_vec();
        log(&format!(
            "coarse-to-fine above {} px (`scales` or `scale-iterations` choose another schedule): {}{}",
            memory::COARSE_TO_FINE_ABOVE,
            chain
                .iter()
                .map(|(px, n)| format!("{px} px × {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            sources
                .plan()
                .seconds()
                .map(|t| format!("; about {} in all", memory::duration(t)))
                .unwrap_or_default()
        ));
    }
    // The memory plan's L-BFGS history (never more than the iterations;
    // smaller when the asked one does not fit, with a warning).
    if let (OptimizerKind::Lbfgs(c), Some(h)) = (&mut s.optimizer, sources.plan().history) {
        c.history = h;
    }
    for change in &sources.plan().changes {
        log(&format!("warning: {change}"));
    }
    let inputs = sources.at(&s, s.size())?;
    let init = match init_image {
        Some(p) if s.init == InitName::Image => {
            job::initial_image_with(&s, &inputs.content, || Ok(p))?
        }
        _ => job::initial_image(&s, &inputs.content)?,
    };
    let weights = match weights {
        Some(w) => w,
        None => Arc::new(job::load_weights(s.options.weights.as_deref(), log)?),
    };
    Ok(Prepared {
        settings: s,
        sources,
        inputs,
        init,
        weights,
    })
}

/// Set the thread count once per process: `threads`, capped at the logical
/// cores (more only adds contention), or all of them. The thread pools are
/// process-wide: a later call changes nothing, and pools that already run
/// (a program that used them before) keep their size, with a warning.
pub fn set_threads(threads: Option<usize>, log: &mut dyn FnMut(&str)) -> Result<()> {
    static SET: Mutex<bool> = Mutex::new(false);
    let mut set = SET.lock().unwrap_or_else(|e| e.into_inner());
    if *set {
        return Ok(());
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let n = match threads {
        Some(t) if t > cores => {
            log(&format!(
                "warning: `threads` {t} is more than the {cores} logical cores: using {cores}"
            ));
            cores
        }
        Some(t) => t,
        None => cores,
    };
    // A program that used rayon before (loading weights does) has its
    // global pool already: the pools keep their size, the job runs.
    if let Err(e) = backends::set_threads(n) {
        log(&format!(
            "warning: {}; the thread count stays as it is",
            e.cited()
        ));
    }
    *set = true;
    Ok(())
}
