//! Image files in and out.
//!
//! A [`Picture`] is interleaved RGB as floats in 0–255. Loading accepts any
//! format the `image` crate decodes (PNG, JPEG, WebP, TIFF, GIF, BMP here),
//! turns grayscale into RGB, composites alpha over white, keeps 16-bit
//! precision and applies the EXIF orientation. Saving writes 8-bit RGB in the
//! format named by the extension, atomically: the image is encoded into a
//! temporary file beside the target and renamed over it, so a failed save
//! leaves nothing behind and never a half-written image.
//!
//! Every error is one line that names the file.

use crate::error::{Error, Result};
use crate::pixel::CaffeImage;
use image::error::{ImageError, ImageFormatHint, LimitErrorKind, UnsupportedErrorKind};
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageReader, Limits, Rgb32FImage};
use std::io::{BufWriter, Write};
use std::path::Path;

/// Largest accepted width or height of an input image, in pixels.
pub const MAX_SIDE: u32 = 32_768;

/// Largest accepted number of pixels (width × height) of an input image.
pub(crate) const MAX_PIXELS: u64 = 1 << 27;

/// Quality of every JPEG this project writes (files, and the studio's downloads).
pub const JPEG_QUALITY: u8 = 95;

/// An RGB image: `width × height` pixels, interleaved R, G, B floats in 0–255,
/// row-major from the top-left corner.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Interleaved RGB, row-major, 0–1.
    pub rgb: Vec<f32>,
}

/// The output formats [`Picture::save`] writes, chosen from the extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// `.png`: lossless, 8-bit RGB.
    Png,
    /// `.jpg` / `.jpeg`: quality `JPEG_QUALITY` (95).
    Jpeg,
    /// `.webp`: lossless.
    WebP,
    /// `.tif` / `.tiff`: uncompressed 8-bit RGB.
    Tiff,
}

impl OutputFormat {
    /// The format for a file extension (without the dot, any case), if supported.
    pub fn from_extension(ext: &str) -> Option<OutputFormat> {
        match ext.to_ascii_lowercase().as_str() {
            "png" => Some(OutputFormat::Png),
            "jpg" | "jpeg" => Some(OutputFormat::Jpeg),
            "webp" => Some(OutputFormat::WebP),
            "tif" | "tiff" => Some(OutputFormat::Tiff),
            _ => None,
        }
    }

    /// The canonical extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Jpeg => "jpg",
            OutputFormat::WebP => "webp",
            OutputFormat::Tiff => "tif",
        }
    }
}

const SUPPORTED_OUTPUTS: &str = "use .png, .jpg, .webp or .tif";

/// Checks an output path before any work is done: the extension must name a
/// supported format (png, jpg/jpeg, webp, tif/tiff, any case) and the parent
/// directory must exist. Returns the format the file will be written in.
pub fn check_output_path(path: &Path) -> Result<OutputFormat> {
    let format = match path.extension() {
        None => {
            return Err(Error::config(
                "output",
                format!(
                    "{}: no file extension to choose the format; {SUPPORTED_OUTPUTS}",
                    path.display()
                ),
            ))
        }
        Some(ext) => ext
            .to_str()
            .and_then(OutputFormat::from_extension)
            .ok_or_else(|| {
                Error::config(
                    "output",
                    format!(
                        "{}: unsupported extension `.{}`; {SUPPORTED_OUTPUTS}",
                        path.display(),
                        ext.to_string_lossy()
                    ),
                )
            })?,
    };
    let parent = output_dir(path);
    match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => Ok(format),
        Ok(_) => Err(Error::config(
            "output",
            format!(
                "{}: `{}` is not a directory",
                path.display(),
                parent.display()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::config(
            "output",
            format!(
                "{}: the directory `{}` does not exist",
                path.display(),
                parent.display()
            ),
        )),
        Err(e) => Err(Error::io(parent, e)),
    }
}

/// The directory a file is written into (`.` for a bare file name).
fn output_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Every temporary file this project writes starts with this, followed by
/// the target's file name, a dot, the writing process's id, a dash, six
/// random characters and `.tmp`: `.neural-style-out.png.4711-a1B2c3.tmp`
/// beside `out.png` ([`temp_target`] reads one back).
pub const TEMP_PREFIX: &str = ".neural-style-";

/// The longest temporary file name of a target whose file name is
/// `name_len` bytes: the prefix, the name, `.`, a pid of up to 10 digits,
/// `-`, six random characters and `.tmp`. A target whose temporary name
/// would pass the file system's limit (255 bytes on most) cannot be
/// written atomically: the preflight refuses it before any work.
pub fn temp_name_len(name_len: usize) -> usize {
    TEMP_PREFIX.len() + name_len + 1 + 10 + 1 + 6 + 4
}

/// The target's file name and the writer's pid of a temporary file name
/// this project writes (`.neural-style-NAME.PID-XXXXXX.tmp`), or `None`
/// for any other name.
pub fn temp_target(file_name: &str) -> Option<(&str, u32)> {
    let rest = file_name.strip_prefix(TEMP_PREFIX)?.strip_suffix(".tmp")?;
    let (name, tail) = rest.rsplit_once('.')?;
    let (pid, random) = tail.split_once('-')?;
    let ok = !name.is_empty()
        && random.len() == 6
        && random.bytes().all(|b| b.is_ascii_alphanumeric())
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit());
    Some((name, pid.parse().ok()?)).filter(|_| ok)
}

/// Writes `path` atomically: `write` fills a temporary file in the same
/// directory ([`TEMP_PREFIX`]), which is synced and renamed over `path`. On
/// any error the temporary file is removed and `path` is untouched. A
/// temporary file of an earlier write to the same `path` that was killed
/// before its rename (SIGKILL, power loss) is removed first, but only once
/// its owner is gone ([`remove_stale_temps`]): another process writing the
/// same target at the same time keeps its temporary file. `mode` is the
/// new file's permission bits before the umask (Unix).
pub(crate) fn write_atomic(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut BufWriter<&mut std::fs::File>) -> Result<()>,
) -> Result<()> {
    let dir = output_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    remove_stale_temps(dir, &name);
    let prefix = format!("{TEMP_PREFIX}{name}.{}-", std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp").rand_bytes(6);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut tmp = builder.tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    // From here on, dropping `tmp` on an error removes the temporary file.
    {
        let mut out = BufWriter::new(tmp.as_file_mut());
        write(&mut out)?;
        out.flush().map_err(|e| Error::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// `write_atomic` of bytes already in memory.
pub fn write_file_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_atomic(path, mode, |out| {
        out.write_all(bytes).map_err(|e| Error::io(path, e))
    })
}

/// How old a temporary file of a process not running here must be before
/// it is removed: the writer may run on another host sharing the directory
/// (NFS), where its pid means nothing; no single write takes this long.
const TEMP_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes what a killed `write_atomic` of `name` left in `dir`: the
/// temporary files of `name` (`.neural-style-NAME.PID-XXXXXX.tmp`) whose
/// process is not running on this host and that were not modified for
/// [`TEMP_STALE_AFTER`], and those of older builds (no pid in the name)
/// equally old. A temporary file of a live process is never removed. Best effort.
fn remove_stale_temps(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let legacy = format!("{TEMP_PREFIX}{name}.");
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(file) = file.to_str() else { continue };
        let owner = match temp_target(file) {
            Some((n, pid)) if n == name => Some(pid),
            Some(_) => continue,
            None => {
                let old = file
                    .strip_prefix(&legacy)
                    .and_then(|r| r.strip_suffix(".tmp"))
                    .is_some_and(|r| r.len() == 6 && r.bytes().all(|b| b.is_ascii_alphanumeric()));
                if !old {
                    continue;
                }
                None
            }
        };
        if owner.is_some_and(process_runs) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| std::time::SystemTime::now().duration_since(m).ok());
        if meta.is_file() && age.is_some_and(|a| a > TEMP_STALE_AFTER) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Whether a process with this id runs here (`/proc/PID`; without `/proc`,
/// assumed to run: nothing is removed on a guess).
fn process_runs(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Error messages from the decoders can span lines; ours never do.
fn one_line(msg: impl std::fmt::Display) -> String {
    msg.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn undecodable(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::image(
        path,
        format!("not an image the decoder understands: {}", one_line(why)),
    )
}

fn too_large(path: &Path) -> Error {
    Error::image(
        path,
        format!(
            "image is too large (the limit is {MAX_SIDE} pixels a side and {} megapixels)",
            MAX_PIXELS / 1_000_000
        ),
    )
}

/// Turns a decoding error into our one-line error naming the file.
fn decode_error(path: &Path, err: ImageError) -> Error {
    match err {
        ImageError::Limits(l) => match l.kind() {
            LimitErrorKind::DimensionError | LimitErrorKind::InsufficientMemory => too_large(path),
            _ => undecodable(path, l),
        },
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            undecodable(path, "the file ends too early (truncated?)")
        }
        ImageError::IoError(e) => Error::io(path, e),
        ImageError::Unsupported(e) => match e.kind() {
            UnsupportedErrorKind::Format(ImageFormatHint::Exact(f)) => undecodable(
                path,
                format!("{f:?} images are not supported by this build"),
            ),
            UnsupportedErrorKind::Format(_) => undecodable(
                path,
                "unknown file format (readable formats: PNG, JPEG, WebP, TIFF, GIF, BMP)",
            ),
            _ => undecodable(path, e),
        },
        ImageError::Decoding(e) => undecodable(path, e),
        other => undecodable(path, other),
    }
}

/// The bytes of an input file, refusing anything but a non-empty regular
/// file (a directory, a FIFO, a device such as `/dev/zero`) before reading.
pub(crate) fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::image(path, "no such file"))
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    if !meta.is_file() {
        return Err(Error::image(path, not_regular(&meta)));
    }
    if meta.len() == 0 {
        return Err(undecodable(path, "the file is empty"));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// "not a regular file (a directory)" and the like.
pub fn not_regular(meta: &std::fs::Metadata) -> String {
    let ft = meta.file_type();
    let what = if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        special_kind(&ft)
    };
    format!("not a regular file ({what})")
}

#[cfg(unix)]
fn special_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// The decoder of an in-memory file, its header read and its size checked;
/// no pixel is decoded yet.
fn header<'a>(path: &Path, bytes: &'a [u8]) -> Result<impl ImageDecoder + 'a> {
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    reader.limits(decoder_limits());
    let decoder = reader.into_decoder().map_err(|e| {
        // Some decoders refuse an empty or huge image outright, without
        // saying how big it is; say so plainly where we can tell.
        match header_size(bytes).map(|size| check_size(path, size)) {
            Some(Err(size_error)) => size_error,
            _ => decode_error(path, e),
        }
    })?;
    check_size(path, decoder.dimensions())?;
    Ok(decoder)
}

/// Refuses a PNG or JPEG that stops before the end of its data (a cut-off
/// download or copy), which some decoders would otherwise paint with grey
/// or black for the missing rows. A JPEG is complete when an end-of-image
/// marker (`FF D9`) follows its last start-of-scan marker (`FF DA`; neither
/// can occur inside entropy-coded data, where `FF` is always followed by
/// `00` or a restart marker); a PNG when it holds its `IEND` chunk.
fn check_complete(path: &Path, bytes: &[u8]) -> Result<()> {
    let truncated = || undecodable(path, "the file ends too early (truncated?)");
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let iend = b"\0\0\0\0IEND\xAE\x42\x60\x82";
        if !bytes.windows(iend.len()).any(|w| w == iend) {
            return Err(truncated());
        }
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        let last = |m: u8| bytes.windows(2).rposition(|w| w == [0xFF, m]);
        match (last(0xDA), last(0xD9)) {
            (Some(sos), Some(eoi)) if eoi > sos => {}
            _ => return Err(truncated()),
        }
    }
    Ok(())
}

/// The size a file's header declares, read by hand for the formats whose
/// decoders refuse some sizes (zero, huge) before they can be asked:
/// PNG, BMP and GIF. `None` for anything else.
fn header_size(head: &[u8]) -> Option<(u32, u32)> {
    let head = &head[..head.len().min(32)];
    let n = head.len();
    let be32 = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let le32 = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let le16 = |i: usize| u32::from(u16::from_le_bytes([head[i], head[i + 1]]));
    if n >= 24 && head.starts_with(b"\x89PNG\r\n\x1a\n") && &head[12..16] == b"IHDR" {
        Some((be32(16), be32(20)))
    } else if n >= 26 && head.starts_with(b"BM") {
        match le32(14) {
            12 => Some((le16(18), le16(20))),
            // Signed; a negative height means top-down rows.
            _ => Some((le32(18), (le32(22) as i32).unsigned_abs())),
        }
    } else if n >= 10 && (head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a")) {
        Some((le16(6), le16(8)))
    } else {
        None
    }
}

/// Refuses a zero-sized or absurdly large image, given its declared size.
fn check_size(path: &Path, (w, h): (u32, u32)) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(Error::image(path, "image has zero width or height"));
    }
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(Error::image(
            path,
            format!(
                "image is {w}×{h}, too large (the limit is {MAX_SIDE} pixels a side and {} megapixels)",
                MAX_PIXELS / 1_000_000
            ),
        ));
    }
    Ok(())
}

fn decoder_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    // The decoded buffer (at most 16-bit RGBA) plus decoder working space.
    limits.max_alloc = Some(MAX_PIXELS * 8 + (256 << 20));
    limits
}

/// A network-space image resized to `width × height` (Lanczos3, in float,
/// values kept to 0–255 after the mean is added back; no rounding). Used to
/// carry an image from one scale of a multi-resolution run to the next.
pub(crate) fn resize_caffe(img: &CaffeImage, width: usize, height: usize) -> CaffeImage {
    if (img.width, img.height) == (width, height) {
        return img.clone();
    }
    let p = Picture {
        width: img.width as u32,
        height: img.height as u32,
        rgb: img
            .to_rgb()
            .into_iter()
            .map(|v| v.clamp(0.0, 255.0))
            .collect(),
    };
    p.resize_to(width as u32, height as u32).to_caffe()
}

impl Picture {
    /// Loads an image file: any format the decoder understands, grayscale
    /// made RGB, alpha composited over white, 16-bit precision kept, EXIF
    /// orientation applied.
    pub fn load(path: &Path) -> Result<Picture> {
        Picture::decode(path, &read_regular(path)?)
    }

    /// [`Picture::load`] of bytes already read from `path` (named in the
    /// errors): what a caller that checked the bytes (a checksum) decodes,
    /// instead of reading a file another process may have replaced since.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Picture> {
        let mut decoder = header(path, bytes)?;
        // A damaged EXIF block is no reason to refuse the pixels.
        let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
        check_complete(path, bytes)?;
        let mut img = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, e))?;
        img.apply_orientation(orientation);
        if img.width() == 0 || img.height() == 0 {
            return Err(Error::image(path, "image has zero width or height"));
        }
        Ok(Picture::from_dynamic(&img))
    }

    /// The size [`Picture::load`] would give (EXIF orientation applied),
    /// from the file's header alone: the pixels are not decoded. Refuses
    /// what `load` refuses before decoding (a missing, empty, special or
    /// unreadable file, an unknown format, a zero or huge size) and a PNG
    /// or JPEG that does not reach the end of its data.
    pub fn probe(path: &Path) -> Result<(u32, u32)> {
        let bytes = read_regular(path)?;
        let mut decoder = header(path, &bytes)?;
        let (w, h) = decoder.dimensions();
        check_complete(path, &bytes)?;
        let turned = matches!(
            decoder.orientation().unwrap_or(Orientation::NoTransforms),
            Orientation::Rotate90
                | Orientation::Rotate270
                | Orientation::Rotate90FlipH
                | Orientation::Rotate270FlipH
        );
        Ok(if turned { (h, w) } else { (w, h) })
    }

    /// Converts a decoded image: RGB floats in 0–255, alpha over white.
    fn from_dynamic(img: &DynamicImage) -> Picture {
        let (width, height) = (img.width(), img.height());
        let color = img.color();
        let bits = 8 * color.bytes_per_pixel() / color.channel_count();
        let has_alpha = color.has_alpha();
        let n = width as usize * height as usize;
        let mut rgb = Vec::with_capacity(n * 3);
        // `scale` takes a sample to 0–255 exactly for 8 and 16 bits
        // (65535 = 255 × 257); `amax` is the sample value of full opacity.
        let mut push = |px: [f32; 4], scale: f32, amax: f32| {
            if has_alpha {
                let a = (px[3] / amax).clamp(0.0, 1.0);
                for c in &px[..3] {
                    rgb.push(c * scale * a + 255.0 * (1.0 - a));
                }
            } else {
                rgb.extend(px[..3].iter().map(|c| c * scale));
            }
        };
        match bits {
            8 => {
                for p in img.to_rgba8().pixels() {
                    push(p.0.map(f32::from), 1.0, 255.0);
                }
            }
            16 => {
                for p in img.to_rgba16().pixels() {
                    push(p.0.map(f32::from), 1.0 / 257.0, 65535.0);
                }
            }
            _ => {
                for p in img.to_rgba32f().pixels() {
                    push(p.0.map(|v| v.clamp(0.0, 1.0)), 255.0, 1.0);
                }
            }
        }
        Picture { width, height, rgb }
    }

    /// Resized so that the longer side is `longest` pixels, aspect kept, each
    /// side at least 1. Returns an exact copy when the size already matches.
    pub fn resize_longest(&self, longest: u32) -> Picture {
        let (nw, nh) = self.size_longest(longest);
        self.resize_to(nw, nh)
    }

    /// The size [`Picture::resize_longest`] gives, without resizing.
    pub fn size_longest(&self, longest: u32) -> (u32, u32) {
        size_longest((self.width, self.height), longest)
    }

    /// Resized to exactly `width × height` (Lanczos3); a zero side is taken as
    /// 1. Returns an exact copy when the size already matches.
    pub fn resize_to(&self, width: u32, height: u32) -> Picture {
        let (width, height) = (width.max(1), height.max(1));
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        assert_eq!(
            self.rgb.len(),
            self.width as usize * self.height as usize * 3,
            "Picture buffer does not match its size"
        );
        // The resampler clamps float images to 0–1, so work in that range.
        let norm: Vec<f32> = self.rgb.iter().map(|v| v / 255.0).collect();
        let src = Rgb32FImage::from_raw(self.width, self.height, norm)
            .expect("buffer size checked above");
        let out = image::imageops::resize(&src, width, height, FilterType::Lanczos3);
        Picture {
            width,
            height,
            rgb: out
                .into_raw()
                .into_iter()
                .map(|v| (v * 255.0).clamp(0.0, 255.0))
                .collect(),
        }
    }

    /// Resized to about `pixels` pixels in all (width × height), aspect kept,
    /// each side at least 1. Returns an exact copy when the size already
    /// matches (or `pixels` is not a positive finite number).
    pub fn resize_to_pixels(&self, pixels: f64) -> Picture {
        let (nw, nh) = self.size_for_pixels(pixels);
        self.resize_to(nw, nh)
    }

    /// The size [`Picture::resize_to_pixels`] gives, without resizing.
    pub fn size_for_pixels(&self, pixels: f64) -> (u32, u32) {
        size_for_pixels((self.width, self.height), pixels)
    }

    /// Into the network's pixel space (BGR, minus the Caffe mean, planar).
    pub fn to_caffe(&self) -> CaffeImage {
        CaffeImage::from_rgb(self.width as usize, self.height as usize, &self.rgb)
    }

    /// Out of the network's pixel space: add the mean, BGR→RGB, round and
    /// clamp to 0–255 (the values an 8-bit file will hold).
    pub fn from_caffe(img: &CaffeImage) -> Picture {
        Picture {
            width: img.width as u32,
            height: img.height as u32,
            rgb: img.to_rgb8().into_iter().map(f32::from).collect(),
        }
    }

    /// The pixels as 8-bit RGB: rounded and clamped to 0–255.
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.rgb
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect()
    }

    /// A picture that can be written: not empty, as many values as pixels.
    fn check_pixels(&self, path: &Path) -> Result<()> {
        if self.width == 0 || self.height == 0 {
            return Err(Error::image(
                path,
                "cannot save an image with zero width or height",
            ));
        }
        if self.rgb.len() != self.width as usize * self.height as usize * 3 {
            return Err(Error::image(
                path,
                format!(
                    "cannot save: {} values do not make a {}×{} RGB image",
                    self.rgb.len(),
                    self.width,
                    self.height
                ),
            ));
        }
        Ok(())
    }

    /// Out of the network's pixel space without rounding (clamped to 0–255
    /// only when written): the picture a 16-bit file is made from.
    pub fn from_caffe_exact(img: &CaffeImage) -> Picture {
        Picture {
            width: img.width as u32,
            height: img.height as u32,
            rgb: img.to_rgb(),
        }
    }

    /// Writes 8-bit RGB in the format named by the extension (see
    /// [`check_output_path`]); JPEG at quality `JPEG_QUALITY` (95), WebP
    /// lossless. The write is atomic: the image is encoded into a temporary
    /// file in the same directory and renamed over `path`; on any error
    /// neither a partial image nor the temporary file is left behind.
    pub fn save(&self, path: &Path) -> Result<()> {
        let format = check_output_path(path)?;
        self.check_pixels(path)?;
        let rgb = self.to_rgb8();
        // Streamed into the temporary file: a poster is not held twice.
        write_atomic(path, 0o666, |out| {
            encode(out, format, &rgb, self.width, self.height).map_err(|e| encode_error(path, e))
        })
    }

    /// The bytes [`Picture::save`] writes to `path` (its format named by
    /// the extension), in memory: what a caller that must describe the
    /// file it wrote (a checkpoint's sha256) hashes, instead of reading
    /// back a file another process may already have replaced or removed.
    pub fn encoded(&self, path: &Path) -> Result<Vec<u8>> {
        let format = check_output_path(path)?;
        self.check_pixels(path)?;
        let rgb = self.to_rgb8();
        let mut out = std::io::Cursor::new(Vec::new());
        encode(&mut out, format, &rgb, self.width, self.height)
            .map_err(|e| encode_error(path, e))?;
        Ok(out.into_inner())
    }

    /// [`Picture::save`] with `options`: 16 bits per channel and the
    /// resolution in dots per inch (PNG `pHYs`, TIFF `XResolution`,
    /// `YResolution` and `ResolutionUnit`), for `.png` and `.tif` (a
    /// poster's print size); [`SaveOptions::check`]ed first. Atomic as
    /// [`Picture::save`] is; without options, exactly [`Picture::save`].
    pub fn save_with(&self, path: &Path, options: SaveOptions) -> Result<()> {
        if options == SaveOptions::default() {
            return self.save(path);
        }
        let format = options.check(path)?;
        self.check_pixels(path)?;
        write_atomic(path, 0o666, |out| {
            self.encode_with(out, path, format, options)
        })
    }

    /// The bytes [`Picture::save_with`] writes to `path`, in memory (as
    /// [`Picture::encoded`] is to [`Picture::save`]): a 16-bit checkpoint
    /// whose sha256 its JSON names.
    pub fn encoded_with(&self, path: &Path, options: SaveOptions) -> Result<Vec<u8>> {
        let format = options.check(path)?;
        self.check_pixels(path)?;
        let mut out = std::io::Cursor::new(Vec::new());
        self.encode_with(&mut out, path, format, options)?;
        Ok(out.into_inner())
    }

    /// Encodes `format` with `options` into `out` (`path` names the errors).
    fn encode_with(
        &self,
        out: &mut dyn Sink,
        path: &Path,
        format: OutputFormat,
        options: SaveOptions,
    ) -> Result<()> {
        let (w, h) = (self.width, self.height);
        let sixteen = options.bit_depth == 16;
        let wide: Vec<u16> = if sixteen {
            // 0–255 to 0–65535: 257 per step, so an 8-bit value v is v·257.
            self.rgb
                .iter()
                .map(|v| (v.clamp(0.0, 255.0) * 257.0).round() as u16)
                .collect()
        } else {
            Vec::new()
        };
        let narrow = if sixteen { Vec::new() } else { self.to_rgb8() };
        let fail = |e: String| Error::image(path, format!("cannot encode: {e}"));
        match format {
            OutputFormat::Png => {
                let mut enc = png::Encoder::new(&mut *out, w, h);
                enc.set_color(png::ColorType::Rgb);
                if let Some(dpi) = options.dpi {
                    // pHYs counts pixels per metre.
                    let ppm = (dpi as f64 / 0.0254).round() as u32;
                    enc.set_pixel_dims(Some(png::PixelDimensions {
                        xppu: ppm,
                        yppu: ppm,
                        unit: png::Unit::Meter,
                    }));
                }
                let data: Vec<u8> = if sixteen {
                    enc.set_depth(png::BitDepth::Sixteen);
                    // PNG samples are big-endian.
                    wide.iter().flat_map(|v| v.to_be_bytes()).collect()
                } else {
                    enc.set_depth(png::BitDepth::Eight);
                    narrow.clone()
                };
                let mut writer = enc.write_header().map_err(|e| fail(e.to_string()))?;
                writer
                    .write_image_data(&data)
                    .and_then(|()| writer.finish())
                    .map_err(|e| match e {
                        png::EncodingError::IoError(e) => Error::io(path, e),
                        e => fail(e.to_string()),
                    })
            }
            OutputFormat::Tiff => {
                use tiff::encoder::{colortype, Rational, TiffEncoder};
                let tiff_err = |e: tiff::TiffError| match e {
                    tiff::TiffError::IoError(e) => Error::io(path, e),
                    e => fail(e.to_string()),
                };
                let mut enc = TiffEncoder::new(&mut *out).map_err(tiff_err)?;
                let dpi = |img: &mut dyn FnMut(Rational)| {
                    if let Some(d) = options.dpi {
                        img(Rational { n: d, d: 1 });
                    }
                };
                if sixteen {
                    let mut img = enc.new_image::<colortype::RGB16>(w, h).map_err(tiff_err)?;
                    dpi(&mut |r| img.resolution(tiff::tags::ResolutionUnit::Inch, r));
                    img.write_data(&wide).map_err(tiff_err)
                } else {
                    let mut img = enc.new_image::<colortype::RGB8>(w, h).map_err(tiff_err)?;
                    dpi(&mut |r| img.resolution(tiff::tags::ResolutionUnit::Inch, r));
                    img.write_data(&narrow).map_err(tiff_err)
                }
            }
            OutputFormat::Jpeg | OutputFormat::WebP => unreachable!("checked above"),
        }
    }
}

/// Where [`Picture::save_with`] encodes: a file or memory (TIFF seeks).
trait Sink: Write + std::io::Seek {}
impl<T: Write + std::io::Seek> Sink for T {}

/// How [`Picture::save_with`] writes a file besides its format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaveOptions {
    /// Bits per channel: 8 (every format) or 16 (`.png`, `.tif`).
    pub bit_depth: u8,
    /// Dots per inch recorded in the file (`.png`, `.tif`): the size it
    /// prints at. `None`: none recorded.
    pub dpi: Option<u32>,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            bit_depth: 8,
            dpi: None,
        }
    }
}

impl SaveOptions {
    /// Checks the options against the output `path` before any work: a
    /// bit depth of 8 or 16, 16 bits and a DPI only for `.png` and `.tif`,
    /// a DPI of at least 1. Returns the format ([`check_output_path`]).
    pub fn check(&self, path: &Path) -> Result<OutputFormat> {
        let format = check_output_path(path)?;
        if !matches!(self.bit_depth, 8 | 16) {
            return Err(Error::config(
                "bit-depth",
                format!("must be 8 or 16, not {}", self.bit_depth),
            ));
        }
        let rich = matches!(format, OutputFormat::Png | OutputFormat::Tiff);
        if self.bit_depth == 16 && !rich {
            return Err(Error::config(
                "bit-depth",
                format!(
                    "16 bits per channel are written to .png and .tif, not .{}",
                    format.extension()
                ),
            ));
        }
        match self.dpi {
            Some(0) => Err(Error::config("dpi", "must be at least 1")),
            Some(_) if !rich => Err(Error::config(
                "dpi",
                format!(
                    "the resolution is recorded in .png and .tif files, not .{}",
                    format.extension()
                ),
            )),
            _ => Ok(format),
        }
    }
}

/// The size of a `width × height` image resized so that its longer side is
/// `longest` pixels, aspect kept, each side at least 1 ([`Picture::resize_longest`]).
pub fn size_longest((width, height): (u32, u32), longest: u32) -> (u32, u32) {
    let longest = longest.max(1);
    let (w, h) = (width.max(1) as f64, height.max(1) as f64);
    if w >= h {
        (longest, side(h * longest as f64 / w))
    } else {
        (side(w * longest as f64 / h), longest)
    }
}

/// The size of a `width × height` image resized to about `pixels` pixels, aspect kept,
/// each side at least 1; unchanged when `pixels` is not a positive finite number
/// ([`Picture::resize_to_pixels`]).
pub fn size_for_pixels((width, height): (u32, u32), pixels: f64) -> (u32, u32) {
    if !(pixels.is_finite() && pixels > 0.0) {
        return (width, height);
    }
    let (w, h) = (width.max(1) as f64, height.max(1) as f64);
    let scale = (pixels / (w * h)).sqrt();
    (side(w * scale), side(h * scale))
}

/// A side length from a float: rounded, at least 1.
fn side(v: f64) -> u32 {
    (v.round() as u32).max(1)
}

/// An error of [`encode`] writing `path`.
fn encode_error(path: &Path, e: ImageError) -> Error {
    match e {
        ImageError::IoError(e) => Error::io(path, e),
        e => Error::image(path, format!("cannot encode: {}", one_line(e))),
    }
}

fn encode<W: Write + std::io::Seek>(
    out: &mut W,
    format: OutputFormat,
    rgb: &[u8],
    width: u32,
    height: u32,
) -> image::ImageResult<()> {
    use image::codecs::{jpeg::JpegEncoder, png::PngEncoder, tiff::TiffEncoder, webp::WebPEncoder};
    let ct = image::ExtendedColorType::Rgb8;
    match format {
        OutputFormat::Png => PngEncoder::new(out).write_image(rgb, width, height, ct),
        OutputFormat::Jpeg => {
            JpegEncoder::new_with_quality(out, JPEG_QUALITY).write_image(rgb, width, height, ct)
        }
        OutputFormat::WebP => WebPEncoder::new_lossless(out).write_image(rgb, width, height, ct),
        OutputFormat::Tiff => TiffEncoder::new(out).write_image(rgb, width, height, ct),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, Rgb, Rgba};
    use std::path::PathBuf;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A picture with distinct, non-integer values.
    fn pattern(width: u32, height: u32) -> Picture {
        let rgb = (0..width * height * 3)
            .map(|i| ((i * 37 + 11) % 256) as f32 * 0.99 + 0.123)
            .collect();
        Picture { width, height, rgb }
    }

    /// A picture with integer values, exactly representable in 8 bits.
    fn pattern8(width: u32, height: u32) -> Picture {
        let rgb = (0..width * height * 3)
            .map(|i| ((i * 37 + 11) % 256) as f32)
            .collect();
        Picture { width, height, rgb }
    }

    fn px(p: &Picture, x: u32, y: u32) -> [f32; 3] {
        let i = 3 * (y * p.width + x) as usize;
        [p.rgb[i], p.rgb[i + 1], p.rgb[i + 2]]
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol, "value {i}: {x} vs {y}");
        }
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A PNG signature and IHDR chunk declaring `width × height`, 8-bit RGB,
    /// followed by an (invalid) empty IDAT and IEND.
    fn png_header_only(width: u32, height: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            out.extend((data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend(data);
            out.extend(&body);
            out.extend(crc32(&body).to_be_bytes());
        };
        let mut ihdr = Vec::new();
        ihdr.extend(width.to_be_bytes());
        ihdr.extend(height.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        chunk(b"IHDR", &ihdr);
        chunk(b"IDAT", &[]);
        chunk(b"IEND", &[]);
        out
    }

    /// A BMP file header and BITMAPINFOHEADER declaring `width × height`,
    /// 24-bit, with no pixel data.
    fn bmp_header_only(width: i32, height: i32) -> Vec<u8> {
        let mut bmp = b"BM".to_vec();
        bmp.extend(54u32.to_le_bytes());
        bmp.extend([0; 4]);
        bmp.extend(54u32.to_le_bytes());
        bmp.extend(40u32.to_le_bytes());
        bmp.extend(width.to_le_bytes());
        bmp.extend(height.to_le_bytes());
        bmp.extend(1u16.to_le_bytes());
        bmp.extend(24u16.to_le_bytes());
        bmp.extend([0; 24]);
        bmp
    }

    /// A big-endian TIFF/EXIF block holding only Orientation = `value`.
    fn exif_orientation(value: u16) -> Vec<u8> {
        let mut t = b"MM\x00\x2a".to_vec();
        t.extend(8u32.to_be_bytes()); // first IFD
        t.extend(1u16.to_be_bytes()); // one entry
        t.extend(0x0112u16.to_be_bytes()); // Orientation
        t.extend(3u16.to_be_bytes()); // SHORT
        t.extend(1u32.to_be_bytes()); // count
        t.extend(value.to_be_bytes());
        t.extend([0, 0]);
        t.extend(0u32.to_be_bytes()); // no next IFD
        t
    }

    fn err_text(r: Result<impl std::fmt::Debug>) -> String {
        let e = r.unwrap_err().to_string();
        assert!(!e.contains('\n'), "error is not one line: {e:?}");
        e
    }

    #[test]
    fn grayscale_becomes_rgb() {
        let dir = tmp();
        let path = dir.path().join("gray.png");
        ImageBuffer::from_fn(3, 2, |x, y| Luma([(x * 50 + y * 100) as u8]))
            .save(&path)
            .unwrap();
        let p = Picture::load(&path).unwrap();
        assert_eq!((p.width, p.height), (3, 2));
        for y in 0..2 {
            for x in 0..3 {
                let v = (x * 50 + y * 100) as f32;
                assert_eq!(px(&p, x, y), [v, v, v]);
            }
        }
    }

    #[test]
    fn alpha_is_composited_over_white() {
        let dir = tmp();
        let path = dir.path().join("rgba.png");
        let pixels = [
            Rgba([255u8, 0, 0, 255]),
            Rgba([0, 0, 255, 0]),
            Rgba([0, 255, 0, 128]),
            Rgba([10, 20, 30, 255]),
        ];
        ImageBuffer::from_fn(4, 1, |x, _| pixels[x as usize])
            .save(&path)
            .unwrap();
        let p = Picture::load(&path).unwrap();
        assert_eq!((p.width, p.height), (4, 1));
        assert_eq!(px(&p, 0, 0), [255.0, 0.0, 0.0]);
        assert_eq!(px(&p, 1, 0), [255.0, 255.0, 255.0]);
        let half = 255.0 * (1.0 - 128.0 / 255.0);
        assert_close(&px(&p, 2, 0), &[half, 255.0, half], 1e-3);
        assert_eq!(px(&p, 3, 0), [10.0, 20.0, 30.0]);
    }

    #[test]
    fn sixteen_bit_precision_is_kept() {
        let dir = tmp();
        let path = dir.path().join("deep.png");
        let values = [0u16, 1, 257, 1000, 32768, 65534, 65535, 12345, 54321];
        ImageBuffer::<Rgb<u16>, _>::from_fn(3, 1, |x, _| {
            let i = 3 * x as usize;
            Rgb([values[i], values[i + 1], values[i + 2]])
        })
        .save(&path)
        .unwrap();
        let p = Picture::load(&path).unwrap();
        let want: Vec<f32> = values.iter().map(|&v| v as f32 / 257.0).collect();
        assert_close(&p.rgb, &want, 1e-4);
        // Not quantised to 8 bits: 1/257 survives.
        assert!(p.rgb[1] > 0.0 && p.rgb[1] < 0.01);
        assert_eq!(p.rgb[2], 1.0);
        assert_eq!(p.rgb[6], 255.0);

        // 16-bit gray with alpha too.
        let path = dir.path().join("deep_la.png");
        ImageBuffer::<image::LumaA<u16>, _>::from_fn(2, 1, |x, _| {
            image::LumaA([1000, if x == 0 { 65535 } else { 0 }])
        })
        .save(&path)
        .unwrap();
        let p = Picture::load(&path).unwrap();
        let g = 1000.0 / 257.0;
        assert_close(&p.rgb, &[g, g, g, 255.0, 255.0, 255.0], 1e-4);
    }

    /// 3×2 image, EXIF orientation 6 ("rotate 90° clockwise to display").
    fn check_rotated_90(p: &Picture, src: &Picture, tol: f32) {
        assert_eq!((p.width, p.height), (src.height, src.width));
        for ny in 0..p.height {
            for nx in 0..p.width {
                // Clockwise: new (nx, ny) shows old (ny, H-1-nx).
                let old = px(src, ny, src.height - 1 - nx);
                assert_close(&px(p, nx, ny), &old, tol);
            }
        }
    }

    #[test]
    fn exif_orientation_in_png_is_applied() {
        let dir = tmp();
        let path = dir.path().join("oriented.png");
        let src = pattern8(3, 2);
        let mut buf = Vec::new();
        let mut enc = image::codecs::png::PngEncoder::new(&mut buf);
        enc.set_exif_metadata(exif_orientation(6)).unwrap();
        enc.write_image(&src.to_rgb8(), 3, 2, image::ExtendedColorType::Rgb8)
            .unwrap();
        std::fs::write(&path, &buf).unwrap();
        let p = Picture::load(&path).unwrap();
        check_rotated_90(&p, &src, 0.0);
    }

    #[test]
    fn exif_orientation_in_jpeg_is_applied() {
        let dir = tmp();
        let path = dir.path().join("oriented.jpg");
        // Large flat blocks so that JPEG loss does not matter: 32×16,
        // left half red, right half blue.
        let (w, h) = (32u32, 16u32);
        let src = Picture {
            width: w,
            height: h,
            rgb: (0..w * h)
                .flat_map(|i| {
                    if i % w < w / 2 {
                        [255.0, 0.0, 0.0]
                    } else {
                        [0.0, 0.0, 255.0]
                    }
                })
                .collect(),
        };
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 100)
            .write_image(&src.to_rgb8(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        // Insert an APP1 EXIF segment right after SOI.
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend(exif_orientation(6));
        let mut app1 = vec![0xFF, 0xE1];
        app1.extend(((payload.len() + 2) as u16).to_be_bytes());
        app1.extend(payload);
        let mut file = jpeg[..2].to_vec();
        file.extend(app1);
        file.extend(&jpeg[2..]);
        std::fs::write(&path, &file).unwrap();

        // Without the EXIF block the same bytes load unrotated.
        let plain = dir.path().join("plain.jpg");
        std::fs::write(&plain, &jpeg).unwrap();
        let q = Picture::load(&plain).unwrap();
        assert_eq!((q.width, q.height), (w, h));

        let p = Picture::load(&path).unwrap();
        assert_eq!((p.width, p.height), (h, w));
        // Rotated clockwise, the left (red) half is now on top.
        let top = px(&p, h / 2, 4);
        let bottom = px(&p, h / 2, w - 5);
        assert!(top[0] > 200.0 && top[2] < 50.0, "top {top:?}");
        assert!(bottom[2] > 200.0 && bottom[0] < 50.0, "bottom {bottom:?}");
        check_rotated_90(&p, &q, 0.0);
    }

    #[test]
    fn resize_to_same_size_is_bit_exact() {
        let p = pattern(7, 5);
        let same = |q: &Picture| {
            assert_eq!((q.width, q.height), (7, 5));
            let a: Vec<u32> = p.rgb.iter().map(|v| v.to_bits()).collect();
            let b: Vec<u32> = q.rgb.iter().map(|v| v.to_bits()).collect();
            assert_eq!(a, b);
        };
        same(&p.resize_to(7, 5));
        same(&p.resize_longest(7));
        same(&p.resize_to_pixels(35.0));
        same(&p.resize_to_pixels(36.0)); // rounds back to 7×5
        let tall = pattern(5, 7);
        assert_eq!(tall.resize_longest(7), tall);
    }

    #[test]
    fn resize_sizes() {
        let p = pattern(64, 48);
        let dims = |q: Picture| {
            assert_eq!(q.rgb.len(), (q.width * q.height * 3) as usize);
            assert!(q.rgb.iter().all(|v| (0.0..=255.0).contains(v)));
            (q.width, q.height)
        };
        assert_eq!(dims(p.resize_longest(32)), (32, 24));
        assert_eq!(dims(p.resize_longest(128)), (128, 96));
        assert_eq!(dims(pattern(30, 90).resize_longest(10)), (3, 10));
        assert_eq!(dims(pattern(31, 90).resize_longest(10)), (3, 10));
        assert_eq!(dims(pattern(100, 1).resize_longest(10)), (10, 1));
        assert_eq!(dims(pattern(1, 100).resize_longest(10)), (1, 10));
        assert_eq!(dims(p.resize_longest(0)), (1, 1));
        assert_eq!(dims(p.resize_to(10, 3)), (10, 3));
        assert_eq!(dims(p.resize_to(0, 3)), (1, 3));
        assert_eq!(dims(p.resize_to_pixels(768.0)), (32, 24));
        assert_eq!(dims(p.resize_to_pixels(64.0 * 48.0 * 4.0)), (128, 96));
        assert_eq!(dims(pattern(100, 1).resize_to_pixels(10.0)), (32, 1));
        assert_eq!(dims(p.resize_to_pixels(0.01)), (1, 1));
        assert_eq!(p.resize_to_pixels(f64::NAN), p);
        let q = p.resize_to_pixels(1000.0);
        let n = f64::from(q.width * q.height);
        assert!((n - 1000.0).abs() < 60.0, "{}×{}", q.width, q.height);
    }

    #[test]
    fn resize_keeps_flat_colour_and_range() {
        let flat = Picture {
            width: 20,
            height: 10,
            rgb: [12.5f32, 200.25, 99.0].repeat(200),
        };
        for q in [flat.resize_longest(7), flat.resize_longest(45)] {
            for c in q.rgb.chunks_exact(3) {
                assert_close(c, &[12.5, 200.25, 99.0], 0.01);
            }
        }
        // Lanczos overshoot at a hard edge stays within 0–255.
        let edge = Picture {
            width: 8,
            height: 1,
            rgb: (0..8)
                .flat_map(|x| [if x < 4 { 0.0 } else { 255.0 }; 3])
                .collect(),
        };
        let up = edge.resize_to(37, 3);
        assert!(up.rgb.iter().all(|v| (0.0..=255.0).contains(v)));
    }

    #[test]
    fn caffe_round_trip() {
        let p = pattern8(4, 3);
        let c = p.to_caffe();
        assert_eq!(c.shape(), [3, 3, 4]);
        assert_eq!(Picture::from_caffe(&c), p);
        // Rounding and clamping on the way out.
        let mut c = Picture {
            width: 1,
            height: 1,
            rgb: vec![0.0; 3],
        }
        .to_caffe();
        c.data = vec![1000.0, -1000.0, 0.6 - crate::pixel::CAFFE_MEAN_BGR[2]];
        assert_eq!(Picture::from_caffe(&c).rgb, vec![1.0, 0.0, 255.0]);
    }

    #[test]
    fn save_round_trips() {
        let dir = tmp();
        let src = pattern(17, 9);
        let exact = Picture {
            rgb: src.to_rgb8().into_iter().map(f32::from).collect(),
            ..src.clone()
        };
        for name in ["a.png", "b.PNG", "c.webp", "d.tif", "e.TIFF"] {
            let path = dir.path().join(name);
            src.save(&path).unwrap();
            assert_eq!(Picture::load(&path).unwrap(), exact, "{name}");
            // What `encoded` gives is what `save` wrote.
            let bytes = src.encoded(&path).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}");
        }
        // JPEG is lossy; on smooth content quality 95 is close.
        let smooth = Picture {
            width: 32,
            height: 16,
            rgb: (0..32 * 16)
                .flat_map(|i| {
                    let (x, y) = ((i % 32) as f32, (i / 32) as f32);
                    [x * 7.0, y * 15.0, 128.0]
                })
                .collect(),
        };
        for name in ["f.jpg", "g.jpeg", "h.JPG"] {
            let path = dir.path().join(name);
            smooth.save(&path).unwrap();
            let back = Picture::load(&path).unwrap();
            assert_eq!((back.width, back.height), (32, 16));
            let mean_err: f32 = back
                .rgb
                .iter()
                .zip(&smooth.rgb)
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / back.rgb.len() as f32;
            assert!(mean_err < 3.0, "{name}: mean error {mean_err}");
        }
        // Formats are what the extension says, whatever else.
        let magic = |name: &str| std::fs::read(dir.path().join(name)).unwrap()[..4].to_vec();
        assert_eq!(magic("a.png"), b"\x89PNG");
        assert_eq!(magic("c.webp"), b"RIFF");
        assert_eq!(&magic("f.jpg")[..2], &[0xFF, 0xD8]);
        assert!(magic("d.tif") == b"II*\0" || magic("d.tif") == b"MM\0*");
        // Overwriting an existing file works and leaves no temporary file.
        exact
            .resize_to(3, 3)
            .save(&dir.path().join("a.png"))
            .unwrap();
        assert_eq!(Picture::load(&dir.path().join("a.png")).unwrap().width, 3);
        assert!(names(dir.path()).iter().all(|n| !n.ends_with(".tmp")));
    }

    #[test]
    fn output_extension_is_checked() {
        let dir = tmp();
        let ok = |n: &str| check_output_path(&dir.path().join(n)).unwrap();
        assert_eq!(ok("x.png"), OutputFormat::Png);
        assert_eq!(ok("x.Jpg"), OutputFormat::Jpeg);
        assert_eq!(ok("x.JPEG"), OutputFormat::Jpeg);
        assert_eq!(ok("x.webp"), OutputFormat::WebP);
        assert_eq!(ok("x.tif"), OutputFormat::Tiff);
        assert_eq!(ok("x.tiff"), OutputFormat::Tiff);

        let bad = dir.path().join("out.xyz");
        let e = err_text(check_output_path(&bad));
        assert!(e.starts_with("output: "), "{e}");
        assert!(
            e.contains("out.xyz: unsupported extension `.xyz`; use .png, .jpg, .webp or .tif"),
            "{e}"
        );
        let e = err_text(pattern(2, 2).save(&bad));
        assert!(e.contains("unsupported extension `.xyz`"), "{e}");
        let e = err_text(check_output_path(&dir.path().join("noext")));
        assert!(e.contains("no file extension"), "{e}");
        assert!(names(dir.path()).is_empty());
        // A bare file name is relative to the current directory, which exists.
        assert_eq!(
            check_output_path(Path::new("bare.png")).unwrap(),
            OutputFormat::Png
        );
    }

    #[test]
    fn missing_output_directory_is_named() {
        let dir = tmp();
        let missing = dir.path().join("nope");
        let path = missing.join("out.png");
        let e = err_text(check_output_path(&path));
        assert!(e.starts_with("output: "), "{e}");
        assert!(
            e.contains(&format!("`{}` does not exist", missing.display())),
            "{e}"
        );
        let e = err_text(pattern(2, 2).save(&path));
        assert!(e.contains("does not exist"), "{e}");
        assert!(names(dir.path()).is_empty());
        // A file where the directory should be.
        std::fs::write(&missing, b"x").unwrap();
        let e = err_text(check_output_path(&path));
        assert!(e.contains("is not a directory"), "{e}");
    }

    #[test]
    fn failed_save_leaves_nothing_behind() {
        let dir = tmp();
        // Encoder failure: JPEG cannot be wider than 65535.
        let wide = Picture {
            width: 70_000,
            height: 1,
            rgb: vec![128.0; 70_000 * 3],
        };
        let path = dir.path().join("wide.jpg");
        let e = err_text(wide.save(&path));
        assert!(e.contains("wide.jpg"), "{e}");
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));

        // A failed save does not touch an existing file.
        let small = pattern8(4, 4);
        small.save(&path).unwrap();
        let before = std::fs::read(&path).unwrap();
        assert!(wide.save(&path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(names(dir.path()), vec!["wide.jpg".to_string()]);

        // Rename failure: the target is a directory.
        let target = dir.path().join("taken.png");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"k").unwrap();
        let e = err_text(small.save(&target));
        assert!(e.contains("taken.png"), "{e}");
        assert_eq!(
            names(dir.path()),
            vec!["taken.png".to_string(), "wide.jpg".to_string()]
        );
        assert_eq!(names(&target), vec!["keep".to_string()]);

        // A picture whose buffer does not match its size is refused up front.
        let broken = Picture {
            width: 3,
            height: 3,
            rgb: vec![0.0; 5],
        };
        assert!(broken.save(&dir.path().join("broken.png")).is_err());
        let empty = Picture {
            width: 0,
            height: 3,
            rgb: vec![],
        };
        assert!(empty.save(&dir.path().join("empty.png")).is_err());
        assert_eq!(
            names(dir.path()),
            vec!["taken.png".to_string(), "wide.jpg".to_string()]
        );
    }

    #[cfg(unix)]
    #[test]
    fn saved_file_is_not_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tmp();
        let path = dir.path().join("p.png");
        pattern(2, 2).save(&path).unwrap();
        // Created like any new file (0666 less the umask), not 0600.
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_ne!(mode, 0o600, "mode {mode:o}");
        assert_eq!(mode & 0o600, 0o600);
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tmp();
        let at = |n: &str| -> PathBuf { dir.path().join(n) };

        let e = err_text(Picture::load(&at("missing.png")));
        assert_eq!(e, format!("{}: no such file", at("missing.png").display()));

        std::fs::write(at("junk.png"), b"this is not a png at all").unwrap();
        let e = err_text(Picture::load(&at("junk.png")));
        assert!(
            e.starts_with(&format!(
                "{}: not an image the decoder understands: ",
                at("junk.png").display()
            )),
            "{e}"
        );

        std::fs::write(at("junk.xyz"), b"this is not an image at all").unwrap();
        let e = err_text(Picture::load(&at("junk.xyz")));
        assert!(
            e.contains("not an image the decoder understands: unknown file format"),
            "{e}"
        );

        std::fs::write(at("empty.jpg"), b"").unwrap();
        let e = err_text(Picture::load(&at("empty.jpg")));
        assert!(
            e.contains("not an image the decoder understands: the file is empty"),
            "{e}"
        );

        // Truncated: a valid PNG cut in half.
        pattern8(16, 16).save(&at("whole.png")).unwrap();
        let bytes = std::fs::read(at("whole.png")).unwrap();
        std::fs::write(at("cut.png"), &bytes[..bytes.len() / 2]).unwrap();
        let e = err_text(Picture::load(&at("cut.png")));
        assert!(
            e.contains("cut.png: not an image the decoder understands"),
            "{e}"
        );

        std::fs::create_dir(at("dir.png")).unwrap();
        let e = err_text(Picture::load(&at("dir.png")));
        assert!(
            e.contains("dir.png: not a regular file (a directory)"),
            "{e}"
        );

        // Content decides, not the extension: a PNG named .jpg loads.
        std::fs::copy(at("whole.png"), at("really_png.jpg")).unwrap();
        assert_eq!(Picture::load(&at("really_png.jpg")).unwrap().width, 16);
    }

    #[test]
    fn zero_sized_images_are_refused() {
        let dir = tmp();
        // GIF: 0×0 logical screen and a 0×0 frame.
        let mut gif = b"GIF89a".to_vec();
        gif.extend([0, 0, 0, 0, 0, 0, 0]);
        gif.extend([0x2c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0]);
        gif.push(0x3b);
        // PNG with a zero width in its header.
        let png = png_header_only(0, 5);
        // BMP with a zero width.
        let bmp = bmp_header_only(0, 1);
        for (name, bytes) in [("z.gif", gif), ("z.png", png), ("z.bmp", bmp)] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let e = err_text(Picture::load(&path));
            assert_eq!(
                e,
                format!("{}: image has zero width or height", path.display())
            );
        }
    }

    #[test]
    fn absurd_dimensions_are_refused_before_decoding() {
        let dir = tmp();
        for (w, h) in [(100_000u32, 10u32), (10, 100_000), (30_000, 30_000)] {
            for (ext, bytes) in [
                ("png", png_header_only(w, h)),
                ("bmp", bmp_header_only(w as i32, h as i32)),
            ] {
                let path = dir.path().join(format!("huge_{w}x{h}.{ext}"));
                std::fs::write(&path, bytes).unwrap();
                let e = err_text(Picture::load(&path));
                let want = format!("{}: image is {w}×{h}, too large", path.display());
                assert!(e.starts_with(&want), "{e}");
            }
        }
        // A top-down BMP (negative height) of a sane size gets past the size
        // check and fails only for want of pixels.
        let path = dir.path().join("topdown.bmp");
        std::fs::write(&path, bmp_header_only(4, -4)).unwrap();
        let e = err_text(Picture::load(&path));
        assert!(!e.contains("too large") && !e.contains("zero"), "{e}");
    }

    #[test]
    fn truncated_png_and_jpeg_are_refused_naming_the_file() {
        let dir = tmp();
        let p = pattern8(64, 48);
        for (name, keep) in [("t.jpg", 3), ("t.png", 2)] {
            let path = dir.path().join(name);
            p.save(&path).unwrap();
            assert_eq!(Picture::probe(&path).unwrap(), (64, 48));
            assert!(Picture::load(&path).is_ok());
            let bytes = std::fs::read(&path).unwrap();
            // Cut to a third (JPEG) or half (PNG), and just before the end.
            for cut in [bytes.len() / keep, bytes.len() - 2] {
                let short = dir.path().join(format!("short_{cut}_{name}"));
                std::fs::write(&short, &bytes[..cut]).unwrap();
                for e in [
                    err_text(Picture::load(&short)),
                    err_text(Picture::probe(&short)),
                ] {
                    assert!(e.contains(&short.display().to_string()), "{e}");
                    assert!(
                        e.contains("ends too early") || e.contains("not an image"),
                        "{e}"
                    );
                }
            }
        }
        // A JPEG carrying a complete thumbnail (its own start-of-scan and end
        // marker) in an APP1 block, then cut: still refused.
        let jpeg = dir.path().join("t.jpg");
        let mut main = std::fs::read(&jpeg).unwrap();
        let thumb_path = dir.path().join("thumb.jpg");
        pattern8(8, 8).save(&thumb_path).unwrap();
        let thumb = std::fs::read(&thumb_path).unwrap();
        let mut app1 = vec![0xFF, 0xE1];
        app1.extend(((thumb.len() + 2) as u16).to_be_bytes());
        app1.extend(&thumb);
        main.splice(2..2, app1);
        let with_thumb = dir.path().join("thumbed.jpg");
        std::fs::write(&with_thumb, &main).unwrap();
        assert!(Picture::load(&with_thumb).is_ok());
        std::fs::write(&with_thumb, &main[..main.len() * 2 / 3]).unwrap();
        assert!(err_text(Picture::load(&with_thumb)).contains("ends too early"));
    }

    #[test]
    fn special_files_are_not_regular_files() {
        let dir = tmp();
        let e = err_text(Picture::load(dir.path()));
        assert!(e.contains("not a regular file (a directory)"), "{e}");
        #[cfg(unix)]
        {
            let e = err_text(Picture::load(Path::new("/dev/zero")));
            assert!(e.contains("not a regular file (a character device)"), "{e}");
            let e = err_text(Picture::probe(Path::new("/dev/null")));
            assert!(e.contains("not a regular file"), "{e}");
        }
    }

    #[test]
    fn temporary_files_are_recognisable_and_only_those_of_gone_owners_are_removed() {
        let dir = tmp();
        let out = dir.path().join("out.png");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        // A process that has exited: its pid is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        let f = |n: String| (dir.path().join(&n), n);
        let files = [
            // Left by a killed writer (gone, old), by an older build (old), and
            // files that only look alike.
            (
                f(format!(".neural-style-out.png.{gone}-Ab12Cd.tmp")),
                true,
                false,
            ),
            (f(".neural-style-out.png.Ab12Cd.tmp".into()), true, false),
            (
                f(format!(".neural-style-out.png.x.png.{gone}-Ab12Cd.tmp")),
                true,
                true,
            ),
            (f(".neural-style-out.png.notmine.tmp".into()), true, true),
            // A live writer's (this process), however old; a gone writer's, fresh.
            (
                f(format!(".neural-style-out.png.{me}-Zz99Yy.tmp")),
                true,
                true,
            ),
            (
                f(format!(".neural-style-out.png.{gone}-Qq11Rr.tmp")),
                false,
                true,
            ),
        ];
        for ((p, _), aged, _) in &files {
            std::fs::write(p, b"half an image").unwrap();
            if *aged {
                std::fs::File::options()
                    .append(true)
                    .open(p)
                    .unwrap()
                    .set_modified(old)
                    .unwrap();
            }
        }
        pattern8(4, 3).save(&out).unwrap();
        let left = names(dir.path());
        for ((_, n), _, kept) in &files {
            assert_eq!(left.contains(n), *kept, "{n}: {left:?}");
        }
        assert!(left.contains(&"out.png".to_string()));
        assert_eq!(
            temp_target(&format!(".neural-style-a.b.png.{me}-Ab12Cd.tmp")),
            Some(("a.b.png", me))
        );
        assert_eq!(temp_target(".neural-style-a.png.Ab12Cd.tmp"), None);
        assert_eq!(
            temp_name_len(7),
            format!(".neural-style-out.png.{}-Ab12Cd.tmp", u32::MAX).len()
        );
    }

    /// A PNG's bit depth and pixels per metre (pHYs), read with `png`.
    fn png_header(path: &Path) -> (png::BitDepth, Option<(u32, u32, png::Unit)>) {
        let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let reader = png::Decoder::new(file).read_info().unwrap();
        let info = reader.info();
        (
            info.bit_depth,
            info.pixel_dims.map(|d| (d.xppu, d.yppu, d.unit)),
        )
    }

    /// A TIFF's resolution tags and bits per sample, read with `tiff`.
    fn tiff_header(path: &Path) -> (Vec<u16>, Option<[u32; 4]>, Option<u16>) {
        use tiff::decoder::ifd::Value;
        use tiff::tags::Tag;
        let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let mut d = tiff::decoder::Decoder::new(file).unwrap();
        let bits = d.get_tag_u16_vec(Tag::BitsPerSample).unwrap();
        let rational = |v: Value| match v {
            Value::Rational(n, d) => (n, d),
            v => panic!("not a rational: {v:?}"),
        };
        let x = d.find_tag(Tag::XResolution).unwrap().map(rational);
        let y = d.find_tag(Tag::YResolution).unwrap().map(rational);
        let res = x.zip(y).map(|(x, y)| [x.0, x.1, y.0, y.1]);
        let unit = d
            .find_tag(Tag::ResolutionUnit)
            .unwrap()
            .map(|v| v.into_u16().unwrap());
        (bits, res, unit)
    }

    #[test]
    fn sixteen_bits_and_dpi_are_written_to_png_and_tiff_and_read_back() {
        let dir = tmp();
        // Not rounded: 16 bits keep what 8 would round away.
        let p = pattern(37, 23);
        let want: Vec<u16> = p
            .rgb
            .iter()
            .map(|v| (v.clamp(0.0, 255.0) * 257.0).round() as u16)
            .collect();
        let opts = SaveOptions {
            bit_depth: 16,
            dpi: Some(300),
        };
        for name in ["a.png", "a.tif"] {
            let path = dir.path().join(name);
            p.save_with(&path, opts).unwrap();
            let img = image::open(&path).unwrap();
            assert_eq!(img.color(), image::ColorType::Rgb16, "{name}");
            assert_eq!(img.to_rgb16().into_raw(), want, "{name}");
        }
        // 300 dpi: 11811 pixels per metre in PNG, 300/1 per inch in TIFF.
        assert_eq!(
            png_header(&dir.path().join("a.png")),
            (
                png::BitDepth::Sixteen,
                Some((11811, 11811, png::Unit::Meter))
            )
        );
        assert_eq!(
            tiff_header(&dir.path().join("a.tif")),
            (vec![16, 16, 16], Some([300, 1, 300, 1]), Some(2))
        );
        // 8 bits with a DPI: the 8-bit pixels `save` writes, and the DPI.
        let opts8 = SaveOptions {
            bit_depth: 8,
            dpi: Some(72),
        };
        for name in ["b.png", "b.tif"] {
            let path = dir.path().join(name);
            p.save_with(&path, opts8).unwrap();
            let img = image::open(&path).unwrap();
            assert_eq!(img.to_rgb8().into_raw(), p.to_rgb8(), "{name}");
        }
        assert_eq!(
            png_header(&dir.path().join("b.png")),
            (png::BitDepth::Eight, Some((2835, 2835, png::Unit::Meter)))
        );
        assert_eq!(
            tiff_header(&dir.path().join("b.tif")).1,
            Some([72, 1, 72, 1])
        );
        // Only the files themselves: no temporary left.
        assert_eq!(names(dir.path()), ["a.png", "a.tif", "b.png", "b.tif"]);
    }

    #[test]
    fn a_poster_sized_sixteen_bit_tiff_reads_back_whole() {
        let dir = tmp();
        let (w, h) = (4096u32, 3072u32);
        let rgb: Vec<f32> = (0..w as usize * h as usize * 3)
            .map(|i| (i % 65_521) as f32 * (255.0 / 65_520.0))
            .collect();
        let p = Picture {
            width: w,
            height: h,
            rgb,
        };
        let path = dir.path().join("poster.tif");
        p.save_with(
            &path,
            SaveOptions {
                bit_depth: 16,
                dpi: Some(150),
            },
        )
        .unwrap();
        let img = image::open(&path).unwrap().to_rgb16();
        assert_eq!(img.dimensions(), (w, h));
        for (k, (got, v)) in img.as_raw().iter().zip(&p.rgb).enumerate().step_by(7919) {
            assert_eq!(*got, (v * 257.0).round() as u16, "sample {k}");
        }
        assert_eq!(tiff_header(&path).1, Some([150, 1, 150, 1]));
    }

    #[test]
    fn save_options_are_refused_where_the_format_cannot_hold_them() {
        let dir = tmp();
        let p = pattern8(4, 3);
        let cases: [(&str, u8, Option<u32>, &str); 5] = [
            ("a.jpg", 16, None, "bit-depth"),
            ("a.webp", 8, Some(300), "dpi"),
            ("a.png", 12, None, "bit-depth"),
            ("a.tif", 8, Some(0), "dpi"),
            ("a.bmp", 16, None, "output"),
        ];
        for (name, bit_depth, dpi, option) in cases {
            let e = p
                .save_with(&dir.path().join(name), SaveOptions { bit_depth, dpi })
                .unwrap_err()
                .to_string();
            assert!(e.contains(option), "{name}: {e}");
        }
        assert!(names(dir.path()).is_empty());
        // Without options: byte for byte what `save` writes.
        p.save(&dir.path().join("a.png")).unwrap();
        p.save_with(&dir.path().join("b.png"), SaveOptions::default())
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("a.png")).unwrap(),
            std::fs::read(dir.path().join("b.png")).unwrap()
        );
    }
}
