//! The one registry of the paths a job may create or delete.
//!
//! [`Writes`] is what a job's options say about its files (the output, the
//! `--json-log`, `--plot`, `--sheet`, the `--save-every` frames, the
//! `--checkpoint-every` pair, and in a batch the partial output and the
//! claim files); [`Writes::declared`] turns it into the complete set
//! ([`Written`]): fixed paths ([`Output`]s) and, for the frames, a pattern
//! ([`Frames`]). Every atomically written file also has its temporary files
//! (`neural_style_core::image_io::TEMP_PREFIX`), a pattern derived from its
//! name. The preflight (`preflight::check_written`) checks exactly this set,
//! and the writers take their paths from here (the naming functions below
//! are the only place each name is made), so a file the preflight was not
//! told about cannot be written; the property tests of the binary
//! (`crates/cli/tests/it/registry.rs`) compare a directory's listing before
//! and after a run against [`Written::covers`].

use super::preflight::{Kind, Output};
use neural_style_core::image_io;
use std::path::{Path, PathBuf};

/// What a job's options say about the files it writes.
#[derive(Clone, Debug, Default)]
pub struct Writes {
    /// Prefixed to every role (`job 3 `, in a batch).
    pub role_prefix: String,
    /// The image it writes.
    pub output: PathBuf,
    /// `--json-log`.
    pub json_log: Option<PathBuf>,
    /// `--plot`.
    pub plot: Option<PathBuf>,
    /// `--sheet`.
    pub sheet: Option<PathBuf>,
    /// With `--save-every`: `--frames-dir`, or `None` for the default
    /// ([`default_frames_dir`]).
    pub frames: Option<Option<PathBuf>>,
    /// The job's total iterations (the frames' numbers go up to it).
    pub iterations: usize,
    /// `--checkpoint-every`: `OUTPUT.ckpt.png` and `OUTPUT.ckpt.json`.
    pub checkpoints: bool,
    /// A batch job: its partial output and its claim files.
    pub batch: bool,
}

/// The `--save-every` frames: `DIR/STEM_NNNNN.png` (the iteration, at least
/// five digits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frames {
    /// The option that names them.
    pub role: String,
    /// Their directory.
    pub dir: PathBuf,
    /// The output's file stem.
    pub stem: String,
    /// The most digits a frame number has in this job.
    pub digits: usize,
}

impl Frames {
    /// The frame of `iteration`.
    pub fn path(&self, iteration: usize) -> PathBuf {
        self.dir.join(format!("{}_{iteration:05}.png", self.stem))
    }

    /// Whether a file name is one of these frames' (`STEM_` digits `.png`),
    /// whatever the number.
    pub fn matches_name(&self, name: &str) -> bool {
        name.strip_prefix(self.stem.as_str())
            .and_then(|r| r.strip_prefix('_'))
            .and_then(|r| r.strip_suffix(".png"))
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The frames as a pattern for messages: `DIR/STEM_NNNNN.png`, one `N`
    /// per digit of the longest frame number (at least five).
    pub fn pattern(&self) -> PathBuf {
        let n = "N".repeat(self.digits.max(5));
        self.dir.join(format!("{}_{n}.png", self.stem))
    }

    /// The longest frame file name of the job.
    pub fn longest_name(&self) -> usize {
        self.stem.len() + 1 + self.digits.max(5) + ".png".len()
    }
}

/// Everything a job may create or delete.
#[derive(Clone, Debug, Default)]
pub struct Written {
    /// The fixed paths (a directory the job creates among them).
    pub files: Vec<Output>,
    /// The frames, each a pattern in its directory (declared in `files` as
    /// a directory): `--save-every`'s, or a video's.
    pub frames: Vec<Frames>,
}

/// `OUTPUT.ckpt.png` and `OUTPUT.ckpt.json` (the output's whole file name,
/// so `a.png` and `a.jpg` never share a checkpoint).
pub fn checkpoint_paths(output: &Path) -> (PathBuf, PathBuf) {
    (
        suffixed(output, ".ckpt.png"),
        suffixed(output, ".ckpt.json"),
    )
}

/// `OUTPUT.claim`: a batch job's claim.
pub fn claim_path(output: &Path) -> PathBuf {
    suffixed(output, ".claim")
}

/// `OUTPUT.claim.takeover`: the lock taken while replacing a stale claim.
pub fn takeover_path(output: &Path) -> PathBuf {
    suffixed(output, ".claim.takeover")
}

/// `NAME.partial.EXT` beside a batch job's output: its best image when a
/// signal stops it before its last iteration.
pub fn partial_path(output: &Path) -> PathBuf {
    let stem = output.file_stem().unwrap_or_default().to_string_lossy();
    let ext = output.extension().unwrap_or_default().to_string_lossy();
    output.with_file_name(format!("{stem}.partial.{ext}"))
}

/// `STEM_frames` beside the output: the frames' directory without `--frames-dir`.
pub fn default_frames_dir(output: &Path) -> PathBuf {
    let stem = output.file_stem().unwrap_or_default().to_string_lossy();
    output.with_file_name(format!("{stem}_frames"))
}

/// What `neural-style video` writes. In its frames directory: the styled
/// frames ([`video_frame`]: `frame_NNNNNN.png`, from 1), the best image of
/// a frame a signal stopped ([`interrupted_frame`]:
/// `interrupted_NNNNNN.png`), the manifest that ties them to their clip and
/// settings ([`video_manifest`]) and, with `--baseline`, the frames styled
/// one by one ([`baseline_dir`], the same names); beside: the video and the
/// report.
#[derive(Clone, Debug, Default)]
pub struct VideoWrites {
    /// `--frames-dir` (or its default).
    pub frames_dir: PathBuf,
    /// The encoded video, when the output is not a directory of frames.
    pub video: Option<PathBuf>,
    /// `--report`.
    pub report: Option<PathBuf>,
    /// `--baseline`.
    pub baseline: bool,
}

/// Styled video frame `index` (from 0) in `dir`: `frame_000001.png` for
/// the first (the names the encoder reads as `frame_%06d.png`).
pub fn video_frame(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("frame_{:06}.png", index + 1))
}

/// The best image so far of video frame `index` (from 0) when a signal
/// stopped it: `interrupted_000001.png` for the first.
pub fn interrupted_frame(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("interrupted_{:06}.png", index + 1))
}

/// The manifest of a video's frames directory (`video.json`): which clip
/// and settings its frames were made with.
pub fn video_manifest(frames_dir: &Path) -> PathBuf {
    frames_dir.join("video.json")
}

/// Where `--baseline` puts the frames styled one by one: `baseline/` in
/// the frames directory.
pub fn baseline_dir(frames_dir: &Path) -> PathBuf {
    frames_dir.join("baseline")
}

impl VideoWrites {
    /// The complete set of what the video job may create or delete.
    pub fn declared(&self) -> Written {
        let dir = &self.frames_dir;
        let pattern = |role: &str, dir: &Path, stem: &str| Frames {
            role: role.into(),
            dir: dir.to_path_buf(),
            stem: stem.into(),
            digits: 6,
        };
        let mut files = vec![
            Output::new("frames-dir", dir, Kind::Dir),
            Output::new("frames-dir manifest", video_manifest(dir), Kind::Text),
        ];
        let mut frames = vec![
            pattern("frames-dir", dir, "frame"),
            pattern("frames-dir", dir, "interrupted"),
        ];
        if self.baseline {
            let b = baseline_dir(dir);
            files.push(Output::new("baseline", &b, Kind::Dir));
            frames.push(pattern("baseline", &b, "frame"));
        }
        if let Some(v) = &self.video {
            files.push(Output::new("output", v, Kind::Text));
        }
        if let Some(r) = &self.report {
            files.push(Output::new("report", r, Kind::Text));
        }
        Written { files, frames }
    }
}

fn suffixed(output: &Path, suffix: &str) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    output.with_file_name(name)
}

impl Writes {
    /// The complete set of what this job may create or delete.
    pub fn declared(&self) -> Written {
        let p = &self.role_prefix;
        let role = |r: &str| format!("{p}{r}");
        let mut files = vec![Output::new(role("output"), &self.output, Kind::Image)];
        if let Some(path) = &self.json_log {
            files.push(Output::new(role("json-log"), path, Kind::Text));
        }
        if let Some(path) = &self.plot {
            files.push(Output::new(role("plot"), path, Kind::Svg));
        }
        if let Some(path) = &self.sheet {
            files.push(Output::new(role("sheet"), path, Kind::Image));
        }
        if self.checkpoints {
            let (image, meta) = checkpoint_paths(&self.output);
            files.push(Output::new(role("checkpoint image"), image, Kind::Image));
            files.push(Output::new(role("checkpoint"), meta, Kind::Text));
        }
        if self.batch {
            files.push(Output::new(
                role("partial output"),
                partial_path(&self.output),
                Kind::Image,
            ));
            files.push(Output::new(
                role("claim"),
                claim_path(&self.output),
                Kind::Text,
            ));
            files.push(Output::new(
                role("claim lock"),
                takeover_path(&self.output),
                Kind::Text,
            ));
        }
        let mut frames = Vec::new();
        if let Some(dir) = &self.frames {
            let dir = dir
                .clone()
                .unwrap_or_else(|| default_frames_dir(&self.output));
            files.push(Output::new(role("frames-dir"), &dir, Kind::Dir));
            frames.push(Frames {
                role: role("save-every"),
                dir,
                stem: self
                    .output
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                digits: self.iterations.max(1).to_string().len(),
            });
        }
        Written { files, frames }
    }
}

impl Written {
    /// The declared path of `role` (without the role prefix: `json-log`,
    /// `plot`, `sheet`, `output`…), for the writer that writes it.
    pub fn file(&self, role: &str) -> Option<&Path> {
        self.files
            .iter()
            .find(|o| o.role == role || o.role.ends_with(&format!(" {role}")))
            .map(|o| o.path.as_path())
    }

    /// Whether `path` (under `root`, as a directory listing gives it) is one
    /// this job declared: one of its files, a temporary file of one, one of
    /// its frames or their temporary files, or a directory it creates (the
    /// frames' directory and the directories above it). Paths are compared
    /// as given, relative to `root`.
    pub fn covers(&self, root: &Path, path: &Path) -> bool {
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                root.join(p)
            }
        };
        let path = abs(path);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let dir = path.parent().unwrap_or(Path::new(""));
        let temp_of = image_io::temp_target(name).map(|t| t.0);
        for o in &self.files {
            let declared = normal(&abs(&o.path));
            if o.kind == Kind::Dir {
                if declared.starts_with(normal(&path)) {
                    return true;
                }
                continue;
            }
            if declared == normal(&path) {
                return true;
            }
            let same_dir = declared.parent().map(normal) == Some(normal(dir));
            if same_dir
                && temp_of.is_some()
                && declared.file_name().and_then(|n| n.to_str()) == temp_of
            {
                return true;
            }
        }
        for f in &self.frames {
            if normal(&abs(&f.dir)) == normal(dir)
                && (f.matches_name(name) || temp_of.is_some_and(|t| f.matches_name(t)))
            {
                return true;
            }
        }
        false
    }
}

/// `path` without `.` components and with `a/../` folded (lexically: the
/// tests' paths have no symbolic links).
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feature_declares_its_files() {
        let w = Writes {
            output: "d/out.png".into(),
            json_log: Some("log.jsonl".into()),
            plot: Some("p.svg".into()),
            sheet: Some("sheet.png".into()),
            frames: Some(None),
            iterations: 250_000,
            checkpoints: true,
            batch: true,
            ..Writes::default()
        }
        .declared();
        let paths: Vec<String> = w
            .files
            .iter()
            .map(|o| o.path.display().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "d/out.png",
                "log.jsonl",
                "p.svg",
                "sheet.png",
                "d/out.png.ckpt.png",
                "d/out.png.ckpt.json",
                "d/out.partial.png",
                "d/out.png.claim",
                "d/out.png.claim.takeover",
                "d/out_frames",
            ]
        );
        let f = w.frames[0].clone();
        assert_eq!(f.path(7), Path::new("d/out_frames/out_00007.png"));
        assert_eq!(w.file("json-log"), Some(Path::new("log.jsonl")));
        assert_eq!(w.file("checkpoint"), Some(Path::new("d/out.png.ckpt.json")));
        assert_eq!(w.file("log"), None);
        assert_eq!(f.path(250_000), Path::new("d/out_frames/out_250000.png"));
        assert_eq!(f.longest_name(), "out_250000.png".len());
        assert!(f.matches_name("out_00002.png") && f.matches_name("out_1.png"));
        assert!(!f.matches_name("out_.png") && !f.matches_name("out_0001.jpg"));
        assert!(!f.matches_name("outx_00001.png") && !f.matches_name("out_00001a.png"));
        let root = Path::new("/r");
        let me = std::process::id();
        for yes in [
            "d/out.png",
            "d/./out.png.ckpt.json",
            "d",
            "d/out_frames",
            "d/out_frames/out_00003.png",
            &format!("d/.neural-style-out.png.{me}-aB3dE5.tmp"),
            &format!("d/out_frames/.neural-style-out_00003.png.{me}-aB3dE5.tmp"),
            "log.jsonl",
        ] {
            assert!(w.covers(root, Path::new(yes)), "{yes}");
        }
        for no in [
            "out.png",
            "d/out.jpg",
            "d/out_frames/other_00003.png",
            "d/.neural-style-c.png.1-aB3dE5.tmp",
            "c.png",
        ] {
            assert!(!w.covers(root, Path::new(no)), "{no}");
        }
    }

    #[test]
    fn the_video_declares_its_frames_interrupted_frames_manifest_and_baseline() {
        let w = VideoWrites {
            frames_dir: "d/v_frames".into(),
            video: Some("d/v.mp4".into()),
            report: Some("r.json".into()),
            baseline: true,
        }
        .declared();
        let dir = Path::new("d/v_frames");
        assert_eq!(
            video_frame(dir, 0),
            Path::new("d/v_frames/frame_000001.png")
        );
        assert_eq!(
            interrupted_frame(dir, 2),
            Path::new("d/v_frames/interrupted_000003.png")
        );
        let root = Path::new("/r");
        let me = std::process::id();
        for yes in [
            "d/v_frames",
            "d/v_frames/frame_000001.png",
            "d/v_frames/interrupted_000003.png",
            "d/v_frames/video.json",
            "d/v_frames/baseline",
            "d/v_frames/baseline/frame_000012.png",
            &format!("d/v_frames/.neural-style-interrupted_000003.png.{me}-aB3dE5.tmp"),
            &format!("d/v_frames/.neural-style-video.json.{me}-aB3dE5.tmp"),
            &format!("d/.neural-style-v.mp4.{me}-aB3dE5.tmp"),
            "d/v.mp4",
            "r.json",
        ] {
            assert!(w.covers(root, Path::new(yes)), "{yes}");
        }
        for no in [
            "d/v_frames/other.png",
            "d/v_frames/baseline/interrupted_000001.png",
            "d/v_frames/baseline/video.json",
            "d/frame_000001.png",
        ] {
            assert!(!w.covers(root, Path::new(no)), "{no}");
        }
        let no_baseline = VideoWrites {
            frames_dir: dir.into(),
            ..VideoWrites::default()
        }
        .declared();
        assert!(!no_baseline.covers(root, Path::new("d/v_frames/baseline/frame_000001.png")));
    }
}
