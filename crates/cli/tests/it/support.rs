//! What the binary's end-to-end tests share, written once: the binary and
//! how it is run, what a run's output says, the standard fixture images, and
//! the error contract of a refused run (exit status 1, one `error:` line
//! naming the culprits, nothing left behind).
//!
//! `NEURAL_STYLE_TEST_BIN=/path/to/neural-style` runs the tests against
//! another build (an older one, say, to see which of them it fails).

use image::{Rgb, RgbImage};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The workspace's root (its README, weights/, target/ and tests/slurm/).
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The binary under test: this build's, or `$NEURAL_STYLE_TEST_BIN`.
pub fn bin() -> OsString {
    std::env::var_os("NEURAL_STYLE_TEST_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_neural-style").into())
}

/// The binary, run in `dir`, ignoring any weights path from the environment
/// so that the run finds (or fetches) the weights as a fresh user's would.
pub fn command(args: &[&str], dir: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .current_dir(dir)
        .env_remove(neural_style_weights::WEIGHTS_ENV)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    c
}

/// [`command`], run to completion.
pub fn run(args: &[&str], dir: &Path) -> Output {
    command(args, dir).output().expect("the binary runs")
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A run's status, stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(out.status.success(), "expected success: {}", describe(out));
}

/// The content: 80×60 (so `--size 64` makes it 64×48), a gradient with a
/// checkerboard on top.
pub fn content_image() -> RgbImage {
    RgbImage::from_fn(80, 60, |x, y| {
        let check = if (x / 8 + y / 8) % 2 == 0 { 40 } else { 210 };
        Rgb([(x * 3) as u8, (y * 4) as u8, check])
    })
}

/// A 48×48 style: diagonal stripes, `phase` shifts them and the colours.
pub fn style_image(phase: u32) -> RgbImage {
    RgbImage::from_fn(48, 48, |x, y| {
        let on = ((x + y + phase) / 6) % 2 == 0;
        if on {
            Rgb([230, (60 + phase * 20) as u8, 30])
        } else {
            Rgb([20, 40, (250 - x * 4) as u8])
        }
    })
}

/// A temporary directory holding `c.png` (content), `s.png` and `s2.png` (styles).
pub fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    content_image().save(dir.path().join("c.png")).unwrap();
    style_image(0).save(dir.path().join("s.png")).unwrap();
    style_image(3).save(dir.path().join("s2.png")).unwrap();
    dir
}

/// Every path under `dir`, relative, directories included.
pub fn listing(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.insert(p.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// Runs a command that must fail cleanly: exit status 1, exactly one line
/// on stderr starting with `error:` and containing every `culprit`, and the
/// directory exactly as it was before. Returns the error line.
#[track_caller]
pub fn assert_fails(args: &[&str], dir: &Path, culprits: &[&str]) -> String {
    let before = listing(dir);
    let out = run(args, dir);
    check_failure(&out, dir, &before, culprits)
}

/// [`assert_fails`] for a run already made, `before` being [`listing`] of
/// `dir` before it.
#[track_caller]
pub fn check_failure(
    out: &Output,
    dir: &Path,
    before: &BTreeSet<String>,
    culprits: &[&str],
) -> String {
    let line = error_line(out, culprits);
    assert_eq!(
        listing(dir),
        *before,
        "a failed run must leave nothing behind ({line})"
    );
    line
}

/// The one `error:` line of a failed run (exit status 1, blank lines
/// ignored), holding every `culprit`.
#[track_caller]
pub fn error_line(out: &Output, culprits: &[&str]) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a clean failure: {}",
        describe(out)
    );
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "stderr must be exactly one line: {}",
        describe(out)
    );
    let line = lines[0];
    assert!(line.starts_with("error: "), "{}", describe(out));
    for c in culprits {
        assert!(line.contains(c), "the error should name `{c}`: {line}");
    }
    line.to_string()
}

/// The paint flags of a small run, written once: `--size`/`--iterations`
/// when given, two threads, no loss lines, `--quiet` when asked, then `extra`.
pub fn paint_flags<'a>(
    size: Option<&'a str>,
    iterations: Option<&'a str>,
    quiet: bool,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut v = Vec::new();
    if let Some(s) = size {
        v.extend(["--size", s]);
    }
    if let Some(n) = iterations {
        v.extend(["--iterations", n]);
    }
    v.extend(["--threads", "2", "--print-every", "0"]);
    if quiet {
        v.push("--quiet");
    }
    v.extend_from_slice(extra);
    v
}

/// Decode an image (any format `image` knows) to 8-bit RGB.
pub fn decode(bytes: &[u8]) -> RgbImage {
    image::load_from_memory(bytes)
        .expect("decodes as an image")
        .to_rgb8()
}

/// Decode an image file: its format (from its bytes) and its pixels.
pub fn decode_file(path: &Path) -> (image::ImageFormat, RgbImage) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let format = image::guess_format(&bytes).expect("a known image format");
    (format, decode(&bytes))
}
