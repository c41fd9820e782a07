//! Clips made with ffmpeg for the tests.

use neural_style_core::testing::skip::skip;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bundled photo the clips are cut from.
pub fn photo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/src/serve/assets/samples/tubingen.jpg")
}

/// Whether ffmpeg runs here; skips (recorded) when it does not.
pub fn have_ffmpeg() -> bool {
    if neural_style_video::ffmpeg::available() {
        true
    } else {
        skip("ffmpeg and ffprobe are not installed (apt-get install ffmpeg)");
        false
    }
}

/// Whether this build computes optical flow; skips (recorded) when not.
pub fn have_flow() -> bool {
    if neural_style_video::flow::AVAILABLE {
        true
    } else {
        skip("built without the `opencv` feature (OpenCV DIS optical flow)");
        false
    }
}

/// Run ffmpeg with `args` (after `-v error -y`), panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A lossless clip (FFV1 in Matroska) of `frames` frames from the photo
/// through `filter`, at 25 fps.
pub fn clip(dir: &Path, name: &str, filter: &str, frames: usize) -> PathBuf {
    let out = dir.join(name);
    let photo = photo();
    ffmpeg(&[
        "-loop",
        "1",
        "-framerate",
        "25",
        "-i",
        photo.to_str().unwrap(),
        "-filter_complex",
        filter,
        "-frames:v",
        &frames.to_string(),
        "-c:v",
        "ffv1",
        out.to_str().unwrap(),
    ]);
    out
}

/// The pan: a 96×64 window moving right over the photo (scaled to 320
/// wide) by `step` pixels per frame, so the picture moves left by `step`.
pub fn pan_filter(step: u32) -> String {
    format!("scale=320:-2,crop=96:64:x='40+{step}*n':y=30")
}
