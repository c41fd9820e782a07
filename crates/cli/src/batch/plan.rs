//! `neural-style batch jobs.toml`: many content × style jobs in one process.
//!
//! The file (TOML, keys spelled as the long flags, like `--config` files):
//!
//! ```toml
//! [defaults]              # any option of the main job
//! size = 512
//! iterations = 500
//!
//! [[job]]                 # one job: the defaults, overridden
//! content = "photos/tubingen.jpg"
//! style = ["paintings/starry_night.jpg"]
//! output = "out/tubingen_starry.png"
//! style-weight = 200
//!
//! # and/or every content with every style, named {content}_{style}.{format}
//! contents = ["photos/a.jpg", "photos/b.jpg"]
//! styles = ["paintings/x.jpg", "paintings/y.jpg"]
//! output-dir = "out"
//! format = "jpg"          # default png
//! ```
//!
//! Relative paths are relative to the jobs file's directory. Jobs are
//! numbered from 0 in file order (`[[job]]` entries first, then the grid,
//! contents outer); `--shard I/N` runs the jobs `i` with `i % N == I`
//! (0-based, as Slurm's `$SLURM_ARRAY_TASK_ID` and Kubernetes'
//! `$JOB_COMPLETION_INDEX`). A job whose output exists is skipped, so a
//! killed batch resumes where it stopped.
//!
//! The work is split in two: [`plan`] resolves every job of the file and
//! refuses two jobs writing one file; [`check`] runs the preflight of
//! `crate::preflight` on the jobs a shard will run, before any image is
//! decoded or the weights are loaded. Running them is `crate::job::BatchRun`.

use neural_style::options::{parse_toml, InitName, Settings, StyleArgs};
use neural_style::run::preflight::{self, Input};
use neural_style::run::written::{self, Writes};
use neural_style_core::error::cite;
use neural_style_core::image_io::{check_output_path, OutputFormat, Picture};
use neural_style_core::{Error, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BatchFile {
    #[serde(default)]
    defaults: StyleArgs,
    #[serde(default)]
    job: Vec<StyleArgs>,
    #[serde(default)]
    contents: Vec<PathBuf>,
    #[serde(default)]
    styles: Vec<PathBuf>,
    output_dir: Option<PathBuf>,
    format: Option<String>,
}

/// `--shard I/N`: this process runs the jobs `i` with `i % N == I`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shard {
    /// This shard's index, 0-based.
    pub(crate) index: usize,
    /// The number of shards.
    pub(crate) count: usize,
}

impl std::str::FromStr for Shard {
    type Err = Error;
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || {
            Error::config(
                "shard",
                format!(
                    "`{s}` is not I/N with 0 ≤ I < N (0-based, e.g. `shard` $SLURM_ARRAY_TASK_ID/8)"
                ),
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// One job of a batch.
#[derive(Debug, Clone)]
pub(crate) struct BatchJob {
    /// 0-based position in the file.
    pub(crate) index: usize,
    /// Its options and input files, resolved.
    pub(crate) settings: Settings,
    /// The image it writes.
    pub(crate) output: PathBuf,
}

impl BatchJob {
    /// Where the best image of this job goes when a signal stops it before
    /// its last iteration: `NAME.partial.EXT` beside the output (the output
    /// itself is written only by a finished job, so a rerun redoes this one).
    pub(crate) fn partial(&self) -> PathBuf {
        written::partial_path(&self.output)
    }

    /// What this job may write (`checkpoints`: with `--checkpoint-every`).
    pub(crate) fn writes(&self, checkpoints: bool) -> Writes {
        Writes {
            role_prefix: format!("job {} ", self.index),
            output: self.output.clone(),
            iterations: self.settings.total_iterations(),
            checkpoints,
            batch: true,
            ..Writes::default()
        }
    }

    /// `job 3 (photos/a.jpg × art/x.jpg)`, for messages.
    pub(crate) fn describe(&self) -> String {
        let styles: Vec<String> = self
            .settings
            .files
            .styles
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!(
            "job {} ({} × {})",
            self.index,
            self.settings.files.content.display(),
            styles.join(" + ")
        )
    }
}

/// The jobs of a file, each resolved, before any work. `cli` holds the
/// options given on the batch command line: they override the file's
/// `[defaults]` and every `[[job]]`'s keys. Two jobs that would write the
/// same file (any file of their registry, `neural_style::run::written`:
/// with `checkpoints`, their checkpoint pairs too) are an error naming both.
pub(crate) fn plan(path: &Path, cli: &StyleArgs, checkpoints: bool) -> Result<Vec<BatchJob>> {
    if cli.content.is_some()
        || !cli.style.is_empty()
        || !cli.style_mask.is_empty()
        || cli.config.is_some()
    {
        return Err(Error::config(
            "batch",
            "`content`, `style`, `style-mask` and `config` belong in the jobs file; \
             other options given here override it",
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let file: BatchFile = parse_toml("batch", path, &text)?;
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let rebase = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            base.join(p)
        }
    };
    let fail = |what: String| Error::config("batch", format!("{}: {what}", path.display()));

    let mut entries: Vec<StyleArgs> = file
        .job
        .iter()
        .map(|j| file.defaults.clone().under(j))
        .collect();
    if !file.contents.is_empty() || !file.styles.is_empty() {
        let dir = file
            .output_dir
            .clone()
            .ok_or_else(|| fail("`contents` and `styles` need `output-dir`".into()))?;
        let ext = file.format.clone().unwrap_or_else(|| "png".into());
        if OutputFormat::from_extension(&ext).is_none() {
            return Err(fail(format!("format `{ext}`: use png, jpg, webp or tif")));
        }
        if file.contents.is_empty() || file.styles.is_empty() {
            return Err(fail("give both `contents` and `styles`".into()));
        }
        let stem = |p: &PathBuf| {
            p.file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        };
        for c in &file.contents {
            for s in &file.styles {
                let mut a = file.defaults.clone();
                a.content = Some(c.clone());
                a.style = vec![s.clone()];
                a.output = Some(dir.join(format!("{}_{}.{ext}", stem(c), stem(s))));
                entries.push(a);
            }
        }
    }
    if entries.is_empty() {
        return Err(fail(
            "no jobs: add [[job]] entries or `contents`, `styles` and `output-dir`".into(),
        ));
    }
    let mut jobs = Vec::with_capacity(entries.len());
    for (index, a) in entries.into_iter().enumerate() {
        if a.config.is_some() {
            return Err(fail(format!(
                "job {index}: a config file (`config = ...`) is not a batch key"
            )));
        }
        // Relative to the file's directory (as in `--config` files);
        // command-line options (relative to the working directory) win.
        let a = a.rebased(&base).under(cli);
        let output = a
            .output
            .as_ref()
            .map(rebase)
            .ok_or_else(|| fail(format!("job {index} has no output (`output = \"FILE\"`)")))?;
        let settings = a
            .resolve()
            .map_err(|e| fail(format!("job {index}: {}", e.cited())))?;
        check_output_path(&output).map_err(|e| fail(format!("job {index}: {}", e.cited())))?;
        jobs.push(BatchJob {
            index,
            settings,
            output,
        });
    }
    let first = &jobs[0].settings;
    let (b, w, t) = (
        &first.options.backend,
        &first.options.weights,
        first.options.threads,
    );
    if let Some(j) = jobs
        .iter()
        .find(|j| &j.settings.options.backend != b || &j.settings.options.weights != w)
    {
        return Err(fail(format!(
            "job {}: every job must use the same backend and weights: set them in [defaults]",
            j.index
        )));
    }
    // One process, one thread pool: a job's own `threads` cannot be honoured.
    if let Some(j) = jobs.iter().find(|j| j.settings.options.threads != t) {
        return Err(fail(format!(
            "job {}: `threads` is one for the whole batch (one process, one thread pool): \
             set it in [defaults] or on the command line, not per job",
            j.index
        )));
    }
    // No job may write another's input, even one whose output exists (it would be skipped).
    let mut read: HashMap<PathBuf, (usize, &str)> = HashMap::new();
    for (k, j) in jobs.iter().enumerate() {
        let s = &j.settings;
        let inputs = std::iter::once((&s.files.content, "content"))
            .chain(s.files.styles.iter().map(|p| (p, "style")))
            .chain(s.files.masks.iter().flatten().map(|p| (p, "style-mask")))
            .chain(s.files.init_image.iter().map(|p| (p, "init-image")));
        for (p, flag) in inputs {
            read.entry(preflight::canonical(p)).or_insert((k, flag));
        }
    }
    let declared: Vec<Vec<(PathBuf, PathBuf, String)>> = jobs
        .iter()
        .map(|j| {
            j.writes(checkpoints)
                .declared()
                .files
                .into_iter()
                .map(|o| {
                    let what = o.role.split_once(' ').map_or(&o.role[..], |r| r.1);
                    let what = what.split_once(' ').map_or(what, |r| r.1).to_string();
                    (preflight::canonical(&o.path), o.path, what)
                })
                .collect()
        })
        .collect();
    for (j, files) in jobs.iter().zip(&declared) {
        for (key, path, _) in files {
            if let Some(&(other, flag)) = read.get(key) {
                return Err(fail(format!(
                    "{} writes {}, which is the {} of {}: a batch never writes over an input",
                    j.describe(),
                    path.display(),
                    cite(flag),
                    jobs[other].describe()
                )));
            }
        }
    }
    // No two jobs may write one file (e.g. a/photo.jpg and b/photo.jpg on a
    // grid, or `a.png.ckpt.png` beside `a.png`'s checkpoint).
    let mut writers: HashMap<&PathBuf, (usize, &str)> = HashMap::new();
    for (k, files) in declared.iter().enumerate() {
        for (key, path, what) in files {
            if let Some(&(other, other_what)) = writers.get(key) {
                if other == k {
                    continue;
                }
                let (o, j) = (&jobs[other], &jobs[k]);
                return Err(fail(format!(
                    "{} and {} both write {} (the {other_what} of one, the {what} of the \
                     other): give one of them its own `output = \"FILE\"` in a [[job]]",
                    o.describe(),
                    j.describe(),
                    path.display()
                )));
            }
            writers.insert(key, (k, what));
        }
    }
    Ok(jobs)
}

/// The preflight of every job to run (see `crate::preflight`): inputs exist
/// and their headers decode, images are large enough, everything a job may
/// write (its registry, `neural_style::run::written`) is writable and is
/// nobody's input, before any job starts. Errors name the job. Only the
/// jobs to run are checked: a finished job is skipped without reading its
/// inputs (one may have been deleted since), and `plan` has already refused
/// any job writing another's input. O(n log n) in the number of jobs.
pub(crate) fn check(file: &Path, jobs: &[BatchJob], checkpoints: bool) -> Result<()> {
    let mut inputs = vec![Input::new("the jobs file", file)];
    let mut declared = Vec::with_capacity(jobs.len());
    for j in jobs {
        let name = format!("job {}", j.index);
        for i in preflight::inputs_of(&j.settings)? {
            inputs.push(Input::new(format!("{name} {}", cite(&i.role)), i.path));
        }
        declared.push(j.writes(checkpoints).declared());
    }
    preflight::check_written(&inputs, &declared)?;
    // Jobs of a grid share their input files: each header is read once.
    let mut headers: HashMap<PathBuf, (u32, u32)> = HashMap::new();
    let mut probe = |p: &Path| -> Result<(u32, u32)> {
        if let Some(&d) = headers.get(p) {
            return Ok(d);
        }
        let d = Picture::probe(p)?;
        headers.insert(p.to_path_buf(), d);
        Ok(d)
    };
    for j in jobs {
        neural_style::backends::check_selection(&j.settings.selection())?;
        let s = &j.settings;
        let sizes = (|| {
            let content = probe(&s.files.content)?;
            let styles = s
                .files
                .styles
                .iter()
                .map(|p| probe(p))
                .collect::<Result<Vec<_>>>()?;
            for m in s.files.masks.iter().flatten() {
                probe(m)?;
            }
            if let (InitName::Image, Some(p)) = (s.init, &s.files.init_image) {
                probe(p)?;
            }
            preflight::check_dimensions(s, content, &styles)
        })();
        sizes.map_err(|e| Error::config("batch", format!("{}: {}", j.describe(), e.cited())))?;
    }
    Ok(())
}

/// The jobs of this shard: those whose output does not exist yet, and
/// those whose output does.
pub(crate) fn todo(jobs: Vec<BatchJob>, shard: Option<Shard>) -> (Vec<BatchJob>, Vec<BatchJob>) {
    jobs.into_iter()
        .filter(|j| shard.is_none_or(|s| j.index % s.count == s.index))
        .partition(|j| !j.output.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parsing() {
        assert_eq!(
            "2/8".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 8 }
        );
        for bad in ["8/8", "1", "a/2", "1/0", "-1/3"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.starts_with("shard"), "{e}");
        }
    }

    #[test]
    fn grid_and_jobs_expand_in_order_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("jobs.toml");
        // (Top-level keys must come before the first table, as TOML has it.)
        std::fs::write(
            &f,
            "contents = [\"a.png\", \"b.png\"]\nstyles = [\"x.png\", \"y.png\"]\noutput-dir = \".\"\nformat = \"jpg\"\n\n\
             [defaults]\nsize = 64\n\n[[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"o.png\"\nstyle-weight = 7\n",
        )
        .unwrap();
        let jobs = plan(&f, &StyleArgs::default(), false).unwrap();
        assert_eq!(jobs.len(), 5);
        assert_eq!(jobs[0].settings.spec.style_weight, 7.0);
        assert_eq!(jobs[0].settings.size(), 64);
        assert_eq!(jobs[0].output, dir.path().join("o.png"));
        assert_eq!(jobs[2].output, dir.path().join(".").join("a_y.jpg"));
        assert_eq!(jobs[4].settings.files.content, dir.path().join("b.png"));
        let (left, skipped) = todo(jobs, Some(Shard { index: 1, count: 2 }));
        assert_eq!((left.len(), skipped.len()), (2, 0));
        assert_eq!(left[0].index, 1);

        std::fs::write(
            &f,
            "[defaults]\nsize = 64\n\n[[job]]\ncontent = \"c.png\"\nstlye = [\"s.png\"]\n",
        )
        .unwrap();
        let e = plan(&f, &StyleArgs::default(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 6") && e.contains("stlye"), "{e}");
    }
}
