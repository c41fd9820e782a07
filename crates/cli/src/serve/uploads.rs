//! Uploaded images: stored under names the server chooses (`upload-N.EXT`) in
//! a private temporary directory (mode 0700, removed on exit), decoded with the
//! command line's decoder and its limits (sides, pixels, allocation) before
//! they are accepted. The client's file name is only a label: it is cleaned for
//! display and never used as a path.
//!
//! Bounded: an upload's pixel count is read from its header and checked
//! against `--max-upload-megapixels` before anything is decoded; at most
//! `--max-uploads` uploads and `--max-uploads-mib` of them are kept, the oldest
//! that no queued or painting job holds removed first (a file lives exactly as
//! long as its `Upload`: removed when the last holder lets go).

use image::ImageFormat;
use neural_style_core::image_io::Picture;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Longest side of the thumbnails the page shows.
pub(crate) const THUMB: u32 = 160;

/// One accepted image.
#[derive(Debug, Serialize)]
pub(crate) struct Upload {
    pub(crate) id: u64,
    /// The client's file name, cleaned (display only).
    pub(crate) name: String,
    pub(crate) width: u32,
    pub(crate) height: u32,
    #[serde(skip)]
    pub(crate) path: PathBuf,
    #[serde(skip)]
    pub(crate) thumb: Vec<u8>,
    /// Bytes of the file.
    #[serde(skip)]
    pub(crate) bytes: u64,
}

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What the store accepts and keeps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    /// Largest upload, in bytes.
    pub(crate) max_bytes: u64,
    /// Most pixels of one upload (width × height, from its header).
    pub(crate) max_pixels: u64,
    /// Most uploads kept.
    pub(crate) max_kept: usize,
    /// Most bytes of uploads kept.
    pub(crate) max_kept_bytes: u64,
}

/// Why an upload was refused (the HTTP status follows from it).
#[derive(Debug)]
pub(crate) enum Refused {
    TooLarge(String),
    NotAnImage(String),
    /// The store is full of uploads that queued jobs still use.
    Full(String),
    Io(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::TooLarge(m) | Refused::NotAnImage(m) | Refused::Full(m) | Refused::Io(m) => {
                f.write_str(m)
            }
        }
    }
}

pub(crate) struct Uploads {
    dir: tempfile::TempDir,
    bounds: Bounds,
    next: AtomicU64,
    /// Oldest first (ids grow).
    map: Mutex<BTreeMap<u64, Arc<Upload>>>,
}

impl Uploads {
    pub(crate) fn new(bounds: Bounds) -> neural_style_core::Result<Uploads> {
        let dir = tempfile::Builder::new()
            .prefix("neural-style-studio.")
            .tempdir()
            .map_err(|e| neural_style_core::Error::io(std::env::temp_dir(), e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .map_err(|e| neural_style_core::Error::io(dir.path(), e))?;
        }
        Ok(Uploads {
            dir,
            bounds,
            next: AtomicU64::new(1),
            map: Mutex::new(BTreeMap::new()),
        })
    }

    /// The private directory (uploads, and the results kept for "use as init").
    pub(crate) fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub(crate) fn max_bytes(&self) -> u64 {
        self.bounds.max_bytes
    }

    pub(crate) fn get(&self, id: u64) -> Option<Arc<Upload>> {
        self.map.lock().expect("uploads lock").get(&id).cloned()
    }

    /// Stores and checks one upload. Blocking (decodes the image): call it
    /// off the async runtime.
    pub(crate) fn add(&self, client_name: &str, bytes: &[u8]) -> Result<Arc<Upload>, Refused> {
        let name = display_name(client_name);
        let max = self.bounds.max_bytes;
        if bytes.len() as u64 > max {
            return Err(Refused::TooLarge(format!(
                "{name}: {} bytes, more than the limit of {} MiB",
                bytes.len(),
                max >> 20
            )));
        }
        let ext = match image::guess_format(bytes) {
            Ok(ImageFormat::Png) => "png",
            Ok(ImageFormat::Jpeg) => "jpg",
            Ok(ImageFormat::WebP) => "webp",
            Ok(ImageFormat::Tiff) => "tif",
            Ok(ImageFormat::Gif) => "gif",
            Ok(ImageFormat::Bmp) => "bmp",
            _ => {
                return Err(Refused::NotAnImage(format!(
                    "{name}: not an image this studio reads (PNG, JPEG, WebP, TIFF, GIF, BMP)"
                )))
            }
        };
        // The size its header declares, before a pixel is decoded: a small
        // file can declare a huge image.
        if let Some((w, h)) = declared_size(bytes) {
            let pixels = u64::from(w) * u64::from(h);
            if pixels > self.bounds.max_pixels {
                return Err(Refused::TooLarge(format!(
                    "{name}: the image is {w}×{h} ({:.1} megapixels), too large for this studio (at most {} megapixels: `neural-style serve --max-upload-megapixels`)",
                    pixels as f64 / 1e6,
                    self.bounds.max_pixels / 1_000_000
                )));
            }
        }
        let size = bytes.len() as u64;
        if size > self.bounds.max_kept_bytes {
            return Err(Refused::TooLarge(format!(
                "{name}: {size} bytes, more than this studio keeps of all uploads together ({} MiB: `neural-style serve --max-uploads-mib`)",
                self.bounds.max_kept_bytes >> 20
            )));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("upload-{id}.{ext}"));
        std::fs::write(&path, bytes).map_err(|e| {
            let _ = std::fs::remove_file(&path);
            // An io::Error of std::fs names no path: the private one stays private.
            Refused::Io(format!("{name}: cannot store it: {e}"))
        })?;
        // The command line's decoder, with its limits: the image must decode whole.
        let picture = match Picture::load(&path) {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                let msg = e.to_string().replace(&*path.to_string_lossy(), &name);
                return Err(if msg.contains("too large") {
                    Refused::TooLarge(msg)
                } else {
                    Refused::NotAnImage(msg)
                });
            }
        };
        let thumb = thumbnail(&picture);
        let upload = Arc::new(Upload {
            id,
            name,
            width: picture.width,
            height: picture.height,
            path,
            thumb,
            bytes: size,
        });
        let mut map = self.map.lock().expect("uploads lock");
        // Room for it: the oldest uploads no job holds go first.
        let over = |map: &BTreeMap<u64, Arc<Upload>>| {
            map.len() + 1 > self.bounds.max_kept
                || map.values().map(|u| u.bytes).sum::<u64>() + size > self.bounds.max_kept_bytes
        };
        while over(&map) {
            let Some(old) = map
                .iter()
                .find(|(_, u)| Arc::strong_count(u) == 1)
                .map(|(&id, _)| id)
            else {
                return Err(Refused::Full(format!(
                    "{}: this studio keeps at most {} uploads and {} MiB, and queued jobs use them all: wait for the queue, or start it with a larger `--max-uploads`/`--max-uploads-mib`",
                    upload.name,
                    self.bounds.max_kept,
                    self.bounds.max_kept_bytes >> 20
                )));
            };
            map.remove(&old);
        }
        map.insert(id, upload.clone());
        Ok(upload)
    }

    /// How many uploads are kept, and their bytes.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> (usize, u64) {
        let map = self.map.lock().expect("uploads lock");
        (map.len(), map.values().map(|u| u.bytes).sum())
    }
}

/// The width and height an image's header declares: a PNG's `IHDR` read
/// directly, anything else through its decoder's header (JPEG: up to the
/// frame header); nothing is decoded.
fn declared_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() >= 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR" {
        let be32 =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        return Some((be32(16), be32(20)));
    }
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// A client's file name made into a label: its last path component, control
/// characters dropped, at most 80 characters; "image" when nothing is left.
pub(crate) fn display_name(client: &str) -> String {
    let last = client.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).take(80).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        "image".to_string()
    } else {
        clean.to_string()
    }
}

/// A picture's thumbnail (never enlarged), as PNG.
pub(crate) fn thumbnail(p: &Picture) -> Vec<u8> {
    png_bytes(&p.resize_longest(THUMB.min(p.width.max(p.height))))
}

/// A picture encoded as PNG in memory.
pub(crate) fn png_bytes(p: &Picture) -> Vec<u8> {
    let img = image::RgbImage::from_raw(p.width, p.height, p.to_rgb8()).expect("RGB size");
    encode(&img, ImageFormat::Png)
}

/// An RGB image encoded in memory (PNG, or JPEG at the command line's quality).
pub(crate) fn encode(img: &image::RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    if format == ImageFormat::Jpeg {
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out,
            neural_style_core::image_io::JPEG_QUALITY,
        );
        img.write_with_encoder(enc).expect("in-memory JPEG");
    } else {
        img.write_to(&mut out, format).expect("in-memory image");
    }
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_labels_not_paths() {
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(display_name("a/b/.."), "image");
        assert_eq!(display_name(""), "image");
        assert_eq!(display_name("x\u{0}\ny.png"), "xy.png");
        assert_eq!(display_name("photo.jpg"), "photo.jpg");
    }

    fn bounds(max_bytes: u64) -> Bounds {
        Bounds {
            max_bytes,
            max_pixels: 1_000_000,
            max_kept: 64,
            max_kept_bytes: 1 << 30,
        }
    }

    #[test]
    fn uploads_get_server_names_and_must_decode() {
        let u = Uploads::new(bounds(1 << 20)).unwrap();
        let img = image::RgbImage::from_pixel(20, 10, image::Rgb([200, 10, 10]));
        let png = encode(&img, ImageFormat::Png);
        let a = u.add("../../evil.png", &png).unwrap();
        assert_eq!(a.name, "evil.png");
        assert_eq!((a.width, a.height), (20, 10));
        assert_eq!(a.path.parent().unwrap(), u.dir());
        assert!(a
            .path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("upload-"));
        assert!(matches!(
            u.add("x.png", b"not an image"),
            Err(Refused::NotAnImage(_))
        ));
        // A PNG cut short is refused like the command line refuses it.
        assert!(matches!(
            u.add("cut.png", &png[..png.len() - 20]),
            Err(Refused::NotAnImage(_))
        ));
        let small = Uploads::new(bounds(100)).unwrap();
        assert!(matches!(
            small.add("big.png", &png),
            Err(Refused::TooLarge(_))
        ));
        // Nothing refused is left behind.
        assert_eq!(std::fs::read_dir(u.dir()).unwrap().count(), 1);
    }

    /// A PNG of `w × h` whose header is all there is (and a cut-off body).
    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        out.extend_from_slice(&13u32.to_be_bytes());
        out.extend_from_slice(&ihdr);
        out.extend_from_slice(&crc32fast::hash(&ihdr).to_be_bytes());
        out
    }

    #[test]
    fn a_huge_declared_size_is_refused_before_decoding() {
        let u = Uploads::new(bounds(1 << 20)).unwrap();
        match u.add("huge.png", &png_header(11_000, 11_000)) {
            Err(Refused::TooLarge(m)) => {
                assert!(m.contains("huge.png") && m.contains("11000×11000"), "{m}");
                assert!(m.contains("--max-upload-megapixels"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read_dir(u.dir()).unwrap().count(), 0);
    }

    #[test]
    fn the_oldest_unused_uploads_are_evicted() {
        let u = Uploads::new(Bounds {
            max_kept: 3,
            ..bounds(1 << 20)
        })
        .unwrap();
        let png = |v: u8| {
            encode(
                &image::RgbImage::from_pixel(8, 8, image::Rgb([v, 0, 0])),
                ImageFormat::Png,
            )
        };
        let first = u.add("a.png", &png(1)).unwrap();
        let second = u.add("b.png", &png(2)).unwrap().id;
        u.add("c.png", &png(3)).unwrap();
        // `first` is held (as a queued job holds it): the second goes.
        let d = u.add("d.png", &png(4)).unwrap();
        assert!(u.get(first.id).is_some());
        assert!(u.get(second).is_none());
        assert_eq!(u.kept().0, 3);
        assert_eq!(std::fs::read_dir(u.dir()).unwrap().count(), 3);
        // Bytes too: a budget of two files' worth keeps two.
        let each = d.bytes;
        let v = Uploads::new(Bounds {
            max_kept_bytes: 2 * each + each / 2,
            ..bounds(1 << 20)
        })
        .unwrap();
        let held: Vec<_> = (0..2).map(|i| v.add("x.png", &png(i)).unwrap()).collect();
        // Both held: a third is refused, and leaves nothing behind.
        assert!(matches!(v.add("y.png", &png(9)), Err(Refused::Full(_))));
        assert_eq!(std::fs::read_dir(v.dir()).unwrap().count(), 2);
        drop(held);
        v.add("y.png", &png(9)).unwrap();
        assert_eq!(v.kept().0, 2);
        assert_eq!(std::fs::read_dir(v.dir()).unwrap().count(), 2);
    }
}
