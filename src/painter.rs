//! The library API: [`Painter`] paints one image from a content image, one
//! or more style images and [`Options`], on a backend chosen by name,
//! reporting each iteration to a callback that can stop the run.
//!
//! It goes through the same set-up ([`crate::run::prepare()`]) and the same run
//! ([`crate::run::Session`]) as the command line's main job, so the same
//! options and input files give the same image, byte for byte.

use crate::backends::{self, WithBackend};
use crate::options::{Files, Options, Settings};
use crate::run::{self as job, Images, Prepared, Session};
use neural_style_core::backend::Backend;
use neural_style_core::color;
use neural_style_core::image_io::Picture;
use neural_style_core::objective::LossParts;
use neural_style_core::pixel::CaffeImage;
use neural_style_core::run::{IterationReport, Observer, StopReason};
use neural_style_core::{Error, Result};
use neural_style_weights::Vgg19Weights;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// An input image: a file (decoded like the command line decodes it: any
/// format, EXIF orientation, alpha over white, 16-bit kept) or pixels in
/// memory.
#[derive(Clone, Debug)]
pub enum ImageSource {
    /// An image file.
    Path(PathBuf),
    /// 8-bit RGB pixels.
    Image(image::RgbImage),
}

impl From<&str> for ImageSource {
    fn from(p: &str) -> Self {
        ImageSource::Path(p.into())
    }
}

impl From<&Path> for ImageSource {
    fn from(p: &Path) -> Self {
        ImageSource::Path(p.into())
    }
}

impl From<PathBuf> for ImageSource {
    fn from(p: PathBuf) -> Self {
        ImageSource::Path(p)
    }
}

impl From<image::RgbImage> for ImageSource {
    fn from(img: image::RgbImage) -> Self {
        ImageSource::Image(img)
    }
}

impl From<image::DynamicImage> for ImageSource {
    /// Converted to 8-bit RGB (alpha dropped).
    fn from(img: image::DynamicImage) -> Self {
        ImageSource::Image(img.into_rgb8())
    }
}

/// An input decoded, with the name it goes by (its path, or a label for
/// pixels in memory).
struct Decoded {
    picture: Picture,
    name: PathBuf,
}

impl ImageSource {
    /// Decode (a file) or convert (pixels); `label` names pixels in memory.
    fn decode(self, label: String) -> Result<Decoded> {
        match self {
            ImageSource::Path(path) => Ok(Decoded {
                picture: Picture::load(&path)?,
                name: path,
            }),
            ImageSource::Image(img) => {
                if img.width() == 0 || img.height() == 0 {
                    return Err(Error::image(&label, "image has zero width or height"));
                }
                Ok(Decoded {
                    picture: Picture {
                        width: img.width(),
                        height: img.height(),
                        rgb: img.as_raw().iter().map(|&v| f32::from(v)).collect(),
                    },
                    name: PathBuf::from(label),
                })
            }
        }
    }
}

/// The callback of [`Painter::on_iteration`].
type Callback<'a> = Box<dyn FnMut(&mut Progress<'_>) -> ControlFlow<()> + 'a>;

/// Paints one image. Built step by step; [`Painter::paint`] runs it.
///
/// ```no_run
/// # fn main() -> neural_style::core::Result<()> {
/// use neural_style::{Options, Painter};
/// let painting = Painter::new("candle")?
///     .content("photo.jpg")?
///     .style("painting.jpg")?
///     .options(Options { size: 256, iterations: 100, ..Default::default() })
///     .paint()?;
/// painting.save("out.png".as_ref())?;
/// # Ok(()) }
/// ```
pub struct Painter<'a> {
    backend: Option<String>,
    device: Option<String>,
    content: Option<Decoded>,
    styles: Vec<Decoded>,
    /// One optional mask per style.
    masks: Vec<Option<Decoded>>,
    init: Option<Decoded>,
    options: Options,
    weights: Option<Arc<Vgg19Weights>>,
    callback: Option<Callback<'a>>,
}

impl<'a> Painter<'a> {
    /// A painter on the backend `name` (`candle`, `tch`, `cuda`); a backend
    /// this project does not have, or this build does not include, is
    /// refused here. It overrides [`Options::backend`].
    pub fn new(backend: &str) -> Result<Self> {
        backends::check_selection(&backends::Selection {
            name: backend.to_string(),
            device: None,
        })?;
        let mut p = Painter::with_default_backend();
        p.backend = Some(backend.to_string());
        Ok(p)
    }

    /// A painter on the backend of its options ([`Options::backend`],
    /// by default the build's default backend).
    pub fn with_default_backend() -> Self {
        Painter {
            backend: None,
            device: None,
            content: None,
            styles: Vec::new(),
            masks: Vec::new(),
            init: None,
            options: Options::default(),
            weights: None,
            callback: None,
        }
    }

    /// The backend's device (`cpu`; `cuda:0`, `host` for the cuda backend…);
    /// overrides [`Options::device`].
    pub fn device(mut self, device: &str) -> Self {
        self.device = Some(device.to_string());
        self
    }

    /// The content image (the photo), decoded now; errors name the file.
    pub fn content(mut self, img: impl Into<ImageSource>) -> Result<Self> {
        self.content = Some(img.into().decode("the content image".into())?);
        Ok(self)
    }

    /// A style image (the painting), decoded now; call again for several
    /// styles (blended by [`Options::style_blend_weights`]).
    pub fn style(mut self, img: impl Into<ImageSource>) -> Result<Self> {
        let label = format!("style image {}", self.styles.len() + 1);
        self.styles.push(img.into().decode(label)?);
        self.masks.push(None);
        Ok(self)
    }

    /// A style image that applies only where `mask` is white (any size,
    /// resized to the content; grey blends), as `style-mask` on the command
    /// line. Both are decoded now; errors name the file.
    pub fn style_masked(
        mut self,
        img: impl Into<ImageSource>,
        mask: impl Into<ImageSource>,
    ) -> Result<Self> {
        let n = self.styles.len() + 1;
        let mask = mask.into().decode(format!("the mask of style image {n}"))?;
        self = self.style(img)?;
        self.masks[n - 1] = Some(mask);
        Ok(self)
    }

    /// The image to start from (resized to the content's size); sets
    /// [`Options::init`] to `image` unless the options say otherwise.
    pub fn init_image(mut self, img: impl Into<ImageSource>) -> Result<Self> {
        self.init = Some(img.into().decode("the init image".into())?);
        Ok(self)
    }

    /// The options (all of them: start from [`Options::default`] or
    /// [`Options::preset`]).
    pub fn options(mut self, o: Options) -> Self {
        self.options = o;
        self
    }

    /// Use these weights instead of finding and loading them (a server
    /// loads them once: [`load_weights`]).
    pub fn weights(mut self, w: Arc<Vgg19Weights>) -> Self {
        self.weights = Some(w);
        self
    }

    /// Called after every iteration; return `ControlFlow::Break(())` to stop
    /// (the best image so far is the result, with [`Painting::stopped`] set).
    pub fn on_iteration(
        mut self,
        f: impl FnMut(&mut Progress<'_>) -> ControlFlow<()> + 'a,
    ) -> Self {
        self.callback = Some(Box::new(f));
        self
    }

    /// Validate the options, check the backend, size the inputs, build the
    /// network and the targets, and run.
    pub fn paint(self) -> Result<Painting> {
        let mut o = self.options;
        if let Some(b) = self.backend {
            o.backend = b;
        }
        if let Some(d) = self.device {
            o.device = Some(d);
        }
        o.validate()?;
        // The backend is checked once, by `prepare` (before any image is
        // sized or any weights are loaded).
        let content = self
            .content
            .ok_or_else(|| Error::config("content", "a content image is required"))?;
        let settings = Settings::new(
            Files {
                content: content.name,
                styles: self.styles.iter().map(|d| d.name.clone()).collect(),
                masks: if self.masks.iter().any(Option::is_some) {
                    self.masks
                        .iter()
                        .map(|m| m.as_ref().map(|d| d.name.clone()))
                        .collect()
                } else {
                    Vec::new()
                },
                init_image: self.init.as_ref().map(|d| d.name.clone()),
                config: None,
            },
            &o,
        )?;
        let prepared = job::prepare(
            settings,
            Images::Decoded {
                content: content.picture,
                styles: self.styles.into_iter().map(|d| d.picture).collect(),
                masks: self
                    .masks
                    .into_iter()
                    .map(|m| m.map(|d| d.picture))
                    .collect(),
                init: self.init.map(|d| d.picture),
            },
            &[],
            self.weights,
            &mut |_| {},
        )?;
        let s = &prepared.settings;
        let interrupt = AtomicBool::new(false);
        let mut observer = CallbackObserver {
            callback: self.callback,
            colors: s
                .options
                .original_colors
                .then(|| prepared.inputs.content.clone()),
            interrupt: &interrupt,
            stopped: false,
        };
        let outcome = backends::dispatch(
            &s.selection(),
            PaintJob {
                prepared: &prepared,
                observer: &mut observer,
                interrupt: &interrupt,
            },
        )?;
        // A non-finite loss after some iterations: the library reports it as
        // an error, as it always has (the command line keeps the image).
        if let StopReason::Failed(why) = &outcome.stop {
            return Err(neural_style_core::Error::config(
                "learning-rate",
                why.clone(),
            ));
        }
        let best = job::finish(s, &outcome.best, &prepared.inputs.content);
        let p = Picture::from_caffe(&best);
        let image = image::RgbImage::from_raw(p.width, p.height, p.to_rgb8())
            .expect("a picture holds width × height RGB pixels");
        Ok(Painting {
            image,
            iterations: outcome.iterations,
            best_loss: outcome.best_loss,
            stopped: observer.stopped && outcome.stop == StopReason::Interrupted,
            elapsed: outcome.elapsed,
        })
    }
}

/// The run of a prepared job on the selected backend.
struct PaintJob<'p> {
    prepared: &'p Prepared,
    observer: &'p mut dyn Observer,
    interrupt: &'p AtomicBool,
}

impl WithBackend for PaintJob<'_> {
    type Output = neural_style_core::run::RunOutcome;
    fn run<B: Backend + Clone + 'static>(self, backend: B) -> Result<Self::Output> {
        let p = self.prepared;
        Session::new(backend, &p.weights).paint(
            &p.settings,
            &p.sources,
            &p.init,
            self.observer,
            self.interrupt,
        )
    }
}

/// The callback as the run loop's observer.
struct CallbackObserver<'a, 'i> {
    callback: Option<Callback<'a>>,
    colors: Option<CaffeImage>,
    interrupt: &'i AtomicBool,
    stopped: bool,
}

impl Observer for CallbackObserver<'_, '_> {
    fn on_iteration(
        &mut self,
        r: &IterationReport,
        image: &mut dyn FnMut() -> Result<CaffeImage>,
    ) -> Result<()> {
        let Some(f) = &mut self.callback else {
            return Ok(());
        };
        let mut progress = Progress {
            iteration: r.iteration,
            of: r.of,
            loss: r.loss,
            grad_norm: r.grad_norm,
            elapsed: Duration::from_secs_f64(r.elapsed),
            image,
            colors: self.colors.as_ref(),
        };
        if f(&mut progress).is_break() {
            self.stopped = true;
            self.interrupt.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// One iteration's report, given to [`Painter::on_iteration`].
pub struct Progress<'p> {
    /// 1-based, counted over every scale.
    pub iteration: usize,
    /// Iterations of the whole run.
    pub of: usize,
    /// The loss parts (weighted total included) at this iteration's image.
    pub loss: LossParts,
    /// The L2 norm of the total loss's gradient.
    pub grad_norm: f64,
    /// Since the run loop started.
    pub elapsed: Duration,
    image: &'p mut dyn FnMut() -> Result<CaffeImage>,
    colors: Option<&'p CaffeImage>,
}

impl Progress<'_> {
    /// This iteration's image as the output would be (original colours
    /// applied); downloads it from the device, so call it only when needed.
    pub fn preview(&mut self) -> Result<image::RgbImage> {
        let mut img = (self.image)()?;
        if let Some(content) = self.colors {
            img = color::original_colors(&img, content);
        }
        let p = Picture::from_caffe(&img);
        Ok(image::RgbImage::from_raw(p.width, p.height, p.to_rgb8())
            .expect("a picture holds width × height RGB pixels"))
    }
}

/// A painted image and how the run went.
#[derive(Clone, Debug)]
pub struct Painting {
    /// The best image of the run (original colours applied when asked).
    pub image: image::RgbImage,
    /// Iterations run (over every scale).
    pub iterations: usize,
    /// The total loss of the best image.
    pub best_loss: f64,
    /// The callback stopped the run before its last iteration.
    pub stopped: bool,
    /// Time the run loop took.
    pub elapsed: Duration,
}

impl Painting {
    /// Write the image, atomically, in the format of the extension (`.png`,
    /// `.jpg`, `.webp`, `.tif`).
    pub fn save(&self, path: &Path) -> Result<()> {
        Picture {
            width: self.image.width(),
            height: self.image.height(),
            rgb: self.image.as_raw().iter().map(|&v| f32::from(v)).collect(),
        }
        .save(path)
    }
}

/// Find (or fetch, once) and load the weights `o` names (or the default
/// ones), checked; a server loads them once and gives them to each
/// [`Painter::weights`].
pub fn load_weights(o: &Options) -> Result<Vgg19Weights> {
    job::load_weights(o.weights.as_deref(), &mut |_| {})
}
