//! Options: command-line flags, a TOML `--config` file and `--preset`s,
//! resolved into one [`Settings`] (flags override the file, the file
//! overrides the preset, the preset overrides the defaults).

use clap::{Args, ValueEnum};
use neural_style_core::backend::Pooling;
use neural_style_core::layers::{parse_list, LayerId};
use neural_style_core::objective::{Normalization, ObjectiveSpec};
use neural_style_core::optim::{AdamConfig, FirstStep, LbfgsConfig, LineSearch};
use neural_style_core::run::OptimizerKind;
use neural_style_core::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerName {
    Lbfgs,
    Adam,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineSearchName {
    None,
    Backtracking,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirstStepName {
    /// A typical pixel moves by a tenth of a level (measurable at any size).
    Pixel,
    /// Torch's min(1, 1/‖g‖₁) (below float32 resolution on large images).
    Torch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormalizationName {
    /// Means, Gram matrices divided by C·H·W (jcjohnson/neural-style).
    Jcjohnson,
    /// ½Σ content, unnormalised Gram matrices, 1/(4N²M²) style (Gatys et al., the Keras write-up).
    Gatys,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolingName {
    Max,
    Avg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitName {
    /// Start from the content image.
    Content,
    /// Start from seeded uniform noise.
    Noise,
    /// Start from jcjohnson's randn·0.001 (Caffe space: the mean colour, seeded).
    Randn,
    /// Start from `--init-image`.
    Image,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// jcjohnson/neural-style's defaults, its randn·0.001 start and Torch's first L-BFGS step.
    Jcjohnson,
    /// The paper's: its normalisation, average pooling, no TV, noise start, α/β = 1e-3.
    Gatys,
    /// The Keras write-up's: its normalisation and layers, content start, Adam lr 10, 100 iterations, α = β.
    Keras,
}

/// The options shared by the main job and `loss`. Every field is optional
/// so that flags, a config file and a preset can be layered.
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StyleArgs {
    /// Content image (the photo).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub content: Option<PathBuf>,
    /// Style image(s) (the paintings).
    #[arg(long, short = 's', value_name = "FILE", num_args = 1..)]
    #[serde(default)]
    pub style: Vec<PathBuf>,
    /// Blend weights of the style images, comma-separated (normalised to sum to 1).
    #[arg(long, value_delimiter = ',', value_name = "W,W,...")]
    pub style_blend_weights: Option<Vec<f64>>,
    /// Longest side of the output, in pixels [default: 512].
    #[arg(long, value_name = "PX")]
    pub size: Option<u32>,
    /// Style images are resized to the content's pixel count times this (an area factor) [default: 1].
    #[arg(long, value_name = "X")]
    pub style_scale: Option<f64>,
    /// Longest side of the style images (overrides --style-scale).
    #[arg(long, value_name = "PX")]
    pub style_size: Option<u32>,
    /// Iterations (evaluations of the loss and its gradient) [default: 1000].
    #[arg(long, short = 'n', value_name = "N")]
    pub iterations: Option<usize>,
    /// Optimiser [default: lbfgs].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerName>,
    /// Step size [default: 10 for adam, 1 for lbfgs].
    #[arg(long, value_name = "LR")]
    pub learning_rate: Option<f64>,
    /// L-BFGS history size [default: 100].
    #[arg(long, value_name = "M")]
    pub lbfgs_history: Option<usize>,
    /// L-BFGS line search [default: none, as Torch's optim.lbfgs].
    #[arg(long, value_enum, value_name = "KIND")]
    pub lbfgs_line_search: Option<LineSearchName>,
    /// L-BFGS first step [default: pixel].
    #[arg(long, value_enum, value_name = "RULE")]
    pub lbfgs_first_step: Option<FirstStepName>,
    /// Loss normalisation [default: jcjohnson].
    #[arg(long, value_enum, value_name = "KIND")]
    pub normalization: Option<NormalizationName>,
    /// Weight of the content loss [default: 5].
    #[arg(long, value_name = "W")]
    pub content_weight: Option<f64>,
    /// Weight of the style loss [default: 100].
    #[arg(long, value_name = "W")]
    pub style_weight: Option<f64>,
    /// Weight of the total-variation loss [default: 0.001].
    #[arg(long, value_name = "W")]
    pub tv_weight: Option<f64>,
    /// Content layers, comma-separated [default: relu4_2].
    #[arg(long, value_name = "LAYERS")]
    pub content_layers: Option<String>,
    /// Style layers, comma-separated [default: relu1_1,relu2_1,relu3_1,relu4_1,relu5_1].
    #[arg(long, value_name = "LAYERS")]
    pub style_layers: Option<String>,
    /// Per-layer content weights, comma-separated [default: all 1].
    #[arg(long, value_delimiter = ',', value_name = "W,W,...")]
    pub content_layer_weights: Option<Vec<f64>>,
    /// Per-layer style weights, comma-separated [default: all 1; 1/(number of layers) with --normalization gatys].
    #[arg(long, value_delimiter = ',', value_name = "W,W,...")]
    pub style_layer_weights: Option<Vec<f64>>,
    /// Pooling [default: max].
    #[arg(long, value_enum)]
    pub pooling: Option<PoolingName>,
    /// Starting image [default: content].
    #[arg(long, value_enum)]
    pub init: Option<InitName>,
    /// Starting image for --init image (resized to the content's size).
    #[arg(long, value_name = "FILE")]
    pub init_image: Option<PathBuf>,
    /// Random seed (noise initialisation) [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Compute backend (`neural-style backends` lists them) [default: candle].
    #[arg(long)]
    pub backend: Option<String>,
    /// Device of the backend (candle: cpu; cuda: gpu, cuda:N, or host to run its kernels on the CPU).
    #[arg(long)]
    pub device: Option<String>,
    /// CPU threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// VGG19 weights file [default: found or fetched automatically].
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// Spatial mask per style image, in the order of --style (white = that
    /// style applies there; any size, resized to the content); `none` for a
    /// style without a mask.
    #[arg(long, value_name = "FILE|none", num_args = 1..)]
    #[serde(default)]
    pub style_mask: Vec<PathBuf>,
    /// Keep the content's colours: the output's luminance with the content's chrominance (YCbCr).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub original_colors: Option<bool>,
    /// Give each style image the content's colour mean and covariance before taking its features.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub color_match: Option<bool>,
    /// Multi-resolution: the longest side at each scale, comma-separated (the last is the output's size; overrides --size).
    #[arg(long, value_delimiter = ',', value_name = "PX,PX,...")]
    pub scales: Option<Vec<u32>>,
    /// Multi-resolution with three scales: --size/2, --size/√2, --size.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub multires: Option<bool>,
    /// Iterations at each scale, comma-separated [default: --iterations at every scale].
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    pub scale_iterations: Option<Vec<usize>>,
    /// Output image of a batch job (`output = "..."` in a jobs file; the main job takes --output).
    #[arg(skip)]
    pub output: Option<PathBuf>,
    /// Settings file (TOML, keys as the long flags); flags override it.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Named settings; the config file and flags override it.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
}

/// Fully resolved options of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub content: PathBuf,
    pub styles: Vec<PathBuf>,
    pub blend: Option<Vec<f64>>,
    pub size: u32,
    pub style_scale: f64,
    pub style_size: Option<u32>,
    pub iterations: usize,
    pub optimizer: OptimizerKind,
    pub spec: ObjectiveSpec,
    pub init: InitName,
    pub init_image: Option<PathBuf>,
    pub seed: u64,
    pub backend: String,
    pub device: Option<String>,
    pub threads: Option<usize>,
    pub weights: Option<PathBuf>,
    /// The `--config` file these settings were read from, if any.
    pub config: Option<PathBuf>,
    /// One optional mask file per style image.
    pub masks: Vec<Option<PathBuf>>,
    pub original_colors: bool,
    pub color_match: bool,
    /// `(longest side, iterations)` of each scale; one entry without
    /// multi-resolution. The last size is `size`.
    pub scales: Vec<(u32, usize)>,
}

impl Settings {
    /// Iterations over all scales.
    pub fn total_iterations(&self) -> usize {
        self.scales.iter().map(|s| s.1).sum()
    }
}

macro_rules! overlay {
    ($base:ident, $top:ident; $($f:ident),*) => {
        $( if $top.$f.is_some() { $base.$f = $top.$f.clone(); } )*
    };
}

impl StyleArgs {
    /// `top` overrides `self` field by field.
    fn overlay(mut self, top: &StyleArgs) -> StyleArgs {
        overlay!(self, top; content, style_blend_weights, size, style_scale, style_size,
            iterations, optimizer, learning_rate, lbfgs_history, lbfgs_line_search, lbfgs_first_step,
            normalization, content_weight, style_weight,
            tv_weight, content_layers, style_layers, content_layer_weights, style_layer_weights,
            pooling, init, init_image, seed, backend, device, threads, weights, config, preset,
            original_colors, color_match, scales, multires, scale_iterations, output);
        if !top.style.is_empty() {
            self.style = top.style.clone();
        }
        if !top.style_mask.is_empty() {
            self.style_mask = top.style_mask.clone();
        }
        self
    }

    /// `top` overrides `self` field by field (the layering of batch jobs over
    /// their `[defaults]`).
    pub fn under(self, top: &StyleArgs) -> StyleArgs {
        self.overlay(top)
    }

    fn preset(p: Preset) -> StyleArgs {
        match p {
            // jcjohnson/neural-style's neural_style.lua: its defaults (ours
            // too), `-init random` = randn·0.001, Torch's optim.lbfgs.
            Preset::Jcjohnson => StyleArgs {
                init: Some(InitName::Randn),
                lbfgs_first_step: Some(FirstStepName::Torch),
                ..Default::default()
            },
            // Gatys, Ecker & Bethge, CVPR 2016: eqs. 1–5 (layer weights
            // 1/5), average pooling, white-noise start, L-BFGS, conv4_2 and
            // conv1_1…conv5_1 (Caffe's ReLUs are in place: our relu names),
            // α/β = 1e-3 (Fig. 3 B–D, α the content weight).
            Preset::Gatys => StyleArgs {
                normalization: Some(NormalizationName::Gatys),
                pooling: Some(PoolingName::Avg),
                tv_weight: Some(0.0),
                init: Some(InitName::Noise),
                content_weight: Some(1.0),
                style_weight: Some(1e3),
                ..Default::default()
            },
            // The project's Keras write-up: its normalisation, Keras layers
            // (post-ReLU), content start, Adam lr 10, 100 iterations, equal
            // α and β (its first experiment), no TV.
            Preset::Keras => StyleArgs {
                normalization: Some(NormalizationName::Gatys),
                optimizer: Some(OptimizerName::Adam),
                learning_rate: Some(10.0),
                iterations: Some(100),
                init: Some(InitName::Content),
                content_layers: Some("block5_conv2".into()),
                style_layers: Some(
                    "block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1".into(),
                ),
                content_weight: Some(1.0),
                style_weight: Some(1.0),
                tv_weight: Some(0.0),
                ..Default::default()
            },
        }
    }

    /// Layer the config file and preset under these flags.
    pub fn layered(&self) -> Result<StyleArgs> {
        let file = match &self.config {
            Some(path) => load_config(path)?,
            None => StyleArgs::default(),
        };
        let preset = self.preset.or(file.preset);
        let base = preset.map(StyleArgs::preset).unwrap_or_default();
        Ok(base.overlay(&file).overlay(self))
    }

    /// Resolve into [`Settings`], validating every value.
    pub fn resolve(&self) -> Result<Settings> {
        let a = self.layered()?;
        let content = a
            .content
            .clone()
            .ok_or_else(|| Error::config("--content", "a content image is required"))?;
        let optimizer_name = a.optimizer.unwrap_or(OptimizerName::Lbfgs);
        let lr = a.learning_rate;
        if let Some(lr) = lr {
            positive("--learning-rate", lr)?;
        }
        let optimizer = match optimizer_name {
            OptimizerName::Lbfgs => OptimizerKind::Lbfgs(LbfgsConfig {
                history: a.lbfgs_history.unwrap_or(100),
                lr: lr.unwrap_or(1.0),
                line_search: match a.lbfgs_line_search {
                    None | Some(LineSearchName::None) => LineSearch::None,
                    Some(LineSearchName::Backtracking) => LineSearch::Backtracking,
                },
                first_step: match a.lbfgs_first_step {
                    None | Some(FirstStepName::Pixel) => FirstStep::Pixel,
                    Some(FirstStepName::Torch) => FirstStep::Torch,
                },
            }),
            OptimizerName::Adam => OptimizerKind::Adam(AdamConfig {
                lr: lr.unwrap_or(10.0),
                ..Default::default()
            }),
        };
        if a.lbfgs_history == Some(0) {
            return Err(Error::config("--lbfgs-history", "must be at least 1"));
        }
        let defaults = ObjectiveSpec::default();
        let normalization = match a.normalization {
            None | Some(NormalizationName::Jcjohnson) => Normalization::Jcjohnson,
            Some(NormalizationName::Gatys) => Normalization::Gatys,
        };
        let content_layers = layer_weights(
            "--content-layers",
            "--content-layer-weights",
            a.content_layers.as_deref(),
            a.content_layer_weights.as_deref(),
            &defaults.content_layers,
            false,
        )?;
        // Gatys et al.'s w_l = 1/(number of style layers) by default.
        let style_layers = layer_weights(
            "--style-layers",
            "--style-layer-weights",
            a.style_layers.as_deref(),
            a.style_layer_weights.as_deref(),
            &defaults.style_layers,
            normalization == Normalization::Gatys,
        )?;
        let spec = ObjectiveSpec {
            content_layers,
            style_layers,
            content_weight: non_negative("--content-weight", a.content_weight, 5.0)?,
            style_weight: non_negative("--style-weight", a.style_weight, 100.0)?,
            tv_weight: non_negative("--tv-weight", a.tv_weight, 1e-3)?,
            pooling: match a.pooling.unwrap_or(PoolingName::Max) {
                PoolingName::Max => Pooling::Max,
                PoolingName::Avg => Pooling::Avg,
            },
            normalization,
        };
        let size = a.size.unwrap_or(512);
        if size == 0 {
            return Err(Error::config("--size", "must be at least 1 pixel"));
        }
        let style_scale = a.style_scale.unwrap_or(1.0);
        positive("--style-scale", style_scale)?;
        if a.style_size == Some(0) {
            return Err(Error::config("--style-size", "must be at least 1 pixel"));
        }
        if a.style.is_empty() && !spec.style_layers.is_empty() {
            return Err(Error::config(
                "--style",
                "at least one style image is required",
            ));
        }
        let init = a.init.unwrap_or(if a.init_image.is_some() {
            InitName::Image
        } else {
            InitName::Content
        });
        if init == InitName::Image && a.init_image.is_none() {
            return Err(Error::config(
                "--init-image",
                "--init image needs --init-image FILE",
            ));
        }
        let iterations = a.iterations.unwrap_or(1000);
        if iterations == 0 {
            return Err(Error::config("--iterations", "must be at least 1"));
        }
        let masks = match a.style_mask.len() {
            0 => vec![None; a.style.len()],
            n if n == a.style.len() => a
                .style_mask
                .iter()
                .map(|p| (p.as_os_str() != "none").then(|| p.clone()))
                .collect(),
            n => {
                return Err(Error::config(
                    "--style-mask",
                    format!(
                        "{n} masks for {} style images: give one per style, `none` for no mask",
                        a.style.len()
                    ),
                ))
            }
        };
        let scales = scales(&a, size, iterations)?;
        let size = scales.last().map(|s| s.0).unwrap_or(size);
        Ok(Settings {
            content,
            styles: a.style.clone(),
            blend: a.style_blend_weights.clone(),
            size,
            style_scale,
            style_size: a.style_size,
            iterations,
            optimizer,
            spec,
            init,
            init_image: a.init_image.clone(),
            seed: a.seed.unwrap_or(0),
            backend: a
                .backend
                .clone()
                .unwrap_or_else(|| crate::backends::DEFAULT.into()),
            device: a.device.clone(),
            threads: a.threads,
            weights: a.weights.clone(),
            config: a.config.clone(),
            masks,
            original_colors: a.original_colors.unwrap_or(false),
            color_match: a.color_match.unwrap_or(false),
            scales,
        })
    }
}

/// The multi-resolution schedule: `--scales`, or `--multires` (three scales
/// in a geometric progression of ratio √2 ending at `--size`), or just
/// `--size`; iterations from `--scale-iterations` or `--iterations` at each.
fn scales(a: &StyleArgs, size: u32, iterations: usize) -> Result<Vec<(u32, usize)>> {
    let sizes: Vec<u32> = match (&a.scales, a.multires.unwrap_or(false)) {
        (Some(_), true) => {
            return Err(Error::config(
                "--multires",
                "give either --multires or --scales, not both",
            ))
        }
        (Some(list), false) => {
            if list.is_empty() || list.contains(&0) {
                return Err(Error::config(
                    "--scales",
                    "sizes must be at least 1 pixel, e.g. --scales 256,362,512",
                ));
            }
            list.clone()
        }
        (None, true) => [0.5, std::f64::consts::FRAC_1_SQRT_2, 1.0]
            .iter()
            .map(|f| ((size as f64 * f).round() as u32).max(1))
            .collect(),
        (None, false) => vec![size],
    };
    let its = match &a.scale_iterations {
        None => vec![iterations; sizes.len()],
        Some(list) if list.len() != sizes.len() => {
            return Err(Error::config(
                "--scale-iterations",
                format!("{} counts for {} scales", list.len(), sizes.len()),
            ))
        }
        Some(list) if list.contains(&0) => {
            return Err(Error::config("--scale-iterations", "must be at least 1"))
        }
        Some(list) => list.clone(),
    };
    Ok(sizes.into_iter().zip(its).collect())
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

fn non_negative(flag: &str, v: Option<f64>, default: f64) -> Result<f64> {
    let v = v.unwrap_or(default);
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
    layers: Option<&str>,
    weights: Option<&[f64]>,
    default: &[(LayerId, f64)],
    mean_by_default: bool,
) -> Result<Vec<(LayerId, f64)>> {
    let ids: Vec<LayerId> = match layers {
        None => default.iter().map(|l| l.0).collect(),
        Some(s) if s.trim().is_empty() => Vec::new(),
        Some(s) => parse_list(s).map_err(|e| Error::config(layers_flag, e.to_string()))?,
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

/// Read a TOML settings file (keys as the long flags, e.g. `style-weight = 50`).
pub fn load_config(path: &Path) -> Result<StyleArgs> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let args: StyleArgs = parse_toml("--config", path, &text)?;
    if args.output.is_some() {
        return Err(Error::config(
            "--config",
            format!(
                "{}: `output` belongs to batch jobs; give --output on the command line",
                path.display()
            ),
        ));
    }
    Ok(args)
}

/// Parse TOML; an error names `flag`, the file and the line.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    flag: &str,
    path: &Path,
    text: &str,
) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_string();
        let line = e
            .span()
            .map(|s| text[..s.start].matches('\n').count() + 1)
            .map(|l| format!("line {l}: "))
            .unwrap_or_default();
        Error::config(flag, format!("{}: {line}{msg}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(content: &str) -> StyleArgs {
        StyleArgs {
            content: Some(content.into()),
            style: vec!["s.jpg".into()],
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_jcjohnsons() {
        let s = args("c.jpg").resolve().unwrap();
        assert_eq!(s.spec, ObjectiveSpec::default());
        assert_eq!(s.size, 512);
        assert_eq!(s.iterations, 1000);
        assert_eq!(s.optimizer, OptimizerKind::Lbfgs(LbfgsConfig::default()));
        assert_eq!(s.init, InitName::Content);
    }

    #[test]
    fn keras_preset_and_flag_override() {
        let mut a = args("c.jpg");
        a.preset = Some(Preset::Keras);
        a.iterations = Some(7);
        let s = a.resolve().unwrap();
        assert_eq!(s.iterations, 7);
        assert!(matches!(s.optimizer, OptimizerKind::Adam(c) if c.lr == 10.0));
        assert_eq!(
            s.spec.content_layers[0].0,
            LayerId::parse("relu5_2").unwrap()
        );
        assert_eq!(s.spec.style_layers.len(), 5);
    }

    #[test]
    fn presets_follow_their_sources() {
        let preset = |p| {
            let mut a = args("c.jpg");
            a.preset = Some(p);
            a.resolve().unwrap()
        };
        let lbfgs = |s: &Settings| match s.optimizer {
            OptimizerKind::Lbfgs(c) => c.first_step,
            _ => panic!("not L-BFGS"),
        };
        // Ours: content start, the pixel first step, jcjohnson's objective.
        let ours = args("c.jpg").resolve().unwrap();
        assert_eq!(
            (ours.init, lbfgs(&ours), ours.spec.normalization),
            (
                InitName::Content,
                FirstStep::Pixel,
                Normalization::Jcjohnson
            )
        );
        // jcjohnson: the same objective, its randn·0.001 start, Torch's step.
        let j = preset(Preset::Jcjohnson);
        assert_eq!(j.spec, ObjectiveSpec::default());
        assert_eq!((j.init, lbfgs(&j)), (InitName::Randn, FirstStep::Torch));
        // gatys: the paper's normalisation, w_l = 1/5, α/β = 1e-3, avg pooling, noise.
        let g = preset(Preset::Gatys);
        assert_eq!(g.spec.normalization, Normalization::Gatys);
        assert!(g.spec.style_layers.iter().all(|l| l.1 == 0.2));
        assert_eq!(g.spec.content_weight / g.spec.style_weight, 1e-3);
        assert_eq!((g.spec.pooling, g.spec.tv_weight), (Pooling::Avg, 0.0));
        assert_eq!(g.init, InitName::Noise);
        // keras: the write-up's normalisation and layers, α = β, no TV, content start.
        let k = preset(Preset::Keras);
        assert_eq!(k.spec.normalization, Normalization::Gatys);
        assert_eq!(
            (k.spec.content_weight, k.spec.style_weight, k.spec.tv_weight),
            (1.0, 1.0, 0.0)
        );
        assert!(k.spec.style_layers.iter().all(|l| l.1 == 0.2));
        assert_eq!((k.init, k.iterations), (InitName::Content, 100));
        // Explicit layer weights win over the 1/(number of layers) default.
        let mut a = args("c.jpg");
        a.preset = Some(Preset::Gatys);
        a.style_layer_weights = Some(vec![1.0; 5]);
        assert!(a
            .resolve()
            .unwrap()
            .spec
            .style_layers
            .iter()
            .all(|l| l.1 == 1.0));
    }

    #[test]
    fn config_file_sits_between_preset_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            "preset = \"gatys\"\nstyle-weight = 50\ntv-weight = 0.5\n",
        )
        .unwrap();
        let mut a = args("c.jpg");
        a.config = Some(cfg.clone());
        a.tv_weight = Some(0.25);
        let s = a.resolve().unwrap();
        assert_eq!(s.spec.style_weight, 50.0);
        assert_eq!(s.spec.tv_weight, 0.25);
        assert_eq!(s.spec.pooling, Pooling::Avg);

        std::fs::write(&cfg, "size = 256\nstyle-wieght = 3\n").unwrap();
        let e = a.resolve().unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("style-wieght"), "{e}");
    }

    #[test]
    fn scales_masks_and_colours() {
        let mut a = args("c.jpg");
        a.multires = Some(true);
        a.size = Some(512);
        a.iterations = Some(10);
        let s = a.resolve().unwrap();
        assert_eq!(s.scales, vec![(256, 10), (362, 10), (512, 10)]);
        assert_eq!(s.total_iterations(), 30);
        let mut a = args("c.jpg");
        a.scales = Some(vec![100, 200]);
        a.scale_iterations = Some(vec![5, 3]);
        let s = a.resolve().unwrap();
        assert_eq!((s.size, s.scales.clone()), (200, vec![(100, 5), (200, 3)]));
        a.scale_iterations = Some(vec![5]);
        let e = a.resolve().unwrap_err().to_string();
        assert!(e.starts_with("--scale-iterations"), "{e}");
        a.scale_iterations = None;
        a.multires = Some(true);
        assert!(a
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("--multires"));

        let mut a = args("c.jpg");
        a.style = vec!["a.jpg".into(), "b.jpg".into()];
        a.style_mask = vec!["m.png".into(), "none".into()];
        a.original_colors = Some(true);
        let s = a.resolve().unwrap();
        assert_eq!(s.masks, vec![Some(PathBuf::from("m.png")), None]);
        assert!(s.original_colors && !s.color_match);
        a.style_mask = vec!["m.png".into()];
        assert!(a
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("--style-mask"));
    }

    #[test]
    fn bad_values_name_their_flag() {
        let mut a = args("c.jpg");
        a.style_layers = Some("relu1_1,relu9_9".into());
        assert!(a
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("--style-layers"));
        let mut a = args("c.jpg");
        a.style_layer_weights = Some(vec![1.0, 2.0]);
        assert!(a
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("--style-layer-weights"));
        let mut a = args("c.jpg");
        a.tv_weight = Some(f64::NAN);
        assert!(a
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("--tv-weight"));
        let mut a = args("c.jpg");
        a.init = Some(InitName::Image);
        assert!(a
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("--init-image"));
    }
}
