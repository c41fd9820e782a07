//! The checks every run makes before it decodes an image, loads the weights
//! or opens anything for writing, shared by the main job, `loss`, `compare`
//! and `batch`: the backend is in this build; every input is an existing
//! regular file; every written path has a supported extension, is not a
//! directory or special file, lies in an existing directory where a file can
//! be created (probed by creating and removing one), and is distinct from
//! every input and from every other written path (same canonical path, or
//! same device and inode); and every image is large enough for the layers it
//! must reach (see [`min_side`]).
//!
//! [`check_paths`] is a plain function over `(role, path)` lists, so that any
//! front-end can run it as one step between validating its options and
//! loading its inputs. Each failure is one line that names the option or role (and,
//! for a collision, both), cited as `neural_style_core::error::cite` does.

use super::written::{Frames, Written};
use crate::options::{InitName, Settings};
use neural_style_core::error::cite;
use neural_style_core::image_io::{self, Picture};
use neural_style_core::layers::LayerId;
use neural_style_core::{Error, Result};
use neural_style_weights as weights;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A file a run reads, with the option (or role) that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The option or role that names it (`content`, or `job 2` and a cited key).
    pub role: String,
    /// The file.
    pub path: PathBuf,
}

impl Input {
    /// An input `path` named by `role`.
    pub fn new(role: impl Into<String>, path: impl Into<PathBuf>) -> Input {
        Input {
            role: role.into(),
            path: path.into(),
        }
    }
}

/// What a written path will hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An image in the format of its extension (`.png`, `.jpg`, `.webp`, `.tif`).
    Image,
    /// An SVG file (`.svg`).
    Svg,
    /// Any other file (a log).
    Text,
    /// A directory the run creates if needed and writes files into.
    Dir,
}

/// A path a run writes, with the option (or role) that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The option or role that names it (`output`).
    pub role: String,
    /// The path.
    pub path: PathBuf,
    /// What it will hold.
    pub kind: Kind,
}

impl Output {
    /// An output `path` named by `role`.
    pub fn new(role: impl Into<String>, path: impl Into<PathBuf>, kind: Kind) -> Output {
        Output {
            role: role.into(),
            path: path.into(),
            kind,
        }
    }
}

/// Every check of the files of a run with settings `s` (its backend is
/// checked first, by [`super::prepare()`]), in order: the paths (the inputs of
/// `s` plus `extra`, against `outputs`), then the image sizes. Nothing is
/// decoded (image headers only) and nothing is written.
pub fn check_run(s: &Settings, extra: Vec<Input>, outputs: &[Output]) -> Result<()> {
    let written = Written {
        files: outputs.to_vec(),
        frames: Vec::new(),
    };
    check_run_written(s, extra, &written)
}

/// [`check_run`] against everything a job declared it may write (its
/// registry, [`super::written`]).
pub fn check_run_written(s: &Settings, extra: Vec<Input>, written: &Written) -> Result<()> {
    let mut inputs = inputs_of(s)?;
    inputs.extend(extra);
    check_written(&inputs, std::slice::from_ref(written))?;
    check_sizes(s)
}

/// The files a run with settings `s` reads: content, styles, masks, the
/// initial image, the `--config` file and the weights (when they are found
/// already; otherwise they are fetched later into the weights directory).
pub fn inputs_of(s: &Settings) -> Result<Vec<Input>> {
    let mut v = vec![Input::new("content", &s.files.content)];
    v.extend(s.files.styles.iter().map(|p| Input::new("style", p)));
    v.extend(
        s.files
            .masks
            .iter()
            .flatten()
            .map(|p| Input::new("style-mask", p)),
    );
    if s.init == InitName::Image {
        if let Some(p) = &s.files.init_image {
            v.push(Input::new("init-image", p));
        }
    }
    if let Some(p) = &s.files.config {
        v.push(Input::new("config", p));
    }
    if let Some(p) = weights::locate(s.options.weights.as_deref())? {
        v.push(Input::new("weights", p));
    }
    Ok(v)
}

/// Where a path points: its canonical form and, for an existing file, its
/// device and inode (which also catch hard links).
struct Identity {
    path: PathBuf,
    file: Option<(u64, u64)>,
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// The identity of `path`, existing or not (then its directory's canonical
/// path joined with its name).
fn identity(path: &Path) -> Identity {
    if let (Ok(meta), Ok(canonical)) = (std::fs::metadata(path), path.canonicalize()) {
        return Identity {
            path: canonical,
            file: file_id(&meta),
        };
    }
    let dir = parent(path);
    let canonical = match (dir.canonicalize(), path.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => path.to_path_buf(),
    };
    Identity {
        path: canonical,
        file: None,
    }
}

/// The canonical form of `path`, existing or not (then its directory's
/// canonical path joined with its name): two written paths with the same
/// canonical form are one file.
pub fn canonical(path: &Path) -> PathBuf {
    identity(path).path
}

/// The directory a file is written into (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Checks the paths of a run, before anything is read or written: every
/// input exists and is a regular file; every output passes [`check_output`];
/// no output is an input or another output. (The same as [`check_written`]
/// of one job without frames.)
pub fn check_paths(inputs: &[Input], outputs: &[Output]) -> Result<()> {
    check_written(
        inputs,
        &[Written {
            files: outputs.to_vec(),
            frames: Vec::new(),
        }],
    )
}

/// A path's location as a name in a directory: the directory's canonical
/// path (the file itself not resolved) and the file name.
fn location(path: &Path) -> Option<(PathBuf, String)> {
    let name = path.file_name()?.to_str()?.to_string();
    let dir = parent(path);
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    Some((dir, name))
}

/// Checks everything `jobs` declare they may write (their registry,
/// [`super::written`]) against `inputs`, before anything is read or
/// written, in O(n log n) for n paths:
///
/// - every input exists and is a regular file;
/// - every written file passes [`check_output`] (extension, not a directory
///   or special file, its directory exists and takes a new file) and is no
///   input and no other written file (same canonical path, or same device
///   and inode);
/// - no input and no other written file is named like a frame
///   (`DIR/STEM_NNNNN.png`) or like a temporary file of a written file
///   (which a run creates and may remove);
/// - every temporary name fits: its length (a file name of 231 bytes has a
///   temporary name of more than 255) and, by creating one as long in each
///   directory, the file system's own limit.
pub fn check_written(inputs: &[Input], jobs: &[Written]) -> Result<()> {
    let mut read_path: HashMap<PathBuf, usize> = HashMap::with_capacity(inputs.len());
    let mut read_file: HashMap<(u64, u64), usize> = HashMap::new();
    let mut read_at: Vec<(usize, PathBuf, String)> = Vec::with_capacity(inputs.len());
    let mut seen_raw: HashSet<&Path> = HashSet::with_capacity(inputs.len());
    for (k, i) in inputs.iter().enumerate() {
        if !seen_raw.insert(&i.path) {
            continue;
        }
        let meta = std::fs::metadata(&i.path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::config(&i.role, format!("{}: no such file", i.path.display()))
            } else {
                Error::io(&i.path, e)
            }
        })?;
        if !meta.is_file() {
            return Err(Error::config(
                &i.role,
                format!("{}: {}", i.path.display(), image_io::not_regular(&meta)),
            ));
        }
        let id = identity(&i.path);
        read_path.entry(id.path.clone()).or_insert(k);
        if let Some(f) = id.file {
            read_file.entry(f).or_insert(k);
        }
        // Where the name is (a symbolic link is replaced by a rename, not its
        // target) and where the file is.
        if let Some((dir, name)) = location(&i.path) {
            read_at.push((k, dir, name));
        }
        if let (Some(dir), Some(name)) = (id.path.parent(), id.path.file_name()) {
            read_at.push((k, dir.to_path_buf(), name.to_string_lossy().into_owned()));
        }
    }
    let outputs: Vec<&Output> = jobs.iter().flat_map(|j| &j.files).collect();
    let mut written_path: HashMap<PathBuf, &Output> = HashMap::with_capacity(outputs.len());
    let mut written_file: HashMap<(u64, u64), &Output> = HashMap::new();
    // (directory, file name) of every written file: its temporary files'.
    let mut temps: HashMap<(PathBuf, String), &Output> = HashMap::with_capacity(outputs.len());
    let mut written_at: Vec<(&Output, PathBuf, String)> = Vec::with_capacity(outputs.len());
    // The directory each file is created in, with the longest temporary
    // name it must take and the file that needs it.
    let mut probes: HashMap<PathBuf, (usize, &Output)> = HashMap::new();
    fn probe<'o>(
        probes: &mut HashMap<PathBuf, (usize, &'o Output)>,
        dir: PathBuf,
        len: usize,
        o: &'o Output,
    ) {
        let e = probes.entry(dir).or_insert((len, o));
        if len > e.0 {
            *e = (len, o);
        }
    }
    let made: Vec<&Path> = outputs
        .iter()
        .filter(|o| o.kind == Kind::Dir)
        .map(|o| o.path.as_path())
        .collect();
    for &o in &outputs {
        let id = identity(&o.path);
        let input = read_path
            .get(&id.path)
            .or_else(|| id.file.and_then(|f| read_file.get(&f)));
        if let Some(&k) = input {
            let i = &inputs[k];
            return Err(Error::config(
                &o.role,
                format!(
                    "{} is also {} ({}): a run never writes over its input; choose another {}",
                    o.path.display(),
                    cite(&i.role),
                    i.path.display(),
                    cite(&o.role)
                ),
            ));
        }
        let other = written_path
            .get(&id.path)
            .or_else(|| id.file.and_then(|f| written_file.get(&f)));
        if let Some(p) = other {
            return Err(Error::config(
                &o.role,
                format!(
                    "{} is also {} ({}): each written file needs its own name",
                    o.path.display(),
                    cite(&p.role),
                    p.path.display()
                ),
            ));
        }
        let dir = check_output_here(o, &made)?;
        if o.kind != Kind::Dir {
            let name_len = o.path.file_name().map_or(0, |n| n.len());
            check_temp_len(&o.role, &o.path, name_len)?;
            probe(&mut probes, dir, image_io::temp_name_len(name_len), o);
            if let Some((d, name)) = location(&o.path) {
                temps.insert((d.clone(), name.clone()), o);
                written_at.push((o, d, name));
            }
        } else {
            for f in jobs
                .iter()
                .flat_map(|j| &j.frames)
                .filter(|f| f.dir == o.path)
            {
                let len = f.longest_name();
                check_temp_len(&f.role, &f.pattern(), len)?;
                probe(&mut probes, dir.clone(), image_io::temp_name_len(len), o);
            }
        }
        written_path.insert(id.path, o);
        if let Some(f) = id.file {
            written_file.insert(f, o);
        }
    }
    // The frames, by the canonical form of their directory.
    let mut frames: HashMap<PathBuf, Vec<&Frames>> = HashMap::new();
    for f in jobs.iter().flat_map(|j| &j.frames) {
        frames.entry(identity(&f.dir).path).or_default().push(f);
    }
    let frame_of = |dir: &Path, name: &str| {
        frames
            .get(dir)
            .and_then(|fs| fs.iter().find(|f| f.matches_name(name)).copied())
    };
    let pattern = |dir: &Path, name: &str| -> Option<String> {
        if let Some(f) = frame_of(dir, name) {
            return Some(format!(
                "a {} frame would be written there ({})",
                cite(&f.role),
                f.pattern().display()
            ));
        }
        let (target, _) = image_io::temp_target(name)?;
        if let Some(o) = temps.get(&(dir.to_path_buf(), target.to_string())) {
            return Some(format!(
                "it is named like a temporary file of {} ({}), which a run creates and removes",
                cite(&o.role),
                o.path.display()
            ));
        }
        frame_of(dir, target).map(|f| {
            format!(
                "it is named like a temporary file of a {} frame, which a run creates and removes",
                cite(&f.role)
            )
        })
    };
    for (k, dir, name) in &read_at {
        if let Some(why) = pattern(dir, name) {
            let i = &inputs[*k];
            return Err(Error::config(
                &i.role,
                format!(
                    "{} is an input, but {why}; rename it or move it",
                    i.path.display()
                ),
            ));
        }
    }
    for (o, dir, name) in &written_at {
        if let Some(why) = pattern(dir, name) {
            return Err(Error::config(
                &o.role,
                format!(
                    "{}: {why}; each written file needs its own name",
                    o.path.display()
                ),
            ));
        }
    }
    let mut probes: Vec<_> = probes.into_iter().collect();
    probes.sort_by(|a, b| a.0.cmp(&b.0));
    for (dir, (len, o)) in probes {
        probe_writable(&dir, len).map_err(|e| {
            let why = if name_too_long(&e) {
                format!(
                    "this file system does not take the {len}-byte name of its temporary file; \
                     use a shorter name"
                )
            } else {
                format!("cannot create a file in `{}` ({e})", dir.display())
            };
            Error::config(&o.role, format!("{}: {why}", o.path.display()))
        })?;
    }
    Ok(())
}

/// Whether `e` is the file system refusing a name as too long.
fn name_too_long(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ENAMETOOLONG)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// The longest file name this project writes: its temporary file's must
/// stay within 255 bytes.
const NAME_MAX: usize = 255;

fn check_temp_len(role: &str, path: &Path, name_len: usize) -> Result<()> {
    let temp = image_io::temp_name_len(name_len);
    if temp <= NAME_MAX {
        return Ok(());
    }
    let most = name_len - (temp - NAME_MAX);
    Err(Error::config(
        role,
        format!(
            "{}: the file name is {name_len} bytes, too long: it is written through a \
             temporary file whose name is {} bytes longer, and a file name has at most \
             {NAME_MAX}; use at most {most} bytes",
            path.display(),
            temp - name_len
        ),
    ))
}

/// One written path: a supported extension for its kind; not a directory or
/// special file (nor a file, for a directory); its directory exists and a
/// file can be created there.
pub fn check_output(o: &Output) -> Result<()> {
    let dir = check_output_here(o, &[])?;
    let len = o.path.file_name().map_or(0, |n| n.len());
    check_temp_len(&o.role, &o.path, len)?;
    probe_writable(&dir, image_io::temp_name_len(len)).map_err(|e| {
        Error::config(
            &o.role,
            format!(
                "{}: cannot create a file in `{}` ({e})",
                o.path.display(),
                dir.display()
            ),
        )
    })
}

/// [`check_output`] without the probe: returns the directory to probe. A
/// file whose directory is one of `made` (directories the same run
/// creates: a video's manifest in its frames directory) may be in a
/// directory that does not exist yet.
fn check_output_here(o: &Output, made: &[&Path]) -> Result<PathBuf> {
    let bad = |msg: String| Error::config(&o.role, format!("{}: {msg}", o.path.display()));
    match o.kind {
        Kind::Image => {
            image_io::check_output_path(&o.path).map_err(|e| match e {
                Error::Config { msg, .. } => Error::config(&o.role, msg),
                e => e,
            })?;
        }
        Kind::Svg => {
            if o.path
                .extension()
                .is_none_or(|e| !e.eq_ignore_ascii_case("svg"))
            {
                return Err(bad("this is an SVG file: name it something.svg".into()));
            }
        }
        Kind::Text | Kind::Dir => {}
    }
    let existing = std::fs::symlink_metadata(&o.path).ok().map(|m| {
        if m.file_type().is_symlink() {
            std::fs::metadata(&o.path).unwrap_or(m)
        } else {
            m
        }
    });
    let dir = match (o.kind, &existing) {
        (Kind::Dir, Some(m)) if m.is_dir() => o.path.clone(),
        (Kind::Dir, Some(_)) => return Err(bad("exists and is not a directory".into())),
        (Kind::Dir, None) => {
            // Created with its missing parents: probe the nearest existing one.
            let mut d = parent(&o.path).to_path_buf();
            while !d.exists() {
                let up = parent(&d).to_path_buf();
                if up == d {
                    break;
                }
                d = up;
            }
            d
        }
        (_, Some(m)) if !m.is_file() => return Err(bad(image_io::not_regular(m))),
        _ if !parent(&o.path).exists() && made.contains(&parent(&o.path)) => {
            let made = Output::new(o.role.clone(), parent(&o.path), Kind::Dir);
            return check_output_here(&made, &[]);
        }
        _ => {
            let d = parent(&o.path);
            if !d.is_dir() {
                return Err(bad(format!(
                    "the directory `{}` does not exist",
                    d.display()
                )));
            }
            d.to_path_buf()
        }
    };
    Ok(dir.canonicalize().unwrap_or(dir))
}

/// Creates and removes a file in `dir` whose name is `len` bytes long (as
/// long as the longest temporary file to be made there).
fn probe_writable(dir: &Path, len: usize) -> std::io::Result<()> {
    let pid = std::process::id().to_string();
    // TEMP_PREFIX "probe" FILL "." PID "-" XXXXXX ".tmp"
    let fixed = image_io::TEMP_PREFIX.len() + 5 + 1 + pid.len() + 1 + 6 + 4;
    let fill = "x".repeat(len.saturating_sub(fixed));
    let f = tempfile::Builder::new()
        .prefix(&format!("{}probe{fill}.{pid}-", image_io::TEMP_PREFIX))
        .suffix(".tmp")
        .rand_bytes(6)
        .tempfile_in(dir)?;
    f.close()
}

/// The smallest side, in pixels, of an image that reaches `layer`: each 2×2
/// pooling before it halves the sides (rounding down), and a side that
/// reaches 0 leaves nothing to compare.
pub fn min_side(layer: LayerId) -> u32 {
    1 << layer.pools_up_to()
}

/// Refuses, from the image headers alone, a content (at every scale) or
/// style (at its `--style-size` or `--style-scale`) smaller than the deepest
/// layer it goes through needs ([`min_side`]), with the smallest size that
/// works; and any mask or initial image whose header does not decode.
pub fn check_sizes(s: &Settings) -> Result<()> {
    let content = Picture::probe(&s.files.content)?;
    let styles = s
        .files
        .styles
        .iter()
        .map(|p| Picture::probe(p))
        .collect::<Result<Vec<_>>>()?;
    for m in s.files.masks.iter().flatten() {
        Picture::probe(m)?;
    }
    if let (InitName::Image, Some(p)) = (s.init, &s.files.init_image) {
        Picture::probe(p)?;
    }
    check_dimensions(s, content, &styles)
}

/// The size checks of [`check_sizes`] on known dimensions: the content's
/// `(width, height)` and each style's (in the order of `s.styles`, whose
/// paths name them in messages).
pub fn check_dimensions(s: &Settings, content: (u32, u32), styles: &[(u32, u32)]) -> Result<()> {
    let styles = s.files.styles.iter().zip(styles.iter().copied());
    let short = |(w, h): (u32, u32)| w.min(h);
    let dims = |(w, h): (u32, u32)| format!("{w}×{h}");
    // The smallest longest side (≥ `from`) that gives a short side ≥ `need`.
    let smallest = |size: (u32, u32), need: u32, from: u32| {
        (from..=image_io::MAX_SIDE).find(|&l| short(image_io::size_longest(size, l)) >= need)
    };
    let flag = if s.scales.len() > 1 { "scales" } else { "size" };
    if let Some(deepest) = s.spec.deepest() {
        let need = min_side(deepest);
        for &(px, _) in &s.scales {
            let at = image_io::size_longest(content, px);
            if short(at) < need {
                let hint = match smallest(content, need, px) {
                    Some(m) if flag == "size" => format!("use `size` {m} or more"),
                    Some(m) => format!(
                        "every scale (`scales`, or `size` with `multires`) must be {m} px or more"
                    ),
                    None => "crop it or use shallower layers".into(),
                };
                return Err(Error::config(
                    flag,
                    format!(
                        "{} is {} and becomes {} at {px} px, but {deepest} needs at least \
                         {need} px a side: {hint}",
                        s.files.content.display(),
                        dims(content),
                        dims(at)
                    ),
                ));
            }
        }
    }
    let Some(deepest) = s.spec.style_layers.iter().map(|l| l.0).max() else {
        return Ok(());
    };
    let need = min_side(deepest);
    for (path, size) in styles {
        for &(px, _) in &s.scales {
            let at = s.style_size(size, image_io::size_longest(content, px));
            if short(at) >= need {
                continue;
            }
            let (flag, hint) = match (s.options.style_size, smallest(size, need, 1)) {
                (_, None) => ("style", "crop it or use shallower style layers".into()),
                (Some(_), Some(m)) => ("style-size", format!("use `style-size` {m} or more")),
                (None, Some(m)) => (
                    "style-scale",
                    format!("raise `style-scale`, or use `style-size` {m} or more"),
                ),
            };
            return Err(Error::config(
                flag,
                format!(
                    "{} is {} and becomes {}, but {deepest} needs at least {need} px a side: \
                     {hint}",
                    path.display(),
                    dims(size),
                    dims(at)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_side_doubles_with_each_pooling() {
        let m = |n: &str| min_side(LayerId::parse(n).unwrap());
        assert_eq!(
            [
                m("relu1_1"),
                m("relu2_1"),
                m("relu4_2"),
                m("relu5_1"),
                m("pool5")
            ],
            [1, 2, 8, 16, 32]
        );
    }

    #[test]
    fn collisions_name_both_flags_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("in.png"), b"x").unwrap();
        let inputs = [Input::new("content", d.join("in.png"))];
        let out = |flag: &str, name: &str, kind| Output::new(flag, d.join(name), kind);
        let e = check_paths(&inputs, &[out("json-log", "in.png", Kind::Text)]).unwrap_err();
        assert!(e.to_string().starts_with("json-log: "), "{e}");
        assert!(e.to_string().contains("is also `content`"), "{e}");
        let e = check_paths(
            &inputs,
            &[
                out("output", "o.png", Kind::Image),
                out("sheet", "./o.png", Kind::Image),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("is also `output`"), "{e}");
        assert!(check_paths(&inputs, &[out("plot", "p.png", Kind::Svg)]).is_err());
        check_paths(
            &inputs,
            &[
                out("output", "o.png", Kind::Image),
                out("json-log", "log.jsonl", Kind::Text),
                out("frames-dir", "f/g", Kind::Dir),
            ],
        )
        .unwrap();
        // Only the input is there: the probes left nothing behind.
        let names: Vec<_> = std::fs::read_dir(d).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_frame_collision_shows_the_frames_as_they_are_named() {
        // A video's frames have six digits (`frame_000002.png`); the
        // message showed five (`frame_NNNNN.png`), a name no frame has.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::create_dir(&f).unwrap();
        std::fs::write(f.join("frame_000002.png"), b"x").unwrap();
        std::fs::write(f.join("it_00007.png"), b"x").unwrap();
        let frames = |stem: &str, digits| Written {
            files: vec![Output::new("frames-dir", &f, Kind::Dir)],
            frames: vec![Frames {
                role: "frames-dir".into(),
                dir: f.clone(),
                stem: stem.into(),
                digits,
            }],
        };
        for (stem, digits, input, shown) in [
            ("frame", 6, "frame_000002.png", "frame_NNNNNN.png"),
            ("it", 2, "it_00007.png", "it_NNNNN.png"),
        ] {
            let inputs = [Input::new("style", f.join(input))];
            let e = check_written(&inputs, &[frames(stem, digits)]).unwrap_err();
            let want = f.join(shown).display().to_string();
            assert!(e.to_string().contains(&format!("({want})")), "{e}");
        }
    }
}
