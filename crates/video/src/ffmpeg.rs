//! Clips in and out through Debian's `ffmpeg` and `ffprobe` programs,
//! spawned (raw RGB over a pipe: `-f rawvideo -pix_fmt rgb24`), and
//! directories of numbered frames.
//!
//! Every error names the file at fault. A clip is refused before any work
//! when ffprobe cannot read it, when it has no video stream, when it is a
//! still image, and (at decoding) when fewer frames decode than its header
//! promises (a truncated file) or ffmpeg fails.

use neural_style_core::image_io::Picture;
use neural_style_core::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether `ffmpeg` and `ffprobe` can be run.
pub fn available() -> bool {
    ["ffmpeg", "ffprobe"].iter().all(|p| {
        Command::new(p)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// What ffprobe says about a clip.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// The frame rate as ffmpeg writes it (`30000/1001`, `25/1`).
    pub fps: String,
    /// Frames per second as a number.
    pub fps_value: f64,
    /// The frame count the container states, when it states one.
    pub frames: Option<usize>,
    /// Whether the clip has an audio stream (kept in the output).
    pub audio: bool,
}

/// `ffprobe` of `path`: the first video stream's size, frame rate and frame
/// count, and whether there is audio. Refuses a file ffprobe cannot read, a
/// file without a video stream and a still image, naming the file.
pub fn probe(path: &Path) -> Result<Probe> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::image(path, "not a regular file"));
    }
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::image(path, format!("cannot run ffprobe: {e} (install ffmpeg)")))?;
    if !out.status.success() {
        return Err(Error::image(
            path,
            format!(
                "not a readable video: {}",
                last_line(&String::from_utf8_lossy(&out.stderr))
            ),
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::image(path, format!("ffprobe's answer is not JSON: {e}")))?;
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let audio = streams.iter().any(|s| s["codec_type"] == "audio");
    let Some(video) = streams
        .iter()
        .find(|s| s["codec_type"] == "video" && s["disposition"]["attached_pic"] != 1)
    else {
        return Err(Error::image(path, "no video stream in this file"));
    };
    let format = v["format"]["format_name"].as_str().unwrap_or("");
    let frames = video["nb_frames"]
        .as_str()
        .and_then(|n| n.parse::<usize>().ok());
    let still = format.ends_with("_pipe") || format == "image2" || frames == Some(1);
    if still {
        return Err(Error::image(
            path,
            "a still image, not a video: give a clip, or a directory of numbered frames",
        ));
    }
    let (width, height) = (
        video["width"].as_u64().unwrap_or(0) as u32,
        video["height"].as_u64().unwrap_or(0) as u32,
    );
    if width == 0 || height == 0 {
        return Err(Error::image(path, "the video stream has no frame size"));
    }
    let rate = |k: &str| {
        let r = video[k].as_str()?;
        let (n, d) = r.split_once('/').unwrap_or((r, "1"));
        let (n, d) = (n.parse::<f64>().ok()?, d.parse::<f64>().ok()?);
        (n > 0.0 && d > 0.0).then(|| (r.to_string(), n / d))
    };
    let (fps, fps_value) = rate("avg_frame_rate")
        .or_else(|| rate("r_frame_rate"))
        .ok_or_else(|| Error::image(path, "the video stream has no frame rate"))?;
    Ok(Probe {
        width,
        height,
        fps,
        fps_value,
        frames,
        audio,
    })
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("ffmpeg gave no reason")
        .trim()
        .to_string()
}

/// Every frame of `path` (probed as `p`), decoded by ffmpeg to RGB,
/// handed to `each` in order (index from 0). Refuses a clip that ffmpeg
/// cannot decode to the end or that yields fewer frames than its header
/// states (truncated), naming the file. Returns the number of frames.
pub fn decode(
    path: &Path,
    p: &Probe,
    each: &mut dyn FnMut(usize, Picture) -> Result<()>,
) -> Result<usize> {
    let mut child = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-vsync", "passthrough"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::image(path, format!("cannot run ffmpeg: {e} (install ffmpeg)")))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let size = p.width as usize * p.height as usize * 3;
    let mut buf = vec![0u8; size];
    let mut n = 0;
    let mut result = Ok(());
    loop {
        match read_full(&mut stdout, &mut buf) {
            Ok(0) => break,
            Ok(k) if k < size => {
                result = Err(Error::image(path, "truncated: a partial frame at the end"));
                break;
            }
            Ok(_) => {}
            Err(e) => {
                result = Err(Error::io(path, e));
                break;
            }
        }
        let pic = Picture {
            width: p.width,
            height: p.height,
            rgb: buf.iter().map(|v| *v as f32).collect(),
        };
        if let Err(e) = each(n, pic) {
            result = Err(e);
            break;
        }
        n += 1;
    }
    drop(stdout);
    if result.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| Error::io(path, e))?;
    let errors = err_thread.join().unwrap_or_default();
    result?;
    if !status.success() {
        return Err(Error::image(
            path,
            format!("ffmpeg could not decode it: {}", last_line(&errors)),
        ));
    }
    if n < 2 {
        return Err(Error::image(
            path,
            format!("{n} frame(s) decoded: a video needs at least 2"),
        ));
    }
    if let Some(want) = p.frames {
        if n < want {
            return Err(Error::image(
                path,
                format!("truncated: {n} of the {want} frames its header states could be decoded"),
            ));
        }
    }
    if !errors.trim().is_empty() {
        return Err(Error::image(
            path,
            format!("damaged: ffmpeg reported {}", last_line(&errors)),
        ));
    }
    Ok(n)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The image files of `dir` whose names hold a number, in the order of
/// that number (the last run of digits: `frame_0012.png` is 12). Refuses a
/// directory with no such file or two files with one number.
pub fn numbered_frames(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut frames: Vec<(u64, PathBuf)> = Vec::new();
    for e in entries {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let path = e.path();
        let ext = path
            .extension()
            .and_then(|x| x.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !matches!(
            ext.as_str(),
            "png" | "jpg" | "jpeg" | "webp" | "tif" | "tiff" | "bmp"
        ) {
            continue;
        }
        let Some(number) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(last_number)
        else {
            continue;
        };
        frames.push((number, path));
    }
    frames.sort();
    if frames.is_empty() {
        return Err(Error::image(
            dir,
            "no numbered image files (frame_0001.png, …) in this directory",
        ));
    }
    for w in frames.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(Error::image(
                &w[1].1,
                format!("has the same frame number as {}", w[0].1.display()),
            ));
        }
    }
    Ok(frames.into_iter().map(|f| f.1).collect())
}

fn last_number(stem: &str) -> Option<u64> {
    let end = stem.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = stem[..end]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    stem[start..end].parse().ok()
}

/// What identifies a clip: its size in bytes and the sha256 of its bytes;
/// for a directory of frames, their total size and the sha256 of each
/// numbered frame's sha256, in order (the names do not count).
pub fn identify(content: &Path) -> Result<(u64, String)> {
    use sha2::Digest;
    let hash_file = |path: &Path| -> Result<(u64, sha2::Sha256)> {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => {
                    h.update(&buf[..k]);
                    bytes += k as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        Ok((bytes, h))
    };
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    if !content.is_dir() {
        let (bytes, h) = hash_file(content)?;
        return Ok((bytes, hex(&h.finalize())));
    }
    let mut all = sha2::Sha256::new();
    let mut total = 0u64;
    for f in numbered_frames(content)? {
        let (bytes, h) = hash_file(&f)?;
        all.update(h.finalize());
        total += bytes;
    }
    Ok((total, hex(&all.finalize())))
}

/// The name of output frame `index` (from 0) in a frames directory:
/// `frame_000001.png` for the first.
pub fn frame_name(index: usize) -> String {
    format!("frame_{:06}.png", index + 1)
}

/// Encode the frames `frames_dir/frame_%06d.png` (from 1) at `fps` into
/// `output` (its extension picks the container; H.264, yuv420p, for
/// `.mp4`/`.mkv`/`.mov`), with the audio of `audio_from` copied (or, if
/// the container refuses the codec, re-encoded to AAC). Written to a
/// temporary file next to `output`, renamed over it when ffmpeg succeeds.
pub fn encode(
    frames_dir: &Path,
    fps: &str,
    audio_from: Option<&Path>,
    output: &Path,
) -> Result<()> {
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let ext = output
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("mp4")
        .to_ascii_lowercase();
    // The container by name, since the temporary file's name is the one
    // every atomic write of this project uses (`.neural-style-NAME.PID-XXXXXX.tmp`,
    // `neural_style_core::image_io::temp_target`), which the preflight knows.
    let format = match ext.as_str() {
        "mkv" => "matroska",
        "mov" => "mov",
        _ => "mp4",
    };
    let name = output.file_name().unwrap_or_default().to_string_lossy();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(
            "{}{name}.{}-",
            neural_style_core::image_io::TEMP_PREFIX,
            std::process::id()
        ))
        .suffix(".tmp")
        .rand_bytes(6)
        .tempfile_in(dir)
        .map_err(|e| Error::io(output, e))?;
    let run = |audio_codec: &str| -> Result<(bool, String)> {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-nostdin", "-y", "-framerate", fps, "-i"])
            .arg(frames_dir.join("frame_%06d.png"));
        if let Some(a) = audio_from {
            cmd.arg("-i").arg(a);
            cmd.args(["-map", "0:v:0", "-map", "1:a?", "-c:a", audio_codec]);
        }
        cmd.args([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-crf",
            "17",
            // H.264 in 4:2:0 needs even sides.
            "-vf",
            "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-r",
            fps,
            "-f",
            format,
        ])
        .arg(tmp.path())
        .stdin(Stdio::null());
        let out = cmd.output().map_err(|e| {
            Error::io(
                output,
                std::io::Error::other(format!("cannot run ffmpeg: {e}")),
            )
        })?;
        Ok((
            out.status.success(),
            last_line(&String::from_utf8_lossy(&out.stderr)),
        ))
    };
    let (mut ok, mut why) = run("copy")?;
    if !ok && audio_from.is_some() {
        (ok, why) = run("aac")?;
    }
    if !ok {
        return Err(Error::image(
            output,
            format!("ffmpeg could not encode: {why}"),
        ));
    }
    tmp.persist(output)
        .map_err(|e| Error::io(output, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_numbers_are_the_last_digits() {
        assert_eq!(last_number("frame_0012"), Some(12));
        assert_eq!(last_number("v2_shot_7"), Some(7));
        assert_eq!(last_number("00031"), Some(31));
        assert_eq!(last_number("cover"), None);
        assert_eq!(frame_name(0), "frame_000001.png");
    }

    #[test]
    fn a_clip_is_identified_by_its_bytes_and_frames_by_theirs_in_order() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::write(p.join("a.mp4"), b"one clip").unwrap();
        std::fs::write(p.join("b.mp4"), b"one clip").unwrap();
        std::fs::write(p.join("c.mp4"), b"one clib").unwrap();
        let a = identify(&p.join("a.mp4")).unwrap();
        assert_eq!(a.0, 8);
        assert_eq!(
            a,
            identify(&p.join("b.mp4")).unwrap(),
            "the name does not count"
        );
        assert_ne!(a, identify(&p.join("c.mp4")).unwrap(), "one byte does");
        let frames = |dir: &str, names: [&str; 2], bytes: [&[u8]; 2]| {
            let f = p.join(dir);
            std::fs::create_dir(&f).unwrap();
            for (n, b) in names.iter().zip(bytes) {
                std::fs::write(f.join(n), b).unwrap();
            }
            identify(&f).unwrap()
        };
        let x = frames("x", ["f_1.png", "f_2.png"], [b"12", b"345"]);
        assert_eq!(x.0, 5);
        assert_eq!(x, frames("y", ["img1.png", "img2.png"], [b"12", b"345"]));
        assert_ne!(
            x,
            frames("z", ["f_1.png", "f_2.png"], [b"345", b"12"]),
            "the order does"
        );
        assert!(identify(&p.join("missing.mp4")).is_err());
    }
}
