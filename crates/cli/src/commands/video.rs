//! `neural-style video`: a clip (or a directory of numbered frames) styled
//! frame by frame with Ruder et al.'s temporal term (docs/DESIGN.md,
//! "Video"): each frame after the first starts from the previous stylised
//! frame warped along the optical flow (disoccluded pixels from the content
//! frame) and is held to the earlier stylised frames warped into it,
//! weighted by their certainty, closest first.
//!
//! Finished frames are written atomically as they finish, into the frames
//! directory; a rerun resumes at the first missing frame; a signal keeps
//! every finished frame and the interrupted one's best image
//! (`interrupted_NNNNNN.png`). When every frame is done they are encoded
//! with ffmpeg at the input's frame rate, with its audio.

use crate::{flags, signals};
use clap::Args;
use neural_style::backends::{self, WithBackend};
use neural_style::options::{Preset, Settings, StyleArgs};
use neural_style::run::preflight::{self, Input};
use neural_style::run::written::{self, VideoWrites, Written};
use neural_style::run::{finish, initial_image, prepare_written, Images};
use neural_style_core::backend::Backend;
use neural_style_core::image_io::Picture;
use neural_style_core::mask::Mask;
use neural_style_core::objective::{style_grams, Loss, Objective, StyleTerm};
use neural_style_core::pixel::CaffeImage;
use neural_style_core::run::{run, RunOptions, Silent, StopReason};
use neural_style_core::temporal::{closest_first, Temporal, TemporalFrame};
use neural_style_core::vgg::Vgg;
use neural_style_core::{Error, Result};
use neural_style_video::{ffmpeg, flow, warp};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Args, Debug)]
#[command(
    mut_arg("content", |a| a
        .value_name("CLIP|DIR")
        .help("The clip (anything ffmpeg reads: .mp4, .mkv, .mov…), or a directory of numbered frames")),
    // One size per frame: refused by `video`, so not offered.
    mut_arg("scales", |a| a.hide(true)),
    mut_arg("multires", |a| a.hide(true)),
    mut_arg("scale_iterations", |a| a.hide(true)),
)]
pub(crate) struct VideoArgs {
    #[command(flatten)]
    style: StyleArgs,
    /// The styled video (.mp4, .mkv or .mov; the input's frame rate and audio are kept),
    /// or a directory: numbered frames only, no video.
    #[arg(long, short = 'o', value_name = "FILE|DIR")]
    output: PathBuf,
    /// Where finished frames are kept (with video.json, which names the clip and the
    /// settings); a rerun with the same clip and settings resumes at the first missing frame
    /// [default: <output stem>_frames next to the output; the output itself when it is a
    /// directory].
    #[arg(long, value_name = "DIR")]
    frames_dir: Option<PathBuf>,
    /// Frame rate of the output when --content is a directory of frames.
    #[arg(long, value_name = "RATE", default_value = "25")]
    fps: String,
    /// Weight of the temporal consistency term (Ruder et al.: 1e3).
    #[arg(long, value_name = "W", default_value_t = 1e3)]
    temporal_weight: f64,
    /// The earlier frames each frame is held to, counted back from it, comma-separated
    /// (the long-term loss; 1 alone: the short-term loss only).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "J,J,...",
        default_value = "1,2,4"
    )]
    long_term: Vec<usize>,
    /// Iterations on the first frame [default: --iterations; 2000 with --preset ruder
    /// when --iterations is not given].
    #[arg(long, value_name = "N")]
    first_frame_iterations: Option<usize>,
    /// Style only the first N frames.
    #[arg(long, value_name = "N")]
    max_frames: Option<usize>,
    /// Write the flicker figures (warping errors, Lai et al. 2018) and timings as JSON.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Also style every frame on its own (same settings and iterations, no temporal
    /// term; into <frames dir>/baseline, each right after the video's frame of the same
    /// number) and report its warping error, style loss and time: the ceiling.
    #[arg(long)]
    baseline: bool,
    /// Start over: delete the frames an earlier run left in the frames directory
    /// (frame_NNNNNN.png, interrupted_NNNNNN.png, baseline/frame_NNNNNN.png) instead of
    /// resuming. Without it a rerun resumes only the same clip with the same settings
    /// (as its video.json says) and refuses frames made otherwise.
    #[arg(long)]
    restart: bool,
    /// No messages (errors still go to stderr).
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Where the frames go and whether a video is encoded.
struct Plan {
    frames_dir: PathBuf,
    video: Option<PathBuf>,
}

const VIDEO_EXTENSIONS: [&str; 3] = ["mp4", "mkv", "mov"];

fn plan(a: &VideoArgs) -> Result<Plan> {
    let ext = a
        .output
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    if a.output.is_dir() || ext.is_none() {
        return Ok(Plan {
            frames_dir: a.frames_dir.clone().unwrap_or_else(|| a.output.clone()),
            video: None,
        });
    }
    let ext = ext.unwrap_or_default();
    if !VIDEO_EXTENSIONS.contains(&ext.as_str()) {
        return Err(Error::config(
            "output",
            format!(
                "{}: `.{ext}` is not a video container this command writes: use {}, or a directory for frames",
                a.output.display(),
                VIDEO_EXTENSIONS.map(|e| format!(".{e}")).join(", ")
            ),
        ));
    }
    let frames_dir = a.frames_dir.clone().unwrap_or_else(|| {
        let stem = a.output.file_stem().unwrap_or_default().to_string_lossy();
        a.output.with_file_name(format!("{stem}_frames"))
    });
    Ok(Plan {
        frames_dir,
        video: Some(a.output.clone()),
    })
}

/// What the video job writes (`neural_style::run::written::VideoWrites`),
/// refusing a frames directory that is the input frames' own.
fn declared(a: &VideoArgs, s: &Settings, plan: &Plan) -> Result<Written> {
    if s.files.content.is_dir()
        && preflight::canonical(&s.files.content) == preflight::canonical(&plan.frames_dir)
    {
        return Err(Error::config(
            "frames-dir",
            format!(
                "{} is also `content`: the styled frames need a directory of their own",
                plan.frames_dir.display()
            ),
        ));
    }
    Ok(VideoWrites {
        frames_dir: plan.frames_dir.clone(),
        video: plan.video.clone(),
        report: a.report.clone(),
        baseline: a.baseline,
    }
    .declared())
}

/// The files the content is read from: the clip, or the numbered frames of
/// its directory (listed, not decoded).
fn content_inputs(content: &Path) -> Result<Vec<Input>> {
    if content.is_dir() {
        Ok(ffmpeg::numbered_frames(content)?
            .into_iter()
            .map(|f| Input::new("content", f))
            .collect())
    } else {
        Ok(vec![Input::new("content", content)])
    }
}

/// The manifest of a frames directory (`written::video_manifest`): the clip
/// and the settings its frames were made with. A rerun resumes only when
/// both are the same; otherwise it is refused before any work (or, with
/// `--restart`, the old frames are deleted).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Manifest {
    version: u32,
    /// The clip's size in bytes and sha256 (`ffmpeg::identify`).
    clip_bytes: u64,
    clip_sha256: String,
    /// Every setting that shapes a frame: the job's (the checkpoints'
    /// fingerprint, without the content) and the video's own.
    settings: String,
}

const MANIFEST_VERSION: u32 = 1;

impl Manifest {
    fn new(s: &Settings, video: &VideoSettings) -> Result<Manifest> {
        let (clip_bytes, clip_sha256) = ffmpeg::identify(&s.files.content)?;
        let job = crate::batch::checkpoint::fingerprint_with(s, None)?;
        let text = format!(
            "neural-style video v{MANIFEST_VERSION}\n{job}\ntemporal weight {:e}\n\
             long term {:?}\nfirst-frame iterations {}\n",
            video.temporal_weight, video.long_term, video.first_iterations
        );
        Ok(Manifest {
            version: MANIFEST_VERSION,
            clip_bytes,
            clip_sha256,
            settings: neural_style_weights::sha256_hex(text.as_bytes()),
        })
    }
}

/// The video's own settings that shape its frames (in the manifest).
struct VideoSettings {
    temporal_weight: f64,
    long_term: Vec<usize>,
    first_iterations: usize,
}

/// What an earlier run left in the frames directory `dir`: its frames,
/// interrupted frames and baseline frames (the registry's names, temporary
/// files aside; the manifest aside).
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let all = VideoWrites {
        frames_dir: dir.to_path_buf(),
        baseline: true,
        ..VideoWrites::default()
    }
    .declared();
    let manifest = written::video_manifest(dir);
    let mut found: Vec<PathBuf> = [dir.to_path_buf(), written::baseline_dir(dir)]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let temp = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(neural_style_core::image_io::temp_target)
                .is_some();
            p.is_file() && !temp && *p != manifest && all.covers(dir, p)
        })
        .collect();
    found.sort();
    found
}

/// Checks that the frames in the frames directory `dir` were made from
/// this clip with these settings (its manifest says `want`), or that there
/// are none, or that `restart` deletes them. Frames made otherwise, or by
/// no known run, are refused, naming the directory and the ways on.
fn check_manifest(dir: &Path, want: &Manifest, restart: bool) -> Result<()> {
    let path = written::video_manifest(dir);
    let old = leftovers(dir);
    let Some(first) = old.first() else {
        return Ok(());
    };
    let why = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "holds frames ({}) but no {} saying which clip and settings made them",
            first.display(),
            path.display()
        ),
        Err(e) => return Err(Error::io(&path, e)),
        Ok(bytes) => match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(m) if &m == want => return Ok(()),
            Ok(m) if (m.clip_bytes, &m.clip_sha256) != (want.clip_bytes, &want.clip_sha256) => {
                let short = |h: &str| h.chars().take(12).collect::<String>();
                format!(
                    "holds the frames of another clip ({} bytes, sha256 {}…; `content` is \
                     {} bytes, sha256 {}…)",
                    m.clip_bytes,
                    short(&m.clip_sha256),
                    want.clip_bytes,
                    short(&want.clip_sha256)
                )
            }
            Ok(_) => "holds frames made with other settings".to_string(),
            Err(e) => format!("has a manifest this version cannot read ({e})"),
        },
    };
    if restart {
        return Ok(());
    }
    Err(Error::config(
        "frames-dir",
        format!(
            "{} {why}: a rerun resumes only the same clip with the same settings and never \
             writes over other frames; choose another `frames-dir`, or add --restart to \
             delete them and start over",
            dir.display()
        ),
    ))
}

/// A decoded clip: its frame rate, whether it has audio, its frames.
type Clip = (String, bool, Vec<Picture>);

/// The clip's frames at the working size, its frame rate and whether it has
/// audio (to copy). The whole clip is decoded before any styling, so a bad
/// clip is refused before any work.
fn read_clip(
    path: &Path,
    size: u32,
    fps: &str,
    max: Option<usize>,
) -> Result<(String, bool, Vec<Picture>)> {
    let keep = max.unwrap_or(usize::MAX);
    if path.is_dir() {
        let files = ffmpeg::numbered_frames(path)?;
        let mut frames = Vec::new();
        let mut first: Option<(u32, u32)> = None;
        for f in files.iter().take(keep) {
            let p = Picture::load(f)?;
            match first {
                None => first = Some((p.width, p.height)),
                Some(d) if d != (p.width, p.height) => {
                    return Err(Error::image(
                        f,
                        format!(
                            "is {}×{} but the first frame is {}×{}",
                            p.width, p.height, d.0, d.1
                        ),
                    ))
                }
                _ => {}
            }
            frames.push(p.resize_longest(size));
        }
        if frames.len() < 2 {
            return Err(Error::image(path, "a video needs at least 2 frames"));
        }
        return Ok((fps.to_string(), false, frames));
    }
    let p = ffmpeg::probe(path)?;
    let (w, h) = neural_style_core::image_io::size_longest((p.width, p.height), size);
    let mut frames = Vec::new();
    ffmpeg::decode(path, &p, &mut |i, pic| {
        if i < keep {
            frames.push(pic.resize_to(w, h));
        }
        Ok(())
    })?;
    if frames.len() < 2 {
        return Err(Error::config(
            "max-frames",
            "a video needs at least 2 frames",
        ));
    }
    Ok((p.fps, p.audio, frames))
}

pub(crate) fn video(a: &VideoArgs) -> Result<ExitCode> {
    let s = a.style.resolve()?;
    if s.scales.len() > 1 {
        return Err(Error::config(
            "scales",
            "`video` styles each frame at one size: leave out `scales`",
        ));
    }
    if !(a.temporal_weight.is_finite() && a.temporal_weight >= 0.0) {
        return Err(Error::config(
            "temporal-weight",
            format!("must be a finite number ≥ 0, not {}", a.temporal_weight),
        ));
    }
    let mut long_term = a.long_term.clone();
    long_term.sort_unstable();
    long_term.dedup();
    if long_term.first() != Some(&1) {
        return Err(Error::config(
            "long-term",
            "must include 1 (the previous frame, which also starts each frame)",
        ));
    }
    if a.first_frame_iterations == Some(0) || a.max_frames.is_some_and(|m| m < 2) {
        return Err(Error::config(
            if a.first_frame_iterations == Some(0) {
                "first-frame-iterations"
            } else {
                "max-frames"
            },
            "too small: at least 1 iteration and 2 frames",
        ));
    }
    let first_iterations = a.first_frame_iterations.unwrap_or(
        if a.style.preset == Some(Preset::Ruder) && a.style.iterations.is_none() {
            2000
        } else {
            s.options.iterations
        },
    );
    // Refused before anything is read or written.
    flow::require()?;
    let plan = plan(a)?;
    let written = declared(a, &s, &plan)?;
    let mut log = flags::logger(a.quiet);
    // One preflight (the registry's, by `prepare_written`) before the clip
    // is decoded; the decoded frames come back through `clip`.
    let video_settings = VideoSettings {
        temporal_weight: a.temporal_weight,
        long_term: long_term.clone(),
        first_iterations,
    };
    let clip: Arc<Mutex<Option<Clip>>> = Arc::default();
    let manifest: Arc<Mutex<Option<Manifest>>> = Arc::default();
    let decode = {
        let (clip, manifest, settings) = (clip.clone(), manifest.clone(), s.clone());
        let (dir, restart) = (plan.frames_dir.clone(), a.restart);
        let (fps, max) = (a.fps.clone(), a.max_frames);
        move || {
            // The frames already there must be this clip's with these
            // settings (refused before anything is decoded).
            let m = Manifest::new(&settings, &video_settings)?;
            check_manifest(&dir, &m, restart)?;
            *manifest.lock().unwrap_or_else(|e| e.into_inner()) = Some(m);
            let c = read_clip(&settings.files.content, settings.size(), &fps, max)?;
            let first = c.2[0].clone();
            *clip.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
            Ok(first)
        }
    };
    let content = content_inputs(&s.files.content)?;
    let p = prepare_written(
        s,
        Images::Clip {
            content,
            decode: Box::new(decode),
        },
        &written,
        None,
        &mut log,
    )?;
    let (fps, audio, frames) = clip
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .expect("prepare_written decodes the clip");
    let manifest = manifest
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .expect("prepare_written checks the manifest");
    if a.restart {
        let old = leftovers(&plan.frames_dir);
        if !old.is_empty() {
            log(&format!(
                "--restart: deleting {} frames in {}",
                old.len(),
                plan.frames_dir.display()
            ));
        }
        for f in old {
            std::fs::remove_file(&f).map_err(|e| Error::io(&f, e))?;
        }
    }
    std::fs::create_dir_all(&plan.frames_dir).map_err(|e| Error::io(&plan.frames_dir, e))?;
    let text = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
    neural_style_core::image_io::write_file_atomic(
        &written::video_manifest(&plan.frames_dir),
        text.as_bytes(),
        0o666,
    )?;
    let start = (0..frames.len())
        .find(|t| !written::video_frame(&plan.frames_dir, *t).is_file())
        .unwrap_or(frames.len());
    if start > 0 {
        log(&format!(
            "resuming at frame {} of {}: {start} finished in {}",
            start + 1,
            frames.len(),
            plan.frames_dir.display()
        ));
    }
    signals::install(a.quiet, "every finished frame is kept");
    let outcome = backends::dispatch(
        &p.settings.selection(),
        VideoRun {
            settings: &p.settings,
            weights: &p.weights,
            style_inputs: &p.inputs,
            first_init: &p.init,
            frames: &frames,
            frames_dir: &plan.frames_dir,
            start,
            first_iterations,
            temporal_weight: a.temporal_weight,
            long_term: &long_term,
            baseline: a.baseline,
            report: a.report.is_some(),
            interrupt: signals::flag(),
            log: &mut log,
        },
    )?;
    if outcome.interrupted {
        return Ok(signals::exit_code());
    }
    if let Some(v) = &plan.video {
        let audio_from = (audio && !p.settings.files.content.is_dir())
            .then_some(p.settings.files.content.as_path());
        ffmpeg::encode(&plan.frames_dir, &fps, audio_from, v)?;
        log(&format!("wrote {}", v.display()));
    } else {
        log(&format!(
            "wrote {} frames in {}",
            frames.len(),
            plan.frames_dir.display()
        ));
    }
    let flicker = flicker(&frames, &plan.frames_dir, a.baseline)?;
    if let Some(r) = &a.report {
        let json = serde_json::json!({
            "frames": frames.len(),
            "width": frames[0].width,
            "height": frames[0].height,
            "warping_error": {
                "output": flicker.output,
                "input": flicker.input,
                "baseline": flicker.baseline,
            },
            "style_loss": {
                "output": mean(&outcome.style_output),
                "baseline": (!outcome.style_baseline.is_empty()).then(|| mean(&outcome.style_baseline)),
            },
            "seconds_per_frame": {
                "first": first_frame(&outcome.seconds),
                "after_first": after_first(&outcome.seconds),
                "flow_and_warping_after_first": after_first(&outcome.prep_seconds),
                "baseline_first": first_frame(&outcome.baseline_seconds),
                "baseline_after_first": after_first(&outcome.baseline_seconds),
            },
            "iterations_after_first": {
                "output": after_first(&outcome.iterations),
                "baseline": after_first(&outcome.baseline_iterations),
            },
            "temporal_weight": a.temporal_weight,
            "long_term": long_term,
        });
        let text = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
        neural_style_core::image_io::write_file_atomic(r, text.as_bytes(), 0o666)?;
        log(&format!("wrote {}", r.display()));
    }
    if !a.quiet {
        println!(
            "warping error: {:.3e} (input {:.3e}{})",
            flicker.output,
            flicker.input,
            flicker
                .baseline
                .map(|b| format!(", frames styled independently {b:.3e}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The seconds of the first frame, when this run styled it.
fn first_frame(seconds: &[(usize, f64)]) -> Option<f64> {
    seconds.iter().find(|(t, _)| *t == 0).map(|s| s.1)
}

/// The mean seconds per frame after the first, of the frames this run styled.
fn after_first(seconds: &[(usize, f64)]) -> Option<f64> {
    let v: Vec<f64> = seconds
        .iter()
        .filter(|(t, _)| *t > 0)
        .map(|s| s.1)
        .collect();
    (!v.is_empty()).then(|| mean(&v))
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The warping errors (Lai et al. 2018) of the styled frames, of the input
/// (the floor) and of the independently styled frames (the ceiling), each
/// over every consecutive pair with the input's flow and certainty.
struct Flicker {
    output: f64,
    input: f64,
    baseline: Option<f64>,
}

fn flicker(frames: &[Picture], dir: &Path, baseline: bool) -> Result<Flicker> {
    let load = |d: &Path| {
        (0..frames.len())
            .map(|t| Picture::load(&written::video_frame(d, t)))
            .collect::<Result<Vec<_>>>()
    };
    let out = load(dir)?;
    let base = if baseline {
        Some(load(&written::baseline_dir(dir))?)
    } else {
        None
    };
    let (mut e_out, mut e_in, mut e_base) = (Vec::new(), Vec::new(), Vec::new());
    for t in 1..frames.len() {
        let back = flow::dis(&frames[t], &frames[t - 1])?;
        let fwd = flow::dis(&frames[t - 1], &frames[t])?;
        let c = warp::certainty(&back, &fwd);
        let e =
            |v: &[Picture]| warp::warping_error(&v[t], &warp::warp_picture(&v[t - 1], &back), &c);
        if let (Some(o), Some(i)) = (e(&out), e(frames)) {
            e_out.push(o);
            e_in.push(i);
            if let Some(b) = base.as_deref().and_then(e) {
                e_base.push(b);
            }
        }
    }
    Ok(Flicker {
        output: mean(&e_out),
        input: mean(&e_in),
        baseline: baseline.then(|| mean(&e_base)),
    })
}

struct VideoRun<'a> {
    settings: &'a Settings,
    weights: &'a neural_style_weights::Vgg19Weights,
    /// The styles and masks at the frames' size (from the first frame).
    style_inputs: &'a neural_style::run::Inputs,
    /// The first frame's starting image (`init`).
    first_init: &'a CaffeImage,
    frames: &'a [Picture],
    frames_dir: &'a Path,
    start: usize,
    first_iterations: usize,
    temporal_weight: f64,
    long_term: &'a [usize],
    baseline: bool,
    report: bool,
    interrupt: &'a AtomicBool,
    log: &'a mut dyn FnMut(&str),
}

/// What the run measured.
struct VideoOutcome {
    interrupted: bool,
    /// Seconds per frame styled in this run, by frame (flow and warping included).
    seconds: Vec<(usize, f64)>,
    /// Of those, the seconds before the optimisation (flow, certainty,
    /// warping, the objective's targets).
    prep_seconds: Vec<(usize, f64)>,
    baseline_seconds: Vec<(usize, f64)>,
    /// Iterations run per frame (fewer than asked when the stopping rule
    /// ended a frame), of the video and of `--baseline`.
    iterations: Vec<(usize, f64)>,
    baseline_iterations: Vec<(usize, f64)>,
    /// The style loss of each output frame (with `--report`).
    style_output: Vec<f64>,
    style_baseline: Vec<f64>,
}

impl WithBackend for VideoRun<'_> {
    type Output = VideoOutcome;
    fn run<B: Backend + Clone + 'static>(self, backend: B) -> Result<VideoOutcome> {
        let s = self.settings;
        let net = Vgg::new(backend, self.weights, s.spec.pooling)?;
        let grams = self
            .style_inputs
            .styles
            .iter()
            .map(|(img, _)| style_grams(&net, &s.spec, img))
            .collect::<Result<Vec<_>>>()?;
        let objective = |content: &CaffeImage| {
            let terms = grams
                .iter()
                .zip(&self.style_inputs.styles)
                .zip(&self.style_inputs.masks)
                .map(|((g, (_, w)), m)| StyleTerm {
                    grams: g.clone(),
                    weight: *w,
                    mask: m.clone(),
                })
                .collect();
            Objective::with_styles(&net, s.spec.clone(), content, terms)
        };
        let n = self.frames.len();
        let mut out = VideoOutcome {
            interrupted: false,
            seconds: Vec::new(),
            prep_seconds: Vec::new(),
            baseline_seconds: Vec::new(),
            iterations: Vec::new(),
            baseline_iterations: Vec::new(),
            style_output: Vec::new(),
            style_baseline: Vec::new(),
        };
        // The stylised frames (before original colours) the next ones need.
        let mut styled: HashMap<usize, CaffeImage> = HashMap::new();
        let deepest = *self.long_term.last().unwrap_or(&1);
        // `--baseline`: frame `t` styled on its own (same settings and
        // iterations, no temporal term), right after the video's frame `t`
        // so that both see the same machine load.
        let baseline_dir = written::baseline_dir(self.frames_dir);
        if self.baseline {
            std::fs::create_dir_all(&baseline_dir).map_err(|e| Error::io(&baseline_dir, e))?;
        }
        // The first frame has no temporal term: the video's own (`same`,
        // with its seconds), when this run styled it, is the independent one.
        let independent =
            |t: usize, same: Option<(&CaffeImage, f64)>| -> Result<Option<(f64, f64, usize)>> {
                let started = Instant::now();
                let content = self.frames[t].to_caffe();
                let obj = objective(&content)?;
                if let (0, Some((best, seconds))) = (t, same) {
                    Picture::from_caffe(&finish(s, best, &content))
                        .save(&written::video_frame(&baseline_dir, t))?;
                    let x = net.backend().upload(&best.data, best.shape())?;
                    return Ok(Some((
                        seconds,
                        obj.evaluate(&x)?.0.style,
                        self.first_iterations,
                    )));
                }
                let init = if t == 0 {
                    self.first_init.clone()
                } else {
                    initial_image(s, &content)?
                };
                let opts = RunOptions {
                    iterations: if t == 0 {
                        self.first_iterations
                    } else {
                        s.options.iterations
                    },
                    optimizer: s.optimizer,
                    stop_rule: s.stop_rule,
                };
                let r = run(&obj, &init, &opts, &mut Silent, self.interrupt)?;
                if r.stop == StopReason::Interrupted {
                    return Ok(None);
                }
                Picture::from_caffe(&finish(s, &r.best, &content))
                    .save(&written::video_frame(&baseline_dir, t))?;
                let seconds = started.elapsed().as_secs_f64();
                let x = net.backend().upload(&r.best.data, r.best.shape())?;
                Ok(Some((seconds, obj.evaluate(&x)?.0.style, r.iterations)))
            };
        for t in self.start..n {
            let started = Instant::now();
            let content = self.frames[t].to_caffe();
            let mut obj = objective(&content)?;
            let (init, iterations) = if t == 0 {
                (self.first_init.clone(), self.first_iterations)
            } else {
                let mut certainties = Vec::new();
                let mut warped = Vec::new();
                let mut init = None;
                for &j in self.long_term.iter().filter(|j| **j <= t) {
                    let back = flow::dis(&self.frames[t], &self.frames[t - j])?;
                    let fwd = flow::dis(&self.frames[t - j], &self.frames[t])?;
                    let c = warp::certainty(&back, &fwd);
                    let prev = match styled.get(&(t - j)) {
                        Some(p) => p.clone(),
                        None => {
                            Picture::load(&written::video_frame(self.frames_dir, t - j))?.to_caffe()
                        }
                    };
                    let w = warp::warp_caffe(&prev, &back);
                    if j == 1 {
                        init = Some(fill_uncertain(&w, &content, &c));
                    }
                    certainties.push(c);
                    warped.push(w);
                }
                let frames = warped
                    .into_iter()
                    .zip(closest_first(&certainties))
                    .map(|(warped, certainty)| TemporalFrame { warped, certainty })
                    .collect();
                obj = obj.with_temporal(&Temporal {
                    weight: self.temporal_weight,
                    frames,
                })?;
                (init.expect("long-term includes 1"), s.options.iterations)
            };
            // Flow, certainty, warping and the objective, before the optimisation.
            out.prep_seconds.push((t, started.elapsed().as_secs_f64()));
            let opts = RunOptions {
                iterations,
                optimizer: s.optimizer,
                stop_rule: s.stop_rule,
            };
            let r = run(&obj, &init, &opts, &mut Silent, self.interrupt)?;
            let finished = Picture::from_caffe(&finish(s, &r.best, &content));
            if r.stop == StopReason::Interrupted {
                let partial = written::interrupted_frame(self.frames_dir, t);
                finished.save(&partial)?;
                (self.log)(&format!(
                    "frame {} interrupted: its best image is {}; a rerun resumes there",
                    t + 1,
                    partial.display()
                ));
                out.interrupted = true;
                return Ok(out);
            }
            finished.save(&written::video_frame(self.frames_dir, t))?;
            let seconds = started.elapsed().as_secs_f64();
            out.seconds.push((t, seconds));
            out.iterations.push((t, r.iterations as f64));
            (self.log)(&format!(
                "frame {}/{n}: loss {:.4e}, {seconds:.1} s",
                t + 1,
                r.best_loss
            ));
            if self.report {
                let plain = objective(&content)?;
                let x = net.backend().upload(&r.best.data, r.best.shape())?;
                out.style_output.push(plain.evaluate(&x)?.0.style);
            }
            styled.insert(t, r.best);
            styled.retain(|k, _| k + deepest > t);
            if self.baseline {
                let same = styled.get(&t).map(|b| (b, seconds));
                let Some((seconds, style, iterations)) = independent(t, same)? else {
                    out.interrupted = true;
                    return Ok(out);
                };
                out.baseline_seconds.push((t, seconds));
                out.baseline_iterations.push((t, iterations as f64));
                out.style_baseline.push(style);
                (self.log)(&format!("independent frame {}/{n}: {seconds:.1} s", t + 1));
            }
        }
        if self.baseline {
            // The frames a resumed run had styled before it.
            for t in 0..self.start.min(n) {
                let Some((seconds, style, iterations)) = independent(t, None)? else {
                    out.interrupted = true;
                    return Ok(out);
                };
                out.baseline_seconds.push((t, seconds));
                out.baseline_iterations.push((t, iterations as f64));
                out.style_baseline.push(style);
                (self.log)(&format!("independent frame {}/{n}", t + 1));
            }
        }
        Ok(out)
    }
}

/// The warped previous frame where it is certain, the content frame where
/// it is not (disoccluded or on a motion boundary): there nothing earlier
/// is known, and the photo is the start a still gets with `--init content`.
fn fill_uncertain(warped: &CaffeImage, content: &CaffeImage, c: &Mask) -> CaffeImage {
    let plane = warped.width * warped.height;
    let mut data = warped.data.clone();
    for (i, v) in data.iter_mut().enumerate() {
        let k = c.data[i % plane];
        *v = k * *v + (1.0 - k) * content.data[i];
    }
    CaffeImage {
        width: warped.width,
        height: warped.height,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry's frame names are the ones the encoder reads.
    #[test]
    fn the_registrys_frame_names_are_the_encoders() {
        for k in [0, 8, 999_998] {
            assert_eq!(
                written::video_frame(Path::new("d"), k),
                Path::new("d").join(ffmpeg::frame_name(k))
            );
        }
    }
}
