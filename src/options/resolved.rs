//! The resolved job: a job's [`Options`] validated and combined with its
//! input [`Files`] into one [`Settings`], and the `--config` file reader.

use super::{InitName, Options, StyleArgs};
use crate::backends::Selection;
use neural_style_core::image_io;
use neural_style_core::objective::ObjectiveSpec;
use neural_style_core::run::OptimizerKind;
use neural_style_core::stopping::StopRule;
use neural_style_core::{Error, Result};
use std::path::{Path, PathBuf};

/// A resolved job: its input files and its validated [`Options`], with what
/// the options resolve to (the optimiser, the objective, the start and the
/// scales) computed once. Every option is read from `options`; nothing is
/// copied.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The input files; `masks` has one entry per style image.
    pub files: Files,
    /// The options, validated.
    pub options: Options,
    /// The optimiser and its configuration.
    pub optimizer: OptimizerKind,
    /// The stopping rule (`early-stop`); `None`: every iteration runs.
    pub stop_rule: Option<StopRule>,
    /// The objective.
    pub spec: ObjectiveSpec,
    /// The starting image (`init`, else `image` when an init image is given).
    pub init: InitName,
    /// `(longest side, iterations)` of each scale; one entry without
    /// multi-resolution.
    pub scales: Vec<(u32, usize)>,
}

impl Settings {
    /// The output's longest side (the last scale's).
    pub fn size(&self) -> u32 {
        self.scales.last().map_or(self.options.size, |s| s.0)
    }

    /// Iterations over all scales.
    pub fn total_iterations(&self) -> usize {
        self.scales.iter().map(|s| s.1).sum()
    }

    /// The backend these settings select.
    pub fn selection(&self) -> Selection {
        Selection {
            name: self.options.backend.clone(),
            device: self.options.device.clone(),
        }
    }

    /// The size a `style`-sized style image is used at next to a content of
    /// size `(cw, ch)`: `--style-size` on its longest side, else the content's
    /// pixel count times `--style-scale`.
    pub fn style_size(&self, style: (u32, u32), (cw, ch): (u32, u32)) -> (u32, u32) {
        match self.options.style_size {
            Some(side) => image_io::size_longest(style, side),
            None => {
                image_io::size_for_pixels(style, cw as f64 * ch as f64 * self.options.style_scale)
            }
        }
    }
}

/// The input files of a job (besides its options).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Files {
    /// The content image.
    pub content: PathBuf,
    /// The style images.
    pub styles: Vec<PathBuf>,
    /// One optional mask per style, or none at all.
    pub masks: Vec<Option<PathBuf>>,
    /// The initial image.
    pub init_image: Option<PathBuf>,
    /// The `--config` file the options were read from.
    pub config: Option<PathBuf>,
}

impl Settings {
    /// Validate `o` and combine it with the job's files.
    pub fn new(f: Files, o: &Options) -> Result<Settings> {
        o.validate()?;
        let optimizer = o.optimizer()?;
        let spec = o.objective()?;
        if f.styles.is_empty() && !spec.style_layers.is_empty() {
            return Err(Error::config(
                "style",
                "at least one style image is required",
            ));
        }
        let init = o.init.unwrap_or(if f.init_image.is_some() {
            InitName::Image
        } else {
            InitName::Content
        });
        if init == InitName::Image && f.init_image.is_none() {
            return Err(Error::config(
                "init-image",
                "`init` image needs `init-image` FILE",
            ));
        }
        let masks = match f.masks.len() {
            0 => vec![None; f.styles.len()],
            n if n == f.styles.len() => f.masks,
            n => {
                return Err(Error::config(
                    "style-mask",
                    format!(
                        "{n} masks for {} style images: give one per style, `none` for no mask",
                        f.styles.len()
                    ),
                ))
            }
        };
        let scales = o.scales()?;
        Ok(Settings {
            files: Files { masks, ..f },
            options: o.clone(),
            optimizer,
            stop_rule: o.early_stop.then(StopRule::default),
            spec,
            init,
            scales,
        })
    }
}

/// Read a TOML settings file (keys as the long flags, e.g. `style-weight = 50`).
pub fn load_config(path: &Path) -> Result<StyleArgs> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let args: StyleArgs = parse_toml("config", path, &text)?;
    if args.output.is_some() {
        return Err(Error::config(
            "config",
            format!(
                "{}: an output (`output = \"FILE\"`) belongs to batch jobs; give `output` on the command line",
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
    use crate::options::Preset;
    use neural_style_core::backend::Pooling;
    use neural_style_core::layers::LayerId;
    use neural_style_core::objective::Normalization;
    use neural_style_core::optim::{FirstStep, LbfgsConfig};

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
        assert_eq!(s.size(), 512);
        assert_eq!(s.options.iterations, 1000);
        assert_eq!(s.optimizer, OptimizerKind::Lbfgs(LbfgsConfig::default()));
        assert_eq!(s.init, InitName::Content);
    }

    #[test]
    fn keras_preset_and_flag_override() {
        let mut a = args("c.jpg");
        a.preset = Some(Preset::Keras);
        a.iterations = Some(7);
        let s = a.resolve().unwrap();
        assert_eq!(s.options.iterations, 7);
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
        assert_eq!((k.init, k.options.iterations), (InitName::Content, 100));
        // Ours stops when the picture is done; the presets reproduce a
        // recipe, every iteration of it (a flag turns the rule back on).
        assert_eq!(ours.stop_rule, Some(StopRule::default()));
        for p in Preset::ALL {
            assert_eq!(preset(p).stop_rule, None, "{p:?}");
        }
        let mut a = args("c.jpg");
        a.preset = Some(Preset::Jcjohnson);
        a.early_stop = Some(true);
        assert_eq!(a.resolve().unwrap().stop_rule, Some(StopRule::default()));
        a.early_stop = Some(false);
        a.preset = None;
        assert_eq!(a.resolve().unwrap().stop_rule, None);
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
        assert_eq!(
            (s.size(), s.scales.clone()),
            (200, vec![(100, 5), (200, 3)])
        );
        a.scale_iterations = Some(vec![5]);
        let e = a.resolve().unwrap_err().to_string();
        assert!(e.starts_with("scale-iterations"), "{e}");
        a.scale_iterations = None;
        a.multires = Some(true);
        assert!(a.resolve().unwrap_err().to_string().starts_with("multires"));

        let mut a = args("c.jpg");
        a.style = vec!["a.jpg".into(), "b.jpg".into()];
        a.style_mask = vec!["m.png".into(), "none".into()];
        a.original_colors = Some(true);
        let s = a.resolve().unwrap();
        assert_eq!(s.files.masks, vec![Some(PathBuf::from("m.png")), None]);
        assert!(s.options.original_colors && !s.options.color_match);
        a.style_mask = vec!["m.png".into()];
        assert!(a
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("style-mask"));
    }

    #[test]
    fn counts_that_would_wrap_are_refused_naming_their_flag() {
        // It wrapped to a total of 0 iterations.
        let mut a = args("c.jpg");
        a.scales = Some(vec![32, 32]);
        a.scale_iterations = Some(vec![usize::MAX, 1]);
        let e = a.resolve().unwrap_err().to_string();
        assert!(e.starts_with("scale-iterations"), "{e}");
        let mut a = args("c.jpg");
        a.multires = Some(true);
        a.iterations = Some(usize::MAX);
        let e = a.resolve().unwrap_err().to_string();
        assert!(e.starts_with("iterations"), "{e}");
        a.iterations = Some(usize::MAX / 3);
        assert_eq!(a.resolve().unwrap().total_iterations(), usize::MAX / 3 * 3);
    }

    #[test]
    fn an_init_image_starts_the_run_unless_another_init_is_asked_for() {
        // `init` noise with `init-image` silently ignored the image.
        let mut a = args("c.jpg");
        a.init = Some(InitName::Noise);
        a.init_image = Some("i.png".into());
        let e = a.resolve().unwrap_err().to_string();
        assert!(
            e.starts_with("init-image") && e.contains("`init` noise"),
            "{e}"
        );
        // A preset's `init` gives way to an explicit init image.
        let mut a = args("c.jpg");
        a.preset = Some(Preset::Gatys);
        a.init_image = Some("i.png".into());
        assert_eq!(a.resolve().unwrap().init, InitName::Image);
        a.init = Some(InitName::Image);
        assert_eq!(a.resolve().unwrap().init, InitName::Image);
    }

    #[test]
    fn a_config_files_paths_are_relative_to_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let cfg = dir.path().join("sub/c.toml");
        std::fs::write(
            &cfg,
            "style = [\"s.png\", \"/abs/t.png\"]\ninit-image = \"i.png\"\nstyle-mask = [\"m.png\", \"none\"]\n",
        )
        .unwrap();
        let a = StyleArgs {
            content: Some("c.jpg".into()),
            config: Some(cfg),
            ..Default::default()
        };
        let s = a.resolve().unwrap();
        let sub = dir.path().join("sub");
        assert_eq!(
            s.files.styles,
            vec![sub.join("s.png"), PathBuf::from("/abs/t.png")]
        );
        assert_eq!(s.files.init_image, Some(sub.join("i.png")));
        assert_eq!(s.files.masks, vec![Some(sub.join("m.png")), None]);
        // The command line's own paths stay relative to the working directory.
        assert_eq!(s.files.content, PathBuf::from("c.jpg"));
    }

    #[test]
    fn bad_values_name_their_flag() {
        let mut a = args("c.jpg");
        a.style_layers = Some("relu1_1,relu9_9".into());
        assert!(a
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("style-layers"));
        let mut a = args("c.jpg");
        a.style_layer_weights = Some(vec![1.0, 2.0]);
        assert!(a
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("style-layer-weights"));
        let mut a = args("c.jpg");
        a.tv_weight = Some(f64::NAN);
        assert!(a
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("tv-weight"));
        let mut a = args("c.jpg");
        a.init = Some(InitName::Image);
        assert!(a
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("init-image"));
    }
}
