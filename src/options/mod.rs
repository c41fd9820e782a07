//! The one options model: every option of a job (everything but its input
//! images and output paths) is declared once, in the `options!` invocation
//! below, with its doc comment, default, command-line spelling and an
//! example value. From that one declaration come
//!
//! - [`Options`]: the concrete, complete options of a job (the library's
//!   type; serde with the keys below);
//! - [`StyleArgs`]: the layer the command line, `--config` files, presets and
//!   batch `[defaults]`/`[[job]]` tables are read into, every option
//!   optional, plus a job's inputs (content, styles, masks, init image);
//! - the generic merge preset < file < flags ([`Options::apply`]);
//! - [`Options::to_cli_args`] and [`Options::keys`].
//!
//! A key is the long flag without its dashes (`style-weight`), the same in a
//! config file, a batch file and [`Options`]' serde form. Defaults come from
//! core's own `Default` impls ([`ObjectiveSpec`], [`LbfgsConfig`]) where core
//! has one. Validation is [`Options::validate`].

use neural_style_core::backend::Pooling;
use neural_style_core::layers::{parse_list, LayerId};
use neural_style_core::objective::{Normalization, ObjectiveSpec};
use neural_style_core::optim::{AdamConfig, FirstStep, LbfgsConfig, LineSearch};
use neural_style_core::run::OptimizerKind;
use neural_style_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod resolved;
pub use resolved::{load_config, parse_toml, Files, Settings};

/// The optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum OptimizerName {
    /// L-BFGS (Torch's `optim.lbfgs`).
    Lbfgs,
    /// Adam.
    Adam,
}

/// L-BFGS's line search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum LineSearchName {
    /// Take the step as computed (Torch's default).
    None,
    /// Halve the step until the Armijo condition holds.
    Backtracking,
}

/// L-BFGS's first step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum FirstStepName {
    /// A typical pixel moves by a tenth of a level (measurable at any size).
    Pixel,
    /// Torch's min(1, 1/‖g‖₁) (below float32 resolution on large images).
    Torch,
}

/// The normalisation of the losses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum NormalizationName {
    /// Means, Gram matrices divided by C·H·W (jcjohnson/neural-style).
    Jcjohnson,
    /// ½Σ content, unnormalised Gram matrices, 1/(4N²M²) style (Gatys et al., the Keras write-up).
    Gatys,
}

/// The pooling layers of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum PoolingName {
    /// Max pooling (VGG19's own).
    Max,
    /// Average pooling (the paper's choice).
    Avg,
}

/// The image the optimisation starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum InitName {
    /// Start from the content image.
    Content,
    /// Start from seeded uniform noise.
    Noise,
    /// Start from jcjohnson's randn·0.001 (Caffe space: the mean colour, seeded).
    Randn,
    /// Start from the init image.
    Image,
}

/// Named sets of options ([`Options::preset`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// jcjohnson/neural-style's defaults, its randn·0.001 start and Torch's first L-BFGS step.
    Jcjohnson,
    /// The paper's: its normalisation, average pooling, no TV, noise start, α/β = 1e-3.
    Gatys,
    /// The Keras write-up's: its normalisation and layers, content start, Adam lr 10, 100 iterations, α = β.
    Keras,
    /// Ruder et al.'s video settings (`video`: temporal weight 1e3, 2000 iterations on the first frame): jcjohnson's, 1000 iterations.
    Ruder,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 4] = [
        Preset::Jcjohnson,
        Preset::Gatys,
        Preset::Keras,
        Preset::Ruder,
    ];
}

/// A value as its command line spelling (`None`: not given).
pub trait CliValue {
    /// The text after `--flag=`.
    fn cli_value(&self) -> Option<String>;
}

macro_rules! cli_display {
    ($($t:ty),*) => {$(
        impl CliValue for $t {
            fn cli_value(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}
cli_display!(u32, u64, usize, f64, bool, String);

macro_rules! cli_enum {
    ($($t:ty),*) => {$(
        impl CliValue for $t {
            /// The serde name (lowercase), which is also the flag's value.
            fn cli_value(&self) -> Option<String> {
                serde_json::to_value(self)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
            }
        }
    )*};
}
cli_enum!(
    OptimizerName,
    LineSearchName,
    FirstStepName,
    NormalizationName,
    PoolingName,
    InitName
);

impl CliValue for PathBuf {
    fn cli_value(&self) -> Option<String> {
        Some(self.display().to_string())
    }
}

impl<T: CliValue> CliValue for Vec<T> {
    fn cli_value(&self) -> Option<String> {
        let parts: Option<Vec<String>> = self.iter().map(CliValue::cli_value).collect();
        Some(parts?.join(","))
    }
}

impl<T: CliValue> CliValue for Option<T> {
    fn cli_value(&self) -> Option<String> {
        self.as_ref().and_then(CliValue::cli_value)
    }
}

/// Declares the options. Each entry:
///
/// ```text
/// /// doc comment (the --help text and the API docs)
/// #[arg(...)]                      clap attributes of the flag (`long` is implied)
/// name: Concrete [Given] = default, example "VALUE";
/// ```
///
/// `Concrete` is the type in [`Options`]; `Given` the type a flag, file or
/// preset gives (`Concrete` itself, or `T` for an `Option<T>` option without
/// a default); `default` the value of [`Options::default`]; `example` a
/// valid non-default command-line value (the enumeration test sets every
/// option to it through every route). The input fields of a job (declared
/// in the `inputs` block) exist only in [`StyleArgs`].
macro_rules! options {
    (
        inputs { $(
            $(#[doc = $idoc:expr])*
            #[arg($($iarg:tt)*)]
            $(#[serde($($iserde:tt)*)])?
            $ifield:ident : $ity:ty;
        )* }
        options { $(
            $(#[doc = $doc:expr])*
            #[arg($($arg:tt)*)]
            $field:ident : $ty:ty [$given:ty] = $default:expr, example $example:literal;
        )* }
    ) => {
        /// Every option of a job except its input images and output paths.
        /// Serde keys are the command line's long flags without dashes
        /// (`style-weight`), as in `--config` files and batch files; missing
        /// keys take their default.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
        pub struct Options {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Default for Options {
            fn default() -> Self {
                Options { $( $field: $default, )* }
            }
        }

        impl Options {
            /// Every option's key (its long flag without the dashes), in
            /// declaration order, with an example of a valid non-default
            /// command-line value (used to check that every option is
            /// reachable from every route).
            pub fn keys() -> Vec<(String, &'static str)> {
                vec![$( (key(stringify!($field)), $example) ),*]
            }

            /// Overlay the options `top` gives (preset < file < flags: apply
            /// them in that order).
            pub fn apply(&mut self, top: &StyleArgs) {
                $( if let Some(v) = &top.$field {
                    let v: $given = v.clone();
                    self.$field = v.into();
                } )*
            }

            /// The flags (`--key=value`) that reproduce these options on
            /// the command line: the non-default ones only.
            pub fn to_cli_args(&self) -> Vec<String> {
                let d = Options::default();
                let mut v = Vec::new();
                $( if self.$field != d.$field {
                    if let Some(value) = CliValue::cli_value(&self.$field) {
                        v.push(format!("--{}={value}", key(stringify!($field))));
                    }
                } )*
                v
            }

            /// Every option's key with its value as a command-line value
            /// (`None`: not set).
            pub fn cli_values(&self) -> Vec<(String, Option<String>)> {
                vec![$( (key(stringify!($field)), CliValue::cli_value(&self.$field)) ),*]
            }

            /// The keys of the options a layer gives.
            pub fn given(top: &StyleArgs) -> Vec<String> {
                let mut v = Vec::new();
                $( if top.$field.is_some() { v.push(key(stringify!($field))); } )*
                v
            }
        }

        /// One layer of options: what the command line, a `--config` file,
        /// a preset or a batch `[defaults]`/`[[job]]` table gives (every
        /// option optional), and a job's input files. Layers are merged
        /// field by field ([`StyleArgs::under`]) and applied to [`Options`]
        /// ([`Options::apply`]).
        #[derive(Debug, Default, Clone, Deserialize)]
        #[cfg_attr(feature = "cli", derive(clap::Args))]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        pub struct StyleArgs {
            $(
                $(#[doc = $idoc])*
                #[cfg_attr(feature = "cli", arg($($iarg)*))]
                $(#[serde($($iserde)*)])?
                pub $ifield: $ity,
            )*
            $(
                $(#[doc = $doc])*
                #[cfg_attr(feature = "cli", arg(long, $($arg)*))]
                pub $field: Option<$given>,
            )*
        }

        impl StyleArgs {
            /// `top` overrides `self` field by field (the layering of batch
            /// jobs over their `[defaults]`, and of flags over a file).
            pub fn under(mut self, top: &StyleArgs) -> StyleArgs {
                $( if top.$field.is_some() { self.$field = top.$field.clone(); } )*
                $( Overlay::overlay(&mut self.$ifield, &top.$ifield); )*
                self
            }

            /// A layer that gives every option of `o`.
            pub fn from_options(o: &Options) -> StyleArgs {
                let mut a = StyleArgs::default();
                $( a.$field = Into::<Option<$given>>::into(o.$field.clone()); )*
                a
            }
        }
    };
}

/// An input field of a layer replaced by the one above when that one is given.
trait Overlay {
    fn overlay(&mut self, top: &Self);
}

impl<T: Clone> Overlay for Option<T> {
    fn overlay(&mut self, top: &Self) {
        if top.is_some() {
            self.clone_from(top);
        }
    }
}

impl<T: Clone> Overlay for Vec<T> {
    fn overlay(&mut self, top: &Self) {
        if !top.is_empty() {
            self.clone_from(top);
        }
    }
}

/// `style_weight` → `style-weight`.
pub fn key(field: &str) -> String {
    field.replace('_', "-")
}

fn lbfgs() -> LbfgsConfig {
    LbfgsConfig::default()
}

fn spec() -> ObjectiveSpec {
    ObjectiveSpec::default()
}

fn layer_names(layers: &[(LayerId, f64)]) -> String {
    layers
        .iter()
        .map(|l| l.0.name())
        .collect::<Vec<_>>()
        .join(",")
}

options! {
    inputs {
        /// Content image (the photo).
        #[arg(long, short = 'c', value_name = "FILE")]
        content: Option<PathBuf>;
        /// Style image(s) (the paintings).
        #[arg(long, short = 's', value_name = "FILE", num_args = 1..)]
        #[serde(default)]
        style: Vec<PathBuf>;
        /// Starting image for --init image (resized to the content's size).
        #[arg(long, value_name = "FILE")]
        init_image: Option<PathBuf>;
        /// Spatial mask per style image, in the order of --style (white = that
        /// style applies there; any size, resized to the content); `none` for a
        /// style without a mask.
        #[arg(long, value_name = "FILE|none", num_args = 1..)]
        #[serde(default)]
        style_mask: Vec<PathBuf>;
        /// Output image of a batch job (`output = "..."` in a jobs file; the main job takes --output).
        #[arg(skip)]
        output: Option<PathBuf>;
        /// Settings file (TOML, keys as the long flags); flags override it.
        #[arg(long, value_name = "FILE")]
        #[serde(skip)]
        config: Option<PathBuf>;
        /// Named settings; the config file and flags override it.
        #[arg(long, value_enum)]
        preset: Option<Preset>;
    }
    options {
        /// Blend weights of the style images, comma-separated (normalised to sum to 1) [default: equal].
        #[arg(value_delimiter = ',', value_name = "W,W,...")]
        style_blend_weights: Option<Vec<f64>> [Vec<f64>] = None, example "3,1";
        /// Longest side of the output, in pixels.
        #[arg(value_name = "PX")]
        size: u32 [u32] = 512, example "64";
        /// Style images are resized to the content's pixel count times this (an area factor).
        #[arg(value_name = "X")]
        style_scale: f64 [f64] = 1.0, example "0.5";
        /// Longest side of the style images (overrides --style-scale).
        #[arg(value_name = "PX")]
        style_size: Option<u32> [u32] = None, example "48";
        /// Iterations (evaluations of the loss and its gradient).
        #[arg(short = 'n', value_name = "N")]
        iterations: usize [usize] = 1000, example "3";
        /// Stop when the picture has stopped changing, --iterations being the cap: checked every 25 iterations, it stops when the loss fell less than 0.5 % and the image changed less than 0.5/255 on average, twice in a row (=false: every iteration, as jcjohnson/neural-style; off in the presets).
        #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
        early_stop: bool [bool] = true, example "false";
        /// Optimiser.
        #[arg(value_enum)]
        optimizer: OptimizerName [OptimizerName] = OptimizerName::Lbfgs, example "adam";
        /// Step size [default: 10 for adam, 1 for lbfgs].
        #[arg(value_name = "LR")]
        learning_rate: Option<f64> [f64] = None, example "2.5";
        /// L-BFGS history size.
        #[arg(value_name = "M")]
        lbfgs_history: usize [usize] = lbfgs().history, example "7";
        /// L-BFGS line search (none: as Torch's optim.lbfgs).
        #[arg(value_enum, value_name = "KIND")]
        lbfgs_line_search: LineSearchName [LineSearchName] = match lbfgs().line_search {
            LineSearch::None => LineSearchName::None,
            LineSearch::Backtracking => LineSearchName::Backtracking,
        }, example "backtracking";
        /// L-BFGS first step.
        #[arg(value_enum, value_name = "RULE")]
        lbfgs_first_step: FirstStepName [FirstStepName] = match lbfgs().first_step {
            FirstStep::Pixel => FirstStepName::Pixel,
            FirstStep::Torch => FirstStepName::Torch,
        }, example "torch";
        /// Loss normalisation.
        #[arg(value_enum, value_name = "KIND")]
        normalization: NormalizationName [NormalizationName] = match spec().normalization {
            Normalization::Jcjohnson => NormalizationName::Jcjohnson,
            Normalization::Gatys => NormalizationName::Gatys,
        }, example "gatys";
        /// Weight of the content loss.
        #[arg(value_name = "W")]
        content_weight: f64 [f64] = spec().content_weight, example "2";
        /// Weight of the style loss.
        #[arg(value_name = "W")]
        style_weight: f64 [f64] = spec().style_weight, example "50";
        /// Weight of the total-variation loss.
        #[arg(value_name = "W")]
        tv_weight: f64 [f64] = spec().tv_weight, example "0.5";
        /// Content layers, comma-separated.
        #[arg(value_name = "LAYERS")]
        content_layers: String [String] = layer_names(&spec().content_layers),
            example "relu3_2";
        /// Style layers, comma-separated.
        #[arg(value_name = "LAYERS")]
        style_layers: String [String] = layer_names(&spec().style_layers),
            example "relu1_1,relu2_1";
        /// Per-layer content weights, comma-separated [default: all 1].
        #[arg(value_delimiter = ',', value_name = "W,W,...")]
        content_layer_weights: Option<Vec<f64>> [Vec<f64>] = None, example "2";
        /// Per-layer style weights, comma-separated [default: all 1; 1/(number of layers) with --normalization gatys].
        #[arg(value_delimiter = ',', value_name = "W,W,...")]
        style_layer_weights: Option<Vec<f64>> [Vec<f64>] = None, example "1,2,3,4,5";
        /// Pooling.
        #[arg(value_enum)]
        pooling: PoolingName [PoolingName] = match spec().pooling {
            Pooling::Max => PoolingName::Max,
            Pooling::Avg => PoolingName::Avg,
        }, example "avg";
        /// Starting image [default: content, or image when --init-image is given].
        #[arg(value_enum)]
        init: Option<InitName> [InitName] = None, example "noise";
        /// Random seed (noise initialisation).
        #[arg()]
        seed: u64 [u64] = 0, example "7";
        /// Compute backend (`neural-style backends` lists them).
        #[arg()]
        backend: String [String] = crate::backends::DEFAULT.to_string(), example "cuda";
        /// Device of the backend (candle: cpu; cuda: gpu, cuda:N, or host to run its kernels on the CPU).
        #[arg()]
        device: Option<String> [String] = None, example "host";
        /// CPU threads [default: all cores].
        #[arg()]
        threads: Option<usize> [usize] = None, example "2";
        /// VGG19 weights file [default: found or fetched automatically].
        #[arg(value_name = "FILE")]
        weights: Option<PathBuf> [PathBuf] = None, example "vgg.safetensors";
        /// Keep the content's colours: the output's luminance with the content's chrominance (YCbCr).
        #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
        original_colors: bool [bool] = false, example "true";
        /// Give each style image the content's colour mean and covariance before taking its features.
        #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
        color_match: bool [bool] = false, example "true";
        /// Multi-resolution: the longest side at each scale, comma-separated (the last is the output's size; overrides --size).
        #[arg(value_delimiter = ',', value_name = "PX,PX,...")]
        scales: Option<Vec<u32>> [Vec<u32>] = None, example "32,64";
        /// Multi-resolution with three scales: --size/2, --size/√2, --size.
        #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
        multires: bool [bool] = false, example "true";
        /// Iterations at each scale, comma-separated [default: --iterations at every scale].
        #[arg(value_delimiter = ',', value_name = "N,N,...")]
        scale_iterations: Option<Vec<usize>> [Vec<usize>] = None, example "4";
        /// Memory the run may use, in GiB [default: 90 % of what the machine has available; on a GPU, unchecked unless given].
        #[arg(value_name = "GIB")]
        memory: Option<f64> [f64] = None, example "8";
        /// Recompute activations in the backward pass instead of keeping them (less memory, more time) [default: when the plan needs the memory].
        #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
        recompute: Option<bool> [bool] = None, example "true";
    }
}

impl Options {
    /// The options of a named preset (the defaults, with the preset's changes).
    pub fn preset(p: Preset) -> Options {
        let d = Options::default();
        match p {
            // jcjohnson/neural-style's neural_style.lua: its defaults (ours
            // too), `-init random` = randn·0.001, Torch's optim.lbfgs. The
            // presets reproduce a recipe: every iteration runs (no early stop).
            Preset::Jcjohnson => Options {
                init: Some(InitName::Randn),
                lbfgs_first_step: FirstStepName::Torch,
                early_stop: false,
                ..d
            },
            // Gatys, Ecker & Bethge, CVPR 2016: eqs. 1–5 (layer weights
            // 1/5), average pooling, white-noise start, L-BFGS, conv4_2 and
            // conv1_1…conv5_1 (Caffe's ReLUs are in place: our relu names),
            // α/β = 1e-3 (Fig. 3 B–D, α the content weight).
            Preset::Gatys => Options {
                normalization: NormalizationName::Gatys,
                pooling: PoolingName::Avg,
                tv_weight: 0.0,
                init: Some(InitName::Noise),
                content_weight: 1.0,
                style_weight: 1e3,
                early_stop: false,
                ..d
            },
            // The project's Keras write-up: its normalisation, Keras layers
            // (post-ReLU), content start, Adam lr 10, 100 iterations, equal
            // α and β (its first experiment), no TV.
            Preset::Keras => Options {
                normalization: NormalizationName::Gatys,
                optimizer: OptimizerName::Adam,
                learning_rate: Some(10.0),
                iterations: 100,
                init: Some(InitName::Content),
                content_layers: "block5_conv2".into(),
                style_layers: "block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1"
                    .into(),
                content_weight: 1.0,
                style_weight: 1.0,
                tv_weight: 0.0,
                early_stop: false,
                ..d
            },
            // Ruder, Dosovitskiy & Brox, GCPR 2016 (docs/DESIGN.md, "Video"):
            // built on jcjohnson's neural_style.lua and its weights (content
            // 5, style 1e2, TV 1e-3), random start, 1000 iterations per frame
            // after the first; the `video` command adds the rest (temporal
            // weight 1e3, 2000 iterations on the first frame).
            Preset::Ruder => Options {
                init: Some(InitName::Randn),
                lbfgs_first_step: FirstStepName::Torch,
                iterations: 1000,
                early_stop: false,
                ..d
            },
        }
    }

    /// Check every value (and the values that must agree with each other);
    /// the error names the option.
    pub fn validate(&self) -> Result<()> {
        self.optimizer()?;
        self.objective()?;
        if self.size == 0 {
            return Err(Error::config("size", "must be at least 1 pixel"));
        }
        positive("style-scale", self.style_scale)?;
        if self.style_size == Some(0) {
            return Err(Error::config("style-size", "must be at least 1 pixel"));
        }
        if self.iterations == 0 {
            return Err(Error::config("iterations", "must be at least 1"));
        }
        if let Some(gib) = self.memory {
            neural_style_core::memory::Budget::given(gib)?;
        }
        if self.threads == Some(0) {
            return Err(Error::config("threads", "must be at least 1"));
        }
        self.scales()?;
        Ok(())
    }

    /// The optimiser these options describe (learning rate by default
    /// that of core's config of the optimiser).
    pub fn optimizer(&self) -> Result<OptimizerKind> {
        if let Some(lr) = self.learning_rate {
            positive("learning-rate", lr)?;
        }
        if self.lbfgs_history == 0 {
            return Err(Error::config("lbfgs-history", "must be at least 1"));
        }
        Ok(match self.optimizer {
            OptimizerName::Lbfgs => {
                let d = LbfgsConfig::default();
                OptimizerKind::Lbfgs(LbfgsConfig {
                    history: self.lbfgs_history,
                    lr: self.learning_rate.unwrap_or(d.lr),
                    line_search: match self.lbfgs_line_search {
                        LineSearchName::None => LineSearch::None,
                        LineSearchName::Backtracking => LineSearch::Backtracking,
                    },
                    first_step: match self.lbfgs_first_step {
                        FirstStepName::Pixel => FirstStep::Pixel,
                        FirstStepName::Torch => FirstStep::Torch,
                    },
                })
            }
            OptimizerName::Adam => {
                let d = AdamConfig::default();
                OptimizerKind::Adam(AdamConfig {
                    lr: self.learning_rate.unwrap_or(d.lr),
                    ..d
                })
            }
        })
    }

    /// The objective these options describe.
    pub fn objective(&self) -> Result<ObjectiveSpec> {
        let normalization = match self.normalization {
            NormalizationName::Jcjohnson => Normalization::Jcjohnson,
            NormalizationName::Gatys => Normalization::Gatys,
        };
        let content_layers = layer_weights(
            "content-layers",
            "content-layer-weights",
            &self.content_layers,
            self.content_layer_weights.as_deref(),
            false,
        )?;
        // Gatys et al.'s w_l = 1/(number of style layers) by default.
        let style_layers = layer_weights(
            "style-layers",
            "style-layer-weights",
            &self.style_layers,
            self.style_layer_weights.as_deref(),
            normalization == Normalization::Gatys,
        )?;
        Ok(ObjectiveSpec {
            content_layers,
            style_layers,
            content_weight: non_negative("content-weight", self.content_weight)?,
            style_weight: non_negative("style-weight", self.style_weight)?,
            tv_weight: non_negative("tv-weight", self.tv_weight)?,
            pooling: match self.pooling {
                PoolingName::Max => Pooling::Max,
                PoolingName::Avg => Pooling::Avg,
            },
            normalization,
        })
    }

    /// The multi-resolution schedule: `scales`, or `multires` (three scales
    /// in a geometric progression of ratio √2 ending at `size`), or just
    /// `size`; iterations from `scale-iterations` or `iterations` at each.
    pub fn scales(&self) -> Result<Vec<(u32, usize)>> {
        let sizes: Vec<u32> = match (&self.scales, self.multires) {
            (Some(_), true) => {
                return Err(Error::config(
                    "multires",
                    "give either `multires` or `scales`, not both",
                ))
            }
            (Some(list), false) => {
                if list.is_empty() || list.contains(&0) {
                    return Err(Error::config(
                        "scales",
                        "sizes must be at least 1 pixel, e.g. `scales` 256,362,512",
                    ));
                }
                list.clone()
            }
            (None, true) => [0.5, std::f64::consts::FRAC_1_SQRT_2, 1.0]
                .iter()
                .map(|f| ((self.size as f64 * f).round() as u32).max(1))
                .collect(),
            (None, false) => vec![self.size],
        };
        let its = match &self.scale_iterations {
            None => vec![self.iterations; sizes.len()],
            Some(list) if list.len() != sizes.len() => {
                return Err(Error::config(
                    "scale-iterations",
                    format!("{} counts for {} scales", list.len(), sizes.len()),
                ))
            }
            Some(list) if list.contains(&0) => {
                return Err(Error::config("scale-iterations", "must be at least 1"))
            }
            Some(list) => list.clone(),
        };
        // Every count is summed (progress, checkpoints): the total must fit.
        if its
            .iter()
            .try_fold(0usize, |a, &n| a.checked_add(n))
            .is_none()
        {
            let flag = if self.scale_iterations.is_some() {
                "scale-iterations"
            } else {
                "iterations"
            };
            return Err(Error::config(
                flag,
                format!(
                    "{} iterations over {} scales is more than this machine counts ({}) ",
                    its.iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(" + "),
                    its.len(),
                    usize::MAX
                )
                .trim_end()
                .to_string(),
            ));
        }
        Ok(sizes.into_iter().zip(its).collect())
    }
}

fn positive(flag: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(Error::config(
            flag,
            format!("must be a positive number, not {v}"),
        ))
    }
}

fn non_negative(flag: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(Error::config(
            flag,
            format!("must be a finite number ≥ 0, not {v}"),
        ))
    }
}

fn layer_weights(
    layers_flag: &str,
    weights_flag: &str,
    layers: &str,
    weights: Option<&[f64]>,
    mean_by_default: bool,
) -> Result<Vec<(LayerId, f64)>> {
    let ids: Vec<LayerId> = if layers.trim().is_empty() {
        Vec::new()
    } else {
        parse_list(layers).map_err(|e| Error::config(layers_flag, e.to_string()))?
    };
    let ws: Vec<f64> = match weights {
        None if mean_by_default => vec![1.0 / ids.len() as f64; ids.len()],
        None => vec![1.0; ids.len()],
        Some(w) if w.len() != ids.len() => {
            return Err(Error::config(
                weights_flag,
                format!("{} weights for {} layers", w.len(), ids.len()),
            ))
        }
        Some(w) => w.to_vec(),
    };
    if let Some(bad) = ws.iter().find(|v| !v.is_finite() || **v < 0.0) {
        return Err(Error::config(
            weights_flag,
            format!("must be finite and ≥ 0, not {bad}"),
        ));
    }
    Ok(ids.into_iter().zip(ws).collect())
}

impl StyleArgs {
    /// Layer the config file (if any) and preset under these flags: the
    /// options (preset < file < flags) and the input files (file < flags).
    ///
    /// Paths in a config file (its `content`, `style`, `style-mask`,
    /// `init-image`, `weights`) are relative to the file's own directory,
    /// as in batch files. An `init-image` given without `init` starts from
    /// it, whatever a preset's `init`; one given with another `init` is
    /// refused (it would be ignored).
    pub fn layered(&self) -> Result<(StyleArgs, Options)> {
        let file = match &self.config {
            Some(path) => load_config(path)?.rebased(path.parent().unwrap_or(Path::new(""))),
            None => StyleArgs::default(),
        };
        let mut o = self
            .preset
            .or(file.preset)
            .map(Options::preset)
            .unwrap_or_default();
        o.apply(&file);
        o.apply(self);
        let a = file.under(self);
        if a.init_image.is_some() {
            match a.init {
                None => o.init = Some(InitName::Image),
                Some(InitName::Image) => {}
                Some(other) => {
                    return Err(Error::config(
                        "init-image",
                        format!(
                            "conflicts with `init` {}: the image would be ignored; \
                             give `init` image, or no `init-image`",
                            other.cli_value().unwrap_or_default()
                        ),
                    ))
                }
            }
        }
        Ok((a, o))
    }

    /// The input paths of this layer (content, styles, masks but `none`,
    /// init image, weights) made relative to `base` when they are relative:
    /// a file's paths are relative to its directory.
    pub fn rebased(mut self, base: &Path) -> StyleArgs {
        let rebase = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        self.content = self.content.as_ref().map(rebase);
        self.style = self.style.iter().map(rebase).collect();
        self.style_mask = self
            .style_mask
            .iter()
            .map(|p| {
                if p.as_os_str() == "none" {
                    p.clone()
                } else {
                    rebase(p)
                }
            })
            .collect();
        self.init_image = self.init_image.as_ref().map(rebase);
        self.weights = self.weights.as_ref().map(rebase);
        self
    }

    /// The options these layers give (preset < file < flags), unvalidated.
    pub fn options(&self) -> Result<Options> {
        Ok(self.layered()?.1)
    }

    /// Resolve into [`Settings`], validating every value.
    pub fn resolve(&self) -> Result<Settings> {
        let (a, o) = self.layered()?;
        let content = a
            .content
            .ok_or_else(|| Error::config("content", "a content image is required"))?;
        Settings::new(
            Files {
                content,
                styles: a.style,
                // `none` on the command line: a style without a mask.
                masks: a
                    .style_mask
                    .into_iter()
                    .map(|p| (p.as_os_str() != "none").then_some(p))
                    .collect(),
                init_image: a.init_image,
                config: a.config,
            },
            &o,
        )
    }
}
