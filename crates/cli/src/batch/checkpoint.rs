//! Checkpoints of long jobs (`--checkpoint-every N`, also in batches):
//! the best image so far of the scale in progress, `OUTPUT.ckpt.png` (16
//! bits a channel, whatever the output's depth), and
//! beside it `OUTPUT.ckpt.json`:
//!
//! ```json
//! {"version":1,"fingerprint":"<sha256>","iteration":250,"of":500,"scale":0,
//!  "scale_iteration":250,"best_loss":1.2e6,"width":512,"height":384,"image_sha256":"<sha256>"}
//! ```
//!
//! Both are written atomically (temporary file, renamed), the image first;
//! the JSON names the image's hash, so a pair torn by a crash between the two
//! renames is recognised and ignored. A rerun of the same job resumes from
//! the checkpoint: the iteration count continues (the optimiser's history
//! starts afresh from the checkpoint image), and the checkpoint is removed
//! once the output is written. The fingerprint covers every setting that
//! shapes the result and the bytes of every input image; a checkpoint with
//! another fingerprint (or unreadable, or torn) is ignored with a warning,
//! never used.

use neural_style::options::Settings;
use neural_style_core::image_io::{Picture, SaveOptions};
use neural_style_core::pixel::CaffeImage;
use neural_style_core::run::{IterationReport, Observer, RunOutcome, StopReason};
use neural_style_core::{Error, Result};
use neural_style_weights::sha256_hex;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::path::{Path, PathBuf};

const VERSION: u32 = 1;

/// `OUTPUT.ckpt.png` and `OUTPUT.ckpt.json`, as the registry of written
/// paths names them (`neural_style::run::written`).
pub(crate) fn paths(output: &Path) -> (PathBuf, PathBuf) {
    neural_style::run::written::checkpoint_paths(output)
}

/// What a checkpoint must agree with to be used: every setting but those
/// that only choose where and how fast it runs (backend, device, threads),
/// and the bytes of the content, styles, masks and init image (not their
/// paths: a batch may run from another directory).
pub(crate) fn fingerprint(s: &Settings) -> Result<String> {
    fingerprint_with(s, Some(&s.files.content))
}

/// [`fingerprint`] with the content's bytes left out when `content` is
/// `None` (a video's clip, which its manifest identifies itself).
pub(crate) fn fingerprint_with(s: &Settings, content: Option<&Path>) -> Result<String> {
    let mut files: Vec<&Path> = content.into_iter().collect();
    files.extend(s.files.styles.iter().map(PathBuf::as_path));
    files.extend(s.files.masks.iter().flatten().map(PathBuf::as_path));
    files.extend(s.files.init_image.as_deref());
    let mut neutral = s.clone();
    neutral.options.threads = None;
    neutral.options.backend = String::new();
    neutral.options.device = None;
    neutral.files.content = PathBuf::new();
    neutral.files.styles = vec![PathBuf::new(); s.files.styles.len()];
    neutral.files.masks = s
        .files
        .masks
        .iter()
        .map(|m| m.as_ref().map(|_| PathBuf::new()))
        .collect();
    neutral.files.init_image = s.files.init_image.as_ref().map(|_| PathBuf::new());
    // How much memory the run may use and what the memory plan chose from
    // it (recomputation, the L-BFGS history: it restarts on a resume
    // anyway) depend on the machine, not on the job.
    neutral.options.memory = None;
    neutral.options.recompute = None;
    neutral.options.lbfgs_history = 0;
    if let neural_style_core::run::OptimizerKind::Lbfgs(c) = &mut neutral.optimizer {
        c.history = 0;
    }
    let mut text = format!("neural-style checkpoint v{VERSION}\n{neutral:?}\n");
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
        text.push_str(&sha256_hex(&bytes));
        text.push('\n');
    }
    Ok(sha256_hex(text.as_bytes()))
}

/// The JSON half of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// The format's version (`VERSION`).
    pub(crate) version: u32,
    /// The job's `fingerprint`.
    pub(crate) fingerprint: String,
    /// Iterations done, over all scales.
    pub(crate) iteration: usize,
    /// Iterations of the whole job.
    pub(crate) of: usize,
    /// The scale in progress (0-based) and the iterations done in it.
    pub(crate) scale: usize,
    /// Iterations done in the scale in progress.
    pub(crate) scale_iteration: usize,
    /// The total loss of the checkpoint's image.
    pub(crate) best_loss: f64,
    /// The image's width in pixels.
    pub(crate) width: usize,
    /// The image's height in pixels.
    pub(crate) height: usize,
    /// The sha256 of the checkpoint's image file.
    pub(crate) image_sha256: String,
}

/// Where a job stands, to write as a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Position {
    /// Iterations done, over all scales.
    pub(crate) iteration: usize,
    /// Iterations of the whole job.
    pub(crate) of: usize,
    /// The scale in progress (0-based).
    pub(crate) scale: usize,
    /// Iterations done in that scale.
    pub(crate) scale_iteration: usize,
    /// The best total loss so far.
    pub(crate) best_loss: f64,
}

/// Write the checkpoint of `output`: the image, then the JSON.
pub(crate) fn save(
    output: &Path,
    fingerprint: &str,
    at: Position,
    best: &CaffeImage,
) -> Result<()> {
    let (image, meta) = paths(output);
    // Hashed from memory, never read back: the same command running
    // elsewhere may replace or remove this file the moment it is written.
    // 16 bits a channel: the image resumed from is the one the run had to
    // 1/257 of an 8-bit step, not rounded to 8 bits (a 16-bit poster
    // resumed near its end would keep that rounding).
    let sixteen = SaveOptions {
        bit_depth: 16,
        dpi: None,
    };
    let bytes = Picture::from_caffe_exact(best).encoded_with(&image, sixteen)?;
    neural_style_core::image_io::write_file_atomic(&image, &bytes, 0o666)?;
    let m = Meta {
        version: VERSION,
        fingerprint: fingerprint.to_string(),
        iteration: at.iteration,
        of: at.of,
        scale: at.scale,
        scale_iteration: at.scale_iteration,
        best_loss: at.best_loss,
        width: best.width,
        height: best.height,
        image_sha256: sha256_hex(&bytes),
    };
    let mut text = serde_json::to_string(&m).expect("serialises");
    text.push('\n');
    neural_style_core::image_io::write_file_atomic(&meta, text.as_bytes(), 0o666)
}

/// Remove the checkpoint of `output` (when its output is written).
pub(crate) fn remove(output: &Path) -> Result<()> {
    let (image, meta) = paths(output);
    // The JSON first: without it the image is never used.
    for p in [meta, image] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Ok(())
}

/// A usable checkpoint.
#[derive(Clone, Debug)]
pub(crate) struct Resume {
    /// The checkpoint's JSON half.
    pub(crate) meta: Meta,
    /// The checkpoint's image.
    pub(crate) image: CaffeImage,
}

/// What [`load`] found.
#[derive(Debug)]
pub(crate) enum Found {
    /// No checkpoint.
    Nothing,
    /// A checkpoint to resume from.
    Resume(Resume),
    /// A checkpoint that must not be used, and why (for the warning).
    Ignored(String),
}

/// The checkpoint of `output`, if there is one and it belongs to a job with
/// this fingerprint and these `scales` (`(size, iterations)` each), and its
/// state is possible: its iteration is those done in its scale plus at most
/// the iterations of the scales before (fewer when the stopping rule ended
/// one early), its loss a number ≥ 0, its image the
/// one its JSON names (sha256) at the size of its scale (`content`: the
/// content image's size, when known).
pub(crate) fn load(
    output: &Path,
    fingerprint: &str,
    scales: &[(u32, usize)],
    content: Option<(u32, u32)>,
) -> Found {
    let (image, meta) = paths(output);
    let text = match std::fs::read(&meta) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Found::Nothing,
        Err(e) => return Found::Ignored(format!("{}: {e}", meta.display())),
    };
    let ignored = |why: String| Found::Ignored(format!("{}: {why}", meta.display()));
    let m: Meta = match serde_json::from_slice(&text) {
        Ok(m) => m,
        Err(e) => return ignored(format!("not a checkpoint ({e})")),
    };
    if m.version != VERSION {
        return ignored(format!(
            "version {} (this build writes {VERSION})",
            m.version
        ));
    }
    if m.fingerprint != fingerprint {
        return ignored(
            "made with other settings or other input images (fingerprint differs)".into(),
        );
    }
    let total: usize = scales.iter().map(|s| s.1).sum();
    if m.scale >= scales.len()
        || m.scale_iteration > scales[m.scale].1
        || m.iteration > total
        || m.of != total
    {
        return ignored(format!(
            "iteration {} (scale {}, {} in it) does not fit this job's {total} iterations",
            m.iteration, m.scale, m.scale_iteration
        ));
    }
    // The earlier scales ran at most their iterations: fewer when the
    // stopping rule ended one early (the numbering counts what ran).
    let before: Option<usize> = scales[..m.scale]
        .iter()
        .try_fold(0usize, |a, s| a.checked_add(s.1));
    let earlier = m.iteration.checked_sub(m.scale_iteration);
    if earlier.is_none() || earlier > before {
        return ignored(format!(
            "iteration {} is more than the {} iterations before scale {} plus the {} done in it \
             (or fewer than those done in it): an impossible state",
            m.iteration,
            before.unwrap_or(0),
            m.scale,
            m.scale_iteration
        ));
    }
    if !(m.best_loss.is_finite() && m.best_loss >= 0.0) {
        return ignored(format!("its loss {} is impossible", m.best_loss));
    }
    if let Some(c) = content {
        let (w, h) = neural_style_core::image_io::size_longest(c, scales[m.scale].0);
        if (w as usize, h as usize) != (m.width, m.height) {
            return ignored(format!(
                "its image is {}×{}, but scale {} of this job is {w}×{h}",
                m.width, m.height, m.scale
            ));
        }
    }
    let bytes = match std::fs::read(&image) {
        Ok(b) => b,
        Err(e) => return ignored(format!("its image {}: {e}", image.display())),
    };
    if sha256_hex(&bytes) != m.image_sha256 {
        return ignored(format!(
            "its image {} is not the one it describes (a write was cut short)",
            image.display()
        ));
    }
    // The bytes just checked, not the file read again: the same job
    // running elsewhere may have replaced it since.
    // The bytes just checked, not the file read again: the same job
    // running elsewhere may have replaced it since.
    let picture = match Picture::decode(&image, &bytes) {
        Ok(p) => p,
        Err(e) => return ignored(e.to_string()),
    };
    if (picture.width as usize, picture.height as usize) != (m.width, m.height) {
        return ignored(format!(
            "its image is {}×{}, not {}×{}",
            picture.width, picture.height, m.width, m.height
        ));
    }
    Found::Resume(Resume {
        image: picture.to_caffe(),
        meta: m,
    })
}

/// The scales still to run after a checkpoint: `(scale index, iterations)`
/// from the scale in progress on (a finished scale is left out).
pub(crate) fn remaining(
    scales: &[(u32, usize)],
    scale: usize,
    scale_iteration: usize,
) -> Vec<(usize, usize)> {
    scales
        .iter()
        .enumerate()
        .skip(scale)
        .map(|(i, &(_, n))| {
            (
                i,
                if i == scale {
                    n - scale_iteration.min(n)
                } else {
                    n
                },
            )
        })
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// Where a run starts: from the beginning, or from a checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Start {
    /// Iterations done before this process (numbering continues after them).
    pub(crate) offset: usize,
    /// The scale to start in.
    pub(crate) scale: usize,
    /// Iterations of that scale already done.
    pub(crate) scale_iteration: usize,
}

impl Start {
    /// Where the checkpoint `m` left off.
    pub(crate) fn from_meta(m: &Meta) -> Start {
        Start {
            offset: m.iteration,
            scale: m.scale,
            scale_iteration: m.scale_iteration,
        }
    }
}

/// An observer between the run loop and the job's own observer: numbers the
/// iterations after a resumed checkpoint's, and every `every` iterations
/// writes the best image of the scale in progress as the checkpoint.
///
/// The scale in progress is `scale`, which the caller sets as it builds
/// each scale's objective (before the scale's first report).
pub(crate) struct Checkpointer<'a> {
    /// The job's own observer, given every report renumbered.
    pub(crate) inner: &'a mut dyn Observer,
    /// The job's output (checkpoints go beside it).
    pub(crate) output: &'a Path,
    /// The job's fingerprint, written into each checkpoint.
    pub(crate) fingerprint: &'a str,
    /// `None`: only renumber (no checkpoints).
    pub(crate) every: Option<usize>,
    /// Iterations of the whole job.
    pub(crate) of: usize,
    /// Where the run started (a resumed checkpoint's position).
    pub(crate) start: Start,
    /// The scale in progress, set by the run as it builds each scale's objective.
    pub(crate) scale: &'a Cell<usize>,
    /// Called with each checkpoint written.
    pub(crate) on_checkpoint: &'a mut dyn FnMut(&Position),
    state: State,
}

#[derive(Default)]
struct State {
    seen_scale: Option<usize>,
    /// The global iteration before the scale in progress started.
    scale_base: usize,
    best: Option<(f64, CaffeImage)>,
}

impl<'a> Checkpointer<'a> {
    #[allow(clippy::too_many_arguments)]
    /// An observer between the run and `inner`, checkpointing every `every` iterations when given.
    pub(crate) fn new(
        inner: &'a mut dyn Observer,
        output: &'a Path,
        fingerprint: &'a str,
        every: Option<usize>,
        of: usize,
        start: Start,
        scale: &'a Cell<usize>,
        on_checkpoint: &'a mut dyn FnMut(&Position),
    ) -> Checkpointer<'a> {
        scale.set(start.scale);
        let state = State {
            seen_scale: Some(start.scale),
            scale_base: start.offset - start.scale_iteration.min(start.offset),
            best: None,
        };
        Checkpointer {
            inner,
            output,
            fingerprint,
            every,
            of,
            start,
            scale,
            on_checkpoint,
            state,
        }
    }

    /// After an interrupted run: write `best` (the run's best image, at the
    /// size of the scale it reached) as the checkpoint, `done` being the
    /// iterations this process ran. Returns where it stands.
    pub(crate) fn save_interrupted(
        &mut self,
        best: &CaffeImage,
        best_loss: f64,
        done: usize,
    ) -> Result<Position> {
        let iteration = self.start.offset + done;
        let scale = self.state.seen_scale.unwrap_or(self.start.scale);
        let at = Position {
            iteration,
            of: self.of,
            scale,
            scale_iteration: iteration - self.state.scale_base.min(iteration),
            best_loss,
        };
        save(self.output, self.fingerprint, at, best)?;
        (self.on_checkpoint)(&at);
        Ok(at)
    }
}

impl Observer for Checkpointer<'_> {
    fn on_iteration(
        &mut self,
        r: &IterationReport,
        image: &mut dyn FnMut() -> Result<CaffeImage>,
    ) -> Result<()> {
        let iteration = r.iteration + self.start.offset;
        let report = IterationReport {
            iteration,
            of: self.of,
            ..*r
        };
        if let Some(every) = self.every {
            let scale = self.scale.get();
            if self.state.seen_scale != Some(scale) {
                self.state = State {
                    seen_scale: Some(scale),
                    scale_base: iteration - 1,
                    best: None,
                };
            }
            // The best point of this scale is kept on the host (one download
            // per improvement: 3·H·W floats, small beside an iteration).
            if self.state.best.as_ref().is_none_or(|b| r.loss.total < b.0) {
                self.state.best = Some((r.loss.total, image()?));
            }
            if iteration % every == 0 {
                let (loss, best) = self.state.best.as_ref().expect("set above");
                let at = Position {
                    iteration,
                    of: self.of,
                    scale,
                    scale_iteration: iteration - self.state.scale_base,
                    best_loss: *loss,
                };
                save(self.output, self.fingerprint, at, best)?;
                (self.on_checkpoint)(&at);
            }
        }
        self.inner.on_iteration(&report, image)
    }

    fn on_scale(&mut self, _index: usize) {
        // The run's index is into the scales left; the cell holds the job's.
        self.inner.on_scale(self.scale.get());
    }
}

/// Paints the given `(scale index, iterations)` from an image, setting the
/// cell to each scale as it starts it, reporting to the observer.
pub(crate) type PaintScales<'a> = dyn FnMut(&[(usize, usize)], &CaffeImage, &Cell<usize>, &mut dyn Observer) -> Result<RunOutcome>
    + 'a;

/// What [`paint_resumable`] tells its caller as it goes.
pub(crate) struct Hooks<'a> {
    /// Messages (the resume, a checkpoint ignored and why).
    pub(crate) log: &'a mut dyn FnMut(&str),
    /// Before the first iteration: the checkpoint's iteration when resuming.
    pub(crate) started: &'a mut dyn FnMut(Option<usize>),
    /// Each checkpoint written.
    pub(crate) checkpoint: &'a mut dyn FnMut(&Position),
}

/// A job's result with checkpoints.
pub(crate) struct Painted {
    /// Iterations numbered over the whole job (a resumed run's included).
    pub(crate) outcome: RunOutcome,
    /// The checkpoint's iteration, when the job resumed from one.
    pub(crate) resumed_from: Option<usize>,
}

/// Run a job that may resume from, and writes, checkpoints of `output`.
///
/// With `every` (`--checkpoint-every N`): a usable checkpoint is resumed
/// (one from other settings is ignored with a warning through `log`), a
/// checkpoint is written every `every` iterations and, when the run is
/// interrupted, one more of its best image. Without `every`, the job runs
/// from the start and no checkpoint is read or written. `paint` runs the
/// given `(scale index, iterations)` from its image, setting the cell to
/// each scale as it starts it (see [`Checkpointer`]); the caller removes the
/// checkpoint once it has written the output.
pub(crate) fn paint_resumable(
    s: &Settings,
    output: &Path,
    every: Option<usize>,
    init: &CaffeImage,
    observer: &mut dyn Observer,
    hooks: &mut Hooks<'_>,
    paint: &mut PaintScales<'_>,
) -> Result<Painted> {
    let all: Vec<(usize, usize)> = s.scales.iter().map(|x| x.1).enumerate().collect();
    let total = s.total_iterations();
    let scale = Cell::new(0);
    let Some(n) = every else {
        (hooks.started)(None);
        let mut c = Checkpointer::new(
            observer,
            output,
            "",
            None,
            total,
            Start::default(),
            &scale,
            &mut *hooks.checkpoint,
        );
        let outcome = paint(&all, init, &scale, &mut c)?;
        return Ok(Painted {
            outcome,
            resumed_from: None,
        });
    };
    let fp = fingerprint(s)?;
    let content = Picture::probe(&s.files.content).ok();
    let (start, from) = match load(output, &fp, &s.scales, content) {
        Found::Nothing => (Start::default(), None),
        Found::Ignored(why) => {
            (hooks.log)(&format!(
                "warning: checkpoint ignored, starting afresh: {why}"
            ));
            (Start::default(), None)
        }
        Found::Resume(r) => {
            (hooks.log)(&format!(
                "resuming {} from its checkpoint at iteration {} of {}",
                output.display(),
                r.meta.iteration,
                r.meta.of
            ));
            (Start::from_meta(&r.meta), Some(r))
        }
    };
    let rest = remaining(&s.scales, start.scale, start.scale_iteration);
    let resumed_from = from.as_ref().map(|r| r.meta.iteration);
    let init = from.as_ref().map_or(init, |r| &r.image);
    (hooks.started)(resumed_from);
    if rest.is_empty() {
        // Every iteration was done: the checkpoint is the result.
        let r = from.expect("a fresh job has iterations to run");
        return Ok(Painted {
            outcome: RunOutcome {
                best: r.image,
                best_loss: r.meta.best_loss,
                best_iteration: r.meta.iteration,
                iterations: r.meta.iteration,
                stop: StopReason::Completed,
                elapsed: std::time::Duration::ZERO,
            },
            resumed_from,
        });
    }
    let mut c = Checkpointer::new(
        observer,
        output,
        &fp,
        Some(n),
        total,
        start,
        &scale,
        &mut *hooks.checkpoint,
    );
    let mut outcome = paint(&rest, init, &scale, &mut c)?;
    let done = outcome.iterations;
    if outcome.stop == StopReason::Interrupted && done > 0 {
        c.save_interrupted(&outcome.best, outcome.best_loss, done)?;
    }
    outcome.iterations += start.offset;
    outcome.best_iteration += start.offset;
    Ok(Painted {
        outcome,
        resumed_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use neural_style_core::objective::LossParts;
    use neural_style_core::run::Silent;

    fn settings(dir: &Path) -> Settings {
        let content = dir.join("c.png");
        let style = dir.join("s.png");
        for (p, v) in [(&content, 10.0), (&style, 200.0)] {
            Picture {
                width: 4,
                height: 3,
                rgb: vec![v; 36],
            }
            .save(p)
            .unwrap();
        }
        neural_style::options::StyleArgs {
            content: Some(content),
            style: vec![style],
            size: Some(4),
            iterations: Some(10),
            ..Default::default()
        }
        .resolve()
        .unwrap()
    }

    fn image(w: usize, h: usize, v: f32) -> CaffeImage {
        CaffeImage {
            width: w,
            height: h,
            data: vec![v; 3 * w * h],
        }
    }

    fn at(iteration: usize) -> Position {
        Position {
            iteration,
            of: 10,
            scale: 0,
            scale_iteration: iteration,
            best_loss: 5.0,
        }
    }

    /// The memory a run may use and what the plan chose from it (the
    /// history, recomputation) are the machine's, not the job's: a poster's
    /// checkpoint resumes on a machine with less memory free (the
    /// fingerprint covered them before, so such a checkpoint was ignored).
    #[test]
    fn fingerprints_ignore_the_memory_plan() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let mut t = s.clone();
        t.options.memory = Some(3.0);
        t.options.recompute = Some(true);
        if let neural_style_core::run::OptimizerKind::Lbfgs(c) = &mut t.optimizer {
            c.history = 7;
        }
        assert_eq!(fingerprint(&s).unwrap(), fingerprint(&t).unwrap());
        t.spec.style_weight *= 2.0;
        assert_ne!(fingerprint(&s).unwrap(), fingerprint(&t).unwrap());
    }

    #[test]
    fn fingerprints_follow_settings_and_input_bytes_not_paths_or_threads() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let f = fingerprint(&s).unwrap();
        assert_eq!(f.len(), 64);
        let mut t = s.clone();
        t.options.threads = Some(7);
        t.options.backend = "tch".into();
        assert_eq!(
            fingerprint(&t).unwrap(),
            f,
            "threads and backend do not matter"
        );
        // The same bytes under another name: the same job.
        let moved = dir.path().join("moved.png");
        std::fs::copy(&s.files.content, &moved).unwrap();
        let mut t = s.clone();
        t.files.content = moved.clone();
        assert_eq!(fingerprint(&t).unwrap(), f);
        // Any result-shaping setting, or other bytes, changes it.
        let mut t = s.clone();
        t.spec.style_weight *= 2.0;
        assert_ne!(fingerprint(&t).unwrap(), f);
        let mut t = s.clone();
        t.options.seed += 1;
        assert_ne!(fingerprint(&t).unwrap(), f);
        let mut t = s.clone();
        t.options.iterations = 11;
        t.scales = vec![(4, 11)];
        assert_ne!(fingerprint(&t).unwrap(), f);
        let mut bytes = std::fs::read(&moved).unwrap();
        bytes.push(0); // trailing byte: another file
        std::fs::write(&moved, bytes).unwrap();
        let mut t = s.clone();
        t.files.content = moved;
        assert_ne!(fingerprint(&t).unwrap(), f);
    }

    #[test]
    fn save_load_and_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.jpg");
        assert!(matches!(load(&out, "fp", &[(4, 10)], None), Found::Nothing));
        let img = image(4, 3, 12.0);
        save(&out, "fp", at(6), &img).unwrap();
        let (png, json) = paths(&out);
        assert_eq!(png, dir.path().join("o.jpg.ckpt.png"));
        assert_eq!(json, dir.path().join("o.jpg.ckpt.json"));
        let Found::Resume(r) = load(&out, "fp", &[(4, 10)], None) else {
            panic!("not resumable")
        };
        assert_eq!((r.meta.iteration, r.meta.scale_iteration), (6, 6));
        assert_eq!((r.image.width, r.image.height), (4, 3));
        // 8-bit round trip of a value that is whole in RGB space.
        let back = Picture::from_caffe(&r.image).rgb;
        assert_eq!(back, Picture::from_caffe(&img).rgb);
        remove(&out).unwrap();
        assert!(!png.exists() && !json.exists());
        remove(&out).unwrap(); // nothing to remove is fine
    }

    #[test]
    fn a_checkpoint_keeps_its_image_to_a_sixteenth_bit() {
        // Values between 8-bit steps: resumed through an 8-bit PNG they were
        // rounded, up to half a step (0.5) away (failed before: 0.49).
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.png");
        let mut img = image(16, 12, 0.0);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = (i % 97) as f32 * 1.37 - 60.0;
        }
        save(&out, "fp", at(6), &img).unwrap();
        let Found::Resume(r) = load(&out, "fp", &[(16, 10)], None) else {
            panic!("not resumable")
        };
        let worst = r
            .image
            .data
            .iter()
            .zip(&img.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 0.5 / 257.0 + 1e-4, "off by {worst} of 255");
    }

    #[test]
    fn saving_never_reads_back_what_the_same_job_elsewhere_removes() {
        // The same command run twice at once: one process finishes and
        // removes the checkpoint while the other saves one (it read its
        // image back to hash it, and failed on the missing file).
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.png");
        let (png, _) = paths(&out);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::fs::remove_file(&png);
                }
            });
            for i in 0..300 {
                let r = save(&out, "fp", at(6), &image(16, 12, i as f32));
                if r.is_err() {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                r.unwrap();
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }

    #[test]
    fn a_resumed_image_is_the_one_whose_checksum_was_checked() {
        // The image is replaced (atomically, by the same job elsewhere)
        // after its bytes were checked: the resume must not read the file
        // again and take pixels its checksum never saw.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.png");
        let (png, _) = paths(&out);
        let (a, b) = (image(16, 12, 10.0), image(16, 12, 90.0));
        save(&out, "fp", at(6), &a).unwrap();
        let a_bytes = std::fs::read(&png).unwrap();
        let b_bytes = Picture::from_caffe(&b).encoded(&png).unwrap();
        let want = Picture::from_caffe(&a).rgb;
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for bytes in [&b_bytes, &a_bytes] {
                        neural_style_core::image_io::write_file_atomic(&png, bytes, 0o666).unwrap();
                    }
                }
            });
            let mut wrong = 0;
            for _ in 0..2000 {
                if let Found::Resume(r) = load(&out, "fp", &[(16, 10)], None) {
                    wrong += usize::from(Picture::from_caffe(&r.image).rgb != want);
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(wrong, 0, "resumed from pixels that were never checked");
        });
    }

    #[test]
    fn a_checkpoint_of_other_settings_or_torn_is_ignored_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.png");
        save(&out, "fp", at(6), &image(4, 3, 1.0)).unwrap();
        let why = |f: Found| match f {
            Found::Ignored(w) => w,
            other => panic!("{other:?}"),
        };
        assert!(why(load(&out, "other", &[(4, 10)], None)).contains("other settings"));
        assert!(why(load(&out, "fp", &[(4, 5)], None)).contains("does not fit"));
        // A newer image under an older JSON (crash between the two renames).
        let (png, json) = paths(&out);
        Picture::from_caffe(&image(4, 3, 50.0)).save(&png).unwrap();
        assert!(why(load(&out, "fp", &[(4, 10)], None)).contains("not the one it describes"));
        std::fs::write(&json, "{").unwrap();
        assert!(why(load(&out, "fp", &[(4, 10)], None)).contains("not a checkpoint"));
    }

    #[test]
    fn an_impossible_or_tampered_checkpoint_is_ignored_never_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.png");
        save(&out, "fp", at(6), &image(4, 3, 1.0)).unwrap();
        let (_, json) = paths(&out);
        let good: Meta = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let why = |m: &Meta, content| {
            std::fs::write(&json, serde_json::to_vec(m).unwrap()).unwrap();
            match load(&out, "fp", &[(4, 10)], content) {
                Found::Ignored(w) => w,
                Found::Resume(r) => panic!("adopted: {:?}", r.meta),
                Found::Nothing => panic!("nothing"),
            }
        };
        // "Complete" although only 6 iterations of the scale were done (failed before:
        // adopted as the result).
        let done = Meta {
            iteration: 10,
            ..good.clone()
        };
        assert!(why(&done, None).contains("impossible state"));
        let negative = Meta {
            best_loss: -1.0,
            ..good.clone()
        };
        assert!(why(&negative, None).contains("impossible"));
        // The content is 8×6: at 4 px its image would be 4×3; at 8 px, 8×6.
        assert!(matches!(
            {
                std::fs::write(&json, serde_json::to_vec(&good).unwrap()).unwrap();
                load(&out, "fp", &[(4, 10)], Some((8, 6)))
            },
            Found::Resume(_)
        ));
        std::fs::write(&json, serde_json::to_vec(&good).unwrap()).unwrap();
        let Found::Ignored(w) = load(&out, "fp", &[(8, 10)], Some((8, 6))) else {
            panic!("a checkpoint of another size was adopted")
        };
        assert!(w.contains("scale 0 of this job is 8×6"), "{w}");
    }

    #[test]
    fn a_checkpoint_after_a_scale_the_stopping_rule_ended_early_is_resumed() {
        // Scale 0 (10 iterations) was done after 4 (the picture was done),
        // and scale 1 had run 3 when the run was stopped: iteration 7, not
        // 13 (failed before: ignored as an impossible state, and a poster
        // started afresh hours later).
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.png");
        let scales = [(4, 10), (4, 10)];
        let at = |iteration, scale_iteration| Position {
            iteration,
            of: 20,
            scale: 1,
            scale_iteration,
            best_loss: 5.0,
        };
        save(&out, "fp", at(7, 3), &image(4, 3, 1.0)).unwrap();
        let Found::Resume(r) = load(&out, "fp", &scales, None) else {
            panic!("not resumed")
        };
        assert_eq!(Start::from_meta(&r.meta).offset, 7);
        assert_eq!(
            remaining(&scales, r.meta.scale, r.meta.scale_iteration),
            [(1, 7)]
        );
        // More than the earlier scales could have run, or fewer than the
        // scale's own: impossible.
        for (iteration, scale_iteration) in [(14, 3), (2, 3)] {
            save(
                &out,
                "fp",
                at(iteration, scale_iteration),
                &image(4, 3, 1.0),
            )
            .unwrap();
            let Found::Ignored(why) = load(&out, "fp", &scales, None) else {
                panic!("adopted iteration {iteration}")
            };
            assert!(why.contains("impossible state"), "{why}");
        }
    }

    #[test]
    fn remaining_scales_after_a_checkpoint() {
        let scales = [(32, 10), (64, 5), (128, 5)];
        assert_eq!(remaining(&scales, 0, 0), vec![(0, 10), (1, 5), (2, 5)]);
        assert_eq!(remaining(&scales, 0, 4), vec![(0, 6), (1, 5), (2, 5)]);
        assert_eq!(remaining(&scales, 0, 10), vec![(1, 5), (2, 5)]);
        assert_eq!(remaining(&scales, 2, 5), vec![]);
    }

    fn report(iteration: usize, total: f64) -> IterationReport {
        IterationReport {
            iteration,
            of: 99,
            loss: LossParts {
                content: 0.0,
                style: 0.0,
                tv: 0.0,
                total,
                ..LossParts::default()
            },
            grad_norm: 1.0,
            elapsed: 0.0,
        }
    }

    /// Records the iterations it is shown.
    struct Seen(Vec<(usize, usize)>);
    impl Observer for Seen {
        fn on_iteration(
            &mut self,
            r: &IterationReport,
            _: &mut dyn FnMut() -> Result<CaffeImage>,
        ) -> Result<()> {
            self.0.push((r.iteration, r.of));
            Ok(())
        }
    }

    #[test]
    fn the_checkpointer_writes_the_best_image_of_the_scale_and_continues_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.png");
        let scale = Cell::new(0);
        let mut seen = Seen(Vec::new());
        let mut written = Vec::new();
        let mut on = |p: &Position| written.push(*p);
        // Resumed at iteration 4 of scale 0 (4 of its 6 done), 6 + 4 in all.
        let start = Start {
            offset: 4,
            scale: 0,
            scale_iteration: 4,
        };
        let mut c = Checkpointer::new(&mut seen, &out, "fp", Some(3), 10, start, &scale, &mut on);
        // Iterations 5, 6 of scale 0: the best (loss 1) is the first.
        let losses = [1.0, 2.0];
        for (k, l) in losses.iter().enumerate() {
            let v = k as f32 * 10.0;
            c.on_iteration(&report(k + 1, *l), &mut || Ok(image(4, 3, v)))
                .unwrap();
        }
        let Found::Resume(r) = load(&out, "fp", &[(4, 6), (8, 4)], None) else {
            panic!("no checkpoint at 6")
        };
        assert_eq!(
            (r.meta.iteration, r.meta.scale, r.meta.scale_iteration),
            (6, 0, 6)
        );
        assert_eq!(r.meta.best_loss, 1.0);
        assert_eq!(
            Picture::from_caffe(&r.image).rgb,
            Picture::from_caffe(&image(4, 3, 0.0)).rgb
        );
        // Scale 1 starts (the caller sets the scale before its first report).
        scale.set(1);
        for k in 3..=5 {
            c.on_iteration(&report(k, 100.0 - k as f64), &mut || {
                Ok(image(8, 6, k as f32))
            })
            .unwrap();
        }
        // Iteration 9 = 3rd of scale 1.
        let Found::Resume(r) = load(&out, "fp", &[(4, 6), (8, 4)], None) else {
            panic!("no checkpoint at 9")
        };
        assert_eq!(
            (r.meta.iteration, r.meta.scale, r.meta.scale_iteration),
            (9, 1, 3)
        );
        assert_eq!(r.image.width, 8);
        // An interrupt after one more iteration.
        let p = c.save_interrupted(&image(8, 6, 3.0), 90.0, 6).unwrap();
        assert_eq!((p.iteration, p.scale, p.scale_iteration), (10, 1, 4));
        drop(c);
        assert_eq!(
            written.iter().map(|p| p.iteration).collect::<Vec<_>>(),
            [6, 9, 10]
        );
        assert_eq!(seen.0, [(5, 10), (6, 10), (7, 10), (8, 10), (9, 10)]);
        // Without --checkpoint-every: only renumbering.
        let out2 = dir.path().join("p.png");
        let mut none = |_: &Position| panic!("no checkpoints");
        let mut silent = Silent;
        let mut c = Checkpointer::new(
            &mut silent,
            &out2,
            "fp",
            None,
            10,
            Start::default(),
            &scale,
            &mut none,
        );
        c.on_iteration(&report(3, 1.0), &mut || panic!("no download"))
            .unwrap();
        assert!(matches!(
            load(&out2, "fp", &[(4, 10)], None),
            Found::Nothing
        ));
    }

    /// A stand-in for the run loop: `n` iterations of the given scales with
    /// falling losses, the image's value being the global iteration; stops
    /// ("interrupted") after `stop_after` iterations.
    fn fake_paint(
        stop_after: usize,
        calls: &mut Vec<(Vec<(usize, usize)>, f32)>,
    ) -> Box<PaintScales<'_>> {
        Box::new(
            move |rest: &[(usize, usize)],
                  init: &CaffeImage,
                  scale: &Cell<usize>,
                  obs: &mut dyn Observer| {
                calls.push((rest.to_vec(), init.data[0]));
                let mut done = 0;
                let mut last = init.clone();
                for &(k, n) in rest {
                    scale.set(k);
                    for _ in 0..n {
                        if done == stop_after {
                            return Ok(RunOutcome {
                                best: last,
                                best_loss: 1.0,
                                best_iteration: done,
                                iterations: done,
                                stop: StopReason::Interrupted,
                                elapsed: std::time::Duration::ZERO,
                            });
                        }
                        done += 1;
                        let img = image(4, 3, init.data[0] + done as f32);
                        obs.on_iteration(&report(done, 1000.0 - done as f64), &mut || {
                            Ok(img.clone())
                        })?;
                        last = img;
                    }
                }
                Ok(RunOutcome {
                    best: last,
                    best_loss: 1.0,
                    best_iteration: done,
                    iterations: done,
                    stop: StopReason::Completed,
                    elapsed: std::time::Duration::ZERO,
                })
            },
        )
    }

    #[test]
    fn an_interrupted_job_resumes_where_it_stopped_and_other_settings_start_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path()); // 10 iterations, one scale
        let out = dir.path().join("o.png");
        let init = image(4, 3, -100.0);
        let mut logs = Vec::new();
        let mut written = Vec::new();
        let mut calls = Vec::new();
        let mut starts = Vec::new();
        // Interrupted after 7 iterations: checkpoints at 3, 6, and 7 (the interrupt).
        let p = paint_resumable(
            &s,
            &out,
            Some(3),
            &init,
            &mut Silent,
            &mut Hooks {
                log: &mut |m: &str| logs.push(m.to_string()),
                started: &mut |r| starts.push(r),
                checkpoint: &mut |p: &Position| written.push(p.iteration),
            },
            &mut fake_paint(7, &mut calls),
        )
        .unwrap();
        assert_eq!(p.outcome.stop, StopReason::Interrupted);
        assert_eq!((p.outcome.iterations, p.resumed_from), (7, None));
        assert_eq!(written, [3, 6, 7]);
        // The rerun starts from the checkpoint's image, with the 3 iterations left.
        let mut seen = Seen(Vec::new());
        let p = paint_resumable(
            &s,
            &out,
            Some(3),
            &init,
            &mut seen,
            &mut Hooks {
                log: &mut |m: &str| logs.push(m.to_string()),
                started: &mut |r| starts.push(r),
                checkpoint: &mut |p: &Position| written.push(p.iteration),
            },
            &mut fake_paint(usize::MAX, &mut calls),
        )
        .unwrap();
        assert_eq!(p.resumed_from, Some(7));
        assert_eq!(
            (p.outcome.iterations, p.outcome.stop),
            (10, StopReason::Completed)
        );
        assert_eq!(calls[1].0, [(0, 3)]);
        // The image resumed from: the 7th iteration's (−100 + 7), through 16 bits.
        assert!((calls[1].1 - -93.0).abs() < 0.5 / 257.0, "{}", calls[1].1);
        assert_eq!(seen.0, [(8, 10), (9, 10), (10, 10)]);
        assert_eq!(written, [3, 6, 7, 9]);
        assert!(
            logs.iter().any(|l| l.contains("at iteration 7 of 10")),
            "{logs:?}"
        );
        // Other settings: the checkpoint is not used, and the log says why.
        let mut t = s.clone();
        t.spec.tv_weight += 1.0;
        logs.clear();
        let p = paint_resumable(
            &t,
            &out,
            Some(3),
            &init,
            &mut Silent,
            &mut Hooks {
                log: &mut |m: &str| logs.push(m.to_string()),
                started: &mut |r| starts.push(r),
                checkpoint: &mut |_: &Position| {},
            },
            &mut fake_paint(usize::MAX, &mut calls),
        )
        .unwrap();
        assert_eq!((p.resumed_from, p.outcome.iterations), (None, 10));
        assert_eq!(calls[2], (vec![(0, 10)], -100.0));
        assert!(
            logs.iter()
                .any(|l| l.starts_with("warning: checkpoint ignored")
                    && l.contains("other settings")),
            "{logs:?}"
        );
        // Without --checkpoint-every nothing is read or written.
        remove(&out).unwrap();
        let p = paint_resumable(
            &s,
            &out,
            None,
            &init,
            &mut Silent,
            &mut Hooks {
                log: &mut |_: &str| {},
                started: &mut |r| starts.push(r),
                checkpoint: &mut |_: &Position| panic!("no checkpoint"),
            },
            &mut fake_paint(4, &mut calls),
        )
        .unwrap();
        assert_eq!(p.outcome.iterations, 4);
        assert!(matches!(
            load(&out, &fingerprint(&s).unwrap(), &s.scales, None),
            Found::Nothing
        ));
    }
}
